//! Flash figures for the event log (issue 2). Run: `cargo bench --bench flash`.
//!
//! Prints `figure: NAME VALUE UNIT` lines:
//! - `disk_bytes_per_usage_record`: on-disk bytes per usage record, framing and segment
//!   headers included, over the router-load run (target ≤ 32).
//! - `router_load_write_bytes_per_hour`, `router_load_fsyncs_per_hour`: 24 h of virtual
//!   time on a simulated router (10 neighbours, one usage record per neighbour per minute from
//!   the real usage machine, one urgent record per hour standing in for a payment), the
//!   default flush policy and the real journal (max delay, snapshots, compaction), on real
//!   files. Bytes from /proc/self/io `write_bytes` (log and snapshots); fsyncs counted at the
//!   storage layer plus redb's commits (targets ≤ 512 KB and ≤ 60 per hour).
//! - `append_events_per_s` (group commit, ≥ 500,000) and `replay_events_per_s` (scan + CRC +
//!   decode + apply, ≥ 3,000,000) over 1,000,000 usage events.
//! - `redb_over_log_write_bytes_ratio`, `redb_over_log_append_time_ratio`: the same 1,000,000
//!   events, same batches, with redb as the log.
//! - `salvaged_fraction_mid_corruption` (issue 8, target 1.0): a flipped byte in the frame in
//!   the middle of a 20,000-record log (default segments); the intact records after it that
//!   recovery keeps, over all of them. With it, `salvage_recovery_ms` (the open that salvages),
//!   and `salvage_ms_per_garbage_segment`: recovering a 256 KiB segment whose every byte after
//!   the first frame is random (the worst case for the resync search).
#![allow(clippy::disallowed_methods)] // A benchmark measures time on purpose.

use flash_layout::{scan, DirStorage, Storage, Store};
use lastmile::events::billing::BillingEvent;
use lastmile::events::chain::Amount;
use lastmile::events::usage::{CounterSample, Link, NeighbourId, UsageInput, UsageTimer};
use lastmile::events::{codec, Event, Fold, Machine, Stamp, EVENT_VERSION};
use lastmile::machines::usage::{UsageConfig, UsageLedger, UsageMachine};
use lastmile::machines::NodeState;
use lastmile::os::flash::FlashConfig;
use lastmile::os::journal::{Journal, JournalConfig, Source, SourceId};
use lastmile::rng::SplitMix64;
use std::path::Path;
use std::time::Instant;

const EVENTS: u64 = 1_000_000;
const HOURS: u64 = 24;
const NEIGHBOURS: u32 = 10;

fn figure(name: &str, value: f64, unit: &str) {
    println!("figure: {name} {value:.2} {unit}");
}

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io is readable on Linux");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes line")
}

fn dir_bytes(dir: &Path, pick: impl Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir)
        .expect("bench dir")
        .filter_map(|e| e.ok())
        .filter(|e| pick(&e.file_name().to_string_lossy()))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// A temp dir on the same disk as the target dir (/tmp may be tmpfs, which writes nothing).
fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).expect("target dir");
    tempfile::tempdir_in(base).expect("bench dir")
}

/// Realistic usage traffic: up to ~100 MB per neighbour per minute, prices of an 18-decimal
/// token around $1/GB.
fn router_load() {
    let dir = bench_dir();
    let config = FlashConfig::default();
    let (store, _) = Store::open_dir(dir.path(), config.log, config.budget).expect("store");
    let journal_config = JournalConfig::default();
    let mut journal: Journal<()> =
        Journal::new(store, NodeState::default(), journal_config, Stamp::new(1, 0));
    let source = Source::new(SourceId(1));
    let usage = UsageConfig::default();
    let mut machine = UsageMachine::new(usage, UsageLedger::default(), Stamp::new(1, 0));
    let links: Vec<Link> = (1..=NEIGHBOURS).map(|n| Link::new(n, 1000 + n)).collect();
    let mut rng = SplitMix64::new(42);
    let mut counters = vec![(0u64, 0u64); links.len()];
    for l in &links {
        let price = 200_000 + rng.below(400_000);
        machine.handle(Stamp::new(1, 0), UsageInput::PriceSelected { link: *l, price_per_byte: Some(price) });
    }

    let bytes_before = write_bytes();
    let end = Stamp::new(1, HOURS * 3_600_000);
    let mut now;
    let mut next_payment = Stamp::new(1, 3_600_000);
    let mut records = 0u64;
    let mut snapshots_seen = 0u64;
    let mut last_snapshot = None;
    loop {
        // Jump to the next deadline: the machine's, the journal's, or the hourly payment.
        let mut next = machine.poll_timeout().map(|(at, _)| at).unwrap_or(end);
        if let Some(d) = journal.flush_deadline() {
            next = next.min(d);
        }
        next = next.min(next_payment);
        if next >= end {
            break;
        }
        now = next;
        let mut events: Vec<Event> = Vec::new();
        if let Some((at, timer)) = machine.poll_timeout() {
            if at <= now {
                machine.handle_timeout(now, timer);
                if timer == UsageTimer::Poll {
                    let samples = links
                        .iter()
                        .zip(counters.iter_mut())
                        .map(|(link, c)| {
                            c.0 += rng.below(17_000_000);
                            c.1 += rng.below(17_000_000);
                            CounterSample { link: *link, tx_bytes: c.0, rx_bytes: c.1 }
                        })
                        .collect();
                    machine.handle(now, UsageInput::Counters(samples));
                }
            }
        }
        while let Some(e) = machine.poll_event() {
            records += 1;
            events.push(e.into());
        }
        while machine.poll_effect().is_some() {}
        if now >= next_payment {
            // Stand-in for a payment intent: an urgent money record of similar size, flushed
            // at once.
            events.push(Event::Billing(BillingEvent::Forgiven {
                neighbour: NeighbourId(1),
                amount: Amount(u128::from(u64::MAX - now.tick_ms)),
                reason: String::new(),
            }));
            next_payment = now.plus_ms(3_600_000);
        }
        let _ = journal.append(now, source, events, Vec::new());
        let _ = journal.on_timer(now);
        let snap = journal.store().snapshots().seqs().expect("snapshot seqs").last().copied();
        if snap != last_snapshot {
            snapshots_seen += 1;
            last_snapshot = snap;
        }
    }
    let _ = journal.flush(end);
    let written = write_bytes() - bytes_before;
    let log_syncs = journal.store().log().storage().syncs();
    // redb commits a snapshot with one fsync of its data and one of its header (two-phase
    // commit); counted as two to stay on the safe side.
    let fsyncs = log_syncs + 2 * snapshots_seen;
    let segment_bytes = dir_bytes(dir.path(), |n| n.starts_with("seg-"));
    let log_records = journal.store().log().last_seq();
    figure("disk_bytes_per_usage_record", segment_bytes as f64 / log_records as f64, "B");
    figure("router_load_usage_records_per_hour", records as f64 / HOURS as f64, "records");
    figure("router_load_write_bytes_per_hour", written as f64 / HOURS as f64, "B");
    figure("router_load_fsyncs_per_hour", fsyncs as f64 / HOURS as f64, "fsyncs");
    figure("router_load_snapshots_per_hour", snapshots_seen as f64 / HOURS as f64, "snapshots");
    figure("router_load_flash_bytes_after_24h", journal.store().usage_bytes() as f64, "B");
}

fn usage_event(rng: &mut SplitMix64, n: u64) -> Event {
    Event::Usage(lastmile::events::usage::UsageEvent::Accrued(lastmile::events::usage::UsageRecord {
        link: Link::new(1 + (n % 10) as u32, 1000 + (n % 10) as u32),
        tx_bytes: rng.below(100_000_000),
        rx_bytes: rng.below(100_000_000),
        price_per_byte: Some(200_000 + rng.below(400_000)),
    }))
}

fn append_and_replay() -> (u64, f64) {
    let dir = bench_dir();
    let config = FlashConfig::default();
    let (mut store, _) = Store::open_dir(
        dir.path(),
        config.log,
        flash_layout::Budget { max_bytes: u64::MAX, ..config.budget },
    )
    .expect("store");
    let mut rng = SplitMix64::new(7);
    let events: Vec<Event> = (0..EVENTS).map(|n| usage_event(&mut rng, n)).collect();
    let mut payload = Vec::with_capacity(64);
    let before = write_bytes();
    let started = Instant::now();
    for e in &events {
        payload.clear();
        codec::encode(e, &mut payload);
        store.append(EVENT_VERSION, &payload, 0, false).expect("append");
    }
    store.flush().expect("flush");
    let append_s = started.elapsed().as_secs_f64();
    let written = write_bytes() - before;
    figure("append_events_per_s", EVENTS as f64 / append_s, "events/s");

    let storage = DirStorage::open(dir.path()).expect("storage");
    let started = Instant::now();
    let scanned = scan(&storage).expect("scan");
    let mut reader = scanned.reader(&storage, 1);
    let mut state = NodeState::default();
    let mut n = 0u64;
    while let Some(rec) = reader.next().expect("read") {
        let event = codec::decode(rec.version, rec.payload).expect("decode");
        state.apply(&event);
        n += 1;
    }
    let replay_s = started.elapsed().as_secs_f64();
    assert_eq!(n, EVENTS);
    assert_eq!(state.usage.links.len(), 10);
    figure("replay_events_per_s", n as f64 / replay_s, "events/s");
    (written, append_s)
}

fn redb_as_log(log_written: u64, log_append_s: f64) {
    const LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
    let dir = bench_dir();
    let db = redb::Database::create(dir.path().join("log.redb")).expect("redb");
    let batch = FlashConfig::default().log.flush.max_records as u64;
    let mut rng = SplitMix64::new(7);
    let events: Vec<Event> = (0..EVENTS).map(|n| usage_event(&mut rng, n)).collect();
    let mut payload = Vec::with_capacity(64);
    let before = write_bytes();
    let started = Instant::now();
    for (chunk_no, chunk) in events.chunks(batch as usize).enumerate() {
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(LOG).expect("table");
            for (i, e) in chunk.iter().enumerate() {
                payload.clear();
                codec::encode(e, &mut payload);
                table.insert(chunk_no as u64 * batch + i as u64 + 1, payload.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let redb_s = started.elapsed().as_secs_f64();
    let written = write_bytes() - before;
    figure("redb_write_bytes_per_event", written as f64 / EVENTS as f64, "B");
    figure("log_write_bytes_per_event", log_written as f64 / EVENTS as f64, "B");
    figure("redb_over_log_write_bytes_ratio", written as f64 / log_written as f64, "x");
    figure("redb_over_log_append_time_ratio", redb_s / log_append_s, "x");
}

/// A flipped byte in the middle of the log: how much of what follows recovery keeps.
fn salvage() {
    let dir = bench_dir();
    let config = FlashConfig::default();
    let (mut store, _) = Store::open_dir(dir.path(), config.log, config.budget).expect("store");
    let mut rng = SplitMix64::new(8);
    let n = 20_000u64;
    let mut payload = Vec::new();
    for i in 0..n {
        payload.clear();
        codec::encode(&usage_event(&mut rng, i), &mut payload);
        store.append(EVENT_VERSION, &payload, 0, false).expect("append");
    }
    store.flush().expect("flush");
    drop(store);
    // Flip a payload byte of record n/2.
    let storage = DirStorage::open(dir.path()).expect("dir");
    let found = scan(&storage).expect("scan");
    let mid = n / 2;
    let seg = found.segments.iter().rev().find(|s| s.base_seq <= mid).expect("a segment");
    let path = dir.path().join(&seg.name);
    let mut bytes = std::fs::read(&path).expect("read");
    let mut at = 32usize;
    for _ in seg.base_seq..mid {
        at += 8 + u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
    }
    bytes[at + 9] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let started = Instant::now();
    let (store, recovery) = Store::open_dir(dir.path(), config.log, config.budget).expect("reopen");
    let took = started.elapsed();
    let after = store.log().read_from(mid + 1);
    let mut kept = 0u64;
    let mut after = after;
    while after.next().expect("read").is_some() {
        kept += 1;
    }
    assert_eq!(recovery.holes, vec![(mid, mid + 1)], "exactly the damaged record is lost");
    figure("salvaged_fraction_mid_corruption", kept as f64 / (n - mid) as f64, "");
    figure("salvage_recovery_ms", took.as_secs_f64() * 1e3, "ms");

    // Worst case for the search: a whole segment of garbage after its first frame.
    let dir = bench_dir();
    let mut storage = DirStorage::open(dir.path()).expect("dir");
    let mut seg = flash_layout::segment::encode_header(1).to_vec();
    flash_layout::frame::encode(&mut seg, 1, 1, b"first").expect("frame");
    while seg.len() < 256 * 1024 {
        seg.push((rng.next_u64() >> 24) as u8);
    }
    storage.write_atomic(&flash_layout::segment::segment_name(1), &seg).expect("write");
    let started = Instant::now();
    let found = scan(&storage).expect("scan");
    let took = started.elapsed();
    assert_eq!(found.records, 1);
    figure("salvage_ms_per_garbage_segment", took.as_secs_f64() * 1e3, "ms");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    salvage();
    router_load();
    let (written, append_s) = append_and_replay();
    redb_as_log(written, append_s);
}
