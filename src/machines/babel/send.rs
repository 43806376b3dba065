//! Sending (RFC 8966 §3.4, §3.7): what each interface has queued during a step — Hellos,
//! IHUs, updates triggered or periodic, requests, acknowledgements — turned into packets at
//! the end of the step, with split horizon (§3.7.4) and the feasibility distances that
//! advertising sets (§3.7.3).

use super::config::cs;
use super::limits::EarlyHello;
use super::neighbour::Neighbour;
use super::table::Advert;
use super::{BabelMachine, INFINITY, MAX_PACKET};
use crate::events::routing::{InterfaceConfig, RoutingEffect, SendTo};
use crate::wire::babel::{Encoder, Hello, Ihu, Prefix, Tlv, Update};
use core::net::{IpAddr, Ipv6Addr};
use std::collections::{BTreeMap, BTreeSet};

pub(super) struct Interface {
    pub link_local: Ipv6Addr,
    pub config: InterfaceConfig,
    pub hello_seqno: u16,
    pub queue: SendQueue,
}

/// What waits to be sent on one interface at the end of the current step.
#[derive(Default)]
pub(super) struct SendQueue {
    /// The periodic Hello: with a timestamp and the IHUs of every neighbour heard recently.
    pub hello: bool,
    /// Otherwise a greeting: a Hello with the IHUs of these neighbours only
    /// ([`super::limits`]).
    pub greet: BTreeSet<Ipv6Addr>,
    /// Otherwise an early Hello without IHUs (paid for, see [`super::limits`]).
    pub early: Option<EarlyHello>,
    pub multicast: Vec<Tlv>,
    pub unicast: BTreeMap<Ipv6Addr, Vec<Tlv>>,
    pub full_dump: bool,
    /// Updates for these prefixes (triggered), sent multicast.
    pub prefixes: BTreeSet<Prefix>,
}

impl BabelMachine {
    /// Queues an update for `prefix` on every interface.
    pub(super) fn trigger(&mut self, prefix: Prefix) {
        for iface in self.interfaces.values_mut() {
            iface.queue.prefixes.insert(prefix);
        }
    }

    pub(super) fn trigger_all_originated(&mut self) {
        let own: Vec<Prefix> = self.originated.iter().copied().collect();
        for p in own {
            self.trigger(p);
        }
    }

    /// Queues the periodic Hello on `ifindex` (its seqno is taken when it is sent).
    pub(super) fn send_hello(&mut self, ifindex: u32) {
        let Some(iface) = self.interfaces.get_mut(&ifindex) else { return };
        iface.queue.hello = true;
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

    /// Turns every interface's queue into packets (send effects).
    pub(super) fn flush(&mut self) {
        // What was advertised before this flush decides split-horizon retractions on every
        // interface alike; the new advertisements are committed at the end.
        let mut advertised = BTreeMap::new();
        let ifindexes: Vec<u32> = self.interfaces.keys().copied().collect();
        for ifindex in ifindexes {
            let Some(iface) = self.interfaces.get_mut(&ifindex) else { continue };
            let queue = std::mem::take(&mut iface.queue);
            let config = iface.config;
            let mut tlvs = Vec::new();
            // One Hello at most per step: the periodic one (with a timestamp and the IHUs of
            // every neighbour heard recently), else a greeting (a timestamp and the greeted
            // neighbours' IHUs), else an early Hello (no IHU; a timestamp if paid for).
            if queue.hello || !queue.greet.is_empty() || queue.early.is_some() {
                iface.hello_seqno = iface.hello_seqno.wrapping_add(1);
                let timestamp =
                    queue.hello || !queue.greet.is_empty() || queue.early == Some(EarlyHello::Timestamped);
                tlvs.push(Tlv::Hello(Hello {
                    unicast: false,
                    seqno: iface.hello_seqno,
                    interval_cs: cs(config.hello_interval_ms),
                    timestamp_us: timestamp.then(|| self.now_us()),
                    unknown: Vec::new(),
                }));
                let ihus = self.neighbours.values().filter(|n| {
                    n.ifindex == ifindex
                        && if queue.hello { n.heard_recently() } else { queue.greet.contains(&n.address) }
                });
                for n in ihus {
                    tlvs.push(Tlv::Ihu(self.ihu_for(n, config)));
                }
            }
            tlvs.extend(queue.multicast);
            let periodic = queue.full_dump;
            let prefixes: BTreeSet<Prefix> = if periodic {
                self.originated.iter().chain(self.table.prefixes()).copied().collect()
            } else {
                queue.prefixes
            };
            for p in prefixes {
                if let Some(u) = self.update_tlv(p, ifindex, config, periodic, &mut advertised) {
                    tlvs.push(Tlv::Update(u));
                }
            }
            self.packets(ifindex, SendTo::Multicast, tlvs);
            for (address, tlvs) in queue.unicast {
                self.packets(ifindex, SendTo::Unicast(address), tlvs);
            }
        }
        for (p, a) in advertised {
            if let Some(d) = self.table.get_mut(&p) {
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
        let last = self.table.get(&prefix).and_then(|d| d.advertised);
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
                self.table.advertising(prefix, a.router_id, a.seqno, a.metric, self.now_ms);
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
    pub(super) fn packets(&mut self, ifindex: u32, to: SendTo, tlvs: Vec<Tlv>) {
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
        self.out.now(RoutingEffect::Send { ifindex, to, bytes });
    }
}
