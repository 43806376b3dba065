//! Routing, simulated: many nodes' real [`BabelMachine`]s joined by point-to-point tunnels,
//! in virtual time, with seeded delays, loss, link failures and node restarts.
//!
//! Everything is decided by one seed; each component (the graph, node addresses and fees,
//! link delays, every link's loss, boot times and clocks) derives its own [`SplitMix64`], so a
//! failing seed replays exactly. The drive loop is quinn's `Pair::drive`: jump to the earliest
//! of the scheduled changes, the packets in flight, every machine's `poll_timeout` and the next
//! forwarding check; at equal times in that order, packets in send order, timers by node.
//!
//! The world:
//! - Every link is a tunnel between two nodes: one interface on each side (ifindex 1, 2, …
//!   in the order of the node's links), each with its own link-local address. A packet sent
//!   on an interface, multicast or unicast to the peer's address, reaches the peer's
//!   interface after the link's delay, unless the link is down or loses it (per packet,
//!   seeded). A link that goes down keeps its interfaces up: the machines notice through
//!   missed Hellos, as they would with a WireGuard tunnel whose path broke.
//! - Node `i` originates its mesh prefix, a /128 in fd00::/64 whose low 64 bits are seeded
//!   (as an address derived from a public key would be); its router-id is those 64 bits, so
//!   the encoder announces it with flag 0x40 and no Router-Id TLV. Its fee is seeded.
//! - Nodes boot at seeded times in `0..boot_spread_ms`, each with its own clock (a seeded
//!   uptime). A node that goes down loses its machine (a crash: no retraction); when it comes
//!   back it starts a fresh machine in a new boot, with a clock from 0 and seqno 0.
//! - The kernel route table of every node is the fold of its machine's
//!   [`RouteChange`] effects. Every `check_interval_ms`
//!   (when a route or the topology changed) packets are followed along those tables
//!   ([`check::forwarding`]). The run is cut into epochs at every scheduled change; an
//!   epoch's convergence time is how long after its start the checks became and stayed clean.
//! - Control traffic is counted per node as Babel payload bytes and packets
//!   ([`IP_UDP_HEADER_BYTES`] more per packet on the wire), and optionally as babeld would
//!   have encoded it ([`babeld_like_len`]).

pub mod check;
pub mod reference;
pub mod topology;
mod traffic;

use crate::events::routing::{InterfaceConfig, RouteChange, RoutingEffect, RoutingInput, SendTo};
use crate::events::{Machine, Stamp};
use crate::machines::babel::{BabelConfig, BabelMachine, TrustLedger, INFINITY};
use crate::rng::SplitMix64;
use crate::wire::babel::{decode, Prefix, RouterId};
use check::{Verdict, World, BOGUS_ROUTE, NO_ROUTE};
use core::net::{IpAddr, Ipv6Addr};
use reference::Reference;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
pub use topology::{Graph, Topology};
pub use traffic::{babeld_like_len, Traffic, Window, IP_UDP_HEADER_BYTES, ROUTER_ID_TLV_BYTES};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub seed: u64,
    pub topology: Topology,
    /// Every interface's configuration (kind and intervals).
    pub interface: InterfaceConfig,
    /// One-way delay of a link: seeded per link in `delay_ms ..= delay_ms + delay_spread_ms`.
    pub delay_ms: u64,
    pub delay_spread_ms: u64,
    /// Every link loses each packet with this probability (parts per million).
    pub loss_ppm: u32,
    /// Fees are seeded per node in `0..=max_fee` base units per byte.
    pub max_fee: u64,
    /// Overrides [`BabelConfig::hysteresis`].
    pub hysteresis: Option<u64>,
    pub boot_spread_ms: u64,
    pub check_interval_ms: u64,
    /// Decode every packet sent to count what babeld would have sent ([`babeld_like_len`]).
    pub babeld_accounting: bool,
    /// Keep the independent [`Reference`] of what every node heard and advertised, so that
    /// [`BabelSim::selection_violations`] checks selection against it rather than against
    /// the machine's own verdicts (costs a decode of every packet).
    pub reference: bool,
}

impl SimConfig {
    /// Tunnels with the machine's default intervals, 10–20 ms links, no loss, fees up to 10.
    pub fn new(seed: u64, topology: Topology) -> Self {
        let interface = InterfaceConfig::tunnel();
        Self {
            seed,
            topology,
            interface,
            delay_ms: 10,
            delay_spread_ms: 10,
            loss_ppm: 0,
            max_fee: 10,
            hysteresis: None,
            boot_spread_ms: interface.hello_interval_ms,
            check_interval_ms: 100,
            babeld_accounting: false,
            reference: false,
        }
    }

    /// Fast timers for tests: Hellos every second, updates every `update_s` seconds.
    pub fn fast(seed: u64, topology: Topology, update_s: u64) -> Self {
        let mut c = Self::new(seed, topology);
        c.interface = c.interface.with_hello_ms(1_000).with_update_ms(update_s * 1_000);
        c.boot_spread_ms = 1_000;
        c
    }
}

/// A change of the world at a scheduled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    LinkDown(usize),
    LinkUp(usize),
    /// The node crashes: its machine is gone, packets to it are lost.
    NodeDown(usize),
    /// The node boots a fresh machine (seqno 0, no routes) and brings its interfaces up.
    NodeUp(usize),
}

/// A stretch of the run between two scheduled changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epoch {
    pub start_ms: u64,
    /// What changed at its start.
    pub label: String,
    /// Since when every check has been clean (`None`: not clean at the last check).
    pub clean_since_ms: Option<u64>,
    /// The last check's verdict.
    pub verdict: Verdict,
    pub checks: u64,
}

impl Epoch {
    /// How long after its start the network converged for good (up to the epoch's end).
    pub fn convergence_ms(&self) -> Option<u64> {
        self.clean_since_ms.map(|t| t - self.start_ms)
    }
}

/// One node of the simulation.
pub struct SimNode {
    pub prefix: Prefix,
    pub router_id: RouterId,
    pub fee_per_byte: u64,
    machine: Option<BabelMachine>,
    /// Boot counter: 1 at the first boot.
    pub boot: u32,
    /// When (virtual time) the current boot started, and the machine's clock then.
    started_ms: u64,
    tick_at_start: u64,
    /// The deadline armed for the machine (virtual time).
    armed: Option<u64>,
    /// Link id of interface `ifindex`, at `ifindex - 1`.
    pub interfaces: Vec<usize>,
    /// The kernel route table: per destination node, the link its packets leave on, or
    /// [`NO_ROUTE`] / [`BOGUS_ROUTE`].
    pub fib: Vec<u32>,
    pub traffic: Traffic,
    /// Events the machine emitted (trust evidence) and probes it asked for.
    pub events: u64,
    pub probes: u64,
}

impl SimNode {
    pub fn machine(&self) -> Option<&BabelMachine> {
        self.machine.as_ref()
    }

    fn stamp(&self, now_ms: u64) -> Stamp {
        Stamp::new(self.boot, self.tick_at_start + (now_ms - self.started_ms))
    }

    /// The virtual time of one of the machine's stamps (never before `now_ms`).
    fn global(&self, at: Stamp, now_ms: u64) -> u64 {
        (self.started_ms + at.tick_ms.saturating_sub(self.tick_at_start)).max(now_ms)
    }
}

#[derive(Clone, Debug)]
pub struct SimLink {
    pub a: usize,
    pub b: usize,
    pub ifindex_a: u32,
    pub ifindex_b: u32,
    pub delay_ms: u64,
    pub loss_ppm: u32,
    pub up: bool,
    rng: SplitMix64,
}

impl SimLink {
    /// The other end of the link from `node`: (node, its ifindex).
    pub fn peer_of(&self, node: usize) -> (usize, u32) {
        if node == self.a {
            (self.b, self.ifindex_b)
        } else {
            (self.a, self.ifindex_a)
        }
    }
}

/// A packet in flight. Ordered by arrival, then by send order.
struct InFlight {
    at_ms: u64,
    seq: u64,
    link: usize,
    to: usize,
    ifindex: u32,
    source: Ipv6Addr,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

/// Everything a run produced that must be the same for the same seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub now_ms: u64,
    pub traffic: Vec<Traffic>,
    pub fibs: Vec<Vec<u32>>,
    pub seqnos: Vec<Option<u16>>,
    pub route_entries: Vec<usize>,
    pub epochs: Vec<Epoch>,
}

/// Route table sizes over the live nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TableSize {
    pub nodes: usize,
    pub route_entries: usize,
    pub destinations: usize,
    pub max_route_entries: usize,
}

/// How often one node's timer may fire at one instant before the simulator calls it a bug.
const MAX_FIRES_AT_ONE_MS: u32 = 10_000;

// Components of the seed.
const SEED_GRAPH: u64 = 1;
const SEED_ADDRESSES: u64 = 2;
const SEED_FEES: u64 = 3;
const SEED_DELAYS: u64 = 4;
const SEED_LOSS: u64 = 5;
const SEED_BOOTS: u64 = 6;

/// See the module docs.
pub struct BabelSim {
    pub config: SimConfig,
    pub graph: Graph,
    pub now_ms: u64,
    pub nodes: Vec<SimNode>,
    pub links: Vec<SimLink>,
    /// Destination node of every node prefix.
    index: BTreeMap<Prefix, usize>,
    alive: Vec<bool>,
    component: Vec<u32>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    sent: u64,
    timers: BTreeSet<(u64, usize)>,
    /// (time, order) → (change, whether it opens an epoch).
    scenario: BTreeMap<(u64, u64), (Change, bool)>,
    scheduled: u64,
    next_check_ms: u64,
    dirty: bool,
    pub epochs: Vec<Epoch>,
    /// All traffic, including that of machines replaced since.
    pub total: Traffic,
    /// Route changes naming an interface or neighbour that does not exist (machine bugs).
    pub bogus_routes: u64,
    /// Unicast packets to an address that is not the peer's (machine bugs).
    pub misaddressed: u64,
    fires: (u64, usize, u32),
    /// When set, every delivered packet (decoded), route change and scheduled change is
    /// recorded here, one line each: for debugging a seed.
    pub trace: Option<Vec<String>>,
    /// Initial boots not done yet: the start epoch cannot be converged before.
    booting: usize,
    reference: Option<Reference>,
}

/// The link-local address of `node`'s interface `ifindex`.
pub fn link_local(node: usize, ifindex: u32) -> Ipv6Addr {
    let n = node as u32;
    Ipv6Addr::new(0xfe80, 0, 0, 0, (n >> 16) as u16, n as u16, (ifindex >> 16) as u16, ifindex as u16)
}

impl BabelSim {
    pub fn new(config: SimConfig) -> Self {
        let root = SplitMix64::new(config.seed);
        let graph = Graph::generate(&config.topology, &mut root.derive(SEED_GRAPH));
        let n = graph.nodes;
        let mut addresses = root.derive(SEED_ADDRESSES);
        let mut fees = root.derive(SEED_FEES);
        let mut seen = BTreeSet::new();
        let mut nodes: Vec<SimNode> = (0..n)
            .map(|_| {
                let low = loop {
                    let v = addresses.next_u64();
                    if v != 0 && v != u64::MAX && seen.insert(v) {
                        break v;
                    }
                };
                let addr = Ipv6Addr::from((0xfd00u128 << 112) | u128::from(low));
                let prefix = Prefix::host(IpAddr::V6(addr));
                SimNode {
                    prefix,
                    router_id: RouterId::from_prefix(&prefix),
                    fee_per_byte: if config.max_fee == 0 { 0 } else { fees.below(config.max_fee + 1) },
                    machine: None,
                    boot: 0,
                    started_ms: 0,
                    tick_at_start: 0,
                    armed: None,
                    interfaces: Vec::new(),
                    fib: vec![NO_ROUTE; n],
                    traffic: Traffic::default(),
                    events: 0,
                    probes: 0,
                }
            })
            .collect();
        let mut delays = root.derive(SEED_DELAYS);
        let loss = root.derive(SEED_LOSS);
        let links: Vec<SimLink> = graph
            .edges
            .iter()
            .enumerate()
            .map(|(id, &(a, b))| {
                nodes[a].interfaces.push(id);
                nodes[b].interfaces.push(id);
                SimLink {
                    a,
                    b,
                    ifindex_a: nodes[a].interfaces.len() as u32,
                    ifindex_b: nodes[b].interfaces.len() as u32,
                    delay_ms: config.delay_ms + delays.below(config.delay_spread_ms + 1),
                    loss_ppm: config.loss_ppm,
                    up: true,
                    rng: loss.derive(id as u64),
                }
            })
            .collect();
        let index = nodes.iter().enumerate().map(|(i, node)| (node.prefix, i)).collect();
        let mut sim = BabelSim {
            graph,
            now_ms: 0,
            nodes,
            links,
            index,
            alive: vec![false; n],
            component: vec![u32::MAX; n],
            in_flight: BinaryHeap::new(),
            sent: 0,
            timers: BTreeSet::new(),
            scenario: BTreeMap::new(),
            scheduled: 0,
            next_check_ms: 0,
            dirty: true,
            epochs: vec![Epoch {
                start_ms: 0,
                label: "start".into(),
                clean_since_ms: None,
                verdict: Verdict::default(),
                checks: 0,
            }],
            total: Traffic::default(),
            bogus_routes: 0,
            misaddressed: 0,
            fires: (0, 0, 0),
            booting: n,
            trace: None,
            reference: config.reference.then(|| Reference::new(n)),
            config,
        };
        let mut boots = root.derive(SEED_BOOTS);
        for node in 0..n {
            let at = boots.below(sim.config.boot_spread_ms.max(1));
            // A seeded uptime: every node's clock reads differently.
            sim.nodes[node].tick_at_start = boots.below(1 << 30);
            sim.insert(at, Change::NodeUp(node), false);
        }
        sim
    }

    /// Schedules a change; it opens a new epoch (changes at one instant share one).
    pub fn schedule(&mut self, at_ms: u64, change: Change) {
        assert!(at_ms >= self.now_ms, "the past cannot change");
        self.insert(at_ms, change, true);
    }

    /// A crash and reboot `down_ms` later (0: at once).
    pub fn schedule_restart(&mut self, at_ms: u64, node: usize, down_ms: u64) {
        self.schedule(at_ms, Change::NodeDown(node));
        self.schedule(at_ms + down_ms, Change::NodeUp(node));
    }

    fn insert(&mut self, at_ms: u64, change: Change, opens_epoch: bool) {
        self.scenario.insert((at_ms, self.scheduled), (change, opens_epoch));
        self.scheduled += 1;
    }

    /// A link chosen by `seed` among those whose failure leaves the graph connected (any
    /// link if every one is a bridge).
    pub fn pick_link(&self, seed: u64) -> usize {
        let redundant = self.graph.redundant_edges();
        let mut rng = SplitMix64::new(seed);
        if redundant.is_empty() {
            rng.below(self.links.len() as u64) as usize
        } else {
            redundant[rng.below(redundant.len() as u64) as usize]
        }
    }

    pub fn machine(&self, node: usize) -> Option<&BabelMachine> {
        self.nodes[node].machine.as_ref()
    }

    /// The destination node of `prefix`, if it is a node's prefix.
    pub fn node_of(&self, prefix: &Prefix) -> Option<usize> {
        self.index.get(prefix).copied()
    }

    /// Runs the world until `end_ms` (inclusive).
    pub fn run_until(&mut self, end_ms: u64) {
        loop {
            let change = self.scenario.first_key_value().map(|(k, _)| (k.0, 0));
            let packet = self.in_flight.peek().map(|p| (p.0.at_ms, 1));
            let timer = self.timers.first().map(|t| (t.0, 2));
            let check = Some((self.next_check_ms, 3));
            let Some((at, kind)) = [change, packet, timer, check].into_iter().flatten().min() else { break };
            if at > end_ms {
                break;
            }
            self.now_ms = at;
            match kind {
                0 => self.apply_change(),
                1 => self.deliver(),
                2 => self.fire_timer(),
                _ => self.check(),
            }
        }
        self.now_ms = self.now_ms.max(end_ms);
    }

    /// Runs in steps of `step_ms` until a check finds the network converged, or `limit_ms`.
    /// Returns the time it was found converged.
    pub fn run_until_converged(&mut self, step_ms: u64, limit_ms: u64) -> Option<u64> {
        loop {
            if self.converged_now() {
                return Some(self.now_ms);
            }
            if self.now_ms >= limit_ms {
                return None;
            }
            let next = (self.now_ms + step_ms.max(1)).min(limit_ms);
            self.run_until(next);
        }
    }

    /// Whether the last check found every reachable destination reached.
    pub fn converged_now(&self) -> bool {
        let e = self.epochs.last().expect("there is always an epoch");
        e.checks > 0 && e.clean_since_ms.is_some()
    }

    /// Runs from `from_ms` to `to_ms` and counts the traffic sent in between.
    pub fn measure(&mut self, from_ms: u64, to_ms: u64) -> Window {
        self.run_until(from_ms);
        let before = self.total;
        self.run_until(to_ms);
        let nodes = self.alive.iter().filter(|a| **a).count();
        Window { from_ms, to_ms, nodes, traffic: self.total.since(&before) }
    }

    /// Follows next hops for every pair now ([`check::forwarding`]).
    pub fn verdict(&self) -> Verdict {
        let links: Vec<(usize, usize, bool)> = self.links.iter().map(|l| (l.a, l.b, l.up)).collect();
        let fib: Vec<&[u32]> = self.nodes.iter().map(|n| n.fib.as_slice()).collect();
        check::forwarding(&World { fib: &fib, links: &links, component: &self.component })
    }

    pub fn table_size(&self) -> TableSize {
        let mut t = TableSize::default();
        for m in self.nodes.iter().filter_map(|n| n.machine.as_ref()) {
            t.nodes += 1;
            t.route_entries += m.route_entries();
            t.destinations += m.destinations();
            t.max_route_entries = t.max_route_entries.max(m.route_entries());
        }
        t
    }

    /// Route selection as seen from outside, for every live node and destination: among
    /// feasible routes with a finite metric, the selected one has the best rank, or one
    /// within the hysteresis of the best in the same tier; and one is selected if any is
    /// selectable. With [`SimConfig::reference`], feasibility, metric and rank are the
    /// [`Reference`]'s, recomputed from the wire, and every candidate whose own verdicts
    /// differ from them is reported too. Returns what breaks it.
    pub fn selection_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(m) = node.machine.as_ref() else { continue };
            let hysteresis = m.config().hysteresis;
            if self.reference.is_some() && !m.trust().neighbours.is_empty() {
                out.push(format!("node {i}: trust evidence, which the reference does not model"));
                continue;
            }
            for (p, &d) in &self.index {
                if d == i {
                    continue;
                }
                let mut candidates = m.candidates(*p);
                if let Some(r) = &self.reference {
                    for c in candidates.iter_mut() {
                        let Some(x) = r.recompute(i, m, *p, c, self.now_ms) else {
                            out.push(format!(
                                "node {i} → node {d}: a route nothing on the wire carried: {c:?}"
                            ));
                            continue;
                        };
                        let feasible = x.feasible.unwrap_or(c.feasible);
                        if (feasible, x.metric, x.rank) != (c.feasible, c.metric, c.rank) {
                            out.push(format!(
                                "node {i} → node {d}: the machine says {c:?}, the reference {x:?}"
                            ));
                        }
                        (c.feasible, c.metric, c.rank) = (feasible, x.metric, x.rank);
                    }
                }
                let best =
                    candidates.iter().filter(|c| c.feasible && c.metric != INFINITY).map(|c| c.rank).min();
                let selected = candidates.iter().find(|c| c.selected);
                let problem = match (selected, best) {
                    (None, None) => None,
                    (None, Some(_)) => Some("a feasible route exists but none is selected".to_string()),
                    (Some(s), _) if !s.feasible || s.metric == INFINITY => {
                        Some(format!("selected route is not selectable: {s:?}"))
                    }
                    (Some(s), Some(b)) if s.rank.0 != b.0 || s.rank.1 > b.1.saturating_add(hysteresis) => {
                        Some(format!("selected rank {:?}, best {b:?}, hysteresis {hysteresis}", s.rank))
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    out.push(format!("node {i} → node {d}: {problem}; candidates {candidates:?}"));
                }
            }
        }
        out
    }

    /// Checks that every live node's kernel table (the fold of its route effects) matches
    /// the machine's selected routes.
    pub fn fib_mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(m) = node.machine.as_ref() else { continue };
            let mut want = vec![NO_ROUTE; self.nodes.len()];
            for (p, s) in m.selected() {
                if let Some(&d) = self.index.get(&p) {
                    want[d] = node.interfaces.get(s.ifindex as usize - 1).map_or(BOGUS_ROUTE, |&l| l as u32);
                }
            }
            for (d, (w, h)) in want.iter().zip(&node.fib).enumerate() {
                if w != h {
                    out.push(format!("node {i} → node {d}: selected via link {w}, kernel via link {h}"));
                }
            }
        }
        out
    }

    pub fn outcome(&self) -> Outcome {
        Outcome {
            now_ms: self.now_ms,
            traffic: self.nodes.iter().map(|n| n.traffic).collect(),
            fibs: self.nodes.iter().map(|n| n.fib.clone()).collect(),
            seqnos: self.nodes.iter().map(|n| n.machine.as_ref().map(|m| m.seqno())).collect(),
            route_entries: self
                .nodes
                .iter()
                .map(|n| n.machine.as_ref().map_or(0, |m| m.route_entries()))
                .collect(),
            epochs: self.epochs.clone(),
        }
    }

    /// Takes every machine out of the simulation; it cannot run on afterwards.
    pub fn take_machines(&mut self) -> Vec<BabelMachine> {
        self.nodes.iter_mut().filter_map(|n| n.machine.take()).collect()
    }

    /// The bytes the machines hold (their own size and their heap), measured by dropping
    /// them under the counting allocator ([`super::alloc`]); `None` if the binary does not
    /// install it. Ends the simulation.
    pub fn drop_machines_measuring(&mut self) -> Option<usize> {
        super::alloc::heap_bytes()?;
        let machines = self.take_machines();
        let held = super::alloc::heap_bytes()?;
        drop(machines);
        Some(held.saturating_sub(super::alloc::heap_bytes()?))
    }

    fn apply_change(&mut self) {
        let Some(((at, _), (change, opens))) = self.scenario.pop_first() else { return };
        if let Some(trace) = self.trace.as_mut() {
            trace.push(format!("{at} change {change:?}"));
        }
        match change {
            Change::LinkDown(l) => self.links[l].up = false,
            Change::LinkUp(l) => self.links[l].up = true,
            Change::NodeDown(n) => {
                self.nodes[n].machine = None;
                self.nodes[n].fib.fill(NO_ROUTE);
                self.alive[n] = false;
                if let Some(t) = self.nodes[n].armed.take() {
                    self.timers.remove(&(t, n));
                }
            }
            Change::NodeUp(n) => {
                self.boot(n);
                if !opens {
                    self.booting -= 1;
                }
            }
        }
        if opens {
            let label = match change {
                Change::LinkDown(l) => format!("link {l} ({}–{}) down", self.links[l].a, self.links[l].b),
                Change::LinkUp(l) => format!("link {l} ({}–{}) up", self.links[l].a, self.links[l].b),
                Change::NodeDown(n) => format!("node {n} down"),
                Change::NodeUp(n) => format!("node {n} up"),
            };
            match self.epochs.last_mut() {
                Some(e) if e.start_ms == at && e.checks == 0 && at > 0 => {
                    e.label = format!("{}, {label}", e.label);
                }
                _ => self.epochs.push(Epoch {
                    start_ms: at,
                    label,
                    clean_since_ms: None,
                    verdict: Verdict::default(),
                    checks: 0,
                }),
            }
        }
        let alive = &self.alive;
        let links = &self.links;
        self.component = self.graph.components(alive, |l| links[l].up);
        self.dirty = true;
    }

    fn boot(&mut self, n: usize) {
        let now = self.now_ms;
        let node = &mut self.nodes[n];
        if node.boot > 0 {
            node.tick_at_start = 0;
        }
        node.boot += 1;
        node.started_ms = now;
        node.fib.fill(NO_ROUTE);
        let mut config = BabelConfig::new(node.router_id);
        config.fee_per_byte = node.fee_per_byte;
        if let Some(h) = self.config.hysteresis {
            config.hysteresis = h;
        }
        let stamp = node.stamp(now);
        let mut m = BabelMachine::new(config, TrustLedger::default(), stamp);
        m.handle(stamp, RoutingInput::Originate(node.prefix));
        for (i, _) in node.interfaces.iter().enumerate() {
            let ifindex = i as u32 + 1;
            m.handle(
                stamp,
                RoutingInput::InterfaceUp {
                    ifindex,
                    link_local: link_local(n, ifindex),
                    config: self.config.interface,
                },
            );
        }
        node.machine = Some(m);
        self.alive[n] = true;
        if let Some(r) = self.reference.as_mut() {
            r.boot(n);
        }
        self.pump(n);
    }

    fn deliver(&mut self) {
        let Some(Reverse(p)) = self.in_flight.pop() else { return };
        let now = self.now_ms;
        if self.nodes[p.to].machine.is_none() || !self.links[p.link].up {
            self.total.dropped += 1;
            return;
        }
        if let Some(r) = self.reference.as_mut() {
            let own = (self.nodes[p.to].router_id, self.nodes[p.to].prefix);
            r.delivered(p.to, own, p.ifindex, p.source, &p.bytes);
        }
        let node = &mut self.nodes[p.to];
        let stamp = node.stamp(now);
        let Some(m) = node.machine.as_mut() else { return };
        if let Some(trace) = self.trace.as_mut() {
            let tlvs = decode(&p.bytes).map(|d| d.packet.tlvs);
            let from = self.links[p.link].peer_of(p.to).0;
            trace.push(format!(
                "{now} deliver link {} from {from} to {} if {}: {tlvs:?}",
                p.link, p.to, p.ifindex
            ));
        }
        m.handle(stamp, RoutingInput::Received { ifindex: p.ifindex, source: p.source, bytes: p.bytes });
        self.pump(p.to);
    }

    fn fire_timer(&mut self) {
        let Some((at, n)) = self.timers.pop_first() else { return };
        self.nodes[n].armed = None;
        self.fires =
            if self.fires.0 == at && self.fires.1 == n { (at, n, self.fires.2 + 1) } else { (at, n, 1) };
        let now = self.now_ms;
        let node = &mut self.nodes[n];
        let stamp = node.stamp(now);
        let Some(m) = node.machine.as_mut() else { return };
        let Some((_, timer)) = m.poll_timeout() else { return };
        assert!(
            self.fires.2 < MAX_FIRES_AT_ONE_MS,
            "node {n}'s timer {timer:?} stays due at {at} ms: the machine does not move it"
        );
        m.handle_timeout(stamp, timer);
        self.pump(n);
    }

    fn check(&mut self) {
        if self.dirty {
            let v = self.verdict();
            self.dirty = false;
            if let Some(e) = self.epochs.last_mut() {
                e.verdict = v;
            }
        }
        let now = self.now_ms;
        let e = self.epochs.last_mut().expect("there is always an epoch");
        e.checks += 1;
        if e.verdict.converged() && self.booting == 0 {
            e.clean_since_ms.get_or_insert(now);
        } else {
            e.clean_since_ms = None;
        }
        self.next_check_ms = now + self.config.check_interval_ms.max(1);
    }

    /// Drains the machine of node `n` and executes its effects; re-arms its timer.
    fn pump(&mut self, n: usize) {
        let mut effects = Vec::new();
        {
            let node = &mut self.nodes[n];
            let Some(m) = node.machine.as_mut() else { return };
            while m.poll_event().is_some() {
                node.events += 1;
            }
            while let Some(e) = m.poll_effect() {
                effects.push(e.action);
            }
        }
        for e in effects {
            match e {
                RoutingEffect::Send { ifindex, to, bytes } => self.send(n, ifindex, to, bytes),
                RoutingEffect::Route(change) => self.route(n, change),
                RoutingEffect::Probe { .. } => self.nodes[n].probes += 1,
                // The simulated nodes are all honest: a refusal shows in the machine's stats.
                RoutingEffect::Limits(_) => {}
            }
        }
        let now = self.now_ms;
        let node = &mut self.nodes[n];
        let deadline =
            node.machine.as_ref().and_then(|m| m.poll_timeout()).map(|(at, _)| node.global(at, now));
        if deadline != node.armed {
            if let Some(t) = node.armed {
                self.timers.remove(&(t, n));
            }
            if let Some(t) = deadline {
                self.timers.insert((t, n));
            }
            node.armed = deadline;
        }
    }

    fn send(&mut self, n: usize, ifindex: u32, to: SendTo, bytes: Vec<u8>) {
        if let Some(r) = self.reference.as_mut() {
            r.sent(n, self.now_ms, &bytes);
        }
        let mut t = Traffic { packets: 1, payload_bytes: bytes.len() as u64, ..Traffic::default() };
        if self.config.babeld_accounting {
            let (len, updates) = babeld_like_len(&bytes);
            t.babeld_like_bytes = len as u64;
            t.updates = updates as u64;
            if updates > 0 {
                t.update_packets = 1;
                t.update_payload_bytes = t.payload_bytes;
                t.babeld_like_update_bytes = t.babeld_like_bytes;
            }
        }
        let link = self.nodes[n].interfaces.get(ifindex as usize - 1).copied();
        let Some(link) = link.filter(|&l| self.links[l].up) else {
            t.dropped = 1;
            self.count(n, &t);
            return;
        };
        let l = &mut self.links[link];
        let (peer, peer_ifindex) = l.peer_of(n);
        if let SendTo::Unicast(address) = to {
            if address != link_local(peer, peer_ifindex) {
                self.misaddressed += 1;
                t.dropped = 1;
                self.count(n, &t);
                return;
            }
        }
        if l.loss_ppm > 0 && l.rng.below(1_000_000) < u64::from(l.loss_ppm) {
            if let Some(trace) = self.trace.as_mut() {
                let tlvs = decode(&bytes).map(|d| d.packet.tlvs);
                trace.push(format!("{} lost link {link} from {n} if {ifindex}: {tlvs:?}", self.now_ms));
            }
            t.lost = 1;
            self.count(n, &t);
            return;
        }
        let p = InFlight {
            at_ms: self.now_ms + l.delay_ms,
            seq: self.sent,
            link,
            to: peer,
            ifindex: peer_ifindex,
            source: link_local(n, ifindex),
            bytes,
        };
        self.sent += 1;
        self.in_flight.push(Reverse(p));
        self.count(n, &t);
    }

    fn count(&mut self, n: usize, t: &Traffic) {
        self.nodes[n].traffic.add(t);
        self.total.add(t);
    }

    fn route(&mut self, n: usize, change: RouteChange) {
        let Some(&d) = self.index.get(&change.prefix) else { return };
        let node = &self.nodes[n];
        let entry = match change.via {
            None => NO_ROUTE,
            Some(via) => {
                let link = node.interfaces.get((via.ifindex as usize).wrapping_sub(1)).copied();
                match link {
                    Some(l) => {
                        let (peer, peer_ifindex) = self.links[l].peer_of(n);
                        if via.neighbour == link_local(peer, peer_ifindex) {
                            l as u32
                        } else {
                            BOGUS_ROUTE
                        }
                    }
                    None => BOGUS_ROUTE,
                }
            }
        };
        if entry == BOGUS_ROUTE {
            self.bogus_routes += 1;
        }
        if let Some(trace) = self.trace.as_mut() {
            trace.push(format!("{} route node {n} → node {d}: link {entry} ({change:?})", self.now_ms));
        }
        self.nodes[n].fib[d] = entry;
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_grid_converges_and_every_destination_is_reached() {
        let mut sim = BabelSim::new(SimConfig::fast(3, Topology::Grid { width: 3, height: 3 }, 8));
        let at = sim.run_until_converged(500, 60_000).expect("a 3x3 grid converges within a minute");
        assert!(at < 20_000, "converged only at {at} ms");
        let v = sim.verdict();
        assert_eq!((v.delivered, v.pairs()), (72, 72));
        assert_eq!((sim.bogus_routes, sim.misaddressed), (0, 0));
        assert!(sim.fib_mismatches().is_empty(), "{:?}", sim.fib_mismatches());
        assert_eq!(sim.table_size().destinations, 9 * 8);
    }
}
