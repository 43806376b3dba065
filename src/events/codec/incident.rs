//! Incident kinds (3, 4): what went wrong on the node, and when it was over.
//!
//! | kind | event | body |
//! | --- | --- | --- |
//! | 3 | incident opened | `[kind, detail]` |
//! | 4 | incident closed | `[kind]` |

use super::{body, read, DecodeError};
use crate::events::incident::{IncidentEvent, IncidentKind};

const OPENED: u8 = 3;
const CLOSED: u8 = 4;
pub(super) const FIRST: u8 = OPENED;
pub(super) const LAST: u8 = CLOSED;

/// (kind, name) of every incident kind.
pub(super) const KINDS: &[(u8, &str)] = &[(OPENED, "incident.opened"), (CLOSED, "incident.closed")];

pub(super) fn name(e: &IncidentEvent) -> &'static str {
    match e {
        IncidentEvent::Opened { .. } => "incident.opened",
        IncidentEvent::Closed { .. } => "incident.closed",
    }
}

pub(super) fn encode(e: &IncidentEvent, buf: &mut Vec<u8>) {
    match e {
        IncidentEvent::Opened { kind, detail } => body(buf, OPENED, &(*kind, *detail)),
        IncidentEvent::Closed { kind } => body(buf, CLOSED, &(*kind,)),
    }
}

pub(super) fn decode(k: u8, rest: &[u8]) -> Result<IncidentEvent, DecodeError> {
    Ok(if k == OPENED {
        let (kind, detail): (IncidentKind, u64) = read(k, rest)?;
        IncidentEvent::Opened { kind, detail }
    } else {
        let (kind,): (IncidentKind,) = read(k, rest)?;
        IncidentEvent::Closed { kind }
    })
}
