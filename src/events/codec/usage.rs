//! Usage kinds (1, 2): what the counters say each neighbour link carried.
//!
//! | kind | event | body (v2 and later) |
//! | --- | --- | --- |
//! | 1 | usage accrued | `[[neighbour, destination], tx_bytes, rx_bytes, tx_price \| nil]` |
//! | 2 | counter reset | `[[neighbour, destination], tx_reset, rx_reset, tx_counted, rx_counted, tx_observed, rx_observed]` |
//!
//! Version 1 differs in kind 1, whose body had no price: `[[neighbour, destination], tx_bytes,
//! rx_bytes]`. It is upcast to an unpriced record (`price_per_byte: None`), which says exactly
//! what v1 knew.

use super::{body, read, DecodeError};
use crate::events::usage::{Link, UsageEvent, UsageRecord};

const ACCRUED: u8 = 1;
const COUNTER_RESET: u8 = 2;
pub(super) const FIRST: u8 = ACCRUED;
pub(super) const LAST: u8 = COUNTER_RESET;

/// (kind, name) of every usage kind.
pub(super) const KINDS: &[(u8, &str)] = &[(ACCRUED, "usage.accrued"), (COUNTER_RESET, "usage.counter_reset")];

pub(super) fn name(e: &UsageEvent) -> &'static str {
    match e {
        UsageEvent::Accrued(_) => "usage.accrued",
        UsageEvent::CounterReset(_) => "usage.counter_reset",
    }
}

pub(super) fn encode(e: &UsageEvent, buf: &mut Vec<u8>) {
    match e {
        UsageEvent::Accrued(r) => body(buf, ACCRUED, r),
        UsageEvent::CounterReset(r) => body(buf, COUNTER_RESET, r),
    }
}

pub(super) fn decode(version: u8, k: u8, rest: &[u8]) -> Result<UsageEvent, DecodeError> {
    Ok(match (version, k) {
        (1, ACCRUED) => {
            let (link, tx_bytes, rx_bytes): (Link, u64, u64) = read(k, rest)?;
            UsageEvent::Accrued(UsageRecord { link, tx_bytes, rx_bytes, price_per_byte: None })
        }
        (_, ACCRUED) => UsageEvent::Accrued(read(k, rest)?),
        _ => UsageEvent::CounterReset(read(k, rest)?),
    })
}
