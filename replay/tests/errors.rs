//! Every refusal has its own exit code and a one-line message on stderr that says what is
//! wrong (crate docs, "Exit codes").

mod common;

use std::fs;

use common::*;
use lastmile::events::codec::{encode_to_vec, EVENT_VERSION};

fn assert_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.starts_with("replay: "), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(run.stderr.contains(needle), "{:?} not in {}", needle, run.stderr);
}

#[test]
fn a_missing_directory_cannot_be_read_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for cmd in ["check", "state", "trace"] {
        let run = replay_in(&missing, cmd, &[]);
        assert_error(&run, 2, &format!("cannot read {}: no such directory", missing.display()));
    }
    assert!(!missing.exists());
}

#[test]
fn a_file_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("log");
    fs::write(&file, b"hello").unwrap();
    let run = replay_in(&file, "check", &[]);
    assert_error(&run, 2, "not a directory");
}

#[test]
fn a_directory_without_segments_or_snapshots_is_not_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert_error(&run, 2, "is not a lastmile data directory");
    fs::write(tmp.path().join("notes.txt"), b"shopping list").unwrap();
    let run = replay_in(tmp.path(), "state", &[]);
    assert_error(&run, 2, "is not a lastmile data directory: no log segment and no snapshots.redb");
}

#[test]
fn a_file_named_like_a_segment_without_the_magic_is_foreign() {
    // Alone, shorter than a header: not mistaken for a torn tail.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(segment_path(tmp.path(), 1), b"not ours").unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert_error(&run, 3, "not a lastmile log segment: seg-0000000000000001.log");

    // After a valid log, longer than a header.
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(segment_path(tmp.path(), 0xff), [b'x'; 64]).unwrap();
    for cmd in ["check", "state", "trace"] {
        let run = replay_in(tmp.path(), cmd, &[]);
        assert_error(&run, 3, "not a lastmile log segment: seg-00000000000000ff.log");
    }
}

#[test]
fn a_corrupt_frame_with_valid_frames_after_it_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open_log(tmp.path());
    for i in 1..=10 {
        log.append(EVENT_VERSION, &encode_to_vec(&event(i)), 0, false).unwrap();
    }
    log.flush().unwrap();
    drop(log);
    let seg = segment_path(tmp.path(), 1);
    let mut bytes = fs::read(&seg).unwrap();
    let at = frame_offset(&bytes, 1) + 8; // first payload byte of record 2
    bytes[at] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();

    let run = replay_in(tmp.path(), "check", &[]);
    assert_error(&run, 3, "damaged log: record 2 in seg-0000000000000001.log at offset");
    assert!(run.stderr.contains("CRC mismatch, 1 record(s) lost"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "recovery would quarantine 17 byte(s), record 1 seq(s) as holes, keep all 9 intact record(s)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("DAMAGED: recovery would quarantine 17 byte(s)"), "{}", run.stdout);
    for cmd in ["state", "trace"] {
        assert_error(&replay_in(tmp.path(), cmd, &[]), 3, "damaged log: record 2");
    }
}

#[test]
fn a_newer_event_version_asks_for_an_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open_store(tmp.path(), true);
    for i in 1..=3 {
        append(&mut store, &event(i));
    }
    let payload = encode_to_vec(&event(4));
    store.append(EVENT_VERSION + 1, &payload, 0, false).unwrap();
    store.flush().unwrap();
    drop(store);
    let expected = format!(
        "record 4: event version {} is newer than this build supports ({EVENT_VERSION}); upgrade lastmile",
        EVENT_VERSION + 1
    );
    for cmd in ["check", "state", "trace"] {
        assert_error(&replay_in(tmp.path(), cmd, &[]), 4, &expected);
    }
    // Before it, the log is readable.
    let run = replay_in(tmp.path(), "state", &["--at", "3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = replay_in(tmp.path(), "trace", &["--to", "3"]);
    assert_eq!((run.code, run.stdout.lines().count()), (0, 3), "{}", run.stderr);
}

#[test]
fn an_undecodable_payload_names_its_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open_store(tmp.path(), true);
    append(&mut store, &event(1));
    // Kind 0x63 does not exist.
    store.append(EVENT_VERSION, &[0x63, 0x90], 0, false).unwrap();
    append(&mut store, &event(3));
    store.flush().unwrap();
    drop(store);
    let expected = format!("record 2 (version {EVENT_VERSION}) cannot be decoded: unknown event kind 99");
    for cmd in ["check", "state", "trace"] {
        assert_error(&replay_in(tmp.path(), cmd, &[]), 4, &expected);
    }
    // The trace shows the records before it.
    let run = replay_in(tmp.path(), "trace", &[]);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let run = replay_in(tmp.path(), "check", &[]);
    assert!(run.stdout.contains("undecodable records: 1"), "{}", run.stdout);
}

#[test]
fn seqs_outside_the_log_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), false);
    assert_error(
        &replay_in(tmp.path(), "state", &["--at", "21"]),
        5,
        "--at 21 is past the last record (seq 20)",
    );
    // The snapshot at 12 let compaction drop the first segments.
    let first = first_segment_base(tmp.path());
    assert!((2..=13).contains(&first), "{first}");
    assert_error(
        &replay_in(tmp.path(), "state", &["--at", "1"]),
        5,
        &format!("seq 1 cannot be rebuilt: it is before the log's first retained record (seq {first})"),
    );
    assert_error(
        &replay_in(tmp.path(), "state", &["--from-start"]),
        5,
        "--from-start needs the log from seq 1",
    );
    assert_error(
        &replay_in(tmp.path(), "trace", &["--from", "1"]),
        5,
        &format!("--from 1 is before the log's first retained record (seq {first})"),
    );
    assert_error(
        &replay_in(tmp.path(), "trace", &["--to", "99"]),
        5,
        "--to 99 is past the last record (seq 20)",
    );
    assert_error(
        &replay_in(tmp.path(), "trace", &["--from", "15", "--to", "14"]),
        5,
        "--from 15 is after --to 14",
    );
}

#[test]
fn usage_errors_stay_clap_s() {
    let run = replay(&["state"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage"), "{}", run.stderr);
}

#[test]
fn an_unreadable_snapshot_database_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(tmp.path().join("snapshots.redb"), [0x5Au8; 4096]).unwrap();
    for cmd in ["check", "state"] {
        assert_error(&replay_in(tmp.path(), cmd, &[]), 3, "damaged snapshot database: ");
    }
    // The log alone is still evidence.
    let run = replay_in(tmp.path(), "check", &[]);
    assert!(run.stdout.contains("records: 20 (seq 1..=20)"), "{}", run.stdout);
    let run = replay_in(tmp.path(), "trace", &[]);
    assert_eq!((run.code, run.stdout.lines().count()), (0, 20), "{}", run.stderr);
    let run = replay_in(tmp.path(), "state", &["--from-start", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_seq_gap_between_segments_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(segment_path(tmp.path(), 100), flash_layout::segment::encode_header(100)).unwrap();
    assert_error(
        &replay_in(tmp.path(), "check", &[]),
        3,
        "damaged log: seg-0000000000000064.log starts at seq 100 but seq 21 was expected (segment files \
         missing after seg-0000000000000010.log): seqs 21..=99 are gone; recovery would record 79 seq(s) \
         as holes, keep all 20 intact record(s)",
    );
}

#[test]
fn a_snapshot_that_disagrees_with_the_log_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open_store(tmp.path(), true);
    for i in 1..=6 {
        append(&mut store, &event(i));
    }
    // The state of a different history.
    store.snapshot(4, &fold((2..=5).map(event)).encode_snapshot()).unwrap();
    drop(store);
    let run = replay_in(tmp.path(), "check", &[]);
    assert_error(
        &run,
        3,
        "the snapshot at seq 4 differs from the fold of records 1..=4: the log or the snapshot was altered",
    );
    assert!(run.stdout.contains("DIFFERS from the fold of the log"), "{}", run.stdout);
}
