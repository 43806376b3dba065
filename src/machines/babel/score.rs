//! The user's score of a route: a weighted sum of logs of the route vector's components.
//!
//! ```text
//! score = w_price · log2(1 + price / u_price)
//!       + w_rtt   · log2(1 + rtt   / u_rtt)
//!       + w_loss  · log2(1 + loss  / u_loss)
//! ```
//!
//! Lower is better. Each term is 0 when its component is 0 (a free, instant or lossless path
//! is defined, unlike `log(price)`), and grows by `w` each time the component doubles well
//! above its unit, so the weights say how many doublings of one component are worth one of
//! another. The units (`u_*`) say from what size a component starts to matter. Everything is
//! integer fixed point (16 fractional bits), so the same inputs give the same choice on every
//! router, in simulation and on replay.

use crate::wire::babel::RouteVector;

/// Fixed-point scale of scores: 1.0 = 65,536.
pub const ONE: u64 = 1 << 16;

/// `log2(v)` in 16.16 fixed point for `v ≥ 1` (0 for 0). Exact to the last fractional bit
/// kept by repeated squaring of the mantissa.
pub fn log2_fixed(v: u64) -> u64 {
    if v <= 1 {
        return 0;
    }
    let n = 63 - v.leading_zeros();
    // Mantissa in [1, 2) with 31 fractional bits.
    let mut m: u64 = if n <= 31 { v << (31 - n) } else { v >> (n - 31) };
    let mut frac = 0u64;
    for bit in (0..16).rev() {
        m = (m * m) >> 31;
        if m >= 1 << 32 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    (u64::from(n) << 16) | frac
}

/// `log2(1 + c / u)` in 16.16 fixed point (`u ≥ 1`).
pub fn log2_one_plus(c: u64, u: u64) -> u64 {
    let u = u.max(1);
    log2_fixed(u.saturating_add(c)).saturating_sub(log2_fixed(u))
}

/// The weights and units of the score, from the node's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreWeights {
    pub price: u32,
    pub rtt: u32,
    pub loss: u32,
    /// Base units per byte from which price starts to count.
    pub price_unit: u64,
    /// Microseconds from which RTT starts to count.
    pub rtt_unit_us: u64,
    /// Micro-nepers from which loss starts to count (10,000 µNp ≈ 1% loss: below that, the
    /// Hello-based estimate of a link, in steps of one Hello in 16, is noise).
    pub loss_unit: u64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        Self { price: 1, rtt: 1, loss: 1, price_unit: 1, rtt_unit_us: 1_000, loss_unit: 10_000 }
    }
}

impl ScoreWeights {
    pub fn score(&self, v: &RouteVector) -> u64 {
        u64::from(self.price) * log2_one_plus(v.price_per_byte, self.price_unit)
            + u64::from(self.rtt) * log2_one_plus(u64::from(v.rtt_us), self.rtt_unit_us)
            + u64::from(self.loss) * log2_one_plus(u64::from(v.loss_micro_nepers), self.loss_unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_is_exact_on_powers_of_two_and_close_elsewhere() {
        assert_eq!(log2_fixed(0), 0);
        assert_eq!(log2_fixed(1), 0);
        for k in 1..64 {
            assert_eq!(log2_fixed(1u64 << k), u64::from(k as u32) << 16);
        }
        for v in [3u64, 5, 10, 1000, 123_456_789, u64::MAX] {
            let exact = (v as f64).log2() * ONE as f64;
            assert!((log2_fixed(v) as f64 - exact).abs() <= 2.0, "{v}: {} vs {exact}", log2_fixed(v));
        }
    }

    #[test]
    fn score_is_zero_for_a_free_instant_lossless_path_and_monotonic_in_each_component() {
        let w = ScoreWeights::default();
        assert_eq!(w.score(&RouteVector::default()), 0);
        let base = RouteVector { price_per_byte: 10, rtt_us: 5_000, loss_micro_nepers: 2_000 };
        let s = w.score(&base);
        assert!(w.score(&RouteVector { price_per_byte: 11, ..base }) > s);
        assert!(w.score(&RouteVector { rtt_us: 6_000, ..base }) > s);
        assert!(w.score(&RouteVector { loss_micro_nepers: 3_000, ..base }) > s);
        // Saturated components do not overflow.
        let max = RouteVector { price_per_byte: u64::MAX, rtt_us: u32::MAX, loss_micro_nepers: u32::MAX };
        assert!(w.score(&max) > s);
    }

    #[test]
    fn weights_trade_doublings() {
        // Price weight 2: doubling the price costs as much as quadrupling the RTT.
        let w = ScoreWeights { price: 2, rtt: 1, loss: 1, price_unit: 1, rtt_unit_us: 1, loss_unit: 1 };
        let a = RouteVector { price_per_byte: 2047, rtt_us: 4095, loss_micro_nepers: 0 };
        let b = RouteVector { price_per_byte: 1023, rtt_us: 16383, loss_micro_nepers: 0 };
        assert_eq!(w.score(&a), w.score(&b));
    }
}
