//! One golden per TLV and sub-TLV: the bytes decode to the values and the values encode to
//! the bytes. Bodies are written one TLV per line.

use super::*;

/// 02:00:00:ff:fe:00:00:0a, as a Router-Id TLV (RFC 8966 §4.6.7).
const RID_A: &str = "060a 0000 020000fffe00000a";

fn a() -> RouterId {
    rid("02:00:00:ff:fe:00:00:0a")
}

#[test]
fn pad1_and_padn() {
    // RFC 8966 §4.6.1, §4.6.2
    golden("00 0103 000000", vec![Tlv::Pad1, Tlv::PadN(3)]);
}

#[test]
fn acknowledgment_request_and_acknowledgment() {
    // RFC 8966 §4.6.3, §4.6.4
    golden(
        "0206 0000 1234 0064
         0302 1234",
        vec![Tlv::AckRequest { opaque: 0x1234, interval_cs: 100 }, Tlv::Ack { opaque: 0x1234 }],
    );
}

#[test]
fn hello_multicast_and_unicast_with_timestamp() {
    // RFC 8966 §4.6.5; RFC 9616 §3: the Timestamp sub-TLV (type 3) of a Hello holds 4 bytes.
    golden(
        "0406 0000 0102 0190
         040c 8000 0103 0000 0304 a1d994a1",
        vec![hello(false, 0x0102, 400, None), hello(true, 0x0103, 0, Some(0xa1d9_94a1))],
    );
}

#[test]
fn ihu_with_each_address_encoding_and_timestamps() {
    // RFC 8966 §4.6.6 with AE 0, 1, 2 and 3; RFC 9616 §3: origin then receive timestamp.
    golden(
        "0506 00 00 0060 012c
         050a 01 00 0060 012c c0000202
         0516 02 00 0100 012c 20010db8000000000000000000000001
         0518 03 00 0060 012c 000000fffe00000b 0308 a1d9ac21 a1d9c493",
        vec![
            ihu(96, 300, None, None),
            ihu(96, 300, Some("192.0.2.2"), None),
            ihu(256, 300, Some("2001:db8::1"), None),
            ihu(96, 300, Some("fe80::ff:fe00:b"), Some((0xa1d9_ac21, 0xa1d9_c493))),
        ],
    );
}

#[test]
fn router_id_then_compressed_ipv6_updates() {
    // RFC 8966 §4.6.9: every Update sets flag 0x80 and omits what it shares with the
    // previous one (7, 5 and 3 bytes here).
    golden(
        &format!(
            "{RID_A}
             0812 02 80 40 00 0190 0007 0100 20010db800010001
             080b 02 80 40 07 0190 0007 0100 02
             080b 02 80 30 05 0190 0007 0100 02
             080b 02 80 20 03 0190 0007 0100 b9"
        ),
        vec![
            Tlv::Update(update("2001:db8:1:1::/64", 7, 256, a(), None)),
            Tlv::Update(update("2001:db8:1:2::/64", 7, 256, a(), None)),
            Tlv::Update(update("2001:db8:2::/48", 7, 256, a(), None)),
            Tlv::Update(update("2001:db9::/32", 7, 256, a(), None)),
        ],
    );
}

#[test]
fn next_hops_ipv4_link_local_and_global() {
    // RFC 8966 §4.6.8: a Next Hop TLV sets the next hop of its family; AE 3 for fe80::/64.
    golden(
        &format!(
            "{RID_A}
             0706 01 00 c0000201
             080e 01 80 19 00 0190 0007 0060 c6336400
             080b 01 80 19 03 0190 0007 0060 80
             070a 03 00 000000fffe00000a
             0812 02 80 40 00 0190 0007 0060 20010db800010001
             0712 02 00 20010db8000000000000000000000001
             080b 02 80 40 07 0190 0007 0060 02"
        ),
        vec![
            Tlv::Update(update("198.51.100.0/25", 7, 96, a(), Some("192.0.2.1"))),
            Tlv::Update(update("198.51.100.128/25", 7, 96, a(), Some("192.0.2.1"))),
            Tlv::Update(update("2001:db8:1:1::/64", 7, 96, a(), Some("fe80::ff:fe00:a"))),
            Tlv::Update(update("2001:db8:1:2::/64", 7, 96, a(), Some("2001:db8::1"))),
        ],
    );
}

#[test]
fn v4_via_v6_updates_compress_apart_from_ipv4_ones() {
    // RFC 9229 §4: AE 4 carries an IPv4 prefix like AE 1, with the IPv6 next hop. Its
    // default prefix is its own: the second AE 4 Update compresses against the first AE 4
    // one, not against the AE 1 Update between them.
    golden(
        &format!(
            "{RID_A}
             080e 04 80 19 00 0190 0007 0060 c6336480
             080d 01 80 18 00 0190 0007 0060 cb0071
             080b 04 80 18 02 0190 0007 0060 65"
        ),
        vec![
            Tlv::Update(v4_via_v6(update("198.51.100.128/25", 7, 96, a(), None))),
            Tlv::Update(update("203.0.113.0/24", 7, 96, a(), None)),
            Tlv::Update(v4_via_v6(update("198.51.101.0/24", 7, 96, a(), None))),
        ],
    );
}

#[test]
fn router_id_flag_sets_the_router_id_for_what_follows() {
    // RFC 8966 §4.6.9: flag 0x40 takes the router-id from the low 8 bytes of the prefix and
    // keeps it for the next Updates; the second needs no Router-Id TLV.
    golden(
        "081a 02 c0 80 00 0190 0007 0000 20010db8000000000000 00fffe00000a
         080b 02 80 80 0f 0190 0007 0000 0b",
        vec![
            Tlv::Update(update("2001:db8::ff:fe00:a/128", 7, 0, rid("00:00:00:ff:fe:00:00:0a"), None)),
            Tlv::Update(update("2001:db8::ff:fe00:b/128", 7, 0, rid("00:00:00:ff:fe:00:00:0a"), None)),
        ],
    );
}

#[test]
fn retraction_and_wildcard_retraction() {
    // RFC 8966 §4.6.9: a retraction before any router-id is valid; a wildcard retraction has
    // AE 0, Plen 0 and metric infinity.
    let mut retraction = update("2001:db8:2::/48", 8, Update::INFINITY, RouterId::UNSPECIFIED, None);
    retraction.interval_cs = 0xffff;
    golden(
        "0810 02 80 30 00 ffff 0008 ffff 20010db80002
         080a 00 00 00 00 ffff 0009 ffff",
        vec![Tlv::Update(retraction), Tlv::Update(wildcard_retraction(9, 0xffff))],
    );
}

#[test]
fn update_with_route_vector_and_unknown_sub_tlv() {
    // docs/babel-route-vector.md: type 116, three LEB128 varints; then an unknown
    // non-mandatory sub-TLV (type 5), kept as it came.
    let mut u = update("2001:db8:1::/48", 7, 256, a(), None);
    u.vector = Some(RouteVector { price_per_byte: 1500, rtt_us: 12_000, loss_micro_nepers: 50_000 });
    u.unknown = vec![UnknownSubTlv { kind: 5, body: vec![0xab, 0xcd] }];
    golden(
        &format!(
            "{RID_A}
             081d 02 80 30 00 0190 0007 0100 20010db80001 7407 dc0b e05d d08603 0502 abcd"
        ),
        vec![Tlv::Update(u)],
    );
}

#[test]
fn route_requests_wildcard_and_prefixes() {
    // RFC 8966 §4.6.10
    golden(
        "0902 00 00
         0908 02 30 20010db80001
         0905 01 18 cb0071",
        vec![
            Tlv::RouteRequest(RouteRequest { prefix: None, unknown: vec![] }),
            Tlv::RouteRequest(RouteRequest { prefix: Some(pfx("2001:db8:1::/48")), unknown: vec![] }),
            Tlv::RouteRequest(RouteRequest { prefix: Some(pfx("203.0.113.0/24")), unknown: vec![] }),
        ],
    );
}

#[test]
fn seqno_request() {
    // RFC 8966 §4.6.11
    golden(
        "0a16 02 40 0102 40 00 020000fffe00000a 20010db800010001",
        vec![Tlv::SeqnoRequest(SeqnoRequest {
            prefix: pfx("2001:db8:1:1::/64"),
            seqno: 0x0102,
            hop_count: 64,
            router_id: a(),
            unknown: vec![],
        })],
    );
}

#[test]
fn unknown_tlv_is_kept_as_it_came() {
    // RFC 8966 §4.3: unknown TLVs are ignored by the protocol; the codec keeps them.
    golden("e003 010203", vec![Tlv::Unknown { kind: 0xe0, body: vec![1, 2, 3] }]);
}

#[test]
fn trailer_is_kept_raw() {
    // RFC 8966 §4.2: bytes after the body are the packet trailer.
    let mut bytes = packet("0406 0000 0102 0190");
    bytes.extend(hex("1004 deadbeef"));
    let p = Packet { tlvs: vec![hello(false, 0x0102, 400, None)], trailer: hex("1004 deadbeef") };
    assert_eq!(clean(&bytes), p);
    assert_eq!(encode(&p), bytes);
}

#[test]
fn forms_other_speakers_use_decode_to_the_same_values() {
    // Decode-only forms: AE 3 Update prefix (the bytes after fe80::/64, as babeld reads it),
    // AE 4 Route Request read as AE 1 (RFC 9229 §4), compression against a default prefix
    // older than the previous Update (BIRD), padding sub-TLVs, a non-zero reserved byte.
    let p = clean(&packet(&format!(
        "{RID_A}
         0712 02 2c 20010db8000000000000000000000001
         0812 03 00 80 00 0190 0007 0060 000000fffe00000b
         0810 02 80 30 00 0190 0007 0060 20010db80002
         0812 02 00 40 06 0190 0007 0060 0001 00 0103 000000
         080d 02 00 40 05 0190 0007 0060 030004
         0905 04 18 cb0071"
    )));
    assert_eq!(
        p.tlvs,
        vec![
            Tlv::Update(update("fe80::ff:fe00:b/128", 7, 96, a(), Some("2001:db8::1"))),
            Tlv::Update(update("2001:db8:2::/48", 7, 96, a(), Some("2001:db8::1"))),
            Tlv::Update(update("2001:db8:2:1::/64", 7, 96, a(), Some("2001:db8::1"))),
            Tlv::Update(update("2001:db8:3:4::/64", 7, 96, a(), Some("2001:db8::1"))),
            Tlv::RouteRequest(RouteRequest { prefix: Some(pfx("203.0.113.0/24")), unknown: vec![] }),
        ]
    );
    assert_round_trip(&p);
}

#[test]
fn encoder_splits_when_a_packet_cannot_say_the_sender_is_next_hop_again() {
    let with = update("2001:db8:1::/48", 1, 96, a(), Some("fe80::1"));
    let without = update("2001:db8:2::/48", 1, 96, a(), None);
    let mut enc = Encoder::new(1500);
    assert!(enc.push(&Tlv::Update(with)));
    let before = enc.len();
    assert!(!enc.push(&Tlv::Update(without.clone())));
    assert_eq!(enc.len(), before, "a refused TLV leaves the packet unchanged");
    let mut fresh = Encoder::new(1500);
    assert!(fresh.push(&Tlv::Update(without)));
}

#[test]
fn encoder_refuses_what_exceeds_its_budget_and_counts_the_header() {
    let mut enc = Encoder::new(4 + 10);
    assert!(enc.is_empty());
    assert_eq!(enc.len(), 4);
    assert!(enc.push(&Tlv::PadN(6)));
    assert!(!enc.push(&Tlv::Ack { opaque: 1 }), "4 more bytes would make 16");
    assert!(enc.push(&Tlv::Pad1));
    assert!(enc.push(&Tlv::Pad1));
    assert!(!enc.push(&Tlv::Pad1));
    assert_eq!(enc.len(), 14);
    assert_eq!(enc.finish(), hex("2a02 000a 0106 000000000000 00 00"));
}

#[test]
fn encoder_counts_the_router_id_and_next_hop_against_the_budget() {
    let u = Tlv::Update(update("2001:db8:1::/48", 1, 96, a(), Some("fe80::1")));
    // Router-Id 12 + Next Hop (AE 3) 12 + Update 18 bytes.
    assert!(!Encoder::new(4 + 41).push(&u));
    let mut enc = Encoder::new(4 + 42);
    assert!(enc.push(&u));
    assert_eq!(enc.len(), 46);
}
