//! Errors that repeat are reported once, then as a count at most every so often: a full disk
//! must not turn into twenty thousand log lines a second, and an error must not be reported
//! once and then hidden either.
//!
//! Time comes from stamps, so simulations and tests run it in virtual time.

use crate::events::Stamp;
use std::collections::BTreeMap;

/// How often a repeating error is reported by default.
pub const REPORT_EVERY_MS: u64 = 30_000;

/// What to say about one occurrence of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// The first occurrence (or the first after it had cleared): say it.
    First,
    /// Say it, with how many occurrences were not reported since the last report.
    Again { suppressed: u64 },
    /// Stay silent; it is counted.
    Quiet,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    last_report: Stamp,
    suppressed: u64,
}

/// Rate limits for reports, by kind of error: a name, or any other key (the destination of a
/// refused route change, say).
#[derive(Clone, Debug)]
pub struct Throttle<K = &'static str> {
    every_ms: u64,
    errors: BTreeMap<K, Entry>,
}

impl<K: Ord + Copy> Default for Throttle<K> {
    fn default() -> Self {
        Self::new(REPORT_EVERY_MS)
    }
}

impl<K: Ord + Copy> Throttle<K> {
    pub fn new(every_ms: u64) -> Self {
        Self { every_ms, errors: BTreeMap::new() }
    }

    /// An occurrence of error `kind` at `now`: whether and how to report it.
    pub fn occurred(&mut self, kind: K, now: Stamp) -> Report {
        let every_ms = self.every_ms;
        match self.errors.get_mut(&kind) {
            None => {
                self.errors.insert(kind, Entry { last_report: now, suppressed: 0 });
                Report::First
            }
            // A new boot, or the interval passed: report with the count.
            Some(e) if e.last_report.boot != now.boot || now.tick_ms >= e.last_report.tick_ms + every_ms => {
                let suppressed = e.suppressed;
                *e = Entry { last_report: now, suppressed: 0 };
                Report::Again { suppressed }
            }
            Some(e) => {
                e.suppressed += 1;
                Report::Quiet
            }
        }
    }

    /// Error `kind` is over (the disk writes again, say). Returns how many occurrences were not
    /// reported, if it had occurred, so the all-clear can say so; the next occurrence is a
    /// first one again.
    pub fn cleared(&mut self, kind: K) -> Option<u64> {
        self.errors.remove(&kind).map(|e| e.suppressed)
    }

    /// Whether error `kind` has occurred and not cleared.
    pub fn active(&self, kind: K) -> bool {
        self.errors.contains_key(&kind)
    }
}

/// Logs `$msg` (a `tracing::error!` with the given fields) as the throttle says, adding
/// `suppressed = n` when occurrences were held back.
#[macro_export]
macro_rules! throttled_error {
    ($throttle:expr, $kind:expr, $now:expr, $($arg:tt)+) => {
        match $throttle.occurred($kind, $now) {
            $crate::os::throttle::Report::First => tracing::error!($($arg)+),
            $crate::os::throttle::Report::Again { suppressed } => {
                tracing::error!(suppressed, $($arg)+)
            }
            $crate::os::throttle::Report::Quiet => {}
        }
    };
}

/// [`throttled_error!`] for warnings: what the node works around (and retries) itself.
#[macro_export]
macro_rules! throttled_warn {
    ($throttle:expr, $kind:expr, $now:expr, $($arg:tt)+) => {
        match $throttle.occurred($kind, $now) {
            $crate::os::throttle::Report::First => tracing::warn!($($arg)+),
            $crate::os::throttle::Report::Again { suppressed } => {
                tracing::warn!(suppressed, $($arg)+)
            }
            $crate::os::throttle::Report::Quiet => {}
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_a_count_every_interval_then_cleared() {
        let mut t = Throttle::new(1_000);
        let at = |ms| Stamp::new(1, ms);
        assert_eq!(t.occurred("flush", at(0)), Report::First);
        for ms in 1..1_000 {
            assert_eq!(t.occurred("flush", at(ms)), Report::Quiet, "{ms}");
        }
        assert_eq!(t.occurred("flush", at(1_000)), Report::Again { suppressed: 999 });
        assert_eq!(t.occurred("flush", at(1_001)), Report::Quiet);
        // Another kind is independent.
        assert_eq!(t.occurred("snapshot", at(1_002)), Report::First);
        assert!(t.active("flush"));
        assert_eq!(t.cleared("flush"), Some(1));
        assert_eq!(t.cleared("flush"), None);
        assert_eq!(t.occurred("flush", at(1_003)), Report::First);
        // A new boot starts a new interval.
        assert_eq!(t.occurred("flush", Stamp::new(2, 0)), Report::Again { suppressed: 0 });
    }

    /// Any key will do: each is throttled on its own, cleared on its own.
    #[test]
    fn keys_other_than_names_are_throttled_each_on_its_own() {
        let mut t: Throttle<u32> = Throttle::new(1_000);
        let at = |ms| Stamp::new(1, ms);
        assert_eq!(t.occurred(7, at(0)), Report::First);
        assert_eq!(t.occurred(8, at(1)), Report::First);
        assert_eq!(t.occurred(7, at(2)), Report::Quiet);
        assert_eq!(t.occurred(7, at(1_000)), Report::Again { suppressed: 1 });
        assert_eq!(t.cleared(8), Some(0));
        assert!(t.active(7) && !t.active(8));
    }

    /// 20,000 failures a second for a minute: about one report per interval, not 1.2 M.
    #[test]
    fn a_flood_becomes_a_handful_of_lines() {
        let mut t = Throttle::default();
        let mut lines = 0;
        let mut counted = 0;
        for i in 0..1_200_000u64 {
            match t.occurred("flush", Stamp::new(1, i * 60_000 / 1_200_000)) {
                Report::First => lines += 1,
                Report::Again { suppressed } => {
                    lines += 1;
                    counted += suppressed + 1;
                }
                Report::Quiet => {}
            }
        }
        assert_eq!(lines, 2, "first, then at 30 s");
        assert_eq!(counted + 1 + t.cleared("flush").unwrap(), 1_200_000, "every occurrence is counted");
    }
}
