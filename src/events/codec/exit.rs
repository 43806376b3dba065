//! Exit kinds (32 to 40, added to version 3 before it was released): what an exit bills its
//! users, and what a user accepts or disputes.
//!
//! | kind | event | body |
//! | --- | --- | --- |
//! | 32 | exit prices set | `[user, exit_price, path_price]` |
//! | 33 | exit accrued | `[user, download_bytes, upload_bytes, exit_price, path_price]` |
//! | 34 | exit counter reset | `[user, download_reset, upload_reset, download_counted, upload_counted, download_observed, upload_observed]` |
//! | 35 | exit statement issued | `[user, exit, seq, download_bytes, upload_bytes, amount_due]` |
//! | 36 | exit statement signed | `[user, seq, signature]` |
//! | 37 | exit bound (user side) | `[exit]` |
//! | 38 | exit quoted (user side) | `[exit, exit_price, path_price]` |
//! | 39 | exit statement accepted | `[[user, exit, seq, download_bytes, upload_bytes, amount_due], own_rx, own_tx]` |
//! | 40 | exit statement disputed | `[exit, seq, reason, by]` |
//!
//! Statement signatures are bin 65 (`r ‖ s ‖ v`); `by` in a dispute is an amount-like u128.

use super::{body, read, DecodeError};
use crate::events::chain::{Address, Amount};
use crate::events::exit::{DisputeReason, ExitEvent, Signature, Statement};

const PRICES_SET: u8 = 32;
const ACCRUED: u8 = 33;
const COUNTER_RESET: u8 = 34;
const STATEMENT_ISSUED: u8 = 35;
const STATEMENT_SIGNED: u8 = 36;
const BOUND: u8 = 37;
const QUOTED: u8 = 38;
const STATEMENT_ACCEPTED: u8 = 39;
const STATEMENT_DISPUTED: u8 = 40;
pub(super) const FIRST: u8 = PRICES_SET;
pub(super) const LAST: u8 = STATEMENT_DISPUTED;

/// (kind, name) of every exit kind.
pub(super) const KINDS: &[(u8, &str)] = &[
    (PRICES_SET, "exit.prices_set"),
    (ACCRUED, "exit.accrued"),
    (COUNTER_RESET, "exit.counter_reset"),
    (STATEMENT_ISSUED, "exit.statement_issued"),
    (STATEMENT_SIGNED, "exit.statement_signed"),
    (BOUND, "exit.bound"),
    (QUOTED, "exit.quoted"),
    (STATEMENT_ACCEPTED, "exit.statement_accepted"),
    (STATEMENT_DISPUTED, "exit.statement_disputed"),
];

pub(super) fn name(e: &ExitEvent) -> &'static str {
    match e {
        ExitEvent::PricesSet { .. } => "exit.prices_set",
        ExitEvent::Accrued { .. } => "exit.accrued",
        ExitEvent::CounterReset { .. } => "exit.counter_reset",
        ExitEvent::StatementIssued(_) => "exit.statement_issued",
        ExitEvent::StatementSigned { .. } => "exit.statement_signed",
        ExitEvent::Bound { .. } => "exit.bound",
        ExitEvent::Quoted { .. } => "exit.quoted",
        ExitEvent::StatementAccepted { .. } => "exit.statement_accepted",
        ExitEvent::StatementDisputed { .. } => "exit.statement_disputed",
    }
}

pub(super) fn encode(e: &ExitEvent, buf: &mut Vec<u8>) {
    match e {
        ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte } => {
            body(buf, PRICES_SET, &(user, exit_price_per_byte, path_price_per_byte))
        }
        ExitEvent::Accrued {
            user,
            download_bytes,
            upload_bytes,
            exit_price_per_byte,
            path_price_per_byte,
        } => body(
            buf,
            ACCRUED,
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
            COUNTER_RESET,
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
        ExitEvent::StatementIssued(s) => body(buf, STATEMENT_ISSUED, s),
        ExitEvent::StatementSigned { user, seq, signature } => {
            body(buf, STATEMENT_SIGNED, &(user, seq, signature))
        }
        ExitEvent::Bound { exit } => body(buf, BOUND, &(exit,)),
        ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
            body(buf, QUOTED, &(exit, exit_price_per_byte, path_price_per_byte))
        }
        ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes } => {
            body(buf, STATEMENT_ACCEPTED, &(statement, own_rx_bytes, own_tx_bytes))
        }
        ExitEvent::StatementDisputed { exit, seq, reason, by } => {
            body(buf, STATEMENT_DISPUTED, &(exit, seq, reason, Amount(*by)))
        }
    }
}

pub(super) fn decode(k: u8, rest: &[u8]) -> Result<ExitEvent, DecodeError> {
    Ok(match k {
        PRICES_SET => {
            let (user, exit_price_per_byte, path_price_per_byte): (Address, u64, u64) = read(k, rest)?;
            ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte }
        }
        ACCRUED => {
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
        COUNTER_RESET => {
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
        STATEMENT_ISSUED => ExitEvent::StatementIssued(read(k, rest)?),
        STATEMENT_SIGNED => {
            let (user, seq, signature): (Address, u64, Signature) = read(k, rest)?;
            ExitEvent::StatementSigned { user, seq, signature }
        }
        BOUND => {
            let (exit,): (Address,) = read(k, rest)?;
            ExitEvent::Bound { exit }
        }
        QUOTED => {
            let (exit, exit_price_per_byte, path_price_per_byte): (Address, u64, u64) = read(k, rest)?;
            ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte }
        }
        STATEMENT_ACCEPTED => {
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
