//! lastmile's route-vector sub-TLV of the Update TLV (`docs/babel-route-vector.md`): three
//! unsigned LEB128 varints, `price_per_byte` (u64), `rtt_us` (u32), `loss_micro_nepers`
//! (u32); bytes after them are ignored (room for later fields).

use super::super::types::RouteVector;

/// The sub-TLV type: 116, in the range of experimental non-mandatory Babel sub-TLV types
/// (112–126, RFC 8966 §6), so that speakers without the extension skip it and keep the
/// route.
pub const SUBTLV_ROUTE_VECTOR: u8 = 116;

/// Longest LEB128 encodings of a u64 and a u32.
const MAX_VARINT_U64: usize = 10;
const MAX_VARINT_U32: usize = 5;

/// Appends the sub-TLV's body (without type and length).
pub(super) fn encode(v: &RouteVector, out: &mut Vec<u8>) {
    put_varint(out, v.price_per_byte);
    put_varint(out, u64::from(v.rtt_us));
    put_varint(out, u64::from(v.loss_micro_nepers));
}

/// The vector in a sub-TLV's body; `None` if a field is truncated, longer than its type's
/// longest encoding, or out of its type's range.
pub(super) fn decode(mut body: &[u8]) -> Option<RouteVector> {
    let price_per_byte = varint(&mut body, MAX_VARINT_U64)?;
    let rtt_us = u32::try_from(varint(&mut body, MAX_VARINT_U32)?).ok()?;
    let loss_micro_nepers = u32::try_from(varint(&mut body, MAX_VARINT_U32)?).ok()?;
    Some(RouteVector { price_per_byte, rtt_us, loss_micro_nepers })
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one unsigned LEB128 of at most `max_len` bytes from the front of `bytes`.
fn varint(bytes: &mut &[u8], max_len: usize) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(max_len).enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        // The 10th byte of a u64 holds its top bit only.
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: RouteVector) -> Option<RouteVector> {
        let mut body = Vec::new();
        encode(&v, &mut body);
        decode(&body)
    }

    #[test]
    fn extremes_round_trip_in_the_shortest_form() {
        for v in [
            RouteVector::default(),
            RouteVector { price_per_byte: u64::MAX, rtt_us: u32::MAX, loss_micro_nepers: u32::MAX },
            RouteVector { price_per_byte: 127, rtt_us: 128, loss_micro_nepers: 16_383 },
        ] {
            assert_eq!(roundtrip(v), Some(v));
        }
        let mut body = Vec::new();
        encode(&RouteVector { price_per_byte: u64::MAX, rtt_us: u32::MAX, loss_micro_nepers: 0 }, &mut body);
        assert_eq!(body.len(), 10 + 5 + 1);
    }

    #[test]
    fn truncated_overlong_and_out_of_range_fields_are_malformed() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x01, 0x02]), None, "third field missing");
        assert_eq!(decode(&[0x80]), None, "varint cut inside");
        // u64 whose 10th byte carries more than the top bit.
        let mut over = vec![0xff; 9];
        over.extend([0x02, 0, 0]);
        assert_eq!(decode(&over), None);
        // rtt_us = 2^32.
        assert_eq!(decode(&[0, 0x80, 0x80, 0x80, 0x80, 0x10, 0]), None);
        // rtt_us encoded in 6 bytes (value 0): longer than any u32 needs.
        assert_eq!(decode(&[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0]), None);
    }

    #[test]
    fn bytes_after_the_three_fields_are_ignored() {
        let v = RouteVector { price_per_byte: 1, rtt_us: 2, loss_micro_nepers: 3 };
        assert_eq!(decode(&[1, 2, 3, 0xff, 0xff, 0xff]), Some(v));
    }
}
