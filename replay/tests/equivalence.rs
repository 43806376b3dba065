//! Replay equivalence, end to end through flash: the usage machine is driven with arbitrary
//! inputs (traffic, counter reads, counter resets, price changes, window timeouts, daemon
//! restarts), every event it emits goes to a real `Store`, a snapshot is taken at an
//! arbitrary point, and then
//!
//! live ledger == `replay state --json` (snapshot + tail) == fold of the log from seq 1.

mod common;

use std::collections::BTreeMap;

use common::*;
use lastmile::events::usage::{CounterSample, Link, UsageEffect, UsageEvent, UsageInput, UsageTimer};
use lastmile::events::{Effect, Event, Machine, Stamp};
use lastmile::machines::usage::{UsageConfig, UsageLedger, UsageMachine};
use lastmile::machines::NodeState;
use lastmile::sim::drive::{self, Flow};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use replay::state::{fold as fold_dir, Start};
use replay::DataDir;

#[derive(Clone, Debug)]
enum Step {
    Traffic { link: u8, tx: u32, rx: u32 },
    Read,
    Reset { link: u8, tx: bool, rx: bool },
    Price { link: u8, price: Option<u8> },
    Window,
    Restart,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        let link = u8::arbitrary(g) % 3;
        match u8::arbitrary(g) % 12 {
            0..=3 => Step::Traffic { link, tx: u32::arbitrary(g) % 100_000, rx: u32::arbitrary(g) % 100_000 },
            4..=6 => Step::Read,
            7 => Step::Reset { link, tx: bool::arbitrary(g), rx: bool::arbitrary(g) },
            8 => Step::Price { link, price: Option::<u8>::arbitrary(g) },
            9 | 10 => Step::Window,
            _ => Step::Restart,
        }
    }
}

fn link_of(n: u8) -> Link {
    Link::new(u32::from(n), 100 + u32::from(n))
}

/// The machine, the simulated kernel counters, and the store its events go to.
struct Node {
    machine: UsageMachine,
    counters: BTreeMap<Link, (u64, u64)>,
    now: Stamp,
    /// Every event appended so far, folded: what a snapshot holds.
    folded: NodeState,
    last_seq: u64,
}

impl Node {
    fn step(&mut self, step: &Step, store: &mut flash_layout::Store<flash_layout::DirStorage>) {
        self.now = self.now.plus_ms(1_000);
        match *step {
            Step::Traffic { link, tx, rx } => {
                let c = self.counters.entry(link_of(link)).or_default();
                c.0 += u64::from(tx);
                c.1 += u64::from(rx);
            }
            Step::Read => {
                let samples = self
                    .counters
                    .iter()
                    .map(|(l, c)| CounterSample { link: *l, tx_bytes: c.0, rx_bytes: c.1 })
                    .collect();
                self.machine.handle(self.now, UsageInput::Counters(samples));
            }
            Step::Reset { link, tx, rx } => {
                let c = self.counters.entry(link_of(link)).or_default();
                if tx {
                    c.0 = 0;
                }
                if rx {
                    c.1 = 0;
                }
            }
            Step::Price { link, price } => self.machine.handle(
                self.now,
                UsageInput::PriceSelected { link: link_of(link), price_per_byte: price.map(u64::from) },
            ),
            Step::Window => self.machine.handle_timeout(self.now, UsageTimer::Window),
            Step::Restart => {
                self.now = Stamp::new(self.now.boot + 1, 0);
                let ledger = self.machine.state().clone();
                self.machine = UsageMachine::new(UsageConfig::default(), ledger, self.now);
            }
        }
        let mut shell = ToStore { store, folded: &mut self.folded, last_seq: &mut self.last_seq };
        drive::pump(&mut self.machine, self.now, &mut shell);
    }
}

/// Every event to the store and into the fold of what it holds; effects are dropped (the
/// counters are read by the steps).
struct ToStore<'a> {
    store: &'a mut flash_layout::Store<flash_layout::DirStorage>,
    folded: &'a mut NodeState,
    last_seq: &'a mut u64,
}

impl drive::Shell<UsageMachine> for ToStore<'_> {
    fn record(&mut self, _at: Stamp, event: UsageEvent) -> Flow {
        let event = Event::Usage(event);
        *self.last_seq = append(self.store, &event);
        lastmile::events::Fold::apply(self.folded, &event);
        Flow::Alive
    }

    fn execute(&mut self, _at: Stamp, _effect: Effect<UsageEffect>) -> Option<UsageInput> {
        None
    }
}

fn prop(steps: Vec<Step>, snapshot_at: usize) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open_store(tmp.path(), true);
    let mut node = Node {
        machine: UsageMachine::new(UsageConfig::default(), UsageLedger::default(), Stamp::new(1, 0)),
        counters: BTreeMap::new(),
        now: Stamp::new(1, 0),
        folded: NodeState::default(),
        last_seq: 0,
    };
    let cut = snapshot_at % (steps.len() + 1);
    let mut snapshot_seq = None;
    for (i, step) in steps.iter().enumerate() {
        if i == cut && node.last_seq > 0 {
            store.snapshot(node.last_seq, &node.folded.encode_snapshot()).unwrap();
            snapshot_seq = Some(node.last_seq);
        }
        node.step(step, &mut store);
    }
    store.flush().unwrap();
    drop(store);
    let live = node.machine.state().clone();

    let run = replay_in(tmp.path(), "state", &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let replayed: UsageLedger = serde_json::from_value(v["state"]["usage"].clone()).unwrap();
    assert_eq!(v["seq"].as_u64(), Some(node.last_seq));
    assert_eq!(v["snapshot_seq"].as_u64(), snapshot_seq);

    let dir = DataDir::open(tmp.path()).unwrap();
    let from_start = fold_dir(&dir, None, Start::FirstRecord).unwrap();
    assert_eq!(from_start.snapshot_seq, None);
    replayed == live && from_start.state.usage == live && from_start.state == node.folded
}

#[test]
fn live_state_equals_snapshot_plus_tail_equals_fold_from_seq_1() {
    // Up to ~200 steps: a few dozen records, several segments, a snapshot in most cases.
    QuickCheck::new().rng(Gen::new(200)).tests(40).quickcheck(prop as fn(Vec<Step>, usize) -> bool);
}
