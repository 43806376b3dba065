use super::*;
use crate::events::billing::BillingEvent;
use crate::events::chain::Amount;
use crate::events::usage::{Link, NeighbourId, UsageEvent, UsageRecord};
use flash_layout::{Budget, Fault, FlushPolicy, Log, LogConfig, MemStorage, Retention, SnapshotStore};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::collections::BTreeSet;

fn usage(n: u64) -> Event {
    Event::Usage(UsageEvent::Accrued(UsageRecord {
        link: Link::new(1, 2),
        tx_bytes: 1000 + n,
        rx_bytes: 900 + n,
        price_per_byte: Some(3),
    }))
}

fn at(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

const A: Source = Source { id: SourceId(1), epoch: 0 };

struct Fixture {
    _dir: tempfile::TempDir,
    journal: Journal<&'static str, MemStorage>,
}

/// Bytes an empty store already uses (the snapshot database file).
fn empty_store_bytes() -> u64 {
    journal(roomy(), JournalConfig::default()).journal.store().usage_bytes()
}

fn journal(budget: Budget, config: JournalConfig) -> Fixture {
    journal_over(MemStorage::new(), budget, config)
}

fn journal_over(storage: MemStorage, budget: Budget, config: JournalConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let snapshots = SnapshotStore::open(dir.path().join("snapshots.redb")).expect("snapshot store");
    let log = LogConfig {
        segment_bytes: 512,
        flush: FlushPolicy { max_records: 1000, max_bytes: 1 << 20, max_value: u128::MAX },
    };
    let (store, _) = Store::open(storage, snapshots, log, budget).expect("store opens");
    Fixture { _dir: dir, journal: Journal::new(store, NodeState::default(), config, at(0)) }
}

fn roomy() -> Budget {
    Budget { max_bytes: 1 << 30, urgent_reserve_bytes: 0, retention: Retention::default() }
}

fn released<T>(s: Settled<T>) -> Vec<T> {
    assert!(
        s.refusals.is_empty(),
        "unexpected refusal: {:?}",
        s.refusals.iter().map(|r| &r.reason).collect::<Vec<_>>()
    );
    s.released
}

/// Every record in the log, after a crash that keeps nothing unsynced: what is really durable.
fn durable_records(j: &Journal<&'static str, MemStorage>) -> Vec<Event> {
    let mut storage = j.store().log().storage().clone();
    storage.crash(0, flash_layout::CrashMode::Lost);
    let (log, _) = Log::open(storage, LogConfig::default()).expect("log opens");
    let mut reader = log.read_from(1);
    let mut out = Vec::new();
    while let Some(rec) = reader.next().expect("readable") {
        out.push(codec::decode(rec.version, rec.payload).expect("decodes"));
    }
    out
}

#[test]
fn held_effects_leave_only_after_their_events_are_durable_and_in_order() {
    let mut f = journal(roomy(), JournalConfig { max_delay_ms: 500, ..JournalConfig::default() });
    let j = &mut f.journal;
    assert_eq!(released(j.append(at(0), A, vec![usage(1)], vec!["pay-1"])), Vec::<&str>::new());
    assert_eq!(released(j.append(at(100), A, vec![usage(2)], vec!["pay-2"])), Vec::<&str>::new());
    assert_eq!(j.durable_seq(), Seq(0));
    assert_eq!(j.flush_deadline(), Some(at(500)), "the oldest pending record sets the deadline");
    assert_eq!(released(j.on_timer(at(499))), Vec::<&str>::new());
    assert_eq!(released(j.on_timer(at(500))), vec!["pay-1", "pay-2"]);
    assert_eq!(j.durable_seq(), Seq(2));
    assert_eq!(j.flush_deadline(), None);
    // Nothing pending: a held effect with no new events leaves at once.
    assert_eq!(released(j.append(at(600), A, vec![], vec!["ack"])), vec!["ack"]);
    assert_eq!(j.state().usage.links[&Link::new(1, 2)].records, 2);
}

#[test]
fn a_failed_fsync_releases_nothing_and_the_retry_waits_for_its_back_off() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    assert!(released(j.append(at(0), A, vec![usage(1)], vec!["pay"])).is_empty());
    j.store_mut().log_mut().storage_mut().inject(Fault::Sync);
    assert!(released(j.on_timer(at(120_000))).is_empty());
    assert_eq!((j.durable_seq(), j.held(), j.failing()), (Seq(0), 1, true));
    assert_eq!(j.flush_deadline(), Some(at(120_100)), "retried after 100 ms, not at once");
    assert!(released(j.on_timer(at(120_050))).is_empty(), "not before its back-off");
    assert_eq!(released(j.on_timer(at(120_100))), vec!["pay"]);
    assert_eq!((j.durable_seq(), j.failing()), (Seq(3), false), "the outage is on the log: opened, closed");
    let kinds: Vec<&str> = durable_records(j).iter().map(|e| e.kind_name()).collect();
    assert_eq!(kinds, vec!["usage.accrued", "incident.opened", "incident.closed"]);
    assert_eq!(j.stats().failed_flushes, 1);
}

#[test]
fn urgent_records_flush_at_once() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    let forgiven = Event::Billing(BillingEvent::Forgiven {
        neighbour: NeighbourId(1),
        amount: Amount(5),
        reason: "x".into(),
    });
    assert_eq!(released(j.append(at(0), A, vec![usage(1), forgiven], vec!["x"])), vec!["x"]);
    assert_eq!(j.durable_seq(), Seq(2));
}

/// Regression (issue 8): with the flash full, `lastmile demo` printed reports for records
/// that were never written: the gate released an effect once `log.last_seq()` was durable,
/// and that seq did not count events waiting in the backlog. Now effects queue behind their
/// events and leave only once those are on flash.
#[test]
fn effects_wait_for_their_events_in_the_backlog() {
    let tight = Budget {
        max_bytes: empty_store_bytes() + 200,
        urgent_reserve_bytes: 60,
        retention: Retention { min_records: 1_000_000, min_bytes: 1 << 30 },
    };
    let mut f = journal(tight, JournalConfig { backlog_limit: 100, ..JournalConfig::default() });
    let j = &mut f.journal;
    let mut out = Vec::new();
    let names: Vec<&'static str> =
        (0..12).map(|n| &*Box::leak(format!("report-{n}").into_boxed_str())).collect();
    for (n, name) in names.iter().enumerate() {
        out.extend(released(j.append(at(n as u64), A, vec![usage(n as u64)], vec![*name])));
        out.extend(released(j.flush(at(n as u64))));
    }
    assert!(j.backlog() > 0, "the flash filled up");
    assert!(j.state().incidents.open.contains_key(&IncidentKind::FlashFull));
    let logged = durable_records(j).iter().filter(|e| matches!(e, Event::Usage(_))).count();
    assert_eq!(out.len(), logged, "exactly the reports whose records are durable went out: {out:?}");
    assert_eq!(out, names[..logged].to_vec());
    assert_eq!(j.held(), 12 - logged);
}

/// Regression (issue 8): a flush that failed left the record buffered in the log, yet
/// `append` returned an error and the journal queued the event again: one record written
/// twice. The journal now hands a record to the store exactly once.
#[test]
fn a_failed_flush_never_logs_a_record_twice() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    let used = j.store().log().storage().used_bytes();
    j.store_mut().log_mut().storage_mut().set_capacity(Some(used + 40));
    let forgiven = |n| {
        Event::Billing(BillingEvent::Forgiven {
            neighbour: NeighbourId(1),
            amount: Amount(n),
            reason: String::new(),
        })
    };
    // Urgent: each append flushes, and each flush hits the full disk.
    for n in 0..5 {
        assert!(released(j.append(at(n), A, vec![forgiven(u128::from(n))], vec!["paid"])).is_empty());
    }
    assert!(j.failing());
    j.store_mut().log_mut().storage_mut().set_capacity(None);
    let mut out = Vec::new();
    for ms in (5..=10_000).step_by(50) {
        out.extend(released(j.on_timer(at(ms))));
    }
    assert_eq!(out, vec!["paid"; 5]);
    let amounts: Vec<u128> = durable_records(j)
        .iter()
        .filter_map(|e| match e {
            Event::Billing(BillingEvent::Forgiven { amount, .. }) => Some(amount.0),
            _ => None,
        })
        .collect();
    assert_eq!(amounts, vec![0, 1, 2, 3, 4], "each record once, in order");
}

/// Regression (issue 8): a full disk produced ~20,000 error lines a second: the flush was
/// retried on every wake-up. Retries now back off (100 ms doubling to 5 s) and are counted.
#[test]
fn a_failing_disk_is_retried_with_back_off() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    j.append(at(0), A, vec![usage(1)], vec![]);
    let used = j.store().log().storage().used_bytes();
    j.store_mut().log_mut().storage_mut().set_capacity(Some(used));
    j.flush(at(0));
    // The shell wakes up at every deadline for a minute.
    let mut now = 0;
    while now < 60_000 {
        now = j.flush_deadline().unwrap().tick_ms.max(now + 1);
        j.on_timer(at(now));
    }
    let failures = j.stats().failed_flushes;
    assert!((10..=25).contains(&failures), "{failures} flush attempts in a minute");
}

/// A record the backlog cannot hold is refused: the effects handed over with it never leave,
/// the source is told, with the state to resync to, and what it sends with the old epoch is
/// refused too.
#[test]
fn refused_records_drop_their_effects_and_the_source_resyncs() {
    let tight = Budget {
        max_bytes: empty_store_bytes() + 300,
        urgent_reserve_bytes: 60,
        retention: Retention { min_records: 1_000_000, min_bytes: 1 << 30 },
    };
    let mut f = journal(tight, JournalConfig { backlog_limit: 3, ..JournalConfig::default() });
    let j = &mut f.journal;
    let mut refusal = None;
    let mut out = Vec::new();
    for n in 0..20 {
        let s = j.append(at(n), A, vec![usage(n)], vec!["report"]);
        out.extend(s.released);
        if let Some(r) = s.refusals.into_iter().next() {
            refusal = Some(r);
            break;
        }
    }
    let r = refusal.expect("refused once the backlog was full");
    assert_eq!((r.source, r.epoch), (A.id, 1));
    assert!(r.reason.contains("records already waiting"), "{}", r.reason);
    // The state to resync to: every record taken or waiting, not the refused one.
    let accepted = r.state.usage.links[&Link::new(1, 2)].records;
    assert_eq!(accepted, j.state().usage.links[&Link::new(1, 2)].records + j.backlog() as u64);
    // The old epoch is refused, with nothing more to say; the new one is taken.
    let stale = j.append(at(30), A, vec![usage(99)], vec!["stale"]);
    assert!(stale.refusals.is_empty() && stale.released.is_empty());
    assert_eq!(j.stats().dropped_effects, 2);
    assert_eq!(j.refused(), 2);
    let resynced = Source { epoch: r.epoch, ..A };
    let s = j.append(at(31), resynced, vec![], vec!["after resync"]);
    assert!(s.refusals.is_empty());
    assert!(j.store().usage_bytes() <= tight.max_bytes);
    assert!(!out.contains(&"stale"));
}

/// Review (issue 8): a refusal in the middle of a batch dropped the effects of the events before
/// it that the log did take. A batch is now taken whole or refused whole.
#[test]
fn a_batch_is_taken_whole_or_refused_whole() {
    let tight = Budget {
        max_bytes: empty_store_bytes() + 200,
        urgent_reserve_bytes: 60,
        retention: Retention { min_records: 1_000_000, min_bytes: 1 << 30 },
    };
    let mut f = journal(tight, JournalConfig { backlog_limit: 4, ..JournalConfig::default() });
    let j = &mut f.journal;
    // Fill the flash, then the backlog up to 2 of 4.
    let mut n = 0;
    while j.backlog() < 2 {
        assert!(j.append(at(n), A, vec![usage(n)], vec![]).refusals.is_empty());
        n += 1;
    }
    let taken = j.state().usage.links[&Link::new(1, 2)].records;
    let s = j.append(at(n), A, vec![usage(100), usage(101), usage(102)], vec!["three"]);
    assert_eq!(s.refusals.len(), 1, "3 records do not fit in a backlog with room for 2");
    assert_eq!((j.backlog(), j.refused()), (2, 3), "none of the batch was taken");
    assert_eq!(j.state().usage.links[&Link::new(1, 2)].records, taken);
}

/// Regression (issue 8): quarantine files (left by recovery) filling the budget let reports
/// go out with no record written at all. They count against the budget; nothing is released
/// for a record that could not be written.
#[test]
fn quarantine_filling_the_budget_releases_nothing_unwritten() {
    let mut storage = MemStorage::new();
    storage.write_atomic("quarantine-0000000000000001.bin", &vec![0u8; 4000]).unwrap();
    let budget = Budget {
        max_bytes: empty_store_bytes() + 4000,
        urgent_reserve_bytes: 100,
        retention: Retention::default(),
    };
    let mut f = journal_over(storage, budget, JournalConfig { backlog_limit: 5, ..JournalConfig::default() });
    let j = &mut f.journal;
    let mut out = Vec::new();
    let mut refused = 0;
    for n in 0..10 {
        let s = j.append(at(n), A, vec![usage(n)], vec!["report"]);
        out.extend(s.released);
        refused += s.refusals.len();
        out.extend(j.flush(at(n)).released);
    }
    assert!(out.is_empty(), "nothing was written, so nothing may go out: {out:?}");
    assert_eq!(refused, 1);
    assert!(durable_records(j).iter().all(|e| matches!(e, Event::Incident(_))));
    // Review (issue 8): the operator removes the quarantine file; the journal counts it again
    // when it next makes room, without a restart, and what waited is written.
    j.store_mut().log_mut().storage_mut().remove("quarantine-0000000000000001.bin").unwrap();
    let waiting = j.backlog();
    let resynced = Source { epoch: 1, ..A };
    let mut out = Vec::new();
    for n in 20..40 {
        out.extend(released(j.append(at(n * 1000), resynced, vec![usage(n)], vec!["report"])));
        out.extend(released(j.flush(at(n * 1000))));
    }
    assert_eq!(out.len(), waiting + 20, "what waited, then the new reports, go out once the space is back");
    assert_eq!(j.backlog(), 0);
}

#[test]
fn when_the_retention_window_allows_compaction_frees_space_and_nothing_is_refused() {
    let budget = Budget {
        max_bytes: empty_store_bytes() + 60_000,
        urgent_reserve_bytes: 1000,
        retention: Retention::default(),
    };
    let mut f = journal(budget, JournalConfig { snapshot_every_bytes: u64::MAX, ..JournalConfig::default() });
    let j = &mut f.journal;
    for n in 0..8000 {
        // Time moves, so compaction (at most every 5 s) runs when needed.
        let now = at(n * 100);
        released(j.append(now, A, vec![usage(n)], vec![]));
        if n % 100 == 99 {
            released(j.flush(now));
        }
    }
    released(j.flush(at(800_000)));
    assert_eq!(j.refused(), 0);
    assert_eq!(j.backlog(), 0);
    assert!(j.state().incidents.open.is_empty(), "{:?}", j.state().incidents);
    assert_eq!(j.state().usage.links[&Link::new(1, 2)].records, 8000);
    assert!(j.store().usage_bytes() <= budget.max_bytes);
    assert!(j.store().log().first_seq() > 1, "old segments were compacted away");
}

/// Regression (issue 8): a node that crashed every few seconds never snapshotted, because the
/// bytes since the last snapshot restarted at zero with each start; its log grew to the
/// budget. The count now comes from the log itself.
#[test]
fn a_crash_looping_node_still_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogConfig::default();
    let config = JournalConfig { snapshot_every_bytes: 2_000, ..JournalConfig::default() };
    let mut storage = MemStorage::new();
    let mut n = 0;
    for boot in 1..=10u32 {
        let snapshots = SnapshotStore::open(dir.path().join("snapshots.redb")).unwrap();
        let (store, _) = Store::open(storage, snapshots, log, roomy()).unwrap();
        let state = NodeState::default(); // the fold is not what this test is about
        let mut j: Journal<&str, MemStorage> = Journal::new(store, state, config, Stamp::new(boot, 0));
        // Each life appends about 800 bytes, less than the threshold, then dies.
        for _ in 0..20 {
            j.append(Stamp::new(boot, n), A, vec![usage(n)], vec![]);
            n += 1;
        }
        j.flush(Stamp::new(boot, n));
        let Journal { mut store, .. } = j;
        storage = std::mem::take(store.log_mut().storage_mut());
    }
    let snapshots = SnapshotStore::open(dir.path().join("snapshots.redb")).unwrap();
    let latest = snapshots.latest().unwrap().map(|(seq, _)| seq);
    assert!(latest.is_some_and(|s| s >= 150), "snapshotted across restarts: {latest:?}");
}

// --- The invariant, as a property over injected faults. ---

#[derive(Clone, Debug)]
enum Op {
    /// A batch of `events` events from `source` (urgent ones are payments-like), with `held`
    /// effects.
    Batch { source: u8, events: u8, urgent: bool, held: u8 },
    /// Virtual time passes; the shell runs the journal at its deadlines.
    Tick { ms: u16 },
    /// The filesystem has only `free` more bytes (ENOSPC past them).
    Fill { free: u16 },
    /// Space comes back.
    Free,
    /// The next fsync fails (EIO).
    FailSync,
    /// A source whose events were refused resyncs (takes the refusal's epoch).
    Resync { source: u8 },
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0..=3 => Op::Batch {
                source: u8::arbitrary(g) % 3,
                events: u8::arbitrary(g) % 4,
                urgent: u8::arbitrary(g) % 5 == 0,
                held: u8::arbitrary(g) % 3,
            },
            4 | 5 => Op::Tick { ms: u16::arbitrary(g) % 3000 },
            6 => Op::Fill { free: u16::arbitrary(g) % 400 },
            7 => Op::Free,
            8 => Op::FailSync,
            _ => Op::Resync { source: u8::arbitrary(g) % 3 },
        }
    }
}

#[derive(Clone, Debug)]
struct Faults {
    ops: Vec<Op>,
    /// Bytes of quarantine already on the flash at start.
    quarantine: u16,
    budget_extra: u16,
    backlog_limit: u8,
    max_records: u8,
}

impl Arbitrary for Faults {
    fn arbitrary(g: &mut Gen) -> Self {
        let n = usize::arbitrary(g) % 80 + 1;
        Faults {
            ops: (0..n).map(|_| Op::arbitrary(g)).collect(),
            quarantine: u16::arbitrary(g) % 600,
            budget_extra: u16::arbitrary(g) % 2000 + 200,
            backlog_limit: u8::arbitrary(g) % 6 + 1,
            max_records: u8::arbitrary(g) % 5 + 1,
        }
    }
}

/// An event id: the order events were handed over in. Encoded in the event.
fn event(source: u8, id: u64, urgent: bool) -> Event {
    if urgent {
        Event::Billing(BillingEvent::Forgiven {
            neighbour: NeighbourId(u32::from(source)),
            amount: Amount(u128::from(id)),
            reason: String::new(),
        })
    } else {
        Event::Usage(UsageEvent::Accrued(UsageRecord {
            link: Link::new(u32::from(source), 1),
            tx_bytes: id,
            rx_bytes: 0,
            price_per_byte: None,
        }))
    }
}

fn event_id(e: &Event) -> Option<u64> {
    match e {
        Event::Usage(UsageEvent::Accrued(r)) => Some(r.tx_bytes),
        Event::Billing(BillingEvent::Forgiven { amount, .. }) => Some(amount.0 as u64),
        _ => None,
    }
}

/// An effect: the id of the last event handed over before it (0: none), and its batch.
type Effect = (u64, u64);

fn faults_hold(f: Faults) -> TestResult {
    let shown = format!("{f:?}");
    match std::panic::catch_unwind(move || check_faults(f)) {
        Ok(()) => TestResult::passed(),
        Err(_) => TestResult::error(shown),
    }
}

fn check_faults(f: Faults) {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = MemStorage::new();
    if f.quarantine > 0 {
        storage
            .write_atomic("quarantine-0000000000000001.bin", &vec![7u8; usize::from(f.quarantine)])
            .unwrap();
    }
    let snapshots = SnapshotStore::open(dir.path().join("snapshots.redb")).unwrap();
    let empty = snapshots.disk_bytes().unwrap();
    let log = LogConfig {
        segment_bytes: 300,
        flush: FlushPolicy {
            max_records: usize::from(f.max_records),
            max_bytes: 1 << 20,
            max_value: u128::MAX,
        },
    };
    let budget = Budget {
        max_bytes: empty + u64::from(f.quarantine) + u64::from(f.budget_extra),
        urgent_reserve_bytes: 100,
        retention: Retention { min_records: 40, min_bytes: 0 },
    };
    let (store, _) = Store::open(storage, snapshots, log, budget).unwrap();
    let config = JournalConfig { backlog_limit: usize::from(f.backlog_limit), ..JournalConfig::default() };
    let mut j: Journal<Effect, MemStorage> = Journal::new(store, NodeState::default(), config, at(0));

    let mut now = 0u64;
    let mut next_id = 1u64;
    let mut epochs = [0u32; 3];
    let mut pending_resync: [Option<u32>; 3] = [None; 3];
    let mut refused_batches = BTreeSet::new();
    let mut released: Vec<Effect> = Vec::new();
    let mut handed: Vec<Effect> = Vec::new();
    // After every step: what was durable, and how many effects had been released.
    let mut steps: Vec<(BTreeSet<u64>, usize)> = Vec::new();
    let mut batch = 0u64;
    for op in &f.ops {
        match *op {
            Op::Batch { source, events, urgent, held } => {
                let s = usize::from(source);
                let src = Source { id: SourceId(u32::from(source)), epoch: epochs[s] };
                let evs: Vec<Event> =
                    (0..events).map(|i| event(source, next_id + u64::from(i), urgent && i == 0)).collect();
                next_id += u64::from(events);
                batch += 1;
                let effects: Vec<Effect> = (0..held).map(|_| (next_id - 1, batch)).collect();
                handed.extend(effects.iter().copied());
                let stale = pending_resync[s].is_some();
                let settled = j.append(at(now), src, evs, effects);
                let refused_now = settled.refusals.iter().any(|r| r.source == src.id);
                settle(settled, &mut released, &mut pending_resync);
                if refused_now || stale {
                    refused_batches.insert(batch);
                }
            }
            Op::Tick { ms } => {
                let until = now + u64::from(ms);
                while let Some(d) = j.flush_deadline().filter(|d| d.tick_ms <= until) {
                    now = d.tick_ms.max(now);
                    settle(j.on_timer(at(now)), &mut released, &mut pending_resync);
                    now += 1;
                }
                now = now.max(until);
            }
            Op::Fill { free } => {
                let used = j.store().log().storage().used_bytes();
                j.store_mut().log_mut().storage_mut().set_capacity(Some(used + u64::from(free)));
            }
            Op::Free => j.store_mut().log_mut().storage_mut().set_capacity(None),
            Op::FailSync => j.store_mut().log_mut().storage_mut().inject(Fault::Sync),
            Op::Resync { source } => {
                let s = usize::from(source);
                if let Some(e) = pending_resync[s].take() {
                    epochs[s] = e;
                }
            }
        }
        steps.push((durable_ids(&j, log), released.len()));
    }
    // Space comes back and time passes: what was taken becomes durable and is released.
    j.store_mut().log_mut().storage_mut().set_capacity(None);
    for _ in 0..200 {
        now += 6_000;
        settle(j.on_timer(at(now)), &mut released, &mut pending_resync);
        settle(j.flush(at(now)), &mut released, &mut pending_resync);
        if j.backlog() == 0 && j.store().log().pending_records() == 0 {
            break;
        }
    }
    let durable = durable_ids(&j, log);
    steps.push((durable.clone(), released.len()));
    // Released ⇒ durable: at every step, every effect released so far came after only events
    // that were durable then (or were never taken: refused).
    for (durable_then, count) in &steps {
        for (last_id, b) in &released[..*count] {
            assert!(!refused_batches.contains(b), "an effect of refused batch {b} was released");
            let missing: Vec<u64> =
                durable.range(..=*last_id).filter(|id| !durable_then.contains(id)).copied().collect();
            assert!(
                missing.is_empty(),
                "effect of batch {b} released before records {missing:?} were durable"
            );
        }
    }
    assert!(released.windows(2).all(|w| w[0].1 <= w[1].1), "effects out of order: {released:?}");
    // Liveness: with nothing left waiting, every effect that was not refused has been released.
    if j.backlog() == 0 && j.store().log().pending_records() == 0 {
        let want: Vec<Effect> =
            handed.iter().copied().filter(|(_, b)| !refused_batches.contains(b)).collect();
        assert_eq!(released, want, "every effect not refused leaves once its events are durable");
    }
    // The journal's fold is the fold of what is on flash (when the log still starts at 1).
    if j.store().log().first_seq() == 1 && j.store().log().pending_records() == 0 {
        let mut storage = j.store().log().storage().clone();
        storage.crash(0, flash_layout::CrashMode::Lost);
        let (log, _) = Log::open(storage, log).unwrap();
        let mut fold = NodeState::default();
        let mut reader = log.read_from(1);
        while let Some(rec) = reader.next().unwrap() {
            fold.apply(&codec::decode(rec.version, rec.payload).unwrap());
        }
        assert_eq!(&fold, j.state(), "the journal's state is the fold of the log");
    }
}

fn settle(s: Settled<Effect>, released: &mut Vec<Effect>, pending: &mut [Option<u32>; 3]) {
    released.extend(s.released);
    for r in s.refusals {
        pending[r.source.0 as usize] = Some(r.epoch);
    }
}

/// The ids of the records really durable (a crash that keeps nothing unsynced), checking no
/// record is there twice or out of order.
fn durable_ids(j: &Journal<Effect, MemStorage>, log: LogConfig) -> BTreeSet<u64> {
    let mut storage = j.store().log().storage().clone();
    storage.crash(0, flash_layout::CrashMode::Lost);
    let (log, _) = Log::open(storage, log).unwrap();
    let mut ids = Vec::new();
    let mut reader = log.read_from(1);
    while let Some(rec) = reader.next().unwrap() {
        if let Some(id) = event_id(&codec::decode(rec.version, rec.payload).unwrap()) {
            ids.push(id);
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "a record twice or out of order: {ids:?}");
    ids.into_iter().collect()
}

#[test]
fn effects_leave_only_after_their_records_are_durable_under_any_faults() {
    QuickCheck::new().tests(300).quickcheck(faults_hold as fn(Faults) -> TestResult);
}
