//! How a speaker is configured: its router-id, fee, score weights, the policy for routes
//! without a vector, the thresholds of triggered updates, trust and limits. Per-interface
//! settings ([`crate::events::routing::InterfaceConfig`]) come with `InterfaceUp`.

use super::limits::BabelLimits;
use super::score::{self, ScoreWeights};
use super::trust::TrustConfig;
use crate::wire::babel::{RouteVector, RouterId};

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
    /// Bounds on neighbours, candidates, admission rate and routes ([`super::limits`]).
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

/// Milliseconds as the centiseconds of Babel intervals (saturating at 655.35 s).
pub(super) fn cs(ms: u64) -> u16 {
    (ms / 10).min(u64::from(u16::MAX)) as u16
}
