//! Pay per forward, simulated: many nodes' real [`BillingMachine`]s on one topology, in virtual
//! time, settling on one shared [`ChainTwin`].
//!
//! Everything is decided by one seed; every component (topology, fees, flows, traffic, loss,
//! price changes, delays, counter resets, mining, the twin) derives its own [`SplitMix64`], so a
//! failing seed replays exactly. The drive loop is quinn's `Pair::drive`: jump to the earliest of
//! the scheduled world actions and every machine's `poll_timeout`, run it, pump the machine
//! (drain events into the node's log fold, then execute effects: chain commands are answered
//! by the twin at once, counter reads are answered after a seeded delay, in order).
//!
//! The world:
//! - Routing is fixed (shortest paths, ties to the lowest node id); prices are not. A node
//!   advertises for destination `d` its fee plus what its next hop for `d` quoted it; the
//!   destination itself advertises 0, because it forwards nothing (the last relay keeps its
//!   whole fee, nobody pays for being the destination). A fee change reaches a neighbour as a
//!   quote after a seeded delay shorter than a window, in order per (advertiser, neighbour).
//! - Traffic: flows between node pairs send seeded bytes every tick along their path. Each hop
//!   loses whole 1,000-byte packets with its own seeded probability, so rx ≤ tx on every link;
//!   a relay forwards exactly what it received.
//! - Kernel counters are cumulative per (neighbour, destination). A counter reading lists the
//!   links in a seeded order and reaches the machine after a seeded delay, readings in order.
//!   A seeded counter reset zeroes one link just before a reading (the bytes counted since the
//!   previous reading are lost to billing, as on a real router; the simulator records them).
//! - One cheat may report `keep_permille`/1000 of its tx bytes to its own machine (so it
//!   short-pays every next hop), until `honest_from_ms`, when its true counters come back.
//! - The chain's minimum fee per block (a base fee) may jump at seeded moments (until half-way
//!   through settlement): a payment signed before a jump can be stuck below it until the payer replaces it
//!   (the same transfer and nonce, signed again at the fee of the moment).
//! - One crash: when a node's log reaches `at_event` events, the node dies (the rest of that
//!   batch and every effect not yet executed are lost; `keep_last` says whether event
//!   `at_event` itself was durable), and restarts `down_ms` later in a new boot from the fold
//!   of its log, with routing's soft state (quotes, adverts) fed again.
//!
//! After `traffic_ms` the traffic stops; two windows later every node's pay threshold drops
//! to 0 (an operator command) so that everything owed is paid, and the run continues to
//! `end_ms` so the payments confirm and are scanned. [`BillingSim::audit`] then compares the
//! ledgers with the ground truth and with the chain.

use crate::events::billing::{
    BillingEffect, BillingEvent, BillingInput, BillingTimer, Enforcement, OperatorCommand, Thresholds,
};
use crate::events::chain::{Address, Amount};
use crate::events::usage::{CounterSample, DestinationId, Link, NeighbourId};
use crate::events::{Effect, Event, Fold, Machine, Stamp};
use crate::machines::billing::{BillingConfig, BillingMachine};
use crate::machines::usage::UsageConfig;
use crate::machines::NodeState;
use crate::rng::SplitMix64;
use crate::sim::chain::{ChainFaults, ChainTwin};
use crate::sim::drive::{self, Flow};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Bytes per packet: loss drops whole packets (the last of a tick's burst may be shorter).
pub const PACKET_BYTES: u64 = 1_000;

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
            stamp_offset: (0, 0),
            keep_logs: true,
        }
    }
}

/// A throttle decision, as the shaper would have received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enforced {
    pub at_ms: u64,
    pub payee: usize,
    pub payer: usize,
    pub level: Enforcement,
}

/// Ground truth of one directed hop for one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HopTraffic {
    pub sent: u64,
    pub delivered: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Traffic,
    Mine,
    MinFee { fee: u128 },
    FeeChange { node: usize, fee: u64 },
    Quote { to: usize, from: usize, dest: usize, price: u64 },
    Reading { node: usize, boot: u32, id: u64 },
    Restart { node: usize },
    Settle,
}

/// One node: its machine, its kernel counters, and what routing told it.
pub struct SimNode {
    pub id: usize,
    pub address: Address,
    /// Neighbour `NeighbourId(k + 1)` is global node `neighbours[k]`.
    pub neighbours: Vec<usize>,
    machine: Option<BillingMachine>,
    pub boot: u32,
    boot_start_ms: u64,
    /// The fold of every event that reached its log: what recovery rebuilds from.
    pub fold: NodeState,
    pub log: Vec<Event>,
    pub log_len: u64,
    /// Kernel counters (true values).
    counters: BTreeMap<Link, (u64, u64)>,
    /// The values at the previous reading, for the bytes a reset loses.
    last_read: BTreeMap<Link, (u64, u64)>,
    readings: BTreeMap<u64, Vec<CounterSample>>,
    next_reading: u64,
    last_reading_at: u64,
    pub crashes: u32,
}

impl SimNode {
    pub fn machine(&self) -> Option<&BillingMachine> {
        self.machine.as_ref()
    }

    fn local(&self, global: usize) -> NeighbourId {
        let k = self.neighbours.iter().position(|n| *n == global);
        // Only called for pairs the topology joined.
        NeighbourId(k.expect("a neighbour of this node") as u32 + 1)
    }

    fn global(&self, local: NeighbourId) -> usize {
        self.neighbours[local.0 as usize - 1]
    }
}

/// See the module docs.
pub struct BillingSim {
    pub config: SimConfig,
    pub now_ms: u64,
    pub nodes: Vec<SimNode>,
    pub chain: ChainTwin,
    /// `next_hop[x][d]`: where x sends traffic for d.
    pub next_hop: Vec<Vec<usize>>,
    pub fees: Vec<u64>,
    /// The thresholds in force (the pay threshold drops to 0 at settlement).
    pub thresholds: Thresholds,
    /// `advertised[k][d]`: what k advertises for d now.
    pub advertised: Vec<Vec<u64>>,
    /// `quotes[x][(k, d)]`: what x last heard from k for d.
    quotes: Vec<BTreeMap<(usize, usize), u64>>,
    quote_fifo: BTreeMap<(usize, usize), u64>,
    /// (source, destination, bytes per tick).
    pub flows: Vec<(usize, usize, u64)>,
    /// Per directed hop (from, to), its packet loss (ppm).
    pub loss_ppm: BTreeMap<(usize, usize), u32>,
    pub hops: BTreeMap<(usize, usize, usize), HopTraffic>,
    /// Bytes a node sent as the source of a flow, per (node, destination).
    pub originated: BTreeMap<(usize, usize), u64>,
    /// Tx value a reset hid from a payer's machine, per (payer, payee): bytes × quote.
    pub reset_unbilled: BTreeMap<(usize, usize), u128>,
    pub enforcements: Vec<Enforced>,
    pub refusals: Vec<(usize, String)>,
    /// Every signed payment: hash → (node, payment id).
    pub signed: BTreeMap<crate::events::chain::TxHash, (usize, u64)>,
    /// Counter samples handed to machines.
    pub samples: u64,
    pub windows: u64,
    /// Chain requests and answers of this node, for debugging a seed.
    pub trace_node: Option<usize>,
    pub trace: Vec<String>,
    queue: BinaryHeap<Reverse<(u64, u64, Action)>>,
    queued: u64,
    traffic_rng: SplitMix64,
    loss_rng: SplitMix64,
    delay_rng: SplitMix64,
    reset_rng: SplitMix64,
    order_rng: SplitMix64,
    mine_rng: SplitMix64,
}

/// The simulated world as node `id`'s shell: its log, the chain twin, its kernel counters and
/// the shaper, for one [`drive::pump`].
struct World<'a> {
    sim: &'a mut BillingSim,
    id: usize,
}

impl drive::Shell<BillingMachine> for World<'_> {
    fn record(&mut self, _at: Stamp, event: Event) -> Flow {
        self.sim.record(self.id, event)
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<BillingEffect>) -> Option<BillingInput> {
        let (sim, id) = (&mut *self.sim, self.id);
        match effect.action {
            BillingEffect::ReadCounters => sim.read_counters(id),
            BillingEffect::Chain(command) => {
                let asked = sim.trace_node.filter(|t| *t == id).map(|_| format!("{command:?}"));
                let answer = sim.chain.handle(sim.nodes[id].address, command);
                if let Some(asked) = asked {
                    sim.trace.push(format!("{} head {} {asked} -> {answer:?}", sim.now_ms, sim.chain.head()));
                }
                return Some(BillingInput::Chain(answer));
            }
            BillingEffect::Enforce { neighbour, level } => {
                let payer = sim.nodes[id].global(neighbour);
                sim.enforcements.push(Enforced { at_ms: sim.now_ms, payee: id, payer, level });
            }
            BillingEffect::Refused { reason } => sim.refusals.push((id, reason)),
        }
        None
    }
}

fn address_of(node: usize) -> Address {
    let mut a = [0u8; 20];
    a[0] = 0x5e;
    a[16..20].copy_from_slice(&(node as u32).to_be_bytes());
    Address(a)
}

/// Edges of the topology, each once with the lower id first, sorted.
fn edges(config: &SimConfig, rng: &mut SplitMix64) -> Vec<(usize, usize)> {
    let n = config.nodes;
    let mut out = std::collections::BTreeSet::new();
    match config.topology {
        Topology::Line => out.extend((1..n).map(|i| (i - 1, i))),
        Topology::Random { extra_edges } => {
            for i in 1..n {
                out.insert((rng.below(i as u64) as usize, i));
            }
            for _ in 0..extra_edges {
                let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                if a != b {
                    out.insert((a.min(b), a.max(b)));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Shortest-path next hops, ties to the lowest id.
fn next_hops(n: usize, adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut next = vec![vec![usize::MAX; n]; n];
    for d in 0..n {
        let mut dist = vec![usize::MAX; n];
        dist[d] = 0;
        let mut queue = std::collections::VecDeque::from([d]);
        while let Some(x) = queue.pop_front() {
            for &y in &adjacency[x] {
                if dist[y] == usize::MAX {
                    dist[y] = dist[x] + 1;
                    queue.push_back(y);
                }
            }
        }
        for x in 0..n {
            if x != d {
                next[x][d] =
                    adjacency[x].iter().copied().filter(|y| dist[*y] + 1 == dist[x]).min().unwrap_or(d);
            }
        }
    }
    next
}

impl BillingSim {
    pub fn new(config: SimConfig) -> Self {
        assert!(config.nodes >= 2, "a network needs two nodes");
        assert!(config.max_quote_delay_ms < config.usage.window_ms, "quotes arrive within a window");
        let root = SplitMix64::new(config.seed);
        let n = config.nodes;
        let mut adjacency = vec![Vec::new(); n];
        for (a, b) in edges(&config, &mut root.derive(1)) {
            adjacency[a].push(b);
            adjacency[b].push(a);
        }
        let next_hop = next_hops(n, &adjacency);
        let mut fee_rng = root.derive(2);
        let fees: Vec<u64> = (0..n).map(|_| 1 + fee_rng.below(config.max_fee.max(1))).collect();
        // Converged prices: a destination advertises 0; everyone else its fee plus its next hop's.
        let mut advertised = vec![vec![0u64; n]; n];
        for (d, _) in fees.iter().enumerate() {
            let mut by_distance: Vec<usize> = (0..n).filter(|x| *x != d).collect();
            by_distance.sort_by_key(|x| {
                let mut hops = 0;
                let mut cur = *x;
                while cur != d {
                    cur = next_hop[cur][d];
                    hops += 1;
                }
                hops
            });
            for x in by_distance {
                advertised[x][d] = fees[x] + advertised[next_hop[x][d]][d];
            }
        }
        let mut quotes = vec![BTreeMap::new(); n];
        for (x, q) in quotes.iter_mut().enumerate() {
            for (d, &k) in next_hop[x].iter().enumerate() {
                if d != x {
                    q.insert((k, d), advertised[k][d]);
                }
            }
        }
        let mut flow_rng = root.derive(3);
        let flows = (0..config.flows)
            .map(|_| {
                let src = flow_rng.below(n as u64) as usize;
                let dst = (src + 1 + flow_rng.below(n as u64 - 1) as usize) % n;
                let (lo, hi) = config.flow_bytes_per_tick;
                (src, dst, lo + flow_rng.below(hi.saturating_sub(lo) + 1))
            })
            .collect();
        let mut loss_rng = root.derive(5);
        let mut loss_ppm = BTreeMap::new();
        for (x, ys) in adjacency.iter().enumerate() {
            for &y in ys {
                let p = if config.uniform_loss {
                    config.max_loss_ppm
                } else {
                    loss_rng.below(u64::from(config.max_loss_ppm) + 1) as u32
                };
                loss_ppm.insert((x, y), p);
            }
        }
        let mut chain = ChainTwin::new(root.derive(9).next_u64(), config.chain_faults);
        let nodes: Vec<SimNode> = (0..n)
            .map(|id| {
                chain.fund(address_of(id), u128::MAX / 4);
                SimNode {
                    id,
                    address: address_of(id),
                    neighbours: adjacency[id].clone(),
                    machine: None,
                    boot: 0,
                    boot_start_ms: 0,
                    fold: NodeState::default(),
                    log: Vec::new(),
                    log_len: 0,
                    counters: BTreeMap::new(),
                    last_read: BTreeMap::new(),
                    readings: BTreeMap::new(),
                    next_reading: 0,
                    last_reading_at: 0,
                    crashes: 0,
                }
            })
            .collect();
        let mut sim = Self {
            now_ms: 0,
            nodes,
            chain,
            next_hop,
            fees,
            thresholds: config.thresholds,
            advertised,
            quotes,
            quote_fifo: BTreeMap::new(),
            flows,
            loss_ppm,
            hops: BTreeMap::new(),
            originated: BTreeMap::new(),
            reset_unbilled: BTreeMap::new(),
            enforcements: Vec::new(),
            refusals: Vec::new(),
            signed: BTreeMap::new(),
            samples: 0,
            windows: 0,
            trace_node: None,
            trace: Vec::new(),
            queue: BinaryHeap::new(),
            queued: 0,
            traffic_rng: root.derive(4),
            loss_rng: root.derive(5).derive(1),
            delay_rng: root.derive(7),
            reset_rng: root.derive(8),
            order_rng: root.derive(11),
            mine_rng: root.derive(10),
            config,
        };
        let mut change_rng = root.derive(6);
        for _ in 0..sim.config.price_changes {
            let at = change_rng.below(sim.config.traffic_ms.max(1));
            let node = change_rng.below(n as u64) as usize;
            let fee = 1 + change_rng.below(sim.config.max_fee.max(1));
            sim.schedule(at, Action::FeeChange { node, fee });
        }
        let mut min_fee_rng = root.derive(12);
        let calm_ms = (sim.config.traffic_ms + sim.config.end_ms) / 2;
        for _ in 0..sim.config.min_fee_changes {
            let at = min_fee_rng.below(calm_ms.max(1));
            let max = u64::try_from(sim.config.max_min_fee).unwrap_or(u64::MAX - 1);
            let fee = u128::from(min_fee_rng.below(max + 1));
            sim.schedule(at, Action::MinFee { fee });
        }
        if sim.config.min_fee_changes > 0 {
            sim.schedule(calm_ms, Action::MinFee { fee: 0 });
        }
        sim.schedule(0, Action::Traffic);
        sim.schedule(sim.config.block_ms, Action::Mine);
        sim.schedule(sim.config.traffic_ms + 2 * sim.config.usage.window_ms, Action::Settle);
        for id in 0..n {
            sim.start(id);
        }
        sim
    }

    fn schedule(&mut self, at: u64, action: Action) {
        self.queued += 1;
        self.queue.push(Reverse((at, self.queued, action)));
    }

    /// The stamp node `id` sees now.
    fn stamp(&self, id: usize) -> Stamp {
        let node = &self.nodes[id];
        let (boot, ticks) = self.config.stamp_offset;
        Stamp::new(boot + node.boot, ticks + self.now_ms - node.boot_start_ms)
    }

    /// (Re)starts node `id`'s machine from the fold of its log and feeds what a shell feeds at
    /// every start: the configuration (thresholds, fee), the neighbours' bound identities, and
    /// routing's soft state (quotes and adverts). The machine records only what changed.
    fn start(&mut self, id: usize) {
        let config = BillingConfig {
            usage: self.config.usage,
            our_address: self.nodes[id].address,
            confirmations: self.config.confirmations,
            chain_poll_ms: self.config.chain_poll_ms,
            max_scan_blocks: 1_000,
            replace_after_polls: self.config.replace_after_polls,
        };
        let now = self.stamp(id);
        let node = &mut self.nodes[id];
        node.machine =
            Some(BillingMachine::new(config, node.fold.usage.clone(), node.fold.billing.clone(), now));
        let thresholds = self.thresholds;
        self.input(id, BillingInput::Operator(OperatorCommand::SetThresholds(thresholds)));
        let fee_per_byte = self.fees[id];
        self.input(id, BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte }));
        for k in self.nodes[id].neighbours.clone() {
            let neighbour = self.nodes[id].local(k);
            self.input(id, BillingInput::BindNeighbour { neighbour, address: address_of(k) });
        }
        for d in 0..self.config.nodes {
            if d == id {
                continue;
            }
            let k = self.next_hop[id][d];
            let link = Link { neighbour: self.nodes[id].local(k), destination: DestinationId(d as u32) };
            let price = self.quotes[id][&(k, d)];
            self.input(id, BillingInput::PriceQuoted { link, price_per_byte: Some(price) });
        }
        for x in self.nodes[id].neighbours.clone() {
            for d in 0..self.config.nodes {
                if d != x && self.next_hop[x][d] == id {
                    let link =
                        Link { neighbour: self.nodes[id].local(x), destination: DestinationId(d as u32) };
                    let price_per_byte = self.advertised[id][d];
                    self.input(id, BillingInput::PriceAdvertised { link, price_per_byte });
                }
            }
        }
    }

    /// Hands `input` to node `id`'s machine (if it is up) and pumps it.
    pub fn input(&mut self, id: usize, input: BillingInput) {
        let at = self.stamp(id);
        let Some(m) = self.nodes[id].machine.as_mut() else { return };
        m.handle(at, input);
        self.pump(id);
    }

    /// Drains the machine through the shared driver ([`drive::pump`]): events into its log
    /// (where a crash may cut), then effects, each carried out by the world ([`World`]).
    fn pump(&mut self, id: usize) {
        let at = self.stamp(id);
        // Out of its node while it is driven, so the world can be borrowed whole.
        let Some(mut machine) = self.nodes[id].machine.take() else { return };
        match drive::pump(&mut machine, at, &mut World { sim: self, id }) {
            Flow::Alive => self.nodes[id].machine = Some(machine),
            Flow::Died => {
                self.nodes[id].crashes += 1;
                let down = self.config.crash.map_or(0, |c| c.down_ms);
                self.schedule(self.now_ms + down, Action::Restart { node: id });
            }
        }
    }

    /// Appends one event to node `id`'s log; `Died` if the node dies at this boundary.
    fn record(&mut self, id: usize, e: Event) -> Flow {
        let node = &mut self.nodes[id];
        let crash =
            self.config.crash.filter(|c| c.node == id && node.crashes == 0 && node.log_len + 1 == c.at_event);
        if crash.is_some_and(|c| !c.keep_last) {
            return Flow::Died;
        }
        if let Event::Billing(BillingEvent::PaymentSigned { id: payment, tx_hash, .. }) = &e {
            self.signed.insert(*tx_hash, (id, payment.0));
        }
        node.fold.apply(&e);
        node.log_len += 1;
        if self.config.keep_logs {
            node.log.push(e);
        }
        if crash.is_some() {
            Flow::Died
        } else {
            Flow::Alive
        }
    }

    /// The kernel answers a counter read: maybe one link was reset just before; the cheat
    /// under-reports its tx bytes; the links come in a seeded order, after a seeded delay.
    fn read_counters(&mut self, id: usize) {
        let config = &self.config;
        let cheat = config.cheat.filter(|c| c.node == id && c.honest_from_ms.is_none_or(|t| self.now_ms < t));
        let reset = config.counter_reset_ppm > 0
            && self.reset_rng.below(1_000_000) < u64::from(config.counter_reset_ppm);
        let node = &mut self.nodes[id];
        if reset && !node.counters.is_empty() {
            let k = self.reset_rng.below(node.counters.len() as u64) as usize;
            let (&link, counter) = node.counters.iter_mut().nth(k).expect("k < len");
            let (read_tx, _) = node.last_read.get(&link).copied().unwrap_or_default();
            let payee = node.neighbours[link.neighbour.0 as usize - 1];
            let quote = self.quotes[id].get(&(payee, link.destination.0 as usize)).copied().unwrap_or(0);
            let hidden = u128::from(counter.0 - read_tx) * u128::from(quote);
            *self.reset_unbilled.entry((id, payee)).or_default() += hidden;
            *counter = (0, 0);
        }
        let mut samples: Vec<CounterSample> = node
            .counters
            .iter()
            .map(|(&link, &(tx, rx))| {
                let tx_bytes = match cheat {
                    Some(c) => tx / 1000 * c.keep_permille + tx % 1000 * c.keep_permille / 1000,
                    None => tx,
                };
                CounterSample { link, tx_bytes, rx_bytes: rx }
            })
            .collect();
        node.last_read.clone_from(&node.counters);
        for i in (1..samples.len()).rev() {
            samples.swap(i, self.order_rng.below(i as u64 + 1) as usize);
        }
        let reading = node.next_reading;
        node.next_reading += 1;
        node.readings.insert(reading, samples);
        let at = (self.now_ms + self.delay_rng.below(config.max_read_delay_ms + 1)).max(node.last_reading_at);
        node.last_reading_at = at;
        let boot = node.boot;
        self.schedule(at, Action::Reading { node: id, boot, id: reading });
    }

    /// Bytes on every flow for one tick, hop by hop, losing packets.
    fn traffic(&mut self) {
        for f in 0..self.flows.len() {
            let (src, dst, rate) = self.flows[f];
            let mut bytes = rate / 2 + self.traffic_rng.below(rate + 1);
            *self.originated.entry((src, dst)).or_default() += bytes;
            let mut cur = src;
            while cur != dst && bytes > 0 {
                let nxt = self.next_hop[cur][dst];
                let loss = self.loss_ppm[&(cur, nxt)];
                let mut lost = 0;
                if loss > 0 {
                    let mut left = bytes;
                    while left > 0 {
                        let packet = left.min(PACKET_BYTES);
                        if self.loss_rng.below(1_000_000) < u64::from(loss) {
                            lost += packet;
                        }
                        left -= packet;
                    }
                }
                let dest = DestinationId(dst as u32);
                let out = Link { neighbour: self.nodes[cur].local(nxt), destination: dest };
                self.nodes[cur].counters.entry(out).or_default().0 += bytes;
                let delivered = bytes - lost;
                let back = Link { neighbour: self.nodes[nxt].local(cur), destination: dest };
                self.nodes[nxt].counters.entry(back).or_default().1 += delivered;
                let hop = self.hops.entry((cur, nxt, dst)).or_default();
                hop.sent += bytes;
                hop.delivered += delivered;
                bytes = delivered;
                cur = nxt;
            }
        }
    }

    /// Node `k` advertises `price` for `dest` to every neighbour that sends through it.
    fn advertise(&mut self, k: usize, dest: usize, price: u64) {
        self.advertised[k][dest] = price;
        for x in self.nodes[k].neighbours.clone() {
            if x == dest || self.next_hop[x][dest] != k {
                continue;
            }
            let link = Link { neighbour: self.nodes[k].local(x), destination: DestinationId(dest as u32) };
            self.input(k, BillingInput::PriceAdvertised { link, price_per_byte: price });
            let delay = self.delay_rng.below(self.config.max_quote_delay_ms + 1);
            let fifo = self.quote_fifo.entry((k, x)).or_default();
            let at = (self.now_ms + delay).max(*fifo);
            *fifo = at;
            self.schedule(at, Action::Quote { to: x, from: k, dest, price });
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Traffic => {
                if self.now_ms < self.config.traffic_ms {
                    self.traffic();
                    self.schedule(self.now_ms + self.config.tick_ms, Action::Traffic);
                }
            }
            Action::Mine => {
                if self.config.reorg_ppm > 0
                    && self.mine_rng.below(1_000_000) < u64::from(self.config.reorg_ppm)
                {
                    // A competing fork of `depth` blocks (shallower than the confirmations)
                    // plus one wins: the head never goes back, the undone transactions are
                    // mined again in the fork.
                    let depth = 1 + self.mine_rng.below(self.config.confirmations.saturating_sub(1).max(1));
                    self.chain.reorg(depth as usize);
                    for _ in 0..depth {
                        self.chain.mine();
                    }
                }
                self.chain.mine();
                let jitter = self.mine_rng.below(self.config.block_ms / 2 + 1);
                self.schedule(self.now_ms + self.config.block_ms / 2 + jitter + 1, Action::Mine);
            }
            Action::MinFee { fee } => self.chain.set_min_fee(fee),
            Action::FeeChange { node, fee } => {
                self.fees[node] = fee;
                self.input(node, BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte: fee }));
                for d in 0..self.config.nodes {
                    if d == node {
                        continue;
                    }
                    let k = self.next_hop[node][d];
                    let price = fee + self.quotes[node][&(k, d)];
                    if price != self.advertised[node][d] {
                        self.advertise(node, d, price);
                    }
                }
            }
            Action::Quote { to, from, dest, price } => {
                self.quotes[to].insert((from, dest), price);
                let link =
                    Link { neighbour: self.nodes[to].local(from), destination: DestinationId(dest as u32) };
                self.input(to, BillingInput::PriceQuoted { link, price_per_byte: Some(price) });
                if to != dest && self.next_hop[to][dest] == from {
                    let mine = self.fees[to] + price;
                    if mine != self.advertised[to][dest] {
                        self.advertise(to, dest, mine);
                    }
                }
            }
            Action::Reading { node, boot, id } => {
                let samples = self.nodes[node].readings.remove(&id).unwrap_or_default();
                if self.nodes[node].boot == boot && self.nodes[node].machine.is_some() {
                    self.samples += samples.len() as u64;
                    self.input(node, BillingInput::Counters(samples));
                }
            }
            Action::Restart { node } => {
                self.nodes[node].boot += 1;
                self.nodes[node].boot_start_ms = self.now_ms;
                self.nodes[node].readings.clear();
                self.start(node);
            }
            Action::Settle => {
                // Pay everything owed: the final settlement of the run.
                self.thresholds = Thresholds { pay: Amount(0), enforce: self.config.thresholds.enforce };
                for id in 0..self.config.nodes {
                    let t = self.thresholds;
                    self.input(id, BillingInput::Operator(OperatorCommand::SetThresholds(t)));
                }
            }
        }
    }

    /// The global time of node `id`'s earliest deadline.
    fn deadline(&self, id: usize) -> Option<(u64, BillingTimer)> {
        let node = &self.nodes[id];
        let (at, timer) = node.machine.as_ref()?.poll_timeout()?;
        let (_, ticks) = self.config.stamp_offset;
        Some(((at.tick_ms - ticks + node.boot_start_ms).max(self.now_ms), timer))
    }

    /// Runs everything due up to `until_ms` (inclusive) and stops there. Machines go before
    /// world actions due at the same moment; ties among machines go to the lowest node id.
    pub fn run_until(&mut self, until_ms: u64) {
        loop {
            let world = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let machine =
                (0..self.nodes.len()).filter_map(|i| self.deadline(i).map(|(at, t)| (at, i, t))).min();
            match (world, machine) {
                (w, Some((at, id, timer))) if at <= until_ms && w.is_none_or(|w| at <= w) => {
                    self.now_ms = at;
                    if timer == BillingTimer::Window {
                        self.windows += 1;
                    }
                    let stamp = self.stamp(id);
                    if let Some(m) = self.nodes[id].machine.as_mut() {
                        m.handle_timeout(stamp, timer);
                    }
                    self.pump(id);
                }
                (Some(at), _) if at <= until_ms => {
                    let Some(Reverse((at, _, action))) = self.queue.pop() else { break };
                    self.now_ms = self.now_ms.max(at);
                    self.act(action);
                }
                _ => break,
            }
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    /// Runs to the configured end.
    pub fn run(&mut self) {
        self.run_until(self.config.end_ms);
    }

    /// An operator command to node `id` now (e.g. forgiveness).
    pub fn operator(&mut self, id: usize, command: OperatorCommand) {
        self.input(id, BillingInput::Operator(command));
    }

    /// Node `payee`'s account of node `payer` (they must be neighbours).
    pub fn account(&self, payee: usize, payer: usize) -> crate::machines::billing::Account {
        let node = &self.nodes[payee];
        node.fold.billing.account(node.local(payer))
    }

    /// Every (payer, payee) pair that carried priced traffic (the payee relayed it: traffic to
    /// the payee itself is free), payer first.
    pub fn billed_pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs: Vec<(usize, usize)> =
            self.hops.keys().filter(|(_, b, d)| b != d).map(|(a, b, _)| (*a, *b)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// An upper bound on what any one link carries per window: the flows through it, each at
    /// its largest tick, at the largest price the payee could advertise (the most expensive fee
    /// at every hop left). Tests size thresholds from it.
    pub fn max_value_per_window(&self) -> u128 {
        let ticks = u128::from(self.config.usage.window_ms.div_ceil(self.config.tick_ms));
        let mut links: BTreeMap<(usize, usize), u128> = BTreeMap::new();
        for &(src, dst, rate) in &self.flows {
            let mut path = vec![src];
            while path[path.len() - 1] != dst {
                path.push(self.next_hop[path[path.len() - 1]][dst]);
            }
            for (i, hop) in path.windows(2).enumerate() {
                let hops_left = (path.len() - 2 - i) as u128;
                let value = u128::from(rate + rate / 2) * ticks * u128::from(self.config.max_fee) * hops_left;
                *links.entry((hop[0], hop[1])).or_default() += value;
            }
        }
        links.into_values().max().unwrap_or(0)
    }

    /// Whether `payer` was ever throttled by anyone.
    pub fn throttled(&self, payer: usize) -> Vec<Enforced> {
        self.enforcements
            .iter()
            .copied()
            .filter(|e| e.payer == payer && e.level == Enforcement::Throttled)
            .collect()
    }

    /// The cheat, if any, is node `id`.
    pub fn is_cheat(&self, id: usize) -> bool {
        self.config.cheat.is_some_and(|c| c.node == id)
    }

    /// The bytes node `r` forwarded (received for others) and the value of what it lost on the
    /// way in (each lost byte at the price `r` advertised for its destination): the ground
    /// truth conservation is checked against. Prices must not have changed.
    pub fn relay_truth(&self, r: usize) -> (u64, u128, u128) {
        let mut forwarded = 0u64;
        let mut lost_value = 0u128;
        for (&(_, to, dest), hop) in &self.hops {
            if to == r && dest != r {
                forwarded += hop.delivered;
                lost_value += u128::from(hop.sent - hop.delivered) * u128::from(self.advertised[r][dest]);
            }
        }
        let mut own_cost = 0u128;
        for (&(src, dest), &bytes) in &self.originated {
            if src == r {
                own_cost += u128::from(bytes) * u128::from(self.advertised[self.next_hop[r][dest]][dest]);
            }
        }
        (forwarded, lost_value, own_cost)
    }

    /// Chain-side audit: every problem found, empty when all holds. Checks, per node, that
    /// - no payment was included twice (each included transfer from it maps to a distinct
    ///   payment id it signed);
    /// - what left it on chain to each neighbour equals its ledger's `paid` plus what is in
    ///   flight and already included, and what arrived from each neighbour equals the payee's
    ///   `received` plus what is not yet buried or scanned (exact once settled);
    /// - its live ledgers equal the fold of its log (replay equivalence).
    pub fn audit(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_payment: BTreeMap<(usize, u64), u32> = BTreeMap::new();
        let mut sent: BTreeMap<(Address, Address), u128> = BTreeMap::new();
        for t in self.chain.transfers() {
            *sent.entry((t.from, t.to)).or_default() += t.amount.0;
            match self.signed.get(&t.tx_hash) {
                Some(&key) => *by_payment.entry(key).or_default() += 1,
                None => problems.push(format!("a transfer nobody signed: {t:?}")),
            }
        }
        for ((node, payment), count) in by_payment {
            if count > 1 {
                problems.push(format!("node {node} payment {payment} is on chain {count} times"));
            }
        }
        for node in &self.nodes {
            if let Some(m) = &node.machine {
                if *m.ledger() != node.fold.billing {
                    problems
                        .push(format!("node {}: billing ledger differs from the fold of its log", node.id));
                }
                if *m.usage() != node.fold.usage {
                    problems.push(format!("node {}: usage ledger differs from the fold of its log", node.id));
                }
            }
            for &k in &node.neighbours {
                let ours = node.fold.billing.account(node.local(k));
                let on_chain = sent.get(&(node.address, address_of(k))).copied().unwrap_or(0);
                if ours.paid.0 > on_chain || on_chain > ours.paid.0 + ours.in_flight.0 {
                    problems.push(format!(
                        "node {} → {k}: paid {} + in flight {} vs {on_chain} on chain",
                        node.id, ours.paid, ours.in_flight
                    ));
                }
                let theirs = self.account(k, node.id);
                if theirs.received.0 > on_chain {
                    problems.push(format!(
                        "node {k} received {} from {} but only {on_chain} is on chain",
                        theirs.received, node.id
                    ));
                }
            }
        }
        problems
    }

    /// How many replacements were signed: hashes signed for a payment beyond its first.
    pub fn replacements(&self) -> usize {
        let payments: std::collections::BTreeSet<_> = self.signed.values().collect();
        self.signed.len() - payments.len()
    }

    /// Whether every node is up with no payment open and nothing owed beyond what it paid.
    pub fn settled(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.machine.is_some()
                && n.fold.billing.open.is_empty()
                && n.fold.billing.accounts.values().all(|a| a.our_debt() <= 0)
        })
    }
}
