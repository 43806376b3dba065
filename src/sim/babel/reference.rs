//! An independent reference for route selection. The machine's [`Candidate`] carries its own
//! verdicts (feasible, metric, rank); a bug in the feasibility condition or in the score would
//! make them agree with a wrong selection. The reference rebuilds both from the wire instead:
//!
//! - what each node heard: the last Update from each neighbour for each prefix, decoded from
//!   the packets the simulator delivered to it (the ones the machine itself ignores — its own
//!   router-id or prefix echoed back — are not recorded; a wildcard retraction retracts every
//!   route from its sender);
//! - the feasibility distances each node set: from every Update with a finite metric it sent
//!   (RFC 8966 §3.7.3: replaced by a newer seqno or, at the same seqno, a smaller metric),
//!   forgotten three minutes after they were last advertised (§3.5.1; the machine collects
//!   them at its next sweep, so an entry older than that is "unknown", not "absent").
//!
//! From those, a candidate's feasibility (§3.5.1), its metric (the advertised metric plus the
//! link cost) and its rank (the advertised vector plus the link's RTT and loss, scored with
//! the node's weights) are recomputed. Only the link measurements (cost, RTT, loss) are taken
//! from the machine: they are its inputs, measured from Hellos.

use crate::machines::babel::{score, BabelMachine, Candidate, UnpricedPolicy, INFINITY};
use crate::wire::babel::{decode, Prefix, RouteVector, RouterId, Tlv};
use core::net::Ipv6Addr;
use std::collections::BTreeMap;

/// How long a feasibility distance outlives its last advertisement (RFC 8966 §3.5.1).
const SOURCE_LIFETIME_MS: u64 = 180_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heard {
    router_id: RouterId,
    seqno: u16,
    metric: u16,
    vector: Option<RouteVector>,
}

#[derive(Clone, Copy, Debug)]
struct Distance {
    seqno: u16,
    metric: u16,
    advertised_ms: u64,
}

#[derive(Debug, Default)]
struct NodeRef {
    heard: BTreeMap<(u32, Ipv6Addr, Prefix), Heard>,
    distances: BTreeMap<(Prefix, RouterId), Distance>,
}

/// The reference's view of one candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recomputed {
    /// `None`: the feasibility distance may or may not have been collected yet.
    pub feasible: Option<bool>,
    pub metric: u16,
    pub rank: (u8, u64),
}

#[derive(Debug, Default)]
pub struct Reference {
    nodes: Vec<NodeRef>,
}

impl Reference {
    pub fn new(nodes: usize) -> Self {
        Reference { nodes: (0..nodes).map(|_| NodeRef::default()).collect() }
    }

    /// Node `n` booted a fresh machine: it remembers nothing.
    pub fn boot(&mut self, n: usize) {
        self.nodes[n] = NodeRef::default();
    }

    /// A packet from `source` reaches node `n` (router-id `own`, originating `prefix`) on
    /// `ifindex`.
    pub fn delivered(
        &mut self,
        n: usize,
        own: (RouterId, Prefix),
        ifindex: u32,
        source: Ipv6Addr,
        bytes: &[u8],
    ) {
        let Ok(d) = decode(bytes) else { return };
        let node = &mut self.nodes[n];
        for tlv in d.packet.tlvs {
            let Tlv::Update(u) = tlv else { continue };
            match u.prefix {
                None => {
                    for ((i, a, _), h) in node.heard.iter_mut() {
                        if *i == ifindex && *a == source {
                            h.metric = INFINITY;
                        }
                    }
                }
                Some(p) if u.router_id == own.0 || p == own.1 => {}
                Some(p) => {
                    let h =
                        Heard { router_id: u.router_id, seqno: u.seqno, metric: u.metric, vector: u.vector };
                    node.heard.insert((ifindex, source, p), h);
                }
            }
        }
    }

    /// Node `n` sends a packet at `now_ms`.
    pub fn sent(&mut self, n: usize, now_ms: u64, bytes: &[u8]) {
        let Ok(d) = decode(bytes) else { return };
        let node = &mut self.nodes[n];
        for tlv in d.packet.tlvs {
            let Tlv::Update(u) = tlv else { continue };
            let Some(p) = u.prefix.filter(|_| u.metric != INFINITY) else { continue };
            let fresh = Distance { seqno: u.seqno, metric: u.metric, advertised_ms: now_ms };
            let d = node.distances.entry((p, u.router_id)).or_insert(fresh);
            let newer = u.seqno != d.seqno && u.seqno.wrapping_sub(d.seqno) < 0x8000;
            if newer || (u.seqno == d.seqno && u.metric < d.metric) {
                *d = fresh;
            }
            d.advertised_ms = now_ms;
        }
    }

    /// Candidate `c` of node `n` (machine `m`) for `prefix`, recomputed; `None` when the
    /// reference heard nothing from its neighbour for it (the machine holds a route the wire
    /// never carried: a bug the caller reports).
    pub fn recompute(
        &self,
        n: usize,
        m: &BabelMachine,
        prefix: Prefix,
        c: &Candidate,
        now_ms: u64,
    ) -> Option<Recomputed> {
        let node = &self.nodes[n];
        let h = node.heard.get(&(c.ifindex, c.neighbour, prefix))?;
        let link = m.link(c.ifindex, c.neighbour)?;
        let feasible = if h.metric == INFINITY {
            Some(true)
        } else {
            match node.distances.get(&(prefix, h.router_id)) {
                None => Some(true),
                Some(d) if now_ms >= d.advertised_ms + SOURCE_LIFETIME_MS => None,
                Some(d) => {
                    let newer = h.seqno != d.seqno && h.seqno.wrapping_sub(d.seqno) < 0x8000;
                    Some(newer || (h.seqno == d.seqno && h.metric < d.metric))
                }
            }
        };
        let metric = if h.metric == INFINITY || link.cost == INFINITY {
            INFINITY
        } else {
            (u32::from(h.metric) + u32::from(link.cost)).min(u32::from(INFINITY - 1)) as u16
        };
        let config = m.config();
        let advertised = match (h.vector, config.unpriced) {
            (Some(v), _) | (None, UnpricedPolicy::Assume(v)) => Some(v),
            (None, UnpricedPolicy::Avoid) => None,
        };
        let rank = match advertised {
            Some(v) => {
                let path = RouteVector {
                    price_per_byte: v.price_per_byte,
                    rtt_us: v.rtt_us.saturating_add(link.rtt_us.unwrap_or(0)),
                    loss_micro_nepers: v.loss_micro_nepers.saturating_add(link.loss_micro_nepers),
                };
                (0, config.weights.score(&path))
            }
            None => (1, u64::from(metric) * score::ONE / 256),
        };
        Some(Recomputed { feasible, metric, rank })
    }
}
