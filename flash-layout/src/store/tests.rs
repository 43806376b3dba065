use super::*;
use crate::log::FlushPolicy;
use crate::storage::MemStorage;

fn cfg() -> LogConfig {
    LogConfig { segment_bytes: 256, flush: FlushPolicy { max_records: 4, max_bytes: 1 << 16, max_value: 0 } }
}

fn budget(max_bytes: u64, urgent_reserve_bytes: u64) -> Budget {
    Budget { max_bytes, urgent_reserve_bytes, retention: Retention::default() }
}

fn open(dir: &Path, budget: Budget) -> Store<MemStorage> {
    let snaps = SnapshotStore::open(dir.join(SNAPSHOT_FILE)).unwrap();
    Store::open(MemStorage::new(), snaps, cfg(), budget).unwrap().0
}

#[test]
fn budget_refuses_non_urgent_first_then_urgent() {
    let dir = tempfile::tempdir().unwrap();
    let probe = open(dir.path(), budget(u64::MAX, 0));
    let base = probe.usage_bytes(); // the empty redb file
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), budget(base + 200, 100));
    let mut n = 0;
    let err = loop {
        match s.append(1, &[0; 12], 0, false) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    let StoreError::Full { used, max } = err else { panic!("{err:?}") };
    assert_eq!(max, base + 100);
    assert!(used <= max && n >= 1, "{used} {max} {n}");
    let last = s.log().last_seq();
    // Urgent records may use the reserve, then fail too; nothing is written on failure.
    let mut urgent = 0;
    while s.append(2, &[0; 12], 1, true).is_ok() {
        urgent += 1;
    }
    assert!(urgent >= 1);
    assert!(s.usage_bytes() <= base + 200);
    assert_eq!(s.log().last_seq(), last + urgent);
    assert!(matches!(s.append(2, &[0; 12], 1, true), Err(StoreError::Full { max, .. }) if max == base + 200));
}

fn sum_state(bytes: &[u8]) -> Result<u64, String> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| "bad snapshot".to_string())?;
    Ok(u64::from_le_bytes(arr))
}

fn add(state: &mut u64, _seq: u64, _v: u8, p: &[u8]) -> Result<(), String> {
    *state += u64::from(*p.first().ok_or("empty")?);
    Ok(())
}

#[test]
fn restore_is_snapshot_plus_tail_and_compaction_keeps_fallback_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open_dir(dir.path(), cfg(), budget(1 << 20, 0)).unwrap();
    let mut total = 0u64;
    for seq in 1..=100u64 {
        s.append(1, &[(seq % 7) as u8], 0, false).unwrap();
        total += seq % 7;
        if seq == 40 || seq == 80 {
            s.flush().unwrap();
            let (state, at) = s.restore(sum_state, || 0, add).unwrap();
            assert_eq!(at, seq);
            s.snapshot(seq, &state.to_le_bytes()).unwrap();
        }
    }
    s.flush().unwrap();
    // Segments before the OLDER snapshot (40) are gone; the tail after 40 is still there.
    assert!(s.log().first_seq() > 1 && s.log().first_seq() <= 41, "{}", s.log().first_seq());
    assert_eq!(s.restore(sum_state, || 0, add).unwrap(), (total, 100));
    drop(s);
    let (s, rec) = Store::open_dir(dir.path(), cfg(), budget(1 << 20, 0)).unwrap();
    assert!(rec.damage.is_empty());
    assert_eq!(s.restore(sum_state, || 0, add).unwrap(), (total, 100));
    // Without any snapshot, a compacted log cannot be replayed from an empty state: refused.
    let other = tempfile::tempdir().unwrap();
    let snaps = SnapshotStore::open(other.path().join(SNAPSHOT_FILE)).unwrap();
    let first = s.log().first_seq();
    let storage = s.log.into_storage();
    let err = Store::open(storage, snaps, cfg(), budget(1 << 20, 0)).unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused(Refusal::NoSnapshotForStart { first_seq, .. }) if *first_seq == first),
        "{err}"
    );
}

/// Regression (issue 5 of 8's list): a node that restarts every few seconds never
/// snapshotted, because the bytes since the last snapshot were counted from zero at each
/// start. The store now counts them from the log itself.
#[test]
fn bytes_since_the_snapshot_are_counted_from_the_log_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open_dir(dir.path(), cfg(), budget(1 << 20, 0)).unwrap();
    for seq in 1..=10u64 {
        s.append(1, &[seq as u8; 3], 0, false).unwrap();
    }
    s.snapshot(10, &0u64.to_le_bytes()).unwrap();
    assert_eq!(s.bytes_since_snapshot(), 0);
    for seq in 11..=15u64 {
        s.append(1, &[seq as u8; 3], 0, false).unwrap();
    }
    assert_eq!(s.bytes_since_snapshot(), 5 * 11);
    s.flush().unwrap();
    drop(s);
    let (s, _) = Store::open_dir(dir.path(), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(s.bytes_since_snapshot(), 5 * 11, "counted from the log after the snapshot");
}

#[test]
fn snapshot_past_the_log_is_refused_and_apply_errors_carry_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), budget(1 << 20, 0));
    s.append(1, &[1], 0, false).unwrap();
    assert!(matches!(s.snapshot(2, b"x"), Err(StoreError::SnapshotAhead { seq: 2, last_seq: 1 })));
    // A snapshot of a pending record flushes it first.
    s.snapshot(1, &1u64.to_le_bytes()).unwrap();
    assert_eq!(s.log().durable_seq(), 1);
    s.append(1, &[], 0, true).unwrap();
    assert!(matches!(s.restore(sum_state, || 0, add), Err(RestoreError::Apply { seq: 2, .. })));
}

// --- Damage near the newest snapshot. ---

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use crate::log::quarantine_pieces;
use crate::scan::DamageKind;
use crate::segment::segment_name;
use crate::storage::CrashMode;

/// State = the payloads' u64s, in apply order; a snapshot is their LE bytes.
fn list_decode(bytes: &[u8]) -> Result<Vec<u64>, String> {
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

fn list_encode(state: &[u64]) -> Vec<u8> {
    state.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn list_apply(state: &mut Vec<u64>, _seq: u64, _v: u8, p: &[u8]) -> Result<(), String> {
    state.push(u64::from_le_bytes(p.try_into().map_err(|_| "bad payload")?));
    Ok(())
}

fn restore_list<S: Storage>(s: &Store<S>) -> (Vec<u64>, u64) {
    s.restore(list_decode, Vec::new, list_apply).unwrap()
}

fn snaps(dir: &Path) -> SnapshotStore {
    SnapshotStore::open(dir.join(SNAPSHOT_FILE)).unwrap()
}

/// Records 1..=60 (payload = seq) in 256-byte segments of 14 records (bases 1, 15, 29, 43,
/// 57), snapshots at 30 and 50 (compaction then removes segments 1 and 15).
fn snapshotted(dir: &Path) -> MemStorage {
    let mut s = Store::open(MemStorage::new(), snaps(dir), cfg(), budget(1 << 20, 0)).unwrap().0;
    for seq in 1..=60u64 {
        assert_eq!(s.append(1, &seq.to_le_bytes(), 0, false).unwrap().seq, seq);
        if seq == 30 || seq == 50 {
            s.flush().unwrap();
            let (state, at) = restore_list(&s);
            assert_eq!(at, seq);
            s.snapshot(seq, &list_encode(&state)).unwrap();
        }
    }
    s.flush().unwrap();
    assert_eq!(s.log().first_seq(), 29);
    s.log.into_storage()
}

/// Frame `i` (from 0) of a segment of this test's 16-byte frames starts here.
fn frame(i: usize) -> usize {
    32 + i * 16
}

fn segment_files(s: &MemStorage) -> Vec<String> {
    let names = s.list().unwrap();
    names.into_iter().filter(|n| n.starts_with("seg-")).collect()
}

/// Reopens and checks the log continues cleanly: new records get `next..`, restore gives
/// `state` plus them.
fn assert_continues(dir: &Path, s: Store<MemStorage>, state: &[u64], next: u64) -> MemStorage {
    let mut s = s;
    for (i, v) in [1001u64, 1002, 1003].into_iter().enumerate() {
        assert_eq!(s.append(1, &v.to_le_bytes(), 0, false).unwrap().seq, next + i as u64);
    }
    s.flush().unwrap();
    let want: Vec<u64> = state.iter().copied().chain([1001, 1002, 1003]).collect();
    assert_eq!(restore_list(&s), (want.clone(), next + 2));
    let storage = s.log.into_storage();
    drop(s.snapshots);
    let (s, rec) = Store::open(storage, snaps(dir), cfg(), budget(1 << 20, 0)).unwrap();
    assert!(rec.damage.is_empty() && rec.continued_after_snapshot.is_none(), "{rec:?}");
    assert_eq!(restore_list(&s), (want, next + 2));
    s.log.into_storage()
}

/// A flipped payload byte in record 45, below the snapshot at 50 and with valid frames after
/// it: the record is a hole, everything else stays, and the log continues at 61.
#[test]
fn a_damaged_record_below_the_snapshot_is_a_hole_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path());
    damaged.bytes_mut(&segment_name(43)).unwrap()[frame(2) + 8] ^= 0x40;
    let (s, rec) = Store::open(damaged, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!((rec.holes.clone(), rec.records, rec.continued_after_snapshot), (vec![(45, 46)], 31, None));
    let q = rec.quarantined.clone().unwrap();
    assert_eq!(s.quarantine_bytes, s.log().storage().size(&q).unwrap(), "quarantine counts in the budget");
    let mut logged = Vec::new();
    let mut reader = s.log().read_from(1);
    while let Some(r) = reader.next().unwrap() {
        logged.push(r.seq);
    }
    assert_eq!(logged, (29..=60).filter(|&s| s != 45).collect::<Vec<_>>());
    let state: Vec<u64> = (1..=60).collect();
    assert_continues(dir.path(), s, &state, 61);
}

/// The log lost its end below the snapshot at 50 (the last segment gone, the one before torn
/// at record 47): the snapshot covers durable records the log no longer has, so the log
/// continues right after it, seqs 47..=50 a hole: no new record reuses a seq the snapshot
/// covers, and the records the log still has stay.
#[test]
fn a_log_cut_below_the_snapshot_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path());
    damaged.remove(&segment_name(57)).unwrap();
    damaged.truncate(&segment_name(43), frame(4) as u64 + 5).unwrap();
    let (s, rec) = Store::open(damaged, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.torn_tail().map(|d| d.from_seq), Some(47));
    assert_eq!(
        (rec.continued_after_snapshot, rec.holes.clone(), rec.next_seq),
        (Some(50), vec![(47, 51)], 51)
    );
    assert_eq!((s.log().first_seq(), s.log().last_seq()), (29, 50));
    let snapshot: Vec<u64> = (1..=50).collect();
    assert_eq!(restore_list(&s), (snapshot.clone(), 50));
    assert_continues(dir.path(), s, &snapshot, 51);
}

/// Review (issue 8): the hole a continuation after the snapshot writes, if rot later hits it,
/// must not cost the records appended after it. They go to a new segment, whose header says
/// where they start.
#[test]
fn a_damaged_continuation_hole_costs_no_record_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path());
    damaged.remove(&segment_name(57)).unwrap();
    damaged.truncate(&segment_name(43), frame(4) as u64 + 5).unwrap();
    let (mut s, rec) = Store::open(damaged, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.holes, vec![(47, 51)]);
    for v in [1001u64, 1002, 1003] {
        s.append(1, &v.to_le_bytes(), 0, true).unwrap();
    }
    assert_eq!(segment_files(s.log().storage()).last(), Some(&segment_name(51)));
    let mut storage = s.log.into_storage();
    drop(s.snapshots);
    let seg = storage.read(&segment_name(43)).unwrap();
    let hole = seg.iter().rposition(|&b| b == crate::frame::HOLE_MAGIC).unwrap();
    storage.bytes_mut(&segment_name(43)).unwrap()[hole + 10] ^= 0x10;
    let (s, rec) = Store::open(storage, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.holes, vec![(47, 51)], "the same seqs, from the next segment's base");
    let want: Vec<u64> = (1..=50).chain([1001, 1002, 1003]).collect();
    assert_eq!(restore_list(&s), (want, 53));
}

/// With no segment left at all, the log continues after the snapshot in a new empty segment.
/// Were the snapshots lost too, the log still says where it starts: the store refuses rather
/// than replaying an empty log as if it were the whole history.
#[test]
fn no_segment_left_continues_after_the_snapshot_and_without_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path());
    for name in segment_files(&damaged) {
        damaged.remove(&name).unwrap();
    }
    let (s, rec) = Store::open(damaged, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!((rec.continued_after_snapshot, rec.holes.clone()), (Some(50), vec![]));
    assert_eq!(segment_files(s.log().storage()), vec![segment_name(51)]);
    let snapshot: Vec<u64> = (1..=50).collect();
    let storage = assert_continues(dir.path(), s, &snapshot, 51);
    let other = tempfile::tempdir().unwrap();
    let err = Store::open(storage, snaps(other.path()), cfg(), budget(1 << 20, 0)).unwrap_err();
    assert!(matches!(err, StoreError::Refused(Refusal::NoSnapshotForStart { first_seq: 51, .. })), "{err}");
}

/// Review (issue 8): the first segments gone, with a snapshot that covers less than what is
/// gone: the seqs between the snapshot and the first segment become a hole segment, and the
/// store opens (the inspection's dry-run restore agreed before: it used to see a gap and
/// refuse what recovery would repair).
#[test]
fn first_segments_lost_after_the_snapshot_become_a_hole_and_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path()); // segments 29, 43, 57; snapshots 30, 50
    damaged.remove(&segment_name(29)).unwrap();
    damaged.remove(&segment_name(43)).unwrap();
    let inspection = Inspection::of(&damaged, SnapshotFile::of(&snaps(dir.path())).unwrap()).unwrap();
    assert_eq!((inspection.refusal.clone(), inspection.plan.lead), (None, Some((51, 57))));
    let dry = inspection.restore(&damaged, list_decode, Vec::new, list_apply).unwrap();
    let want: Vec<u64> = (1..=50).chain(57..=60).collect();
    assert_eq!((dry.state.clone(), dry.last_seq), (want.clone(), 60));
    let (s, rec) = Store::open(damaged, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.holes, vec![(51, 57)]);
    assert_eq!(segment_files(s.log().storage())[0], segment_name(51));
    assert_eq!(restore_list(&s), (want, 60));
}

/// Every piece of every quarantine file in `after` is a byte-exact copy of `before`, and no
/// piece is held twice.
fn assert_quarantine_once(before: &MemStorage, after: &MemStorage) -> usize {
    let mut seen = Vec::new();
    for q in after.list().unwrap().iter().filter(|n| is_quarantine_name(n)) {
        let data = after.read(q).unwrap();
        for p in quarantine_pieces(&data).expect("well-formed quarantine file") {
            let orig = before.read(p.name).unwrap();
            let from = p.offset as usize;
            assert_eq!(&orig[from..from + p.bytes.len()], p.bytes, "{q}: {}", p.name);
            let key = (p.name.to_string(), p.offset);
            assert!(!seen.contains(&key), "{key:?} quarantined twice");
            seen.push(key);
        }
    }
    seen.len()
}

/// A [`MemStorage`] shared with the test, whose process "dies" after `left` more mutating
/// operations: every later one fails, doing nothing.
#[derive(Debug)]
struct DiesAfter {
    inner: Rc<RefCell<MemStorage>>,
    left: usize,
}

impl DiesAfter {
    fn op<T>(&mut self, f: impl FnOnce(&mut MemStorage) -> io::Result<T>) -> io::Result<T> {
        if self.left == 0 {
            return Err(io::Error::other("process died"));
        }
        self.left -= 1;
        f(&mut self.inner.borrow_mut())
    }
}

impl Storage for DiesAfter {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.borrow().list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.borrow().read(name)
    }
    fn size(&self, name: &str) -> io::Result<u64> {
        self.inner.borrow().size(name)
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.op(|s| s.create(name))
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.op(|s| s.append(name, bytes))
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.op(|s| s.sync(name))
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.op(|s| s.truncate(name, len))
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.op(|s| s.remove(name))
    }
    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.op(|s| s.write_atomic(name, bytes))
    }
}

/// A crash at any step of a recovery that quarantines, rewrites segments and removes a stray
/// file: the next open finishes the job, and the result is the same as without a crash.
#[test]
fn a_crash_at_any_step_of_recovery_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = snapshotted(dir.path());
    damaged.bytes_mut(&segment_name(29)).unwrap()[frame(3) + 9] ^= 0x01; // record 32
    damaged.bytes_mut(&segment_name(43)).unwrap()[frame(5) + 1] = 0; // record 48: version 0
    damaged.write_atomic(&segment_name(99), b"junk").unwrap();
    let (clean, rec) = Store::open(damaged.clone(), snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.holes, vec![(32, 33), (48, 49)]);
    assert_eq!(rec.damage.iter().filter(|d| d.kind == DamageKind::Foreign).count(), 1);
    let want = restore_list(&clean);
    drop(clean);
    let mut crashed_runs = 0;
    for k in 0.. {
        let shared = Rc::new(RefCell::new(damaged.clone()));
        let dying = DiesAfter { inner: Rc::clone(&shared), left: k };
        let opened = Store::open(dying, snaps(dir.path()), cfg(), budget(1 << 20, 0));
        let finished = opened.is_ok();
        drop(opened);
        let mut storage = shared.borrow().clone();
        storage.crash(k as u64, CrashMode::Any);
        let (s, rec) = Store::open(storage, snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
        if finished {
            assert!(rec.damage.is_empty(), "k={k}: every step was done: {rec:?}");
        } else {
            crashed_runs += 1;
        }
        assert_eq!(restore_list(&s), want, "k={k}");
        assert_eq!(assert_quarantine_once(&damaged, s.log().storage()), 3, "k={k}");
        assert_continues(dir.path(), s, &want.0, 61);
        if finished {
            break;
        }
    }
    // quarantine, 2 rewrites, 1 remove, then the sync of the last segment.
    assert_eq!(crashed_runs, 5);
}
