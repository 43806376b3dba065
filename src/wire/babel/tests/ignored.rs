//! What the decoder refuses: packet errors, and TLVs it skips with a reason (or keeps with a
//! note), with the parser state they still set or forget.

use super::*;
use IgnoreReason::*;

const RID_A: &str = "060a 0000 020000fffe00000a";

/// The ignored entries of a packet with this body, as (offset, kind, reason).
fn ignored(body_hex: &str) -> (Vec<Tlv>, Vec<(usize, u8, IgnoreReason)>) {
    let d = decode(&packet(body_hex)).expect("valid header");
    (d.packet.tlvs, d.ignored.into_iter().map(|i| (i.offset, i.kind, i.reason)).collect())
}

#[test]
fn unusable_headers_are_errors() {
    // RFC 8966 §4.2
    assert_eq!(decode(&[]), Err(DecodeError::TooShort { len: 0 }));
    assert_eq!(decode(&[42, 2, 0]), Err(DecodeError::TooShort { len: 3 }));
    assert_eq!(decode(&[43, 2, 0, 0]), Err(DecodeError::BadMagic(43)));
    assert_eq!(decode(&[42, 1, 0, 0]), Err(DecodeError::BadVersion(1)));
    assert_eq!(decode(&[42, 2, 0, 5, 1, 2]), Err(DecodeError::BodyOverrun { body_len: 5, available: 2 }));
    assert_eq!(clean(&[42, 2, 0, 0]), Packet::default());
}

#[test]
fn a_tlv_past_the_end_of_the_body_ends_the_parse() {
    // The Hello says 6 bytes but the body has 2 after it; what came before is kept.
    let (tlvs, ign) = ignored("00 0406 0000");
    assert_eq!(tlvs, vec![Tlv::Pad1]);
    assert_eq!(ign, vec![(5, 4, Truncated)]);
    let (_, ign) = ignored("00 04");
    assert_eq!(ign, vec![(5, 4, Truncated)]);
}

#[test]
fn short_bodies_are_ignored() {
    for (body, kind) in
        [("0205 0000 1234 00", 2), ("0301 12", 3), ("0405 0000 0102 01", 4), ("0a02 02 00", 10)]
    {
        let (tlvs, ign) = ignored(body);
        assert_eq!((tlvs, ign), (vec![], vec![(4, kind, TooShort)]), "{body}");
    }
}

#[test]
fn wildcard_update_with_finite_metric_is_ignored() {
    // RFC 8966 §4.6.9
    assert_eq!(ignored("080a 00 00 00 00 0190 0001 0060").1, vec![(4, 8, WildcardWithFiniteMetric)]);
}

#[test]
fn announcement_before_any_router_id_is_ignored() {
    // RFC 8966 §4.6.9; a retraction needs none (see golden::retraction_and_wildcard_retraction).
    assert_eq!(ignored("080c 02 00 10 00 0190 0001 0060 2001").1, vec![(4, 8, NoRouterId)]);
}

#[test]
fn invalid_router_ids_are_ignored_and_leave_no_router_id() {
    // RFC 8966 §4.6.7: all zeros and all ones are not router-ids. The Update after the
    // all-ones one is not attributed to the valid router-id before it.
    let (tlvs, ign) = ignored(&format!(
        "{RID_A}
         060a 0000 ffffffffffffffff
         080c 02 00 10 00 0190 0001 0060 2001
         060a 0000 0000000000000000"
    ));
    assert_eq!(tlvs, vec![]);
    assert_eq!(ign, vec![(16, 6, InvalidRouterId), (28, 8, NoRouterId), (42, 6, InvalidRouterId)]);
    // Flag 0x40 on 0.0.0.0/0 derives the all-zeros router-id.
    assert_eq!(ignored("080a 01 40 00 00 0190 0001 0060").1, vec![(4, 8, InvalidRouterId)]);
    // A Seqno Request naming one.
    let (_, ign) = ignored("0a0e 01 00 0001 40 00 ffffffffffffffff");
    assert_eq!(ign, vec![(4, 10, InvalidRouterId)]);
}

#[test]
fn bad_prefixes_are_ignored() {
    // RFC 8966 §4.1.5, §4.6.9
    let cases = [
        ("080f 01 00 21 00 0190 0001 0060 c6336400 00", BadPrefixLength(33)),
        ("0813 02 00 81 00 0190 0001 0060 20010db80000000000", BadPrefixLength(129)),
        ("080b 02 00 08 02 0190 0001 0060 20", BadOmitted(2)),
        ("080b 02 00 40 04 0190 0001 0060 20", NoDefaultPrefix),
        ("080e 02 00 40 00 0190 0001 0060 20010db8", TooShort),
        ("0812 03 00 3f 00 0190 0001 0060 0000000000000001", BadPrefixLength(63)),
        ("0812 03 00 80 01 0190 0001 0060 0000000000000001", BadOmitted(1)),
        ("080a 00 00 08 00 ffff 0001 ffff", BadPrefixLength(8)),
        ("080a 07 00 00 00 0190 0001 0060", UnknownAddressEncoding(7)),
        ("0903 00 08 20", BadPrefixLength(8)),
        ("0903 09 08 20", UnknownAddressEncoding(9)),
        ("0a0e 00 00 0001 40 00 020000fffe00000a", BadAddressEncoding(0)),
    ];
    for (body, reason) in cases {
        let (tlvs, ign) = ignored(&format!("{RID_A} {body}"));
        assert_eq!(tlvs, vec![], "{body}");
        assert_eq!(ign.iter().map(|i| i.2).collect::<Vec<_>>(), vec![reason], "{body}");
    }
}

#[test]
fn v4_via_v6_is_not_an_address_and_does_not_share_the_ipv4_default_prefix() {
    // RFC 9229 §4: AE 4 only tags prefixes; here its Update omits bytes of the AE 1 default.
    let (_, ign) = ignored("0706 04 00 c0000201 050a 04 00 0060 012c c0000201");
    assert_eq!(ign, vec![(4, 7, BadAddressEncoding(4)), (12, 5, BadAddressEncoding(4))]);
    let (tlvs, ign) = ignored(&format!(
        "{RID_A}
         080e 01 80 19 00 0190 0007 0060 c6336400
         080b 04 80 19 03 0190 0007 0060 80"
    ));
    assert_eq!(tlvs.len(), 1);
    assert_eq!(ign, vec![(32, 8, NoDefaultPrefix)]);
}

#[test]
fn unknown_mandatory_sub_tlv_ignores_the_update_but_keeps_its_state() {
    // RFC 8966 §4.4: the Update is ignored, but its flags 0x80 and 0x40 still set the
    // default prefix and the router-id used by the next Update.
    let (tlvs, ign) = ignored(
        "081e 02 c0 80 00 0190 0007 0000 20010db8000000000000 00fffe00000a 8002 abcd
         080b 02 80 80 0f 0190 0007 0000 0b",
    );
    assert_eq!(ign, vec![(4, 8, UnknownMandatorySubTlv(0x80))]);
    assert_eq!(
        tlvs,
        vec![Tlv::Update(update("2001:db8::ff:fe00:b/128", 7, 0, rid("00:00:00:ff:fe:00:00:0a"), None))]
    );
    // A Router-Id or Next Hop TLV ignored this way still sets its state too.
    let (tlvs, ign) = ignored(
        "060e 0000 020000fffe00000a 8102 abcd
         0708 01 00 c0000201 8000
         080e 01 80 19 00 0190 0007 0060 c6336400",
    );
    assert_eq!(ign, vec![(4, 6, UnknownMandatorySubTlv(0x81)), (20, 7, UnknownMandatorySubTlv(0x80))]);
    assert_eq!(
        tlvs,
        vec![Tlv::Update(update(
            "198.51.100.0/25",
            7,
            96,
            rid("02:00:00:ff:fe:00:00:0a"),
            Some("192.0.2.1")
        ))]
    );
    // In a Hello (RFC 9079's source prefix, type 128, is mandatory and unknown here).
    assert_eq!(ignored("040a 0000 0001 0190 8002 0000").1, vec![(4, 4, UnknownMandatorySubTlv(0x80))]);
}

#[test]
fn sub_tlv_overrunning_its_tlv_ignores_the_tlv() {
    let (tlvs, ign) = ignored("040a 0000 0001 0190 0504 abcd");
    assert_eq!((tlvs, ign), (vec![], vec![(4, 4, SubTlvOverrun)]));
    assert_eq!(ignored("0407 0000 0001 0190 05").1, vec![(4, 4, SubTlvOverrun)]);
}

#[test]
fn malformed_update_forgets_the_state_it_meant_to_set() {
    // Flag 0x80 with a bad prefix: the next Update cannot compress against the previous
    // default. Flag 0x40 on an unreadable Update: no router-id any more.
    let (tlvs, ign) = ignored(&format!(
        "{RID_A}
         0812 02 80 40 00 0190 0007 0060 20010db800010001
         0812 02 80 c8 00 0190 0007 0060 20010db800010002
         080b 02 80 40 07 0190 0007 0060 03
         0804 02 40 40 00
         0812 02 00 40 00 0190 0007 0060 20010db800010004"
    ));
    assert_eq!(tlvs.len(), 1);
    assert_eq!(
        ign.iter().map(|i| i.2).collect::<Vec<_>>(),
        vec![BadPrefixLength(0xc8), NoDefaultPrefix, TooShort, NoRouterId]
    );
}

#[test]
fn malformed_next_hop_loses_the_next_hop_of_its_family() {
    // An IPv6 Next Hop cut short: IPv6 Updates are ignored until the next good one, IPv4
    // ones keep theirs.
    let (tlvs, ign) = ignored(&format!(
        "{RID_A}
         0706 02 00 20010db8
         0812 02 80 40 00 0190 0007 0060 20010db800010001
         080e 01 80 19 00 0190 0007 0060 c6336400
         070a 03 00 000000fffe00000b
         0812 02 80 40 00 0190 0007 0060 20010db800010001"
    ));
    assert_eq!(ign.iter().map(|i| i.2).collect::<Vec<_>>(), vec![TooShort, NoNextHop]);
    assert_eq!(
        tlvs,
        vec![
            Tlv::Update(update("198.51.100.0/25", 7, 96, rid("02:00:00:ff:fe:00:00:0a"), None)),
            Tlv::Update(update(
                "2001:db8:1:1::/64",
                7,
                96,
                rid("02:00:00:ff:fe:00:00:0a"),
                Some("fe80::ff:fe00:b")
            )),
        ]
    );
}

#[test]
fn seqno_request_with_hop_count_zero_is_ignored() {
    // RFC 8966 §4.6.11
    assert_eq!(ignored("0a0e 01 00 0001 00 00 020000fffe00000a").1, vec![(4, 10, HopCountZero)]);
}

#[test]
fn malformed_route_vector_leaves_the_route_unpriced() {
    // docs/babel-route-vector.md: non-mandatory, so the Update stays, without a vector.
    let (tlvs, ign) = ignored(&format!(
        "{RID_A}
         0814 02 80 30 00 0190 0007 0100 20010db80001 7402 dc0b"
    ));
    assert_eq!(ign, vec![(16, 8, MalformedRouteVector)]);
    assert!(ign.iter().all(|(_, _, r)| r.tlv_kept()));
    assert_eq!(
        tlvs,
        vec![Tlv::Update(update("2001:db8:1::/48", 7, 256, rid("02:00:00:ff:fe:00:00:0a"), None))]
    );
}

#[test]
fn short_or_repeated_timestamps_are_noted_and_the_tlv_kept() {
    // RFC 9616 §3: 4 bytes in a Hello, 8 in an IHU; the first of two is used.
    let (tlvs, ign) = ignored(
        "040a 0000 0001 0190 0302 0102
         0516 00 00 0060 012c 0308 0000000100000002 0304 00000003",
    );
    assert_eq!(tlvs, vec![hello(false, 1, 400, None), ihu(96, 300, None, Some((1, 2)))]);
    assert_eq!(ign, vec![(4, 4, MalformedTimestamp), (16, 5, DuplicateSubTlv(3))]);
}
