//! The Babel machine: an RFC 8966 speaker whose routes carry lastmile's route vector (path
//! price, RTT and loss) and are chosen by the user's score.
//!
//! What is standard Babel and what is ours:
//! - Neighbour discovery (Hello/IHU, Appendix A costs), the route table, the source table and
//!   the feasibility condition (§3.5), triggered and periodic updates with split horizon
//!   (§3.7), route and seqno requests with starvation recovery (§3.8), expiry — all on the
//!   16-bit metric, so loop freedom is Babel's, unchanged, and any Babel speaker interoperates.
//! - Among *feasible* routes with a finite metric, the machine selects the one with the best
//!   user score ([`score`]) of its path vector, with hysteresis. The vector rides in a
//!   non-mandatory Update sub-TLV (`docs/babel-route-vector.md`) that other speakers ignore;
//!   routes without it are "unpriced" and [`UnpricedPolicy`] decides.
//! - Before advertising a route, the node adds its own fee to the path price, its link RTT
//!   to the path RTT and its link loss to the path loss.
//! - End-to-end probes of destinations in use are compared with what the neighbour
//!   advertised ([`trust`]); a neighbour whose advertisements are consistently better than
//!   reality loses trust, which inflates the RTT and loss of its routes in the score. The
//!   evidence is recorded as events: they explain routing choices later.
//!
//! Every change of the selected route table is an effect
//! ([`RouteChange`](crate::events::routing::RouteChange)): the kernel route
//! and, for billing, the neighbour and the price it advertised.
//!
//! The machine is split by what each part owns: [`config`] (how it is configured),
//! [`neighbour`] (the neighbour table and link costs), `table.rs` (the route table: routes,
//! selection by neighbour, sources and feasibility, expiry), `select.rs` (route selection and
//! what it reports and advertises), `requests.rs` (§3.8), `receive.rs` and `send.rs` (TLVs in
//! and packets out), [`limits`] (bounds on what strangers and neighbours may make it hold),
//! [`trust`] and [`score`]. Its vocabulary is [`crate::events::routing`].

pub mod config;
pub mod limits;
pub mod neighbour;
mod receive;
mod requests;
pub mod score;
mod select;
mod send;
mod table;
#[cfg(test)]
mod tests;
pub mod trust;

use crate::events::routing::{
    InterfaceConfig, Refusals, RoutingEffect, RoutingEvent, RoutingInput, RoutingTimer, SendTo,
};
use crate::events::{Machine, Outbox, Stamp, TimerTable};
use crate::wire::babel::{Prefix, RouteRequest, RouteVector, RouterId, Tlv, Update};
pub use config::{BabelConfig, UnpricedPolicy};
use core::net::Ipv6Addr;
pub use limits::BabelLimits;
use limits::Guard;
use neighbour::Neighbours;
use requests::Requests;
pub use score::ScoreWeights;
use send::{Interface, SendQueue};
use std::collections::{BTreeMap, BTreeSet};
use table::{Advert, RouteTable};
pub use trust::{TrustConfig, TrustLedger};

/// The infinite metric (RFC 8966 §2.1).
pub const INFINITY: u16 = 0xFFFF;
/// IPv6 minimum MTU minus the IPv6 and UDP headers: every packet fits on any link, tunnels
/// included.
pub const MAX_PACKET: usize = 1280 - 40 - 8;

/// `a` is newer than `b` in the 16-bit seqno space (RFC 8966 §3.2.1).
pub fn seqno_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// The Babel speaker. See the module docs.
pub struct BabelMachine {
    config: BabelConfig,
    boot: u32,
    now_ms: u64,
    seqno: u16,
    interfaces: BTreeMap<u32, Interface>,
    neighbours: Neighbours,
    table: RouteTable,
    originated: BTreeSet<Prefix>,
    requests: Requests,
    trust: TrustLedger,
    probes: trust::Probes,
    guard: Guard,
    timers: TimerTable<RoutingTimer>,
    out: Outbox<RoutingEvent, RoutingEffect>,
    /// Counters for diagnostics and the simulator.
    pub stats: BabelStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BabelStats {
    pub packets_in: u64,
    pub packets_malformed: u64,
    pub tlvs_ignored: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub route_changes: u64,
    pub seqno_requests_sent: u64,
    /// What the limits refused ([`limits`]).
    pub refused: Refusals,
}

/// One route to a destination as selection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub ifindex: u32,
    pub neighbour: Ipv6Addr,
    pub router_id: RouterId,
    pub seqno: u16,
    pub metric: u16,
    pub feasible: bool,
    /// `(tier, score)`, lower is better (tier 1: unpriced under [`UnpricedPolicy::Avoid`]).
    pub rank: (u8, u64),
    pub selected: bool,
}

/// A selected route, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectedRoute {
    pub ifindex: u32,
    pub neighbour: Ipv6Addr,
    pub router_id: RouterId,
    pub metric: u16,
    pub vector: Option<RouteVector>,
}

/// What the machine measured of the link to one neighbour, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkView {
    /// The link cost (RFC 8966 Appendix A); [`INFINITY`]: not usable.
    pub cost: u16,
    pub rtt_us: Option<u32>,
    pub loss_micro_nepers: u32,
}

impl BabelMachine {
    /// A speaker with the durable trust ledger recovered from the log.
    pub fn new(config: BabelConfig, trust: TrustLedger, now: Stamp) -> Self {
        BabelMachine {
            config,
            boot: now.boot,
            now_ms: now.tick_ms,
            seqno: 0,
            interfaces: BTreeMap::new(),
            neighbours: Neighbours::default(),
            table: RouteTable::default(),
            originated: BTreeSet::new(),
            requests: Requests::default(),
            trust,
            probes: trust::Probes::default(),
            guard: Guard::default(),
            timers: TimerTable::new(),
            out: Outbox::new(),
            stats: BabelStats::default(),
        }
    }

    pub fn config(&self) -> &BabelConfig {
        &self.config
    }

    pub fn router_id(&self) -> RouterId {
        self.config.router_id
    }

    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    pub fn trust(&self) -> &TrustLedger {
        &self.trust
    }

    /// Replaces the durable trust ledger (see [`crate::machines::Resync`]).
    pub fn resync_trust(&mut self, trust: TrustLedger) {
        self.trust = trust;
    }

    /// The selected route to each reachable destination (our own prefixes excluded).
    pub fn selected(&self) -> impl Iterator<Item = (Prefix, SelectedRoute)> + '_ {
        self.table.iter().filter_map(move |(p, d)| {
            let r = d.selected_route()?;
            let n = self.neighbours.get(r.neighbour)?;
            Some((
                *p,
                SelectedRoute {
                    ifindex: n.ifindex,
                    neighbour: n.address,
                    router_id: r.router_id,
                    metric: self.metric(r),
                    vector: r.vector,
                },
            ))
        })
    }

    /// Every route to `prefix` with what selection saw in it, for inspection and for the
    /// simulator's properties.
    pub fn candidates(&self, prefix: Prefix) -> Vec<Candidate> {
        let Some(d) = self.table.get(&prefix) else { return Vec::new() };
        d.routes
            .iter()
            .filter_map(|r| {
                let n = self.neighbours.get(r.neighbour)?;
                Some(Candidate {
                    ifindex: n.ifindex,
                    neighbour: n.address,
                    router_id: r.router_id,
                    seqno: r.seqno,
                    metric: self.metric(r),
                    feasible: self.table.feasible(prefix, r.router_id, r.seqno, r.refmetric),
                    rank: self.rank(r),
                    selected: d.selected == Some(r.neighbour),
                })
            })
            .collect()
    }

    /// Redoes route selection for every destination (what a change of weights or trust
    /// does); the benchmark of selection cost.
    pub fn reselect_all(&mut self) {
        let prefixes: Vec<Prefix> = self.table.prefixes().copied().collect();
        for p in prefixes {
            self.reselect(p);
        }
        self.step_done();
    }

    /// Number of route entries (destination × neighbour) held.
    pub fn route_entries(&self) -> usize {
        self.table.route_entries()
    }

    pub fn destinations(&self) -> usize {
        self.table.len()
    }

    /// Neighbours with a usable link: (ifindex, address, cost, RTT µs).
    pub fn neighbours(&self) -> Vec<(u32, Ipv6Addr, u16, Option<u32>)> {
        self.neighbours
            .values()
            .map(|n| (n.ifindex, n.address, self.link_cost(n), n.rtt_us))
            .filter(|n| n.2 != INFINITY)
            .collect()
    }

    /// The link to the neighbour `address` on `ifindex`, if it is one.
    pub fn link(&self, ifindex: u32, address: Ipv6Addr) -> Option<LinkView> {
        let n = self.neighbours.get(self.neighbours.id(ifindex, address)?)?;
        Some(LinkView { cost: self.link_cost(n), rtt_us: n.rtt_us, loss_micro_nepers: n.loss_micro_nepers() })
    }

    /// The interface configuration of `ifindex`.
    fn iface_config(&self, ifindex: u32) -> Option<InterfaceConfig> {
        self.interfaces.get(&ifindex).map(|i| i.config)
    }

    fn now_us(&self) -> u32 {
        (self.now_ms.wrapping_mul(1000)) as u32
    }

    fn rearm(&mut self) {
        let mut t = TimerTable::new();
        for (ifindex, _) in self.interfaces.iter() {
            if let Some(at) = self.timers.deadline(RoutingTimer::Hello(*ifindex)) {
                t.set(RoutingTimer::Hello(*ifindex), at);
            }
            if let Some(at) = self.timers.deadline(RoutingTimer::Update(*ifindex)) {
                t.set(RoutingTimer::Update(*ifindex), at);
            }
        }
        let boot = self.boot;
        let stamp = |ms: u64| Stamp::new(boot, ms);
        let neighbours = self
            .neighbours
            .values()
            .map(|n| n.hello_deadline_ms.min(n.ihu_deadline_ms))
            .min()
            .unwrap_or(u64::MAX);
        if neighbours != u64::MAX {
            t.set(RoutingTimer::Neighbours, stamp(neighbours));
        }
        // Not a scan of the sources on every step: the table's sweep deadline covers their
        // expiry too (see `RouteTable::collect`).
        if self.table.next_sweep_ms() != u64::MAX {
            t.set(RoutingTimer::Routes, stamp(self.table.next_sweep_ms()));
        }
        if let Some(at) = self.requests.deadline() {
            t.set(RoutingTimer::Requests, stamp(at));
        }
        if let Some(at) = self.probes.next_deadline() {
            t.set(RoutingTimer::Probes, stamp(at));
        }
        if let Some(at) = self.guard.report_deadline(&self.stats.refused) {
            t.set(RoutingTimer::Report, stamp(at));
        }
        self.timers = t;
    }

    fn step_done(&mut self) {
        self.flush();
        self.report_limits(false);
        self.rearm();
    }

    fn interface_up(&mut self, ifindex: u32, link_local: Ipv6Addr, config: InterfaceConfig) {
        let mut queue = SendQueue { hello: false, ..SendQueue::default() };
        // Start like babeld and BIRD: Hello and a wildcard Route Request (RFC 8966 §3.8.1.1).
        queue.multicast.push(Tlv::RouteRequest(RouteRequest { prefix: None, unknown: Vec::new() }));
        let seqno = self.interfaces.get(&ifindex).map_or(0, |i| i.hello_seqno);
        self.interfaces.insert(ifindex, Interface { link_local, config, hello_seqno: seqno, queue });
        self.guard.interface_up(ifindex, self.now_ms, &self.config.limits);
        self.send_hello(ifindex);
        // Our own prefixes go out at once; the rest once neighbours are usable.
        self.trigger_all_originated();
        let now = self.now_ms;
        self.timers.set(RoutingTimer::Hello(ifindex), Stamp::new(self.boot, now + config.hello_interval_ms));
        self.timers
            .set(RoutingTimer::Update(ifindex), Stamp::new(self.boot, now + config.update_interval_ms));
    }

    fn interface_down(&mut self, ifindex: u32) {
        for nid in self.neighbours.on(ifindex) {
            self.remove_neighbour(nid);
        }
        self.interfaces.remove(&ifindex);
        self.guard.interface_down(ifindex);
        self.timers.clear(RoutingTimer::Hello(ifindex));
        self.timers.clear(RoutingTimer::Update(ifindex));
    }

    fn originate(&mut self, prefix: Prefix) {
        if prefix.is_martian() {
            // Never announced (the command line refuses them first).
            self.stats.refused.martians += 1;
        } else if self.originated.insert(prefix) {
            self.trigger(prefix);
        }
    }

    fn withdraw(&mut self, prefix: Prefix) {
        if self.originated.remove(&prefix) {
            self.table.entry(prefix).advertised = Some(Advert {
                router_id: self.config.router_id,
                seqno: self.seqno,
                metric: 0,
                vector: None,
                via_ifindex: None,
            });
            self.trigger(prefix);
            self.reselect(prefix);
        }
    }

    /// Routes expired and sources unused: removed, selection redone where one went.
    fn sweep_routes(&mut self) {
        for p in self.table.expire(self.now_ms, &mut self.guard) {
            self.reselect_after_removal(p);
        }
        self.table.collect(self.now_ms, &self.originated);
    }

    /// Before the daemon stops: a wildcard retraction on every interface, and every route
    /// reported gone.
    fn shutdown(&mut self) {
        let wildcard = Tlv::Update(Update {
            prefix: None,
            v4_via_v6: false,
            interval_cs: 0,
            seqno: self.seqno,
            metric: INFINITY,
            router_id: self.config.router_id,
            next_hop: None,
            vector: None,
            unknown: Vec::new(),
        });
        let ifindexes: Vec<u32> = self.interfaces.keys().copied().collect();
        for ifindex in ifindexes {
            self.packets(ifindex, SendTo::Multicast, vec![wildcard.clone()]);
        }
        let reported: Vec<Prefix> =
            self.table.iter().filter(|(_, d)| d.reported.is_some()).map(|(p, _)| *p).collect();
        for p in reported {
            if let Some(d) = self.table.get_mut(&p) {
                d.selected = None;
            }
            self.report(p);
        }
        self.interfaces.clear();
        self.timers = TimerTable::new();
        self.report_limits(true);
    }
}

impl crate::machines::Resync for BabelMachine {
    /// Routes are soft state: only the trust evidence is durable, and selection reads it.
    fn resync(&mut self, _at: Stamp, durable: &crate::machines::NodeState) {
        self.resync_trust(durable.routing.clone());
    }
}

impl Machine for BabelMachine {
    type Input = RoutingInput;
    type Event = RoutingEvent;
    type Effect = RoutingEffect;
    type Timer = RoutingTimer;
    type State = TrustLedger;

    fn handle(&mut self, at: Stamp, input: RoutingInput) {
        self.now_ms = self.now_ms.max(at.tick_ms);
        self.boot = at.boot;
        match input {
            RoutingInput::InterfaceUp { ifindex, link_local, config } => {
                self.interface_up(ifindex, link_local, config)
            }
            RoutingInput::InterfaceDown { ifindex } => self.interface_down(ifindex),
            RoutingInput::Received { ifindex, source, bytes } => self.received(ifindex, source, &bytes),
            RoutingInput::Originate(prefix) => self.originate(prefix),
            RoutingInput::Withdraw(prefix) => self.withdraw(prefix),
            RoutingInput::InUse(prefixes) => self.probes.in_use(prefixes, self.now_ms, &self.config.trust),
            RoutingInput::Probed(report) => self.probed(report),
            RoutingInput::Shutdown => self.shutdown(),
        }
        self.step_done();
    }

    fn handle_timeout(&mut self, at: Stamp, timer: RoutingTimer) {
        self.now_ms = self.now_ms.max(at.tick_ms);
        self.boot = at.boot;
        match timer {
            RoutingTimer::Hello(ifindex) => {
                if let Some(c) = self.iface_config(ifindex) {
                    self.send_hello(ifindex);
                    self.timers.set(timer, Stamp::new(self.boot, self.now_ms + c.hello_interval_ms));
                }
            }
            RoutingTimer::Update(ifindex) => {
                if let Some(c) = self.iface_config(ifindex) {
                    if let Some(i) = self.interfaces.get_mut(&ifindex) {
                        i.queue.full_dump = true;
                    }
                    self.timers.set(timer, Stamp::new(self.boot, self.now_ms + c.update_interval_ms));
                }
            }
            RoutingTimer::Neighbours => self.check_neighbours(),
            RoutingTimer::Routes => self.sweep_routes(),
            RoutingTimer::Requests => self.resend_requests(),
            RoutingTimer::Probes => self.plan_probes(),
            // `step_done` sends the report.
            RoutingTimer::Report => {}
        }
        self.step_done();
    }

    fn state(&self) -> &TrustLedger {
        &self.trust
    }

    fn outbox(&mut self) -> &mut Outbox<RoutingEvent, RoutingEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, RoutingTimer)> {
        self.timers.earliest()
    }
}
