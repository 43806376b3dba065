//! The clock: the only place in lastmile that reads time.
//!
//! ```text
//!   Clock::now() ──► Stamp { boot, tick_ms }   (monotonic, for every input)
//!   ClockActor  ──► WallClock(ms since epoch)  (every minute, to subscribers; display only)
//! ```
//!
//! Machines get time only as stamps. The boot counter comes from flash (`os::flash`), so
//! stamps of different boots never collide.

use crate::events::Stamp;
use actix::prelude::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time since this boot, stamped with the boot counter. Cheap to clone.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot: u32,
    origin: Instant,
}

impl Clock {
    // The one monotonic clock read in lastmile (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    pub fn start(boot: u32) -> Self {
        Self { boot, origin: Instant::now() }
    }

    pub fn now(&self) -> Stamp {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Stamp::new(self.boot, ms)
    }

    /// How long until `at`; zero if it has passed or belongs to another boot.
    pub fn until(&self, at: Stamp) -> Duration {
        if at.boot != self.boot {
            return Duration::ZERO;
        }
        Duration::from_millis(at.ms_since(self.now()))
    }

    pub fn boot(&self) -> u32 {
        self.boot
    }
}

/// Wall-clock time as an input: for display and signed statements, never for amounts.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct WallClock {
    pub at: Stamp,
    pub unix_ms: u64,
}

// The one wall-clock read in lastmile (see clippy.toml): for display and statements only.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock_now(clock: &Clock) -> WallClock {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    WallClock { at: clock.now(), unix_ms }
}

/// Tells its subscribers the wall-clock time every `every`.
pub struct ClockActor {
    clock: Clock,
    every: Duration,
    subscribers: Vec<Recipient<WallClock>>,
}

impl ClockActor {
    pub fn new(clock: Clock, every: Duration, subscribers: Vec<Recipient<WallClock>>) -> Self {
        Self { clock, every, subscribers }
    }

    fn tell(&self) {
        let now = wall_clock_now(&self.clock);
        for s in &self.subscribers {
            s.do_send(now);
        }
    }
}

impl Actor for ClockActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tell();
        ctx.run_interval(self.every, |act, _| act.tell());
    }
}
