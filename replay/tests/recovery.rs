//! `check` says what recovery (`Store::open` at the node's start) will do to a directory, and
//! each prediction is compared with recovery itself, run on a copy.

mod common;

use std::fs;

use common::*;
use flash_layout::{DamageKind, DefectReason};
use lastmile::events::codec::EVENT_VERSION;
use serde_json::Value;

fn check_json(dir: &std::path::Path) -> (i32, Value) {
    let run = replay_in(dir, "check", &["--json"]);
    (run.code, serde_json::from_str(&run.stdout).unwrap())
}

/// A file named like the next segment that holds only the start of a header is not a torn
/// tail (headers are written atomically): it is no segment of ours, and recovery keeps its
/// bytes before it removes it.
#[test]
fn a_short_segment_file_with_the_magic_is_foreign_and_recovery_quarantines_it() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    fs::write(segment_path(tmp.path(), 21), b"LMSG").unwrap();
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        "replay: damaged log: seg-0000000000000015.log: not a segment (segment shorter than its \
         32-byte header (4 bytes)); recovery would quarantine 4 byte(s), remove 1 foreign file(s), \
         keep all 20 intact record(s)"
    );
    let copy = copy_dir(tmp.path());
    let rec = recover(copy.path());
    let d = &rec.damage[0];
    assert_eq!((d.kind, d.reason, d.len), (DamageKind::Foreign, DefectReason::BadSegmentHeader, 4));
    let q = rec.quarantined.expect("quarantined");
    let data = fs::read(copy.path().join(&q)).unwrap();
    let pieces = flash_layout::log::quarantine_pieces(&data).unwrap();
    assert_eq!(pieces.len(), 1);
    assert_eq!((pieces[0].name, pieces[0].bytes), ("seg-0000000000000015.log", &b"LMSG"[..]));
    assert_eq!(replay_in(copy.path(), "check", &[]).code, 0);
}

/// Only the last segment can end in the middle of a write: a segment cut short before a later
/// one lost a durable record; the records after it are kept.
#[test]
fn a_segment_cut_short_before_a_later_one_is_damage_not_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    let (_, first) = segments(tmp.path()).remove(0);
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(len - 3).unwrap();
    let (code, v) = check_json(tmp.path());
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["verdict"], "recovers");
    assert_eq!(v["damage"][0]["kind"], "lost");
    assert_eq!(v["damage"][0]["reason"], "its length runs past the end of the segment");
    let from = v["damage"][0]["from_seq"].as_u64().unwrap();
    assert_eq!(v["holes_added"], serde_json::json!([[from, from + 1]]));
    let copy = copy_dir(tmp.path());
    let rec = recover(copy.path());
    assert_eq!((rec.damage[0].reason, rec.damage[0].from_seq), (DefectReason::BadLength, from));
    assert!(rec.quarantined.is_some());
    assert_eq!((rec.holes.clone(), rec.records), (vec![(from, from + 1)], 19));
}

/// Regression (issue 8): a corrupt frame below the newest snapshot made recovery cut the log
/// and quarantine all of it. Now only the bad frame goes; `check` says so, and after recovery
/// the log checks clean with the hole noted.
#[test]
fn damage_below_the_snapshot_loses_only_the_damaged_record() {
    let tmp = tempfile::tempdir().unwrap();
    with_snapshot(tmp.path(), true);
    flip_payload(tmp.path(), 5);
    let run = replay_in(tmp.path(), "check", &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.starts_with("replay: damaged log: record 5 in"), "{}", run.stderr);
    assert!(run.stderr.contains("CRC mismatch, 1 record(s) lost"), "{}", run.stderr);
    assert!(
        run.stdout.contains("the node would repair and start: every intact record kept, new holes: #5"),
        "{}",
        run.stdout
    );
    let (_, v) = check_json(tmp.path());
    assert!(v["snapshot_restart"].is_null());
    let copy = copy_dir(tmp.path());
    let rec = recover(copy.path());
    assert_eq!((rec.holes.clone(), rec.continued_after_snapshot, rec.records), (vec![(5, 6)], None, 19));
    let run = replay_in(copy.path(), "check", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("holes recorded earlier (records lost to damage): #5"), "{}", run.stdout);
    let run = replay_in(copy.path(), "trace", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("notice: 1 hole(s) recorded by an earlier recovery, 1 seq(s)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("\n#5 "), "{}", run.stdout);
}

/// Segment files lost from the end (no defect at all), or lost and then torn: the log ends
/// below the snapshot; recovery records the seqs up to the snapshot as a hole and continues
/// after it, so no new record takes a seq the snapshot covers.
#[test]
fn a_log_ending_below_the_snapshot_continues_after_it() {
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
        let last = v["next_seq"].as_u64().unwrap();
        assert_eq!(last, 13, "{v}");
        let end = v["snapshot_restart"]["log_last_seq"].as_u64().unwrap();
        assert!(end < 12, "{v}");
        assert_eq!(code, 3, "{v}");
        let run = replay_in(tmp.path(), "check", &[]);
        assert_eq!(
            run.stderr.trim_end(),
            format!(
                "replay: damaged log: the log ends at seq {end}, below the newest snapshot \
                 (seq 12): records the snapshot covers are missing; recovery would record seqs \
                 {}..=12 as a hole and continue at seq 13",
                end + 1
            )
        );
        assert!(run.stdout.contains("notice: the log ends below snapshot #12"), "{}", run.stdout);
        for cmd in ["state", "trace"] {
            let run = replay_in(tmp.path(), cmd, &[]);
            assert_eq!(run.code, 3, "{cmd}: {}", run.stderr);
        }
        let copy = copy_dir(tmp.path());
        let rec = recover(copy.path());
        assert_eq!((rec.continued_after_snapshot, rec.next_seq), (Some(12), 13));
        assert_eq!(replay_in(copy.path(), "check", &[]).code, 0);
    }
}

/// Regression (issue 8): `replay check` said all was well (exit 0) when the first segment
/// was gone and no snapshot covered the start, and when `snapshots.redb` was deleted or
/// emptied on a compacted log, while the node refused to start on the same directory (and
/// its refused start rewrote the empty snapshot file and bumped the boot counter). Now check
/// fails with one line naming the cause, and the node's refusal changes nothing.
#[test]
fn check_fails_where_the_node_refuses_and_the_refusal_changes_nothing() {
    type Setup = fn(&std::path::Path);
    let cases: [(&str, Setup, &str); 4] = [
        (
            "first segment gone, no snapshot database",
            |d| {
                with_snapshot(d, true);
                fs::remove_file(d.join("snapshots.redb")).unwrap();
                fs::remove_file(&segments(d)[0].1).unwrap();
            },
            "there is no snapshot database (snapshots.redb is missing)",
        ),
        (
            "compacted log, snapshot database deleted",
            |d| {
                with_two_snapshots(d, false);
                fs::remove_file(d.join("snapshots.redb")).unwrap();
            },
            "there is no snapshot database (snapshots.redb is missing)",
        ),
        (
            "compacted log, snapshot database emptied",
            |d| {
                with_two_snapshots(d, false);
                fs::write(d.join("snapshots.redb"), b"").unwrap();
            },
            "snapshots.redb is empty",
        ),
        (
            "compacted log, snapshot database not a database",
            |d| {
                with_two_snapshots(d, false);
                fs::write(d.join("snapshots.redb"), vec![0x5A; 4096]).unwrap();
            },
            "the snapshot database cannot be read",
        ),
    ];
    for (what, setup, cause) in cases {
        let tmp = tempfile::tempdir().unwrap();
        setup(tmp.path());
        let first = first_segment_base(tmp.path());
        assert!(first > 1, "{what}");
        let run = replay_in(tmp.path(), "check", &[]);
        assert_eq!(run.code, 3, "{what}: {}\n{}", run.stdout, run.stderr);
        let line = run.stderr.trim_end();
        assert!(!line.contains('\n'), "{what}: one line: {line}");
        let want = format!(
            "replay: the node refuses to start on this directory: the log starts at seq {first}, so a snapshot must cover seqs 1..={}, but {cause}",
            first - 1
        );
        assert!(line.starts_with(&want), "{what}:\n{line}\n{want}");
        let (_, v) = check_json(tmp.path());
        assert_eq!(v["verdict"], "refuses", "{what}");
        // The node refuses the same directory and changes nothing in it.
        let before = contents(tmp.path());
        let err = match lastmile::os::flash::open(tmp.path(), lastmile::os::flash::FlashConfig::default()) {
            Err(e) => e,
            Ok(_) => panic!("{what}: the node started"),
        };
        assert!(err.to_string().contains(cause), "{what}: {err}");
        assert_eq!(contents(tmp.path()), before, "{what}: a refused start changed the directory");
    }
}

/// Deterministic bits for the damage cases below.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Damages directory `d` in one of a dozen ways chosen by `seed`; returns what it did.
fn damage(d: &std::path::Path, seed: u64) -> String {
    damage_of(d, seed, 12)
}

/// One of the first `kinds` damages (the 10th combines two of the first nine).
fn damage_of(d: &std::path::Path, seed: u64, kinds: u64) -> String {
    let r = |k: u64| mix(seed.wrapping_mul(31).wrapping_add(k));
    let segs = segments(d);
    if segs.is_empty() {
        return "nothing (no segment left)".into();
    }
    let pick = |k: u64| &segs[(r(k) % segs.len() as u64) as usize];
    match r(0) % kinds {
        0 => {
            let (_, path) = pick(1);
            let mut bytes = fs::read(path).unwrap();
            let at = (r(2) % bytes.len() as u64) as usize;
            bytes[at] ^= (r(3) as u8) | 1;
            fs::write(path, bytes).unwrap();
            format!("flip byte {at} of {}", path.display())
        }
        1 => {
            let (_, path) = pick(1);
            let len = fs::metadata(path).unwrap().len();
            let to = r(2) % (len + 1);
            fs::OpenOptions::new().write(true).open(path).unwrap().set_len(to).unwrap();
            format!("truncate {} to {to}", path.display())
        }
        2 => {
            let (_, path) = pick(1);
            fs::remove_file(path).unwrap();
            format!("remove {}", path.display())
        }
        3 => {
            let (_, path) = pick(1);
            let mut bytes = fs::read(path).unwrap();
            bytes[..32].fill(0);
            fs::write(path, bytes).unwrap();
            format!("zero the header of {}", path.display())
        }
        4 => {
            let len = (r(1) % 80) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (r(100 + i as u64) % 256) as u8).collect();
            fs::write(segment_path(d, 40 + r(2) % 3), bytes).unwrap();
            format!("stray segment of {len} bytes")
        }
        5 => {
            let _ = fs::remove_file(d.join("snapshots.redb"));
            "delete snapshots.redb".into()
        }
        6 => {
            fs::write(d.join("snapshots.redb"), b"").unwrap();
            "empty snapshots.redb".into()
        }
        7 => {
            fs::write(d.join("snapshots.redb"), vec![(r(1) % 256) as u8; 3000]).unwrap();
            "garbage snapshots.redb".into()
        }
        8 => {
            // A record this build cannot decode: a newer event version, framed correctly.
            let mut log = open_log(d);
            log.append(EVENT_VERSION + 1, b"from the future", 0, true).unwrap();
            "a record of a newer event version".into()
        }
        10 => {
            fs::write(d.join("boot"), b"seven\n").unwrap();
            "a damaged boot counter".into()
        }
        9 => {
            let a = damage_of(d, seed ^ 0x55, 9);
            let b = damage_of(d, seed ^ 0xAA, 9);
            format!("{a}, then {b}")
        }
        _ => "nothing".into(),
    }
}

/// The property that ties `replay check` to the node (issue 8): for every damage case, what
/// check says the node would do at start is what `lastmile::os::flash::open` does on a copy:
/// it refuses exactly when check says so, and then changes nothing; it starts without loss
/// exactly when check says "starts"; when it repairs, the holes, the next seq and the state
/// are the ones check predicted; and after the repair check finds the directory clean.
#[test]
fn check_verdict_is_what_the_node_does_for_every_damage_case() {
    use lastmile::os::flash::{self, FlashConfig};
    use replay::data_dir::Verdict;
    let mut seen = std::collections::BTreeMap::new();
    for seed in 0..240u64 {
        let tmp = tempfile::tempdir().unwrap();
        if seed % 2 == 0 {
            with_snapshot(tmp.path(), true);
        } else {
            with_two_snapshots(tmp.path(), false); // compacted: the log starts above 1
        }
        let what = damage(tmp.path(), seed);
        let dir = match replay::DataDir::open(tmp.path()) {
            Ok(dir) => dir,
            Err(e) => {
                // Nothing of a data directory is left: the node starts afresh.
                assert_eq!(e.exit_code(), 2, "{what}: {e}");
                let opened =
                    flash::open(tmp.path(), FlashConfig::default()).expect("an empty directory opens");
                assert_eq!(opened.recovery.records, 0, "{what}");
                continue;
            }
        };
        let (report, error) = replay::check::check(&dir).unwrap();
        *seen.entry(format!("{:?}", report.verdict)).or_insert(0) += 1;
        let copy = copy_dir(tmp.path());
        let before = contents(copy.path());
        match flash::open(copy.path(), FlashConfig::default()) {
            Err(flash::FlashError::Refused { reason, .. }) => {
                assert_eq!(
                    report.verdict,
                    Verdict::Refuses,
                    "{what}: the node refused ({reason}), check said {report:?}"
                );
                let shown = |s: &str, d: &std::path::Path| s.replace(&d.display().to_string(), "DIR");
                let said = report.refusal.as_deref().map(|r| shown(r, tmp.path()));
                assert_eq!(said, Some(shown(&reason, copy.path())), "{what}: the same cause");
                assert!(error.is_some_and(|e| e.exit_code() >= 3), "{what}");
                assert_eq!(contents(copy.path()), before, "{what}: the refusal changed the directory");
            }
            Err(e) => panic!("{what}: the node failed otherwise: {e}"),
            Ok(opened) => {
                let rec = &opened.recovery;
                let repaired = rec.lost().next().is_some()
                    || rec.continued_after_snapshot.is_some()
                    || !rec.holes.is_empty()
                    || rec.snapshots_set_aside.is_some();
                match report.verdict {
                    Verdict::Refuses => panic!("{what}: check said refuse, the node started: {rec:?}"),
                    Verdict::Starts => {
                        assert!(!repaired, "{what}: check said nothing to repair: {rec:?}");
                        assert!(error.is_none(), "{what}: {error:?}");
                    }
                    Verdict::Recovers => {
                        assert!(repaired, "{what}: check predicted a repair: {report:?}");
                        assert_eq!(error.as_ref().map(|e| e.exit_code()), Some(3), "{what}");
                    }
                }
                let holes: Vec<[u64; 2]> = rec.holes.iter().map(|(a, b)| [*a, *b]).collect();
                assert_eq!(holes, report.holes_added, "{what}");
                assert_eq!(opened.store.log().last_seq() + 1, report.next_seq, "{what}");
                assert_eq!(opened.state, dir.restored().unwrap().state, "{what}: the same state");
                drop(opened);
                let after = replay::DataDir::open(copy.path()).unwrap();
                let (again, error) = replay::check::check(&after).unwrap();
                assert_eq!(again.verdict, Verdict::Starts, "{what}: recovery converged: {again:?}");
                assert!(error.is_none(), "{what}: {error:?}");
            }
        }
    }
    // The cases reach every verdict.
    assert_eq!(seen.len(), 3, "{seen:?}");
}
