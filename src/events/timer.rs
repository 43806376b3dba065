//! A small table of named deadlines.
//!
//! A machine keeps one [`TimerTable`] keyed by its own timer enum. The shell arms a single
//! timer for [`TimerTable::earliest`] and, when it fires, feeds the reason back through
//! [`Machine::handle_timeout`](super::Machine::handle_timeout). Each wake-up says why.

use super::Stamp;
use std::collections::BTreeMap;

/// Named deadlines; at most one per reason. Iteration order is the reason's `Ord`, so ties
/// between equal deadlines resolve the same way on every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerTable<R: Ord + Copy> {
    deadlines: BTreeMap<R, Stamp>,
}

impl<R: Ord + Copy> Default for TimerTable<R> {
    fn default() -> Self {
        Self { deadlines: BTreeMap::new() }
    }
}

impl<R: Ord + Copy> TimerTable<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `reason` for `at`, replacing any earlier deadline for the same reason.
    pub fn set(&mut self, reason: R, at: Stamp) {
        self.deadlines.insert(reason, at);
    }

    pub fn clear(&mut self, reason: R) {
        self.deadlines.remove(&reason);
    }

    pub fn deadline(&self, reason: R) -> Option<Stamp> {
        self.deadlines.get(&reason).copied()
    }

    /// The earliest deadline and its reason; among equal deadlines, the smallest reason.
    pub fn earliest(&self) -> Option<(Stamp, R)> {
        self.deadlines.iter().map(|(r, at)| (*at, *r)).min()
    }

    /// Removes and returns the reason of the earliest deadline at or before `now`.
    pub fn pop_expired(&mut self, now: Stamp) -> Option<R> {
        let (at, reason) = self.earliest()?;
        if at <= now {
            self.deadlines.remove(&reason);
            Some(reason)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Why {
        Poll,
        Window,
    }

    #[test]
    fn earliest_deadline_wins_and_ties_break_by_reason() {
        let mut t = TimerTable::new();
        assert_eq!(t.earliest(), None);
        t.set(Why::Window, Stamp::new(0, 500));
        t.set(Why::Poll, Stamp::new(0, 900));
        assert_eq!(t.earliest(), Some((Stamp::new(0, 500), Why::Window)));
        t.set(Why::Poll, Stamp::new(0, 500));
        assert_eq!(t.earliest(), Some((Stamp::new(0, 500), Why::Poll)));
    }

    #[test]
    fn pop_expired_returns_only_due_reasons_in_order() {
        let mut t = TimerTable::new();
        t.set(Why::Window, Stamp::new(0, 200));
        t.set(Why::Poll, Stamp::new(0, 100));
        assert_eq!(t.pop_expired(Stamp::new(0, 50)), None);
        assert_eq!(t.pop_expired(Stamp::new(0, 250)), Some(Why::Poll));
        assert_eq!(t.pop_expired(Stamp::new(0, 250)), Some(Why::Window));
        assert_eq!(t.pop_expired(Stamp::new(0, 250)), None);
        t.set(Why::Poll, Stamp::new(0, 10));
        t.clear(Why::Poll);
        assert_eq!(t.deadline(Why::Poll), None);
    }
}
