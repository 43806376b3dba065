//! Crash and corruption properties of the log over `MemStorage` (FORMAT.md "Recovery").
//!
//! Arbitrary records are appended with arbitrary flush points and segment sizes, then the
//! storage is damaged in one way, and the log is reopened. In every case every recovered
//! record is byte for byte the record appended with that seq: a corrupt or misplaced record
//! is never accepted. Further, per damage:
//! - crash model (unsynced bytes kept, torn, lost or garbage): the recovered records are a
//!   prefix, and nothing at or below the `durable_seq()` reported before the crash is lost;
//! - a flipped byte: exactly the record whose frame holds it is lost (none, for a header);
//! - a copied or zeroed segment header: nothing is lost (the file name gives the seqs);
//! - a truncated segment file: exactly the records whose frames reached past the cut;
//!   the later segments are kept;
//! - a lying fsync: only the first guarantee holds (the log cannot know what never reached
//!   flash);
//! - a stray file named like the next segment (short, or without the segment magic): all the
//!   records are kept and the file is quarantined.
//!
//! In every case no seq is reused: the next record's seq is above every record that was
//! durable (except after a truncation of the last segment file, which is indistinguishable
//! from a crash during a write); and every byte recovery removed that was durable is in a
//! quarantine file it wrote (`assert_removed_bytes_kept`, checked against the layout and
//! durable lengths known before the damage, not against recovery's own judgement).
//!
//! The same damage under a [`Store`] with snapshots (`store_recovery_never_skips_new_records`):
//! the restored state is the snapshot plus exactly the recovered records after it, reaching at
//! least the snapshot, and every record appended after recovery is in every later restore,
//! after a reopen too.

use std::collections::{BTreeMap, BTreeSet};

use flash_layout::log::{is_quarantine_name, quarantine_pieces};
use flash_layout::segment::segment_name;
use flash_layout::{
    Budget, CrashMode, Fault, FlushPolicy, Log, LogConfig, MemStorage, Retention, SnapshotStore, Storage,
    Store,
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
    /// After recovery and more records, a second flipped byte: (file, offset, xor). Damage to
    /// a log that already holds holes.
    again: (usize, usize, u8),
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
            again: (usize::arbitrary(g), usize::arbitrary(g), u8::arbitrary(g) | 1),
        }
    }
}

fn config(c: &Case) -> LogConfig {
    LogConfig {
        segment_bytes: c.segment_bytes,
        flush: FlushPolicy { max_records: c.max_records, max_bytes: 1 << 20, max_value: u128::MAX },
    }
}

/// A segment file before the damage: name, base seq, bytes, and where each record's frame is.
struct SegFile {
    name: String,
    data: Vec<u8>,
    /// (seq, offset, len) of every frame, from our own (trusted) encoding.
    frames: Vec<(u64, usize, usize)>,
}

fn layout(s: &MemStorage) -> Vec<SegFile> {
    s.list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("seg-"))
        .map(|name| {
            let data = s.read(&name).unwrap();
            let base = u64::from_str_radix(&name[4..20], 16).unwrap();
            let mut frames = Vec::new();
            let (mut pos, mut seq) = (32usize, base);
            while pos + 8 <= data.len() {
                let len = 8 + u16::from_le_bytes([data[pos + 2], data[pos + 3]]) as usize;
                if pos + len > data.len() {
                    break; // an unsynced frame cut by a crash
                }
                if data[pos] == 0xA8 {
                    // A hole frame (recovery's): it takes `count` seqs and holds no record.
                    let count = u64::from_le_bytes(data[pos + 8..pos + 16].try_into().unwrap());
                    pos += len;
                    seq += count;
                    continue;
                }
                frames.push((seq, pos, len));
                pos += len;
                seq += 1;
            }
            SegFile { name, data, frames }
        })
        .collect()
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
    let next = layout(storage).last().map_or(1, |f| u64::from_str_radix(&f.name[4..20], 16).unwrap() + 1);
    storage.write_atomic(&segment_name(next), &stray_bytes(len, magic)).unwrap();
}

/// Applies `damage` to `storage` (after the crash), returning the seqs it destroys when that
/// is known exactly, and whether it truncated the last segment file.
fn apply_damage(storage: &mut MemStorage, damage: &Damage) -> (Option<BTreeSet<u64>>, bool) {
    let segs = layout(storage);
    let pick = |i: usize| &segs[i % segs.len()];
    let mut lost = None;
    let mut truncated_last = false;
    match *damage {
        Damage::Flip { file, offset, xor } if !segs.is_empty() => {
            let f = pick(file);
            if !f.data.is_empty() {
                let off = offset % f.data.len();
                lost = Some(
                    f.frames
                        .iter()
                        .filter(|(_, o, l)| (*o..o + l).contains(&off))
                        .map(|(s, _, _)| *s)
                        .collect(),
                );
                storage.bytes_mut(&f.name).unwrap()[off] ^= xor;
            }
        }
        Damage::CopyHeader { from, to } if segs.len() > 1 && from % segs.len() != to % segs.len() => {
            let h = pick(from).data[..32].to_vec();
            storage.bytes_mut(&pick(to).name).unwrap()[..32].copy_from_slice(&h);
            lost = Some(BTreeSet::new());
        }
        Damage::ZeroHeader { file } if !segs.is_empty() => {
            storage.bytes_mut(&pick(file).name).unwrap()[..32].fill(0);
            lost = Some(BTreeSet::new());
        }
        Damage::Truncate { file, offset } if !segs.is_empty() => {
            let f = pick(file);
            let off = offset % (f.data.len() + 1);
            lost = Some(f.frames.iter().filter(|(_, o, l)| o + l > off).map(|(s, _, _)| *s).collect());
            truncated_last = std::ptr::eq(f, segs.last().unwrap()) && off < f.data.len();
            storage.truncate(&f.name, off as u64).unwrap();
        }
        Damage::StraySegment { len, magic } => {
            add_stray_segment(storage, len, magic);
            lost = Some(BTreeSet::new());
        }
        _ => {}
    }
    (lost, truncated_last)
}

/// The recovery rule (FORMAT.md "Recovery"): every durable byte of a segment file that
/// recovery did not keep in the log is in a quarantine file it wrote. "Kept" is judged from
/// the layout before the damage: the frames of recovered records, and a valid header. Bytes past a file's durable length (a crash) may go; so may the cut part of a last
/// segment file truncated by the damage (that looks exactly like a torn write).
fn assert_removed_bytes_kept(
    layout_before: &[SegFile],
    durable_len: &BTreeMap<String, u64>,
    damaged: &MemStorage,
    after: &MemStorage,
    recovered: &BTreeSet<u64>,
    torn_allowed_in: Option<&str>,
) {
    let old: Vec<String> = damaged.list().unwrap();
    let mut covered: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for q in after.list().unwrap() {
        if !is_quarantine_name(&q) || old.contains(&q) {
            continue;
        }
        let data = after.read(&q).unwrap();
        for p in quarantine_pieces(&data).expect("well-formed quarantine file") {
            let orig = damaged.read(p.name).unwrap();
            let from = p.offset as usize;
            assert_eq!(&orig[from..from + p.bytes.len()], p.bytes, "{q}: {}", p.name);
            covered.entry(p.name.to_string()).or_insert_with(|| vec![false; orig.len()])
                [from..from + p.bytes.len()]
                .fill(true);
        }
    }
    for name in old.iter().filter(|n| n.starts_with("seg-")) {
        let data = damaged.read(name).unwrap();
        let mut kept = vec![false; data.len()];
        if let Some(f) = layout_before.iter().find(|f| &f.name == name) {
            for (seq, o, l) in &f.frames {
                if recovered.contains(seq) && o + l <= data.len() && data[*o..o + l] == f.data[*o..o + l] {
                    kept[*o..o + l].fill(true);
                }
            }
        }
        // A valid header says nothing its file name does not: rewriting it (as format 2, say)
        // loses nothing. A damaged one must be kept in quarantine.
        let base = u64::from_str_radix(&name[4..20], 16).unwrap();
        if flash_layout::segment::decode_header(&data) == Ok(base) {
            kept[..32].fill(true);
        }
        let durable = durable_len.get(name).copied().unwrap_or(data.len() as u64) as usize;
        let c = covered.get(name);
        for (b, k) in kept.iter().enumerate() {
            let may_go = b >= durable || torn_allowed_in == Some(name.as_str());
            assert!(*k || may_go || c.is_some_and(|c| c[b]), "byte {b} of {name} removed without quarantine");
        }
    }
}

fn prop(c: Case) -> TestResult {
    let shown = format!("{c:?}");
    match std::panic::catch_unwind(move || check(c)) {
        Ok(()) => TestResult::passed(),
        Err(_) => TestResult::error(shown),
    }
}

/// Appends the case's records (with its crash or lying fsync), returning the storage and the
/// durable seq reported before it stopped.
fn write_case(c: &Case, log: &mut Log<MemStorage>) -> u64 {
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
    log.durable_seq()
}

fn durable_lengths(s: &MemStorage) -> BTreeMap<String, u64> {
    s.list().unwrap().into_iter().filter_map(|n| s.durable_len(&n).map(|l| (n, l))).collect()
}

fn check(c: Case) {
    let cfg = config(&c);
    let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
    let durable_before = write_case(&c, &mut log);
    let mut storage = log.into_storage();
    let durable_len = durable_lengths(&storage);
    let mode = match c.damage {
        Damage::Crash { mode, .. } => mode,
        _ => CrashMode::Any,
    };
    storage.crash(c.seed, mode);
    let before_damage = layout(&storage);
    let (lost, truncated_last) = apply_damage(&mut storage, &c.damage);

    let damaged = storage.clone();
    let (log, recovery) = Log::open(storage, cfg).unwrap();
    let mut got = Vec::new();
    let mut reader = log.read_from(1);
    while let Some(rec) = reader.next().unwrap() {
        got.push((rec.seq, rec.version, rec.payload.to_vec()));
    }
    // Every record recovered is the one appended with that seq, byte for byte.
    for (seq, version, payload) in &got {
        let want = &c.records[*seq as usize - 1];
        assert_eq!((*version, payload), (want.version, &want.payload), "record {seq}");
    }
    let recovered: BTreeSet<u64> = got.iter().map(|r| r.0).collect();
    assert_eq!(recovery.records, recovered.len() as u64);
    let durable: BTreeSet<u64> = (1..=durable_before).collect();
    match (&c.damage, &lost) {
        (Damage::Crash { .. }, _) => {
            let prefix: BTreeSet<u64> = (1..=recovered.len() as u64).collect();
            assert_eq!(recovered, prefix, "a crash leaves a prefix");
            assert!(
                recovered.is_superset(&durable),
                "lost durable records: {recovered:?} < {durable_before}"
            );
        }
        (Damage::LostSync { .. }, _) => {}
        (_, Some(lost)) => {
            let want: BTreeSet<u64> = durable.difference(lost).copied().collect();
            assert_eq!(recovered, want, "{recovery:?}");
        }
        (_, None) => assert_eq!(recovered, durable, "{recovery:?}"),
    }
    // No seq that a durable record had is given to a new record.
    if !truncated_last && !matches!(c.damage, Damage::LostSync { .. }) {
        assert!(
            log.last_seq() >= durable_before,
            "seq reuse: next {} <= {durable_before}",
            log.last_seq() + 1
        );
    }
    let torn_in = truncated_last.then(|| before_damage.last().map(|f| f.name.clone())).flatten();
    let lying = matches!(c.damage, Damage::LostSync { .. });
    if !lying {
        assert_removed_bytes_kept(
            &before_damage,
            &durable_len,
            &damaged,
            log.storage(),
            &recovered,
            torn_in.as_deref(),
        );
    }
    // The recovered log is clean and keeps going: reopening finds no damage.
    let mut log = log;
    let next = log.last_seq() + 1;
    for k in 0..3u8 {
        assert_eq!(log.append(1, &[b'a', k], 0, true).unwrap().seq, next + u64::from(k));
    }
    let (log, again) = Log::open(log.into_storage(), cfg).unwrap();
    assert!(again.damage.is_empty(), "{again:?}");
    assert_eq!((again.records, log.durable_seq()), (recovered.len() as u64 + 3, next + 2));
    // Damage again, now to a log that may hold holes: still exactly the record hit is lost,
    // and no seq is reused.
    let mut storage = log.into_storage();
    let segs = layout(&storage);
    let (file, offset, xor) = c.again;
    let f = &segs[file % segs.len()];
    let off = offset % f.data.len();
    let hit: BTreeSet<u64> =
        f.frames.iter().filter(|(_, o, l)| (*o..o + l).contains(&off)).map(|(s, _, _)| *s).collect();
    storage.bytes_mut(&f.name).unwrap()[off] ^= xor;
    let before: BTreeSet<u64> = recovered.iter().copied().chain(next..next + 3).collect();
    let damaged = storage.clone();
    let (log, second) = Log::open(storage, cfg).unwrap();
    let mut now = BTreeSet::new();
    let mut reader = log.read_from(1);
    while let Some(rec) = reader.next().unwrap() {
        now.insert(rec.seq);
    }
    assert_eq!(
        now,
        before.difference(&hit).copied().collect(),
        "a second damage loses exactly the record hit: {} byte {off} ({:#x}) ^ {xor:#x}, format {}, hit {hit:?}, {second:?}, layout {:?}",
        f.name,
        f.data[off],
        f.data[4],
        layout(&damaged).iter().map(|f| (f.name.clone(), f.data.len(), f.frames.clone())).collect::<Vec<_>>()
    );
    assert!(log.last_seq() >= next + 2, "seq reuse after a second damage");
}

#[test]
fn recovery_keeps_every_intact_record_and_reuses_no_seq() {
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
    Store::open(storage, snaps, cfg, store_budget()).unwrap().0
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
    apply_damage(&mut storage, &c.damage);

    let mut s = open_store(storage, dir.path(), cfg);
    let (state, last) = restore_state(&s);
    // The snapshot, then exactly the recovered records after it, in seq order.
    let mut tail = Vec::new();
    let mut reader = s.log().read_from(snapshot_seq + 1);
    while let Some(rec) = reader.next().unwrap() {
        let want = &c.records[rec.seq as usize - 1];
        assert_eq!((rec.version, rec.payload), (want.version, want.payload.as_slice()), "record {}", rec.seq);
        tail.push((rec.version, rec.payload.to_vec()));
    }
    let base: State =
        c.records[..snapshot_seq as usize].iter().map(|r| (r.version, r.payload.clone())).collect();
    let want: State = base.into_iter().chain(tail).collect();
    assert_eq!(state, want);
    assert!(last >= snapshot_seq, "{last} < snapshot {snapshot_seq}");
    if let Damage::Crash { .. } = c.damage {
        assert!(
            s.log().last_seq() >= durable_before,
            "lost durable: {} < {durable_before}",
            s.log().last_seq()
        );
    }
    assert!(s.log().last_seq() >= snapshot_seq, "a new record would reuse a seq the snapshot covers");
    // Records appended after recovery continue right after the log's end...
    let mut expected = state;
    let first_new = s.log().last_seq() + 1;
    for k in 0..sc.after {
        let payload = format!("after {k}").into_bytes();
        let seq = s.append(3, &payload, 0, false).unwrap().seq;
        assert_eq!(seq, first_new + k as u64);
        expected.push((3, payload));
    }
    s.flush().unwrap();
    let end = first_new + sc.after as u64 - 1;
    // ...and no later restore skips them, after a reopen too.
    assert_eq!(restore_state(&s), (expected.clone(), end));
    let storage = close(s);
    let snaps = SnapshotStore::open(dir.path().join("snapshots.redb")).unwrap();
    let (s, again) = Store::open(storage, snaps, cfg, store_budget()).unwrap();
    assert!(again.damage.is_empty() && again.continued_after_snapshot.is_none(), "{again:?}");
    assert_eq!(restore_state(&s), (expected, end));
}

#[test]
fn store_recovery_never_skips_new_records() {
    QuickCheck::new().tests(400).quickcheck(store_prop as fn(StoreCase) -> TestResult);
}
