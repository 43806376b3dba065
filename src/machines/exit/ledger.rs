//! The durable state of both exit roles: the fold of exit events, nothing else.

use crate::events::chain::{Address, Amount};
use crate::events::exit::{accrual_amount, DisputeReason, ExitEvent, Signature, Statement};
use crate::events::Fold;
use crate::machines::counter::Reset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Exit events folded: the users we serve as an exit, and the exits we use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitLedger {
    /// Per user, as its exit.
    #[serde(with = "crate::machines::pairs")]
    pub served: BTreeMap<Address, Served>,
    /// Per exit, as its user.
    #[serde(with = "crate::machines::pairs")]
    pub exits: BTreeMap<Address, UsedExit>,
}

/// One user of ours, as its exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// Counter values up to which bytes have been accrued.
    pub download_counted: u64,
    pub upload_counted: u64,
    /// Bytes accrued across resets: what statements state.
    pub download_total: u64,
    pub upload_total: u64,
    /// What the user owes in total (base units).
    pub amount_due: Amount,
    /// Prices in force.
    pub exit_price_per_byte: u64,
    pub path_price_per_byte: u64,
    pub resets: u32,
    /// The last statement issued, and the seq and signature of the last one signed.
    pub issued: Option<Statement>,
    pub signed: Option<(u64, Signature)>,
}

/// One exit we use, as its user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedExit {
    pub bound: bool,
    /// The prices it quotes us now: (exit price, path price down).
    pub quote: (u64, u64),
    /// The highest prices quoted since the last accepted statement, and in the period before
    /// it. A statement covers bytes counted between the exit's two last readings, which
    /// precede our two last acceptances, so the higher of the two ceilings bounds its prices.
    pub ceiling: (u64, u64),
    pub ceiling_before: (u64, u64),
    /// The last statement we accepted, and our counts it was checked against.
    pub accepted: Option<Statement>,
    pub own_rx_bytes: u64,
    pub own_tx_bytes: u64,
    pub disputes: u32,
    pub last_dispute: Option<(u64, DisputeReason, u128)>,
}

impl UsedExit {
    /// What we owe this exit in total, by the statements we accepted.
    pub fn owed(&self) -> Amount {
        self.accepted.map_or(Amount(0), |s| s.amount_due)
    }
}

fn max2(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.max(b.0), a.1.max(b.1))
}

impl UsedExit {
    /// The highest (exit price, path price) that may have priced the bytes of the next statement.
    pub fn price_ceiling(&self) -> (u64, u64) {
        max2(self.ceiling, self.ceiling_before)
    }
}

impl Fold for ExitLedger {
    type Event = ExitEvent;

    fn apply(&mut self, event: &ExitEvent) {
        // Saturating: folding never panics on what a record says; the machines decide with
        // checked arithmetic and never emit an accrual that overflows.
        match event {
            ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte } => {
                let s = self.served.entry(*user).or_default();
                s.exit_price_per_byte = *exit_price_per_byte;
                s.path_price_per_byte = *path_price_per_byte;
            }
            ExitEvent::Accrued {
                user,
                download_bytes,
                upload_bytes,
                exit_price_per_byte,
                path_price_per_byte,
            } => {
                let s = self.served.entry(*user).or_default();
                s.download_counted = s.download_counted.saturating_add(*download_bytes);
                s.upload_counted = s.upload_counted.saturating_add(*upload_bytes);
                s.download_total = s.download_total.saturating_add(*download_bytes);
                s.upload_total = s.upload_total.saturating_add(*upload_bytes);
                let amount = accrual_amount(
                    *download_bytes,
                    *upload_bytes,
                    *exit_price_per_byte,
                    *path_price_per_byte,
                )
                .unwrap_or(u128::MAX);
                s.amount_due = Amount(s.amount_due.0.saturating_add(amount));
            }
            ExitEvent::CounterReset { user, download_reset, upload_reset, .. } => {
                let s = self.served.entry(*user).or_default();
                let reset = Reset { first: *download_reset, second: *upload_reset };
                (s.download_counted, s.upload_counted) = reset.apply((s.download_counted, s.upload_counted));
                s.resets = s.resets.saturating_add(1);
            }
            ExitEvent::StatementIssued(statement) => {
                self.served.entry(statement.user).or_default().issued = Some(*statement);
            }
            ExitEvent::StatementSigned { user, seq, signature } => {
                self.served.entry(*user).or_default().signed = Some((*seq, *signature));
            }
            ExitEvent::Bound { exit } => self.exits.entry(*exit).or_default().bound = true,
            ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
                let e = self.exits.entry(*exit).or_default();
                e.quote = (*exit_price_per_byte, *path_price_per_byte);
                e.ceiling = max2(e.ceiling, e.quote);
            }
            ExitEvent::StatementAccepted { statement, own_rx_bytes, own_tx_bytes } => {
                let e = self.exits.entry(statement.exit).or_default();
                e.accepted = Some(*statement);
                e.own_rx_bytes = *own_rx_bytes;
                e.own_tx_bytes = *own_tx_bytes;
                e.ceiling_before = e.ceiling;
                e.ceiling = e.quote;
            }
            ExitEvent::StatementDisputed { exit, seq, reason, by } => {
                // A statement naming an exit we do not use makes no entry: junk from the
                // network must not grow the state.
                if let Some(e) = self.exits.get_mut(exit) {
                    e.disputes = e.disputes.saturating_add(1);
                    e.last_dispute = Some((*seq, *reason, *by));
                }
            }
        }
    }
}
