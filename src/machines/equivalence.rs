//! Decide, then apply, checked for every machine: replaying the events a machine emitted
//! through [`Fold::apply`], from the state it started from, gives exactly its durable state
//! ([`Machine::state`]), after every step of any scenario (the promise of
//! [`crate::events::Machine`]).
//!
//! [`holds`] is the check, written once for any machine. A scenario is a list of [`Step`]s:
//! something happens in the machine's world after some time (a [`World::act`], which may
//! give the machine inputs), time passes and every timer due fires, or the node restarts
//! from the fold of its log. The machine is driven through the shared driver
//! ([`crate::sim::drive`]): every event it emits is folded into a copy of the starting state,
//! and every effect goes to its [`World`], which answers at once where the machine needs an
//! answer to make progress (a chain twin, counters, a signer). After every step the fold and
//! the machine's state must be equal; a mismatch names the step, its events and both states.
//!
//! Each machine has a [`Scenario`]: its world, a small vocabulary of actions whose
//! [`Arbitrary`] generator is biased so that events really happen, and the kinds of events
//! a run must show. One line of `equivalence!` (at the end of this file) makes it a quickcheck property, which also
//! checks over the run that enough cases emitted events (a property whose cases emit nothing
//! cannot fail) and that every kind the scenario names was seen.

mod babel;
mod billing;
mod exit;
mod incidents;
mod usage;

use crate::events::{Effect, Fold, Machine, Stamp};
use crate::sim::drive::{self, Flow, Shell};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Debug};

/// One step of a scenario. Time only moves forward: an action comes `after_ms` after the
/// previous step, a wait moves the clock by `ms`, a restart starts the next boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<A> {
    /// `after_ms` pass (no timer fires: the shell is late), then the world does `action` and
    /// the machine handles what it learns of it.
    Act { after_ms: u64, action: A },
    /// `ms` pass, and every timer due by then fires in deadline order, each at its deadline
    /// (or at the time already reached, if that is later).
    Wait { ms: u64 },
    /// The node restarts in the next boot: the machine is rebuilt from the fold of its log,
    /// as recovery does. The world goes on.
    Restart,
}

/// What surrounds a machine in a scenario: it turns actions into inputs and carries out
/// effects.
pub trait World<M: Machine> {
    type Action: Arbitrary + Debug;

    /// What `action` does in the world, and the inputs it gives the machine (in order).
    fn act(&mut self, at: Stamp, action: &Self::Action) -> Vec<M::Input>;

    /// Carries out one effect; an answer given at once is handed straight back to the machine.
    fn execute(&mut self, at: Stamp, effect: Effect<M::Effect>) -> Option<M::Input>;
}

/// Every event a run emitted, in order; the first `at_start` were emitted before the first
/// step (a machine may record something as it starts).
#[derive(Debug)]
pub struct Log<E> {
    pub events: Vec<E>,
    pub at_start: usize,
}

/// The most timers one wait may fire: a machine that keeps a deadline in the past fails the
/// check instead of hanging it.
const MAX_FIRINGS_PER_WAIT: usize = 10_000;

/// Drives the machine that `start` builds from `initial` (at `Stamp::new(1, 0)`) through
/// `steps` in `world`, and checks after the start and after every step that the fold of the
/// events emitted so far into `initial` is the machine's state. `start` also rebuilds the
/// machine at a [`Step::Restart`], from the fold.
pub fn holds<M, W>(
    start: &mut impl FnMut(M::State, Stamp) -> M,
    initial: M::State,
    world: &mut W,
    steps: &[Step<W::Action>],
) -> Result<Log<M::Event>, String>
where
    M: Machine,
    M::State: Clone + PartialEq + Debug,
    W: World<M>,
{
    let mut now = Stamp::new(1, 0);
    let mut fold = initial.clone();
    let mut events = Vec::new();
    let mut machine = start(initial, now);
    drive::pump(
        &mut machine,
        now,
        &mut Recorder { fold: &mut fold, events: &mut events, world: &mut *world },
    );
    same("at the start", &fold, machine.state(), &events)?;
    let at_start = events.len();
    for (i, step) in steps.iter().enumerate() {
        let before = events.len();
        let mut shell = Recorder { fold: &mut fold, events: &mut events, world: &mut *world };
        match step {
            Step::Act { after_ms, action } => {
                now = now.plus_ms(*after_ms);
                for input in shell.world.act(now, action) {
                    drive::handle(&mut machine, now, input, &mut shell);
                }
            }
            Step::Wait { ms } => {
                let until = now.plus_ms(*ms);
                let mut fired = 0;
                while let Some((deadline, timer)) = drive::due(&machine, until) {
                    fired += 1;
                    if fired > MAX_FIRINGS_PER_WAIT {
                        return Err(format!(
                            "step {i} ({step:?}): {timer:?} is still due after {fired} firings"
                        ));
                    }
                    now = now.max(deadline);
                    drive::fire(&mut machine, now, timer, &mut shell);
                }
                now = until;
            }
            Step::Restart => {
                now = Stamp::new(now.boot + 1, 0);
                machine = start(shell.fold.clone(), now);
                drive::pump(&mut machine, now, &mut shell);
            }
        }
        same(&format!("after step {i} ({step:?})"), &fold, machine.state(), &events[before..])?;
    }
    Ok(Log { events, at_start })
}

/// The shell of the check: events into the fold and the log, effects to the world.
struct Recorder<'a, M: Machine, W> {
    fold: &'a mut M::State,
    events: &'a mut Vec<M::Event>,
    world: &'a mut W,
}

impl<M: Machine, W: World<M>> Shell<M> for Recorder<'_, M, W> {
    fn record(&mut self, _at: Stamp, event: M::Event) -> Flow {
        self.fold.apply(&event);
        self.events.push(event);
        Flow::Alive
    }

    fn execute(&mut self, at: Stamp, effect: Effect<M::Effect>) -> Option<M::Input> {
        self.world.execute(at, effect)
    }
}

/// `Ok` if the fold is the state; otherwise what differs, readably.
fn same<S: PartialEq + Debug, E: Debug>(when: &str, fold: &S, state: &S, events: &[E]) -> Result<(), String> {
    if fold == state {
        return Ok(());
    }
    let (f, s) = (format!("{fold:#?}"), format!("{state:#?}"));
    let (line, (in_fold, in_state)) = f
        .lines()
        .chain(std::iter::repeat("<end>"))
        .zip(s.lines().chain(std::iter::repeat("<end>")))
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .unwrap_or((0, ("?", "?")));
    Err(format!(
        "{when}: the fold of the emitted events is not the machine's state\n\
         events of this step: {events:?}\n\
         first difference (line {} of the pretty states): fold `{}`, state `{}`\n\
         fold:  {fold:?}\n\
         state: {state:?}",
        line + 1,
        in_fold.trim(),
        in_state.trim()
    ))
}

/// One machine's scenarios: its world, how it starts, what a case looks like and what a run
/// must show.
pub trait Scenario: 'static {
    type Machine: Machine<State: Clone + PartialEq + Debug>;
    type World: World<Self::Machine>;

    /// Cases per run.
    const CASES: u64 = 150;
    /// The most steps in a case.
    const MAX_STEPS: usize = 40;
    /// The most time between two steps, and the longest wait.
    const GAP_MS: u64 = 1_000;
    const WAIT_MS: u64 = 10_000;
    /// Of every hundred steps, about how many are waits and how many restarts (the rest are
    /// actions).
    const WAITS: u64 = 20;
    const RESTARTS: u64 = 3;
    /// The least share of cases (percent) whose steps emitted at least one event.
    const MIN_PERCENT_WITH_EVENTS: u64 = 50;
    /// Kinds of events (see [`Scenario::kind`]) each run must show in at least one case.
    const MUST_SEE: &'static [&'static str];

    fn world() -> Self::World;
    fn initial() -> <Self::Machine as Machine>::State;
    /// The machine as it starts at `at` from a durable state (first start or recovery).
    fn start(state: <Self::Machine as Machine>::State, at: Stamp) -> Self::Machine;
    /// A short name for what an event records.
    fn kind(event: &<Self::Machine as Machine>::Event) -> &'static str;
}

type Action<S> = <<S as Scenario>::World as World<<S as Scenario>::Machine>>::Action;

/// A generated case of scenario `S`.
pub struct Case<S: Scenario> {
    steps: Vec<Step<Action<S>>>,
}

impl<S: Scenario> Clone for Case<S> {
    fn clone(&self) -> Self {
        Self { steps: self.steps.clone() }
    }
}

impl<S: Scenario> Debug for Case<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.steps).finish()
    }
}

impl<S: Scenario> Arbitrary for Case<S> {
    fn arbitrary(g: &mut Gen) -> Self {
        // The longer of two lengths: most cases are long enough for things to happen.
        let len = (usize::arbitrary(g) % (S::MAX_STEPS + 1)).max(usize::arbitrary(g) % (S::MAX_STEPS + 1));
        let steps = (0..len)
            .map(|_| {
                let roll = u64::arbitrary(g) % 100;
                if roll < S::RESTARTS {
                    Step::Restart
                } else if roll < S::RESTARTS + S::WAITS {
                    Step::Wait { ms: u64::arbitrary(g) % (S::WAIT_MS + 1) }
                } else {
                    Step::Act {
                        after_ms: u64::arbitrary(g) % (S::GAP_MS + 1),
                        action: Arbitrary::arbitrary(g),
                    }
                }
            })
            .collect();
        Case { steps }
    }

    /// Fewer steps first (chunks of halving size, then single steps), then smaller steps.
    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let steps = self.steps.clone();
        let n = steps.len();
        let sizes = std::iter::successors((n > 0).then_some(n), |s| (*s > 1).then_some(s / 2));
        let fewer = {
            let steps = steps.clone();
            sizes.flat_map(move |size| {
                let steps = steps.clone();
                (0..n).step_by(size).map(move |from| {
                    let mut s = steps.clone();
                    s.drain(from..(from + size).min(n));
                    Case { steps: s }
                })
            })
        };
        let smaller = (0..n).flat_map(move |i| {
            let steps = steps.clone();
            shrink_step(&steps[i]).map(move |step| {
                let mut s = steps.clone();
                s[i] = step;
                Case { steps: s }
            })
        });
        Box::new(fewer.chain(smaller))
    }
}

fn shrink_step<A: Arbitrary>(step: &Step<A>) -> Box<dyn Iterator<Item = Step<A>>> {
    match step.clone() {
        Step::Act { after_ms, action } => {
            let times = after_ms.shrink().map({
                let action = action.clone();
                move |after_ms| Step::Act { after_ms, action: action.clone() }
            });
            Box::new(times.chain(action.shrink().map(move |action| Step::Act { after_ms, action })))
        }
        Step::Wait { ms } => Box::new(ms.shrink().map(|ms| Step::Wait { ms })),
        Step::Restart => Box::new(std::iter::empty()),
    }
}

/// What a run saw, over its cases.
#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    with_events: u64,
    events: u64,
    /// Per kind of event, the cases that emitted one.
    kinds: BTreeMap<&'static str, u64>,
}

thread_local! {
    /// The tally of the run in progress on this thread (each test has its own thread, and a
    /// run resets it).
    static TALLY: RefCell<Tally> = RefCell::default();
}

fn property<S: Scenario>(case: Case<S>) -> TestResult {
    let mut world = S::world();
    match holds(&mut S::start, S::initial(), &mut world, &case.steps) {
        Ok(log) => {
            let during = &log.events[log.at_start..];
            let kinds: BTreeSet<&'static str> = during.iter().map(S::kind).collect();
            TALLY.with(|t| {
                let mut t = t.borrow_mut();
                t.cases += 1;
                t.with_events += u64::from(!during.is_empty());
                t.events += during.len() as u64;
                for kind in kinds {
                    *t.kinds.entry(kind).or_default() += 1;
                }
            });
            TestResult::passed()
        }
        Err(why) => TestResult::error(why),
    }
}

/// Runs scenario `S` as a quickcheck property, then checks that the run meant something.
pub fn check<S: Scenario>(name: &str) {
    TALLY.with(|t| *t.borrow_mut() = Tally::default());
    QuickCheck::new()
        .tests(S::CASES)
        .max_tests(S::CASES)
        .quickcheck(property::<S> as fn(Case<S>) -> TestResult);
    let tally = TALLY.with(|t| std::mem::take(&mut *t.borrow_mut()));
    eprintln!(
        "{name}: {} cases, {} with events ({}%), {} events; cases per kind: {:?}",
        tally.cases,
        tally.with_events,
        tally.with_events * 100 / tally.cases.max(1),
        tally.events,
        tally.kinds
    );
    assert!(
        tally.cases > 0 && tally.with_events * 100 >= tally.cases * S::MIN_PERCENT_WITH_EVENTS,
        "{name}: only {} of {} cases emitted an event (at least {}% must): the scenarios are too tame",
        tally.with_events,
        tally.cases,
        S::MIN_PERCENT_WITH_EVENTS
    );
    let missing: Vec<&str> = S::MUST_SEE.iter().copied().filter(|k| !tally.kinds.contains_key(k)).collect();
    assert!(missing.is_empty(), "{name}: no case emitted {missing:?}; seen: {:?}", tally.kinds);
}

/// One property per machine: `name: Scenario`.
macro_rules! equivalence {
    ($($name:ident: $scenario:ty),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check::<$scenario>(stringify!($name));
            }
        )*
    };
}

equivalence! {
    usage_state_is_the_fold_of_its_events: usage::Usage,
    billing_state_is_the_fold_of_its_events: billing::Billing,
    exit_state_is_the_fold_of_its_events: exit::Exit,
    exit_user_state_is_the_fold_of_its_events: exit::ExitUser,
    incident_state_is_the_fold_of_its_events: incidents::Incidents,
    routing_trust_is_the_fold_of_its_events: babel::Routing,
}
