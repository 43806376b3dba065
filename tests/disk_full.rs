//! Regression (issue 8): a full disk, then space freed, under `lastmile demo` on a real small
//! tmpfs. Before, 48,991 of 60,950 `report` lines were for records that are not in the log and
//! one record was written twice: the gate released an effect once `log.last_seq()` was
//! durable, a seq that did not count events waiting in the backlog, and a failed flush left
//! its record buffered while the journal queued it again. A full disk also produced ~20,000
//! error lines a second, and a start on a full disk left `boot.tmp` behind.
//!
//! The test mounts a 384 KiB tmpfs in a private mount namespace (`unshare --mount`), runs the
//! demo on it, fills the filesystem to ENOSPC while it runs, frees the space, lets the demo
//! finish, copies the data directory out, then tries one more start on a full disk. It
//! asserts: every `report` line is a record in the log (a multiset: each report once), no
//! record is in the log twice (the simulated counters never go back within a run, so a
//! duplicated record shows as a counter reset), what was buffered during the outage reached
//! the log once space came back, the error lines on stderr stay few, and the start on the
//! full disk fails with an error naming the file and leaves no temporary file.

#[path = "support/netns.rs"]
mod netns;

use flash_layout::{scan, DirStorage};
use lastmile::events::codec;
use lastmile::events::usage::UsageEvent;
use lastmile::events::Event;
use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

#[test]
fn a_full_disk_then_space_freed_reports_only_what_is_in_the_log_once() {
    netns::require_root_and_tools(&["unshare", "mount", "dd"]);
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display().to_string();
    let bin = env!("CARGO_BIN_EXE_lastmile");
    let script = format!(
        r#"
set -u
mnt="{o}/mnt"
mkdir -p "$mnt"
mount -t tmpfs -o size=384k lastmile-disk-full "$mnt"
RUST_LOG= LASTMILE_LOG=error "{bin}" demo --dir "$mnt/data" --links 8 --poll-ms 5 --window-ms 20 \
    --max-delay-ms 30 --snapshot-every-kib 8 --seconds 7 > "{o}/run1.out" 2> "{o}/run1.err" &
demo=$!
sleep 1.5
dd if=/dev/zero of="$mnt/filler" bs=4096 2>/dev/null
df -k "$mnt" > "{o}/df-full.txt"
sleep 2.5
rm -f "$mnt/filler"
wait $demo
echo "demo exit $?" > "{o}/run1.status"
cp -a "$mnt/data" "{o}/data"
# A start on a full disk: it must fail cleanly and leave no temporary file.
dd if=/dev/zero of="$mnt/filler" bs=4096 2>/dev/null
LASTMILE_LOG=error "{bin}" demo --dir "$mnt/data" --seconds 1 > "{o}/run2.out" 2> "{o}/run2.err"
echo "demo exit $?" > "{o}/run2.status"
ls -a "$mnt/data" > "{o}/run2.ls"
"#
    );
    let unshare = netns::tool("unshare").display().to_string();
    let status = Command::new(netns::tool("timeout"))
        .args(["60", &unshare, "--mount", "--propagation", "private", "bash", "-c", &script])
        .status()
        .expect("run the disk-full script");
    assert!(status.success(), "the script failed: {status}");
    let read = |name: &str| fs::read_to_string(out.path().join(name)).unwrap_or_default();
    assert_eq!(read("run1.status").trim(), "demo exit 0", "stderr: {}", read("run1.err"));
    let df = read("df-full.txt");
    assert!(
        df.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(3) == Some("0")),
        "the disk was full: {df}"
    );

    // What the log holds.
    let storage = DirStorage::open_existing(out.path().join("data")).unwrap();
    let found = scan(&storage).unwrap();
    let mut in_log: BTreeMap<String, u64> = BTreeMap::new();
    let mut resets = 0;
    let mut incidents = Vec::new();
    let mut reader = found.reader(&storage, 1);
    while let Some(rec) = reader.next().unwrap() {
        let event = codec::decode(rec.version, rec.payload).unwrap();
        match &event {
            Event::Usage(UsageEvent::Accrued(_)) => *in_log.entry(event.to_string()).or_insert(0) += 1,
            Event::Usage(UsageEvent::CounterReset(_)) => resets += 1,
            Event::Incident(_) => incidents.push(event.to_string()),
            _ => {}
        }
    }
    assert_eq!(resets, 0, "a record written twice shows as a counter going back");
    // Every report is a record in the log, once.
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    for line in read("run1.out").lines() {
        if let Some(r) = line.strip_prefix("report ") {
            *reported.entry(r.to_string()).or_insert(0) += 1;
        }
    }
    let total: u64 = reported.values().sum();
    assert!(total > 100, "the demo reported too little to prove anything: {total}");
    for (r, n) in &reported {
        let logged = in_log.get(r).copied().unwrap_or(0);
        assert!(*n <= logged, "reported {n} time(s), in the log {logged} time(s): {r}");
    }
    // The outage is on the log, and what waited during it got there once space came back.
    assert!(incidents.iter().any(|i| i.contains("log-write-failed")), "{incidents:?}");
    let logged: u64 = in_log.values().sum();
    assert!(logged >= total, "{logged} records, {total} reports");
    // Snapshots failed while the disk was full (the database then refuses everything until it
    // is opened again) and resumed once space came back.
    let closed_at = {
        let mut reader = found.reader(&storage, 1);
        let mut at = None;
        while let Some(rec) = reader.next().unwrap() {
            if codec::decode(rec.version, rec.payload).unwrap().to_string() == "kind=log-write-failed" {
                at = Some(rec.seq);
            }
        }
        at.expect("the outage was closed on the log")
    };
    let snapshots = flash_layout::SnapshotFile::inspect(&out.path().join("data/snapshots.redb")).unwrap();
    let newest = snapshots.latest().map(|(seq, _)| *seq);
    assert!(newest.is_some_and(|s| s > closed_at), "a snapshot after the outage (#{closed_at}): {newest:?}");
    // Errors were reported, not flooded.
    let errors = read("run1.err").lines().count();
    assert!((1..=40).contains(&errors), "{errors} lines on stderr:\n{}", read("run1.err"));

    // The start on a full disk failed, said which file, and left no temporary file.
    assert_ne!(read("run2.status").trim(), "demo exit 0", "{}", read("run2.out"));
    let err = read("run2.err");
    assert!(err.contains("No space left on device") && err.contains("/data/"), "{err}");
    let left = read("run2.ls");
    assert!(!left.lines().any(|n| n.ends_with(".tmp")), "temporary files left: {left}");
    eprintln!(
        "disk full: {total} reports, {logged} usage records, {errors} error lines, incidents {incidents:?}"
    );
}
