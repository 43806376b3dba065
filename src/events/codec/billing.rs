//! Billing kinds (5, 16 to 29, from version 3): prices, bindings, thresholds, payments, credit
//! and enforcement.
//!
//! | kind | event | body |
//! | --- | --- | --- |
//! | 5 | price advertised | `[[neighbour, destination], price]` |
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
//!
//! Addresses (20 bytes), hashes (32) and signed transactions are MessagePack bin; amounts are
//! integers when they fit in 64 bits, else 16 big-endian bytes (see
//! [`crate::events::chain::Amount`]).

use super::{body, read, DecodeError, Raw, RawBuf};
use crate::events::billing::{BillingEvent, Enforcement, PaymentFailure, Thresholds};
use crate::events::chain::{Address, Amount, PaymentId, TxHash};
use crate::events::usage::{Link, NeighbourId};

const PRICE_ADVERTISED: u8 = 5;
const NEIGHBOUR_BOUND: u8 = 16;
const FEE_SET: u8 = 17;
const THRESHOLDS_SET: u8 = 18;
const PAYMENT_INTENDED: u8 = 19;
const PAYMENT_SIGNED: u8 = 20;
const PAYMENT_CONFIRMED: u8 = 21;
const PAYMENT_FAILED: u8 = 22;
const PAYMENT_RECEIVED: u8 = 23;
const INCOMING_SCANNED: u8 = 24;
const CREDIT_APPLIED: u8 = 25;
const FORGIVEN: u8 = 26;
const ENFORCEMENT_CHANGED: u8 = 27;
const IDENTITY_SET: u8 = 28;
const EXIT_DUE: u8 = 29;
pub(super) const FIRST: u8 = PRICE_ADVERTISED;
pub(super) const LAST: u8 = EXIT_DUE;

/// (kind, name) of every billing kind.
pub(super) const KINDS: &[(u8, &str)] = &[
    (PRICE_ADVERTISED, "billing.price_advertised"),
    (NEIGHBOUR_BOUND, "billing.neighbour_bound"),
    (FEE_SET, "billing.fee_set"),
    (THRESHOLDS_SET, "billing.thresholds_set"),
    (PAYMENT_INTENDED, "billing.payment_intended"),
    (PAYMENT_SIGNED, "billing.payment_signed"),
    (PAYMENT_CONFIRMED, "billing.payment_confirmed"),
    (PAYMENT_FAILED, "billing.payment_failed"),
    (PAYMENT_RECEIVED, "billing.payment_received"),
    (INCOMING_SCANNED, "billing.incoming_scanned"),
    (CREDIT_APPLIED, "billing.credit_applied"),
    (FORGIVEN, "billing.forgiven"),
    (ENFORCEMENT_CHANGED, "billing.enforcement_changed"),
    (IDENTITY_SET, "billing.identity_set"),
    (EXIT_DUE, "billing.exit_due"),
];

pub(super) fn name(e: &BillingEvent) -> &'static str {
    match e {
        BillingEvent::PriceAdvertised { .. } => "billing.price_advertised",
        BillingEvent::NeighbourBound { .. } => "billing.neighbour_bound",
        BillingEvent::FeeSet { .. } => "billing.fee_set",
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
        BillingEvent::IdentitySet { .. } => "billing.identity_set",
        BillingEvent::ExitDue { .. } => "billing.exit_due",
    }
}

pub(super) fn encode(e: &BillingEvent, buf: &mut Vec<u8>) {
    match e {
        BillingEvent::IdentitySet { address } => body(buf, IDENTITY_SET, &(address,)),
        BillingEvent::ExitDue { neighbour, amount_due } => body(buf, EXIT_DUE, &(neighbour, amount_due)),
        BillingEvent::PriceAdvertised { link, price_per_byte } => {
            body(buf, PRICE_ADVERTISED, &(link, price_per_byte))
        }
        BillingEvent::NeighbourBound { neighbour, address } => {
            body(buf, NEIGHBOUR_BOUND, &(neighbour, address))
        }
        BillingEvent::FeeSet { fee_per_byte } => body(buf, FEE_SET, &(fee_per_byte,)),
        BillingEvent::ThresholdsSet(t) => body(buf, THRESHOLDS_SET, &(t.pay, t.enforce)),
        BillingEvent::PaymentIntended { id, neighbour, to, amount } => {
            body(buf, PAYMENT_INTENDED, &(id, neighbour, to, amount))
        }
        BillingEvent::PaymentSigned { id, nonce, tx_hash, raw } => {
            body(buf, PAYMENT_SIGNED, &(id, nonce, tx_hash, Raw(raw)))
        }
        BillingEvent::PaymentConfirmed { id, block } => body(buf, PAYMENT_CONFIRMED, &(id, block)),
        BillingEvent::PaymentFailed { id, failure, nonce_used } => {
            body(buf, PAYMENT_FAILED, &(id, failure, nonce_used))
        }
        BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block } => {
            body(buf, PAYMENT_RECEIVED, &(neighbour, tx_hash, log_index, amount, block))
        }
        BillingEvent::IncomingScanned { to_block } => body(buf, INCOMING_SCANNED, &(to_block,)),
        BillingEvent::CreditApplied { neighbour, amount } => body(buf, CREDIT_APPLIED, &(neighbour, amount)),
        BillingEvent::Forgiven { neighbour, amount, reason } => {
            body(buf, FORGIVEN, &(neighbour, amount, reason))
        }
        BillingEvent::EnforcementChanged { neighbour, level } => {
            body(buf, ENFORCEMENT_CHANGED, &(neighbour, level))
        }
    }
}

pub(super) fn decode(version: u8, k: u8, rest: &[u8]) -> Result<BillingEvent, DecodeError> {
    Ok(match k {
        EXIT_DUE => {
            let (neighbour, amount_due): (NeighbourId, Amount) = read(k, rest)?;
            BillingEvent::ExitDue { neighbour, amount_due }
        }
        IDENTITY_SET => {
            let (address,): (Address,) = read(k, rest)?;
            BillingEvent::IdentitySet { address }
        }
        PRICE_ADVERTISED => {
            let (link, price_per_byte): (Link, u64) = read(k, rest)?;
            BillingEvent::PriceAdvertised { link, price_per_byte }
        }
        NEIGHBOUR_BOUND => {
            let (neighbour, address): (NeighbourId, Address) = read(k, rest)?;
            BillingEvent::NeighbourBound { neighbour, address }
        }
        FEE_SET => {
            let (fee_per_byte,): (u64,) = read(k, rest)?;
            BillingEvent::FeeSet { fee_per_byte }
        }
        THRESHOLDS_SET => {
            let (pay, enforce): (Amount, Amount) = read(k, rest)?;
            BillingEvent::ThresholdsSet(Thresholds { pay, enforce })
        }
        PAYMENT_INTENDED => {
            let (id, neighbour, to, amount): (PaymentId, NeighbourId, Address, Amount) = read(k, rest)?;
            BillingEvent::PaymentIntended { id, neighbour, to, amount }
        }
        PAYMENT_SIGNED => {
            let (id, nonce, tx_hash, raw): (PaymentId, u64, TxHash, RawBuf) = read(k, rest)?;
            BillingEvent::PaymentSigned { id, nonce, tx_hash, raw: raw.0 }
        }
        PAYMENT_CONFIRMED => {
            let (id, block): (PaymentId, u64) = read(k, rest)?;
            BillingEvent::PaymentConfirmed { id, block }
        }
        PAYMENT_FAILED => {
            let (id, failure, nonce_used): (PaymentId, PaymentFailure, bool) = read(k, rest)?;
            BillingEvent::PaymentFailed { id, failure, nonce_used }
        }
        PAYMENT_RECEIVED => {
            let (neighbour, tx_hash, log_index, amount, block): (NeighbourId, TxHash, u32, Amount, u64) =
                read(k, rest)?;
            BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block }
        }
        INCOMING_SCANNED => {
            let (to_block,): (u64,) = read(k, rest)?;
            BillingEvent::IncomingScanned { to_block }
        }
        CREDIT_APPLIED => {
            let (neighbour, amount): (NeighbourId, Amount) = read(k, rest)?;
            BillingEvent::CreditApplied { neighbour, amount }
        }
        FORGIVEN => {
            let (neighbour, amount, reason): (NeighbourId, Amount, String) = read(k, rest)?;
            BillingEvent::Forgiven { neighbour, amount, reason }
        }
        ENFORCEMENT_CHANGED => {
            let (neighbour, level): (NeighbourId, Enforcement) = read(k, rest)?;
            BillingEvent::EnforcementChanged { neighbour, level }
        }
        kind => return Err(DecodeError::UnknownKind { version, kind }),
    })
}
