//! The contract every component of lastmile follows.
//!
//! A machine is a deterministic, sans-IO state machine (quinn-proto, str0m). The shell drives
//! it like this, for every message it receives:
//!
//! 1. Stamp the input with the current [`Stamp`] (only the clock actor reads clocks).
//! 2. Call [`Machine::handle`] (or [`Machine::handle_timeout`] when the armed timer fired).
//!    The machine decides; it may emit events and effects. It never blocks and does no I/O.
//! 3. Drain [`Machine::poll_event`] until `None` and send the events to the log writer, in
//!    order. The machine has already folded each of them into its durable state
//!    ([`Machine::State`], a [`Fold`]) as it decided it ("decide, then apply": [`Outbox::emit`]).
//! 4. Drain [`Machine::poll_effect`] until `None`. An effect whose [`Release`] is
//!    [`Release::WhenDurable`] is held by the log writer until every event emitted before it
//!    is on flash (persist, then send); the others go out at once.
//! 5. Re-arm the one timer for [`Machine::poll_timeout`].
//!
//! Replaying the emitted events through [`Fold::apply`] from the same starting state gives
//! exactly the machine's durable state, [`Machine::state`]: that is what makes recovery and
//! billing disputes exact, and one property checks it for every machine
//! (`machines::equivalence`).
//!
//! Each machine's vocabulary (its `Input`, `Event`, `Effect` and `Timer` types) lives in
//! `src/events/<machine>.rs`; a machine with no timers (or no effects) says so with
//! [`std::convert::Infallible`].

use super::Stamp;
use std::collections::VecDeque;
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

/// What a machine decided and has not been drained yet: its events (already folded into its
/// state) and its effects, in order. Every machine keeps one.
#[derive(Debug)]
pub struct Outbox<Ev, Ef> {
    events: VecDeque<Ev>,
    effects: VecDeque<Effect<Ef>>,
}

impl<Ev, Ef> Default for Outbox<Ev, Ef> {
    fn default() -> Self {
        Self { events: VecDeque::new(), effects: VecDeque::new() }
    }
}

impl<Ev, Ef> Outbox<Ev, Ef> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide, then apply: folds `event` into `state`, then queues it for the log.
    pub fn emit<S: Fold<Event = Ev> + ?Sized>(&mut self, state: &mut S, event: Ev) {
        state.apply(&event);
        self.events.push_back(event);
    }

    /// Queues an event the caller has already folded into the state (the decision of a part of
    /// the machine that keeps its own outbox, such as usage accrual inside billing).
    pub fn queue_folded(&mut self, event: Ev) {
        self.events.push_back(event);
    }

    /// An effect that may leave at once ([`Release::Immediately`]).
    pub fn now(&mut self, action: Ef) {
        self.effects.push_back(Effect::now(action));
    }

    /// An effect released only once every event emitted before it is durable
    /// ([`Release::WhenDurable`]).
    pub fn when_durable(&mut self, action: Ef) {
        self.effects.push_back(Effect::when_durable(action));
    }

    pub fn poll_event(&mut self) -> Option<Ev> {
        self.events.pop_front()
    }

    pub fn poll_effect(&mut self) -> Option<Effect<Ef>> {
        self.effects.pop_front()
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
    /// The durable state: the fold of this machine's events, what the log holds of it.
    type State: Fold<Event = Self::Event>;

    /// Decides what `input`, arriving at `at`, means. Never blocks, never does I/O.
    fn handle(&mut self, at: Stamp, input: Self::Input);

    /// The deadline named `timer` has passed; `at` is the current time (not the deadline).
    fn handle_timeout(&mut self, at: Stamp, timer: Self::Timer);

    /// The durable state, with every event emitted so far folded in.
    fn state(&self) -> &Self::State;

    /// What the machine decided and the shell has not drained yet.
    fn outbox(&mut self) -> &mut Outbox<Self::Event, Self::Effect>;

    /// The next event, in the order decided (already folded into [`Machine::state`]).
    fn poll_event(&mut self) -> Option<Self::Event> {
        self.outbox().poll_event()
    }

    /// The next effect, in the order decided.
    fn poll_effect(&mut self) -> Option<Effect<Self::Effect>> {
        self.outbox().poll_effect()
    }

    /// The earliest deadline and why; the shell arms one timer for it.
    fn poll_timeout(&self) -> Option<(Stamp, Self::Timer)>;
}
