//! The fold of incident events: which incidents are open, and how many were ever opened.

use crate::events::incident::{IncidentEvent, IncidentKind};
use crate::events::Fold;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
