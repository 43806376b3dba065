//! The contract every component of lastmile follows.
//!
//! A machine is a deterministic, sans-IO state machine (quinn-proto, str0m). The shell drives
//! it like this, for every message it receives:
//!
//! 1. Stamp the input with the current [`Stamp`] (only the clock actor reads clocks).
//! 2. Call [`Machine::handle`] (or [`Machine::handle_timeout`] when the armed timer fired).
//!    The machine decides; it may emit events and effects. It never blocks and does no I/O.
//! 3. Drain [`Machine::poll_event`] until `None` and send the events to the log writer, in
//!    order. The machine has already folded each of them into its own state with
//!    [`Machine::apply`] ("decide, then apply").
//! 4. Drain [`Machine::poll_effect`] until `None`. An effect whose [`Release`] is
//!    [`Release::WhenDurable`] is held by the log writer until every event emitted before it
//!    is on flash (persist, then send); the others go out at once.
//! 5. Re-arm the one timer for [`Machine::poll_timeout`].
//!
//! Replaying the emitted events through [`Fold::apply`] from the same starting state gives
//! exactly the machine's durable state (each machine exposes it, e.g.
//! `UsageMachine::state`). That is what makes recovery and billing disputes exact.

use super::Stamp;
use std::fmt::Debug;

/// Durable state that is the fold of a machine's events. `apply` holds no logic beyond
/// recording the fact: no decisions, no effects, no time.
pub trait Fold {
    type Event;
    fn apply(&mut self, event: &Self::Event);
}

/// When an effect may leave the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Soft effects (read counters, send a probe): nothing is lost if they are repeated or
    /// dropped by a crash.
    Immediately,
    /// The effect moves money or makes a promise: it is released only once every event this
    /// machine emitted before it is durable on flash.
    WhenDurable,
}

/// An effect together with its release rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect<E> {
    pub release: Release,
    pub action: E,
}

impl<E> Effect<E> {
    pub fn now(action: E) -> Self {
        Self { release: Release::Immediately, action }
    }

    pub fn when_durable(action: E) -> Self {
        Self { release: Release::WhenDurable, action }
    }
}

/// The seam between a pure machine and the shell that drives it (see the module docs for the
/// drive loop and the order of polls).
pub trait Machine {
    type Input: Debug;
    type Event: Debug;
    type Effect: Debug;
    /// The names of this machine's deadlines.
    type Timer: Copy + Ord + Debug;

    /// Decides what `input`, arriving at `at`, means. Never blocks, never does I/O.
    fn handle(&mut self, at: Stamp, input: Self::Input);

    /// The deadline named `timer` has passed; `at` is the current time (not the deadline).
    fn handle_timeout(&mut self, at: Stamp, timer: Self::Timer);

    /// Folds one event into the durable state. Used by `handle` on its own decisions and by
    /// recovery on the log's tail.
    fn apply(&mut self, event: &Self::Event);

    fn poll_event(&mut self) -> Option<Self::Event>;

    fn poll_effect(&mut self) -> Option<Effect<Self::Effect>>;

    /// The earliest deadline and why; the shell arms one timer for it.
    fn poll_timeout(&self) -> Option<(Stamp, Self::Timer)>;
}
