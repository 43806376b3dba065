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
    assert_eq!(rec.cut, None);
    assert_eq!(s.restore(sum_state, || 0, add).unwrap(), (total, 100));
    // Without any snapshot, a compacted log cannot be replayed from an empty state.
    let other = tempfile::tempdir().unwrap();
    let snaps = SnapshotStore::open(other.path().join(SNAPSHOT_FILE)).unwrap();
    let storage = s.log.into_storage();
    let (s, _) = Store::open(storage, snaps, cfg(), budget(1 << 20, 0)).unwrap();
    assert!(matches!(s.restore(sum_state, || 0, add), Err(RestoreError::Gap { needed: 1, .. })));
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

// --- Damage below the newest snapshot: the log restarts after it. ---

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use crate::log::{quarantine_name, quarantine_pieces, SnapshotRestart};
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
/// 57), snapshots at 30 and 50 (compaction then removes segments 1 and 15), then a flipped
/// payload byte in record 45: valid frames follow, so `Log::open` cuts the log at 45 < 50.
fn damaged_below_snapshot(dir: &Path) -> MemStorage {
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
    let mut storage = s.log.into_storage();
    // Record 45 is the third frame (16 bytes each) of segment 43; flip its payload.
    storage.bytes_mut(&segment_name(43)).unwrap()[32 + 2 * 16 + 8] ^= 0x40;
    storage
}

fn segment_files(s: &MemStorage) -> Vec<String> {
    let names = s.list().unwrap();
    names.into_iter().filter(|n| n.starts_with("seg-")).collect()
}

/// Every byte of every file in `before` is in some quarantine piece of `after`.
fn assert_all_quarantined(before: &MemStorage, after: &MemStorage) {
    let mut covered: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for q in after.list().unwrap() {
        if !is_quarantine_name(&q) {
            continue;
        }
        let data = after.read(&q).unwrap();
        for p in quarantine_pieces(&data).expect("well-formed quarantine file") {
            let orig = before.read(p.name).unwrap();
            let from = p.offset as usize;
            assert_eq!(&orig[from..from + p.bytes.len()], p.bytes, "{q}: {}", p.name);
            let c = covered.entry(p.name.to_string()).or_insert_with(|| vec![false; orig.len()]);
            c[from..from + p.bytes.len()].fill(true);
        }
    }
    for name in segment_files(before) {
        let c = covered.get(&name).unwrap_or_else(|| panic!("{name} lost"));
        assert!(c.iter().all(|&b| b), "{name} partly lost");
    }
}

/// After recovery below the snapshot at 50: new records get 51.., restore gives the snapshot
/// plus exactly them, and a reopen is clean.
fn assert_continues_after_snapshot(dir: &Path, s: Store<MemStorage>) -> MemStorage {
    let mut s = s;
    assert_eq!(segment_files(s.log().storage()), vec![segment_name(51)]);
    assert_eq!((s.log().first_seq(), s.log().last_seq()), (51, 50));
    let snapshot: Vec<u64> = (1..=50).collect();
    assert_eq!(restore_list(&s), (snapshot.clone(), 50));
    for (i, v) in [1001u64, 1002, 1003].into_iter().enumerate() {
        assert_eq!(s.append(1, &v.to_le_bytes(), 0, false).unwrap().seq, 51 + i as u64);
    }
    s.flush().unwrap();
    let want: Vec<u64> = snapshot.into_iter().chain([1001, 1002, 1003]).collect();
    assert_eq!(restore_list(&s), (want.clone(), 53));
    let storage = s.log.into_storage();
    drop(s.snapshots);
    let (s, rec) = Store::open(storage, snaps(dir), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec, Recovery { records: 3, cut: None, restarted_after_snapshot: None });
    assert_eq!(restore_list(&s), (want, 53));
    s.log.into_storage()
}

#[test]
fn damage_below_the_snapshot_restarts_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_below_snapshot(dir.path());
    let (s, rec) = Store::open(damaged.clone(), snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    let cut = rec.cut.clone().unwrap();
    assert_eq!((cut.from_seq, cut.quarantined), (45, Some(quarantine_name(45, 0))));
    assert_eq!(rec.records, 0);
    assert_eq!(
        rec.restarted_after_snapshot,
        Some(SnapshotRestart {
            snapshot_seq: 50,
            log_last_seq: 44,
            records_removed: 16, // 29..=44
            segments_removed: vec![segment_name(29), segment_name(43)],
            bytes_removed: (32 + 14 * 16) + (32 + 2 * 16),
            quarantined: Some(quarantine_name(29, 0)),
        })
    );
    // Segment bytes became quarantine bytes: still counted in the budget.
    let q_bytes: u64 = [quarantine_name(29, 0), quarantine_name(45, 0)]
        .iter()
        .map(|n| s.log().storage().size(n).unwrap())
        .sum();
    assert_eq!(s.quarantine_bytes, q_bytes);
    assert_all_quarantined(&damaged, s.log().storage());
    let storage = assert_continues_after_snapshot(dir.path(), s);

    // Were the snapshots lost too, the log still says where it starts: a gap, not silence.
    let other = tempfile::tempdir().unwrap();
    let (s, rec) = Store::open(storage, snaps(other.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!((rec.cut, rec.restarted_after_snapshot), (None, None));
    assert!(matches!(
        s.restore(list_decode, Vec::new, list_apply),
        Err(RestoreError::Gap { needed: 1, first_seq: 51 })
    ));
}

#[test]
fn whole_log_cut_below_the_snapshot_restarts_with_nothing_left_to_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let mut damaged = damaged_below_snapshot(dir.path());
    // Undo the flip; zero the first segment's header instead: `Log::open` cuts everything.
    damaged.bytes_mut(&segment_name(43)).unwrap()[32 + 2 * 16 + 8] ^= 0x40;
    damaged.bytes_mut(&segment_name(29)).unwrap()[..32].fill(0);
    let (s, rec) = Store::open(damaged.clone(), snaps(dir.path()), cfg(), budget(1 << 20, 0)).unwrap();
    assert_eq!(rec.cut.unwrap().from_seq, 29);
    let restart = rec.restarted_after_snapshot.unwrap();
    assert_eq!((restart.log_last_seq, restart.records_removed, restart.quarantined), (28, 0, None));
    assert!(restart.segments_removed.is_empty());
    assert_all_quarantined(&damaged, s.log().storage());
    assert_continues_after_snapshot(dir.path(), s);
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

#[test]
fn a_crash_at_any_step_of_the_restart_is_recovered_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_below_snapshot(dir.path());
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
            // Every step done: this open is clean.
            assert_eq!((rec.cut, rec.restarted_after_snapshot), (None, None), "k={k}");
        } else {
            crashed_runs += 1;
        }
        assert_all_quarantined(&damaged, s.log().storage());
        // A repeated restart reuses the quarantine file it wrote: one copy of the old log.
        let restart_copies = s
            .log()
            .storage()
            .list()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with("quarantine-000000000000001d"))
            .count();
        assert_eq!(restart_copies, 1, "k={k}");
        let after = assert_continues_after_snapshot(dir.path(), s);
        assert_all_quarantined(&damaged, &after);
        if finished {
            break;
        }
    }
    // cut: quarantine, 1 remove, truncate; sync; restart: quarantine, 2 removes, new segment.
    assert_eq!(crashed_runs, 8);
}
