//! The simulated world around the machines: the network built from the seed (topology,
//! shortest-path routing, fees and the converged prices, flows, loss), the world's actions in
//! virtual time (traffic, mining, fee changes and the quotes they cause, counter readings,
//! restarts, settlement), and the world as each node's shell ([`World`]) for the shared
//! driver: its log, the chain twin, its kernel counters and the shaper.

use super::{BillingSim, Enforced, SimConfig, StraySender, Topology};
use crate::events::billing::{BillingEffect, BillingInput, BillingRecord, OperatorCommand, Thresholds};
use crate::events::chain::{Address, Amount, ChainCommand, ChainObservation, PaymentId};
use crate::events::usage::{CounterSample, DestinationId, Link};
use crate::events::{Effect, Stamp};
use crate::machines::billing::BillingMachine;
use crate::rng::SplitMix64;
use crate::sim::drive::{self, Flow};
use std::collections::BTreeMap;

/// Bytes per packet: loss drops whole packets (the last of a tick's burst may be shorter).
pub const PACKET_BYTES: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Action {
    Traffic,
    Mine,
    MinFee { fee: u128 },
    FeeChange { node: usize, fee: u64 },
    Quote { to: usize, from: usize, dest: usize, price: u64 },
    Reading { node: usize, boot: u32, id: u64 },
    Restart { node: usize },
    Settle,
    Stray { index: usize },
}

/// The network as the seed makes it, before anything happens.
pub(super) struct Network {
    pub adjacency: Vec<Vec<usize>>,
    /// `next_hop[x][d]`: where x sends traffic for d.
    pub next_hop: Vec<Vec<usize>>,
    pub fees: Vec<u64>,
    /// `advertised[k][d]`: what k advertises for d, converged.
    pub advertised: Vec<Vec<u64>>,
    /// `quotes[x][(k, d)]`: what x heard from k for d, converged.
    pub quotes: Vec<BTreeMap<(usize, usize), u64>>,
    /// (source, destination, bytes per tick).
    pub flows: Vec<(usize, usize, u64)>,
    /// Per directed hop (from, to), its packet loss (ppm).
    pub loss_ppm: BTreeMap<(usize, usize), u32>,
}

impl Network {
    /// Topology from `root.derive(1)`, fees from 2, flows from 3, loss from 5.
    pub fn build(config: &SimConfig, root: &SplitMix64) -> Self {
        let n = config.nodes;
        let mut adjacency = vec![Vec::new(); n];
        for (a, b) in edges(config, &mut root.derive(1)) {
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
        Network { adjacency, next_hop, fees, advertised, quotes, flows, loss_ppm }
    }
}

/// The simulated world as node `id`'s shell: its log, the chain twin, its kernel counters and
/// the shaper, for one [`drive::pump`].
pub(super) struct World<'a> {
    pub sim: &'a mut BillingSim,
    pub id: usize,
}

impl drive::Shell<BillingMachine> for World<'_> {
    fn record(&mut self, _at: Stamp, event: BillingRecord) -> Flow {
        self.sim.record(self.id, event.into())
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

/// The address of stray `index`'s stranger: no node binds it.
fn stranger_address(index: usize) -> Address {
    let mut a = [0x57; 20];
    a[16..20].copy_from_slice(&(index as u32).to_be_bytes());
    Address(a)
}

pub(super) fn address_of(node: usize) -> Address {
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
            let (read_tx, read_rx) = node.last_read.get(&link).copied().unwrap_or_default();
            let other = node.neighbours[link.neighbour.0 as usize - 1];
            let dest = link.destination.0 as usize;
            let quote = self.quotes[id].get(&(other, dest)).copied().unwrap_or(0);
            let hidden = u128::from(counter.0 - read_tx) * u128::from(quote);
            *self.reset_unbilled.entry((id, other)).or_default() += hidden;
            *self.reset_unseen_rx.entry((id, other, dest)).or_default() += counter.1 - read_rx;
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
        self.lowest_advertised[k][dest] = self.lowest_advertised[k][dest].min(price);
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

    pub(super) fn act(&mut self, action: Action) {
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
            Action::Stray { index } => self.stray(index),
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

    /// Sends stray transfer `index` the way any wallet would: its next nonce, signed, sent.
    fn stray(&mut self, index: usize) {
        let stray = self.config.strays[index];
        let from = match stray.from {
            StraySender::Stranger => stranger_address(index),
            StraySender::Node(j) => address_of(j),
        };
        if stray.from == StraySender::Stranger {
            self.chain.fund(from, stray.amount);
        }
        let ChainObservation::Nonce { next: nonce } = self.chain.handle(from, ChainCommand::QueryNonce)
        else {
            return; // an injected RPC failure: this stray is not sent
        };
        let to = address_of(stray.to);
        let sign = ChainCommand::Sign { id: PaymentId(u64::MAX), to, amount: Amount(stray.amount), nonce };
        let ChainObservation::Signed { tx_hash, raw, .. } = self.chain.handle(from, sign) else {
            return;
        };
        if self.chain.handle(from, ChainCommand::Send { id: PaymentId(u64::MAX), raw })
            == (ChainObservation::Sent { id: PaymentId(u64::MAX) })
        {
            self.strays.insert(tx_hash, index);
        }
    }
}
