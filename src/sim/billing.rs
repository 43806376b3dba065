//! Pay per forward, simulated: many nodes' real [`BillingMachine`]s on one topology, in virtual
//! time, settling on one shared [`ChainTwin`].
//!
//! Everything is decided by one seed; every component (topology, fees, flows, traffic, loss,
//! price changes, delays, counter resets, mining, the twin) derives its own [`SplitMix64`], so a
//! failing seed replays exactly. The drive loop is quinn's `Pair::drive`: jump to the earliest of
//! the scheduled world actions and every machine's `poll_timeout`, run it, pump the machine
//! with the shared driver ([`crate::sim::drive`]: drain events into the node's log fold, then
//! execute effects: chain commands are answered by the twin at once, counter reads are
//! answered after a seeded delay, in order).
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
//! - Stray transfers ([`Stray`]): at set moments a stranger, or a node that is no neighbour of
//!   the receiver, sends a node a transfer on chain; the audit checks that nobody credits one.
//!
//! After `traffic_ms` the traffic stops; two windows later every node's pay threshold drops
//! to 0 (an operator command) so that everything owed is paid, and the run continues to
//! `end_ms` so the payments confirm and are scanned. [`BillingSim::audit`] then compares the
//! ledgers with the ground truth and with the chain.
//!
//! Here: the nodes, the agenda and the drive loop. `config`: what a run is made of. `world`:
//! the network built from the seed, the world's actions, and the world as each node's shell.
//! `audit`: what a run is judged by.

mod audit;
mod config;
mod world;

pub use config::{Cheat, Crash, SimConfig, Stray, StraySender, Topology};
pub use world::PACKET_BYTES;

use crate::events::billing::{
    BillingEvent, BillingInput, BillingTimer, Enforcement, OperatorCommand, Thresholds,
};
use crate::events::chain::{Address, TxHash};
use crate::events::usage::{CounterSample, DestinationId, Link, NeighbourId};
use crate::events::{Event, Fold, Machine, Stamp};
use crate::machines::billing::{BillingConfig, BillingMachine};
use crate::machines::NodeState;
use crate::rng::SplitMix64;
use crate::sim::chain::ChainTwin;
use crate::sim::drive::{self, Flow};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use world::{address_of, Action, Network, World};

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
    /// `lowest_advertised[k][d]`: the least k ever advertised for d.
    pub lowest_advertised: Vec<Vec<u64>>,
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
    /// Rx bytes a reset hid from a payee's machine, per (payee, payer, destination).
    pub reset_unseen_rx: BTreeMap<(usize, usize, usize), u64>,
    /// Every stray transfer sent: hash → its index in `config.strays`.
    pub strays: BTreeMap<TxHash, usize>,
    pub enforcements: Vec<Enforced>,
    pub refusals: Vec<(usize, String)>,
    /// Every signed payment: hash → (node, payment id).
    pub signed: BTreeMap<TxHash, (usize, u64)>,
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

impl BillingSim {
    pub fn new(config: SimConfig) -> Self {
        assert!(config.nodes >= 2, "a network needs two nodes");
        assert!(config.max_quote_delay_ms < config.usage.window_ms, "quotes arrive within a window");
        let root = SplitMix64::new(config.seed);
        let n = config.nodes;
        let Network { adjacency, next_hop, fees, advertised, quotes, flows, loss_ppm } =
            Network::build(&config, &root);
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
            lowest_advertised: advertised.clone(),
            advertised,
            quotes,
            quote_fifo: BTreeMap::new(),
            flows,
            loss_ppm,
            hops: BTreeMap::new(),
            originated: BTreeMap::new(),
            reset_unbilled: BTreeMap::new(),
            reset_unseen_rx: BTreeMap::new(),
            strays: BTreeMap::new(),
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
        for (index, stray) in sim.config.strays.clone().into_iter().enumerate() {
            if let StraySender::Node(j) = stray.from {
                assert!(
                    j != stray.to && !sim.nodes[stray.to].neighbours.contains(&j),
                    "{stray:?}: j is bound there"
                );
            }
            sim.schedule(stray.at_ms, Action::Stray { index });
        }
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
}
