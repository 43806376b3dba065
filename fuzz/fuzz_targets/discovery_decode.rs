//! Discovery datagrams on arbitrary bytes: the decoder must not panic, whatever it decodes
//! must re-encode to exactly the same bytes, and a discovery machine handed the bytes must
//! neither panic nor agree to anything (no one here holds the keys to sign for).

#![no_main]

use lastmile::events::discovery::{DiscoveryEffect, DiscoveryInput};
use lastmile::events::tunnel::{DiscoveryReport, Via};
use lastmile::events::{Machine, Stamp};
use lastmile::machines::discovery::{DiscoveryMachine, DiscoverySettings, Keys};
use lastmile::wire::discovery::{assemble, body, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(r) = decode(bytes) {
        let again = assemble(&body(&r.message), r.mac.map(|(_, m)| m).as_ref(), &r.signature);
        assert_eq!(again, bytes);
    }
    let via = Via::Link("fuzz0".into());
    let settings = DiscoverySettings { vias: vec![via.clone()], ..DiscoverySettings::default() };
    let keys = Keys::from_secrets(&[1; 32], [2; 32]).expect("key");
    let now = Stamp::new(1, 0);
    let mut m = DiscoveryMachine::new(settings, keys, 1, [3; 32], now);
    let from = "[fe80::1%1]:6698".parse().expect("address");
    m.handle(now, DiscoveryInput::Packet { via, from, bytes: bytes.to_vec() });
    while let Some(e) = m.poll_effect() {
        assert!(!matches!(e.action, DiscoveryEffect::Report(DiscoveryReport::Agreed { .. })));
    }
});
