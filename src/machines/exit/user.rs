//! The user's role: verify an exit's signed statements and accept or dispute them.

use super::ledger::ExitLedger;
use super::statement::{self, SignatureError};
use crate::events::chain::{Address, Amount};
use crate::events::exit::{
    DisputeReason, ExitEvent, ExitUserEffect, ExitUserInput, SignedStatement, Statement,
};
use crate::events::{Machine, Outbox, Stamp};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// Parts per million.
const PPM: u128 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitUserConfig {
    /// Our payment address: statements must name it.
    pub address: Address,
    /// How many more bytes than we received an exit may claim to have sent us, in parts per
    /// million of what we received (the loss on the way down).
    pub tolerance_ppm: u32,
}

/// The user's role (see [`super`]). It has no timers: statements arrive when the exit sends
/// them, and our counters are fed by the shell before (reading them is the usage machine's
/// job).
///
/// The checks, in order, each a [`DisputeReason`] when it fails:
/// 1. the statement names us (`WrongUser`) and an exit we use (`UnknownExit`);
/// 2. its signature recovers (`BadSignature`) to the named exit (`WrongSigner`);
/// 3. its seq is above the last accepted (`SeqNotIncreasing`; an exact repeat of the accepted
///    statement is a retransmission and is ignored), and its cumulative download, upload and
///    amount are not below the accepted ones (`…Decreased`);
/// 4. download ≤ our rx + ⌊rx × tolerance / 10⁶⌋ (`DownloadAboveTolerance`) and upload ≤ our tx
///    (`UploadAboveSent`): the exit cannot have received more than we sent;
/// 5. the amount grew by at most the new bytes at the highest prices quoted to us while they
///    could have been counted (`AmountAbovePrices`).
///
/// A statement that claims less than we counted is accepted: its counters were read before
/// ours, while bytes were still on the way, and a short count only costs the exit.
#[derive(Debug)]
pub struct ExitUserMachine {
    config: ExitUserConfig,
    ledger: ExitLedger,
    /// Our latest cumulative counts per exit (soft: the usage ledger keeps them).
    own: BTreeMap<Address, (u64, u64)>,
    out: Outbox<ExitEvent, ExitUserEffect>,
}

impl ExitUserMachine {
    pub fn new(config: ExitUserConfig, ledger: ExitLedger) -> Self {
        Self { config, ledger, own: BTreeMap::new(), out: Outbox::new() }
    }

    fn emit(&mut self, event: ExitEvent) {
        self.out.emit(&mut self.ledger, event);
    }

    fn receive(&mut self, signed: SignedStatement) {
        let s = signed.statement;
        let accepted = self.ledger.exits.get(&s.exit).and_then(|e| e.accepted);
        if accepted == Some(s) {
            return; // a retransmission of what we already accepted
        }
        let (own_rx_bytes, own_tx_bytes) = self.own.get(&s.exit).copied().unwrap_or_default();
        match self.check(&signed, own_rx_bytes, own_tx_bytes) {
            Ok(()) => {
                self.emit(ExitEvent::StatementAccepted { statement: s, own_rx_bytes, own_tx_bytes });
                self.out.when_durable(ExitUserEffect::Owe { exit: s.exit, amount_due: s.amount_due });
            }
            Err((reason, by)) => {
                self.emit(ExitEvent::StatementDisputed { exit: s.exit, seq: s.seq, reason, by })
            }
        }
    }

    fn check(&self, signed: &SignedStatement, own_rx: u64, own_tx: u64) -> Result<(), (DisputeReason, u128)> {
        let s: &Statement = &signed.statement;
        if s.user != self.config.address {
            return Err((DisputeReason::WrongUser, 0));
        }
        let exit =
            self.ledger.exits.get(&s.exit).filter(|e| e.bound).ok_or((DisputeReason::UnknownExit, 0))?;
        match statement::verify(s, &signed.signature) {
            Ok(()) => {}
            Err(SignatureError::Malformed) => return Err((DisputeReason::BadSignature, 0)),
            Err(SignatureError::WrongSigner(_)) => return Err((DisputeReason::WrongSigner, 0)),
        }
        let last = exit.accepted.unwrap_or(Statement {
            user: s.user,
            exit: s.exit,
            seq: 0,
            download_bytes: 0,
            upload_bytes: 0,
            amount_due: Amount(0),
        });
        if s.seq <= last.seq {
            return Err((DisputeReason::SeqNotIncreasing, u128::from(last.seq - s.seq)));
        }
        let below = |now: u128, before: u128| before.checked_sub(now).filter(|d| *d > 0);
        if let Some(d) = below(s.download_bytes.into(), last.download_bytes.into()) {
            return Err((DisputeReason::DownloadDecreased, d));
        }
        if let Some(d) = below(s.upload_bytes.into(), last.upload_bytes.into()) {
            return Err((DisputeReason::UploadDecreased, d));
        }
        if let Some(d) = below(s.amount_due.0, last.amount_due.0) {
            return Err((DisputeReason::AmountDecreased, d));
        }
        let rx = u128::from(own_rx);
        let download_limit = rx + rx * u128::from(self.config.tolerance_ppm) / PPM;
        if let Some(d) = u128::from(s.download_bytes).checked_sub(download_limit).filter(|d| *d > 0) {
            return Err((DisputeReason::DownloadAboveTolerance, d));
        }
        if let Some(d) = u128::from(s.upload_bytes).checked_sub(own_tx.into()).filter(|d| *d > 0) {
            return Err((DisputeReason::UploadAboveSent, d));
        }
        let (exit_price, path_price) = exit.price_ceiling();
        let new_download = u128::from(s.download_bytes - last.download_bytes);
        let new_upload = u128::from(s.upload_bytes - last.upload_bytes);
        let allowed = new_download
            .checked_mul(u128::from(exit_price) + u128::from(path_price))
            .and_then(|d| d.checked_add(new_upload * u128::from(exit_price)))
            .unwrap_or(u128::MAX);
        let grown = s.amount_due.0 - last.amount_due.0;
        if let Some(d) = grown.checked_sub(allowed).filter(|d| *d > 0) {
            return Err((DisputeReason::AmountAbovePrices, d));
        }
        Ok(())
    }
}

impl crate::machines::Resync for ExitUserMachine {
    fn resync(&mut self, _at: Stamp, durable: &crate::machines::NodeState) {
        self.ledger = durable.exit.clone();
    }
}

impl Machine for ExitUserMachine {
    type Input = ExitUserInput;
    type Event = ExitEvent;
    type Effect = ExitUserEffect;
    /// The user's role has no deadlines.
    type Timer = Infallible;
    type State = ExitLedger;

    fn handle(&mut self, _at: Stamp, input: ExitUserInput) {
        match input {
            ExitUserInput::Bind { exit } => {
                if !self.ledger.exits.get(&exit).is_some_and(|e| e.bound) {
                    self.emit(ExitEvent::Bound { exit });
                }
            }
            ExitUserInput::Quoted { exit, exit_price_per_byte, path_price_per_byte } => {
                let known = self.ledger.exits.get(&exit).filter(|e| e.bound);
                if known.is_some_and(|e| e.quote != (exit_price_per_byte, path_price_per_byte)) {
                    self.emit(ExitEvent::Quoted { exit, exit_price_per_byte, path_price_per_byte });
                }
            }
            ExitUserInput::OwnCounters { exit, rx_bytes, tx_bytes } => {
                self.own.insert(exit, (rx_bytes, tx_bytes));
            }
            ExitUserInput::Statement(signed) => self.receive(signed),
        }
    }

    fn handle_timeout(&mut self, _at: Stamp, timer: Infallible) {
        match timer {}
    }

    fn state(&self) -> &ExitLedger {
        &self.ledger
    }

    fn outbox(&mut self) -> &mut Outbox<ExitEvent, ExitUserEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, Infallible)> {
        None
    }
}
