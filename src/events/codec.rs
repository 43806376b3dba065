//! The event log's payload encoding, versioned.
//!
//! A payload is one MessagePack positive fixint naming the event kind, followed by the event's
//! body as a MessagePack array (rmp-serde, structs as arrays, smallest integer encodings). The
//! frame around it (flash-layout) carries the schema version; [`decode`] reads every version
//! this build knows and upcasts old ones, and refuses versions newer than
//! [`EVENT_VERSION`] with a clear error rather than guessing.
//!
//! | kind | event | body (v3) |
//! | --- | --- | --- |
//! | 1 | usage accrued | `[[neighbour, destination], tx_bytes, rx_bytes, tx_price \| nil, rx_price \| nil]` |
//! | 2 | counter reset | `[[neighbour, destination], tx_reset, rx_reset, tx_counted, rx_counted, tx_observed, rx_observed]` |
//! | 3 | incident opened | `[kind, detail]` |
//! | 4 | incident closed | `[kind]` |
//! | 5 | price advertised (billing) | `[[neighbour, destination], price]` |
//! | 16 | neighbour bound | `[neighbour, address]` |
//! | 17 | fee set | `[fee_per_byte]` |
//! | 18 | thresholds set | `[pay, enforce]` |
//! | 19 | payment intended | `[id, neighbour, to, amount]` |
//! | 20 | payment signed | `[id, nonce, tx_hash, raw]` |
//! | 21 | payment confirmed | `[id, block]` |
//! | 22 | payment failed | `[id, failure, nonce_used]` |
//! | 23 | payment received | `[neighbour, tx_hash, log_index, amount, block]` |
//! | 24 | incoming scanned | `[to_block]` |
//! | 25 | credit applied | `[neighbour, amount]` |
//! | 26 | forgiven | `[neighbour, amount, reason]` |
//! | 27 | enforcement changed | `[neighbour, level]` |
//! | 28 | identity set | `[address]` |
//! | 29 | exit due | `[neighbour, amount_due]` |
//! | 32 | exit prices set | `[user, exit_price, path_price]` |
//! | 33 | exit accrued | `[user, download_bytes, upload_bytes, exit_price, path_price]` |
//! | 34 | exit counter reset | `[user, download_reset, upload_reset, download_counted, upload_counted, download_observed, upload_observed]` |
//! | 35 | exit statement issued | `[user, exit, seq, download_bytes, upload_bytes, amount_due]` |
//! | 36 | exit statement signed | `[user, seq, signature]` |
//! | 37 | exit bound (user side) | `[exit]` |
//! | 38 | exit quoted (user side) | `[exit, exit_price, path_price]` |
//! | 39 | exit statement accepted | `[[user, exit, seq, download_bytes, upload_bytes, amount_due], own_rx, own_tx]` |
//! | 40 | exit statement disputed | `[exit, seq, reason, by]` |
//! | 48 | routing trust evidence | `[ifindex, neighbour, [address, len], advertised_rtt_us, advertised_loss, sent, received, measured_rtt_us, worse, streak, trust_permille]` |
//!
//! Addresses (20 bytes), hashes (32) and signed transactions are MessagePack bin; amounts are
//! integers when they fit in 64 bits, else 16 big-endian bytes (see [`super::chain::Amount`]).
//! Statement signatures are bin 65 (`r ‖ s ‖ v`); `by` in a dispute is an amount-like u128.
//! The exit kinds (32 to 40) were added to version 3 before it was released. Version 4 adds
//! kind 48 and changes nothing else, so a version-3 reader refuses a log with routing evidence
//! as "newer version" rather than misreading it. The routing neighbour is its link-local address (bin 16); the prefix address is bin 4 or 16
//! and loss is in micro-nepers.
//!
//! Version 2 had kinds 1 to 4 only, with the same layouts. Version 1 differs in kind 1, whose
//! body had no price: `[[neighbour, destination], tx_bytes, rx_bytes]`. It is upcast to an
//! unpriced record (`price_per_byte: None`), which says exactly what v1 knew.

use super::babel::BabelEvent;
use super::billing::{BillingEvent, Enforcement, PaymentFailure, Thresholds};
use super::chain::{Address, Amount, PaymentId, TxHash};
use super::exit::{DisputeReason, ExitEvent, Signature, Statement};
use super::incident::{IncidentEvent, IncidentKind};
use super::usage::{Link, NeighbourId, UsageEvent, UsageRecord};
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
    Routing(BabelEvent),
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

    /// A short stable name, for traces.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Usage(UsageEvent::Accrued(_)) => "usage.accrued",
            Event::Usage(UsageEvent::CounterReset(_)) => "usage.counter_reset",
            Event::Billing(e) => match e {
                BillingEvent::IdentitySet { .. } => "billing.identity_set",
                BillingEvent::NeighbourBound { .. } => "billing.neighbour_bound",
                BillingEvent::FeeSet { .. } => "billing.fee_set",
                BillingEvent::PriceAdvertised { .. } => "billing.price_advertised",
                BillingEvent::ThresholdsSet(_) => "billing.thresholds_set",
                BillingEvent::PaymentIntended { .. } => "billing.payment_intended",
                BillingEvent::PaymentSigned { .. } => "billing.payment_signed",
                BillingEvent::PaymentConfirmed { .. } => "billing.payment_confirmed",
                BillingEvent::PaymentFailed { .. } => "billing.payment_failed",
                BillingEvent::PaymentReceived { .. } => "billing.payment_received",
                BillingEvent::IncomingScanned { .. } => "billing.incoming_scanned",
                BillingEvent::CreditApplied { .. } => "billing.credit_applied",
                BillingEvent::Forgiven { .. } => "billing.forgiven",
                BillingEvent::EnforcementChanged { .. } => "billing.enforcement_changed",
                BillingEvent::ExitDue { .. } => "billing.exit_due",
            },
            Event::Incident(IncidentEvent::Opened { .. }) => "incident.opened",
            Event::Incident(IncidentEvent::Closed { .. }) => "incident.closed",
            Event::Exit(e) => match e {
                ExitEvent::PricesSet { .. } => "exit.prices_set",
                ExitEvent::Accrued { .. } => "exit.accrued",
                ExitEvent::CounterReset { .. } => "exit.counter_reset",
                ExitEvent::StatementIssued(_) => "exit.statement_issued",
                ExitEvent::StatementSigned { .. } => "exit.statement_signed",
                ExitEvent::Bound { .. } => "exit.bound",
                ExitEvent::Quoted { .. } => "exit.quoted",
                ExitEvent::StatementAccepted { .. } => "exit.statement_accepted",
                ExitEvent::StatementDisputed { .. } => "exit.statement_disputed",
            },
            Event::Routing(BabelEvent::TrustEvidence(_)) => "routing.trust_evidence",
        }
    }
}

impl From<UsageEvent> for Event {
    fn from(e: UsageEvent) -> Self {
        Event::Usage(e)
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

impl From<BabelEvent> for Event {
    fn from(e: BabelEvent) -> Self {
        Event::Routing(e)
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
            Event::Billing(e) => match e {
                BillingEvent::PriceAdvertised { link, price_per_byte } => {
                    write!(f, "{link} price={price_per_byte}")
                }
                BillingEvent::IdentitySet { address } => write!(f, "address={address}"),
                BillingEvent::ExitDue { neighbour, amount_due } => {
                    write!(f, "n{} amount_due={amount_due}", neighbour.0)
                }
                BillingEvent::NeighbourBound { neighbour, address } => {
                    write!(f, "n{} address={address}", neighbour.0)
                }
                BillingEvent::FeeSet { fee_per_byte } => write!(f, "fee={fee_per_byte}"),
                BillingEvent::ThresholdsSet(t) => write!(f, "pay={} enforce={}", t.pay, t.enforce),
                BillingEvent::PaymentIntended { id, neighbour, to, amount } => {
                    write!(f, "{id} n{} to={to} amount={amount}", neighbour.0)
                }
                BillingEvent::PaymentSigned { id, nonce, tx_hash, raw } => {
                    write!(f, "{id} nonce={nonce} tx={tx_hash} raw={}B", raw.len())
                }
                BillingEvent::PaymentConfirmed { id, block } => write!(f, "{id} block={block}"),
                BillingEvent::PaymentFailed { id, failure, nonce_used } => {
                    write!(f, "{id} failure={failure:?} nonce_used={nonce_used}")
                }
                BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block } => {
                    write!(f, "n{} amount={amount} tx={tx_hash}/{log_index} block={block}", neighbour.0)
                }
                BillingEvent::IncomingScanned { to_block } => write!(f, "to_block={to_block}"),
                BillingEvent::CreditApplied { neighbour, amount } => {
                    write!(f, "n{} amount={amount}", neighbour.0)
                }
                BillingEvent::Forgiven { neighbour, amount, reason } => {
                    write!(f, "n{} amount={amount} reason={reason:?}", neighbour.0)
                }
                BillingEvent::EnforcementChanged { neighbour, level } => {
                    write!(f, "n{} level={level:?}", neighbour.0)
                }
            },
            Event::Incident(IncidentEvent::Opened { kind, detail }) => {
                write!(f, "kind={kind} detail={detail}")
            }
            Event::Incident(IncidentEvent::Closed { kind }) => write!(f, "kind={kind}"),
            Event::Exit(e) => fmt_exit(e, f),
            Event::Routing(BabelEvent::TrustEvidence(e)) => write!(
                f,
                "if{} {} {} advertised rtt={}us loss={}uNp measured {}/{} rtt={}us worse={} streak={} trust={}",
                e.ifindex,
                e.neighbour_address(),
                e.prefix,
                e.advertised_rtt_us,
                e.advertised_loss_micro_nepers,
                e.received,
                e.sent,
                e.measured_rtt_us,
                e.worse,
                e.streak,
                e.trust_permille
            ),
        }
    }
}

fn fmt_statement(s: &Statement, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
        f,
        "user={} exit={} seq={} down={} up={} due={}",
        s.user, s.exit, s.seq, s.download_bytes, s.upload_bytes, s.amount_due
    )
}

fn fmt_exit(e: &ExitEvent, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte } => {
            write!(f, "user={user} exit_price={exit_price_per_byte} path_price={path_price_per_byte}")
        }
        ExitEvent::Accrued {
            user,
            download_bytes,
            upload_bytes,
            exit_price_per_byte,
            path_price_per_byte,
        } => {
            write!(
                f,
                "user={user} down={download_bytes} up={upload_bytes} exit_price={exit_price_per_byte} \
                 path_price={path_price_per_byte}"
            )
        }
        ExitEvent::CounterReset {
            user,
            download_reset,
            upload_reset,
            download_observed,
            upload_observed,
            ..
        } => {
            write!(
                f,
                "user={user} reset=down:{download_reset}/up:{upload_reset} \
                 observed=down{download_observed}/up{upload_observed}"
            )
        }
        ExitEvent::StatementIssued(s) => fmt_statement(s, f),
        ExitEvent::StatementSigned { user, seq, .. } => write!(f, "user={user} seq={seq}"),
        ExitEvent::Bound { exit } => write!(f, "exit={exit}"),
        ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
            write!(f, "exit={exit} exit_price={exit_price_per_byte} path_price={path_price_per_byte}")
        }
        ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes } => {
            fmt_statement(statement, f)?;
            write!(f, " own=rx{own_rx_bytes}/tx{own_tx_bytes}")
        }
        ExitEvent::StatementDisputed { exit, seq, reason, by } => {
            write!(f, "exit={exit} seq={seq} reason={reason} by={by}")
        }
    }
}

mod kind {
    pub const USAGE_ACCRUED: u8 = 1;
    pub const COUNTER_RESET: u8 = 2;
    pub const INCIDENT_OPENED: u8 = 3;
    pub const INCIDENT_CLOSED: u8 = 4;
    pub const PRICE_ADVERTISED: u8 = 5;
    pub const NEIGHBOUR_BOUND: u8 = 16;
    pub const FEE_SET: u8 = 17;
    pub const THRESHOLDS_SET: u8 = 18;
    pub const PAYMENT_INTENDED: u8 = 19;
    pub const PAYMENT_SIGNED: u8 = 20;
    pub const PAYMENT_CONFIRMED: u8 = 21;
    pub const PAYMENT_FAILED: u8 = 22;
    pub const PAYMENT_RECEIVED: u8 = 23;
    pub const INCOMING_SCANNED: u8 = 24;
    pub const CREDIT_APPLIED: u8 = 25;
    pub const FORGIVEN: u8 = 26;
    pub const ENFORCEMENT_CHANGED: u8 = 27;
    pub const EXIT_PRICES_SET: u8 = 32;
    pub const EXIT_ACCRUED: u8 = 33;
    pub const EXIT_COUNTER_RESET: u8 = 34;
    pub const EXIT_STATEMENT_ISSUED: u8 = 35;
    pub const EXIT_STATEMENT_SIGNED: u8 = 36;
    pub const EXIT_BOUND: u8 = 37;
    pub const EXIT_QUOTED: u8 = 38;
    pub const EXIT_STATEMENT_ACCEPTED: u8 = 39;
    pub const EXIT_STATEMENT_DISPUTED: u8 = 40;
    pub const IDENTITY_SET: u8 = 28;
    pub const EXIT_DUE: u8 = 29;
    pub const ROUTING_TRUST_EVIDENCE: u8 = 48;
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
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct RawBuf(Vec<u8>);

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
        Event::Usage(UsageEvent::Accrued(r)) => body(buf, kind::USAGE_ACCRUED, r),
        Event::Usage(UsageEvent::CounterReset(r)) => body(buf, kind::COUNTER_RESET, r),
        Event::Billing(e) => encode_billing(e, buf),
        Event::Incident(IncidentEvent::Opened { kind, detail }) => {
            body(buf, kind::INCIDENT_OPENED, &(*kind, *detail))
        }
        Event::Incident(IncidentEvent::Closed { kind }) => body(buf, kind::INCIDENT_CLOSED, &(*kind,)),
        Event::Exit(e) => encode_exit(e, buf),
        Event::Routing(BabelEvent::TrustEvidence(e)) => body(buf, kind::ROUTING_TRUST_EVIDENCE, e),
    }
}

fn encode_exit(e: &ExitEvent, buf: &mut Vec<u8>) {
    match e {
        ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte } => {
            body(buf, kind::EXIT_PRICES_SET, &(user, exit_price_per_byte, path_price_per_byte))
        }
        ExitEvent::Accrued {
            user,
            download_bytes,
            upload_bytes,
            exit_price_per_byte,
            path_price_per_byte,
        } => body(
            buf,
            kind::EXIT_ACCRUED,
            &(user, download_bytes, upload_bytes, exit_price_per_byte, path_price_per_byte),
        ),
        ExitEvent::CounterReset {
            user,
            download_reset,
            upload_reset,
            download_counted,
            upload_counted,
            download_observed,
            upload_observed,
        } => body(
            buf,
            kind::EXIT_COUNTER_RESET,
            &(
                user,
                download_reset,
                upload_reset,
                download_counted,
                upload_counted,
                download_observed,
                upload_observed,
            ),
        ),
        ExitEvent::StatementIssued(s) => body(buf, kind::EXIT_STATEMENT_ISSUED, s),
        ExitEvent::StatementSigned { user, seq, signature } => {
            body(buf, kind::EXIT_STATEMENT_SIGNED, &(user, seq, signature))
        }
        ExitEvent::Bound { exit } => body(buf, kind::EXIT_BOUND, &(exit,)),
        ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
            body(buf, kind::EXIT_QUOTED, &(exit, exit_price_per_byte, path_price_per_byte))
        }
        ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes } => {
            body(buf, kind::EXIT_STATEMENT_ACCEPTED, &(statement, own_rx_bytes, own_tx_bytes))
        }
        ExitEvent::StatementDisputed { exit, seq, reason, by } => {
            body(buf, kind::EXIT_STATEMENT_DISPUTED, &(exit, seq, reason, Amount(*by)))
        }
    }
}

fn encode_billing(e: &BillingEvent, buf: &mut Vec<u8>) {
    match e {
        BillingEvent::IdentitySet { address } => body(buf, kind::IDENTITY_SET, &(address,)),
        BillingEvent::ExitDue { neighbour, amount_due } => {
            body(buf, kind::EXIT_DUE, &(neighbour, amount_due))
        }
        BillingEvent::PriceAdvertised { link, price_per_byte } => {
            body(buf, kind::PRICE_ADVERTISED, &(link, price_per_byte))
        }
        BillingEvent::NeighbourBound { neighbour, address } => {
            body(buf, kind::NEIGHBOUR_BOUND, &(neighbour, address))
        }
        BillingEvent::FeeSet { fee_per_byte } => body(buf, kind::FEE_SET, &(fee_per_byte,)),
        BillingEvent::ThresholdsSet(t) => body(buf, kind::THRESHOLDS_SET, &(t.pay, t.enforce)),
        BillingEvent::PaymentIntended { id, neighbour, to, amount } => {
            body(buf, kind::PAYMENT_INTENDED, &(id, neighbour, to, amount))
        }
        BillingEvent::PaymentSigned { id, nonce, tx_hash, raw } => {
            body(buf, kind::PAYMENT_SIGNED, &(id, nonce, tx_hash, Raw(raw)))
        }
        BillingEvent::PaymentConfirmed { id, block } => body(buf, kind::PAYMENT_CONFIRMED, &(id, block)),
        BillingEvent::PaymentFailed { id, failure, nonce_used } => {
            body(buf, kind::PAYMENT_FAILED, &(id, failure, nonce_used))
        }
        BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block } => {
            body(buf, kind::PAYMENT_RECEIVED, &(neighbour, tx_hash, log_index, amount, block))
        }
        BillingEvent::IncomingScanned { to_block } => body(buf, kind::INCOMING_SCANNED, &(to_block,)),
        BillingEvent::CreditApplied { neighbour, amount } => {
            body(buf, kind::CREDIT_APPLIED, &(neighbour, amount))
        }
        BillingEvent::Forgiven { neighbour, amount, reason } => {
            body(buf, kind::FORGIVEN, &(neighbour, amount, reason))
        }
        BillingEvent::EnforcementChanged { neighbour, level } => {
            body(buf, kind::ENFORCEMENT_CHANGED, &(neighbour, level))
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
    let k = kind;
    let event = match (version, kind) {
        (1, kind::USAGE_ACCRUED) => {
            let (link, tx_bytes, rx_bytes): (Link, u64, u64) = read(k, rest)?;
            Event::Usage(UsageEvent::Accrued(UsageRecord { link, tx_bytes, rx_bytes, price_per_byte: None }))
        }
        (_, kind::USAGE_ACCRUED) => Event::Usage(UsageEvent::Accrued(read(k, rest)?)),
        (_, kind::COUNTER_RESET) => Event::Usage(UsageEvent::CounterReset(read(k, rest)?)),
        (_, kind::INCIDENT_OPENED) => {
            let (kind, detail): (IncidentKind, u64) = read(k, rest)?;
            Event::Incident(IncidentEvent::Opened { kind, detail })
        }
        (_, kind::INCIDENT_CLOSED) => {
            let (kind,): (IncidentKind,) = read(k, rest)?;
            Event::Incident(IncidentEvent::Closed { kind })
        }
        (3.., kind::EXIT_PRICES_SET..=kind::EXIT_STATEMENT_DISPUTED) => Event::Exit(decode_exit(k, rest)?),
        (4.., kind::ROUTING_TRUST_EVIDENCE) => Event::Routing(BabelEvent::TrustEvidence(read(k, rest)?)),
        (3.., _) => Event::Billing(decode_billing(version, k, rest)?),
        (version, kind) => return Err(DecodeError::UnknownKind { version, kind }),
    };
    Ok(event)
}

fn decode_billing(version: u8, k: u8, rest: &[u8]) -> Result<BillingEvent, DecodeError> {
    Ok(match k {
        kind::EXIT_DUE => {
            let (neighbour, amount_due): (NeighbourId, Amount) = read(k, rest)?;
            BillingEvent::ExitDue { neighbour, amount_due }
        }
        kind::IDENTITY_SET => {
            let (address,): (Address,) = read(k, rest)?;
            BillingEvent::IdentitySet { address }
        }
        kind::PRICE_ADVERTISED => {
            let (link, price_per_byte): (Link, u64) = read(k, rest)?;
            BillingEvent::PriceAdvertised { link, price_per_byte }
        }
        kind::NEIGHBOUR_BOUND => {
            let (neighbour, address): (NeighbourId, Address) = read(k, rest)?;
            BillingEvent::NeighbourBound { neighbour, address }
        }
        kind::FEE_SET => {
            let (fee_per_byte,): (u64,) = read(k, rest)?;
            BillingEvent::FeeSet { fee_per_byte }
        }
        kind::THRESHOLDS_SET => {
            let (pay, enforce): (Amount, Amount) = read(k, rest)?;
            BillingEvent::ThresholdsSet(Thresholds { pay, enforce })
        }
        kind::PAYMENT_INTENDED => {
            let (id, neighbour, to, amount): (PaymentId, NeighbourId, Address, Amount) = read(k, rest)?;
            BillingEvent::PaymentIntended { id, neighbour, to, amount }
        }
        kind::PAYMENT_SIGNED => {
            let (id, nonce, tx_hash, raw): (PaymentId, u64, TxHash, RawBuf) = read(k, rest)?;
            BillingEvent::PaymentSigned { id, nonce, tx_hash, raw: raw.0 }
        }
        kind::PAYMENT_CONFIRMED => {
            let (id, block): (PaymentId, u64) = read(k, rest)?;
            BillingEvent::PaymentConfirmed { id, block }
        }
        kind::PAYMENT_FAILED => {
            let (id, failure, nonce_used): (PaymentId, PaymentFailure, bool) = read(k, rest)?;
            BillingEvent::PaymentFailed { id, failure, nonce_used }
        }
        kind::PAYMENT_RECEIVED => {
            let (neighbour, tx_hash, log_index, amount, block): (NeighbourId, TxHash, u32, Amount, u64) =
                read(k, rest)?;
            BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block }
        }
        kind::INCOMING_SCANNED => {
            let (to_block,): (u64,) = read(k, rest)?;
            BillingEvent::IncomingScanned { to_block }
        }
        kind::CREDIT_APPLIED => {
            let (neighbour, amount): (NeighbourId, Amount) = read(k, rest)?;
            BillingEvent::CreditApplied { neighbour, amount }
        }
        kind::FORGIVEN => {
            let (neighbour, amount, reason): (NeighbourId, Amount, String) = read(k, rest)?;
            BillingEvent::Forgiven { neighbour, amount, reason }
        }
        kind::ENFORCEMENT_CHANGED => {
            let (neighbour, level): (NeighbourId, Enforcement) = read(k, rest)?;
            BillingEvent::EnforcementChanged { neighbour, level }
        }
        kind => return Err(DecodeError::UnknownKind { version, kind }),
    })
}

fn decode_exit(k: u8, rest: &[u8]) -> Result<ExitEvent, DecodeError> {
    Ok(match k {
        kind::EXIT_PRICES_SET => {
            let (user, exit_price_per_byte, path_price_per_byte): (Address, u64, u64) = read(k, rest)?;
            ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte }
        }
        kind::EXIT_ACCRUED => {
            let (user, download_bytes, upload_bytes, exit_price_per_byte, path_price_per_byte): (
                Address,
                u64,
                u64,
                u64,
                u64,
            ) = read(k, rest)?;
            ExitEvent::Accrued {
                user,
                download_bytes,
                upload_bytes,
                exit_price_per_byte,
                path_price_per_byte,
            }
        }
        kind::EXIT_COUNTER_RESET => {
            let (
                user,
                download_reset,
                upload_reset,
                download_counted,
                upload_counted,
                download_observed,
                upload_observed,
            ): (Address, bool, bool, u64, u64, u64, u64) = read(k, rest)?;
            ExitEvent::CounterReset {
                user,
                download_reset,
                upload_reset,
                download_counted,
                upload_counted,
                download_observed,
                upload_observed,
            }
        }
        kind::EXIT_STATEMENT_ISSUED => ExitEvent::StatementIssued(read(k, rest)?),
        kind::EXIT_STATEMENT_SIGNED => {
            let (user, seq, signature): (Address, u64, Signature) = read(k, rest)?;
            ExitEvent::StatementSigned { user, seq, signature }
        }
        kind::EXIT_BOUND => {
            let (exit,): (Address,) = read(k, rest)?;
            ExitEvent::Bound { exit }
        }
        kind::EXIT_QUOTED => {
            let (exit, exit_price_per_byte, path_price_per_byte): (Address, u64, u64) = read(k, rest)?;
            ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte }
        }
        kind::EXIT_STATEMENT_ACCEPTED => {
            let (statement, own_rx_bytes, own_tx_bytes): (Statement, u64, u64) = read(k, rest)?;
            ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes }
        }
        // The range in `decode` leaves only this kind.
        _ => {
            let (exit, seq, reason, by): (Address, u64, DisputeReason, Amount) = read(k, rest)?;
            ExitEvent::StatementDisputed { exit, seq, reason, by: by.0 }
        }
    })
}

fn read<T: DeserializeOwned>(kind: u8, mut bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = rmp_serde::Deserializer::new(&mut bytes);
    let value = T::deserialize(&mut de).map_err(|e| DecodeError::Body { kind, reason: e.to_string() })?;
    if !bytes.is_empty() {
        return Err(DecodeError::Trailing { kind, bytes: bytes.len() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::usage::CounterReset;

    fn accrued(price_per_byte: Option<u64>) -> Event {
        Event::Usage(UsageEvent::Accrued(UsageRecord {
            link: Link::new(3, 17),
            tx_bytes: 12_000_000,
            rx_bytes: 11_500_000,
            price_per_byte,
        }))
    }

    fn hash(b: u8) -> TxHash {
        TxHash([b; 32])
    }

    fn addr(b: u8) -> Address {
        Address([b; 20])
    }

    /// `[kind] ++ rest`, for goldens with long runs of address or hash bytes.
    fn bytes(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn trust_evidence() -> Event {
        use crate::events::babel::TrustEvidence;
        use crate::wire::babel::Prefix;
        let fd07 = core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7);
        Event::Routing(BabelEvent::TrustEvidence(TrustEvidence {
            ifindex: 3,
            neighbour: core::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9).octets(),
            prefix: Prefix::new(fd07.into(), 128).expect("valid"),
            advertised_rtt_us: 1000,
            advertised_loss_micro_nepers: 0,
            sent: 20,
            received: 19,
            measured_rtt_us: 40_000,
            worse: true,
            streak: 2,
            trust_permille: 750,
        }))
    }

    /// (event, exact current-version payload bytes), checked in both directions.
    fn golden() -> Vec<(Event, Vec<u8>)> {
        let tx12m = [0xce, 0x00, 0xb7, 0x1b, 0x00];
        let rx11m = [0xce, 0x00, 0xaf, 0x79, 0xe0];
        vec![
            (
                trust_evidence(),
                bytes(&[
                    &[0x30, 0x9b, 0x03, 0xc4, 0x10, 0xfe, 0x80],
                    &[0; 13],
                    &[0x09, 0x92, 0xc4, 0x10, 0xfd],
                    &[0; 14],
                    &[
                        0x07, 0xcc, 0x80, 0xcd, 0x03, 0xe8, 0x00, 0x14, 0x13, 0xcd, 0x9c, 0x40, 0xc3, 0x02,
                        0xcd, 0x02, 0xee,
                    ],
                ]),
            ),
            (accrued(Some(20)), bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0x14]])),
            (accrued(None), bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0xc0]])),
            (
                accrued(Some(300_000)),
                bytes(&[&[0x01, 0x94, 0x92, 0x03, 0x11], &tx12m, &rx11m, &[0xce, 0x00, 0x04, 0x93, 0xe0]]),
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
                vec![0x02, 0x97, 0x92, 0x01, 0x02, 0xc3, 0xc2, 0xcd, 0x03, 0xe8, 0x07, 0x05, 0x09],
            ),
            (
                Event::Incident(IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: 300 }),
                vec![0x03, 0x92, 0x01, 0xcd, 0x01, 0x2c],
            ),
            (
                Event::Incident(IncidentEvent::Closed { kind: IncidentKind::LogWriteFailed }),
                vec![0x04, 0x91, 0x02],
            ),
            (
                Event::Billing(BillingEvent::PriceAdvertised { link: Link::new(1, 2), price_per_byte: 7 }),
                vec![0x05, 0x92, 0x92, 0x01, 0x02, 0x07],
            ),
            (
                Event::Billing(BillingEvent::NeighbourBound {
                    neighbour: NeighbourId(4),
                    address: addr(0xab),
                }),
                bytes(&[&[0x10, 0x92, 0x04, 0xc4, 0x14], &[0xab; 20]]),
            ),
            (Event::Billing(BillingEvent::FeeSet { fee_per_byte: 9 }), vec![0x11, 0x91, 0x09]),
            (
                Event::Billing(BillingEvent::ExitDue {
                    neighbour: NeighbourId(9),
                    amount_due: Amount(70_000),
                }),
                vec![0x1d, 0x92, 0x09, 0xce, 0x00, 0x01, 0x11, 0x70],
            ),
            (
                Event::Billing(BillingEvent::IdentitySet { address: addr(0xcd) }),
                bytes(&[&[0x1c, 0x91, 0xc4, 0x14], &[0xcd; 20]]),
            ),
            (
                Event::Billing(BillingEvent::ThresholdsSet(Thresholds {
                    pay: Amount(1000),
                    enforce: Amount(u128::MAX),
                })),
                bytes(&[&[0x12, 0x92, 0xcd, 0x03, 0xe8, 0xc4, 0x10], &[0xff; 16]]),
            ),
            (
                Event::Billing(BillingEvent::PaymentIntended {
                    id: PaymentId(2),
                    neighbour: NeighbourId(4),
                    to: addr(1),
                    amount: Amount(70_000),
                }),
                bytes(&[&[0x13, 0x94, 0x02, 0x04, 0xc4, 0x14], &[0x01; 20], &[0xce, 0x00, 0x01, 0x11, 0x70]]),
            ),
            (
                Event::Billing(BillingEvent::PaymentSigned {
                    id: PaymentId(2),
                    nonce: 5,
                    tx_hash: hash(0xee),
                    raw: vec![0xf8, 0x6b, 0x01],
                }),
                bytes(&[&[0x14, 0x94, 0x02, 0x05, 0xc4, 0x20], &[0xee; 32], &[0xc4, 0x03, 0xf8, 0x6b, 0x01]]),
            ),
            (
                Event::Billing(BillingEvent::PaymentConfirmed { id: PaymentId(2), block: 130 }),
                vec![0x15, 0x92, 0x02, 0xcc, 0x82],
            ),
            (
                Event::Billing(BillingEvent::PaymentFailed {
                    id: PaymentId(3),
                    failure: PaymentFailure::Reverted,
                    nonce_used: true,
                }),
                vec![0x16, 0x93, 0x03, 0x02, 0xc3],
            ),
            (
                Event::Billing(BillingEvent::PaymentReceived {
                    neighbour: NeighbourId(4),
                    tx_hash: hash(0x11),
                    log_index: 0,
                    amount: Amount(5),
                    block: 7,
                }),
                bytes(&[&[0x17, 0x95, 0x04, 0xc4, 0x20], &[0x11; 32], &[0x00, 0x05, 0x07]]),
            ),
            (Event::Billing(BillingEvent::IncomingScanned { to_block: 7 }), vec![0x18, 0x91, 0x07]),
            (
                Event::Billing(BillingEvent::CreditApplied { neighbour: NeighbourId(4), amount: Amount(3) }),
                vec![0x19, 0x92, 0x04, 0x03],
            ),
            (
                Event::Billing(BillingEvent::Forgiven {
                    neighbour: NeighbourId(4),
                    amount: Amount(3),
                    reason: "storm".into(),
                }),
                vec![0x1a, 0x93, 0x04, 0x03, 0xa5, b's', b't', b'o', b'r', b'm'],
            ),
            (
                Event::Billing(BillingEvent::EnforcementChanged {
                    neighbour: NeighbourId(4),
                    level: Enforcement::Throttled,
                }),
                vec![0x1b, 0x92, 0x04, 0x01],
            ),
            (
                Event::Exit(ExitEvent::PricesSet {
                    user: addr(0x22),
                    exit_price_per_byte: 3,
                    path_price_per_byte: 4,
                }),
                bytes(&[&[0x20, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x03, 0x04]]),
            ),
            (
                Event::Exit(ExitEvent::Accrued {
                    user: addr(0x22),
                    download_bytes: 1000,
                    upload_bytes: 7,
                    exit_price_per_byte: 3,
                    path_price_per_byte: 4,
                }),
                bytes(&[&[0x21, 0x95, 0xc4, 0x14], &[0x22; 20], &[0xcd, 0x03, 0xe8, 0x07, 0x03, 0x04]]),
            ),
            (
                Event::Exit(ExitEvent::CounterReset {
                    user: addr(0x22),
                    download_reset: true,
                    upload_reset: false,
                    download_counted: 1000,
                    upload_counted: 7,
                    download_observed: 5,
                    upload_observed: 9,
                }),
                bytes(&[
                    &[0x22, 0x97, 0xc4, 0x14],
                    &[0x22; 20],
                    &[0xc3, 0xc2, 0xcd, 0x03, 0xe8, 0x07, 0x05, 0x09],
                ]),
            ),
            (Event::Exit(ExitEvent::StatementIssued(statement())), bytes(&[&[0x23], &statement_bytes()])),
            (
                Event::Exit(ExitEvent::StatementSigned {
                    user: addr(0x22),
                    seq: 2,
                    signature: Signature([0x44; 65]),
                }),
                bytes(&[&[0x24, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x02, 0xc4, 0x41], &[0x44; 65]]),
            ),
            (
                Event::Exit(ExitEvent::Bound { exit: addr(0x33) }),
                bytes(&[&[0x25, 0x91, 0xc4, 0x14], &[0x33; 20]]),
            ),
            (
                Event::Exit(ExitEvent::Quoted {
                    exit: addr(0x33),
                    exit_price_per_byte: 3,
                    path_price_per_byte: 4,
                }),
                bytes(&[&[0x26, 0x93, 0xc4, 0x14], &[0x33; 20], &[0x03, 0x04]]),
            ),
            (
                Event::Exit(ExitEvent::StatementAccepted {
                    statement: statement(),
                    own_rx_bytes: 990,
                    own_tx_bytes: 7,
                }),
                bytes(&[&[0x27, 0x93], &statement_bytes(), &[0xcd, 0x03, 0xde, 0x07]]),
            ),
            (
                Event::Exit(ExitEvent::StatementDisputed {
                    exit: addr(0x33),
                    seq: 2,
                    reason: DisputeReason::DownloadAboveTolerance,
                    by: 10,
                }),
                bytes(&[&[0x28, 0x94, 0xc4, 0x14], &[0x33; 20], &[0x02, 0x09, 0x0a]]),
            ),
        ]
    }

    fn statement() -> Statement {
        Statement {
            user: addr(0x22),
            exit: addr(0x33),
            seq: 2,
            download_bytes: 1000,
            upload_bytes: 7,
            amount_due: Amount(7021),
        }
    }

    /// `[user, exit, seq, download, upload, amount_due]`
    fn statement_bytes() -> Vec<u8> {
        bytes(&[
            &[0x96, 0xc4, 0x14],
            &[0x22; 20],
            &[0xc4, 0x14],
            &[0x33; 20],
            &[0x02, 0xcd, 0x03, 0xe8, 0x07, 0xcd, 0x1b, 0x6d],
        ])
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
    fn every_event_kind_has_a_golden_and_a_distinct_name() {
        let names: std::collections::BTreeSet<&str> = golden().iter().map(|(e, _)| e.kind_name()).collect();
        assert_eq!(names.len(), 29, "every kind has a golden: {names:?}");
    }

    #[test]
    fn older_versions_decode_and_upcast_to_exactly_what_they_knew() {
        // v2: the same layout as v3 for the kinds it had.
        let v2 = bytes(&[
            &[0x01, 0x94, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf, 0x79, 0xe0],
            &[0x14],
        ]);
        assert_eq!(decode(2, &v2), Ok(accrued(Some(20))));
        // v1: no price at all.
        let v1 = [0x01, 0x93, 0x92, 0x03, 0x11, 0xce, 0x00, 0xb7, 0x1b, 0x00, 0xce, 0x00, 0xaf, 0x79, 0xe0];
        assert_eq!(decode(1, &v1), Ok(accrued(None)));
        // The same bytes are not valid in the newer layouts.
        assert!(matches!(decode(2, &v1), Err(DecodeError::Body { kind: 1, .. })));
        assert_eq!(decode(3, &v2), Ok(accrued(Some(20))));
        // Billing and exit kinds did not exist before version 3.
        assert_eq!(decode(2, &[0x25, 0x91]), Err(DecodeError::UnknownKind { version: 2, kind: 0x25 }));
        assert_eq!(decode(2, &[0x11, 0x91, 0x09]), Err(DecodeError::UnknownKind { version: 2, kind: 0x11 }));
    }

    #[test]
    fn unknown_versions_and_kinds_are_refused() {
        let payload = encode_to_vec(&accrued(Some(1)));
        assert_eq!(
            decode(EVENT_VERSION + 1, &payload),
            Err(DecodeError::NewerVersion { found: EVENT_VERSION + 1, supported: EVENT_VERSION })
        );
        assert_eq!(decode(0, &payload), Err(DecodeError::UnknownVersion(0)));
        assert_eq!(decode(3, &[]), Err(DecodeError::Empty));
        assert_eq!(decode(3, &[0x63, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x63 }));
        // Routing evidence arrived with version 4.
        assert_eq!(decode(3, &[0x30, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x30 }));
        let mut long = payload.clone();
        long.push(0);
        assert_eq!(decode(3, &long), Err(DecodeError::Trailing { kind: 1, bytes: 1 }));
        assert!(matches!(decode(3, &payload[..6]), Err(DecodeError::Body { .. })));
        assert!(matches!(decode(3, &[0x03, 0x92, 0x09, 0x01]), Err(DecodeError::Body { kind: 3, .. })));
        // A 19-byte address is not an address.
        assert!(matches!(
            decode(3, &bytes(&[&[0x10, 0x92, 0x04, 0xc4, 0x13], &[0xab; 19]])),
            Err(DecodeError::Body { kind: 0x10, .. })
        ));
    }

    #[test]
    fn exit_kinds_refuse_malformed_bodies_and_unknown_reasons() {
        // A 64-byte signature is not a signature.
        let short = bytes(&[&[0x24, 0x93, 0xc4, 0x14], &[0x22; 20], &[0x02, 0xc4, 0x40], &[0x44; 64]]);
        assert!(matches!(decode(3, &short), Err(DecodeError::Body { kind: 0x24, .. })));
        let reason = bytes(&[&[0x28, 0x94, 0xc4, 0x14], &[0x33; 20], &[0x02, 0x63, 0x0a]]);
        assert!(matches!(decode(3, &reason), Err(DecodeError::Body { kind: 0x28, .. })));
        // Kind 41 is not assigned.
        assert_eq!(decode(3, &[0x29, 0x90]), Err(DecodeError::UnknownKind { version: 3, kind: 0x29 }));
        assert!(Event::Exit(ExitEvent::StatementSigned {
            user: addr(1),
            seq: 1,
            signature: Signature([0; 65])
        })
        .is_urgent());
        let accrued = Event::Exit(ExitEvent::Accrued {
            user: addr(1),
            download_bytes: 10,
            upload_bytes: 2,
            exit_price_per_byte: 3,
            path_price_per_byte: 4,
        });
        assert_eq!(accrued.value(), 10 * 7 + 2 * 3);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        fn prop(version: u8, bytes: Vec<u8>) -> bool {
            let _ = decode(version, &bytes);
            true
        }
        quickcheck::quickcheck(prop as fn(u8, Vec<u8>) -> bool);
    }

    #[test]
    fn every_golden_renders_for_people() {
        for (event, _) in golden() {
            assert!(!event.to_string().is_empty());
        }
        assert_eq!(accrued(Some(20)).to_string(), "n3/d17 tx=12000000 rx=11500000 price=20");
    }
}
