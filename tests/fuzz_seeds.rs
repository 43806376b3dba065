//! The event fuzzer's seeds (`fuzz/seeds/event_decode/`, a version byte then a payload: the
//! codec's goldens) stay valid and cover every event kind in the codec's tables, so a new kind
//! gets a seed; and the discovery fuzzer's seeds are messages of every type. (The seeds live
//! outside the pure layers, which read no files.)

use lastmile::events::codec::{decode, encode_to_vec, kinds, EVENT_VERSION};
use std::collections::BTreeSet;

#[test]
fn every_kind_has_a_valid_event_seed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/event_decode");
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the seeds directory") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (&version, payload) = bytes.split_first().expect("a version byte");
        assert_eq!(version, EVENT_VERSION, "{}", path.display());
        let event = decode(version, payload).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(encode_to_vec(&event), payload, "{}: the seed is exactly an encoding", path.display());
        covered.insert(event.kind_name());
    }
    let all: BTreeSet<&str> = kinds().map(|(_, name)| name).collect();
    assert_eq!(covered, all, "every kind has a seed (write a golden's bytes, version byte first)");
}

/// The discovery fuzzer's seeds (`fuzz/seeds/discovery_decode/`: one real exchange between
/// two machines) decode, and cover every message type.
#[test]
fn discovery_seeds_are_valid_messages_of_every_type() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/discovery_decode");
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the seeds directory") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let r =
            lastmile::wire::discovery::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        covered.insert(r.message.kind());
    }
    assert_eq!(covered, BTreeSet::from(["announce", "offer", "accept"]));
}
