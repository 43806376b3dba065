//! Time and order as machines see them.
//!
//! A machine never reads a clock. Every input arrives with a [`Stamp`]: milliseconds of
//! monotonic time since this boot, plus a boot counter kept on flash, so stamps from different
//! boots order correctly and never collide. Wall time is only ever an input
//! (`WallClockObserved`), for display and statements; no amount of money depends on it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in monotonic time: `(boot, tick_ms)`, ordered by boot first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Boot counter, persisted on flash and incremented at every start.
    pub boot: u32,
    /// Monotonic milliseconds since this boot started.
    pub tick_ms: u64,
}

impl Stamp {
    pub const fn new(boot: u32, tick_ms: u64) -> Self {
        Self { boot, tick_ms }
    }

    /// The stamp `ms` milliseconds later in the same boot (saturating: a deadline that
    /// overflows is simply never reached).
    pub const fn plus_ms(self, ms: u64) -> Self {
        Self { boot: self.boot, tick_ms: self.tick_ms.saturating_add(ms) }
    }

    /// Milliseconds from `earlier` to `self` within one boot; 0 if `earlier` is later or from
    /// another boot (time does not carry across boots).
    pub fn ms_since(self, earlier: Stamp) -> u64 {
        if self.boot == earlier.boot {
            self.tick_ms.saturating_sub(earlier.tick_ms)
        } else {
            0
        }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}.{:03}", self.boot, self.tick_ms / 1000, self.tick_ms % 1000)
    }
}

/// The position of a record in the event log. The first record is `Seq(1)`; `Seq(0)` means
/// "nothing yet". Assigned by the log writer, never by a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seq(pub u64);

impl Seq {
    pub const NONE: Seq = Seq(0);

    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_boot_first() {
        assert!(Stamp::new(1, 9_000_000) < Stamp::new(2, 0));
        assert!(Stamp::new(2, 5) < Stamp::new(2, 6));
    }

    #[test]
    fn elapsed_time_does_not_cross_boots() {
        assert_eq!(Stamp::new(3, 1500).ms_since(Stamp::new(3, 500)), 1000);
        assert_eq!(Stamp::new(4, 1500).ms_since(Stamp::new(3, 500)), 0);
        assert_eq!(Stamp::new(3, 100).ms_since(Stamp::new(3, 500)), 0);
        assert_eq!(Stamp::new(1, u64::MAX).plus_ms(10).tick_ms, u64::MAX);
    }
}
