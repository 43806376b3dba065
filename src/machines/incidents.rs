//! Incidents: the fold of incident events (which are open, how many were ever opened), and the
//! machine that decides when one opens and closes from what the node observes.
//!
//! The journal observes the flash (the budget exhausted even after compaction, a write or
//! fsync failing, and each condition ending) and hands the observations to an
//! [`IncidentMachine`]; the machine decides what goes on the log, once per incident, and the
//! journal records it. The recovery machine will take these observations over (and repair).

use crate::events::incident::{IncidentEvent, IncidentInput, IncidentKind};
use crate::events::{Fold, Machine, Outbox, Stamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentLedger {
    /// Open incidents and the detail they were opened with.
    #[serde(with = "crate::machines::pairs")]
    pub open: BTreeMap<IncidentKind, u64>,
    pub opened_total: u64,
}

impl Fold for IncidentLedger {
    type Event = IncidentEvent;

    fn apply(&mut self, event: &IncidentEvent) {
        match event {
            IncidentEvent::Opened { kind, detail } => {
                self.open.insert(*kind, *detail);
                self.opened_total += 1;
            }
            IncidentEvent::Closed { kind } => {
                self.open.remove(kind);
            }
        }
    }
}

/// Opens an incident the first time its condition is seen to hold, closes it when it is seen
/// to be over; repeats change nothing. No effects and no timers.
#[derive(Debug, Default)]
pub struct IncidentMachine {
    ledger: IncidentLedger,
    out: Outbox<IncidentEvent, Infallible>,
}

impl IncidentMachine {
    /// A machine resuming from `ledger` (recovered from the log).
    pub fn new(ledger: IncidentLedger) -> Self {
        Self { ledger, out: Outbox::new() }
    }

    /// Whether the incident of `kind` is open.
    pub fn is_open(&self, kind: IncidentKind) -> bool {
        self.ledger.open.contains_key(&kind)
    }

    /// Replaces the durable state (an incident event that did not reach the log).
    pub fn resync(&mut self, ledger: IncidentLedger) {
        self.ledger = ledger;
    }

    fn emit(&mut self, event: IncidentEvent) {
        self.out.emit(&mut self.ledger, event);
    }
}

impl Machine for IncidentMachine {
    type Input = IncidentInput;
    type Event = IncidentEvent;
    type Effect = Infallible;
    type Timer = Infallible;
    type State = IncidentLedger;

    fn handle(&mut self, _at: Stamp, input: IncidentInput) {
        match input {
            IncidentInput::Holds { kind, detail } if !self.is_open(kind) => {
                self.emit(IncidentEvent::Opened { kind, detail })
            }
            IncidentInput::Cleared { kind } if self.is_open(kind) => {
                self.emit(IncidentEvent::Closed { kind })
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, _at: Stamp, timer: Infallible) {
        match timer {}
    }

    fn state(&self) -> &IncidentLedger {
        &self.ledger
    }

    fn outbox(&mut self) -> &mut Outbox<IncidentEvent, Infallible> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, Infallible)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_opens_once_and_closes_once() {
        let mut m = IncidentMachine::default();
        let at = Stamp::new(1, 0);
        let full = IncidentInput::Holds { kind: IncidentKind::FlashFull, detail: 900 };
        m.handle(at, full);
        m.handle(at, IncidentInput::Holds { kind: IncidentKind::FlashFull, detail: 950 });
        m.handle(at, IncidentInput::Cleared { kind: IncidentKind::LogWriteFailed });
        assert_eq!(
            m.poll_event(),
            Some(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 900 })
        );
        assert_eq!(m.poll_event(), None, "a repeat, and the end of what was never open, change nothing");
        m.handle(at, IncidentInput::Cleared { kind: IncidentKind::FlashFull });
        m.handle(at, IncidentInput::Cleared { kind: IncidentKind::FlashFull });
        assert_eq!(m.poll_event(), Some(IncidentEvent::Closed { kind: IncidentKind::FlashFull }));
        assert_eq!(m.poll_event(), None);
        assert_eq!((m.state().opened_total, m.state().open.len()), (1, 0));
    }
}
