//! Packets captured from babeld 1.12.1 and BIRD 2.0.12 talking over a veth pair between two
//! network namespaces (routes 2001:db8:1:{1,2,3}::/64, 2001:db8:2::/48, 198.51.100.0/25,
//! 198.51.100.128/25 and 203.0.113.0/24 redistributed by babeld, router-id
//! 02:00:00:ff:fe:00:00:0a, link addresses fe80::ff:fe00:a and :b, 192.0.2.1 and .2): they
//! decode to the values each speaker announced, and what our encoder makes of them decodes
//! to the same values.

use super::*;

/// babeld 1.12.1: an unscheduled Hello with a timestamp and two IHUs (AE 3) with timestamps.
const BABELD_HELLO_IHU: &str = "\
    2a020042040c0000984300000304a436d1bb05180300ffff012c000000fffe00000b0308a434d16ea434e11a05180300\
    0060012c000000fffe00000b0308a434fbb6a434fc3c";

/// babeld 1.12.1: Hello, wildcard retraction, Router-Id, four compressed IPv6 Updates, an IPv4 Next Hop,
/// three IPv4 Updates, wildcard Route Request.
const BABELD_UPDATES: &str = "\
    2a02009c040c0000984200640304a434e0fc080a00000000ffff5961ffff060a0000020000fffe00000a081202804000\
    01905961000020010db800010001080b0280400701905961000002080b0280400701905961000003080b028030050190\
    596100000207060100c0000201080e01001900019059610000c6336400080e01001900019059610000c6336480080d01\
    001800019059610000cb007109020000";

/// babeld 1.12.1 on a link without IPv4 addresses: the IPv4 routes go out with AE 4.
const BABELD_V4_VIA_V6: &str = "\
    2a020094040c00002cec00640304a61e01a9080a00000000ffffaa42ffff060a0000020000fffe00000a081202804000\
    0190aa42000020010db800010001080b028040070190aa42000002080b028040070190aa42000003080b028030050190\
    aa42000002080e040019000190aa420000c6336400080e040019000190aa420000c6336480080d040018000190aa4200\
    00cb007109020000";

/// BIRD 2.0.12: a Hello without sub-TLVs.
const BIRD_HELLO: &str = "\
    2a0200080406000000020064";

/// BIRD 2.0.12: an IHU (AE 3) sent unicast to babeld.
const BIRD_UNICAST_IHU: &str = "\
    2a020010050e03000060012c000000fffe00000a";

/// BIRD 2.0.12: Hello, wildcard retraction with a finite interval, Route Request, Router-Id, a Next Hop,
/// Updates (the second IPv6 one compressed without flag 0x80).
const BIRD_UPDATES: &str = "\
    2a02005d0406000000010064080a0000000001900001ffff09020000060a000000000000c000020207060100c0000202\
    080e01001900019000010000cb00718008120280400001900001000020010db8000b0001080b02004007019000010000\
    02";

/// BIRD 2.0.12 re-announcing routes of two originators: Router-Id TLVs alternate, a Next Hop whose
/// reserved byte is not zero, IPv6 Updates compressed against a default prefix set several Updates
/// earlier.
const BIRD_REANNOUNCE: &str = "\
    2a0200f8060a0000020000fffe00000a0706012cc0000202080e01001900019039e90060c6336400060a000000000000\
    c0000202080e01001900019000010000cb007180060a0000020000fffe00000a080e01001900019039e90060c6336480\
    080d01001800019039e90060cb0071081002803000019039e9006020010db80002060a000000000000c0000202080d02\
    0040050190000100000b0001060a0000020000fffe00000a080d02004005019039e90060010001080d02004005019039\
    e90060010003060a000000000000c0000202080d020040050190000100000b0002060a0000020000fffe00000a080d02\
    004005019039e90060010002";

/// BIRD 2.0.12: a Hello and seven Seqno Requests (AE 1 and 2, hop count 255).
const BIRD_SEQNO_REQUESTS: &str = "\
    2a0200a104060000001500640a16024039eaff00020000fffe00000a20010db8000100010a16024039eaff00020000ff\
    fe00000a20010db8000100020a16024039eaff00020000fffe00000a20010db8000100030a14023039eaff00020000ff\
    fe00000a20010db800020a12011939eaff00020000fffe00000ac63364000a12011939eaff00020000fffe00000ac633\
    64800a11011839eaff00020000fffe00000acb0071";

const BABELD: &str = "02:00:00:ff:fe:00:00:0a";
const BIRD: &str = "00:00:00:00:c0:00:02:02";

fn captured(hex_packet: &str) -> Packet {
    let p = clean(&hex(hex_packet));
    assert_round_trip(&p);
    p
}

fn route_request_any() -> Tlv {
    Tlv::RouteRequest(RouteRequest { prefix: None, unknown: vec![] })
}

#[test]
fn babeld_hello_and_ihus_with_timestamps() {
    assert_eq!(
        captured(BABELD_HELLO_IHU).tlvs,
        vec![
            hello(false, 0x9843, 0, Some(0xa436_d1bb)),
            ihu(0xffff, 300, Some("fe80::ff:fe00:b"), Some((0xa434_d16e, 0xa434_e11a))),
            ihu(96, 300, Some("fe80::ff:fe00:b"), Some((0xa434_fbb6, 0xa434_fc3c))),
        ]
    );
}

#[test]
fn babeld_compressed_updates_and_ipv4_next_hop() {
    let id = rid(BABELD);
    let v6 = |p| Tlv::Update(update(p, 0x5961, 0, id, None));
    let v4 = |p| Tlv::Update(update(p, 0x5961, 0, id, Some("192.0.2.1")));
    assert_eq!(
        captured(BABELD_UPDATES).tlvs,
        vec![
            hello(false, 0x9842, 100, Some(0xa434_e0fc)),
            Tlv::Update(wildcard_retraction(0x5961, 0xffff)),
            v6("2001:db8:1:1::/64"),
            v6("2001:db8:1:2::/64"),
            v6("2001:db8:1:3::/64"),
            v6("2001:db8:2::/48"),
            v4("198.51.100.0/25"),
            v4("198.51.100.128/25"),
            v4("203.0.113.0/24"),
            route_request_any(),
        ]
    );
}

#[test]
fn babeld_v4_via_v6_updates() {
    let id = rid(BABELD);
    let v6 = |p| Tlv::Update(update(p, 0xaa42, 0, id, None));
    let v4 = |p| Tlv::Update(v4_via_v6(update(p, 0xaa42, 0, id, None)));
    assert_eq!(
        captured(BABELD_V4_VIA_V6).tlvs,
        vec![
            hello(false, 0x2cec, 100, Some(0xa61e_01a9)),
            Tlv::Update(wildcard_retraction(0xaa42, 0xffff)),
            v6("2001:db8:1:1::/64"),
            v6("2001:db8:1:2::/64"),
            v6("2001:db8:1:3::/64"),
            v6("2001:db8:2::/48"),
            v4("198.51.100.0/25"),
            v4("198.51.100.128/25"),
            v4("203.0.113.0/24"),
            route_request_any(),
        ]
    );
}

#[test]
fn bird_hello_and_unicast_ihu() {
    assert_eq!(captured(BIRD_HELLO).tlvs, vec![hello(false, 2, 100, None)]);
    assert_eq!(captured(BIRD_UNICAST_IHU).tlvs, vec![ihu(96, 300, Some("fe80::ff:fe00:a"), None)]);
}

#[test]
fn bird_updates() {
    let id = rid(BIRD);
    assert_eq!(
        captured(BIRD_UPDATES).tlvs,
        vec![
            hello(false, 1, 100, None),
            Tlv::Update(wildcard_retraction(1, 400)),
            route_request_any(),
            Tlv::Update(update("203.0.113.128/25", 1, 0, id, Some("192.0.2.2"))),
            Tlv::Update(update("2001:db8:b:1::/64", 1, 0, id, None)),
            Tlv::Update(update("2001:db8:b:2::/64", 1, 0, id, None)),
        ]
    );
}

#[test]
fn bird_reannouncing_two_originators() {
    let (a, b) = (rid(BABELD), rid(BIRD));
    let theirs = |p| Tlv::Update(update(p, 0x39e9, 96, a, None));
    let ours = |p| Tlv::Update(update(p, 1, 0, b, None));
    let nh = |t: Tlv| match t {
        Tlv::Update(u) => Tlv::Update(Update { next_hop: Some(ip("192.0.2.2")), ..u }),
        t => t,
    };
    assert_eq!(
        captured(BIRD_REANNOUNCE).tlvs,
        vec![
            nh(theirs("198.51.100.0/25")),
            nh(ours("203.0.113.128/25")),
            nh(theirs("198.51.100.128/25")),
            nh(theirs("203.0.113.0/24")),
            theirs("2001:db8:2::/48"),
            ours("2001:db8:b:1::/64"),
            theirs("2001:db8:1:1::/64"),
            theirs("2001:db8:1:3::/64"),
            ours("2001:db8:b:2::/64"),
            theirs("2001:db8:1:2::/64"),
        ]
    );
}

#[test]
fn bird_seqno_requests() {
    let request = |p| {
        Tlv::SeqnoRequest(SeqnoRequest {
            prefix: pfx(p),
            seqno: 0x39ea,
            hop_count: 255,
            router_id: rid(BABELD),
            unknown: vec![],
        })
    };
    assert_eq!(
        captured(BIRD_SEQNO_REQUESTS).tlvs,
        vec![
            hello(false, 0x15, 100, None),
            request("2001:db8:1:1::/64"),
            request("2001:db8:1:2::/64"),
            request("2001:db8:1:3::/64"),
            request("2001:db8:2::/48"),
            request("198.51.100.0/25"),
            request("198.51.100.128/25"),
            request("203.0.113.0/24"),
        ]
    );
}
