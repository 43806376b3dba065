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
//! Every change of the selected route table is an effect ([`RouteChange`]): the kernel route
//! and, for billing, the neighbour and the price it advertised.

pub mod limits;
pub mod neighbour;
pub mod score;
#[cfg(test)]
mod tests;
pub mod trust;

use crate::events::routing::{
    InterfaceConfig, ProbeReport, Refusals, RouteChange, RoutingEffect, RoutingEvent, RoutingInput,
    RoutingTimer, SendTo, TrustEvidence, Via,
};
use crate::events::{Effect, Fold, Machine, Stamp, TimerTable};
use crate::wire::babel::{
    self, Encoder, Hello, Ihu, Prefix, RouteRequest, RouteVector, RouterId, SeqnoRequest, Tlv, Update,
};
use core::net::{IpAddr, Ipv6Addr};
pub use limits::BabelLimits;
use limits::{EarlyHello, Guard};
use neighbour::Neighbour;
pub use score::ScoreWeights;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
pub use trust::{TrustConfig, TrustLedger};

/// The infinite metric (RFC 8966 §2.1).
pub const INFINITY: u16 = 0xFFFF;
/// How long a source entry (feasibility distance) outlives its last use (RFC 8966 §3.5.1
/// suggests 3 minutes).
const SOURCE_GC_MS: u64 = 180_000;
/// How long a forwarded or sent seqno request suppresses duplicates, and the resend interval.
const REQUEST_HOLD_MS: u64 = 2_000;
/// How many times a seqno request is resent while the destination still starves.
const REQUEST_RESENDS: u8 = 2;
/// The hop count of seqno requests we originate (babeld uses 127; RFC 8966 suggests 64+).
const REQUEST_HOPS: u8 = 64;
/// IPv6 minimum MTU minus the IPv6 and UDP headers: every packet fits on any link, tunnels
/// included.
pub const MAX_PACKET: usize = 1280 - 40 - 8;

/// What to do with routes that carry no route vector (learnt from speakers that are not
/// lastmile, or through them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpricedPolicy {
    /// Use them only when no priced route to the destination is feasible.
    Avoid,
    /// Treat them as if they carried this vector.
    Assume(RouteVector),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BabelConfig {
    pub router_id: RouterId,
    /// What this node charges per byte for forwarding: added to the path price it advertises.
    pub fee_per_byte: u64,
    pub weights: ScoreWeights,
    pub unpriced: UnpricedPolicy,
    /// A selected route is only replaced by one whose score is better by more than this
    /// (score units, [`score::ONE`] = one doubling of a component).
    pub hysteresis: u64,
    /// Relative change of path RTT or loss (in 1/1000) below which no triggered update is
    /// sent; the periodic update carries it. Price changes always trigger.
    pub vector_threshold_permille: u32,
    pub trust: TrustConfig,
    /// Bounds on neighbours, candidates, admission rate and routes ([`limits`]).
    pub limits: BabelLimits,
}

impl BabelConfig {
    pub fn new(router_id: RouterId) -> Self {
        Self {
            router_id,
            fee_per_byte: 0,
            weights: ScoreWeights::default(),
            unpriced: UnpricedPolicy::Avoid,
            hysteresis: score::ONE / 8,
            vector_threshold_permille: 250,
            trust: TrustConfig::default(),
            limits: BabelLimits::default(),
        }
    }
}

struct Interface {
    link_local: Ipv6Addr,
    config: InterfaceConfig,
    hello_seqno: u16,
    outbox: Outbox,
}

/// What waits to be sent on one interface at the end of the current step.
#[derive(Default)]
struct Outbox {
    /// The periodic Hello: with a timestamp and the IHUs of every neighbour heard recently.
    hello: bool,
    /// Otherwise a greeting: a Hello with the IHUs of these neighbours only ([`limits`]).
    greet: BTreeSet<Ipv6Addr>,
    /// Otherwise an early Hello without IHUs (paid for, see [`limits`]).
    early: Option<EarlyHello>,
    multicast: Vec<Tlv>,
    unicast: BTreeMap<Ipv6Addr, Vec<Tlv>>,
    full_dump: bool,
    /// Updates for these prefixes (triggered), sent multicast.
    prefixes: BTreeSet<Prefix>,
}

/// One route: a destination as learnt from one neighbour. Kept small: a node holds one per
/// destination and neighbour.
#[derive(Clone, Debug)]
struct Route {
    neighbour: u32,
    router_id: RouterId,
    seqno: u16,
    /// The metric the neighbour advertised (before our link cost); INFINITY: retracted.
    refmetric: u16,
    next_hop: Option<IpAddr>,
    vector: Option<RouteVector>,
    expires_ms: u64,
}

/// What we last advertised for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Advert {
    router_id: RouterId,
    seqno: u16,
    metric: u16,
    vector: Option<RouteVector>,
    /// The interface of the route advertised (split horizon).
    via_ifindex: Option<u32>,
}

#[derive(Clone, Debug, Default)]
struct Destination {
    routes: Vec<Route>,
    /// Index into `routes`.
    selected: Option<usize>,
    /// The last advertisement sent (a retraction if `metric == INFINITY`).
    advertised: Option<Advert>,
    /// The route change last reported (to report only changes).
    reported: Option<(Via, Option<u64>)>,
}

#[derive(Clone, Copy, Debug)]
struct Source {
    seqno: u16,
    metric: u16,
    gc_ms: u64,
}

#[derive(Clone, Copy, Debug)]
struct PendingRequest {
    seqno: u16,
    resend_ms: u64,
    resends: u8,
    /// True for requests this node originated (resent while starving); false for forwarded
    /// ones (kept only to suppress duplicates).
    ours: bool,
}

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
    neighbours: BTreeMap<u32, Neighbour>,
    neighbour_ids: BTreeMap<(u32, Ipv6Addr), u32>,
    next_neighbour: u32,
    destinations: BTreeMap<Prefix, Destination>,
    sources: BTreeMap<(Prefix, RouterId), Source>,
    originated: BTreeSet<Prefix>,
    requests: BTreeMap<(Prefix, RouterId), PendingRequest>,
    next_route_sweep_ms: u64,
    trust: TrustLedger,
    probes: trust::Probes,
    guard: Guard,
    timers: TimerTable<RoutingTimer>,
    events: VecDeque<RoutingEvent>,
    effects: VecDeque<Effect<RoutingEffect>>,
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

impl BabelMachine {
    /// A speaker with the durable trust ledger recovered from the log.
    pub fn new(config: BabelConfig, trust: TrustLedger, now: Stamp) -> Self {
        BabelMachine {
            config,
            boot: now.boot,
            now_ms: now.tick_ms,
            seqno: 0,
            interfaces: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            neighbour_ids: BTreeMap::new(),
            next_neighbour: 1,
            destinations: BTreeMap::new(),
            sources: BTreeMap::new(),
            originated: BTreeSet::new(),
            requests: BTreeMap::new(),
            next_route_sweep_ms: u64::MAX,
            trust,
            probes: trust::Probes::default(),
            guard: Guard::default(),
            timers: TimerTable::new(),
            events: VecDeque::new(),
            effects: VecDeque::new(),
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
        self.destinations.iter().filter_map(move |(p, d)| {
            let r = &d.routes[d.selected?];
            let n = self.neighbours.get(&r.neighbour)?;
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
        let Some(d) = self.destinations.get(&prefix) else { return Vec::new() };
        d.routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let n = self.neighbours.get(&r.neighbour)?;
                Some(Candidate {
                    ifindex: n.ifindex,
                    neighbour: n.address,
                    router_id: r.router_id,
                    seqno: r.seqno,
                    metric: self.metric(r),
                    feasible: self.feasible(prefix, r.router_id, r.seqno, r.refmetric),
                    rank: self.rank(r),
                    selected: d.selected == Some(i),
                })
            })
            .collect()
    }

    /// Redoes route selection for every destination (what a change of weights or trust
    /// does); the benchmark of selection cost.
    pub fn reselect_all(&mut self) {
        let prefixes: Vec<Prefix> = self.destinations.keys().copied().collect();
        for p in prefixes {
            self.reselect(p);
        }
        self.step_done();
    }

    /// Number of route entries (destination × neighbour) held.
    pub fn route_entries(&self) -> usize {
        self.destinations.values().map(|d| d.routes.len()).sum()
    }

    pub fn destinations(&self) -> usize {
        self.destinations.len()
    }

    /// Neighbours with a usable link: (ifindex, address, cost, RTT µs).
    pub fn neighbours(&self) -> Vec<(u32, Ipv6Addr, u16, Option<u32>)> {
        self.neighbours
            .values()
            .map(|n| (n.ifindex, n.address, self.link_cost(n), n.rtt_us))
            .filter(|n| n.2 != INFINITY)
            .collect()
    }

    /// The interface configuration of `ifindex`.
    fn iface_config(&self, ifindex: u32) -> Option<InterfaceConfig> {
        self.interfaces.get(&ifindex).map(|i| i.config)
    }

    fn link_cost(&self, n: &Neighbour) -> u16 {
        match self.iface_config(n.ifindex) {
            Some(c) => n.cost(c.kind, c.nominal_cost),
            None => INFINITY,
        }
    }

    fn metric(&self, r: &Route) -> u16 {
        if r.refmetric == INFINITY {
            return INFINITY;
        }
        let cost = self.neighbours.get(&r.neighbour).map_or(INFINITY, |n| self.link_cost(n));
        if cost == INFINITY {
            return INFINITY;
        }
        u32::from(r.refmetric).saturating_add(u32::from(cost)).min(u32::from(INFINITY - 1)) as u16
    }

    fn now_us(&self) -> u32 {
        (self.now_ms.wrapping_mul(1000)) as u32
    }

    /// The feasibility condition (RFC 8966 §3.5.1): an update is feasible when no source entry
    /// exists, or it is newer, or as new with a strictly smaller metric. Retractions always are.
    fn feasible(&self, prefix: Prefix, router_id: RouterId, seqno: u16, refmetric: u16) -> bool {
        if refmetric == INFINITY {
            return true;
        }
        match self.sources.get(&(prefix, router_id)) {
            None => true,
            Some(s) => seqno_newer(seqno, s.seqno) || (seqno == s.seqno && refmetric < s.metric),
        }
    }

    /// The vector a route's path has from here: what the neighbour advertised plus our link
    /// to it (no fee: that is added when *we* advertise). `None` for unpriced routes unless
    /// the policy assumes a vector.
    fn path_vector(&self, r: &Route) -> Option<RouteVector> {
        let advertised = match (r.vector, self.config.unpriced) {
            (Some(v), _) => v,
            (None, UnpricedPolicy::Assume(v)) => v,
            (None, UnpricedPolicy::Avoid) => return None,
        };
        let n = self.neighbours.get(&r.neighbour)?;
        Some(RouteVector {
            price_per_byte: advertised.price_per_byte,
            rtt_us: advertised.rtt_us.saturating_add(n.rtt_us.unwrap_or(0)),
            loss_micro_nepers: advertised.loss_micro_nepers.saturating_add(n.loss_micro_nepers()),
        })
    }

    /// The user's score of a route, trust applied: `(tier, score)`, lower is better; tier 1
    /// holds unpriced routes under [`UnpricedPolicy::Avoid`], ranked by their Babel metric
    /// as a standard speaker would (256 metric units count as one score unit, so the
    /// hysteresis is 32 units: one more wired hop is always worse).
    fn rank(&self, r: &Route) -> (u8, u64) {
        match self.path_vector(r) {
            Some(v) => {
                let penalty = self.trust.penalty(r.neighbour_key(self), &self.config.weights);
                (0, self.config.weights.score(&v).saturating_add(penalty))
            }
            None => (1, u64::from(self.metric(r)) * score::ONE / 256),
        }
    }

    fn selectable(&self, prefix: Prefix, r: &Route) -> bool {
        self.metric(r) != INFINITY && self.feasible(prefix, r.router_id, r.seqno, r.refmetric)
    }

    /// Route selection for one destination (RFC 8966 §3.6, with the user's score among
    /// feasible routes), then the effects and triggered updates it implies.
    fn reselect(&mut self, prefix: Prefix) {
        let Some(d) = self.destinations.get(&prefix) else { return };
        let previous = d.selected;
        let mut best: Option<(usize, (u8, u64))> = None;
        for (i, r) in d.routes.iter().enumerate() {
            if !self.selectable(prefix, r) {
                continue;
            }
            let rank = self.rank(r);
            if best.is_none_or(|(_, b)| rank < b) {
                best = Some((i, rank));
            }
        }
        // Hysteresis: keep the current route unless the best is better by the margin.
        let chosen = match (previous, best) {
            (Some(p), Some((b, brank)))
                if p != b && p < d.routes.len() && self.selectable(prefix, &d.routes[p]) =>
            {
                let prank = self.rank(&d.routes[p]);
                if brank.0 < prank.0 || brank.1.saturating_add(self.config.hysteresis) < prank.1 {
                    Some(b)
                } else {
                    Some(p)
                }
            }
            (_, b) => b.map(|(i, _)| i),
        };
        let starving = chosen.is_none() && previous.is_some();
        let last_router = previous.and_then(|p| d.routes.get(p)).map(|r| r.router_id);
        if let Some(d) = self.destinations.get_mut(&prefix) {
            d.selected = chosen;
        }
        self.report(prefix);
        self.trigger_if_changed(prefix);
        if starving {
            self.starving(prefix, last_router);
        }
    }

    /// Emits a [`RouteChange`] if the kernel route or the price changed.
    fn report(&mut self, prefix: Prefix) {
        let now = self.destinations.get(&prefix).and_then(|d| {
            let r = &d.routes[d.selected?];
            let n = self.neighbours.get(&r.neighbour)?;
            let next_hop = r.next_hop.unwrap_or(IpAddr::V6(n.address));
            Some((
                Via { ifindex: n.ifindex, neighbour: n.address, next_hop },
                r.vector.map(|v| v.price_per_byte),
            ))
        });
        let Some(d) = self.destinations.get_mut(&prefix) else { return };
        if d.reported == now {
            return;
        }
        d.reported = now;
        self.stats.route_changes += 1;
        let change = match now {
            Some((via, price)) => RouteChange { prefix, via: Some(via), price_per_byte: price },
            None => RouteChange { prefix, via: None, price_per_byte: None },
        };
        self.effects.push_back(Effect::now(RoutingEffect::Route(change)));
    }

    /// What we would advertise for `prefix` now; `None`: a retraction.
    fn advert(&self, prefix: Prefix) -> Option<Advert> {
        if self.originated.contains(&prefix) {
            return Some(Advert {
                router_id: self.config.router_id,
                seqno: self.seqno,
                metric: 0,
                vector: Some(RouteVector::default()),
                via_ifindex: None,
            });
        }
        let d = self.destinations.get(&prefix)?;
        let r = &d.routes[d.selected?];
        let metric = self.metric(r);
        if metric == INFINITY {
            return None;
        }
        let n = self.neighbours.get(&r.neighbour)?;
        let vector = self.path_vector(r).map(|v| RouteVector {
            price_per_byte: v.price_per_byte.saturating_add(self.config.fee_per_byte),
            ..v
        });
        Some(Advert { router_id: r.router_id, seqno: r.seqno, metric, vector, via_ifindex: Some(n.ifindex) })
    }

    /// Queues a triggered update if what we advertise changed enough (RFC 8966 §3.7.2): a new
    /// router-id or seqno, a retraction, a large metric change, a price change, or an RTT or
    /// loss change above the threshold.
    fn trigger_if_changed(&mut self, prefix: Prefix) {
        let new = self.advert(prefix);
        let old = self.destinations.get(&prefix).and_then(|d| d.advertised);
        let significant = match (old, new) {
            (None, None) => false,
            (None, Some(_)) => true,
            (Some(o), None) => o.metric != INFINITY,
            (Some(o), Some(n)) => {
                o.metric == INFINITY
                    || o.router_id != n.router_id
                    || o.seqno != n.seqno
                    || metric_changed(o.metric, n.metric)
                    || self.vector_changed(o.vector, n.vector)
            }
        };
        if significant {
            for iface in self.interfaces.values_mut() {
                iface.outbox.prefixes.insert(prefix);
            }
        } else if let (Some(o), Some(n)) = (old, new) {
            // A switch to a route through another interface, however small the change:
            // split horizon (§3.7.4) hid the route from the old interface, which must now
            // hear it, and the new one must hear the retraction.
            if o.via_ifindex != n.via_ifindex {
                for ifindex in [o.via_ifindex, n.via_ifindex].into_iter().flatten() {
                    if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                        iface.outbox.prefixes.insert(prefix);
                    }
                }
            }
        }
    }

    fn vector_changed(&self, old: Option<RouteVector>, new: Option<RouteVector>) -> bool {
        match (old, new) {
            (None, None) => false,
            (Some(o), Some(n)) => {
                let t = self.config.vector_threshold_permille;
                o.price_per_byte != n.price_per_byte
                    || changed_beyond(t, o.rtt_us, n.rtt_us, 1_000)
                    || changed_beyond(t, o.loss_micro_nepers, n.loss_micro_nepers, 1_000)
            }
            _ => true,
        }
    }

    /// All routes to `prefix` are unfeasible or gone after one was selected (RFC 8966
    /// §3.8.2.1): if some route is merely unfeasible, ask for a newer seqno.
    fn starving(&mut self, prefix: Prefix, last_router: Option<RouterId>) {
        let Some(d) = self.destinations.get(&prefix) else { return };
        let unfeasible = d.routes.iter().find(|r| self.metric(r) != INFINITY).map(|r| r.router_id);
        let Some(router_id) = last_router.or(unfeasible) else { return };
        if unfeasible.is_none() {
            return;
        }
        let seqno = self.sources.get(&(prefix, router_id)).map_or(0, |s| s.seqno).wrapping_add(1);
        self.send_seqno_request(prefix, router_id, seqno, None);
        self.requests.insert(
            (prefix, router_id),
            PendingRequest {
                seqno,
                resend_ms: self.now_ms + REQUEST_HOLD_MS,
                resends: REQUEST_RESENDS,
                ours: true,
            },
        );
    }

    /// A seqno request, multicast on every interface or unicast to one neighbour.
    fn send_seqno_request(
        &mut self,
        prefix: Prefix,
        router_id: RouterId,
        seqno: u16,
        to: Option<(u32, Ipv6Addr, u8)>,
    ) {
        self.stats.seqno_requests_sent += 1;
        match to {
            None => {
                let tlv = Tlv::SeqnoRequest(SeqnoRequest {
                    prefix,
                    seqno,
                    hop_count: REQUEST_HOPS,
                    router_id,
                    unknown: Vec::new(),
                });
                for iface in self.interfaces.values_mut() {
                    iface.outbox.multicast.push(tlv.clone());
                }
            }
            Some((ifindex, address, hop_count)) => {
                let tlv = Tlv::SeqnoRequest(SeqnoRequest {
                    prefix,
                    seqno,
                    hop_count,
                    router_id,
                    unknown: Vec::new(),
                });
                if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                    iface.outbox.unicast.entry(address).or_default().push(tlv);
                }
            }
        }
    }

    fn received(&mut self, ifindex: u32, source: Ipv6Addr, bytes: &[u8]) {
        self.stats.packets_in += 1;
        let Some(iface) = self.interfaces.get(&ifindex) else { return };
        if source == iface.link_local {
            return;
        }
        let decoded = match babel::decode(bytes) {
            Ok(d) => d,
            Err(_) => {
                self.stats.packets_malformed += 1;
                return;
            }
        };
        self.stats.tlvs_ignored += decoded.ignored.len() as u64;
        let mut nid = self.neighbour_ids.get(&(ifindex, source)).copied();
        let mut stranger_hello = false;
        let cost_before = nid.and_then(|id| self.neighbours.get(&id)).map(|n| self.link_cost(n));
        let mut hello_timestamp = None;
        let mut touched = BTreeSet::new();
        for tlv in decoded.packet.tlvs {
            let Some(nid) = nid else {
                // A stranger: only its multicast Hello counts (one per datagram), toward
                // admission; the TLVs after the Hello that admits it are a neighbour's.
                match tlv {
                    Tlv::Hello(h) if !h.unicast && !stranger_hello => {
                        stranger_hello = true;
                        hello_timestamp = h.timestamp_us;
                        nid = self.stranger_hello(ifindex, source, &h, bytes.len());
                    }
                    Tlv::Pad1 | Tlv::PadN(_) => {}
                    _ => self.stats.refused.stranger_tlvs += 1,
                }
                continue;
            };
            match tlv {
                Tlv::Hello(h) => {
                    if h.unicast {
                        // Unicast Hellos have their own seqno space (§3.4.1); we send none and
                        // count only multicast ones in the history.
                        continue;
                    }
                    hello_timestamp = h.timestamp_us;
                    self.neighbour_hello(nid, &h);
                }
                Tlv::Ihu(ihu) => self.ihu(nid, ifindex, &ihu, hello_timestamp),
                Tlv::Update(u) => {
                    if let Some(p) = self.update(nid, ifindex, source, u) {
                        touched.insert(p);
                    }
                }
                Tlv::RouteRequest(r) => self.route_request(ifindex, r),
                Tlv::SeqnoRequest(r) => self.seqno_request(nid, r),
                Tlv::AckRequest { opaque, .. } => {
                    if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                        iface.outbox.unicast.entry(source).or_default().push(Tlv::Ack { opaque });
                    }
                }
                Tlv::Ack { .. } | Tlv::Pad1 | Tlv::PadN(_) | Tlv::Unknown { .. } => {}
            }
        }
        for p in touched {
            self.reselect(p);
        }
        if let Some(nid) = nid {
            self.neighbour_changed(nid, cost_before);
        }
    }

    fn ihu(&mut self, nid: u32, ifindex: u32, ihu: &Ihu, hello_timestamp: Option<u32>) {
        let Some(link_local) = self.interfaces.get(&ifindex).map(|i| i.link_local) else { return };
        // An IHU is for us if it names no address (AE 0) or our address on this link.
        if let Some(addr) = ihu.address {
            if addr != IpAddr::V6(link_local) {
                return;
            }
        }
        let now_ms = self.now_ms;
        let now_us = self.now_us();
        let interval_cs = self.config.limits.hello_interval_cs(ihu.interval_cs);
        let Some(n) = self.neighbours.get_mut(&nid) else { return };
        n.txcost = ihu.rxcost;
        // IHU hold time: 3.5 × its interval (RFC 8966 §3.4.2), bounded like Hello intervals.
        n.ihu_deadline_ms = now_ms + u64::from(interval_cs) * 35;
        // RFC 9616 §3.3: RTT = (now − origin) − (hello transmit − receive), both pairs
        // differences on one clock each.
        if let (Some((origin, receive)), Some(transmit)) = (ihu.timestamps_us, hello_timestamp) {
            let total = now_us.wrapping_sub(origin);
            let held = transmit.wrapping_sub(receive);
            if origin != 0 && total < 60_000_000 && held <= total {
                n.rtt_sample(total - held);
            }
        }
        // The link's RTT is part of every route's rank through it: once known, and when it
        // moved as much as a vector change that is announced at once, selection is redone.
        let threshold = self.config.vector_threshold_permille;
        let Some(n) = self.neighbours.get_mut(&nid) else { return };
        let moved = match (n.rtt_ranked_us, n.rtt_us) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => changed_beyond(threshold, old, new, 1_000),
            _ => false,
        };
        if moved {
            n.rtt_ranked_us = n.rtt_us;
            self.reselect_via(nid);
        }
    }

    /// An Update from neighbour `nid` (RFC 8966 §3.5.3, §3.5.4). Returns the prefix whose
    /// selection must be redone.
    fn update(&mut self, nid: u32, ifindex: u32, source: Ipv6Addr, u: Update) -> Option<Prefix> {
        let Some(prefix) = u.prefix else {
            // Wildcard retraction: every route from this neighbour is retracted.
            let mut affected = Vec::new();
            for (p, d) in self.destinations.iter_mut() {
                for r in d.routes.iter_mut().filter(|r| r.neighbour == nid) {
                    r.refmetric = INFINITY;
                    affected.push(*p);
                }
            }
            for p in affected {
                self.reselect(p);
            }
            return None;
        };
        if prefix.is_martian() {
            // Never a destination: not installed, not propagated, not even remembered.
            self.stats.refused.martians += 1;
            return None;
        }
        if u.router_id == self.config.router_id {
            // Our own route, echoed back (or from before a restart of ours): make sure our
            // current seqno is newer than whatever the network still holds (§3.5.3). An echo
            // of our current seqno is normal (no split horizon, or a cycle) and changes nothing:
            // bumping on it would start a new round of echoes, forever.
            if self.originated.contains(&prefix) && !u.is_retraction() && seqno_newer(u.seqno, self.seqno) {
                self.seqno = u.seqno.wrapping_add(1);
                self.trigger_all_originated();
            }
            return None;
        }
        if self.originated.contains(&prefix) {
            return None;
        }
        if prefix.is_ipv4() && !u.v4_via_v6 && u.next_hop.is_none() && !u.is_retraction() {
            // An IPv4 route whose next hop would be the IPv4 source of a packet that came
            // over IPv6: unusable (RFC 8966 §4.5).
            return None;
        }
        let interval_ms = if u.interval_cs == 0 {
            self.iface_config(ifindex).map_or(16_000, |c| c.update_interval_ms)
        } else {
            u64::from(u.interval_cs) * 10
        };
        let expires_ms = self.now_ms + interval_ms * 7 / 2;
        let feasible = self.feasible(prefix, u.router_id, u.seqno, u.metric);
        let exists =
            self.destinations.get(&prefix).is_some_and(|d| d.routes.iter().any(|r| r.neighbour == nid));
        if !exists && u.is_retraction() {
            return None;
        }
        // A new destination from this neighbour needs room (an update of one we hold always
        // applies): existing routes are never evicted for a newcomer's ([`limits`]).
        if !exists {
            let limits = &self.config.limits;
            if !self.destinations.contains_key(&prefix)
                && self.destinations.len() >= limits.destinations as usize
            {
                self.stats.refused.destinations += 1;
                return None;
            }
            if !self.guard.admit_route(nid, limits, &mut self.stats.refused) {
                return None;
            }
        }
        if !feasible && self.destinations.get(&prefix).is_none_or(|d| d.selected.is_none()) {
            // An unfeasible route is all there is: ask its originator for a new seqno
            // (§3.8.2.2), once per hold time.
            self.request_once(prefix, u.router_id, u.seqno.wrapping_add(1), ifindex, source);
        }
        // Unfeasible routes are kept (never selected): they are what starvation recovery
        // (§3.8.2.1) asks newer seqnos for when the selected route goes away.
        let route = Route {
            neighbour: nid,
            router_id: u.router_id,
            seqno: u.seqno,
            refmetric: u.metric,
            next_hop: u.next_hop,
            vector: u.vector,
            expires_ms,
        };
        let d = self.destinations.entry(prefix).or_default();
        match d.routes.iter_mut().find(|r| r.neighbour == nid) {
            Some(r) => *r = route,
            None => {
                // Exact growth: a destination has a handful of routes, and doubling would
                // waste up to half of them (memory per route is a budget, see the bench).
                d.routes.reserve_exact(1);
                d.routes.push(route);
            }
        }
        self.next_route_sweep_ms = self.next_route_sweep_ms.min(expires_ms);
        Some(prefix)
    }

    fn request_once(&mut self, prefix: Prefix, router_id: RouterId, seqno: u16, ifindex: u32, to: Ipv6Addr) {
        if self.requests.get(&(prefix, router_id)).is_some_and(|r| !seqno_newer(seqno, r.seqno)) {
            return;
        }
        self.send_seqno_request(prefix, router_id, seqno, Some((ifindex, to, REQUEST_HOPS)));
        self.requests.insert(
            (prefix, router_id),
            PendingRequest { seqno, resend_ms: self.now_ms + REQUEST_HOLD_MS, resends: 0, ours: false },
        );
    }

    /// A Route Request (RFC 8966 §3.8.1.1): a wildcard asks for a full dump, a prefix for
    /// that prefix's update (a retraction if we have no route).
    fn route_request(&mut self, ifindex: u32, r: RouteRequest) {
        let Some(iface) = self.interfaces.get_mut(&ifindex) else { return };
        match r.prefix {
            None => iface.outbox.full_dump = true,
            Some(p) => {
                iface.outbox.prefixes.insert(p);
            }
        }
    }

    /// A Seqno Request (RFC 8966 §3.8.1.2).
    fn seqno_request(&mut self, nid: u32, r: SeqnoRequest) {
        if r.router_id == self.config.router_id {
            if self.originated.contains(&r.prefix) {
                if seqno_newer(r.seqno, self.seqno) {
                    // RFC 8966 §3.8.1.2 asks for an increase; we jump to the requested seqno,
                    // because after a restart (our seqno is not kept on flash) the network may
                    // hold a much newer one and +1 steps would starve it for minutes.
                    self.seqno = r.seqno;
                    self.trigger_all_originated();
                } else {
                    self.trigger(r.prefix);
                }
            }
            return;
        }
        let Some(d) = self.destinations.get(&r.prefix) else { return };
        let Some(sel) = d.selected.map(|i| d.routes[i].clone()) else { return };
        if self.metric(&sel) == INFINITY {
            return;
        }
        if sel.router_id == r.router_id && !seqno_newer(r.seqno, sel.seqno) {
            // We already have what is asked for: announce it.
            self.trigger(r.prefix);
            return;
        }
        if r.hop_count < 2 {
            return;
        }
        // Forward to the selected route's neighbour; never back to the requester, but then to
        // the neighbour of a feasible route, else of any route with a finite metric
        // (RFC 8966 §3.8.1.2): the requester is often our next hop just before we learn it
        // lost its route.
        let next = if sel.neighbour != nid {
            Some(sel.neighbour)
        } else {
            let others = || d.routes.iter().filter(|x| x.neighbour != nid && self.metric(x) != INFINITY);
            others()
                .filter(|x| self.feasible(r.prefix, x.router_id, x.seqno, x.refmetric))
                .min_by_key(|x| self.metric(x))
                .or_else(|| others().min_by_key(|x| self.metric(x)))
                .map(|x| x.neighbour)
        };
        let Some(next) = next else { return };
        // A duplicate within the hold time is dropped; one arriving as the hold time ends is
        // a resend (the requester resends every hold time), not a duplicate.
        let now = self.now_ms;
        let pending = |p: &PendingRequest| !seqno_newer(r.seqno, p.seqno) && (p.ours || p.resend_ms > now);
        if self.requests.get(&(r.prefix, r.router_id)).is_some_and(pending) {
            return;
        }
        let Some(n) = self.neighbours.get(&next) else { return };
        let to = (n.ifindex, n.address, r.hop_count - 1);
        self.send_seqno_request(r.prefix, r.router_id, r.seqno, Some(to));
        self.requests.insert(
            (r.prefix, r.router_id),
            PendingRequest {
                seqno: r.seqno,
                resend_ms: self.now_ms + REQUEST_HOLD_MS,
                resends: 0,
                ours: false,
            },
        );
    }

    fn trigger(&mut self, prefix: Prefix) {
        for iface in self.interfaces.values_mut() {
            iface.outbox.prefixes.insert(prefix);
        }
    }

    fn trigger_all_originated(&mut self) {
        let own: Vec<Prefix> = self.originated.iter().copied().collect();
        for p in own {
            self.trigger(p);
        }
    }

    /// After a neighbour's cost may have changed: redo selection for its routes, and greet a
    /// neighbour that just became usable with a full dump and a request for its own (what it
    /// sent before it was admitted was ignored).
    fn neighbour_changed(&mut self, nid: u32, cost_before: Option<u16>) {
        let Some(n) = self.neighbours.get(&nid) else { return };
        let cost = self.link_cost(n);
        let usable = cost != INFINITY;
        let was_usable = n.usable;
        let (ifindex, address) = (n.ifindex, n.address);
        if let Some(n) = self.neighbours.get_mut(&nid) {
            n.usable = usable;
            if usable && !was_usable {
                n.loss_window = 0;
            }
        }
        if usable && !was_usable {
            if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                iface.outbox.full_dump = true;
                let request = Tlv::RouteRequest(RouteRequest { prefix: None, unknown: Vec::new() });
                iface.outbox.unicast.entry(address).or_default().push(request);
            }
        }
        if cost_before != Some(cost) || usable != was_usable {
            self.reselect_via(nid);
        }
    }

    fn reselect_via(&mut self, nid: u32) {
        let prefixes: Vec<Prefix> = self
            .destinations
            .iter()
            .filter(|(_, d)| d.routes.iter().any(|r| r.neighbour == nid))
            .map(|(p, _)| *p)
            .collect();
        for p in prefixes {
            self.reselect(p);
        }
    }

    fn remove_neighbour(&mut self, nid: u32) {
        let Some(n) = self.neighbours.remove(&nid) else { return };
        self.neighbour_ids.remove(&(n.ifindex, n.address));
        self.guard.neighbour_removed(nid);
        let mut affected = Vec::new();
        for (p, d) in self.destinations.iter_mut() {
            if let Some(i) = d.routes.iter().position(|r| r.neighbour == nid) {
                d.routes.remove(i);
                d.selected = match d.selected {
                    Some(s) if s == i => Some(usize::MAX),
                    Some(s) if s > i => Some(s - 1),
                    s => s,
                };
                affected.push(*p);
            }
        }
        for p in affected {
            self.fix_removed_selection(p);
        }
    }

    /// A selected route was removed (marked `usize::MAX`): selection must be redone with the
    /// previous router-id remembered for the starvation request.
    fn fix_removed_selection(&mut self, prefix: Prefix) {
        let Some(d) = self.destinations.get_mut(&prefix) else { return };
        if d.selected == Some(usize::MAX) {
            let last = d.advertised.map(|a| a.router_id);
            d.selected = None;
            self.reselect(prefix);
            let still_none = self.destinations.get(&prefix).is_some_and(|d| d.selected.is_none());
            if still_none {
                self.starving(prefix, last);
            }
        } else {
            self.reselect(prefix);
        }
    }

    fn check_neighbours(&mut self) {
        let now = self.now_ms;
        let ids: Vec<u32> = self.neighbours.keys().copied().collect();
        for nid in ids {
            let Some(n) = self.neighbours.get(&nid) else { continue };
            let before = self.link_cost(n);
            let n = self.neighbours.get_mut(&nid).expect("listed above");
            let mut changed = false;
            while n.hello_deadline_ms <= now {
                n.missed_hello();
                changed = true;
            }
            if n.ihu_deadline_ms <= now {
                n.txcost = INFINITY;
                n.ihu_deadline_ms = u64::MAX;
                changed = true;
            }
            if n.history == 0 && n.expected_count >= 16 {
                self.remove_neighbour(nid);
                continue;
            }
            if changed {
                self.neighbour_changed(nid, Some(before));
            }
        }
    }

    fn sweep_routes(&mut self) {
        let now = self.now_ms;
        let mut next = u64::MAX;
        let mut affected = Vec::new();
        for (p, d) in self.destinations.iter_mut() {
            let before = d.routes.len();
            let selected = d.selected;
            let mut i = 0;
            let mut sel = selected;
            let guard = &mut self.guard;
            d.routes.retain(|r| {
                let keep = r.expires_ms > now;
                if !keep {
                    guard.route_removed(r.neighbour);
                    sel = match sel {
                        Some(s) if s == i => Some(usize::MAX),
                        Some(s) if s > i => Some(s - 1),
                        s => s,
                    };
                } else {
                    i += 1;
                }
                keep
            });
            // `i` counts kept routes; indices shift only for removals before the selection.
            d.selected = sel;
            for r in &d.routes {
                next = next.min(r.expires_ms);
            }
            if d.routes.len() != before {
                affected.push(*p);
            }
        }
        self.next_route_sweep_ms = next;
        for p in affected {
            self.fix_removed_selection(p);
        }
        // Destinations with nothing left, already retracted, are forgotten.
        self.destinations.retain(|p, d| {
            !d.routes.is_empty()
                || d.reported.is_some()
                || d.advertised.is_some_and(|a| a.metric != INFINITY)
                || self.originated.contains(p)
        });
        self.sources.retain(|_, s| s.gc_ms > now);
        // The sweep also collects sources: the next one is due when the oldest expires (a
        // source inserted later lowers it; a refresh only delays it, so the sweep may come
        // early and find nothing to do).
        let gc = self.sources.values().map(|s| s.gc_ms).min().unwrap_or(u64::MAX);
        self.next_route_sweep_ms = self.next_route_sweep_ms.min(gc);
    }

    fn resend_requests(&mut self) {
        let now = self.now_ms;
        let due: Vec<((Prefix, RouterId), PendingRequest)> =
            self.requests.iter().filter(|(_, r)| r.resend_ms <= now).map(|(k, r)| (*k, *r)).collect();
        for ((prefix, router_id), r) in due {
            let starving = self.destinations.get(&prefix).is_some_and(|d| d.selected.is_none());
            if r.ours && r.resends > 0 && starving {
                self.send_seqno_request(prefix, router_id, r.seqno, None);
                self.requests.insert(
                    (prefix, router_id),
                    PendingRequest { resends: r.resends - 1, resend_ms: now + REQUEST_HOLD_MS, ..r },
                );
            } else {
                self.requests.remove(&(prefix, router_id));
            }
        }
    }

    /// Queues the periodic Hello on `ifindex` (its seqno is taken when it is sent).
    fn send_hello(&mut self, ifindex: u32) {
        let Some(iface) = self.interfaces.get_mut(&ifindex) else { return };
        iface.outbox.hello = true;
    }

    /// Our IHU about neighbour `n` on an interface configured as `config`.
    fn ihu_for(&self, n: &Neighbour, config: InterfaceConfig) -> Ihu {
        Ihu {
            rxcost: n.rxcost(config.kind, config.nominal_cost),
            interval_cs: cs(config.hello_interval_ms),
            address: Some(IpAddr::V6(n.address)),
            timestamps_us: n.last_timestamp,
            unknown: Vec::new(),
        }
    }

    /// Turns every interface's outbox into packets (send effects).
    fn flush(&mut self) {
        // What was advertised before this flush decides split-horizon retractions on every
        // interface alike; the new advertisements are committed at the end.
        let mut advertised = BTreeMap::new();
        let ifindexes: Vec<u32> = self.interfaces.keys().copied().collect();
        for ifindex in ifindexes {
            let Some(iface) = self.interfaces.get_mut(&ifindex) else { continue };
            let outbox = std::mem::take(&mut iface.outbox);
            let config = iface.config;
            let mut tlvs = Vec::new();
            // One Hello at most per step: the periodic one (with a timestamp and the IHUs of
            // every neighbour heard recently), else a greeting (a timestamp and the greeted
            // neighbours' IHUs), else an early Hello (no IHU; a timestamp if paid for).
            if outbox.hello || !outbox.greet.is_empty() || outbox.early.is_some() {
                iface.hello_seqno = iface.hello_seqno.wrapping_add(1);
                let timestamp =
                    outbox.hello || !outbox.greet.is_empty() || outbox.early == Some(EarlyHello::Timestamped);
                tlvs.push(Tlv::Hello(Hello {
                    unicast: false,
                    seqno: iface.hello_seqno,
                    interval_cs: cs(config.hello_interval_ms),
                    timestamp_us: timestamp.then(|| self.now_us()),
                    unknown: Vec::new(),
                }));
                let ihus = self.neighbours.values().filter(|n| {
                    n.ifindex == ifindex
                        && if outbox.hello { n.heard_recently() } else { outbox.greet.contains(&n.address) }
                });
                for n in ihus {
                    tlvs.push(Tlv::Ihu(self.ihu_for(n, config)));
                }
            }
            tlvs.extend(outbox.multicast);
            let periodic = outbox.full_dump;
            let prefixes: BTreeSet<Prefix> = if periodic {
                self.originated.iter().chain(self.destinations.keys()).copied().collect()
            } else {
                outbox.prefixes
            };
            for p in prefixes {
                if let Some(u) = self.update_tlv(p, ifindex, config, periodic, &mut advertised) {
                    tlvs.push(Tlv::Update(u));
                }
            }
            self.packets(ifindex, SendTo::Multicast, tlvs);
            for (address, tlvs) in outbox.unicast {
                self.packets(ifindex, SendTo::Unicast(address), tlvs);
            }
        }
        for (p, a) in advertised {
            if let Some(d) = self.destinations.get_mut(&p) {
                d.advertised = Some(a);
            }
        }
    }

    /// The Update TLV for `prefix` on `ifindex`, and its bookkeeping: the feasibility
    /// distance (RFC 8966 §3.7.3) and what this flush advertises. `None`: nothing to say on
    /// this interface.
    fn update_tlv(
        &mut self,
        prefix: Prefix,
        ifindex: u32,
        config: InterfaceConfig,
        periodic: bool,
        advertised: &mut BTreeMap<Prefix, Advert>,
    ) -> Option<Update> {
        let advert = self.advert(prefix);
        let last = self.destinations.get(&prefix).and_then(|d| d.advertised);
        let interval_cs = cs(config.update_interval_ms);
        let split = config.split_horizon && advert.is_some_and(|a| a.via_ifindex == Some(ifindex));
        let retraction = |router_id, seqno| Update {
            prefix: Some(prefix),
            v4_via_v6: prefix.is_ipv4(),
            interval_cs,
            seqno,
            metric: INFINITY,
            router_id,
            next_hop: None,
            vector: None,
            unknown: Vec::new(),
        };
        let update = match advert {
            Some(a) if split => {
                // Split horizon (§3.7.4): nothing on the route's own interface, except a
                // retraction when this interface last heard it as reachable through us.
                advertised.insert(prefix, a);
                let heard_here = last.is_some_and(|l| l.metric != INFINITY && l.via_ifindex != Some(ifindex));
                if periodic || !heard_here {
                    return None;
                }
                retraction(a.router_id, a.seqno)
            }
            Some(a) => {
                let key = (prefix, a.router_id);
                let gc_ms = self.now_ms + SOURCE_GC_MS;
                match self.sources.get_mut(&key) {
                    Some(s)
                        if seqno_newer(a.seqno, s.seqno) || (a.seqno == s.seqno && a.metric < s.metric) =>
                    {
                        *s = Source { seqno: a.seqno, metric: a.metric, gc_ms };
                    }
                    Some(s) => s.gc_ms = gc_ms,
                    None => {
                        self.sources.insert(key, Source { seqno: a.seqno, metric: a.metric, gc_ms });
                        self.next_route_sweep_ms = self.next_route_sweep_ms.min(gc_ms);
                    }
                }
                advertised.insert(prefix, a);
                Update {
                    prefix: Some(prefix),
                    v4_via_v6: prefix.is_ipv4(),
                    interval_cs,
                    seqno: a.seqno,
                    metric: a.metric,
                    router_id: a.router_id,
                    next_hop: None,
                    vector: a.vector,
                    unknown: Vec::new(),
                }
            }
            None => {
                // Nothing to advertise: a retraction, unless we never said anything about it.
                if last.is_none() && periodic {
                    return None;
                }
                let router_id = last.map_or(self.config.router_id, |a| a.router_id);
                let seqno = last.map_or(self.seqno, |a| a.seqno);
                advertised.insert(
                    prefix,
                    Advert { router_id, seqno, metric: INFINITY, vector: None, via_ifindex: None },
                );
                retraction(router_id, seqno)
            }
        };
        Some(update)
    }

    /// Packs TLVs into as few packets as fit and queues them.
    fn packets(&mut self, ifindex: u32, to: SendTo, tlvs: Vec<Tlv>) {
        let mut enc = Encoder::new(MAX_PACKET);
        for tlv in tlvs {
            if !enc.push(&tlv) {
                let full = std::mem::replace(&mut enc, Encoder::new(MAX_PACKET));
                self.emit_packet(ifindex, to, full.finish());
                if !enc.push(&tlv) {
                    // A single TLV larger than a packet cannot be sent; it is dropped.
                    continue;
                }
            }
        }
        if !enc.is_empty() {
            self.emit_packet(ifindex, to, enc.finish());
        }
    }

    fn emit_packet(&mut self, ifindex: u32, to: SendTo, bytes: Vec<u8>) {
        self.stats.packets_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.effects.push_back(Effect::now(RoutingEffect::Send { ifindex, to, bytes }));
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
        // Not a scan of the sources on every step: `next_route_sweep_ms` covers their
        // expiry too (see `sweep_routes`).
        if self.next_route_sweep_ms != u64::MAX {
            t.set(RoutingTimer::Routes, stamp(self.next_route_sweep_ms));
        }
        if let Some(at) = self.requests.values().map(|r| r.resend_ms).min() {
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
        let mut outbox = Outbox { hello: false, ..Outbox::default() };
        // Start like babeld and BIRD: Hello and a wildcard Route Request (RFC 8966 §3.8.1.1).
        outbox.multicast.push(Tlv::RouteRequest(RouteRequest { prefix: None, unknown: Vec::new() }));
        let seqno = self.interfaces.get(&ifindex).map_or(0, |i| i.hello_seqno);
        self.interfaces.insert(ifindex, Interface { link_local, config, hello_seqno: seqno, outbox });
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
        let ids: Vec<u32> =
            self.neighbours.iter().filter(|(_, n)| n.ifindex == ifindex).map(|(id, _)| *id).collect();
        for nid in ids {
            self.remove_neighbour(nid);
        }
        self.interfaces.remove(&ifindex);
        self.guard.interface_down(ifindex);
        self.timers.clear(RoutingTimer::Hello(ifindex));
        self.timers.clear(RoutingTimer::Update(ifindex));
    }

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
            self.destinations.iter().filter(|(_, d)| d.reported.is_some()).map(|(p, _)| *p).collect();
        for p in reported {
            if let Some(d) = self.destinations.get_mut(&p) {
                d.selected = None;
            }
            self.report(p);
        }
        self.interfaces.clear();
        self.timers = TimerTable::new();
        self.report_limits(true);
    }
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

impl Route {
    fn neighbour_key(&self, m: &BabelMachine) -> Option<(u32, Ipv6Addr)> {
        m.neighbours.get(&self.neighbour).map(|n| (n.ifindex, n.address))
    }
}

/// A metric change worth a triggered update: to or from infinity, or by more than an eighth.
fn metric_changed(old: u16, new: u16) -> bool {
    if old == new {
        return false;
    }
    if old == INFINITY || new == INFINITY {
        return true;
    }
    u32::from(old.abs_diff(new)) * 8 > u32::from(old.max(new))
}

/// `a` and `b` differ by more than `floor` and by more than `threshold_permille` of the larger.
fn changed_beyond(threshold_permille: u32, a: u32, b: u32, floor: u32) -> bool {
    let diff = u64::from(a.abs_diff(b));
    diff > u64::from(floor) && diff * 1000 > u64::from(threshold_permille) * u64::from(a.max(b))
}

/// Milliseconds as the centiseconds of Babel intervals (saturating at 655.35 s).
fn cs(ms: u64) -> u16 {
    (ms / 10).min(u64::from(u16::MAX)) as u16
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
            RoutingInput::Originate(prefix) => {
                if prefix.is_martian() {
                    // Never announced (the command line refuses them first).
                    self.stats.refused.martians += 1;
                } else if self.originated.insert(prefix) {
                    self.trigger(prefix);
                }
            }
            RoutingInput::Withdraw(prefix) => {
                if self.originated.remove(&prefix) {
                    self.destinations.entry(prefix).or_default().advertised = Some(Advert {
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
                        i.outbox.full_dump = true;
                    }
                    self.timers.set(timer, Stamp::new(self.boot, self.now_ms + c.update_interval_ms));
                }
            }
            RoutingTimer::Neighbours => self.check_neighbours(),
            RoutingTimer::Routes => self.sweep_routes(),
            RoutingTimer::Requests => self.resend_requests(),
            RoutingTimer::Probes => {
                for prefix in self.probes.due(self.now_ms, &self.config.trust) {
                    self.effects.push_back(Effect::now(RoutingEffect::Probe { prefix }));
                }
            }
            // `step_done` sends the report.
            RoutingTimer::Report => {}
        }
        self.step_done();
    }

    fn state(&self) -> &TrustLedger {
        &self.trust
    }

    fn poll_event(&mut self) -> Option<RoutingEvent> {
        self.events.pop_front()
    }

    fn poll_effect(&mut self) -> Option<Effect<RoutingEffect>> {
        self.effects.pop_front()
    }

    fn poll_timeout(&self) -> Option<(Stamp, RoutingTimer)> {
        self.timers.earliest()
    }
}

impl BabelMachine {
    /// An end-to-end probe report: compare it with what the selected route's neighbour
    /// advertised, record the evidence, and redo selection if trust changed.
    fn probed(&mut self, report: ProbeReport) {
        let Some(d) = self.destinations.get(&report.prefix) else { return };
        let Some(r) = d.selected.map(|i| d.routes[i].clone()) else { return };
        let Some(n) = self.neighbours.get(&r.neighbour) else { return };
        let Some(advertised) = self.path_vector(&r) else { return };
        let neighbour = (n.ifindex, n.address);
        let evidence = TrustEvidence {
            ifindex: n.ifindex,
            neighbour: n.address.octets(),
            prefix: report.prefix,
            advertised_rtt_us: advertised.rtt_us,
            advertised_loss_micro_nepers: advertised.loss_micro_nepers,
            sent: report.sent,
            received: report.received,
            measured_rtt_us: report.rtt_us,
            worse: false,
            streak: 0,
            trust_permille: 0,
        };
        let trust_before = self.trust.trust_of(Some(neighbour));
        let Some(evidence) = self.trust.judge(evidence, &self.config.trust) else { return };
        let event = RoutingEvent::TrustEvidence(evidence);
        self.trust.apply(&event);
        self.events.push_back(event);
        if self.trust.trust_of(Some(neighbour)) != trust_before {
            self.reselect_via(r.neighbour);
        }
    }
}
