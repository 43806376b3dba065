//! Routing kinds (48, from version 4): the evidence behind trust in routing neighbours.
//!
//! | kind | event | body |
//! | --- | --- | --- |
//! | 48 | routing trust evidence | `[ifindex, neighbour, [address, len], advertised_rtt_us, advertised_loss, sent, received, measured_rtt_us, worse, streak, trust_permille]` |
//!
//! The neighbour is its link-local address (bin 16); the prefix address is bin 4 or 16; loss is
//! in micro-nepers. A version-3 reader refuses a log with this kind as "newer version" rather
//! than misreading it.

use super::{body, read, DecodeError};
use crate::events::routing::RoutingEvent;

const TRUST_EVIDENCE: u8 = 48;
pub(super) const FIRST: u8 = TRUST_EVIDENCE;
pub(super) const LAST: u8 = TRUST_EVIDENCE;

/// (kind, name) of every routing kind.
pub(super) const KINDS: &[(u8, &str)] = &[(TRUST_EVIDENCE, "routing.trust_evidence")];

pub(super) fn name(e: &RoutingEvent) -> &'static str {
    match e {
        RoutingEvent::TrustEvidence(_) => "routing.trust_evidence",
    }
}

pub(super) fn encode(e: &RoutingEvent, buf: &mut Vec<u8>) {
    match e {
        RoutingEvent::TrustEvidence(e) => body(buf, TRUST_EVIDENCE, e),
    }
}

pub(super) fn decode(k: u8, rest: &[u8]) -> Result<RoutingEvent, DecodeError> {
    Ok(RoutingEvent::TrustEvidence(read(k, rest)?))
}
