//! docs/babel-route-vector.md's hex example is golden: it decodes to the documented values,
//! and encoding those values gives exactly those bytes.

use lastmile::wire::babel::{
    decode, encode, Packet, Prefix, RouteVector, RouterId, Tlv, Update, SUBTLV_ROUTE_VECTOR,
};

const DOC: &str = include_str!("../docs/babel-route-vector.md");

/// The bytes in the fenced block tagged `tag`.
fn block(tag: &str) -> Vec<u8> {
    let start = DOC.find(&format!("```{tag}\n")).unwrap_or_else(|| panic!("no {tag} block")) + tag.len() + 4;
    let end = start + DOC[start..].find("```").expect("closed block");
    DOC[start..end].split_whitespace().map(|h| u8::from_str_radix(h, 16).expect("hex")).collect()
}

fn documented() -> Packet {
    Packet {
        tlvs: vec![Tlv::Update(Update {
            prefix: Some(Prefix::new("2001:db8:1::".parse().expect("address"), 48).expect("prefix")),
            v4_via_v6: false,
            interval_cs: 400,
            seqno: 7,
            metric: 256,
            router_id: RouterId([0x02, 0, 0, 0xff, 0xfe, 0, 0, 0x0a]),
            next_hop: None,
            vector: Some(RouteVector { price_per_byte: 1500, rtt_us: 12_000, loss_micro_nepers: 50_000 }),
            unknown: vec![],
        })],
        trailer: vec![],
    }
}

#[test]
fn example_packet_decodes_to_the_documented_values() {
    let d = decode(&block("golden-route-vector-packet")).expect("valid packet");
    assert_eq!(d.ignored, vec![]);
    assert_eq!(d.packet, documented());
}

#[test]
fn documented_values_encode_to_the_example_packet() {
    assert_eq!(encode(&documented()), block("golden-route-vector-packet"));
}

#[test]
fn documented_type_is_the_codec_s() {
    assert!(DOC.contains(&format!("**{SUBTLV_ROUTE_VECTOR}**")));
    // Non-mandatory (RFC 8966 §4.4), in the experimental range 112–126 (RFC 8966 §6).
    const { assert!(SUBTLV_ROUTE_VECTOR >= 112 && SUBTLV_ROUTE_VECTOR <= 126) };
}
