//! The usage machine in a kernel of byte counters: traffic, reboots that reset counters,
//! readings (asked for by the poll timer, answered at once, or read by the shell on its own)
//! and price changes.

use super::{Scenario, World};
use crate::events::usage::{CounterSample, Link, UsageEffect, UsageEvent, UsageInput};
use crate::events::{Effect, Stamp};
use crate::machines::usage::{UsageConfig, UsageLedger, UsageMachine};
use quickcheck::{Arbitrary, Gen};
use std::collections::BTreeMap;

/// Three links: two neighbours, one of them with two destinations.
pub(super) fn link(n: u8) -> Link {
    [Link::new(1, 100), Link::new(2, 100), Link::new(1, 200)][usize::from(n % 3)]
}

/// The kernel's cumulative tx and rx counters per link.
#[derive(Debug, Default)]
pub(super) struct Kernel {
    counters: BTreeMap<Link, (u64, u64)>,
}

impl Kernel {
    pub fn carry(&mut self, link: Link, tx: u64, rx: u64) {
        let c = self.counters.entry(link).or_default();
        c.0 += tx;
        c.1 += rx;
    }

    /// A reboot of the router: the counters that reset start again from zero.
    pub fn reset(&mut self, link: Link, tx: bool, rx: bool) {
        let c = self.counters.entry(link).or_default();
        if tx {
            c.0 = 0;
        }
        if rx {
            c.1 = 0;
        }
    }

    pub fn read(&self) -> Vec<CounterSample> {
        self.counters.iter().map(|(l, c)| CounterSample { link: *l, tx_bytes: c.0, rx_bytes: c.1 }).collect()
    }
}

#[derive(Clone, Debug)]
pub(super) enum UsageAction {
    Traffic {
        link: u8,
        tx: u16,
        rx: u16,
    },
    Reset {
        link: u8,
        tx: bool,
        rx: bool,
    },
    /// The shell reads the counters on its own.
    Read,
    Price {
        link: u8,
        price: Option<u8>,
    },
}

impl Arbitrary for UsageAction {
    fn arbitrary(g: &mut Gen) -> Self {
        let link = u8::arbitrary(g) % 3;
        match u8::arbitrary(g) % 10 {
            0..=4 => UsageAction::Traffic { link, tx: u16::arbitrary(g), rx: u16::arbitrary(g) },
            5 => UsageAction::Reset { link, tx: bool::arbitrary(g), rx: bool::arbitrary(g) },
            6 | 7 => UsageAction::Read,
            _ => UsageAction::Price { link, price: Option::<u8>::arbitrary(g).map(|p| p % 5) },
        }
    }
}

impl World<UsageMachine> for Kernel {
    type Action = UsageAction;

    fn act(&mut self, _at: Stamp, action: &UsageAction) -> Vec<UsageInput> {
        match *action {
            UsageAction::Traffic { link: l, tx, rx } => {
                self.carry(link(l), tx.into(), rx.into());
                vec![]
            }
            UsageAction::Reset { link: l, tx, rx } => {
                self.reset(link(l), tx, rx);
                vec![]
            }
            UsageAction::Read => vec![UsageInput::Counters(self.read())],
            UsageAction::Price { link: l, price } => {
                vec![UsageInput::PriceSelected { link: link(l), price_per_byte: price.map(u64::from) }]
            }
        }
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<UsageEffect>) -> Option<UsageInput> {
        match effect.action {
            UsageEffect::ReadCounters => Some(UsageInput::Counters(self.read())),
            UsageEffect::Report(_) => None,
        }
    }
}

pub(super) struct Usage;

impl Scenario for Usage {
    type Machine = UsageMachine;
    type World = Kernel;

    const MUST_SEE: &'static [&'static str] = &["Accrued", "CounterReset"];

    fn world() -> Kernel {
        Kernel::default()
    }

    fn initial() -> UsageLedger {
        UsageLedger::default()
    }

    fn start(state: UsageLedger, at: Stamp) -> UsageMachine {
        UsageMachine::new(UsageConfig { poll_ms: 1_000, window_ms: 5_000 }, state, at)
    }

    fn kind(event: &UsageEvent) -> &'static str {
        match event {
            UsageEvent::Accrued(_) => "Accrued",
            UsageEvent::CounterReset(_) => "CounterReset",
        }
    }
}
