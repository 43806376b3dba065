//! `lastmile demo`: the usage machine on simulated counters, writing a real event log.
//!
//! Prints one line per fact, for people and for tests:
//! `recovered …`, `durable #SEQ` whenever the durable watermark advances, and
//! `report n1/d101 tx=… rx=… price=…` for each usage record released after it was durable.

use crate::actors::clock::Clock;
use crate::actors::driver::{Deliver, Driver, Input};
use crate::actors::kernel::{CounterReader, ReadCounters};
use crate::actors::log_writer::{Durable, LogWriter, Shutdown, WatchDurable};
use crate::events::usage::{Link, UsageEffect, UsageEvent, UsageInput};
use crate::events::Event;
use crate::machines::usage::{UsageConfig, UsageMachine};
use crate::os::counters::SimulatedCounters;
use crate::os::flash;
use crate::os::journal::JournalConfig;
use crate::rng::SplitMix64;
use actix::prelude::*;
use flash_layout::{Budget, FlushPolicy, LogConfig, Retention};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Data directory (event log, snapshots, boot counter).
    #[arg(long)]
    dir: PathBuf,
    /// Number of neighbour tunnels to simulate (1 to 4096).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_LINKS))]
    links: u32,
    /// Seed for the simulated traffic and prices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds (0: run until killed or interrupted).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Counter polling interval (1 ms to 1 h).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=HOUR_MS))]
    poll_ms: u64,
    /// Usage window: one record per busy link per window (1 ms to 1 h).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=HOUR_MS))]
    window_ms: u64,
    /// Snapshot (and compact) once this many KiB of log were written since the last (1 to
    /// 65536).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    snapshot_every_kib: u64,
    /// Longest a record waits for its fsync (0 to 1 h).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=HOUR_MS))]
    max_delay_ms: u64,
}

/// The most tunnels the demo simulates: a router has a handful of neighbours; thousands
/// already exercise the log. (4294967295 once tried to allocate 34 GB.)
const MAX_LINKS: i64 = 4096;
/// The longest interval a flag takes.
const HOUR_MS: u64 = 3_600_000;

/// The demo's flash settings: small segments and budget so compaction is visible.
pub fn demo_store_config() -> flash::FlashConfig {
    flash::FlashConfig {
        log: LogConfig {
            segment_bytes: 64 * 1024,
            flush: FlushPolicy { max_records: 64, max_bytes: 4096, max_value: 1_000_000_000 },
        },
        budget: Budget {
            max_bytes: 4 * 1024 * 1024,
            urgent_reserve_bytes: 64 * 1024,
            retention: Retention { min_records: 10_000, min_bytes: 256 * 1024 },
        },
    }
}

pub fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    // Open first: a refused start must change nothing, the boot counter included.
    let opened = flash::open(&args.dir, demo_store_config())?;
    let boot = flash::next_boot(&args.dir)?;
    say(format_args!("recovered boot {boot}: {}", opened.summary()));
    let usage = &opened.state.usage;
    let tx_total: u64 = usage.links.values().map(|l| l.tx_total).sum();
    let resets: u64 = usage.links.values().map(|l| u64::from(l.resets)).sum();
    say(format_args!(
        "state: {} links, {tx_total} tx bytes recorded, {resets} counter resets",
        usage.links.len()
    ));

    let system = System::new();
    system.block_on(async move {
        let clock = Clock::start(boot);
        let journal = JournalConfig {
            max_delay_ms: args.max_delay_ms,
            snapshot_every_bytes: args.snapshot_every_kib * 1024,
            ..JournalConfig::default()
        };
        let log = LogWriter::new(opened.store, opened.state.clone(), journal, clock).start();
        let printer = DurablePrinter { last: 0 }.start();
        log.do_send(WatchDurable(printer.recipient()));

        let links: Vec<Link> = (1..=args.links).map(|n| Link::new(n, 100 + n)).collect();
        let config = UsageConfig { poll_ms: args.poll_ms, window_ms: args.window_ms };
        let machine = UsageMachine::new(config, opened.state.usage, clock.now());

        // The driver and the counter reader address each other: create the driver's context
        // first so its address exists before the reader is built.
        let ctx = Context::<Driver<UsageMachine>>::new();
        let driver_addr = ctx.address();
        let counters = SimulatedCounters::new(
            SplitMix64::new(args.seed).derive(u64::from(boot)).next_u64(),
            &links,
            50_000,
        );
        let reader = CounterReader::new(counters, driver_addr.clone().recipient(), clock).start();
        let deliver: Deliver<UsageEffect> = Arc::new(move |effect| match effect {
            UsageEffect::ReadCounters => reader.do_send(ReadCounters),
            UsageEffect::Report(r) => say(format_args!("report {}", Event::Usage(UsageEvent::Accrued(r)))),
        });
        ctx.run(Driver::new(machine, clock, log.clone(), deliver));

        let mut prices = SplitMix64::new(args.seed).derive(0x9e1c);
        for link in &links {
            let price_per_byte = Some(1 + prices.below(20));
            driver_addr.do_send(Input(UsageInput::PriceSelected { link: *link, price_per_byte }));
        }

        if args.seconds > 0 {
            actix_rt::time::sleep(Duration::from_secs(args.seconds)).await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        log.do_send(Shutdown);
    });
    system.run()?;
    Ok(())
}

struct DurablePrinter {
    last: u64,
}

impl Actor for DurablePrinter {
    type Context = Context<Self>;
}

impl Handler<Durable> for DurablePrinter {
    type Result = ();

    fn handle(&mut self, msg: Durable, _ctx: &mut Context<Self>) {
        if msg.0 .0 > self.last {
            self.last = msg.0 .0;
            say(format_args!("durable #{}", msg.0 .0));
        }
    }
}

/// One line on stdout, flushed at once (tests read these lines as they come). A reader that
/// went away (a closed pipe) stops nothing: the node keeps running and logging.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
