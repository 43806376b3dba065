//! check, state and trace on healthy logs (snapshot + tail, torn tail), and the promise that
//! none of them changes a byte of the directory.

mod common;

use std::fs;

use common::*;
use lastmile::events::codec::EVENT_VERSION;
use lastmile::events::Event;
use lastmile::machines::NodeState;
use serde_json::Value;

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

fn state_of(v: &Value) -> NodeState {
    serde_json::from_value(v["state"].clone()).unwrap()
}

#[test]
fn check_reports_counts_snapshots_and_a_clean_end() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(tmp.path().join("README"), b"not ours").unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "records: 20 (seq 1..=20)",
        &format!("versions: v{EVENT_VERSION}: 20"),
        "incident.closed: 1, incident.opened: 2, usage.accrued: 16, usage.counter_reset: 1",
        "snapshots: seq 12 (newest readable: seq 12; matches the fold of the log)",
        "foreign files (ignored): README",
        "damage: none",
        "the node would start: next record #21",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }

    let v = json(&replay_in(tmp.path(), "check", &["--json"]));
    assert_eq!(v["records"], 20);
    assert_eq!((v["first_seq"].as_u64(), v["last_seq"].as_u64()), (Some(1), Some(20)));
    assert_eq!(v["versions"][EVENT_VERSION.to_string()], 20);
    assert_eq!(v["kinds"]["usage.counter_reset"], 1);
    assert_eq!(v["snapshots"]["seqs"], serde_json::json!([12]));
    assert_eq!(v["snapshots"]["matches_log"], true);
    assert_eq!(v["foreign"], serde_json::json!(["README"]));
    assert_eq!(v["damage"], serde_json::json!([]));
    assert_eq!((v["verdict"].as_str(), v["next_seq"].as_u64()), (Some("starts"), Some(21)));
    let segments = v["segments"].as_array().unwrap();
    assert!(segments.len() > 2, "{segments:?}");
    let total: u64 = segments.iter().map(|s| s["records"].as_u64().unwrap()).sum();
    assert_eq!(total, 20);
}

#[test]
fn state_is_the_snapshot_plus_the_tail_and_equals_the_fold_from_seq_1() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    let all = fold((1..=20).map(event));

    let v = json(&replay_in(tmp.path(), "state", &["--json"]));
    assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].as_u64()), (Some(20), Some(12)));
    assert_eq!(state_of(&v), all);

    let v = json(&replay_in(tmp.path(), "state", &["--json", "--from-start"]));
    assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].clone()), (Some(20), Value::Null));
    assert_eq!(state_of(&v), all);

    // --at before the snapshot folds from seq 1; at or after it starts from the snapshot.
    let v = json(&replay_in(tmp.path(), "state", &["--json", "--at", "5"]));
    assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].clone()), (Some(5), Value::Null));
    assert_eq!(state_of(&v), fold((1..=5).map(event)));
    let v = json(&replay_in(tmp.path(), "state", &["--json", "--at", "15"]));
    assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].as_u64()), (Some(15), Some(12)));
    assert_eq!(state_of(&v), fold((1..=15).map(event)));
    let v = json(&replay_in(tmp.path(), "state", &["--json", "--at", "0"]));
    assert_eq!(state_of(&v), NodeState::default());

    let run = replay_in(tmp.path(), "state", &["--at", "16"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = fold((1..=16).map(event));
    let l1 = &s.usage.links[&lastmile::events::usage::Link::new(1, 101)];
    for line in [
        "state at seq 16: snapshot at seq 12 + 4 record(s) replayed".to_string(),
        format!(
            "  n1/d101: tx {} B, rx {} B in {} record(s), 1 reset(s)",
            l1.tx_total, l1.rx_total, l1.records
        ),
        "usage: 3 link(s)".to_string(),
        "incidents: 0 open; 1 opened in total".to_string(),
    ] {
        assert!(run.stdout.contains(&line), "{line:?} not in\n{}", run.stdout);
    }
    let run = replay_in(tmp.path(), "state", &[]);
    assert!(
        run.stdout.contains("incidents: 1 open: log-write-failed (detail 5); 2 opened in total"),
        "{}",
        run.stdout
    );
}

#[test]
fn state_after_compaction_uses_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), false);
    assert!(first_segment_base(tmp.path()) > 1);
    let v = json(&replay_in(tmp.path(), "state", &["--json", "--at", "13"]));
    assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].as_u64()), (Some(13), Some(12)));
    assert_eq!(state_of(&v), fold((1..=13).map(event)));
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The log no longer holds seq 1: the snapshot cannot be compared with it.
    assert!(run.stdout.contains("snapshots: seq 12 (newest readable: seq 12)\n"), "{}", run.stdout);
}

/// With two snapshots kept and the log compacted past seq 1, a seq between them is rebuilt
/// from the older one.
#[test]
fn state_between_two_snapshots_starts_from_the_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    with_two_snapshots(tmp.path(), false);
    let first = first_segment_base(tmp.path());
    assert!((2..=13).contains(&first), "{first}");
    for (at, snapshot) in [(12u64, 12u64), (13, 12), (15, 12), (17, 12), (18, 18), (20, 18)] {
        let v = json(&replay_in(tmp.path(), "state", &["--json", "--at", &at.to_string()]));
        assert_eq!((v["seq"].as_u64(), v["snapshot_seq"].as_u64()), (Some(at), Some(snapshot)));
        assert_eq!(state_of(&v), fold((1..=at).map(event)));
    }
    let run = replay_in(tmp.path(), "state", &["--at", "15"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("state at seq 15: snapshot at seq 12 + 3 record(s) replayed\n"),
        "{}",
        run.stdout
    );
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("snapshots: seq 12, seq 18 (newest readable: seq 18)\n"), "{}", run.stdout);
}

#[test]
fn trace_prints_one_line_per_record_in_range() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    let run = replay_in(tmp.path(), "trace", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 20);
    // The event's own text (`Display`, lastmile's vocabulary) after seq, version and kind.
    for (line, seq) in lines.iter().zip(1u64..) {
        let e = common::event(seq);
        assert_eq!(*line, format!("#{seq} v{EVENT_VERSION} {} {e}", e.kind_name()));
    }
    assert!(lines[6].contains(" usage.counter_reset "), "{}", lines[6]);
    assert!(lines[9].contains(" incident.opened "), "{}", lines[9]);

    let run = replay_in(tmp.path(), "trace", &["--from", "9", "--to", "11", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (line, seq) in lines.iter().zip(9u64..) {
        assert_eq!(line["seq"], seq);
        assert_eq!(line["version"], EVENT_VERSION);
        let event: Event = serde_json::from_value(line["event"].clone()).unwrap();
        assert_eq!(event, common::event(seq));
        assert_eq!(line["kind"], event.kind_name());
    }
    assert_eq!(lines[1]["kind"], "incident.opened");
}

#[test]
fn a_torn_tail_is_a_notice_and_the_valid_prefix_is_folded() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    let last = contents(tmp.path()).into_keys().rfind(|n| n.starts_with("seg-")).unwrap();
    let path = tmp.path().join(&last);
    let len = fs::metadata(&path).unwrap().len();
    // Cut the last frame (record 20) in the middle.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);

    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("records: 19 (seq 1..=19)"), "{}", run.stdout);
    let cut = format!(
        "notice: torn tail (normal after a crash): recovery would cut {} byte(s) from seq 20",
        len - 3 - frame_end(&path, 19)
    );
    assert!(run.stdout.contains(&cut), "{cut:?} not in\n{}", run.stdout);
    let v = json(&replay_in(tmp.path(), "check", &["--json"]));
    assert_eq!(v["damage"][0]["kind"], "torn_tail");
    assert_eq!(v["damage"][0]["from_seq"], 20);
    assert_eq!(v["damage"][0]["segment"], last.as_str());
    assert_eq!(v["damage"].as_array().unwrap().len(), 1);
    assert_eq!((v["verdict"].as_str(), v["next_seq"].as_u64()), (Some("starts"), Some(20)));

    let run = replay_in(tmp.path(), "state", &["--json"]);
    assert!(run.stderr.starts_with("replay: notice: torn tail"), "{}", run.stderr);
    let v = json(&run);
    assert_eq!(v["seq"], 19);
    assert_eq!(state_of(&v), fold((1..=19).map(event)));
    let run = replay_in(tmp.path(), "trace", &[]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("notice: torn tail"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().filter(|l| l.starts_with('#')).count(), 19);
}

/// Bytes of the segment at `path` up to the end of its valid frames, given the seq of the
/// last valid one.
fn frame_end(path: &std::path::Path, last_valid_seq: u64) -> u64 {
    let bytes = fs::read(path).unwrap();
    let base = flash_layout::segment::decode_header(&bytes).unwrap();
    // The last valid record may be in an earlier segment (then this one keeps no frame).
    frame_offset(&bytes, (last_valid_seq + 1 - base) as usize) as u64
}

#[test]
fn no_command_changes_a_byte_of_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), false);
    // A torn tail too: recovery would cut it, replay must not.
    let last = contents(tmp.path()).into_keys().rfind(|n| n.starts_with("seg-")).unwrap();
    let path = tmp.path().join(last);
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(f.metadata().unwrap().len() - 2).unwrap();
    drop(f);
    let before = contents(tmp.path());
    assert!(before.contains_key("snapshots.redb"));
    for args in [
        &["check"][..],
        &["check", "--json"],
        &["state"],
        &["state", "--json", "--at", "14"],
        &["trace"],
        &["trace", "--json", "--from", "13"],
    ] {
        let run = replay_in(tmp.path(), args[0], &args[1..]);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(contents(tmp.path()) == before, "{args:?} changed the directory");
    }
}
