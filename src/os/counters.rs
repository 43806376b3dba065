//! Byte counters per (neighbour tunnel, destination).
//!
//! On a router these are nftables counters on the tunnel interfaces (the adapter arrives with
//! the node, issue 11). [`SimulatedCounters`] is the in-memory twin: a seeded traffic model
//! that behaves like the kernel's counters (cumulative, monotonic, reset to zero when the
//! "router" restarts), for the demo, simulations and tests.

use crate::events::usage::{CounterSample, Link};
use crate::rng::SplitMix64;
use std::collections::BTreeMap;
use std::io;

/// Reads the cumulative counters of every link.
pub trait CounterSource {
    fn read(&mut self) -> io::Result<Vec<CounterSample>>;
}

/// Seeded traffic on `links` links: every read advances each link by a random amount up to
/// `max_bytes_per_read` in each direction. Starts from zero, like fresh kernel counters.
pub struct SimulatedCounters {
    rng: SplitMix64,
    counters: BTreeMap<Link, (u64, u64)>,
    max_bytes_per_read: u64,
}

impl SimulatedCounters {
    pub fn new(seed: u64, links: &[Link], max_bytes_per_read: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            counters: links.iter().map(|l| (*l, (0, 0))).collect(),
            max_bytes_per_read,
        }
    }
}

impl CounterSource for SimulatedCounters {
    fn read(&mut self) -> io::Result<Vec<CounterSample>> {
        let mut out = Vec::with_capacity(self.counters.len());
        for (link, (tx, rx)) in self.counters.iter_mut() {
            *tx += self.rng.below(self.max_bytes_per_read + 1);
            *rx += self.rng.below(self.max_bytes_per_read + 1);
            out.push(CounterSample { link: *link, tx_bytes: *tx, rx_bytes: *rx });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_counters_are_cumulative_and_seeded() {
        let links = [Link::new(1, 1), Link::new(2, 1)];
        let mut a = SimulatedCounters::new(5, &links, 1000);
        let mut b = SimulatedCounters::new(5, &links, 1000);
        let first = a.read().unwrap();
        assert_eq!(first, b.read().unwrap());
        let second = a.read().unwrap();
        for (x, y) in first.iter().zip(&second) {
            assert!(y.tx_bytes >= x.tx_bytes && y.rx_bytes >= x.rx_bytes);
        }
    }
}
