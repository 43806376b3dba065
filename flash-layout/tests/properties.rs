//! Crash and corruption properties of the log over `MemStorage` (FORMAT.md "Recovery").
//!
//! Arbitrary records are appended with arbitrary flush points and segment sizes, then the
//! storage is damaged in one way, and the log is reopened. In every case the recovered records
//! are exactly a prefix of what was appended, byte for byte, so a corrupt record is never
//! accepted. Further, per damage:
//! - crash model (unsynced bytes kept, torn, lost or garbage): nothing at or below the
//!   `durable_seq()` reported before the crash is lost;
//! - a flipped byte, a copied or zeroed segment header, a truncated segment file: exactly the
//!   records before the first damaged one are recovered;
//! - a lying fsync: only the prefix guarantee holds (the log cannot know what never reached
//!   flash), and the lost range is quarantined unless it is a torn tail of the last segment;
//! - a stray file named like the next segment (short, or without the segment magic): all the
//!   records are kept and the file is quarantined.
//!
//! And in every case, every byte recovery removed or truncated is in a quarantine file it
//! wrote, unless it was a torn tail of the last segment (`assert_cut_bytes_kept`).
//!
//! The same damage under a [`Store`] with snapshots (`store_recovery_never_skips_new_records`):
//! whether or not the damage cut the log below the newest snapshot, the restored state is
//! exactly a prefix of what was appended reaching at least the snapshot, and every record
//! appended after recovery is in every later restore, after a reopen too.

use std::collections::BTreeMap;

use flash_layout::log::{is_quarantine_name, quarantine_pieces};
use flash_layout::segment::segment_name;
use flash_layout::{
    scan, Budget, CrashMode, Fault, FlushPolicy, Log, LogConfig, MemStorage, Retention, SnapshotStore,
    Storage, Store,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

#[derive(Debug, Clone)]
struct Rec {
    version: u8,
    payload: Vec<u8>,
    urgent: bool,
    flush_after: bool,
}

#[derive(Debug, Clone)]
enum Damage {
    /// At record `at`, the next fsync fails and the process dies: unsynced bytes meet `mode`.
    Crash {
        mode: CrashMode,
        at: usize,
    },
    /// The fsync after record `at` lies.
    LostSync {
        at: usize,
    },
    Flip {
        file: usize,
        offset: usize,
        xor: u8,
    },
    CopyHeader {
        from: usize,
        to: usize,
    },
    ZeroHeader {
        file: usize,
    },
    Truncate {
        file: usize,
        offset: usize,
    },
    /// A file named like the next segment that is not one: shorter than a header, or not
    /// starting with the segment magic (never a crash artifact: headers are written atomically).
    StraySegment {
        len: usize,
        magic: bool,
    },
}

#[derive(Debug, Clone)]
struct Case {
    records: Vec<Rec>,
    segment_bytes: u64,
    max_records: usize,
    damage: Damage,
    seed: u64,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 60 + 1;
        let records = (0..n)
            .map(|_| Rec {
                version: u8::arbitrary(g) % 3 + 1,
                payload: (0..usize::arbitrary(g) % 40).map(|_| u8::arbitrary(g)).collect(),
                urgent: u8::arbitrary(g) % 8 == 0,
                flush_after: u8::arbitrary(g) % 6 == 0,
            })
            .collect();
        let modes =
            [CrashMode::KeepAll, CrashMode::Torn, CrashMode::Lost, CrashMode::Garbage, CrashMode::Any];
        let damage = match u8::arbitrary(g) % 7 {
            0 => Damage::Crash { mode: *g.choose(&modes).expect("non-empty"), at: usize::arbitrary(g) },
            1 => Damage::LostSync { at: usize::arbitrary(g) },
            2 => Damage::Flip {
                file: usize::arbitrary(g),
                offset: usize::arbitrary(g),
                xor: u8::arbitrary(g) | 1,
            },
            3 => Damage::CopyHeader { from: usize::arbitrary(g), to: usize::arbitrary(g) },
            4 => Damage::ZeroHeader { file: usize::arbitrary(g) },
            5 => Damage::Truncate { file: usize::arbitrary(g), offset: usize::arbitrary(g) },
            _ => Damage::StraySegment { len: usize::arbitrary(g), magic: bool::arbitrary(g) },
        };
        Case {
            records,
            segment_bytes: u64::arbitrary(g) % 300 + 40,
            max_records: usize::arbitrary(g) % 8 + 1,
            damage,
            seed: u64::arbitrary(g),
        }
    }
}

fn config(c: &Case) -> LogConfig {
    LogConfig {
        segment_bytes: c.segment_bytes,
        flush: FlushPolicy { max_records: c.max_records, max_bytes: 1 << 20, max_value: u128::MAX },
    }
}

/// Segment files and, for each, the seq of the record holding each byte (0 for the header).
fn layout(s: &MemStorage) -> Vec<(String, u64, Vec<u8>)> {
    s.list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("seg-"))
        .map(|n| {
            let data = s.read(&n).unwrap();
            let base = u64::from_str_radix(&n[4..20], 16).unwrap();
            (n, base, data)
        })
        .collect()
}

/// Seq of the record whose frame holds byte `offset` of a segment (`base` for the header).
fn seq_at(data: &[u8], base: u64, offset: usize) -> u64 {
    if offset < 32 {
        return base;
    }
    let (mut pos, mut seq) = (32usize, base);
    while pos < data.len() {
        let len = 8 + u16::from_le_bytes([data[pos + 2], data[pos + 3]]) as usize;
        if offset < pos + len {
            return seq;
        }
        pos += len;
        seq += 1;
    }
    seq
}

/// The bytes of a stray segment file (see `Damage::StraySegment`).
fn stray_bytes(len: usize, magic: bool) -> Vec<u8> {
    if magic {
        let mut b = b"LMSG".to_vec();
        b.resize(4 + len % 28, 0);
        b
    } else {
        vec![b'x'; len % 80]
    }
}

/// Writes a stray segment file named after every existing segment.
fn add_stray_segment(storage: &mut MemStorage, len: usize, magic: bool) {
    let next = layout(storage).last().map_or(1, |(_, base, _)| base + 1);
    storage.write_atomic(&segment_name(next), &stray_bytes(len, magic)).unwrap();
}

/// The recovery rule (FORMAT.md "Recovery"): every byte of a segment file that recovery
/// removed or truncated is in a quarantine file it wrote, except a torn tail: the end of the
/// last segment file, past its header, with no valid frame after the defect.
fn assert_cut_bytes_kept(before: &MemStorage, after: &MemStorage) {
    let old: Vec<String> = before.list().unwrap();
    let mut covered: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for q in after.list().unwrap() {
        if !is_quarantine_name(&q) || old.contains(&q) {
            continue;
        }
        let data = after.read(&q).unwrap();
        for p in quarantine_pieces(&data).expect("well-formed quarantine file") {
            let orig = before.read(p.name).unwrap();
            let from = p.offset as usize;
            assert_eq!(&orig[from..from + p.bytes.len()], p.bytes, "{q}: {}", p.name);
            covered.entry(p.name.to_string()).or_insert_with(|| vec![false; orig.len()])
                [from..from + p.bytes.len()]
                .fill(true);
        }
    }
    let segs = layout(before);
    // A defect in the frames (past the header) with no valid frame after it.
    let torn = scan(before).unwrap().defect.filter(|d| !d.valid_frames_after && d.offset >= 32);
    for (i, (name, _, data)) in segs.iter().enumerate() {
        let kept = match after.read(name) {
            Ok(now) if data.starts_with(&now) => now.len(),
            _ => 0,
        };
        // Only in the last segment file may the end go without quarantine.
        let end = match &torn {
            Some(d) if d.segment == *name && i + 1 == segs.len() => d.offset as usize,
            _ => data.len(),
        };
        let c = covered.get(name);
        assert!(
            (kept..end).all(|b| c.is_some_and(|c| c[b])),
            "bytes {kept}..{end} of {name} removed without quarantine"
        );
    }
}

fn prop(c: Case) -> TestResult {
    let shown = format!("{c:?}");
    match std::panic::catch_unwind(move || check(c)) {
        Ok(()) => TestResult::passed(),
        Err(_) => TestResult::error(shown),
    }
}

fn check(c: Case) {
    let cfg = config(&c);
    let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
    let mut durable_before = 0;
    let stop_at = match c.damage {
        Damage::Crash { at, .. } => Some(at % c.records.len()),
        _ => None,
    };
    for (i, r) in c.records.iter().enumerate() {
        if let Damage::LostSync { at } = c.damage {
            if at % c.records.len() == i {
                log.storage_mut().inject(Fault::LostSync);
            }
        }
        // With a fault armed, errors are expected; nothing else may fail.
        let faulty = log.storage().fault_pending();
        let res = log.append(r.version, &r.payload, 0, r.urgent);
        assert!(res.is_ok() || faulty, "{res:?}");
        if r.flush_after {
            let faulty = log.storage().fault_pending();
            let res = log.flush();
            assert!(res.is_ok() || faulty, "{res:?}");
        }
        if stop_at == Some(i) {
            log.storage_mut().inject(Fault::Sync);
            let _ = log.flush();
            break;
        }
    }
    if stop_at.is_none() {
        log.flush().unwrap();
    }
    durable_before = durable_before.max(log.durable_seq());
    let mut storage = log.into_storage();
    let mode = match c.damage {
        Damage::Crash { mode, .. } => mode,
        _ => CrashMode::Any,
    };
    storage.crash(c.seed, mode);

    // Damage durable bytes; `exact` is the number of records that must survive.
    let mut exact: Option<u64> = None;
    let segs = layout(&storage);
    let pick = |i: usize| &segs[i % segs.len()];
    match c.damage {
        Damage::Flip { file, offset, xor } if !segs.is_empty() => {
            let (name, base, data) = pick(file);
            if !data.is_empty() {
                let off = offset % data.len();
                exact = Some(seq_at(data, *base, off) - 1);
                storage.bytes_mut(name).unwrap()[off] ^= xor;
            }
        }
        Damage::CopyHeader { from, to } if segs.len() > 1 && from % segs.len() != to % segs.len() => {
            let (_, _, src) = pick(from);
            let (name, base, _) = pick(to);
            let h = src[..32].to_vec();
            storage.bytes_mut(name).unwrap()[..32].copy_from_slice(&h);
            exact = Some(base - 1);
        }
        Damage::ZeroHeader { file } if !segs.is_empty() => {
            let (name, base, _) = pick(file);
            storage.bytes_mut(name).unwrap()[..32].fill(0);
            exact = Some(base - 1);
        }
        Damage::Truncate { file, offset } if !segs.is_empty() => {
            let (name, base, data) = pick(file);
            let off = offset % (data.len() + 1);
            // Records wholly before the cut survive, nothing after it (a later segment no
            // longer continues the seqs). Cutting at the very end changes nothing.
            let keep = seq_at(data, *base, off) - 1;
            if off < data.len() {
                exact = Some(keep);
            }
            storage.truncate(name, off as u64).unwrap();
        }
        Damage::StraySegment { len, magic } => add_stray_segment(&mut storage, len, magic),
        _ => {}
    }

    let before = storage.clone();
    let (log, recovery) = Log::open(storage, cfg).unwrap();
    assert_cut_bytes_kept(&before, log.storage());
    let mut got = Vec::new();
    let mut reader = log.read_from(1);
    while let Some(rec) = reader.next().unwrap() {
        got.push((rec.seq, rec.version, rec.payload.to_vec()));
    }
    // Exactly a prefix, byte-identical.
    assert!(got.len() <= c.records.len());
    for (i, (seq, version, payload)) in got.iter().enumerate() {
        let want = &c.records[i];
        assert_eq!((*seq, *version, payload), (i as u64 + 1, want.version, &want.payload));
    }
    let n = got.len() as u64;
    assert_eq!(recovery.records, n);
    assert_eq!(log.last_seq(), n);
    match (&c.damage, exact) {
        (Damage::Crash { .. }, _) => {
            assert!(n >= durable_before, "lost durable records: {n} < {durable_before}")
        }
        (Damage::LostSync { .. }, _) => {}
        (_, Some(k)) => assert_eq!(n, k.min(durable_before), "{recovery:?}"),
        (_, None) => assert_eq!(n, durable_before),
    }
    // The recovered log is clean and keeps going: reopening finds no defect.
    let mut log = log;
    log.append(1, b"after", 0, true).unwrap();
    let (log, again) = Log::open(log.into_storage(), cfg).unwrap();
    assert_eq!((again.records, again.cut), (n + 1, None));
    assert_eq!(log.durable_seq(), n + 1);
}

#[test]
fn recovery_returns_exactly_a_prefix() {
    QuickCheck::new().tests(1500).quickcheck(prop as fn(Case) -> TestResult);
}

#[derive(Debug, Clone)]
struct StoreCase {
    case: Case,
    /// Record indexes after which a snapshot is taken (the second one compacts the log).
    snapshots: [usize; 2],
    /// Records appended after recovery.
    after: usize,
}

impl Arbitrary for StoreCase {
    fn arbitrary(g: &mut Gen) -> Self {
        StoreCase {
            case: Case::arbitrary(g),
            snapshots: [usize::arbitrary(g), usize::arbitrary(g)],
            after: usize::arbitrary(g) % 5 + 1,
        }
    }
}

type State = Vec<(u8, Vec<u8>)>;

fn encode_state(state: &State) -> Vec<u8> {
    let mut out = Vec::new();
    for (version, payload) in state {
        out.push(*version);
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

fn decode_state(mut bytes: &[u8]) -> Result<State, String> {
    let mut state = Vec::new();
    while let [version, l0, l1, rest @ ..] = bytes {
        let len = u16::from_le_bytes([*l0, *l1]) as usize;
        let payload = rest.get(..len).ok_or("short snapshot")?;
        state.push((*version, payload.to_vec()));
        bytes = &rest[len..];
    }
    if bytes.is_empty() {
        Ok(state)
    } else {
        Err("trailing snapshot bytes".into())
    }
}

fn apply(state: &mut State, _seq: u64, version: u8, payload: &[u8]) -> Result<(), String> {
    state.push((version, payload.to_vec()));
    Ok(())
}

fn restore_state(s: &Store<MemStorage>) -> (State, u64) {
    s.restore(decode_state, Vec::new, apply).unwrap()
}

fn store_budget() -> Budget {
    Budget { max_bytes: u64::MAX, urgent_reserve_bytes: 0, retention: Retention::default() }
}

fn open_store(storage: MemStorage, dir: &std::path::Path, cfg: LogConfig) -> Store<MemStorage> {
    let snaps = SnapshotStore::open(dir.join("snapshots.redb")).unwrap();
    let (s, recovery) = Store::open(storage, snaps, cfg, store_budget()).unwrap();
    if let Some(r) = &recovery.restarted_after_snapshot {
        assert!(r.log_last_seq < r.snapshot_seq, "{recovery:?}");
    }
    s
}

/// Moves the storage out of a store, closing its snapshot database.
fn close(mut s: Store<MemStorage>) -> MemStorage {
    std::mem::take(s.log_mut().storage_mut())
}

fn store_prop(c: StoreCase) -> TestResult {
    let shown = format!("{c:?}");
    match std::panic::catch_unwind(move || store_check(c)) {
        Ok(()) => TestResult::passed(),
        Err(_) => TestResult::error(shown),
    }
}

fn store_check(sc: StoreCase) {
    let c = &sc.case;
    let cfg = config(c);
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_store(MemStorage::new(), dir.path(), cfg);
    let n = c.records.len();
    let stop_at = match c.damage {
        Damage::Crash { at, .. } => Some(at % n),
        _ => None,
    };
    let snap_at = sc.snapshots.map(|i| i % n);
    for (i, r) in c.records.iter().enumerate() {
        if let Damage::LostSync { at } = c.damage {
            if at % n == i {
                s.log_mut().storage_mut().inject(Fault::LostSync);
            }
        }
        let faulty = s.log().storage().fault_pending();
        let res = s.append(r.version, &r.payload, 0, r.urgent);
        assert!(res.is_ok() || faulty, "{res:?}");
        if r.flush_after {
            let faulty = s.log().storage().fault_pending();
            let res = s.flush();
            assert!(res.is_ok() || faulty, "{res:?}");
        }
        if snap_at.contains(&i) {
            // The state after every record so far (a snapshot flushes them first).
            let state: State = c.records[..=i].iter().map(|r| (r.version, r.payload.clone())).collect();
            let faulty = s.log().storage().fault_pending();
            let res = s.snapshot(i as u64 + 1, &encode_state(&state));
            assert!(res.is_ok() || faulty, "{res:?}");
        }
        if stop_at == Some(i) {
            s.log_mut().storage_mut().inject(Fault::Sync);
            let _ = s.flush();
            break;
        }
    }
    if stop_at.is_none() {
        s.flush().unwrap();
    }
    let durable_before = s.log().durable_seq();
    let snapshot_seq = s.snapshots().latest().unwrap().map_or(0, |(seq, _)| seq);
    let mut storage = close(s);
    let mode = match c.damage {
        Damage::Crash { mode, .. } => mode,
        _ => CrashMode::Any,
    };
    storage.crash(c.seed, mode);

    let segs = layout(&storage);
    let pick = |i: usize| &segs[i % segs.len()];
    match c.damage {
        Damage::Flip { file, offset, xor } if !segs.is_empty() => {
            let (name, _, data) = pick(file);
            if !data.is_empty() {
                storage.bytes_mut(name).unwrap()[offset % data.len()] ^= xor;
            }
        }
        Damage::CopyHeader { from, to } if segs.len() > 1 && from % segs.len() != to % segs.len() => {
            let h = pick(from).2[..32].to_vec();
            storage.bytes_mut(&pick(to).0).unwrap()[..32].copy_from_slice(&h);
        }
        Damage::ZeroHeader { file } if !segs.is_empty() => {
            storage.bytes_mut(&pick(file).0).unwrap()[..32].fill(0);
        }
        Damage::Truncate { file, offset } if !segs.is_empty() => {
            let (name, _, data) = pick(file);
            storage.truncate(name, (offset % (data.len() + 1)) as u64).unwrap();
        }
        Damage::StraySegment { len, magic } => add_stray_segment(&mut storage, len, magic),
        _ => {}
    }

    let before = storage.clone();
    let mut s = open_store(storage, dir.path(), cfg);
    assert_cut_bytes_kept(&before, s.log().storage());
    let (state, last) = restore_state(&s);
    // Exactly a prefix of what was appended, reaching at least the snapshot.
    let want: State = c.records[..last as usize].iter().map(|r| (r.version, r.payload.clone())).collect();
    assert_eq!(state, want);
    assert!(last >= snapshot_seq, "{last} < snapshot {snapshot_seq}");
    if let Damage::Crash { .. } = c.damage {
        assert!(last >= durable_before, "lost durable: {last} < {durable_before}");
    }
    // Records appended after recovery continue right after the restored state...
    let mut expected = state;
    for k in 0..sc.after {
        let payload = format!("after {k}").into_bytes();
        let seq = s.append(3, &payload, 0, false).unwrap().seq;
        assert_eq!(seq, last + 1 + k as u64);
        expected.push((3, payload));
    }
    s.flush().unwrap();
    let end = last + sc.after as u64;
    // ...and no later restore skips them, after a reopen too.
    assert_eq!(restore_state(&s), (expected.clone(), end));
    let storage = close(s);
    let snaps = SnapshotStore::open(dir.path().join("snapshots.redb")).unwrap();
    let (s, again) = Store::open(storage, snaps, cfg, store_budget()).unwrap();
    assert_eq!((again.cut, again.restarted_after_snapshot), (None, None));
    assert_eq!(restore_state(&s), (expected, end));
}

#[test]
fn store_recovery_never_skips_new_records() {
    QuickCheck::new().tests(400).quickcheck(store_prop as fn(StoreCase) -> TestResult);
}
