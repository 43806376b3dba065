//! Neighbours: Hello history, link cost (RFC 8966 Appendix A), link RTT (RFC 9616) and link
//! loss.

use super::INFINITY;
use crate::events::routing::LinkKind;
use core::net::Ipv6Addr;
use std::collections::BTreeMap;

/// A neighbour's name inside the machine: given when it is admitted and never reused while
/// the machine runs (a neighbour that goes and comes back gets a new one). Routes, limits and
/// selection refer to neighbours by it; trust, which outlives restarts, by (interface,
/// address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourId(u32);

/// Every neighbour, by id and by (interface, link-local address).
#[derive(Debug)]
pub(super) struct Neighbours {
    by_id: BTreeMap<NeighbourId, Neighbour>,
    ids: BTreeMap<(u32, Ipv6Addr), NeighbourId>,
    next: u32,
}

impl Default for Neighbours {
    fn default() -> Self {
        Neighbours { by_id: BTreeMap::new(), ids: BTreeMap::new(), next: 1 }
    }
}

impl Neighbours {
    /// Makes `address` on `ifindex` a neighbour with a fresh id.
    pub fn add(&mut self, ifindex: u32, address: Ipv6Addr) -> NeighbourId {
        let id = NeighbourId(self.next);
        self.next += 1;
        self.ids.insert((ifindex, address), id);
        self.by_id.insert(id, Neighbour::new(ifindex, address));
        id
    }

    pub fn remove(&mut self, id: NeighbourId) -> Option<Neighbour> {
        let n = self.by_id.remove(&id)?;
        self.ids.remove(&(n.ifindex, n.address));
        Some(n)
    }

    pub fn id(&self, ifindex: u32, address: Ipv6Addr) -> Option<NeighbourId> {
        self.ids.get(&(ifindex, address)).copied()
    }

    pub fn get(&self, id: NeighbourId) -> Option<&Neighbour> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: NeighbourId) -> Option<&mut Neighbour> {
        self.by_id.get_mut(&id)
    }

    /// The (interface, address) of a neighbour: what trust is kept by.
    pub fn key(&self, id: NeighbourId) -> Option<(u32, Ipv6Addr)> {
        self.by_id.get(&id).map(|n| (n.ifindex, n.address))
    }

    pub fn iter(&self) -> impl Iterator<Item = (NeighbourId, &Neighbour)> + '_ {
        self.by_id.iter().map(|(id, n)| (*id, n))
    }

    pub fn values(&self) -> impl Iterator<Item = &Neighbour> + '_ {
        self.by_id.values()
    }

    pub fn ids(&self) -> Vec<NeighbourId> {
        self.by_id.keys().copied().collect()
    }

    /// The neighbours on `ifindex`.
    pub fn on(&self, ifindex: u32) -> Vec<NeighbourId> {
        self.iter().filter(|(_, n)| n.ifindex == ifindex).map(|(id, _)| id).collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// The state of one neighbour (an interface and a link-local address).
#[derive(Clone, Debug)]
pub struct Neighbour {
    pub ifindex: u32,
    pub address: Ipv6Addr,
    /// Bit 0 is the most recent expected Hello; 1: received.
    pub history: u16,
    /// How many Hellos have been expected since the neighbour was acquired (saturates at 16).
    pub expected_count: u8,
    pub expected_seqno: u16,
    /// The neighbour's announced multicast Hello interval.
    pub hello_interval_ms: u64,
    /// When the next Hello counts as missed.
    pub hello_deadline_ms: u64,
    /// The neighbour's rxcost of our Hellos, from its IHU; INFINITY when none is fresh.
    pub txcost: u16,
    pub ihu_deadline_ms: u64,
    /// The latest Hello timestamp from the neighbour and when it arrived (our µs clock),
    /// echoed in our next IHU (RFC 9616).
    pub last_timestamp: Option<(u32, u32)>,
    /// Smoothed link RTT in microseconds.
    pub rtt_us: Option<u32>,
    /// The RTT its routes were last ranked with (selection is redone when `rtt_us` moves
    /// far from it).
    pub rtt_ranked_us: Option<u32>,
    /// Whether the link was usable at the last check (to notice the transitions).
    pub usable: bool,
    /// Expected Hellos since the link last became usable (saturating at 16): the loss window.
    pub loss_window: u8,
    /// When we last greeted it with a Hello of its own (a restart of its history).
    pub greeted_ms: Option<u64>,
}

/// How late a Hello may be before it counts as missed, as a multiple of its interval (in
/// eighths): senders jitter their Hellos (babeld by up to ±25%).
const HELLO_GRACE_EIGHTHS: u64 = 10;

impl Neighbour {
    pub fn new(ifindex: u32, address: Ipv6Addr) -> Self {
        Neighbour {
            ifindex,
            address,
            history: 0,
            expected_count: 0,
            expected_seqno: 0,
            hello_interval_ms: 0,
            hello_deadline_ms: u64::MAX,
            txcost: INFINITY,
            ihu_deadline_ms: u64::MAX,
            last_timestamp: None,
            rtt_us: None,
            rtt_ranked_us: None,
            usable: false,
            loss_window: 0,
            greeted_ms: None,
        }
    }

    /// Heard among its last three expected Hellos: it still gets our IHUs in periodic Hellos
    /// (a neighbour that stopped talking stops costing us bytes).
    pub fn heard_recently(&self) -> bool {
        self.received_of_last(3) > 0
    }

    /// A multicast Hello arrived (RFC 8966 §A.1), announcing `interval_cs` (the caller bounds it,
    /// [`super::BabelLimits::hello_interval_cs`]; 0 would mean no deadline). A seqno far from
    /// the expected one (the neighbour restarted, or was silent for long) resets the history.
    pub fn hello(&mut self, seqno: u16, interval_cs: u16, now_ms: u64) {
        if self.expected_count == 0 {
            self.history = 1;
            self.expected_count = 1;
        } else {
            let gap = seqno.wrapping_sub(self.expected_seqno) as i16;
            if !(-16..=16).contains(&gap) {
                // The neighbour restarted or we lost it for long: start over.
                self.history = 1;
                self.expected_count = 1;
            } else if gap < 0 {
                // A late Hello, already counted as missed when its deadline passed (senders
                // jitter: babeld's gaps reach 1.36 intervals): credit it back. A repeated one
                // changes nothing.
                let age = (-gap - 1) as u32;
                let was_missed = age < 16 && self.history & (1 << age) == 0;
                if age < 16 {
                    self.history |= 1 << age;
                }
                // It was the newest expected: the next one is due an interval after it.
                if was_missed && gap == -1 && interval_cs != 0 {
                    self.hello_deadline_ms = now_ms + u64::from(interval_cs) * 10 * HELLO_GRACE_EIGHTHS / 8;
                }
                return;
            } else {
                let gap = gap as u32;
                self.history = if gap >= 16 { 0 } else { self.history << gap };
                self.history = (self.history << 1) | 1;
                self.expected_count = (u32::from(self.expected_count) + gap + 1).min(16) as u8;
            }
        }
        self.loss_window = self.loss_window.saturating_add(1).min(16);
        self.expected_seqno = seqno.wrapping_add(1);
        self.hello_interval_ms = u64::from(interval_cs) * 10;
        self.hello_deadline_ms = if interval_cs == 0 {
            u64::MAX
        } else {
            now_ms + self.hello_interval_ms * HELLO_GRACE_EIGHTHS / 8
        };
    }

    /// The Hello expected by `hello_deadline_ms` did not come.
    pub fn missed_hello(&mut self) {
        self.loss_window = self.loss_window.saturating_add(1).min(16);
        self.history <<= 1;
        self.expected_seqno = self.expected_seqno.wrapping_add(1);
        self.expected_count = (self.expected_count + 1).min(16);
        self.hello_deadline_ms = self.hello_deadline_ms.saturating_add(self.hello_interval_ms.max(1));
    }

    /// Hellos received among the last `n` expected.
    fn received_of_last(&self, n: u32) -> u32 {
        let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        (self.history & mask).count_ones()
    }

    /// Our cost of receiving from this neighbour (sent in IHUs).
    pub fn rxcost(&self, kind: LinkKind, nominal: u16) -> u16 {
        match kind {
            LinkKind::Wired | LinkKind::Tunnel => {
                if self.received_of_last(3) >= 2 {
                    nominal
                } else {
                    INFINITY
                }
            }
            LinkKind::Wireless => {
                let window = u32::from(self.expected_count.max(1));
                // 256 / beta, beta = got / window; nothing received: infinite.
                match (256 * window).checked_div(self.received_of_last(window)) {
                    None => INFINITY,
                    Some(c) => c.min(u32::from(INFINITY - 1)) as u16,
                }
            }
        }
    }

    /// The link cost (RFC 8966 §A.2): the neighbour's view of our Hellos (txcost) combined
    /// with ours of its Hellos.
    pub fn cost(&self, kind: LinkKind, nominal: u16) -> u16 {
        let rx = self.rxcost(kind, nominal);
        if rx == INFINITY || self.txcost == INFINITY {
            return INFINITY;
        }
        match kind {
            LinkKind::Wired | LinkKind::Tunnel => self.txcost,
            LinkKind::Wireless => {
                // ETX: 256 / (alpha · beta) with alpha = 256 / txcost, beta = 256 / rx.
                let c = u64::from(self.txcost.max(256)) * u64::from(rx.max(256)) / 256;
                c.min(u64::from(INFINITY - 1)) as u16
            }
        }
    }

    /// Loss of the link in micro-nepers, −ln(fraction of expected Hellos received), from
    /// our side's history (the link is taken as symmetric).
    pub fn loss_micro_nepers(&self) -> u32 {
        let window = u32::from(self.expected_count.min(self.loss_window));
        if window == 0 {
            return 0;
        }
        let got = self.received_of_last(window);
        if got == 0 {
            return u32::MAX;
        }
        // −ln(got/window) = ln(window) − ln(got), with ln in fixed point from log2.
        let ln2_micro = 693_147u64;
        let l = super::score::log2_fixed(u64::from(window) << 16)
            .saturating_sub(super::score::log2_fixed(u64::from(got) << 16));
        ((l * ln2_micro) >> 16).min(u64::from(u32::MAX)) as u32
    }

    /// A new RTT sample (µs): smoothed with gain 1/4.
    pub fn rtt_sample(&mut self, sample_us: u32) {
        self.rtt_us = Some(match self.rtt_us {
            None => sample_us,
            Some(old) => ((u64::from(old) * 3 + u64::from(sample_us)) / 4) as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Neighbour {
        Neighbour::new(1, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))
    }

    // RFC 8966 §A.1 (Hello history) and §A.2.1 (k-out-of-j): one Hello is not enough, two of
    // the last three are.
    #[test]
    fn two_out_of_three_hellos_make_a_wired_link_usable() {
        let mut a = n();
        a.txcost = 96;
        a.hello(10, 100, 0);
        assert_eq!(a.cost(LinkKind::Wired, 96), INFINITY);
        a.hello(11, 100, 1_000);
        assert_eq!(a.cost(LinkKind::Wired, 96), 96);
        a.missed_hello();
        assert_eq!(a.cost(LinkKind::Wired, 96), 96, "one miss of three is tolerated");
        a.missed_hello();
        assert_eq!(a.cost(LinkKind::Wired, 96), INFINITY);
        // A seqno gap counts the skipped Hellos as missed.
        a.hello(20, 100, 5_000);
        a.hello(22, 100, 7_000);
        assert_eq!(a.history & 0b111, 0b101);
    }

    // A Hello that arrives after its deadline (sender jitter) is credited back, and the next
    // deadline counts from it.
    #[test]
    fn a_late_hello_is_credited_back() {
        let mut a = n();
        a.txcost = 96;
        a.hello(1, 100, 0);
        a.hello(2, 100, 1_000);
        assert_eq!(a.hello_deadline_ms, 2_250);
        a.missed_hello();
        assert_eq!(a.history & 0b111, 0b110);
        a.hello(3, 100, 2_300);
        assert_eq!(a.history & 0b111, 0b111);
        assert_eq!(a.hello_deadline_ms, 3_550);
        // Repeats and old Hellos change nothing.
        a.hello(3, 100, 2_400);
        a.hello(2, 100, 2_500);
        assert_eq!(a.history & 0b111, 0b111);
        assert_eq!(a.hello_deadline_ms, 3_550);
    }

    // After an outage the loss window starts again: the Hellos missed while the link was
    // down are an outage, not loss on the link that came back.
    #[test]
    fn the_loss_window_restarts_when_the_link_comes_back() {
        let mut a = n();
        for s in 0..16 {
            a.hello(s, 100, u64::from(s) * 1000);
        }
        for _ in 0..5 {
            a.missed_hello();
        }
        assert!(a.loss_micro_nepers() > 300_000);
        a.loss_window = 0;
        a.hello(21, 100, 21_000);
        a.hello(22, 100, 22_000);
        assert_eq!(a.loss_micro_nepers(), 0);
    }

    #[test]
    fn the_miss_deadline_allows_for_jitter() {
        let mut a = n();
        a.hello(1, 100, 0);
        assert_eq!(a.hello_deadline_ms, 1_250);
    }

    // RFC 8966 §A.2.2: ETX grows as Hellos are lost in either direction.
    #[test]
    fn etx_grows_with_loss() {
        let mut a = n();
        a.txcost = 256;
        for s in 0..16 {
            a.hello(s, 100, u64::from(s) * 1000);
        }
        assert_eq!(a.cost(LinkKind::Wireless, 256), 256);
        assert_eq!(a.loss_micro_nepers(), 0);
        a.missed_hello();
        a.missed_hello();
        let c = a.cost(LinkKind::Wireless, 256);
        assert!(c > 256 && c < 320, "{c}");
        let l = a.loss_micro_nepers();
        // −ln(14/16) ≈ 133,531 µNp.
        assert!((133_000..134_100).contains(&l), "{l}");
    }
}
