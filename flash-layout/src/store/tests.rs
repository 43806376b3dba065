use super::*;
use crate::log::FlushPolicy;
use crate::storage::MemStorage;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 256,
        flush: FlushPolicy {
            max_records: 4,
            max_bytes: 1 << 16,
            max_value: 0,
        },
    }
}

fn budget(max_bytes: u64, urgent_reserve_bytes: u64) -> Budget {
    Budget {
        max_bytes,
        urgent_reserve_bytes,
        retention: Retention::default(),
    }
}

fn open(dir: &Path, budget: Budget) -> Store<MemStorage> {
    let snaps = SnapshotStore::open(dir.join(SNAPSHOT_FILE)).unwrap();
    Store::open(MemStorage::new(), snaps, cfg(), budget)
        .unwrap()
        .0
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
    let StoreError::Full { used, max } = err else {
        panic!("{err:?}")
    };
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
    assert!(
        matches!(s.append(2, &[0; 12], 1, true), Err(StoreError::Full { max, .. }) if max == base + 200)
    );
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
    assert!(
        s.log().first_seq() > 1 && s.log().first_seq() <= 41,
        "{}",
        s.log().first_seq()
    );
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
    assert!(matches!(
        s.restore(sum_state, || 0, add),
        Err(RestoreError::Gap { needed: 1, .. })
    ));
}

#[test]
fn snapshot_past_the_log_is_refused_and_apply_errors_carry_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), budget(1 << 20, 0));
    s.append(1, &[1], 0, false).unwrap();
    assert!(matches!(
        s.snapshot(2, b"x"),
        Err(StoreError::SnapshotAhead {
            seq: 2,
            last_seq: 1
        })
    ));
    // A snapshot of a pending record flushes it first.
    s.snapshot(1, &1u64.to_le_bytes()).unwrap();
    assert_eq!(s.log().durable_seq(), 1);
    s.append(1, &[], 0, true).unwrap();
    assert!(matches!(
        s.restore(sum_state, || 0, add),
        Err(RestoreError::Apply { seq: 2, .. })
    ));
}
