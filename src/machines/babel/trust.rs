//! Verifiable metrics: end-to-end probes of the destinations in use, compared with what the
//! selected neighbour advertised, and a per-neighbour trust that penalises neighbours whose
//! advertisements are consistently better than reality.
//!
//! A probe report is *worse* than the advertisement when the measured RTT exceeds the
//! advertised path RTT by more than `rtt_tolerance_permille` plus `rtt_slack_us`, or when
//! fewer probes came back than the advertised loss allows, by more than three standard
//! deviations of the binomial count (plus one probe). A single bad report proves little
//! (queues fill, links fade); `streak` consecutive ones cut trust by a quarter (down to
//! `floor_permille`), each honest report restores an eighth of the missing trust.
//!
//! Trust enters the score as a penalty: `(w_rtt + w_loss) · log2(1000 / trust)`, as if the
//! neighbour's RTT and loss were inflated by `1000 / trust`. Prices are not discounted: what
//! a neighbour charges is exact and billed from our own counters.

use super::score::{log2_fixed, ScoreWeights};
use super::BabelMachine;
use crate::events::routing::{ProbeReport, RoutingEffect, RoutingEvent, TrustEvidence};
use crate::events::Fold;
use crate::wire::babel::Prefix;
use core::net::Ipv6Addr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustConfig {
    /// How often destinations in use are probed.
    pub probe_interval_ms: u64,
    /// Reports with fewer probes sent are not judged.
    pub min_probes: u32,
    pub rtt_tolerance_permille: u32,
    pub rtt_slack_us: u32,
    /// Consecutive worse reports before trust drops.
    pub streak: u8,
    pub floor_permille: u16,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            probe_interval_ms: 30_000,
            min_probes: 10,
            rtt_tolerance_permille: 500,
            rtt_slack_us: 5_000,
            streak: 3,
            floor_permille: 100,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourTrust {
    pub trust_permille: u16,
    pub streak: u8,
    pub reports: u32,
}

/// Durable trust per neighbour (interface, link-local address): the fold of trust evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustLedger {
    #[serde(with = "crate::machines::pairs")]
    pub neighbours: BTreeMap<(u32, [u8; 16]), NeighbourTrust>,
}

impl Fold for TrustLedger {
    type Event = RoutingEvent;

    fn apply(&mut self, event: &RoutingEvent) {
        match event {
            RoutingEvent::TrustEvidence(e) => {
                let t = self.neighbours.entry((e.ifindex, e.neighbour)).or_insert(NeighbourTrust {
                    trust_permille: 1000,
                    streak: 0,
                    reports: 0,
                });
                t.trust_permille = e.trust_permille.min(1000);
                t.streak = e.streak;
                t.reports = t.reports.saturating_add(1);
            }
        }
    }
}

impl TrustLedger {
    pub fn trust_of(&self, neighbour: Option<(u32, Ipv6Addr)>) -> u16 {
        neighbour.and_then(|(i, a)| self.neighbours.get(&(i, a.octets()))).map_or(1000, |t| t.trust_permille)
    }

    /// The score penalty of a neighbour's routes.
    pub fn penalty(&self, neighbour: Option<(u32, Ipv6Addr)>, weights: &ScoreWeights) -> u64 {
        let t = u64::from(self.trust_of(neighbour).max(1));
        if t >= 1000 {
            return 0;
        }
        let inflation = log2_fixed(1000 << 16).saturating_sub(log2_fixed(t << 16));
        (u64::from(weights.rtt) + u64::from(weights.loss)) * inflation
    }

    /// Judges a probe report (`evidence` with the verdict, streak and trust still to fill).
    /// Returns the evidence to record, or `None` when there is nothing to record: too few
    /// probes, or an honest report that changes nothing.
    pub fn judge(&self, mut evidence: TrustEvidence, config: &TrustConfig) -> Option<TrustEvidence> {
        if evidence.sent < config.min_probes {
            return None;
        }
        let before = self
            .neighbours
            .get(&(evidence.ifindex, evidence.neighbour))
            .copied()
            .unwrap_or(NeighbourTrust { trust_permille: 1000, streak: 0, reports: 0 });
        let worse = rtt_worse(&evidence, config) || loss_worse(&evidence);
        evidence.worse = worse;
        if worse {
            evidence.streak = before.streak.saturating_add(1);
            evidence.trust_permille = if evidence.streak >= config.streak {
                (u32::from(before.trust_permille) * 3 / 4).max(u32::from(config.floor_permille)) as u16
            } else {
                before.trust_permille
            };
        } else {
            evidence.streak = 0;
            let missing = 1000 - before.trust_permille.min(1000);
            evidence.trust_permille = before.trust_permille + missing.div_ceil(8);
            if before.streak == 0 && missing == 0 {
                return None;
            }
        }
        Some(evidence)
    }
}

fn rtt_worse(e: &TrustEvidence, c: &TrustConfig) -> bool {
    if e.received == 0 {
        return false;
    }
    let allowed = u64::from(e.advertised_rtt_us) * (1000 + u64::from(c.rtt_tolerance_permille)) / 1000
        + u64::from(c.rtt_slack_us);
    u64::from(e.measured_rtt_us) > allowed
}

/// Fewer probes returned than the advertised loss allows, beyond three standard deviations
/// of the binomial count and one probe.
fn loss_worse(e: &TrustEvidence) -> bool {
    let n = f64::from(e.sent);
    let p = (-(f64::from(e.advertised_loss_micro_nepers) / 1e6)).exp();
    let expected = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    f64::from(e.received) + 3.0 * sd + 1.0 < expected
}

/// Which destinations are probed, and when next.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    in_use: BTreeSet<Prefix>,
    next_ms: Option<u64>,
}

impl Probes {
    pub fn in_use(&mut self, prefixes: Vec<Prefix>, now_ms: u64, config: &TrustConfig) {
        self.in_use = prefixes.into_iter().collect();
        if self.in_use.is_empty() {
            self.next_ms = None;
        } else if self.next_ms.is_none() {
            self.next_ms = Some(now_ms + config.probe_interval_ms);
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.next_ms
    }

    /// The destinations to probe now; re-arms the next round.
    pub fn due(&mut self, now_ms: u64, config: &TrustConfig) -> Vec<Prefix> {
        match self.next_ms {
            Some(at) if at <= now_ms => {
                self.next_ms = Some(now_ms + config.probe_interval_ms);
                self.in_use.iter().copied().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// The machine's side of trust: which probes to ask for, and what their reports prove.
impl BabelMachine {
    /// A probe round is due: asks for a probe of every destination in use that can be probed
    /// and judged ([`BabelMachine::probeable`]).
    pub(super) fn plan_probes(&mut self) {
        let due = self.probes.due(self.now_ms, &self.config.trust);
        for prefix in due.into_iter().filter(|p| self.probeable(*p)).collect::<Vec<_>>() {
            self.out.now(RoutingEffect::Probe { prefix });
        }
    }

    /// A probe goes to the destination's own address, so only host routes can be probed; and
    /// a report can only be judged against a selected route that advertised a vector. Asking
    /// for any other probe would cost a round of packets and prove nothing.
    fn probeable(&self, prefix: Prefix) -> bool {
        prefix.len() == Prefix::host(prefix.addr()).len()
            && self
                .table
                .get(&prefix)
                .and_then(|d| d.selected_route())
                .is_some_and(|r| self.neighbours.get(r.neighbour).is_some() && self.path_vector(r).is_some())
    }

    /// An end-to-end probe report: compare it with what the selected route's neighbour
    /// advertised, record the evidence, and redo selection if trust changed.
    pub(super) fn probed(&mut self, report: ProbeReport) {
        let Some(d) = self.table.get(&report.prefix) else { return };
        let Some(r) = d.selected_route().cloned() else { return };
        let Some(n) = self.neighbours.get(r.neighbour) else { return };
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
        self.out.emit(&mut self.trust, RoutingEvent::TrustEvidence(evidence));
        if self.trust.trust_of(Some(neighbour)) != trust_before {
            self.reselect_via(r.neighbour);
        }
    }
}
