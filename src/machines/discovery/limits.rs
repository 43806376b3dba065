//! Rate limits of discovery: token buckets per interface and per source address, checked
//! before any signature is verified, so a flood costs a table lookup per datagram.

use crate::events::Stamp;
use core::net::IpAddr;
use std::collections::BTreeMap;

/// A rate: `per_s` datagrams a second on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_s: u32,
    pub burst: u32,
}

/// A token bucket, in thousandths of a token so that slow rates refill smoothly.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    milli: u64,
    at: Stamp,
}

impl Bucket {
    pub(super) fn full(rate: Rate, at: Stamp) -> Self {
        Self { milli: u64::from(rate.burst) * 1000, at }
    }

    /// Takes one token if there is one.
    pub(super) fn take(&mut self, rate: Rate, now: Stamp) -> bool {
        let elapsed = if now.boot == self.at.boot { now.ms_since(self.at) } else { u64::MAX / 4096 };
        let cap = u64::from(rate.burst) * 1000;
        self.milli = self.milli.saturating_add(elapsed.saturating_mul(u64::from(rate.per_s))).min(cap);
        self.at = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// Buckets per source address, at most `max` of them: when full, the bucket idle longest is
/// dropped (it is full again by then, or its source is the flood itself and gains nothing,
/// since a new bucket holds only one burst).
#[derive(Debug, Default)]
pub(super) struct SourceLimits {
    buckets: BTreeMap<IpAddr, Bucket>,
}

impl SourceLimits {
    pub(super) fn take(&mut self, source: IpAddr, rate: Rate, max: usize, now: Stamp) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= max.max(1) {
            let oldest = self.buckets.iter().min_by_key(|(_, b)| b.at).map(|(a, _)| *a);
            if let Some(a) = oldest {
                self.buckets.remove(&a);
            }
        }
        self.buckets.entry(source).or_insert_with(|| Bucket::full(rate, now)).take(rate, now)
    }

    pub(super) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let rate = Rate { per_s: 10, burst: 3 };
        let t0 = Stamp::new(1, 1_000);
        let mut b = Bucket::full(rate, t0);
        assert!((0..3).all(|_| b.take(rate, t0)));
        assert!(!b.take(rate, t0));
        // 100 ms is one token at 10 a second.
        assert!(!b.take(rate, t0.plus_ms(99)));
        assert!(b.take(rate, t0.plus_ms(100)));
        assert!(!b.take(rate, t0.plus_ms(100)));
        // A long pause refills to the burst, never beyond.
        let later = t0.plus_ms(60_000);
        assert_eq!((0..10).filter(|_| b.take(rate, later)).count(), 3);
    }

    #[test]
    fn source_buckets_are_bounded_and_evict_the_idlest() {
        let rate = Rate { per_s: 1, burst: 1 };
        let mut s = SourceLimits::default();
        let t = Stamp::new(1, 0);
        for i in 0..100u8 {
            let a = IpAddr::from([192, 0, 2, i]);
            assert!(s.take(a, rate, 16, t.plus_ms(u64::from(i))));
        }
        assert_eq!(s.len(), 16);
    }
}
