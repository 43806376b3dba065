//! The Babel decoder on arbitrary bytes: it must not panic, and whatever it decodes must
//! re-encode to a packet that decodes to the same values with nothing ignored.

#![no_main]

use lastmile::wire::babel::{decode, Encoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(decoded) = decode(bytes) else { return };
    // The encoder may need a few more bytes than the sender used (its compression is
    // greedy per address encoding), so a body near 65535 bytes may not fit: then there is
    // nothing to compare.
    let mut encoder = Encoder::new(usize::MAX);
    if !decoded.packet.tlvs.iter().all(|tlv| encoder.push(tlv)) {
        return;
    }
    let mut again = encoder.finish();
    again.extend_from_slice(&decoded.packet.trailer);
    let redecoded = decode(&again).expect("the encoder writes a valid header");
    assert_eq!(redecoded.ignored, vec![], "re-encoded {:02x?}", again);
    assert_eq!(redecoded.packet, decoded.packet, "re-encoded {:02x?}", again);
});
