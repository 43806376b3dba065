use super::*;
use crate::events::usage::{Link, UsageEvent, UsageRecord};
use flash_layout::{Budget, Fault, FlushPolicy, LogConfig, MemStorage, Retention, SnapshotStore};

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

struct Fixture {
    _dir: tempfile::TempDir,
    journal: Journal<&'static str, MemStorage>,
}

/// Bytes an empty store already uses (the snapshot database file).
fn empty_store_bytes() -> u64 {
    journal(roomy(), JournalConfig::default()).journal.store().usage_bytes()
}

fn journal(budget: Budget, config: JournalConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let snapshots = SnapshotStore::open(dir.path().join("snapshots.redb")).expect("snapshot store");
    let log = LogConfig {
        segment_bytes: 512,
        flush: FlushPolicy { max_records: 1000, max_bytes: 1 << 20, max_value: u128::MAX },
    };
    let (store, _) = Store::open(MemStorage::new(), snapshots, log, budget).expect("store opens");
    Fixture { _dir: dir, journal: Journal::new(store, NodeState::default(), config) }
}

fn roomy() -> Budget {
    Budget { max_bytes: 1 << 30, urgent_reserve_bytes: 0, retention: Retention::default() }
}

#[test]
fn held_effects_leave_only_after_their_events_are_durable_and_in_order() {
    let mut f = journal(roomy(), JournalConfig { max_delay_ms: 500, ..JournalConfig::default() });
    let j = &mut f.journal;
    assert_eq!(j.append(at(0), vec![usage(1)], vec!["pay-1"]), Vec::<&str>::new());
    assert_eq!(j.append(at(100), vec![usage(2)], vec!["pay-2"]), Vec::<&str>::new());
    assert_eq!(j.durable_seq(), Seq(0));
    assert_eq!(j.flush_deadline(), Some(at(500)), "the oldest pending record sets the deadline");
    assert_eq!(j.on_timer(at(499)), Vec::<&str>::new());
    assert_eq!(j.on_timer(at(500)), vec!["pay-1", "pay-2"]);
    assert_eq!(j.durable_seq(), Seq(2));
    assert_eq!(j.flush_deadline(), None);
    // Nothing pending: a held effect with no new events leaves at once.
    assert_eq!(j.append(at(600), vec![], vec!["ack"]), vec!["ack"]);
    assert_eq!(j.state().usage.links[&Link::new(1, 2)].records, 2);
}

#[test]
fn a_failed_fsync_releases_nothing_and_the_next_flush_retries() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    assert!(j.append(at(0), vec![usage(1)], vec!["pay"]).is_empty());
    j.store.log_mut().storage_mut().inject(Fault::Sync);
    assert!(j.flush().is_empty());
    assert_eq!(j.durable_seq(), Seq(0));
    assert_eq!(j.held(), 1);
    assert_eq!(j.flush(), vec!["pay"]);
    assert_eq!(j.durable_seq(), Seq(1));
}

#[test]
fn urgent_records_flush_at_once() {
    let mut f = journal(roomy(), JournalConfig::default());
    let j = &mut f.journal;
    let incident = Event::Incident(IncidentEvent::Opened { kind: IncidentKind::LogWriteFailed, detail: 5 });
    assert_eq!(j.append(at(0), vec![usage(1), incident], vec!["x"]), vec!["x"]);
    assert_eq!(j.durable_seq(), Seq(2));
}

#[test]
fn a_full_flash_is_compacted_first_then_refused_loudly_with_an_incident() {
    // Room for a few records only; the dispute window keeps everything, so compaction
    // cannot free space and the journal must say so.
    let tight = Budget {
        max_bytes: empty_store_bytes() + 300,
        urgent_reserve_bytes: 60,
        retention: Retention { min_records: 1_000_000, min_bytes: 1 << 30 },
    };
    let mut f = journal(tight, JournalConfig { backlog_limit: 3, ..JournalConfig::default() });
    let j = &mut f.journal;
    for n in 0..20 {
        let _ = j.append(at(n), vec![usage(n)], vec![]);
    }
    let _ = j.flush();
    assert!(j.state().incidents.open.contains_key(&IncidentKind::FlashFull));
    assert!((1..=3).contains(&j.backlog()), "non-urgent records wait in the backlog");
    let accepted = j.state().usage.links[&Link::new(1, 2)].records;
    assert_eq!(accepted + j.backlog() as u64 + j.refused(), 20, "every record is accounted for");
    assert!(j.refused() > 0, "past the backlog bound, refusal is counted");
    assert!(j.store().usage_bytes() <= tight.max_bytes);
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
        let _ = j.append(at(n), vec![usage(n)], vec![]);
        if n % 100 == 99 {
            let _ = j.flush();
        }
    }
    let _ = j.flush();
    assert_eq!(j.refused(), 0);
    assert_eq!(j.backlog(), 0);
    assert!(j.state().incidents.open.is_empty(), "{:?}", j.state().incidents);
    assert_eq!(j.state().usage.links[&Link::new(1, 2)].records, 8000);
    assert!(j.store().usage_bytes() <= budget.max_bytes);
    assert!(j.store().log().first_seq() > 1, "old segments were compacted away");
}
