//! Billing figures (issue 3). Run: `cargo bench --bench billing`.
//!
//! Prints `figure: NAME VALUE UNIT` lines:
//! - `node_windows`: billing windows closed across all nodes in the simulation (≥ 1,000,000).
//! - `max_paid_vs_expected_gap_fraction`: the simulator (`lastmile::sim::billing`) with 50
//!   nodes on a random topology, 50 flows, every hop losing 10% of its packets at random, fixed
//!   prices, chain with reorgs and RPC failures; after settlement, the largest
//!   |received − expected| / received over every (payee, payer) account. Loss is paid by the
//!   sender and credited, so it must be at most the loss rate (≤ 0.10; printed next to it:
//!   `max_hop_loss_fraction`, the measured loss of the lossiest hop, and
//!   `max_gap_minus_link_loss_fraction`, the largest gap of an account minus the measured loss
//!   on that account's link: ≤ 0 up to the price weighting of the link's destinations).
//! - `false_enforcements`: throttles of honest payers in that run (every node is honest):
//!   counted from the enforcement effects, must be 0.
//! - `billing_samples_per_s`: counter samples one billing machine processes per second
//!   (`handle(Counters)` with 10 neighbours × 50 destinations = 500 links per reading, a
//!   window closed every 10 readings), release build (≥ 1,000,000).
#![allow(clippy::disallowed_methods)] // A benchmark measures time on purpose.

use lastmile::events::billing::{BillingInput, BillingTimer, Thresholds};
use lastmile::events::chain::{Address, Amount};
use lastmile::events::usage::{CounterSample, Link};
use lastmile::events::{Machine, Stamp};
use lastmile::machines::billing::{BillingConfig, BillingLedger, BillingMachine};
use lastmile::machines::usage::{UsageConfig, UsageLedger};
use lastmile::rng::SplitMix64;
use lastmile::sim::billing::{BillingSim, SimConfig, Topology};
use lastmile::sim::chain::ChainFaults;
use std::time::Instant;

fn figure(name: &str, value: f64, unit: &str) {
    println!("figure: {name} {value:.4} {unit}");
}

fn simulation() {
    let window_ms = 10_000;
    let windows_per_node = 20_000;
    let mut c = SimConfig::small(2024);
    c.nodes = 50;
    c.topology = Topology::Random { extra_edges: 20 };
    c.flows = 50;
    c.flow_bytes_per_tick = (5_000, 20_000);
    c.tick_ms = 5_000;
    c.usage = UsageConfig { poll_ms: 5_000, window_ms };
    c.chain_poll_ms = 5_000;
    c.block_ms = 5_000;
    c.confirmations = 2;
    c.max_read_delay_ms = 1_000;
    c.max_loss_ppm = 100_000;
    c.uniform_loss = true;
    c.reorg_ppm = 20_000;
    c.chain_faults = ChainFaults { rpc_failure_ppm: 10_000, drop_ppm: 10_000 };
    c.traffic_ms = windows_per_node * window_ms;
    c.end_ms = c.traffic_ms + 60 * window_ms;
    c.keep_logs = false;
    let v = BillingSim::new(c.clone()).max_value_per_window();
    c.thresholds = Thresholds { pay: Amount(6 * v), enforce: Amount(12 * v) };
    let started = Instant::now();
    let mut sim = BillingSim::new(c);
    sim.run();
    let elapsed = started.elapsed().as_secs_f64();
    let problems = sim.audit();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(sim.settled(), "the run did not settle");
    let mut gap: f64 = 0.0;
    let mut excess: f64 = f64::MIN;
    for (payer, payee) in sim.billed_pairs() {
        let a = sim.account(payee, payer);
        if a.received.0 > 0 {
            let g = a.received.0.abs_diff(a.expected.0) as f64 / a.received.0 as f64;
            gap = gap.max(g);
            let (sent, delivered) = sim
                .hops
                .iter()
                .filter(|((x, k, d), _)| (*x, *k) == (payer, payee) && d != k)
                .fold((0u64, 0u64), |(s, d), (_, h)| (s + h.sent, d + h.delivered));
            excess = excess.max(g - (sent - delivered) as f64 / sent.max(1) as f64);
        }
    }
    let hop_loss = sim
        .hops
        .values()
        .filter(|h| h.sent > 0)
        .map(|h| (h.sent - h.delivered) as f64 / h.sent as f64)
        .fold(0.0, f64::max);
    let false_enforcements = sim.enforcements.iter().filter(|e| !sim.is_cheat(e.payer)).count();
    figure("node_windows", sim.windows as f64, "windows");
    figure("max_paid_vs_expected_gap_fraction", gap, "fraction");
    figure("max_hop_loss_fraction", hop_loss, "fraction");
    figure("max_gap_minus_link_loss_fraction", excess, "fraction");
    figure("false_enforcements", false_enforcements as f64, "count");
    figure("simulation_counter_samples", sim.samples as f64, "samples");
    figure("simulation_wall_time", elapsed, "s");
}

fn samples_per_second() {
    const NEIGHBOURS: u32 = 10;
    const DESTINATIONS: u32 = 50;
    const READINGS: u64 = 4_000;
    let config = BillingConfig {
        usage: UsageConfig { poll_ms: 1_000, window_ms: 10_000 },
        our_address: Address([0xaa; 20]),
        confirmations: 3,
        chain_poll_ms: 2_000,
        max_scan_blocks: 1_000,
        replace_after_polls: 0,
    };
    let mut m =
        BillingMachine::new(config, UsageLedger::default(), BillingLedger::default(), Stamp::new(1, 0));
    let links: Vec<Link> =
        (1..=NEIGHBOURS).flat_map(|n| (0..DESTINATIONS).map(move |d| Link::new(n, d))).collect();
    for (i, link) in links.iter().enumerate() {
        m.handle(
            Stamp::new(1, 0),
            BillingInput::PriceQuoted { link: *link, price_per_byte: Some(1 + i as u64 % 7) },
        );
        m.handle(
            Stamp::new(1, 0),
            BillingInput::PriceAdvertised { link: *link, price_per_byte: 2 + i as u64 % 5 },
        );
    }
    while m.poll_event().is_some() {}
    while m.poll_effect().is_some() {}
    let mut rng = SplitMix64::new(7);
    let mut counters = vec![(0u64, 0u64); links.len()];
    let readings: Vec<Vec<CounterSample>> = (0..READINGS)
        .map(|_| {
            links
                .iter()
                .zip(counters.iter_mut())
                .map(|(link, c)| {
                    c.0 += rng.below(20_000);
                    c.1 += rng.below(20_000);
                    CounterSample { link: *link, tx_bytes: c.0, rx_bytes: c.1 }
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut samples = 0u64;
    for (i, reading) in readings.into_iter().enumerate() {
        let at = Stamp::new(1, 1_000 * (i as u64 + 1));
        samples += reading.len() as u64;
        m.handle(at, BillingInput::Counters(reading));
        if i % 10 == 9 {
            m.handle_timeout(at, BillingTimer::Window);
        }
        while m.poll_event().is_some() {}
        while m.poll_effect().is_some() {}
    }
    let elapsed = started.elapsed().as_secs_f64();
    figure("billing_samples_per_s", samples as f64 / elapsed, "samples/s");
}

fn main() {
    samples_per_second();
    simulation();
}
