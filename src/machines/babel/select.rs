//! Route selection (RFC 8966 §3.6) with the user's score: metrics from link costs, the path
//! vector and its rank (trust applied), the choice among feasible routes with hysteresis, the
//! route change it reports, what we advertise for it, and whether that change triggers an
//! update (§3.7.2).

use super::config::UnpricedPolicy;
use super::neighbour::{Neighbour, NeighbourId};
use super::table::{Advert, Route};
use super::{score, BabelMachine, INFINITY};
use crate::events::routing::{RouteChange, RoutingEffect, Via};
use crate::wire::babel::{Prefix, RouteVector};
use core::net::IpAddr;

impl BabelMachine {
    pub(super) fn link_cost(&self, n: &Neighbour) -> u16 {
        match self.iface_config(n.ifindex) {
            Some(c) => n.cost(c.kind, c.nominal_cost),
            None => INFINITY,
        }
    }

    /// What selection reads of a link: its cost and its loss (a Hello more or less in the
    /// loss window moves the score of every route through it by more than the hysteresis).
    /// Its RTT moves in small steps and is followed with a threshold (see `receive.rs`).
    pub(super) fn link_state(&self, n: &Neighbour) -> (u16, u32) {
        (self.link_cost(n), n.loss_micro_nepers())
    }

    /// A route's metric from here: what the neighbour advertised plus our link cost to it.
    pub(super) fn metric(&self, r: &Route) -> u16 {
        if r.refmetric == INFINITY {
            return INFINITY;
        }
        let cost = self.neighbours.get(r.neighbour).map_or(INFINITY, |n| self.link_cost(n));
        if cost == INFINITY {
            return INFINITY;
        }
        u32::from(r.refmetric).saturating_add(u32::from(cost)).min(u32::from(INFINITY - 1)) as u16
    }

    /// The vector a route's path has from here: what the neighbour advertised plus our link
    /// to it (no fee: that is added when *we* advertise). `None` for unpriced routes unless
    /// the policy assumes a vector.
    pub(super) fn path_vector(&self, r: &Route) -> Option<RouteVector> {
        let advertised = match (r.vector, self.config.unpriced) {
            (Some(v), _) => v,
            (None, UnpricedPolicy::Assume(v)) => v,
            (None, UnpricedPolicy::Avoid) => return None,
        };
        let n = self.neighbours.get(r.neighbour)?;
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
    pub(super) fn rank(&self, r: &Route) -> (u8, u64) {
        match self.path_vector(r) {
            Some(v) => {
                let penalty = self.trust.penalty(self.neighbours.key(r.neighbour), &self.config.weights);
                (0, self.config.weights.score(&v).saturating_add(penalty))
            }
            None => (1, u64::from(self.metric(r)) * score::ONE / 256),
        }
    }

    pub(super) fn selectable(&self, prefix: Prefix, r: &Route) -> bool {
        self.metric(r) != INFINITY && self.table.feasible(prefix, r.router_id, r.seqno, r.refmetric)
    }

    /// Route selection for one destination (RFC 8966 §3.6, with the user's score among
    /// feasible routes), then the effects and triggered updates it implies.
    pub(super) fn reselect(&mut self, prefix: Prefix) {
        let Some(d) = self.table.get(&prefix) else { return };
        let previous = d.selected;
        let mut best: Option<(NeighbourId, (u8, u64))> = None;
        for r in &d.routes {
            if !self.selectable(prefix, r) {
                continue;
            }
            let rank = self.rank(r);
            if best.is_none_or(|(_, b)| rank < b) {
                best = Some((r.neighbour, rank));
            }
        }
        // Hysteresis: keep the current route unless the best is better by the margin.
        let current = previous.and_then(|p| d.route_from(p)).filter(|r| self.selectable(prefix, r));
        let chosen = match (current, best) {
            (Some(p), Some((b, brank))) if p.neighbour != b => {
                let prank = self.rank(p);
                if brank.0 < prank.0 || brank.1.saturating_add(self.config.hysteresis) < prank.1 {
                    Some(b)
                } else {
                    Some(p.neighbour)
                }
            }
            (_, b) => b.map(|(n, _)| n),
        };
        let starving = chosen.is_none() && previous.is_some();
        let last_router = d.selected_route().map(|r| r.router_id);
        if let Some(d) = self.table.get_mut(&prefix) {
            d.selected = chosen;
        }
        self.report(prefix);
        self.trigger_if_changed(prefix);
        if starving {
            self.starving(prefix, last_router);
        }
    }

    /// Redoes selection for every destination with a route from `neighbour`.
    pub(super) fn reselect_via(&mut self, neighbour: NeighbourId) {
        for p in self.table.via(neighbour) {
            self.reselect(p);
        }
    }

    /// Selection after routes were removed from `prefix`; if the selected one went, its
    /// router-id is remembered for the starvation request.
    pub(super) fn reselect_after_removal(&mut self, prefix: Prefix) {
        let Some(d) = self.table.get_mut(&prefix) else { return };
        if d.lost_selection() {
            let last = d.advertised.map(|a| a.router_id);
            d.selected = None;
            self.reselect(prefix);
            let still_none = self.table.get(&prefix).is_some_and(|d| d.selected.is_none());
            if still_none {
                self.starving(prefix, last);
            }
        } else {
            self.reselect(prefix);
        }
    }

    /// Emits a [`RouteChange`] if the kernel route or the price changed.
    pub(super) fn report(&mut self, prefix: Prefix) {
        let now = self.table.get(&prefix).and_then(|d| {
            let r = d.selected_route()?;
            let n = self.neighbours.get(r.neighbour)?;
            let next_hop = r.next_hop.unwrap_or(IpAddr::V6(n.address));
            Some((
                Via { ifindex: n.ifindex, neighbour: n.address, next_hop },
                r.vector.map(|v| v.price_per_byte),
            ))
        });
        let Some(d) = self.table.get_mut(&prefix) else { return };
        if d.reported == now {
            return;
        }
        d.reported = now;
        self.stats.route_changes += 1;
        let change = match now {
            Some((via, price)) => RouteChange { prefix, via: Some(via), price_per_byte: price },
            None => RouteChange { prefix, via: None, price_per_byte: None },
        };
        self.out.now(RoutingEffect::Route(change));
    }

    /// What we would advertise for `prefix` now; `None`: a retraction.
    pub(super) fn advert(&self, prefix: Prefix) -> Option<Advert> {
        if self.originated.contains(&prefix) {
            return Some(Advert {
                router_id: self.config.router_id,
                seqno: self.seqno,
                metric: 0,
                vector: Some(RouteVector::default()),
                via_ifindex: None,
            });
        }
        let r = self.table.get(&prefix)?.selected_route()?;
        let metric = self.metric(r);
        if metric == INFINITY {
            return None;
        }
        let n = self.neighbours.get(r.neighbour)?;
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
        let old = self.table.get(&prefix).and_then(|d| d.advertised);
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
            self.trigger(prefix);
        } else if let (Some(o), Some(n)) = (old, new) {
            // A switch to a route through another interface, however small the change:
            // split horizon (§3.7.4) hid the route from the old interface, which must now
            // hear it, and the new one must hear the retraction.
            if o.via_ifindex != n.via_ifindex {
                for ifindex in [o.via_ifindex, n.via_ifindex].into_iter().flatten() {
                    if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                        iface.queue.prefixes.insert(prefix);
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
pub(super) fn changed_beyond(threshold_permille: u32, a: u32, b: u32, floor: u32) -> bool {
    let diff = u64::from(a.abs_diff(b));
    diff > u64::from(floor) && diff * 1000 > u64::from(threshold_permille) * u64::from(a.max(b))
}
