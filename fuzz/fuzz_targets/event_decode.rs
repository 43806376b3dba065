//! The event decoder on arbitrary flash bytes (a record's version byte and payload): it must
//! not panic, and whatever it decodes (at any version it upcasts) must re-encode at the
//! current version to bytes that decode to the same event.

#![no_main]

use lastmile::events::codec::{decode, encode_to_vec, EVENT_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&version, payload)) = bytes.split_first() else { return };
    let Ok(event) = decode(version, payload) else { return };
    let again = encode_to_vec(&event);
    let redecoded = decode(EVENT_VERSION, &again).expect("what the encoder writes decodes");
    assert_eq!(redecoded, event, "re-encoded {again:02x?}");
});
