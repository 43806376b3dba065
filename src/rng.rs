//! A small seeded generator (SplitMix64) for simulations and in-memory twins. One seed per
//! node or simulation; components derive their own with [`SplitMix64::derive`]. Nothing in
//! the machines draws randomness from anywhere else.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An independent generator for a named component.
    pub fn derive(&self, component: u64) -> Self {
        let mut g = Self(self.0 ^ component.wrapping_mul(0xA24B_AED4_963E_E407));
        Self(g.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the slight modulo bias is irrelevant for simulation.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_derived_streams_differ() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!((a.next_u64(), a.next_u64()), (b.next_u64(), b.next_u64()));
        let mut c = SplitMix64::new(7).derive(1);
        let mut d = SplitMix64::new(7).derive(2);
        assert_ne!(c.next_u64(), d.next_u64());
        assert!((0..100).all(|_| a.below(10) < 10));
    }
}
