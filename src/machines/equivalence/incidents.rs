//! The incident machine: conditions seen to hold (again and again, with changing details) and
//! seen to be over. No effects, no timers.

use super::{Scenario, World};
use crate::events::incident::{IncidentEvent, IncidentInput, IncidentKind};
use crate::events::{Effect, Stamp};
use crate::machines::incidents::{IncidentLedger, IncidentMachine};
use quickcheck::{Arbitrary, Gen};
use std::convert::Infallible;

/// What the journal observed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Observed(IncidentInput);

impl Arbitrary for Observed {
    fn arbitrary(g: &mut Gen) -> Self {
        let kind = *g.choose(&[IncidentKind::FlashFull, IncidentKind::LogWriteFailed]).expect("two kinds");
        Observed(if bool::arbitrary(g) {
            IncidentInput::Holds { kind, detail: u64::from(u8::arbitrary(g) % 4) }
        } else {
            IncidentInput::Cleared { kind }
        })
    }
}

/// The journal, passing on what it observed.
pub(super) struct Journal;

impl World<IncidentMachine> for Journal {
    type Action = Observed;

    fn act(&mut self, _at: Stamp, action: &Observed) -> Vec<IncidentInput> {
        vec![action.0]
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<Infallible>) -> Option<IncidentInput> {
        match effect.action {}
    }
}

pub(super) struct Incidents;

impl Scenario for Incidents {
    type Machine = IncidentMachine;
    type World = Journal;

    const WAITS: u64 = 5;
    const MUST_SEE: &'static [&'static str] = &["Opened", "Closed"];

    fn world() -> Journal {
        Journal
    }

    fn initial() -> IncidentLedger {
        IncidentLedger::default()
    }

    fn start(state: IncidentLedger, _at: Stamp) -> IncidentMachine {
        IncidentMachine::new(state)
    }

    fn kind(event: &IncidentEvent) -> &'static str {
        match event {
            IncidentEvent::Opened { .. } => "Opened",
            IncidentEvent::Closed { .. } => "Closed",
        }
    }
}
