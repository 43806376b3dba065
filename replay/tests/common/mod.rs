//! Fixtures shared by the command tests: logs written with flash-layout and lastmile's codec
//! in temporary directories, and a runner for the `replay` binary.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use flash_layout::{Budget, DirStorage, FlushPolicy, Log, LogConfig, Retention, Store};
use lastmile::events::codec::{encode_to_vec, EVENT_VERSION};
use lastmile::events::incident::{IncidentEvent, IncidentKind};
use lastmile::events::usage::{CounterReset, Link, UsageEvent, UsageRecord};
use lastmile::events::{Event, Fold};
use lastmile::machines::NodeState;

/// Small segments, so that a few dozen records span several files; every append is flushed.
pub fn config() -> LogConfig {
    LogConfig { segment_bytes: 128, flush: FlushPolicy { max_records: 1, max_bytes: 1 << 20, max_value: 0 } }
}

/// A budget that never refuses; `keep_all` keeps every segment whatever the snapshots cover.
pub fn budget(keep_all: bool) -> Budget {
    Budget {
        max_bytes: 1 << 30,
        urgent_reserve_bytes: 0,
        retention: if keep_all {
            Retention { min_records: u64::MAX, min_bytes: 0 }
        } else {
            Retention::default()
        },
    }
}

pub fn open_store(dir: &Path, keep_all: bool) -> Store<DirStorage> {
    Store::open_dir(dir, config(), budget(keep_all)).unwrap().0
}

/// A log without a snapshot database.
pub fn open_log(dir: &Path) -> Log<DirStorage> {
    Log::open(DirStorage::open(dir).unwrap(), config()).unwrap().0
}

pub fn append(store: &mut Store<DirStorage>, event: &Event) -> u64 {
    let payload = encode_to_vec(event);
    store.append(EVENT_VERSION, &payload, event.value(), event.is_urgent()).unwrap().seq
}

pub fn accrued(link: u32, tx: u64, rx: u64, price: Option<u64>) -> Event {
    Event::Usage(UsageEvent::Accrued(UsageRecord {
        link: Link::new(link, 100 + link),
        tx_bytes: tx,
        rx_bytes: rx,
        price_per_byte: price,
    }))
}

/// The `i`-th event of the standard fixture: mostly usage on three links, a reset and an
/// incident opened and closed.
pub fn event(i: u64) -> Event {
    match i {
        7 => Event::Usage(UsageEvent::CounterReset(CounterReset {
            link: Link::new(1, 101),
            tx_reset: true,
            rx_reset: false,
            tx_counted: 700,
            rx_counted: 70,
            tx_observed: 5,
            rx_observed: 80,
        })),
        10 => Event::Incident(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 300 }),
        16 => Event::Incident(IncidentEvent::Closed { kind: IncidentKind::FlashFull }),
        18 => Event::Incident(IncidentEvent::Opened { kind: IncidentKind::LogWriteFailed, detail: 5 }),
        i => accrued((i % 3) as u32, 100 * i, 10 * i, (i % 4 != 0).then_some(i % 5 + 1)),
    }
}

pub fn fold(events: impl IntoIterator<Item = Event>) -> NodeState {
    let mut state = NodeState::default();
    for e in events {
        state.apply(&e);
    }
    state
}

/// The standard fixture: records 1..=20, and a snapshot of the fold of 1..=12.
pub fn with_snapshot(dir: &Path, keep_all: bool) {
    let mut store = open_store(dir, keep_all);
    for i in 1..=20 {
        assert_eq!(append(&mut store, &event(i)), i);
        if i == 12 {
            store.snapshot(12, &fold((1..=12).map(event)).encode_snapshot()).unwrap();
        }
    }
    store.flush().unwrap();
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn replay(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_replay")).args(args).output().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn replay_in(dir: &Path, command: &str, extra: &[&str]) -> Run {
    let dir = dir.to_str().unwrap();
    let mut args = vec![command, dir];
    args.extend_from_slice(extra);
    replay(&args)
}

/// Every file in `dir` with its bytes.
pub fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Byte offset of record `index` (0-based) in a segment file.
pub fn frame_offset(segment: &[u8], index: usize) -> usize {
    let mut at = 32;
    for _ in 0..index {
        let len = u16::from_le_bytes([segment[at + 2], segment[at + 3]]) as usize;
        at += 8 + len;
    }
    at
}

pub fn segment_path(dir: &Path, base_seq: u64) -> std::path::PathBuf {
    dir.join(flash_layout::segment::segment_name(base_seq))
}

/// Base seq of the first segment file in `dir`.
pub fn first_segment_base(dir: &Path) -> u64 {
    contents(dir).keys().find_map(|name| flash_layout::segment::parse_segment_name(name)).unwrap()
}

/// Records 1..=20 with snapshots of the fold at 12 and at 18 (compaction keys on the older).
pub fn with_two_snapshots(dir: &Path, keep_all: bool) {
    let mut store = open_store(dir, keep_all);
    for i in 1..=20 {
        assert_eq!(append(&mut store, &event(i)), i);
        if i == 12 || i == 18 {
            store.snapshot(i, &fold((1..=i).map(event)).encode_snapshot()).unwrap();
        }
    }
    store.flush().unwrap();
}

/// Segment files in `dir`, in log order, with their base seqs.
pub fn segments(dir: &Path) -> Vec<(u64, std::path::PathBuf)> {
    contents(dir)
        .into_keys()
        .filter_map(|name| {
            flash_layout::segment::parse_segment_name(&name).map(|base| (base, dir.join(name)))
        })
        .collect()
}

/// Flips a payload bit of record `seq`: a CRC mismatch, with valid frames after it.
pub fn flip_payload(dir: &Path, seq: u64) {
    let segs = segments(dir);
    let (base, path) = segs.iter().rev().find(|(base, _)| *base <= seq).unwrap();
    let mut bytes = fs::read(path).unwrap();
    let at = frame_offset(&bytes, (seq - base) as usize) + 8;
    bytes[at] ^= 0x40;
    fs::write(path, &bytes).unwrap();
}

/// A copy of the directory `dir` (flat: files only).
pub fn copy_dir(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in contents(dir) {
        fs::write(copy.path().join(name), bytes).unwrap();
    }
    copy
}

/// What recovery does to `dir`: `Store::open` (the node's start), which writes.
pub fn recover(dir: &Path) -> flash_layout::Recovery {
    Store::open_dir(dir, config(), budget(true)).unwrap().1
}
