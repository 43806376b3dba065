//! The one drive loop of the tests and simulations: what the shell does with a machine after
//! every input, written once (in the spirit of quinn-proto's `Pair::drive`).
//!
//! Test and simulation support, not the node's shell: `actors::driver` drives machines in the
//! daemon. The harness supplies a [`Shell`]: where events go (a `Vec`, a real log on flash, a
//! simulated log that a crash may cut) and what becomes of effects (a chain twin that answers
//! at once, a queue, a counter reading scheduled for later). This module supplies the order:
//!
//! 1. after `handle` (or `handle_timeout`), every event the machine emitted goes to
//!    [`Shell::record`], in order, before any effect that follows it is looked at (the log
//!    comes first: persist, then send);
//! 2. then **one** effect goes to [`Shell::execute`]; what it answers at once (a chain twin's
//!    observation) is handed straight back to the machine, at the same stamp;
//! 3. repeat from 1 until the machine has no effect left, or until `record` says the node
//!    died at this event ([`Flow::Died`]): then nothing more is drained and what was not
//!    drained is lost with the process, as in a crash.
//!
//! A shell that batches instead (a log writer that appends a whole batch, then releases what
//! it held: `tests/anvil.rs` with its real journal and an async chain) takes everything at once
//! with [`drain`] and carries it out itself.
//!
//! Virtual time is the harness's: a unit test fires the timer it means at the stamp it
//! chooses ([`fire`]); a harness that jumps from deadline to deadline asks [`due`] for the
//! next one up to a moment (`tests/anvil.rs`); a simulation of many machines (`sim::billing`)
//! keeps its own agenda of world actions beside every machine's deadline, and drives each
//! machine through [`pump`] all the same.

use crate::events::{Effect, Machine, Stamp};

/// Whether the node lives on after an event reached its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Alive,
    /// The node died at this event (a simulated crash): the drive stops at once.
    Died,
}

/// What a harness does with a machine's outputs.
pub trait Shell<M: Machine> {
    /// One event `machine` emitted (it has already applied it), in emission order.
    fn record(&mut self, at: Stamp, event: M::Event) -> Flow;

    /// Carries out one effect. An answer the outside world gives at once (the chain twin's
    /// observation) is returned, and the driver hands it back to the machine before anything
    /// else; an answer that comes later is the harness's to deliver.
    fn execute(&mut self, at: Stamp, effect: Effect<M::Effect>) -> Option<M::Input>;
}

/// `machine.handle(at, input)`, then [`pump`].
pub fn handle<M: Machine>(machine: &mut M, at: Stamp, input: M::Input, shell: &mut impl Shell<M>) -> Flow {
    machine.handle(at, input);
    pump(machine, at, shell)
}

/// `machine.handle_timeout(at, timer)`, then [`pump`]. `at` is the current time, which a test
/// may choose to be other than the deadline.
pub fn fire<M: Machine>(machine: &mut M, at: Stamp, timer: M::Timer, shell: &mut impl Shell<M>) -> Flow {
    machine.handle_timeout(at, timer);
    pump(machine, at, shell)
}

/// Drains `machine` in the order of the module docs: events, then one effect (its immediate
/// answer fed back at `at`), until no effect is left or the node died.
pub fn pump<M: Machine>(machine: &mut M, at: Stamp, shell: &mut impl Shell<M>) -> Flow {
    loop {
        while let Some(event) = machine.poll_event() {
            if shell.record(at, event) == Flow::Died {
                return Flow::Died;
            }
        }
        let Some(effect) = machine.poll_effect() else {
            return Flow::Alive;
        };
        if let Some(answer) = shell.execute(at, effect) {
            machine.handle(at, answer);
        }
    }
}

/// The earliest deadline of `machine` if it is due by `until`.
pub fn due<M: Machine>(machine: &M, until: Stamp) -> Option<(Stamp, M::Timer)> {
    machine.poll_timeout().filter(|(at, _)| *at <= until)
}

/// Everything a machine has decided, taken at once: events in order, then effects in order.
#[derive(Debug)]
pub struct Drained<M: Machine> {
    pub events: Vec<M::Event>,
    pub effects: Vec<Effect<M::Effect>>,
}

/// Takes every event, then every effect, `machine` has queued (for shells that batch).
pub fn drain<M: Machine>(machine: &mut M) -> Drained<M> {
    Drained {
        events: std::iter::from_fn(|| machine.poll_event()).collect(),
        effects: std::iter::from_fn(|| machine.poll_effect()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Outbox;

    /// A toy machine: `Ask(n)` emits event `n` and asks the outside for `n + 1` (an effect
    /// released when durable if `n` is even) until `n` reaches 3; a timer named `()` is armed
    /// at `armed` and, when fired, emits 100 and re-arms 10 ms later.
    /// The toy's durable state: how many events it emitted.
    #[derive(Default)]
    struct Emitted(u32);

    impl crate::events::Fold for Emitted {
        type Event = u32;
        fn apply(&mut self, _event: &u32) {
            self.0 += 1;
        }
    }

    #[derive(Default)]
    struct Toy {
        emitted: Emitted,
        out: Outbox<u32, u32>,
        armed: Option<Stamp>,
        fired_at: Vec<Stamp>,
    }

    impl Machine for Toy {
        type Input = u32;
        type Event = u32;
        type Effect = u32;
        type Timer = ();
        type State = Emitted;

        fn handle(&mut self, _at: Stamp, n: u32) {
            self.out.emit(&mut self.emitted, n);
            if n < 3 {
                if n.is_multiple_of(2) {
                    self.out.when_durable(n + 1)
                } else {
                    self.out.now(n + 1)
                }
            }
        }

        fn handle_timeout(&mut self, at: Stamp, (): ()) {
            self.fired_at.push(at);
            self.out.emit(&mut self.emitted, 100);
            self.armed = Some(at.plus_ms(10));
        }

        fn state(&self) -> &Emitted {
            &self.emitted
        }

        fn outbox(&mut self) -> &mut Outbox<u32, u32> {
            &mut self.out
        }

        fn poll_timeout(&self) -> Option<(Stamp, ())> {
            self.armed.map(|at| (at, ()))
        }
    }

    /// Answers every effect with its own value; records the order it saw things in.
    #[derive(Default)]
    struct Echo {
        seen: Vec<String>,
        die_at: Option<u32>,
    }

    impl Shell<Toy> for Echo {
        fn record(&mut self, _at: Stamp, event: u32) -> Flow {
            self.seen.push(format!("event {event}"));
            if self.die_at == Some(event) {
                Flow::Died
            } else {
                Flow::Alive
            }
        }

        fn execute(&mut self, _at: Stamp, effect: Effect<u32>) -> Option<u32> {
            self.seen.push(format!("effect {}", effect.action));
            Some(effect.action)
        }
    }

    #[test]
    fn events_go_before_the_effect_after_them_and_answers_go_straight_back() {
        let (mut toy, mut echo) = (Toy::default(), Echo::default());
        assert_eq!(handle(&mut toy, Stamp::new(1, 0), 0, &mut echo), Flow::Alive);
        let expected = ["event 0", "effect 1", "event 1", "effect 2", "event 2", "effect 3", "event 3"];
        assert_eq!(echo.seen, expected);
    }

    #[test]
    fn a_node_that_dies_at_an_event_drains_nothing_more() {
        let mut toy = Toy::default();
        let mut echo = Echo { die_at: Some(1), ..Echo::default() };
        assert_eq!(handle(&mut toy, Stamp::new(1, 0), 0, &mut echo), Flow::Died);
        assert_eq!(echo.seen, ["event 0", "effect 1", "event 1"]);
        assert_eq!(toy.poll_effect(), Some(Effect::now(2)), "the effect after the fatal event never left");
        assert_eq!(toy.poll_effect(), None);
    }

    #[test]
    fn a_deadline_is_due_from_its_own_moment_on() {
        let mut toy = Toy { armed: Some(Stamp::new(1, 5)), ..Toy::default() };
        assert_eq!(due(&toy, Stamp::new(1, 4)), None);
        assert_eq!(due(&toy, Stamp::new(1, 5)), Some((Stamp::new(1, 5), ())));
        let mut echo = Echo::default();
        assert_eq!(fire(&mut toy, Stamp::new(1, 7), (), &mut echo), Flow::Alive);
        assert_eq!(
            (toy.fired_at.as_slice(), echo.seen.as_slice()),
            ([Stamp::new(1, 7)].as_slice(), ["event 100".to_string()].as_slice())
        );
        assert_eq!(
            due(&toy, Stamp::new(1, 16)),
            None,
            "re-armed 10 ms after it fired, not after the deadline"
        );
        assert_eq!(due(&toy, Stamp::new(2, 0)), Some((Stamp::new(1, 17), ())));
    }

    #[test]
    fn a_batch_is_every_event_then_every_effect_in_order() {
        let mut toy = Toy::default();
        toy.handle(Stamp::new(1, 0), 0);
        toy.handle(Stamp::new(1, 0), 1);
        let Drained { events, effects } = drain(&mut toy);
        assert_eq!((events, effects), (vec![0, 1], vec![Effect::when_durable(1), Effect::now(2)]));
        assert!(toy.poll_event().is_none() && toy.poll_effect().is_none());
    }
}
