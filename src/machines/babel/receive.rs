//! Receiving (RFC 8966 §3.4, §3.5, §4): a datagram decoded and its TLVs applied in order —
//! Hellos and IHUs to the neighbour table (strangers go through the limits first), Updates to
//! the route table, requests to `requests.rs`, acknowledgement requests answered — then
//! selection redone for what changed; and the neighbour table's own upkeep (missed Hellos,
//! IHU expiry, neighbours dropped).

use super::neighbour::NeighbourId;
use super::select::changed_beyond;
use super::table::Route;
use super::{seqno_newer, BabelMachine, INFINITY};
use crate::wire::babel::{self, Ihu, Prefix, RouteRequest, Tlv, Update};
use core::net::{IpAddr, Ipv6Addr};
use std::collections::BTreeSet;

impl BabelMachine {
    pub(super) fn received(&mut self, ifindex: u32, source: Ipv6Addr, bytes: &[u8]) {
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
        let mut nid = self.neighbours.id(ifindex, source);
        let mut stranger_hello = false;
        let link_before = nid.and_then(|id| self.neighbours.get(id)).map(|n| self.link_state(n));
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
                        iface.queue.unicast.entry(source).or_default().push(Tlv::Ack { opaque });
                    }
                }
                Tlv::Ack { .. } | Tlv::Pad1 | Tlv::PadN(_) | Tlv::Unknown { .. } => {}
            }
        }
        for p in touched {
            self.reselect(p);
        }
        if let Some(nid) = nid {
            self.neighbour_changed(nid, link_before);
        }
    }

    fn ihu(&mut self, nid: NeighbourId, ifindex: u32, ihu: &Ihu, hello_timestamp: Option<u32>) {
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
        let Some(n) = self.neighbours.get_mut(nid) else { return };
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
    fn update(&mut self, nid: NeighbourId, ifindex: u32, source: Ipv6Addr, u: Update) -> Option<Prefix> {
        let Some(prefix) = u.prefix else {
            // Wildcard retraction: every route from this neighbour is retracted.
            for p in self.table.retract_all_from(nid) {
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
        let feasible = self.table.feasible(prefix, u.router_id, u.seqno, u.metric);
        let exists = self.table.get(&prefix).is_some_and(|d| d.route_from(nid).is_some());
        if !exists && u.is_retraction() {
            return None;
        }
        // A new destination from this neighbour needs room (an update of one we hold always
        // applies): existing routes are never evicted for a newcomer's ([`super::limits`]).
        if !exists {
            let limits = &self.config.limits;
            if !self.table.contains(&prefix) && self.table.len() >= limits.destinations as usize {
                self.stats.refused.destinations += 1;
                return None;
            }
            if !self.guard.admit_route(nid, limits, &mut self.stats.refused) {
                return None;
            }
        }
        if !feasible && self.table.get(&prefix).is_none_or(|d| d.selected.is_none()) {
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
        self.table.learn(prefix, route);
        Some(prefix)
    }

    /// After a neighbour's link may have changed (its cost, or its loss, which every route
    /// through it is ranked with): redo selection for its routes, and greet a neighbour that
    /// just became usable with a full dump and a request for its own (what it sent before it
    /// was admitted was ignored).
    pub(super) fn neighbour_changed(&mut self, nid: NeighbourId, before: Option<(u16, u32)>) {
        let Some(n) = self.neighbours.get(nid) else { return };
        let now = self.link_state(n);
        let cost = now.0;
        let usable = cost != INFINITY;
        let was_usable = n.usable;
        let (ifindex, address) = (n.ifindex, n.address);
        if let Some(n) = self.neighbours.get_mut(nid) {
            n.usable = usable;
            if usable && !was_usable {
                n.loss_window = 0;
            }
        }
        if usable && !was_usable {
            if let Some(iface) = self.interfaces.get_mut(&ifindex) {
                iface.queue.full_dump = true;
                let request = Tlv::RouteRequest(RouteRequest { prefix: None, unknown: Vec::new() });
                iface.queue.unicast.entry(address).or_default().push(request);
            }
        }
        if before != Some(now) || usable != was_usable {
            self.reselect_via(nid);
        }
    }

    pub(super) fn remove_neighbour(&mut self, nid: NeighbourId) {
        if self.neighbours.remove(nid).is_none() {
            return;
        }
        self.guard.neighbour_removed(nid);
        for p in self.table.remove_neighbour(nid) {
            self.reselect_after_removal(p);
        }
    }

    /// Missed Hellos and expired IHUs: costs go up, silent neighbours go.
    pub(super) fn check_neighbours(&mut self) {
        let now = self.now_ms;
        for nid in self.neighbours.ids() {
            let Some(n) = self.neighbours.get(nid) else { continue };
            let before = self.link_state(n);
            let n = self.neighbours.get_mut(nid).expect("listed above");
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
}
