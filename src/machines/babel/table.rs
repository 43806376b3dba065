//! The route table (RFC 8966 §3.2.5, §3.2.6): for every destination, the route learnt from
//! each neighbour, which one is selected (by neighbour), what we last advertised and what we
//! last reported; the source table with its feasibility distances (§3.2.4, §3.5.1); and the
//! expiry of both. Selection itself needs link costs and the user's score, so it lives with
//! the machine (`select.rs`); this file keeps the data and the rules that need nothing else.

use super::limits::Guard;
use super::neighbour::NeighbourId;
use super::{seqno_newer, INFINITY};
use crate::events::routing::Via;
use crate::wire::babel::{Prefix, RouteVector, RouterId};
use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet};

/// How long a source entry (feasibility distance) outlives its last use (RFC 8966 §3.5.1
/// suggests 3 minutes).
const SOURCE_GC_MS: u64 = 180_000;

/// One route: a destination as learnt from one neighbour. Kept small: a node holds one per
/// destination and neighbour.
#[derive(Clone, Debug)]
pub(super) struct Route {
    pub neighbour: NeighbourId,
    pub router_id: RouterId,
    pub seqno: u16,
    /// The metric the neighbour advertised (before our link cost); INFINITY: retracted.
    pub refmetric: u16,
    pub next_hop: Option<IpAddr>,
    pub vector: Option<RouteVector>,
    pub expires_ms: u64,
}

/// What we last advertised for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Advert {
    pub router_id: RouterId,
    pub seqno: u16,
    pub metric: u16,
    pub vector: Option<RouteVector>,
    /// The interface of the route advertised (split horizon).
    pub via_ifindex: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Destination {
    /// At most one per neighbour.
    pub routes: Vec<Route>,
    /// The neighbour whose route is selected. It may name a route just removed (expired, or
    /// its neighbour gone) until selection is redone: see [`Destination::lost_selection`].
    pub selected: Option<NeighbourId>,
    /// The last advertisement sent (a retraction if `metric == INFINITY`).
    pub advertised: Option<Advert>,
    /// The route change last reported (to report only changes).
    pub reported: Option<(Via, Option<u64>)>,
}

impl Destination {
    pub fn route_from(&self, neighbour: NeighbourId) -> Option<&Route> {
        self.routes.iter().find(|r| r.neighbour == neighbour)
    }

    pub fn selected_route(&self) -> Option<&Route> {
        self.selected.and_then(|n| self.route_from(n))
    }

    /// The selected route was removed: selection must be redone, remembering its router-id
    /// for the starvation request.
    pub fn lost_selection(&self) -> bool {
        self.selected.is_some() && self.selected_route().is_none()
    }
}

#[derive(Clone, Copy, Debug)]
struct Source {
    seqno: u16,
    metric: u16,
    gc_ms: u64,
}

#[derive(Debug)]
pub(super) struct RouteTable {
    destinations: BTreeMap<Prefix, Destination>,
    sources: BTreeMap<(Prefix, RouterId), Source>,
    /// The earliest route expiry or source collection; `u64::MAX`: none.
    next_sweep_ms: u64,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable { destinations: BTreeMap::new(), sources: BTreeMap::new(), next_sweep_ms: u64::MAX }
    }
}

impl RouteTable {
    pub fn get(&self, prefix: &Prefix) -> Option<&Destination> {
        self.destinations.get(prefix)
    }

    pub fn get_mut(&mut self, prefix: &Prefix) -> Option<&mut Destination> {
        self.destinations.get_mut(prefix)
    }

    pub fn entry(&mut self, prefix: Prefix) -> &mut Destination {
        self.destinations.entry(prefix).or_default()
    }

    pub fn contains(&self, prefix: &Prefix) -> bool {
        self.destinations.contains_key(prefix)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Destination)> + '_ {
        self.destinations.iter()
    }

    pub fn prefixes(&self) -> impl Iterator<Item = &Prefix> + '_ {
        self.destinations.keys()
    }

    /// Destinations held.
    pub fn len(&self) -> usize {
        self.destinations.len()
    }

    /// Route entries (destination × neighbour) held.
    pub fn route_entries(&self) -> usize {
        self.destinations.values().map(|d| d.routes.len()).sum()
    }

    /// The destinations with a route from `neighbour`.
    pub fn via(&self, neighbour: NeighbourId) -> Vec<Prefix> {
        self.destinations.iter().filter(|(_, d)| d.route_from(neighbour).is_some()).map(|(p, _)| *p).collect()
    }

    pub fn next_sweep_ms(&self) -> u64 {
        self.next_sweep_ms
    }

    /// The feasibility condition (RFC 8966 §3.5.1): an update is feasible when no source entry
    /// exists, or it is newer, or as new with a strictly smaller metric. Retractions always are.
    pub fn feasible(&self, prefix: Prefix, router_id: RouterId, seqno: u16, refmetric: u16) -> bool {
        if refmetric == INFINITY {
            return true;
        }
        match self.sources.get(&(prefix, router_id)) {
            None => true,
            Some(s) => seqno_newer(seqno, s.seqno) || (seqno == s.seqno && refmetric < s.metric),
        }
    }

    /// The seqno of the source entry, if there is one.
    pub fn source_seqno(&self, prefix: Prefix, router_id: RouterId) -> Option<u16> {
        self.sources.get(&(prefix, router_id)).map(|s| s.seqno)
    }

    /// We advertise `metric` with `seqno` for `(prefix, router_id)`: the feasibility distance
    /// is updated (RFC 8966 §3.7.3) and kept for [`SOURCE_GC_MS`] more.
    pub fn advertising(&mut self, prefix: Prefix, router_id: RouterId, seqno: u16, metric: u16, now_ms: u64) {
        let gc_ms = now_ms + SOURCE_GC_MS;
        match self.sources.get_mut(&(prefix, router_id)) {
            Some(s) if seqno_newer(seqno, s.seqno) || (seqno == s.seqno && metric < s.metric) => {
                *s = Source { seqno, metric, gc_ms };
            }
            Some(s) => s.gc_ms = gc_ms,
            None => {
                self.sources.insert((prefix, router_id), Source { seqno, metric, gc_ms });
                self.next_sweep_ms = self.next_sweep_ms.min(gc_ms);
            }
        }
    }

    /// Stores the route from `route.neighbour` to `prefix`, replacing the one it had.
    pub fn learn(&mut self, prefix: Prefix, route: Route) {
        let expires_ms = route.expires_ms;
        let d = self.destinations.entry(prefix).or_default();
        match d.routes.iter_mut().find(|r| r.neighbour == route.neighbour) {
            Some(r) => *r = route,
            None => {
                // Exact growth: a destination has a handful of routes, and doubling would
                // waste up to half of them (memory per route is a budget, see the bench).
                d.routes.reserve_exact(1);
                d.routes.push(route);
            }
        }
        self.next_sweep_ms = self.next_sweep_ms.min(expires_ms);
    }

    /// Every route from `neighbour` is retracted (a wildcard retraction); returns their
    /// destinations.
    pub fn retract_all_from(&mut self, neighbour: NeighbourId) -> Vec<Prefix> {
        let mut affected = Vec::new();
        for (p, d) in self.destinations.iter_mut() {
            for r in d.routes.iter_mut().filter(|r| r.neighbour == neighbour) {
                r.refmetric = INFINITY;
                affected.push(*p);
            }
        }
        affected
    }

    /// Removes every route from `neighbour`; returns their destinations.
    pub fn remove_neighbour(&mut self, neighbour: NeighbourId) -> Vec<Prefix> {
        let mut affected = Vec::new();
        for (p, d) in self.destinations.iter_mut() {
            if let Some(i) = d.routes.iter().position(|r| r.neighbour == neighbour) {
                d.routes.remove(i);
                affected.push(*p);
            }
        }
        affected
    }

    /// Removes the routes expired at `now_ms` (telling the limits); returns the destinations
    /// that lost one.
    pub fn expire(&mut self, now_ms: u64, guard: &mut Guard) -> Vec<Prefix> {
        let mut next = u64::MAX;
        let mut affected = Vec::new();
        for (p, d) in self.destinations.iter_mut() {
            let before = d.routes.len();
            d.routes.retain(|r| {
                let keep = r.expires_ms > now_ms;
                if !keep {
                    guard.route_removed(r.neighbour);
                }
                keep
            });
            for r in &d.routes {
                next = next.min(r.expires_ms);
            }
            if d.routes.len() != before {
                affected.push(*p);
            }
        }
        self.next_sweep_ms = next;
        affected
    }

    /// Forgets destinations with nothing left that are already retracted (or were never
    /// advertised), and sources unused for [`SOURCE_GC_MS`]; `originated` are kept.
    pub fn collect(&mut self, now_ms: u64, originated: &BTreeSet<Prefix>) {
        self.destinations.retain(|p, d| {
            !d.routes.is_empty()
                || d.reported.is_some()
                || d.advertised.is_some_and(|a| a.metric != INFINITY)
                || originated.contains(p)
        });
        self.sources.retain(|_, s| s.gc_ms > now_ms);
        // The sweep also collects sources: the next one is due when the oldest expires (a
        // source inserted later lowers it; a refresh only delays it, so the sweep may come
        // early and find nothing to do).
        let gc = self.sources.values().map(|s| s.gc_ms).min().unwrap_or(u64::MAX);
        self.next_sweep_ms = self.next_sweep_ms.min(gc);
    }
}
