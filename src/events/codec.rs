//! The event log's payload encoding, versioned.
//!
//! A payload is one MessagePack positive fixint naming the event kind, followed by the event's
//! body as a MessagePack array (rmp-serde, structs as arrays, smallest integer encodings). The
//! frame around it (flash-layout) carries the schema version; [`decode`] reads every version
//! this build knows and upcasts old ones, and refuses versions newer than
//! [`EVENT_VERSION`] with a clear error rather than guessing.
//!
//! | kind | event | body (v2) |
//! | --- | --- | --- |
//! | 1 | usage accrued | `[[neighbour, destination], tx_bytes, rx_bytes, price_per_byte \| nil]` |
//! | 2 | counter reset | `[[neighbour, destination], tx_reset, rx_reset, tx_counted, rx_counted, tx_observed, rx_observed]` |
//! | 3 | incident opened | `[kind, detail]` |
//! | 4 | incident closed | `[kind]` |
//!
//! Version 1 differs only in kind 1, whose body had no price: `[[neighbour, destination],
//! tx_bytes, rx_bytes]`. It is upcast to an unpriced record (`price_per_byte: None`), which
//! says exactly what v1 knew.

use super::incident::{IncidentEvent, IncidentKind};
use super::usage::{Link, UsageEvent, UsageRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The schema version this build writes.
pub const EVENT_VERSION: u8 = 2;
/// The oldest schema version this build can still read.
pub const OLDEST_EVENT_VERSION: u8 = 1;

/// Every fact that goes to the log, from any machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Usage(UsageEvent),
    Incident(IncidentEvent),
}

impl Event {
    /// Money that would be at risk if this record were lost (base units); the log writer
    /// flushes early when unflushed records carry more than its configured bound.
    pub fn value(&self) -> u128 {
        match self {
            Event::Usage(UsageEvent::Accrued(r)) => r.value(),
            Event::Usage(UsageEvent::CounterReset(_)) | Event::Incident(_) => 0,
        }
    }

    /// Urgent records are flushed at once and may use the flash reserve.
    pub fn is_urgent(&self) -> bool {
        matches!(self, Event::Incident(_))
    }

    /// A short stable name, for traces.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Usage(UsageEvent::Accrued(_)) => "usage.accrued",
            Event::Usage(UsageEvent::CounterReset(_)) => "usage.counter_reset",
            Event::Incident(IncidentEvent::Opened { .. }) => "incident.opened",
            Event::Incident(IncidentEvent::Closed { .. }) => "incident.closed",
        }
    }
}

impl From<UsageEvent> for Event {
    fn from(e: UsageEvent) -> Self {
        Event::Usage(e)
    }
}

impl From<IncidentEvent> for Event {
    fn from(e: IncidentEvent) -> Self {
        Event::Incident(e)
    }
}

/// The fields of an event, compact and stable, for traces (`replay trace`, logs).
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Usage(UsageEvent::Accrued(r)) => {
                write!(f, "{} tx={} rx={} ", r.link, r.tx_bytes, r.rx_bytes)?;
                match r.price_per_byte {
                    Some(p) => write!(f, "price={p}"),
                    None => write!(f, "unpriced"),
                }
            }
            Event::Usage(UsageEvent::CounterReset(r)) => {
                let dirs = match (r.tx_reset, r.rx_reset) {
                    (true, true) => "tx+rx",
                    (true, false) => "tx",
                    (false, true) => "rx",
                    (false, false) => "none",
                };
                write!(
                    f,
                    "{} reset={dirs} counted=tx{}/rx{} observed=tx{}/rx{}",
                    r.link, r.tx_counted, r.rx_counted, r.tx_observed, r.rx_observed
                )
            }
            Event::Incident(IncidentEvent::Opened { kind, detail }) => {
                write!(f, "kind={kind} detail={detail}")
            }
            Event::Incident(IncidentEvent::Closed { kind }) => write!(f, "kind={kind}"),
        }
    }
}

mod kind {
    pub const USAGE_ACCRUED: u8 = 1;
    pub const COUNTER_RESET: u8 = 2;
    pub const INCIDENT_OPENED: u8 = 3;
    pub const INCIDENT_CLOSED: u8 = 4;
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

/// Appends the payload of `event` (current version, [`EVENT_VERSION`]) to `buf`.
pub fn encode(event: &Event, buf: &mut Vec<u8>) {
    match event {
        Event::Usage(UsageEvent::Accrued(r)) => body(buf, kind::USAGE_ACCRUED, r),
        Event::Usage(UsageEvent::CounterReset(r)) => body(buf, kind::COUNTER_RESET, r),
        Event::Incident(IncidentEvent::Opened { kind, detail }) => {
            body(buf, kind::INCIDENT_OPENED, &(*kind, *detail))
        }
        Event::Incident(IncidentEvent::Closed { kind }) => {
            body(buf, kind::INCIDENT_CLOSED, &(*kind,))
        }
    }
}

/// The payload of `event` as a fresh vector.
pub fn encode_to_vec(event: &Event) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    encode(event, &mut buf);
    buf
}

fn body<T: Serialize>(buf: &mut Vec<u8>, kind: u8, value: &T) {
    debug_assert!(kind < 128, "kinds are positive fixints");
    buf.push(kind);
    // Writing into a Vec cannot fail, and every event type serializes (no maps with
    // non-string keys, no unsupported types): an error here is a bug in this module.
    value
        .serialize(&mut rmp_serde::Serializer::new(buf))
        .expect("event bodies always serialize into a Vec");
}

/// Decodes a payload written with schema `version`, upcasting old versions.
pub fn decode(version: u8, payload: &[u8]) -> Result<Event, DecodeError> {
    if version > EVENT_VERSION {
        return Err(DecodeError::NewerVersion {
            found: version,
            supported: EVENT_VERSION,
        });
    }
    if version < OLDEST_EVENT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (&kind, rest) = payload.split_first().ok_or(DecodeError::Empty)?;
    let event = match (version, kind) {
        (_, kind::COUNTER_RESET) => Event::Usage(UsageEvent::CounterReset(read(kind, rest)?)),
        (_, kind::INCIDENT_OPENED) => {
            let (kind, detail): (IncidentKind, u64) = read(kind, rest)?;
            Event::Incident(IncidentEvent::Opened { kind, detail })
        }
        (_, kind::INCIDENT_CLOSED) => {
            let (kind,): (IncidentKind,) = read(kind, rest)?;
            Event::Incident(IncidentEvent::Closed { kind })
        }
        (1, kind::USAGE_ACCRUED) => {
            let v1: UsageRecordV1 = read(kind, rest)?;
            Event::Usage(UsageEvent::Accrued(v1.upcast()))
        }
        (_, kind::USAGE_ACCRUED) => Event::Usage(UsageEvent::Accrued(read(kind, rest)?)),
        (version, kind) => return Err(DecodeError::UnknownKind { version, kind }),
    };
    Ok(event)
}

fn read<T: DeserializeOwned>(kind: u8, mut bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = rmp_serde::Deserializer::new(&mut bytes);
    let value = T::deserialize(&mut de).map_err(|e| DecodeError::Body {
        kind,
        reason: e.to_string(),
    })?;
    if !bytes.is_empty() {
        return Err(DecodeError::Trailing {
            kind,
            bytes: bytes.len(),
        });
    }
    Ok(value)
}

/// Version 1 of kind 1: a usage record without a price.
#[derive(Serialize, Deserialize)]
struct UsageRecordV1 {
    link: Link,
    tx_bytes: u64,
    rx_bytes: u64,
}

impl UsageRecordV1 {
    fn upcast(self) -> UsageRecord {
        UsageRecord {
            link: self.link,
            tx_bytes: self.tx_bytes,
            rx_bytes: self.rx_bytes,
            price_per_byte: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::usage::CounterReset;

    fn accrued(price: Option<u64>) -> Event {
        Event::Usage(UsageEvent::Accrued(UsageRecord {
            link: Link::new(3, 17),
            tx_bytes: 12_000_000,
            rx_bytes: 11_500_000,
            price_per_byte: price,
        }))
    }

    /// (event, exact v2 payload bytes), checked in both directions.
    fn golden() -> Vec<(Event, Vec<u8>)> {
        vec![
            (
                accrued(Some(20)),
                vec![
                    0x01, 0x94, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf,
                    0x79, 0xe0, 0x14,
                ],
            ),
            (
                accrued(None),
                vec![
                    0x01, 0x94, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf,
                    0x79, 0xe0, 0xc0,
                ],
            ),
            (
                Event::Usage(UsageEvent::CounterReset(CounterReset {
                    link: Link::new(1, 2),
                    tx_reset: true,
                    rx_reset: false,
                    tx_counted: 1000,
                    rx_counted: 7,
                    tx_observed: 5,
                    rx_observed: 9,
                })),
                vec![
                    0x02, 0x97, 0x92, 0x01, 0x02, 0xc3, 0xc2, 0xcd, 0x03, 0xe8, 0x07, 0x05, 0x09,
                ],
            ),
            (
                Event::Incident(IncidentEvent::Opened {
                    kind: IncidentKind::FlashFull,
                    detail: 300,
                }),
                vec![0x03, 0x92, 0x01, 0xcd, 0x01, 0x2c],
            ),
            (
                Event::Incident(IncidentEvent::Closed {
                    kind: IncidentKind::LogWriteFailed,
                }),
                vec![0x04, 0x91, 0x02],
            ),
        ]
    }

    #[test]
    fn golden_payloads_encode_exactly() {
        for (event, bytes) in golden() {
            assert_eq!(encode_to_vec(&event), bytes, "{event:?}");
        }
    }

    #[test]
    fn golden_payloads_decode_exactly() {
        for (event, bytes) in golden() {
            assert_eq!(decode(EVENT_VERSION, &bytes), Ok(event));
        }
    }

    #[test]
    fn version_1_usage_records_upcast_to_unpriced() {
        let v1 = [
            0x01, 0x93, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf, 0x79,
            0xe0,
        ];
        assert_eq!(decode(1, &v1), Ok(accrued(None)));
        // The same bytes are not a valid v2 record: v2 requires the price field.
        assert!(matches!(
            decode(2, &v1),
            Err(DecodeError::Body { kind: 1, .. })
        ));
    }

    #[test]
    fn unknown_versions_and_kinds_are_refused() {
        let payload = encode_to_vec(&accrued(Some(1)));
        assert_eq!(
            decode(EVENT_VERSION + 1, &payload),
            Err(DecodeError::NewerVersion {
                found: EVENT_VERSION + 1,
                supported: EVENT_VERSION
            })
        );
        assert_eq!(decode(0, &payload), Err(DecodeError::UnknownVersion(0)));
        assert_eq!(decode(2, &[]), Err(DecodeError::Empty));
        assert_eq!(
            decode(2, &[0x63, 0x90]),
            Err(DecodeError::UnknownKind {
                version: 2,
                kind: 0x63
            })
        );
        let mut long = payload.clone();
        long.push(0);
        assert_eq!(
            decode(2, &long),
            Err(DecodeError::Trailing { kind: 1, bytes: 1 })
        );
        assert!(matches!(
            decode(2, &payload[..6]),
            Err(DecodeError::Body { .. })
        ));
        assert!(matches!(
            decode(2, &[0x03, 0x92, 0x09, 0x01]),
            Err(DecodeError::Body { kind: 3, .. })
        ));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        fn prop(version: u8, bytes: Vec<u8>) -> bool {
            let _ = decode(version, &bytes);
            true
        }
        quickcheck::quickcheck(prop as fn(u8, Vec<u8>) -> bool);
    }
}
