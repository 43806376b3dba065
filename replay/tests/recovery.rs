//! `check` says what recovery (`Store::open` at the node's start) will do to a directory, and
//! each prediction is compared with recovery itself, run on a copy.

mod common;

use std::fs;

use common::*;
use flash_layout::DefectReason;
use serde_json::Value;

fn check_json(dir: &std::path::Path) -> (i32, Value) {
    let run = replay_in(dir, "check", &["--json"]);
    (run.code, serde_json::from_str(&run.stdout).unwrap())
}

/// A file named like the next segment that holds only the start of a header is not a torn
/// tail (headers are written atomically): damage, and recovery keeps its bytes.
#[test]
fn a_short_segment_file_with_the_magic_is_damage_and_recovery_quarantines_it() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(segment_path(tmp.path(), 21), b"LMSG").unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        "replay: damaged log: seg-0000000000000015.log: bad segment header: segment shorter \
         than its 32-byte header (4 bytes); recovery would cut 4 byte(s) from seq 21 and \
         quarantine them"
    );
    let copy = copy_dir(tmp.path());
    let cut = recover(copy.path()).cut.unwrap();
    assert_eq!((cut.reason, cut.from_seq, cut.bytes), (DefectReason::BadSegmentHeader, 21, 4));
    let q = cut.quarantined.expect("quarantined");
    let data = fs::read(copy.path().join(&q)).unwrap();
    let pieces = flash_layout::log::quarantine_pieces(&data).unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!((pieces[0].name, pieces[0].bytes), ("seg-0000000000000015.log", &b"LMSG"[..]));
}

/// Only the last segment can end in the middle of a write: a segment cut short before a later
/// one lost durable records.
#[test]
fn a_segment_cut_short_before_a_later_one_is_damage_not_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    let (_, first) = segments(tmp.path()).remove(0);
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(len - 3).unwrap();
    let (code, v) = check_json(tmp.path());
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["recovery_cut"]["kind"], "damaged");
    assert_eq!(v["recovery_cut"]["reason"], "its length runs past the end of the segment");
    let from = v["recovery_cut"]["from_seq"].as_u64().unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert!(run.stderr.contains("and quarantine them"), "{}", run.stderr);
    let copy = copy_dir(tmp.path());
    let cut = recover(copy.path()).cut.unwrap();
    assert_eq!((cut.reason, cut.from_seq), (DefectReason::BadLength, from));
    assert!(cut.quarantined.is_some());
}

/// Damage below the newest snapshot: `Store::open` will quarantine the log and continue after
/// the snapshot, and `check` says so.
#[test]
fn check_predicts_the_restart_after_the_snapshot_when_damage_is_below_it() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    flip_payload(tmp.path(), 5);
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.starts_with("replay: damaged log: record 5 in"), "{}", run.stderr);
    let notice = "notice: the log is damaged below snapshot #12: recovery will quarantine the \
                  log and continue at #13";
    assert!(run.stdout.contains(notice), "{notice:?} not in\n{}", run.stdout);
    let (code, v) = check_json(tmp.path());
    assert_eq!(code, 3);
    assert_eq!(
        v["snapshot_restart"],
        serde_json::json!({"snapshot_seq": 12, "log_last_seq": 4, "continues_at": 13})
    );

    let copy = copy_dir(tmp.path());
    let restart = recover(copy.path()).restarted_after_snapshot.unwrap();
    assert_eq!((restart.snapshot_seq, restart.log_last_seq), (12, 4));
    // Afterwards the directory is clean, continuing at 13.
    let run = replay_in(copy.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("below snapshot"), "{}", run.stdout);
    let (_, v) = check_json(copy.path());
    assert!(v["snapshot_restart"].is_null());
}

#[test]
fn damage_above_the_snapshot_is_no_restart() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    flip_payload(tmp.path(), 15);
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(!run.stdout.contains("below snapshot"), "{}", run.stdout);
    let (_, v) = check_json(tmp.path());
    assert!(v["snapshot_restart"].is_null());
    let copy = copy_dir(tmp.path());
    assert_eq!(recover(copy.path()).restarted_after_snapshot, None);
}

/// Segment files lost from the end (no defect at all), or lost and then torn: the log ends
/// below the snapshot, which recovery treats like damage below it.
#[test]
fn a_log_ending_below_the_snapshot_without_damage_in_it_is_damage_too() {
    for torn in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        with_snapshot(tmp.path(), true);
        let segs = segments(tmp.path());
        for (_, path) in &segs[1..] {
            fs::remove_file(path).unwrap();
        }
        if torn {
            let f = fs::OpenOptions::new().write(true).open(&segs[0].1).unwrap();
            f.set_len(f.metadata().unwrap().len() - 3).unwrap();
        }
        let (code, v) = check_json(tmp.path());
        let last = v["last_seq"].as_u64().unwrap();
        assert!(last < 12, "{v}");
        assert_eq!(code, 3, "{v}");
        assert_eq!(v["snapshot_restart"]["log_last_seq"], last);
        let run = replay_in(tmp.path(), "check", &[]);
        assert_eq!(
            run.stderr.trim_end(),
            format!(
                "replay: damaged log: the log ends at seq {last}, below the newest snapshot \
                 (seq 12): records the snapshot covers are missing; recovery would quarantine \
                 the log and continue at seq 13"
            )
        );
        assert!(run.stdout.contains("notice: the log is damaged below snapshot #12"), "{}", run.stdout);
        for cmd in ["state", "trace"] {
            let run = replay_in(tmp.path(), cmd, &[]);
            assert_eq!(run.code, 3, "{cmd}: {}", run.stderr);
        }
        let copy = copy_dir(tmp.path());
        let restart = recover(copy.path()).restarted_after_snapshot.unwrap();
        assert_eq!((restart.snapshot_seq, restart.log_last_seq), (12, last));
    }
}
