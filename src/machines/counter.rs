//! Cumulative kernel counters against what was accounted durably: the one place that decides
//! what a new reading means (new bytes, or a reset), for the usage machine (tx/rx per link)
//! and the exit (download/upload per user).
//!
//! Counters from the kernel are cumulative and monotonic until the kernel forgets them (a
//! reboot, a table recreated). A machine keeps, durably, the counter values up to which bytes
//! were accounted (`counted`); everything above is pending. The latest reading is soft state:
//! after a restart there is none, and the durable `counted` is the floor a reading must not
//! fall below. A reading below its floor, in either direction, is a reset: the bytes between
//! the last record and the reset are unknowable and are not invented.

/// Which counters of a pair went backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reset {
    pub first: bool,
    pub second: bool,
}

impl Reset {
    /// The counted values once the reset is folded in: the counters that went back start
    /// from zero.
    pub fn apply(self, counted: (u64, u64)) -> (u64, u64) {
        (if self.first { 0 } else { counted.0 }, if self.second { 0 } else { counted.1 })
    }
}

/// The latest reading of one pair of cumulative counters (soft state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterPair {
    last: Option<(u64, u64)>,
}

impl CounterPair {
    /// Whether `reading` is a reset: below the previous reading or, before any, below the
    /// durable `counted` values. Call before [`Self::record`]: what was pending before a reset
    /// is accounted first, at the previous reading.
    pub fn reset_by(&self, reading: (u64, u64), counted: (u64, u64)) -> Option<Reset> {
        let floor = self.last.unwrap_or(counted);
        let reset = Reset { first: reading.0 < floor.0, second: reading.1 < floor.1 };
        (reset.first || reset.second).then_some(reset)
    }

    /// Takes `reading` as the latest.
    pub fn record(&mut self, reading: (u64, u64)) {
        self.last = Some(reading);
    }

    /// Bytes read but not yet accounted above `counted` (none before the first reading).
    pub fn pending(&self, counted: (u64, u64)) -> (u64, u64) {
        match self.last {
            Some((a, b)) => (a.saturating_sub(counted.0), b.saturating_sub(counted.1)),
            None => (0, 0),
        }
    }

    pub fn last(&self) -> Option<(u64, u64)> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_pending_bytes_until_accounted_and_going_back_is_a_reset() {
        let mut c = CounterPair::default();
        assert_eq!(c.pending((0, 0)), (0, 0), "nothing read yet");
        // After a restart: the durable counted values are the floor.
        assert_eq!(c.reset_by((90, 10), (100, 5)), Some(Reset { first: true, second: false }));
        assert_eq!(c.reset_by((120, 10), (100, 5)), None);
        c.record((120, 10));
        assert_eq!(c.pending((100, 5)), (20, 5));
        // Once read, the previous reading is the floor (the counted value may lag behind it).
        assert_eq!(c.reset_by((110, 10), (100, 5)), Some(Reset { first: true, second: false }));
        assert_eq!(c.reset_by((120, 9), (100, 5)), Some(Reset { first: false, second: true }));
        assert_eq!(c.reset_by((130, 12), (100, 5)), None);
        assert_eq!(Reset { first: true, second: false }.apply((100, 5)), (0, 5));
        assert_eq!(c.last(), Some((120, 10)));
    }
}
