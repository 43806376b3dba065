//! What a billing simulation is made of: the topology, the traffic, the faults and the one
//! seed everything derives from ([`SimConfig`]), with a small default that runs in well
//! under a second.

use crate::events::billing::Thresholds;
use crate::events::chain::Amount;
use crate::machines::usage::UsageConfig;
use crate::sim::chain::ChainFaults;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// 0 — 1 — 2 — … : every interior node relays.
    Line,
    /// A seeded random tree plus `extra_edges` seeded chords.
    Random { extra_edges: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cheat {
    pub node: usize,
    /// The share of its tx bytes, in ‰, that it reports to its own machine.
    pub keep_permille: u64,
    /// From then on it reports its true counters (and so owes what it hid).
    pub honest_from_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    pub node: usize,
    /// The node dies when its log reaches this many events.
    pub at_event: u64,
    /// Whether that last event reached flash.
    pub keep_last: bool,
    pub down_ms: u64,
}

/// A transfer on chain to node `to` at `at_ms` that is no payment of any of its neighbours:
/// billing must never credit it (docs/ARCHITECTURE.md, "Billing": incoming
/// transfers are credited only from the address bound to that neighbour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stray {
    pub at_ms: u64,
    pub to: usize,
    pub from: StraySender,
    pub amount: u128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StraySender {
    /// An address no node knows, funded by the world.
    Stranger,
    /// Node `j`'s own payment address, `j` not a neighbour of the receiver: an address the
    /// network binds (j's neighbours do), only not to the receiver. Sent with j's key, so it
    /// takes one of j's nonces: pick a node that pays nobody, or its payments find their nonce
    /// taken.
    Node(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub topology: Topology,
    pub flows: usize,
    /// Bytes a flow sends per tick: seeded per flow in this range, ±50% per tick.
    pub flow_bytes_per_tick: (u64, u64),
    pub tick_ms: u64,
    /// Traffic runs from 0 until then; settlement follows.
    pub traffic_ms: u64,
    pub end_ms: u64,
    /// Each directed hop loses packets with a seeded probability up to this (ppm).
    pub max_loss_ppm: u32,
    /// Every hop loses exactly `max_loss_ppm` instead of a seeded share of it.
    pub uniform_loss: bool,
    /// Fees are seeded in `1..=max_fee`.
    pub max_fee: u64,
    /// Seeded fee changes during the traffic phase.
    pub price_changes: usize,
    /// A quote reaches a neighbour after up to this long (must be < a window).
    pub max_quote_delay_ms: u64,
    /// A counter reading reaches the machine after up to this long.
    pub max_read_delay_ms: u64,
    /// Chance, per counter reading, that one link's counters were reset just before it.
    pub counter_reset_ppm: u32,
    pub usage: UsageConfig,
    pub chain_poll_ms: u64,
    pub confirmations: u64,
    pub block_ms: u64,
    /// Chance per block that the newest blocks (fewer than `confirmations`) are reorged first.
    pub reorg_ppm: u32,
    pub chain_faults: ChainFaults,
    /// Seeded changes of the chain's minimum fee until half-way from the end of the traffic to
    /// the end of the run (so settlement payments can be stuck too), each to a seeded value in
    /// `0..=max_min_fee`; it is back to 0 from then on.
    pub min_fee_changes: usize,
    pub max_min_fee: u128,
    /// The machines' `BillingConfig::replace_after_polls`.
    pub replace_after_polls: u32,
    pub thresholds: Thresholds,
    pub cheat: Option<Cheat>,
    pub crash: Option<Crash>,
    /// Transfers to nodes that none of their neighbours sent: never to be credited.
    pub strays: Vec<Stray>,
    /// Added to every stamp the machines see (boot counter and ticks): amounts must not move.
    pub stamp_offset: (u32, u64),
    /// Keep every node's events (tests); otherwise only their fold is kept.
    pub keep_logs: bool,
}

impl SimConfig {
    /// A small network that runs in well under a second in a debug build.
    pub fn small(seed: u64) -> Self {
        Self {
            seed,
            nodes: 6,
            topology: Topology::Line,
            flows: 4,
            flow_bytes_per_tick: (2_000, 8_000),
            tick_ms: 1_000,
            traffic_ms: 200_000,
            end_ms: 400_000,
            max_loss_ppm: 0,
            uniform_loss: false,
            max_fee: 5,
            price_changes: 0,
            max_quote_delay_ms: 3_000,
            max_read_delay_ms: 400,
            counter_reset_ppm: 0,
            usage: UsageConfig { poll_ms: 1_000, window_ms: 10_000 },
            chain_poll_ms: 2_000,
            confirmations: 2,
            block_ms: 3_000,
            reorg_ppm: 0,
            chain_faults: ChainFaults::default(),
            min_fee_changes: 0,
            max_min_fee: 1_000,
            replace_after_polls: 3,
            // Fixed, whatever the traffic: enforce − pay must also exceed what a link carries
            // while a payment is under way (see `max_value_per_window`), so runs that vary the
            // traffic size the thresholds to it.
            thresholds: Thresholds { pay: Amount(2_000_000), enforce: Amount(4_000_000) },
            cheat: None,
            crash: None,
            strays: Vec::new(),
            stamp_offset: (0, 0),
            keep_logs: true,
        }
    }
}
