//! The actor shell end to end: the usage machine in its driver, the counter reader, and the
//! log writer on a real directory.
//!
//! Persist, then send: every usage report is delivered only after its record is on flash.
//! The delivery closure checks that against the files themselves (a fresh scan of the
//! directory at the moment of delivery), not against anything the writer says. After
//! shutdown, the state recovered from disk accounts for exactly the bytes that were reported.

use flash_layout::{scan, DirStorage};
use lastmile::actors::clock::Clock;
use lastmile::actors::driver::{Deliver, Driver, Input};
use lastmile::actors::kernel::{CounterReader, ReadCounters};
use lastmile::actors::log_writer::{LogWriter, Shutdown};
use lastmile::events::usage::{Link, UsageEffect, UsageEvent, UsageInput};
use lastmile::events::{codec, Event};
use lastmile::machines::usage::{UsageConfig, UsageMachine};
use lastmile::os::counters::SimulatedCounters;
use lastmile::os::flash::{self, FlashConfig};
use lastmile::os::journal::JournalConfig;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Usage records on disk right now, read straight from the segment files.
fn durable_usage_records(dir: &Path) -> u64 {
    let storage = DirStorage::open(dir).expect("open dir");
    let found = scan(&storage).expect("scan");
    let mut reader = found.reader(&storage, 1);
    let mut n = 0;
    while let Some(rec) = reader.next().expect("read") {
        if let Ok(Event::Usage(UsageEvent::Accrued(_))) = codec::decode(rec.version, rec.payload) {
            n += 1;
        }
    }
    n
}

#[derive(Default)]
struct Seen {
    reports: u64,
    reported_tx: u64,
    early: Vec<String>,
}

#[test]
fn reports_leave_only_after_their_records_are_on_flash_and_recovery_matches_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let opened = flash::open(&path, FlashConfig::default()).expect("open store");
    let seen = Arc::new(Mutex::new(Seen::default()));

    let system = actix::System::new();
    let seen_in = Arc::clone(&seen);
    let path_in = path.clone();
    system.block_on(async move {
        use actix::prelude::*;
        let clock = Clock::start(1);
        // A long max delay and a large batch: records wait in memory, so an early release
        // would be caught.
        let journal = JournalConfig { max_delay_ms: 150, ..JournalConfig::default() };
        let log = LogWriter::new(opened.store, opened.state.clone(), journal, clock).start();
        let ctx = Context::<Driver<UsageMachine>>::new();
        let driver = ctx.address();
        let links: Vec<Link> = (1..=3).map(|n| Link::new(n, 10 + n)).collect();
        let reader =
            CounterReader::new(SimulatedCounters::new(9, &links, 10_000), driver.clone().recipient(), clock)
                .start();
        let deliver: Deliver<UsageEffect> = Arc::new(move |effect| match effect {
            UsageEffect::ReadCounters => reader.do_send(ReadCounters),
            UsageEffect::Report(r) => {
                let mut s = seen_in.lock().expect("lock");
                s.reports += 1;
                s.reported_tx += r.tx_bytes;
                let on_disk = durable_usage_records(&path_in);
                if on_disk < s.reports {
                    let n = s.reports;
                    s.early.push(format!("report {n} delivered with {on_disk} records on disk"));
                }
            }
        });
        let machine =
            UsageMachine::new(UsageConfig { poll_ms: 10, window_ms: 40 }, opened.state.usage, clock.now());
        ctx.run(Driver::new(machine, clock, log.clone(), deliver));
        for l in &links {
            driver.do_send(Input(UsageInput::PriceSelected { link: *l, price_per_byte: Some(2) }));
        }
        actix_rt::time::sleep(Duration::from_millis(1200)).await;
        log.do_send(Shutdown);
    });
    system.run().expect("system runs");

    let seen = seen.lock().expect("lock");
    assert!(seen.early.is_empty(), "reports released before their records were durable: {:?}", seen.early);
    assert!(seen.reports >= 20, "expected a steady flow of reports, got {}", seen.reports);
    let recovered = flash::open(&path, FlashConfig::default()).expect("reopen");
    assert!(recovered.recovery.damage.is_empty(), "a clean shutdown leaves an intact log");
    let tx_total: u64 = recovered.state.usage.links.values().map(|l| l.tx_total).sum();
    let records: u64 = recovered.state.usage.links.values().map(|l| l.records).sum();
    assert_eq!(records, seen.reports, "every record was reported once it was durable");
    assert_eq!(tx_total, seen.reported_tx);
}
