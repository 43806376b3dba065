//! Properties: valid packets survive encode then decode; arbitrary bytes never panic the
//! decoder and what it returns re-encodes to the same values; the encoder keeps to its
//! budget, and a stream of TLVs split into packets decodes back to the same stream.

use super::*;
use core::net::{Ipv4Addr, Ipv6Addr};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const ROUTER_IDS: [&str; 3] =
    ["02:00:00:ff:fe:00:00:0a", "02:00:00:ff:fe:00:00:0b", "00:00:00:00:c0:00:02:02"];
const NEXT_HOPS_V4: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const NEXT_HOPS_V6: [&str; 4] = ["fe80::1", "fe80::ff:fe00:a", "2001:db8::1", "fe80:0:0:1::1"];
/// Bases that share leading bytes, so that compression has something to omit.
const BASES_V6: [&str; 4] = ["2001:db8::", "2001:db8:1::", "2001:db8:1:2::", "fd00::"];

/// A packet of valid values (see the contracts of [`Update`] and [`Encoder`]).
#[derive(Clone, Debug)]
struct Valid(Packet);

fn pick<T: Copy>(g: &mut Gen, items: &[T]) -> T {
    *g.choose(items).expect("non-empty")
}

fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n
}

fn bytes(g: &mut Gen, max: usize) -> Vec<u8> {
    (0..below(g, max + 1)).map(|_| u8::arbitrary(g)).collect()
}

fn prefix(g: &mut Gen) -> Prefix {
    if bool::arbitrary(g) {
        let len = (below(g, 33)) as u8;
        Prefix::new(IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g))), len).expect("len ≤ 32")
    } else {
        let base: Ipv6Addr = pick(g, &BASES_V6).parse().expect("base");
        let low = if bool::arbitrary(g) { u128::from(u16::arbitrary(g)) } else { u128::arbitrary(g) >> 64 };
        let len = if bool::arbitrary(g) { pick(g, &[48, 56, 64, 128]) } else { below(g, 129) as u8 };
        Prefix::new(IpAddr::V6(Ipv6Addr::from(u128::from(base) | low)), len).expect("len ≤ 128")
    }
}

fn unknown_sub_tlvs(g: &mut Gen) -> Vec<UnknownSubTlv> {
    (0..below(g, 3))
        .map(|_| {
            // Non-mandatory, neither padding nor a type the codec interprets.
            let kind = loop {
                let k = 2 + u8::arbitrary(g) % 126;
                if k != 3 && k != SUBTLV_ROUTE_VECTOR {
                    break k;
                }
            };
            UnknownSubTlv { kind, body: bytes(g, 6) }
        })
        .collect()
}

fn vector(g: &mut Gen) -> Option<RouteVector> {
    bool::arbitrary(g).then(|| RouteVector {
        price_per_byte: u64::arbitrary(g),
        rtt_us: u32::arbitrary(g),
        loss_micro_nepers: u32::arbitrary(g),
    })
}

fn update_tlv(g: &mut Gen) -> Update {
    if below(g, 8) == 0 {
        return Update {
            vector: vector(g),
            unknown: unknown_sub_tlvs(g),
            ..wildcard_retraction(u16::arbitrary(g), u16::arbitrary(g))
        };
    }
    let prefix = prefix(g);
    let v4_via_v6 = prefix.is_ipv4() && bool::arbitrary(g);
    let retraction = below(g, 4) == 0;
    let own = RouterId::from_prefix(&prefix);
    let router_id = match below(g, 4) {
        0 if own.is_valid() => own,
        1 if retraction => RouterId::UNSPECIFIED,
        _ => rid(pick(g, &ROUTER_IDS)),
    };
    let next_hop = match (below(g, 3), prefix.is_ipv4() && !v4_via_v6) {
        (0, _) => None,
        (_, true) => Some(ip(pick(g, &NEXT_HOPS_V4))),
        (_, false) => Some(ip(pick(g, &NEXT_HOPS_V6))),
    };
    Update {
        prefix: Some(prefix),
        v4_via_v6,
        interval_cs: u16::arbitrary(g),
        seqno: u16::arbitrary(g),
        metric: if retraction { Update::INFINITY } else { u16::arbitrary(g) % Update::INFINITY },
        router_id,
        next_hop,
        vector: vector(g),
        unknown: unknown_sub_tlvs(g),
    }
}

fn address(g: &mut Gen) -> Option<IpAddr> {
    match below(g, 4) {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g)))),
        2 => Some(IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g)))),
        _ => Some(IpAddr::V6(Ipv6Addr::from((0xfe80_u128 << 112) | u128::from(u64::arbitrary(g))))),
    }
}

fn tlv(g: &mut Gen) -> Tlv {
    match below(g, 12) {
        0 => Tlv::Pad1,
        1 => Tlv::PadN(u8::arbitrary(g)),
        2 => Tlv::AckRequest { opaque: u16::arbitrary(g), interval_cs: u16::arbitrary(g) },
        3 => Tlv::Ack { opaque: u16::arbitrary(g) },
        4 => Tlv::Hello(Hello {
            unicast: bool::arbitrary(g),
            seqno: u16::arbitrary(g),
            interval_cs: u16::arbitrary(g),
            timestamp_us: Option::arbitrary(g),
            unknown: unknown_sub_tlvs(g),
        }),
        5 => Tlv::Ihu(Ihu {
            rxcost: u16::arbitrary(g),
            interval_cs: u16::arbitrary(g),
            address: address(g),
            timestamps_us: Option::arbitrary(g),
            unknown: unknown_sub_tlvs(g),
        }),
        6 => Tlv::RouteRequest(RouteRequest {
            prefix: bool::arbitrary(g).then(|| prefix(g)),
            unknown: unknown_sub_tlvs(g),
        }),
        7 => Tlv::SeqnoRequest(SeqnoRequest {
            prefix: prefix(g),
            seqno: u16::arbitrary(g),
            hop_count: u8::arbitrary(g).max(1),
            router_id: rid(pick(g, &ROUTER_IDS)),
            unknown: unknown_sub_tlvs(g),
        }),
        8 => Tlv::Unknown { kind: u8::arbitrary(g).max(11), body: bytes(g, 12) },
        _ => Tlv::Update(update_tlv(g)),
    }
}

/// Makes a list of TLVs expressible in one packet, as a decoder would have resolved it: a
/// retraction without router-id only before any router-id, the sender as next hop only
/// before any Next Hop of the family.
fn resolve(tlvs: &mut [Tlv]) {
    let (mut router_id, mut v4, mut v6) = (false, None, None);
    for t in tlvs {
        let Tlv::Update(u) = t else { continue };
        let Some(prefix) = u.prefix else { continue };
        if u.router_id == RouterId::UNSPECIFIED && router_id {
            u.router_id = rid(ROUTER_IDS[0]);
        }
        router_id |= u.router_id.is_valid();
        let slot = if prefix.is_ipv4() && !u.v4_via_v6 { &mut v4 } else { &mut v6 };
        match u.next_hop {
            None => u.next_hop = *slot,
            Some(a) => *slot = Some(a),
        }
    }
}

impl Arbitrary for Valid {
    fn arbitrary(g: &mut Gen) -> Valid {
        let mut tlvs: Vec<Tlv> = (0..below(g, 24)).map(|_| tlv(g)).collect();
        resolve(&mut tlvs);
        Valid(Packet { tlvs, trailer: bytes(g, 8) })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Valid>> {
        let p = self.0.clone();
        Box::new((0..p.tlvs.len()).rev().map(move |i| {
            let mut tlvs = p.tlvs.clone();
            tlvs.remove(i);
            resolve(&mut tlvs);
            Valid(Packet { tlvs, trailer: p.trailer.clone() })
        }))
    }
}

fn check<A: quickcheck::Testable>(tests: u64, property: A) {
    QuickCheck::new().tests(tests).max_tests(tests * 10).quickcheck(property);
}

#[test]
fn valid_packets_decode_to_what_was_encoded() {
    fn property(p: Valid) -> bool {
        let d = decode(&encode(&p.0)).expect("valid header");
        d.ignored.is_empty() && d.packet == p.0
    }
    check(3000, property as fn(Valid) -> bool);
}

#[test]
fn arbitrary_bodies_never_panic_and_re_encode_to_the_same_values() {
    fn property(body: Vec<u8>, trailer: Vec<u8>) -> bool {
        let Ok(len) = u16::try_from(body.len()) else { return true };
        let mut bytes = vec![MAGIC, VERSION];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(body);
        bytes.extend(trailer);
        let d = decode(&bytes).expect("valid header");
        let again = decode(&encode(&d.packet)).expect("valid header");
        again.ignored.is_empty() && again.packet == d.packet
    }
    check(5000, property as fn(Vec<u8>, Vec<u8>) -> bool);
}

#[test]
fn arbitrary_bytes_never_panic() {
    fn property(bytes: Vec<u8>) -> bool {
        let _ = decode(&bytes);
        true
    }
    check(2000, property as fn(Vec<u8>) -> bool);
}

#[test]
fn mutated_valid_packets_never_panic_and_re_encode_to_the_same_values() {
    // Flipping bytes of real-looking packets reaches far more branches than random bodies.
    fn property(p: Valid, flips: Vec<(u16, u8)>) -> bool {
        let mut bytes = encode(&p.0);
        for (at, value) in flips {
            let i = 4 + usize::from(at) % bytes.len().saturating_sub(4).max(1);
            if let Some(b) = bytes.get_mut(i) {
                *b = value;
            }
        }
        let Ok(d) = decode(&bytes) else { return true };
        let again = decode(&encode(&d.packet)).expect("valid header");
        again.ignored.is_empty() && again.packet == d.packet
    }
    check(5000, property as fn(Valid, Vec<(u16, u8)>) -> bool);
}

#[test]
fn split_packets_keep_to_the_budget_and_decode_to_the_stream() {
    fn property(p: Valid, budget: u16) -> bool {
        let max_len = 4 + usize::from(budget % 300);
        let (mut packets, mut sent) = (Vec::new(), Vec::new());
        let mut enc = Encoder::new(max_len);
        for tlv in &p.0.tlvs {
            if !enc.push(tlv) {
                let full = core::mem::replace(&mut enc, Encoder::new(max_len));
                if !full.is_empty() {
                    packets.push(full.finish());
                }
                if !enc.push(tlv) {
                    continue; // too large for any packet of this budget
                }
            }
            sent.push(tlv.clone());
        }
        let len = enc.len();
        let last = enc.finish();
        if last.len() != len {
            return false;
        }
        packets.push(last);
        let mut received = Vec::new();
        for bytes in &packets {
            if bytes.len() > max_len {
                return false;
            }
            let d = decode(bytes).expect("valid header");
            if !d.ignored.is_empty() {
                return false;
            }
            received.extend(d.packet.tlvs);
        }
        received == sent
    }
    check(3000, property as fn(Valid, u16) -> bool);
}
