//! Exits: the exception to pay per forward. A user pays its exit for the traffic the exit
//! sends down to it (exit price plus the path price down) and for its upload (exit price); the
//! exit pays the forwarders on the way down as any sender does (that is ordinary billing).
//!
//! Two pure machines share one durable fold, [`ExitLedger`]:
//! - [`ExitMachine`], the exit's role: per-user tunnel counters in (cumulative, resets recorded
//!   as in [`crate::machines::usage`]), priced accruals and, on a timer, one cumulative
//!   [`crate::events::exit::Statement`] per user whose usage changed, which the shell
//!   is asked to sign with the payment key; the signed statement goes to the user once its
//!   signature is durable (persist, then send).
//! - [`ExitUserMachine`], the user's role: verifies a received statement (signature by the
//!   bound exit, seq increasing, cumulative values never decreasing, amount within the prices
//!   quoted) and compares it with its own counters within its loss tolerance. It accepts (what
//!   it owes the exit is the statement's amount due) or disputes, saying why and by how much.
//!
//! The signed bytes are in [`statement`]. Integers only; no amount depends on time.

mod ledger;
pub mod statement;
mod user;

pub use ledger::{ExitLedger, Served, UsedExit};
pub use user::{ExitUserConfig, ExitUserMachine};

use crate::events::chain::{Address, Amount};
use crate::events::exit::{
    accrual_amount, ExitEffect, ExitEvent, ExitInput, ExitTimer, SignedStatement, Statement, UserCounters,
};
use crate::events::{Machine, Outbox, Stamp, TimerTable};
use crate::machines::counter::CounterPair;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitConfig {
    /// Our payment address: statements name it, and it is the key that signs them.
    pub address: Address,
    /// How often the per-user counters are read.
    pub poll_ms: u64,
    /// How often statements are issued.
    pub statement_ms: u64,
}

/// The exit's role (see the module docs). Drive it as any machine: `handle`, drain
/// `poll_event` then `poll_effect`, re-arm `poll_timeout`.
#[derive(Debug)]
pub struct ExitMachine {
    config: ExitConfig,
    ledger: ExitLedger,
    /// Latest counter readings per user (soft: the kernel keeps the truth).
    observed: BTreeMap<Address, CounterPair>,
    timers: TimerTable<ExitTimer>,
    out: Outbox<ExitEvent, ExitEffect>,
}

impl ExitMachine {
    /// A machine resuming from `ledger` (empty on first start), started at `now`: it reads
    /// counters at once and issues its first statements one period later.
    pub fn new(config: ExitConfig, ledger: ExitLedger, now: Stamp) -> Self {
        let mut timers = TimerTable::new();
        timers.set(ExitTimer::Poll, now);
        timers.set(ExitTimer::Statement, now.plus_ms(config.statement_ms));
        Self { config, ledger, observed: BTreeMap::new(), timers, out: Outbox::new() }
    }

    fn emit(&mut self, event: ExitEvent) {
        self.out.emit(&mut self.ledger, event);
    }

    fn served(&self, user: Address) -> Served {
        self.ledger.served.get(&user).copied().unwrap_or_default()
    }

    /// Bytes read from the counters but not yet accrued.
    pub fn pending(&self, user: Address) -> (u64, u64) {
        let s = self.served(user);
        self.observed.get(&user).map_or((0, 0), |c| c.pending((s.download_counted, s.upload_counted)))
    }

    fn observe(&mut self, c: UserCounters) {
        let s = self.served(c.user);
        let reading = (c.download_bytes, c.upload_bytes);
        let counter = self.observed.get(&c.user).copied().unwrap_or_default();
        if let Some(reset) = counter.reset_by(reading, (s.download_counted, s.upload_counted)) {
            self.accrue(c.user);
            let s = self.served(c.user);
            self.emit(ExitEvent::CounterReset {
                user: c.user,
                download_reset: reset.first,
                upload_reset: reset.second,
                download_counted: s.download_counted,
                upload_counted: s.upload_counted,
                download_observed: c.download_bytes,
                upload_observed: c.upload_bytes,
            });
        }
        self.observed.entry(c.user).or_default().record(reading);
    }

    /// Records the user's pending bytes at the prices in force, if there are any and the
    /// amount fits; otherwise the bytes stay pending and the operator is told.
    fn accrue(&mut self, user: Address) {
        let (download_bytes, upload_bytes) = self.pending(user);
        if download_bytes == 0 && upload_bytes == 0 {
            return;
        }
        let s = self.served(user);
        let fits = accrual_amount(download_bytes, upload_bytes, s.exit_price_per_byte, s.path_price_per_byte)
            .and_then(|a| a.checked_add(s.amount_due.0))
            .is_some();
        if !fits {
            self.out.now(ExitEffect::Refused {
                reason: format!("the amount due by {user} would overflow u128; its bytes stay pending"),
            });
            return;
        }
        self.emit(ExitEvent::Accrued {
            user,
            download_bytes,
            upload_bytes,
            exit_price_per_byte: s.exit_price_per_byte,
            path_price_per_byte: s.path_price_per_byte,
        });
    }

    /// Issues a statement to every user whose totals moved since its last one, and asks again
    /// for the signature of a statement issued but never signed (lost to a crash or a failed
    /// signing).
    fn issue_statements(&mut self) {
        let users: Vec<Address> = self.observed.keys().chain(self.ledger.served.keys()).copied().collect();
        for user in users {
            self.accrue(user);
        }
        let users: Vec<Address> = self.ledger.served.keys().copied().collect();
        for user in users {
            let s = self.served(user);
            let current = (s.download_total, s.upload_total, s.amount_due);
            let last = s.issued.map(|i| (i.download_bytes, i.upload_bytes, i.amount_due));
            let moved = match last {
                Some(last) => last != current,
                None => current != (0, 0, Amount(0)),
            };
            if moved {
                let statement = Statement {
                    user,
                    exit: self.config.address,
                    seq: s.issued.map_or(1, |i| i.seq + 1),
                    download_bytes: s.download_total,
                    upload_bytes: s.upload_total,
                    amount_due: s.amount_due,
                };
                self.emit(ExitEvent::StatementIssued(statement));
                self.out.now(ExitEffect::SignStatement(statement));
            } else if let Some(issued) = s.issued {
                if s.signed.map(|(seq, _)| seq) != Some(issued.seq) {
                    self.out.now(ExitEffect::SignStatement(issued));
                }
            }
        }
    }
}

impl crate::machines::Resync for ExitMachine {
    fn resync(&mut self, _at: Stamp, durable: &crate::machines::NodeState) {
        self.ledger = durable.exit.clone();
    }
}

impl Machine for ExitMachine {
    type Input = ExitInput;
    type Event = ExitEvent;
    type Effect = ExitEffect;
    type Timer = ExitTimer;
    type State = ExitLedger;

    fn handle(&mut self, _at: Stamp, input: ExitInput) {
        match input {
            ExitInput::Counters(readings) => {
                for c in readings {
                    self.observe(c);
                }
            }
            ExitInput::Prices { user, exit_price_per_byte, path_price_per_byte } => {
                let s = self.served(user);
                if (s.exit_price_per_byte, s.path_price_per_byte)
                    != (exit_price_per_byte, path_price_per_byte)
                    || !self.ledger.served.contains_key(&user)
                {
                    // Bytes counted so far were carried at the old prices.
                    self.accrue(user);
                    self.emit(ExitEvent::PricesSet { user, exit_price_per_byte, path_price_per_byte });
                }
            }
            ExitInput::Signed { user, seq, signature } => {
                let s = self.served(user);
                let Some(statement) = s.issued.filter(|i| i.seq == seq) else {
                    return; // a late answer for a statement already superseded
                };
                if s.signed.map(|(seq, _)| seq) == Some(seq) {
                    return; // already signed and sent
                }
                self.emit(ExitEvent::StatementSigned { user, seq, signature });
                self.out.when_durable(ExitEffect::SendStatement(SignedStatement { statement, signature }));
            }
        }
    }

    fn handle_timeout(&mut self, at: Stamp, timer: ExitTimer) {
        match timer {
            ExitTimer::Poll => {
                self.out.now(ExitEffect::ReadCounters);
                self.timers.set(ExitTimer::Poll, at.plus_ms(self.config.poll_ms));
            }
            ExitTimer::Statement => {
                self.issue_statements();
                self.timers.set(ExitTimer::Statement, at.plus_ms(self.config.statement_ms));
            }
        }
    }

    fn state(&self) -> &ExitLedger {
        &self.ledger
    }

    fn outbox(&mut self) -> &mut Outbox<ExitEvent, ExitEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, ExitTimer)> {
        self.timers.earliest()
    }
}

#[cfg(test)]
mod tests;
