//! Pure, sans-IO state machines (see [`crate::events::Machine`] for the contract), and
//! [`NodeState`]: the durable state of a whole node, which is the fold of its event log and
//! what snapshots hold.

pub mod babel;
pub mod billing;
pub mod counter;
pub mod discovery;
#[cfg(test)]
mod equivalence;
pub mod exit;
pub mod incidents;
pub mod route_sync;
pub mod usage;

use crate::events::{Event, Fold, Stamp};
use billing::BillingLedger;
use exit::ExitLedger;
use incidents::IncidentLedger;
use serde::{Deserialize, Serialize};
use std::fmt;
use usage::UsageLedger;

/// Every machine's durable state. Recovery is: newest snapshot of this, then `apply` of every
/// event after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub usage: UsageLedger,
    pub billing: BillingLedger,
    pub incidents: IncidentLedger,
    /// Added in snapshot version 3 after it was first written: older snapshots decode with an
    /// empty exit ledger, which is what they knew.
    #[serde(default)]
    pub exit: ExitLedger,
    /// Added in snapshot version 4: trust in routing neighbours.
    #[serde(default)]
    pub routing: babel::TrustLedger,
}

impl Fold for NodeState {
    type Event = Event;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Usage(e) => {
                self.usage.apply(e);
                self.billing.apply_usage(e);
            }
            Event::Billing(e) => self.billing.apply_billing(e),
            Event::Incident(e) => self.incidents.apply(e),
            Event::Exit(e) => self.exit.apply(e),
            Event::Routing(e) => self.routing.apply(e),
        }
    }
}

/// A machine whose events the log refused brings its durable state back in line with the log.
///
/// When the log cannot take an event (the flash and the backlog are full, or the record cannot
/// be framed), the effects held behind it are dropped, never released, and the machine that
/// emitted it is told with the node's durable state as the log will have it: every event the
/// log took or still holds in order, none that it refused. Everything the machine emitted
/// after the refused event, until it has resynced, is refused too: it was decided on a state
/// that included the refused event. The machine replaces its durable state with its part of
/// `durable` and re-derives what depends on it, as if that part had been recovered at start;
/// soft state (readings, prices, timers) stays. What was lost is decided again: usage not
/// recorded is still in the kernel counters, a payment not recorded is owed again.
pub trait Resync {
    fn resync(&mut self, at: Stamp, durable: &NodeState);
}

/// The schema version of snapshot bytes; bump it when [`NodeState`]'s shape changes.
pub const SNAPSHOT_VERSION: u8 = 4;
/// The oldest snapshot version this build reads. Version 2 lacks fields that version 3 added
/// with defaults (`Advertised::before`, `BillingLedger::chain_met`), and version 3 lacks the
/// routing trust that version 4 added with a default, so both decode as they are; version 1 predates billing and is refused (recovery then needs the log from seq 1).
pub const OLDEST_SNAPSHOT_VERSION: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    Empty,
    Version { found: u8, supported: u8 },
    Body(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty snapshot"),
            Self::Version { found, supported } => {
                write!(f, "snapshot version {found} is not supported (this build reads {supported})")
            }
            Self::Body(reason) => write!(f, "malformed snapshot: {reason}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Why a snapshot or a log record cannot be folded into a [`NodeState`]: the node refuses to
/// start on it, and `replay` says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldError {
    Snapshot(SnapshotError),
    Record { seq: u64, error: crate::events::DecodeError },
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Snapshot(e) => write!(f, "snapshot: {e}"),
            Self::Record { seq, error } => write!(f, "event log record #{seq}: {error}"),
        }
    }
}

impl std::error::Error for FoldError {}

impl NodeState {
    /// Decodes log record `seq` (event version `version`) and folds it in. The one way
    /// recovery and `replay` read records.
    pub fn apply_record(&mut self, seq: u64, version: u8, payload: &[u8]) -> Result<(), FoldError> {
        let event = crate::events::codec::decode(version, payload)
            .map_err(|error| FoldError::Record { seq, error })?;
        self.apply(&event);
        Ok(())
    }

    /// [`Self::decode_snapshot`] as a [`FoldError`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, FoldError> {
        Self::decode_snapshot(bytes).map_err(FoldError::Snapshot)
    }

    /// Snapshot bytes: the version, then the state in MessagePack.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut buf = vec![SNAPSHOT_VERSION];
        // Serializing plain structs, vectors and integers into a Vec cannot fail.
        self.serialize(&mut rmp_serde::Serializer::new(&mut buf))
            .expect("node state always serializes into a Vec");
        buf
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
        if !(OLDEST_SNAPSHOT_VERSION..=SNAPSHOT_VERSION).contains(&version) {
            return Err(SnapshotError::Version { found: version, supported: SNAPSHOT_VERSION });
        }
        rmp_serde::from_slice(body).map_err(|e| SnapshotError::Body(e.to_string()))
    }
}

/// Serde helper: a map with structured keys as a list of pairs, so the same state encodes to
/// MessagePack and to JSON (whose keys must be strings).
pub(crate) mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::incident::{IncidentEvent, IncidentKind};
    use crate::events::usage::{Link, UsageEvent, UsageRecord};

    #[test]
    fn snapshots_round_trip_and_refuse_other_versions() {
        let mut state = NodeState::default();
        state.apply(&Event::Usage(UsageEvent::Accrued(UsageRecord {
            link: Link::new(1, 2),
            tx_bytes: 5,
            rx_bytes: 6,
            price_per_byte: Some(1),
        })));
        state.apply(&Event::Incident(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 9 }));
        let bytes = state.encode_snapshot();
        assert_eq!(NodeState::decode_snapshot(&bytes), Ok(state.clone()));
        let mut newer = bytes.clone();
        newer[0] = SNAPSHOT_VERSION + 1;
        assert_eq!(
            NodeState::decode_snapshot(&newer),
            Err(SnapshotError::Version { found: SNAPSHOT_VERSION + 1, supported: SNAPSHOT_VERSION })
        );
        assert_eq!(NodeState::decode_snapshot(&[]), Err(SnapshotError::Empty));
        assert!(matches!(NodeState::decode_snapshot(&bytes[..bytes.len() - 2]), Err(SnapshotError::Body(_))));
        // The same state renders as JSON for `replay state --json`, and reads back.
        let json = serde_json::to_value(&state).expect("a state renders as JSON");
        assert_eq!(json["usage"]["links"][0][0], serde_json::json!({ "neighbour": 1, "destination": 2 }));
        assert_eq!(
            (
                json["usage"]["links"][0][1]["tx_total"].as_u64(),
                json["usage"]["links"][0][1]["rx_total"].as_u64()
            ),
            (Some(5), Some(6))
        );
        assert_eq!(json["incidents"]["open"], serde_json::json!([[u8::from(IncidentKind::FlashFull), 9]]));
        assert_eq!(serde_json::from_value::<NodeState>(json).expect("reads back"), state);
    }

    #[test]
    fn snapshots_written_before_the_exit_ledger_decode_with_an_empty_one() {
        use crate::events::chain::Address;
        use crate::events::exit::ExitEvent;
        let mut state = NodeState::default();
        state.apply(&Event::Incident(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 9 }));
        // What versions 2 and 3 wrote before the exit ledger: the same array, one field short.
        for version in [2, 3] {
            let mut old = vec![version];
            (&state.usage, &state.billing, &state.incidents)
                .serialize(&mut rmp_serde::Serializer::new(&mut old))
                .expect("encodes");
            assert_eq!(NodeState::decode_snapshot(&old), Ok(state.clone()));
        }
        state.apply(&Event::Exit(ExitEvent::Bound { exit: Address([3; 20]) }));
        assert!(state.exit.exits[&Address([3; 20])].bound);
        assert_eq!(NodeState::decode_snapshot(&state.encode_snapshot()), Ok(state));
    }
}
