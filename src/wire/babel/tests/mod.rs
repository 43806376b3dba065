//! Codec tests: goldens as (bytes, values) pairs checked in both directions, packets
//! captured from babeld and BIRD, and properties.

mod captured;
mod golden;
mod ignored;
mod properties;

use super::*;
use core::net::IpAddr;

/// Bytes from hex, whitespace ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = core::str::from_utf8(pair).expect("hex is ASCII");
            u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex {pair:?}"))
        })
        .collect()
}

/// A packet: header, then the body given in hex.
fn packet(body_hex: &str) -> Vec<u8> {
    let body = hex(body_hex);
    let len = u16::try_from(body.len()).expect("test bodies are small");
    let mut bytes = vec![MAGIC, VERSION];
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend(body);
    bytes
}

/// Decodes a packet that must decode without anything ignored.
fn clean(bytes: &[u8]) -> Packet {
    let d = decode(bytes).expect("valid header");
    assert!(d.ignored.is_empty(), "ignored: {:?}", d.ignored);
    d.packet
}

/// Both directions: the body decodes to `tlvs`, and `tlvs` encode to exactly the packet.
fn golden(body_hex: &str, tlvs: Vec<Tlv>) {
    let bytes = packet(body_hex);
    let p = Packet { tlvs, trailer: Vec::new() };
    assert_eq!(clean(&bytes), p, "decode");
    assert_eq!(encode(&p), bytes, "encode");
}

/// What the encoder makes of a decoded packet decodes to the same values.
fn assert_round_trip(p: &Packet) {
    let again = decode(&encode(p)).expect("the encoder writes a valid header");
    assert_eq!(again.ignored, vec![]);
    assert_eq!(&again.packet, p);
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad address {s}"))
}

/// A prefix from "address/length".
fn pfx(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').expect("address/length");
    Prefix::new(ip(addr), len.parse().expect("length")).expect("valid prefix")
}

/// A router-id from "xx:xx:xx:xx:xx:xx:xx:xx".
fn rid(s: &str) -> RouterId {
    let bytes = hex(&s.replace(':', ""));
    RouterId(bytes.try_into().expect("8 bytes"))
}

/// An Update with interval 4 s and no sub-TLVs.
fn update(prefix: &str, seqno: u16, metric: u16, router_id: RouterId, next_hop: Option<&str>) -> Update {
    Update {
        prefix: Some(pfx(prefix)),
        v4_via_v6: false,
        interval_cs: 400,
        seqno,
        metric,
        router_id,
        next_hop: next_hop.map(ip),
        vector: None,
        unknown: Vec::new(),
    }
}

fn v4_via_v6(u: Update) -> Update {
    Update { v4_via_v6: true, ..u }
}

fn wildcard_retraction(seqno: u16, interval_cs: u16) -> Update {
    Update {
        prefix: None,
        v4_via_v6: false,
        interval_cs,
        seqno,
        metric: Update::INFINITY,
        router_id: RouterId::UNSPECIFIED,
        next_hop: None,
        vector: None,
        unknown: Vec::new(),
    }
}

fn hello(unicast: bool, seqno: u16, interval_cs: u16, timestamp_us: Option<u32>) -> Tlv {
    Tlv::Hello(Hello { unicast, seqno, interval_cs, timestamp_us, unknown: Vec::new() })
}

fn ihu(rxcost: u16, interval_cs: u16, address: Option<&str>, timestamps_us: Option<(u32, u32)>) -> Tlv {
    Tlv::Ihu(Ihu { rxcost, interval_cs, address: address.map(ip), timestamps_us, unknown: Vec::new() })
}
