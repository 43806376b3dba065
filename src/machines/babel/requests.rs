//! Requests (RFC 8966 §3.8): route requests answered with updates, seqno requests answered,
//! forwarded toward the originator or originated when a destination starves, with duplicate
//! suppression and resends. [`Requests`] keeps the seqno requests in flight; the machine's
//! side decides what to answer and where to forward.

use super::neighbour::NeighbourId;
use super::{seqno_newer, BabelMachine, INFINITY};
use crate::wire::babel::{Prefix, RouteRequest, RouterId, SeqnoRequest, Tlv};
use core::net::Ipv6Addr;
use std::collections::BTreeMap;

/// How long a forwarded or sent seqno request suppresses duplicates, and the resend interval.
pub(super) const REQUEST_HOLD_MS: u64 = 2_000;
/// How many times a seqno request is resent while the destination still starves.
const REQUEST_RESENDS: u8 = 2;
/// The hop count of seqno requests we originate (babeld uses 127; RFC 8966 suggests 64+).
const REQUEST_HOPS: u8 = 64;

#[derive(Clone, Copy, Debug)]
struct Pending {
    seqno: u16,
    resend_ms: u64,
    resends: u8,
    /// True for requests this node originated (resent while starving); false for forwarded
    /// ones (kept only to suppress duplicates).
    ours: bool,
}

/// The seqno requests in flight, one per (prefix, router-id).
#[derive(Debug, Default)]
pub(super) struct Requests {
    pending: BTreeMap<(Prefix, RouterId), Pending>,
}

impl Requests {
    /// We asked for `seqno` because the destination starves: resent while it does.
    fn originated(&mut self, prefix: Prefix, router_id: RouterId, seqno: u16, now_ms: u64) {
        let p = Pending { seqno, resend_ms: now_ms + REQUEST_HOLD_MS, resends: REQUEST_RESENDS, ours: true };
        self.pending.insert((prefix, router_id), p);
    }

    /// We sent or forwarded a request for `seqno` once: duplicates are suppressed for the
    /// hold time.
    fn sent_once(&mut self, prefix: Prefix, router_id: RouterId, seqno: u16, now_ms: u64) {
        let p = Pending { seqno, resend_ms: now_ms + REQUEST_HOLD_MS, resends: 0, ours: false };
        self.pending.insert((prefix, router_id), p);
    }

    /// A request for `seqno` or newer is in flight.
    fn asked(&self, prefix: Prefix, router_id: RouterId, seqno: u16) -> bool {
        self.pending.get(&(prefix, router_id)).is_some_and(|p| !seqno_newer(seqno, p.seqno))
    }

    /// A request for `seqno` arriving now duplicates one in flight: ours (resent by us while
    /// we starve), or one forwarded within the hold time. One arriving as the hold time ends
    /// is a resend by the requester, not a duplicate.
    fn duplicate(&self, prefix: Prefix, router_id: RouterId, seqno: u16, now_ms: u64) -> bool {
        self.pending
            .get(&(prefix, router_id))
            .is_some_and(|p| !seqno_newer(seqno, p.seqno) && (p.ours || p.resend_ms > now_ms))
    }

    /// The requests whose hold time ended: ours are resent (and returned) while `starving`
    /// says their destination still starves and resends remain; the rest are forgotten.
    fn resend_due(&mut self, now_ms: u64, starving: impl Fn(Prefix) -> bool) -> Vec<(Prefix, RouterId, u16)> {
        let due: Vec<((Prefix, RouterId), Pending)> =
            self.pending.iter().filter(|(_, p)| p.resend_ms <= now_ms).map(|(k, p)| (*k, *p)).collect();
        let mut resend = Vec::new();
        for ((prefix, router_id), p) in due {
            if p.ours && p.resends > 0 && starving(prefix) {
                resend.push((prefix, router_id, p.seqno));
                self.pending.insert(
                    (prefix, router_id),
                    Pending { resends: p.resends - 1, resend_ms: now_ms + REQUEST_HOLD_MS, ..p },
                );
            } else {
                self.pending.remove(&(prefix, router_id));
            }
        }
        resend
    }

    pub fn deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.resend_ms).min()
    }
}

/// The machine's side of requests.
impl BabelMachine {
    /// All routes to `prefix` are unfeasible or gone after one was selected (RFC 8966
    /// §3.8.2.1): if some route is merely unfeasible, ask for a newer seqno.
    pub(super) fn starving(&mut self, prefix: Prefix, last_router: Option<RouterId>) {
        let Some(d) = self.table.get(&prefix) else { return };
        let unfeasible = d.routes.iter().find(|r| self.metric(r) != INFINITY).map(|r| r.router_id);
        let Some(router_id) = last_router.or(unfeasible) else { return };
        if unfeasible.is_none() {
            return;
        }
        let seqno = self.table.source_seqno(prefix, router_id).unwrap_or(0).wrapping_add(1);
        self.send_seqno_request(prefix, router_id, seqno, None);
        self.requests.originated(prefix, router_id, seqno, self.now_ms);
    }

    /// An unfeasible route is all there is: ask its originator, through the neighbour that
    /// sent it, for a new seqno (§3.8.2.2), once per hold time.
    pub(super) fn request_once(
        &mut self,
        prefix: Prefix,
        router_id: RouterId,
        seqno: u16,
        ifindex: u32,
        to: Ipv6Addr,
    ) {
        if self.requests.asked(prefix, router_id, seqno) {
            return;
        }
        self.send_seqno_request(prefix, router_id, seqno, Some((ifindex, to, REQUEST_HOPS)));
        self.requests.sent_once(prefix, router_id, seqno, self.now_ms);
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
        let hop_count = to.map_or(REQUEST_HOPS, |(_, _, hops)| hops);
        let tlv =
            Tlv::SeqnoRequest(SeqnoRequest { prefix, seqno, hop_count, router_id, unknown: Vec::new() });
        match to {
            None => {
                for iface in self.interfaces.values_mut() {
                    iface.queue.multicast.push(tlv.clone());
                }
            }
            Some((ifindex, address, _)) => {
                if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                    iface.queue.unicast.entry(address).or_default().push(tlv);
                }
            }
        }
    }

    /// A Route Request (RFC 8966 §3.8.1.1): a wildcard asks for a full dump, a prefix for
    /// that prefix's update (a retraction if we have no route).
    pub(super) fn route_request(&mut self, ifindex: u32, r: RouteRequest) {
        let Some(iface) = self.interfaces.get_mut(&ifindex) else { return };
        match r.prefix {
            None => iface.queue.full_dump = true,
            Some(p) => {
                iface.queue.prefixes.insert(p);
            }
        }
    }

    /// A Seqno Request (RFC 8966 §3.8.1.2) from neighbour `from`.
    pub(super) fn seqno_request(&mut self, from: NeighbourId, r: SeqnoRequest) {
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
        let Some(d) = self.table.get(&r.prefix) else { return };
        let sel = d.selected_route().filter(|s| self.metric(s) != INFINITY);
        if let Some(sel) = sel {
            if sel.router_id == r.router_id && !seqno_newer(r.seqno, sel.seqno) {
                // We already have what is asked for: announce it.
                self.trigger(r.prefix);
                return;
            }
        }
        if r.hop_count < 2 {
            return;
        }
        // Forward to the selected route's neighbour; never back to the requester, but then to
        // the neighbour of a feasible route, else of any route with a finite metric
        // (RFC 8966 §3.8.1.2): the requester is often our next hop just before we learn it
        // lost its route. With nothing selected too, like babeld: we starve as well and hold
        // only unfeasible routes, and the one toward the originator may be the only way the
        // request reaches it (a restarted originator, with an old seqno, that refused our own
        // request while it did not know us yet).
        let next = match sel {
            Some(s) if s.neighbour != from => Some(s.neighbour),
            _ => {
                let others = || d.routes.iter().filter(|x| x.neighbour != from && self.metric(x) != INFINITY);
                others()
                    .filter(|x| self.table.feasible(r.prefix, x.router_id, x.seqno, x.refmetric))
                    .min_by_key(|x| self.metric(x))
                    .or_else(|| others().min_by_key(|x| self.metric(x)))
                    .map(|x| x.neighbour)
            }
        };
        let Some(next) = next else { return };
        if self.requests.duplicate(r.prefix, r.router_id, r.seqno, self.now_ms) {
            return;
        }
        let Some(n) = self.neighbours.get(next) else { return };
        let to = (n.ifindex, n.address, r.hop_count - 1);
        self.send_seqno_request(r.prefix, r.router_id, r.seqno, Some(to));
        self.requests.sent_once(r.prefix, r.router_id, r.seqno, self.now_ms);
    }

    /// Resends our seqno requests for destinations still starving; forgets the others.
    pub(super) fn resend_requests(&mut self) {
        let table = &self.table;
        let starving = |p: Prefix| table.get(&p).is_some_and(|d| d.selected.is_none());
        for (prefix, router_id, seqno) in self.requests.resend_due(self.now_ms, starving) {
            self.send_seqno_request(prefix, router_id, seqno, None);
        }
    }
}
