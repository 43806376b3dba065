//! The event log's payload encoding, versioned.
//!
//! A payload is one MessagePack positive fixint naming the event kind, followed by the event's
//! body as a MessagePack array (rmp-serde, structs as arrays, smallest integer encodings). The
//! frame around it (flash-layout) carries the schema version; [`decode`] reads every version
//! this build knows and upcasts old ones, and refuses versions newer than
//! [`EVENT_VERSION`] with a clear error rather than guessing.
//!
//! Each domain keeps its kinds, their body layouts and their encoding in its own file, next to
//! its kind table: `usage.rs` (1, 2), `incident.rs` (3, 4), `billing.rs` (5, 16 to 29),
//! `exit.rs` (32 to 40), `routing.rs` (48). Kinds are never reused; [`kinds`] lists them all.
//!
//! Versions: 1 had kinds 1 to 4, kind 1 without a price (upcast to an unpriced record); 2 the
//! same kinds with the price; 3 added billing (5, 16 to 29) and exit (32 to 40) kinds; 4 added
//! routing evidence (48) and changed nothing else, so a version-3 reader refuses a log with
//! routing evidence as "newer version" rather than misreading it.

mod billing;
mod display;
mod exit;
mod incident;
mod routing;
mod usage;

use super::billing::BillingEvent;
use super::exit::ExitEvent;
use super::incident::IncidentEvent;
use super::routing::RoutingEvent;
use super::usage::UsageEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The schema version this build writes.
pub const EVENT_VERSION: u8 = 4;
/// The oldest schema version this build can still read.
pub const OLDEST_EVENT_VERSION: u8 = 1;

/// Every fact that goes to the log, from any machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Usage(UsageEvent),
    Billing(BillingEvent),
    Incident(IncidentEvent),
    Exit(ExitEvent),
    Routing(RoutingEvent),
}

impl Event {
    /// Money that would be at risk if this record were lost (base units); the log writer
    /// flushes early when unflushed records carry more than its configured bound.
    pub fn value(&self) -> u128 {
        match self {
            Event::Usage(UsageEvent::Accrued(r)) => r.value(),
            Event::Billing(
                BillingEvent::PaymentIntended { amount, .. }
                | BillingEvent::PaymentReceived { amount, .. }
                | BillingEvent::Forgiven { amount, .. },
            ) => amount.0,
            Event::Exit(e) => e.value(),
            _ => 0,
        }
    }

    /// Urgent records are flushed at once and may use the flash reserve: money that must not
    /// be lost (a payment decided, signed or received; a debt forgiven) and incidents.
    pub fn is_urgent(&self) -> bool {
        if let Event::Exit(e) = self {
            return e.is_urgent();
        }
        matches!(
            self,
            Event::Incident(_)
                | Event::Billing(
                    BillingEvent::PaymentIntended { .. }
                        | BillingEvent::PaymentSigned { .. }
                        | BillingEvent::PaymentReceived { .. }
                        | BillingEvent::Forgiven { .. }
                )
        )
    }

    /// A short stable name, for traces (each domain's kind table names its kinds).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Usage(e) => usage::name(e),
            Event::Billing(e) => billing::name(e),
            Event::Incident(e) => incident::name(e),
            Event::Exit(e) => exit::name(e),
            Event::Routing(e) => routing::name(e),
        }
    }
}

impl From<UsageEvent> for Event {
    fn from(e: UsageEvent) -> Self {
        Event::Usage(e)
    }
}

impl From<super::billing::BillingRecord> for Event {
    fn from(e: super::billing::BillingRecord) -> Self {
        match e {
            super::billing::BillingRecord::Usage(e) => Event::Usage(e),
            super::billing::BillingRecord::Billing(e) => Event::Billing(e),
        }
    }
}

impl From<BillingEvent> for Event {
    fn from(e: BillingEvent) -> Self {
        Event::Billing(e)
    }
}

impl From<ExitEvent> for Event {
    fn from(e: ExitEvent) -> Self {
        Event::Exit(e)
    }
}

impl From<RoutingEvent> for Event {
    fn from(e: RoutingEvent) -> Self {
        Event::Routing(e)
    }
}

impl From<IncidentEvent> for Event {
    fn from(e: IncidentEvent) -> Self {
        Event::Incident(e)
    }
}

/// Every kind this build writes: (number, name), from the domains' tables.
pub fn kinds() -> impl Iterator<Item = (u8, &'static str)> {
    usage::KINDS
        .iter()
        .chain(incident::KINDS)
        .chain(billing::KINDS)
        .chain(exit::KINDS)
        .chain(routing::KINDS)
        .copied()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by a newer build; this one must not guess what it means.
    NewerVersion {
        found: u8,
        supported: u8,
    },
    /// Version 0, or older than anything this build can upcast.
    UnknownVersion(u8),
    Empty,
    UnknownKind {
        version: u8,
        kind: u8,
    },
    /// The body did not decode as the kind says.
    Body {
        kind: u8,
        reason: String,
    },
    /// Bytes left over after the body.
    Trailing {
        kind: u8,
        bytes: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NewerVersion { found, supported } => write!(
                f,
                "event version {found} is newer than this build supports ({supported}); upgrade lastmile to read it"
            ),
            Self::UnknownVersion(v) => write!(f, "event version {v} is not a known version"),
            Self::Empty => write!(f, "empty event payload"),
            Self::UnknownKind { version, kind } => {
                write!(f, "unknown event kind {kind} in version {version}")
            }
            Self::Body { kind, reason } => write!(f, "event kind {kind}: malformed body: {reason}"),
            Self::Trailing { kind, bytes } => {
                write!(f, "event kind {kind}: {bytes} unexpected bytes after the body")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Signed transaction bytes as MessagePack bin (a plain `Vec<u8>` would be an array of ints).
pub(super) struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

pub(super) struct RawBuf(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for RawBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RawBuf, E> {
                Ok(RawBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<RawBuf, E> {
                Ok(RawBuf(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Appends the payload of `event` (current version, [`EVENT_VERSION`]) to `buf`.
pub fn encode(event: &Event, buf: &mut Vec<u8>) {
    match event {
        Event::Usage(e) => usage::encode(e, buf),
        Event::Billing(e) => billing::encode(e, buf),
        Event::Incident(e) => incident::encode(e, buf),
        Event::Exit(e) => exit::encode(e, buf),
        Event::Routing(e) => routing::encode(e, buf),
    }
}

/// The payload of `event` as a fresh vector.
pub fn encode_to_vec(event: &Event) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    encode(event, &mut buf);
    buf
}

/// `kind`, then `value` as MessagePack.
fn body<T: Serialize>(buf: &mut Vec<u8>, kind: u8, value: &T) {
    debug_assert!(kind < 128, "kinds are positive fixints");
    buf.push(kind);
    // Writing into a Vec cannot fail, and every event type serializes (no maps with
    // non-string keys, no unsupported types): an error here is a bug in this module.
    value.serialize(&mut rmp_serde::Serializer::new(buf)).expect("event bodies always serialize into a Vec");
}

/// Decodes a payload written with schema `version`, upcasting old versions.
pub fn decode(version: u8, payload: &[u8]) -> Result<Event, DecodeError> {
    if version > EVENT_VERSION {
        return Err(DecodeError::NewerVersion { found: version, supported: EVENT_VERSION });
    }
    if version < OLDEST_EVENT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (&kind, rest) = payload.split_first().ok_or(DecodeError::Empty)?;
    let event = match (version, kind) {
        (_, usage::FIRST..=usage::LAST) => Event::Usage(usage::decode(version, kind, rest)?),
        (_, incident::FIRST..=incident::LAST) => Event::Incident(incident::decode(kind, rest)?),
        (3.., exit::FIRST..=exit::LAST) => Event::Exit(exit::decode(kind, rest)?),
        (4.., routing::FIRST..=routing::LAST) => Event::Routing(routing::decode(kind, rest)?),
        (3.., billing::FIRST..=billing::LAST) => Event::Billing(billing::decode(version, kind, rest)?),
        (version, kind) => return Err(DecodeError::UnknownKind { version, kind }),
    };
    Ok(event)
}

/// Reads a whole body of type `T`; bytes left over are an error.
fn read<T: DeserializeOwned>(kind: u8, mut bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = rmp_serde::Deserializer::new(&mut bytes);
    let value = T::deserialize(&mut de).map_err(|e| DecodeError::Body { kind, reason: e.to_string() })?;
    if !bytes.is_empty() {
        return Err(DecodeError::Trailing { kind, bytes: bytes.len() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
