//! Resource limits of the Babel speaker: which sources on a link become neighbours, how fast,
//! how many, what we send on their account before they are neighbours, and how many routes
//! neighbours may make us hold.
//!
//! Anyone on a link can send Babel packets from as many link-local addresses as it likes,
//! so nothing a source says may cost this node more than a bounded amount of memory, and
//! nothing it says before it is a neighbour may make the node send more than it received:
//!
//! - A source that is not a neighbour is a *stranger*. Only its multicast Hellos count: the
//!   first makes it a *candidate* (remembered in a small table per interface, the oldest
//!   forgotten for a newer one); every other TLV of a stranger is ignored and counted
//!   ([`Refusals::stranger_tlvs`]), Updates included, so strangers hold no routes.
//! - A candidate whose next Hello follows its previous one (a newer seqno, at most 16 on,
//!   within four of its Hello intervals) has been heard repeatedly: it is *admitted* as a
//!   neighbour if the neighbour tables (per interface and in total) have room and the
//!   interface's admission bucket has a token (a token bucket in stamps: `admit_burst` deep,
//!   one token back every `admit_interval_ms`). Otherwise it stays a candidate and the refusal
//!   is counted; a later Hello tries again. Neighbours already held are never evicted.
//! - What the node sends on a stranger's account is an *early Hello*: when a new candidate is
//!   heard, a Hello without IHUs, so that a real neighbour hears from us without waiting for
//!   our next periodic Hello and can admit us in turn. It goes only if the datagram that
//!   brought the candidate's first Hello was at least as large on the wire (Babel payload
//!   plus [`IP_UDP_HEADER_BYTES`]), with our timestamp if it was large enough for that too (so
//!   that the neighbour's greeting measures the link's RTT at once), else bare: each early
//!   Hello is paid by one datagram of its source, so early Hellos never add up to more bytes,
//!   or more datagrams, than the strangers sent. They also wait a quarter of our Hello
//!   interval after the previous one, so that a flood of new sources cannot become a storm of
//!   small packets that overflows the real neighbours' sockets. Only one Hello of a
//!   stranger's datagram counts: two in one datagram are not "heard repeatedly".
//! - A neighbour just admitted is greeted at once with a Hello carrying its IHU only (the
//!   admissions are what bounds those); so is a neighbour whose Hello history restarts (back
//!   after a long silence, or rebooted): on its first Hello at most once per quarter of our
//!   Hello interval, and on its second.
//! - IHUs go only to admitted neighbours, and in periodic Hellos only to those heard among
//!   their last three expected Hellos ([`super::neighbour::Neighbour::heard_recently`]).
//! - A neighbour's announced Hello interval is taken as at most `max_hello_interval_ms` (an
//!   interval of 0, "none scheduled", counts as that maximum), so a neighbour that falls silent
//!   leaves the table after 16 missed Hellos whatever it announced.
//! - Routes: a neighbour gives us at most `routes_per_neighbour` route entries, all of them
//!   together at most `routes`, for at most `destinations` distinct prefixes. An Update for a
//!   destination we already hold from that neighbour always applies (refreshes, metric
//!   changes, retractions); an Update for a new one past any bound is refused and counted.
//!   Existing routes are never evicted for a newcomer's.
//!
//! Every refusal is counted in [`Refusals`] (part of [`super::BabelStats`]); the machine
//! reports changed counters as a [`RoutingEffect::Limits`] at most every
//! [`REPORT_INTERVAL_MS`].

use super::config::cs;
use super::neighbour::NeighbourId;
use super::{seqno_newer, BabelMachine};
use crate::events::routing::{LimitsReport, Refusals, RoutingEffect};
use crate::wire::babel::{self, Hello, Tlv};
use core::net::Ipv6Addr;
use std::collections::BTreeMap;

/// What an IPv6 and a UDP header add to every Babel datagram on the wire.
pub const IP_UDP_HEADER_BYTES: u32 = 48;

/// The most often the machine reports changed refusal counters.
pub const REPORT_INTERVAL_MS: u64 = 10_000;

/// How far apart (in Hello seqnos) a candidate's two Hellos may be to count as repeated.
const MAX_CANDIDATE_GAP: u16 = 16;

/// How many of its own Hello intervals may pass between a candidate's two Hellos.
const CANDIDATE_HOLD_INTERVALS: u64 = 4;

/// Bounds on what the speakers on a link can make this node hold or send. See the module docs
/// for what each bound does; [`BabelLimits::default`] has router-sized values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BabelLimits {
    /// Neighbours held per interface.
    pub neighbours_per_interface: u32,
    /// Neighbours held on all interfaces together.
    pub neighbours: u32,
    /// Sources heard once (candidates) remembered per interface.
    pub candidates_per_interface: u32,
    /// New neighbours admitted at once on an interface: the depth of its token bucket.
    pub admit_burst: u32,
    /// One more admission token every this many ms (per interface).
    pub admit_interval_ms: u64,
    /// Route entries (destinations) learnt from one neighbour.
    pub routes_per_neighbour: u32,
    /// Route entries from all neighbours together.
    pub routes: u32,
    /// Destinations (distinct prefixes) held: what the kernel's table and every copy of it
    /// in the process grow with.
    pub destinations: u32,
    /// A neighbour's Hello interval counts as at most this (and 0 as this).
    pub max_hello_interval_ms: u64,
}

impl Default for BabelLimits {
    /// A home router with a handful of real neighbours, in a mesh of a few thousand nodes:
    ///
    /// - 32 neighbours per interface, 128 in all: a LAN or radio segment rarely has more than
    ///   a few dozen routers; one WireGuard tunnel interface has one neighbour, so 128 covers a
    ///   node with a hundred tunnels. A neighbour costs a few hundred bytes, and an IHU in every
    ///   Hello (at most 32 × 26 bytes: one packet).
    /// - 64 candidates per interface (about 40 bytes each).
    /// - Admission: 8 at once per interface (a LAN whose routers all power up together), then
    ///   one per second.
    /// - 8,192 routes per neighbour: twice the 4,000 destinations of the largest networks the
    ///   routing bench measures, all of which one neighbour may carry.
    /// - 50,000 route entries in all: 4,000 destinations through up to 12 neighbours each, at
    ///   ~150 bytes per entry (the routing bench's figure): about 7.5 MB.
    /// - 16,384 destinations: four times a 4,000-node mesh's, or two prefixes per node of an
    ///   8,000-node one. A destination costs much more than a further route to it: its kernel
    ///   route and the copies the shell keeps (route executor, status file); measured in the
    ///   namespace test, ~1.3 KiB of RSS each, all included, so at most ~21 MiB.
    /// - Hello intervals taken as at most 60 s (babeld's default is 4 s).
    fn default() -> Self {
        BabelLimits {
            neighbours_per_interface: 32,
            neighbours: 128,
            candidates_per_interface: 64,
            admit_burst: 8,
            admit_interval_ms: 1_000,
            routes_per_neighbour: 8_192,
            routes: 50_000,
            destinations: 16_384,
            max_hello_interval_ms: 60_000,
        }
    }
}

impl BabelLimits {
    /// A neighbour's announced Hello interval (centiseconds) as the machine uses it: at most
    /// `max_hello_interval_ms`, and that maximum when it announced none (0).
    pub fn hello_interval_cs(&self, announced_cs: u16) -> u16 {
        let max_cs = (self.max_hello_interval_ms / 10).clamp(1, u64::from(u16::MAX)) as u16;
        if announced_cs == 0 {
            max_cs
        } else {
            announced_cs.min(max_cs)
        }
    }
}

/// What happened to a stranger's multicast Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heard {
    /// It is a candidate now (or still); `early`: an early Hello was paid for and is due.
    Candidate { early: Option<EarlyHello> },
    /// Heard repeatedly, with room and a token: make it a neighbour, replaying its previous
    /// Hello into the history before this one.
    Admitted(PreviousHello),
    /// Heard repeatedly, but refused (counted); it stays a candidate.
    Refused,
    /// Not an interface we speak on.
    Ignored,
}

/// An early Hello its source's datagram paid for: with our timestamp when that datagram was
/// large enough for it too (so that the IHU the neighbour greets us with measures the link's
/// RTT at once), else bare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EarlyHello {
    Timestamped,
    Bare,
}

/// A candidate's previous Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PreviousHello {
    pub seqno: u16,
    /// Already bounded by [`BabelLimits::hello_interval_cs`].
    pub interval_cs: u16,
    pub heard_ms: u64,
}

/// How many neighbours are held now, on the interface concerned and in total.
#[derive(Clone, Copy, Debug)]
struct Held {
    pub on_interface: usize,
    pub total: usize,
}

/// The state of the limits (see the module docs): per interface its candidates and admission
/// bucket; the route entries held per neighbour and in total; when refusals were
/// last reported.
#[derive(Debug, Default)]
pub(super) struct Guard {
    links: BTreeMap<u32, Link>,
    /// Route entries per neighbour id; neighbours with none are absent.
    routes_of: BTreeMap<NeighbourId, u32>,
    routes: u32,
    reported: Refusals,
    /// No report before this (ms).
    next_report_ms: u64,
}

#[derive(Debug)]
struct Link {
    candidates: BTreeMap<Ipv6Addr, PreviousHello>,
    tokens: u32,
    /// Tokens are counted from here (ms).
    refilled_ms: u64,
    /// When the last early Hello was decided.
    early_ms: Option<u64>,
}

impl Guard {
    /// An interface came up: no candidates, a full bucket.
    pub fn interface_up(&mut self, ifindex: u32, now_ms: u64, limits: &BabelLimits) {
        self.links.entry(ifindex).or_insert(Link {
            candidates: BTreeMap::new(),
            tokens: limits.admit_burst,
            refilled_ms: now_ms,
            early_ms: None,
        });
    }

    /// An interface went down: its candidates are forgotten.
    pub fn interface_down(&mut self, ifindex: u32) {
        self.links.remove(&ifindex);
    }

    /// A multicast Hello from `source`, a stranger on `ifindex` (see the module docs).
    /// `interval_cs` is already bounded; `early_gap_ms` is how long after the previous early
    /// Hello another may go; `datagram_bytes` is the payload of the datagram that brought
    /// the Hello, `early_bytes` those of an early Hello with and without a timestamp. Counts
    /// refusals and evictions in `refused`.
    #[allow(clippy::too_many_arguments)]
    fn hello(
        &mut self,
        ifindex: u32,
        source: Ipv6Addr,
        hello: PreviousHello,
        held: Held,
        early_gap_ms: u64,
        datagram_bytes: usize,
        early_bytes: [usize; 2],
        limits: &BabelLimits,
        refused: &mut Refusals,
    ) -> Heard {
        let now_ms = hello.heard_ms;
        let Some(link) = self.links.get_mut(&ifindex) else { return Heard::Ignored };
        match link.candidates.get(&source).copied() {
            Some(previous) if repeated(&previous, &hello) => {
                if held.on_interface >= limits.neighbours_per_interface as usize
                    || held.total >= limits.neighbours as usize
                {
                    refused.neighbours_full += 1;
                    link.candidates.insert(source, hello);
                    return Heard::Refused;
                }
                link.refill(now_ms, limits);
                if link.tokens == 0 {
                    refused.neighbours_rate += 1;
                    link.candidates.insert(source, hello);
                    return Heard::Refused;
                }
                link.tokens -= 1;
                link.candidates.remove(&source);
                if link.candidates.is_empty() {
                    // Let go of the map's node: most links have no candidate most of the time.
                    link.candidates = BTreeMap::new();
                }
                Heard::Admitted(previous)
            }
            Some(previous) if previous.seqno == hello.seqno => Heard::Candidate { early: None },
            known => {
                // A first Hello, or one that does not follow the previous (a restart, or a
                // long silence): the candidate starts over from it.
                if known.is_none() && link.candidates.len() >= limits.candidates_per_interface as usize {
                    let oldest = link.candidates.iter().min_by_key(|(_, c)| c.heard_ms).map(|(a, _)| *a);
                    if let Some(a) = oldest {
                        link.candidates.remove(&a);
                        refused.candidates_evicted += 1;
                    }
                }
                if limits.candidates_per_interface > 0 {
                    link.candidates.insert(source, hello);
                }
                let gap_over = link.early_ms.is_none_or(|t| now_ms >= t.saturating_add(early_gap_ms));
                let early = if known.is_some() || !gap_over {
                    None
                } else if early_bytes[0] <= datagram_bytes {
                    Some(EarlyHello::Timestamped)
                } else if early_bytes[1] <= datagram_bytes {
                    Some(EarlyHello::Bare)
                } else {
                    None
                };
                if early.is_some() {
                    link.early_ms = Some(now_ms);
                }
                Heard::Candidate { early }
            }
        }
    }

    /// Candidates remembered on all interfaces.
    pub fn candidates(&self) -> usize {
        self.links.values().map(|l| l.candidates.len()).sum()
    }

    /// A new route entry from neighbour `nid`: `true` and counted if both bounds allow it,
    /// else `false` and the refusal counted.
    pub fn admit_route(&mut self, nid: NeighbourId, limits: &BabelLimits, refused: &mut Refusals) -> bool {
        let of = self.routes_of.get(&nid).copied().unwrap_or(0);
        if of >= limits.routes_per_neighbour {
            refused.routes_per_neighbour += 1;
            return false;
        }
        if self.routes >= limits.routes {
            refused.routes_total += 1;
            return false;
        }
        self.routes_of.insert(nid, of + 1);
        self.routes += 1;
        true
    }

    /// A route entry from neighbour `nid` was removed (expired).
    pub fn route_removed(&mut self, nid: NeighbourId) {
        if let Some(of) = self.routes_of.get_mut(&nid) {
            *of -= 1;
            self.routes -= 1;
            if *of == 0 {
                self.routes_of.remove(&nid);
            }
        }
    }

    /// Neighbour `nid` is gone, with every route entry it gave us.
    pub fn neighbour_removed(&mut self, nid: NeighbourId) {
        if let Some(of) = self.routes_of.remove(&nid) {
            self.routes -= of;
        }
    }

    /// Route entries held from `nid`, and in total.
    pub fn routes_of(&self, nid: NeighbourId) -> u32 {
        self.routes_of.get(&nid).copied().unwrap_or(0)
    }

    pub fn routes(&self) -> u32 {
        self.routes
    }

    /// Whether a refusal report is due now: the counters differ from the last report, and
    /// that one is at least [`REPORT_INTERVAL_MS`] old (or `now` is the last chance, `force`).
    /// Marks it sent.
    pub fn report_due(&mut self, refused: &Refusals, now_ms: u64, force: bool) -> bool {
        if *refused == self.reported || (!force && now_ms < self.next_report_ms) {
            return false;
        }
        self.reported = *refused;
        self.next_report_ms = now_ms.saturating_add(REPORT_INTERVAL_MS);
        true
    }

    /// When the next report is due, if counters changed since the last one.
    pub fn report_deadline(&self, refused: &Refusals) -> Option<u64> {
        (*refused != self.reported).then_some(self.next_report_ms)
    }
}

/// The machine's side of the limits: Hellos from strangers and neighbours, greetings, and
/// what the operator sees.
impl BabelMachine {
    /// Route entries held from the neighbour `address` on `ifindex` (as the limits count them).
    pub fn routes_from(&self, ifindex: u32, address: Ipv6Addr) -> u32 {
        self.neighbours.id(ifindex, address).map_or(0, |nid| self.guard.routes_of(nid))
    }

    /// The state of the limits now: what they refused, neighbours, candidates and route
    /// entries held.
    pub fn limits_report(&self) -> LimitsReport {
        LimitsReport {
            refused: self.stats.refused,
            neighbours: self.neighbours.len(),
            candidates: self.guard.candidates(),
            route_entries: self.guard.routes(),
            destinations: self.table.len(),
        }
    }

    /// A multicast Hello from a stranger, in a datagram of `datagram_bytes`: a candidate now,
    /// or a neighbour if heard repeatedly and admitted ([`limits`]). Returns the new
    /// neighbour's id.
    pub(super) fn stranger_hello(
        &mut self,
        ifindex: u32,
        source: Ipv6Addr,
        h: &Hello,
        datagram_bytes: usize,
    ) -> Option<NeighbourId> {
        let limits = self.config.limits;
        let our_interval_ms = self.iface_config(ifindex)?.hello_interval_ms;
        let hello = PreviousHello {
            seqno: h.seqno,
            interval_cs: limits.hello_interval_cs(h.interval_cs),
            heard_ms: self.now_ms,
        };
        let held = Held {
            on_interface: self.neighbours.values().filter(|n| n.ifindex == ifindex).count(),
            total: self.neighbours.len(),
        };
        let size = |tlv: Tlv| babel::encode(&babel::Packet { tlvs: vec![tlv], trailer: vec![] }).len();
        let early_bytes = [size(self.early_hello(ifindex, true)?), size(self.early_hello(ifindex, false)?)];
        let heard = self.guard.hello(
            ifindex,
            source,
            hello,
            held,
            our_interval_ms / 4,
            datagram_bytes,
            early_bytes,
            &limits,
            &mut self.stats.refused,
        );
        match heard {
            Heard::Candidate { early } => {
                if let (Some(early), Some(iface)) = (early, self.interfaces.get_mut(&ifindex)) {
                    iface.queue.early = Some(early);
                }
                None
            }
            Heard::Admitted(previous) => {
                let nid = self.neighbours.add(ifindex, source);
                let now_us = self.now_us();
                let n = self.neighbours.get_mut(nid).expect("added above");
                n.hello(previous.seqno, previous.interval_cs, previous.heard_ms);
                n.hello(hello.seqno, hello.interval_cs, hello.heard_ms);
                n.last_timestamp = h.timestamp_us.map(|t| (t, now_us));
                // Heard twice: answer with its IHU at once (admissions are rate-limited), so
                // that the link is usable now rather than after our next Hello.
                self.greet(nid);
                Some(nid)
            }
            Heard::Refused | Heard::Ignored => None,
        }
    }

    /// A multicast Hello from neighbour `nid`.
    pub(super) fn neighbour_hello(&mut self, nid: NeighbourId, h: &Hello) {
        let interval_cs = self.config.limits.hello_interval_cs(h.interval_cs);
        let now_ms = self.now_ms;
        let now_us = self.now_us();
        let gap_ms = self
            .neighbours
            .get(nid)
            .and_then(|n| self.iface_config(n.ifindex))
            .map(|c| c.hello_interval_ms / 4);
        let Some(n) = self.neighbours.get_mut(nid) else { return };
        n.hello(h.seqno, interval_cs, now_ms);
        n.last_timestamp = h.timestamp_us.map(|t| (t, now_us));
        // A neighbour back after a long silence, or restarted: its history starts again.
        // Answer its first Hello (at most once per quarter of our Hello interval) and its
        // second with a Hello and its IHU at once, as babeld does, so that the link is usable
        // after one Hello interval instead of two.
        let greet = match n.history & 0xff {
            0b01 => n.greeted_ms.is_none_or(|t| now_ms >= t.saturating_add(gap_ms.unwrap_or(0))),
            0b11 => true,
            _ => false,
        };
        if greet {
            self.greet(nid);
        }
    }

    /// Queues a greeting for neighbour `nid`: a Hello with its IHU, at the end of the step.
    pub(super) fn greet(&mut self, nid: NeighbourId) {
        let now_ms = self.now_ms;
        let Some(n) = self.neighbours.get_mut(nid) else { return };
        n.greeted_ms = Some(now_ms);
        let (ifindex, address) = (n.ifindex, n.address);
        if let Some(iface) = self.interfaces.get_mut(&ifindex) {
            iface.queue.greet.insert(address);
        }
    }

    /// An early Hello on `ifindex` as it would go now (with our timestamp or without), to
    /// know its size.
    fn early_hello(&self, ifindex: u32, timestamp: bool) -> Option<Tlv> {
        let iface = self.interfaces.get(&ifindex)?;
        Some(Tlv::Hello(Hello {
            unicast: false,
            seqno: iface.hello_seqno.wrapping_add(1),
            interval_cs: cs(iface.config.hello_interval_ms),
            timestamp_us: timestamp.then(|| self.now_us()),
            unknown: Vec::new(),
        }))
    }

    /// Reports the limits if their refusals changed and a report is due (or `force`).
    pub(super) fn report_limits(&mut self, force: bool) {
        if self.guard.report_due(&self.stats.refused, self.now_ms, force) {
            let report = self.limits_report();
            self.out.now(RoutingEffect::Limits(report));
        }
    }
}

impl Link {
    fn refill(&mut self, now_ms: u64, limits: &BabelLimits) {
        let interval = limits.admit_interval_ms.max(1);
        let gained = now_ms.saturating_sub(self.refilled_ms) / interval;
        if gained > 0 {
            self.tokens =
                u64::from(self.tokens).saturating_add(gained).min(u64::from(limits.admit_burst)) as u32;
            self.refilled_ms += gained * interval;
        }
        if self.tokens >= limits.admit_burst {
            self.refilled_ms = now_ms;
        }
    }
}

/// `hello` follows `previous` closely enough to count as the same source heard again.
fn repeated(previous: &PreviousHello, hello: &PreviousHello) -> bool {
    let hold_ms = u64::from(previous.interval_cs) * 10 * CANDIDATE_HOLD_INTERVALS;
    seqno_newer(hello.seqno, previous.seqno)
        && hello.seqno.wrapping_sub(previous.seqno) <= MAX_CANDIDATE_GAP
        && hello.heard_ms.saturating_sub(previous.heard_ms) <= hold_ms
}
