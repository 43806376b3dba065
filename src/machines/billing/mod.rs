//! The billing machine: pay per forward, end to end, as one pure state machine.
//!
//! It composes three parts that share one event stream:
//! - usage accrual ([`UsageMachine`](crate::machines::usage::UsageMachine)): counters in, usage records out, each record carrying
//!   the price the neighbour quoted for our tx bytes and the lowest price we advertised to it
//!   for its rx bytes;
//! - the ledger ([`BillingLedger`]): cumulative owed / paid / expected / received per
//!   neighbour, folded from events only;
//! - payments ([`payments`]): one transfer at a time through intent → signed (nonce and hash
//!   durable) → broadcast → confirmed after N blocks; incoming transfers credited once, only
//!   from the neighbour's bound address, only to us, only when buried.
//!
//! At every window close it writes usage records, pays every neighbour it owes more than the
//! pay threshold, and throttles every neighbour that owes it more than the enforcement
//! threshold (lifted once its debt is back under the pay threshold). Integers only; no
//! amount depends on time.

mod ledger;
pub mod payments;

pub use ledger::{Account, BillingLedger, Payment, SEEN_RETENTION_BLOCKS};

use crate::events::billing::{
    BillingEffect, BillingEvent, BillingInput, BillingRecord, BillingTimer, Enforcement, OperatorCommand,
};
use crate::events::chain::{Address, Amount, ChainCommand};
use crate::events::usage::{UsageEffect, UsageInput, UsageTimer};
use crate::events::{Fold, Machine, Outbox, Stamp, TimerTable};
use crate::machines::usage::{Accrual, UsageConfig, UsageLedger, UsageOutbox};
use payments::ChainView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingConfig {
    pub usage: UsageConfig,
    /// Our payment address: incoming transfers count only if sent to it.
    pub our_address: Address,
    /// Blocks a transaction must be buried under before it counts (≥ 1).
    pub confirmations: u64,
    /// How often the chain is asked about the head, our payment and incoming transfers.
    pub chain_poll_ms: u64,
    /// The most blocks one incoming scan covers.
    pub max_scan_blocks: u64,
    /// Chain polls a signed payment may stay unmined before it is signed again with the same
    /// nonce at the fees of the moment (a replacement; 0: never). Each further replacement of
    /// the same payment waits twice as long (up to 2^8 times), so a payment stuck for long
    /// adds a hash to the log only now and then.
    pub replace_after_polls: u32,
}

/// The billing machine's durable state: the usage ledger its accrual keeps and the billing
/// ledger, the fold of its records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingState {
    pub usage: UsageLedger,
    pub billing: BillingLedger,
}

impl Fold for BillingState {
    type Event = BillingRecord;

    fn apply(&mut self, event: &BillingRecord) {
        match event {
            BillingRecord::Usage(e) => {
                self.usage.apply(e);
                self.billing.apply_usage(e);
            }
            BillingRecord::Billing(e) => self.billing.apply_billing(e),
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct BillingMachine {
    config: BillingConfig,
    accrual: Accrual,
    /// What accrual decided, before it joins `out` (its records folded into the billing
    /// ledger on the way).
    usage_out: UsageOutbox,
    state: BillingState,
    chain: ChainView,
    timers: TimerTable<BillingTimer>,
    out: Outbox<BillingRecord, BillingEffect>,
}

impl BillingMachine {
    /// A machine resuming from recovered ledgers, started at `now`. It asks the chain at once:
    /// payments left open by a crash are reconciled before anything new is paid.
    pub fn new(config: BillingConfig, usage: UsageLedger, ledger: BillingLedger, now: Stamp) -> Self {
        let mut timers = TimerTable::new();
        timers.set(BillingTimer::Chain, now);
        let mut machine = Self {
            config,
            accrual: Accrual::new(config.usage, now),
            usage_out: Outbox::new(),
            state: BillingState { usage, billing: ledger },
            chain: ChainView::new(config.confirmations.max(1)),
            timers,
            out: Outbox::new(),
        };
        if machine.state.billing.identity != Some(config.our_address) {
            machine.emit(BillingEvent::IdentitySet { address: config.our_address });
        }
        machine
    }

    pub fn usage(&self) -> &UsageLedger {
        &self.state.usage
    }

    pub fn ledger(&self) -> &BillingLedger {
        &self.state.billing
    }

    fn emit(&mut self, event: BillingEvent) {
        self.out.emit(&mut self.state, BillingRecord::Billing(event));
    }

    fn refuse(&mut self, reason: String) {
        self.out.now(BillingEffect::Refused { reason });
    }

    /// Moves what accrual decided into our outbox: its records (already in the usage ledger)
    /// are folded into the billing ledger too.
    fn drain_usage(&mut self) {
        while let Some(e) = self.usage_out.poll_event() {
            self.state.billing.apply_usage(&e);
            self.out.queue_folded(BillingRecord::Usage(e));
        }
        while let Some(effect) = self.usage_out.poll_effect() {
            match effect.action {
                UsageEffect::ReadCounters => self.out.now(BillingEffect::ReadCounters),
                // Billing settles its own records; nobody else needs the report.
                UsageEffect::Report(_) => {}
            }
        }
    }

    fn operator(&mut self, command: OperatorCommand) {
        match command {
            OperatorCommand::SetFee { fee_per_byte } => {
                if self.state.billing.fee_per_byte != fee_per_byte {
                    self.emit(BillingEvent::FeeSet { fee_per_byte });
                }
            }
            OperatorCommand::SetThresholds(t) => {
                if t.enforce.0 < t.pay.0.saturating_mul(2) {
                    self.refuse(format!(
                        "enforcement threshold {} must be at least twice the pay threshold {}: an honest neighbour \
                         owes up to its pay threshold plus counter lag before it pays",
                        t.enforce, t.pay
                    ));
                } else if self.state.billing.thresholds != Some(t) {
                    self.emit(BillingEvent::ThresholdsSet(t));
                }
            }
            OperatorCommand::Forgive { neighbour, amount, reason } => {
                let debt = self.state.billing.account(neighbour).its_debt();
                if reason.trim().is_empty() {
                    self.refuse(format!("forgiving n{} needs a reason", neighbour.0));
                } else if amount.0 == 0 || i128::try_from(amount.0).map_or(true, |a| a > debt) {
                    self.refuse(format!("n{} owes {debt}; cannot forgive {amount}", neighbour.0));
                } else {
                    self.emit(BillingEvent::Forgiven { neighbour, amount, reason });
                    self.enforce();
                }
            }
        }
    }

    /// Pays every bound neighbour we owe more than the pay threshold (one open payment per
    /// neighbour), then moves the payment queue on.
    fn settle(&mut self) {
        let Some(thresholds) = self.state.billing.thresholds else {
            return;
        };
        let due: Vec<_> = self
            .state
            .billing
            .accounts
            .iter()
            .filter_map(|(n, a)| {
                let debt = a.our_debt();
                let open = self.state.billing.open.values().any(|p| p.neighbour == *n);
                match (a.address, open) {
                    (Some(to), false) if debt > 0 && debt as u128 > thresholds.pay.0 => {
                        Some((*n, to, debt as u128))
                    }
                    _ => None,
                }
            })
            .collect();
        for (neighbour, to, amount) in due {
            let id = crate::events::chain::PaymentId(self.state.billing.next_payment);
            self.emit(BillingEvent::PaymentIntended { id, neighbour, to, amount: Amount(amount) });
        }
        self.advance_payments();
    }

    /// Throttles neighbours past the enforcement threshold; lifts it once their debt is back
    /// under the pay threshold.
    fn enforce(&mut self) {
        let Some(t) = self.state.billing.thresholds else {
            return;
        };
        let changes: Vec<_> = self
            .state
            .billing
            .accounts
            .iter()
            .filter_map(|(n, a)| {
                let debt = a.its_debt();
                let level = match a.enforcement {
                    Enforcement::None if debt > 0 && debt as u128 > t.enforce.0 => Enforcement::Throttled,
                    Enforcement::Throttled if debt <= 0 || (debt as u128) <= t.pay.0 => Enforcement::None,
                    _ => return None,
                };
                Some((*n, level))
            })
            .collect();
        for (neighbour, level) in changes {
            self.emit(BillingEvent::EnforcementChanged { neighbour, level });
            self.out.now(BillingEffect::Enforce { neighbour, level });
        }
    }

    fn chain_command(&mut self, command: ChainCommand) {
        // Chain commands that commit to a payment (sign, send) wait for the events behind
        // them; the others are questions and go at once.
        match command {
            ChainCommand::Sign { .. } | ChainCommand::Send { .. } => {
                self.out.when_durable(BillingEffect::Chain(command))
            }
            _ => self.out.now(BillingEffect::Chain(command)),
        }
    }
}

impl crate::machines::Resync for BillingMachine {
    /// As after a restart of this machine: durable ledgers from the log, the chain asked again
    /// at once (a payment whose record was refused was never signed or sent; what the chain
    /// shows is reconciled by nonce), readings and prices kept.
    fn resync(&mut self, at: Stamp, durable: &crate::machines::NodeState) {
        self.state = BillingState { usage: durable.usage.clone(), billing: durable.billing.clone() };
        self.chain = ChainView::new(self.config.confirmations.max(1));
        self.timers.set(BillingTimer::Chain, at);
        if self.state.billing.identity != Some(self.config.our_address) {
            self.emit(BillingEvent::IdentitySet { address: self.config.our_address });
        }
    }
}

impl Machine for BillingMachine {
    type Input = BillingInput;
    type Event = BillingRecord;
    type Effect = BillingEffect;
    type Timer = BillingTimer;
    type State = BillingState;

    fn handle(&mut self, _at: Stamp, input: BillingInput) {
        match input {
            BillingInput::Counters(samples) => {
                self.accrual.handle(&mut self.state.usage, &mut self.usage_out, UsageInput::Counters(samples))
            }
            BillingInput::PriceQuoted { link, price_per_byte } => self.accrual.handle(
                &mut self.state.usage,
                &mut self.usage_out,
                UsageInput::PriceSelected { link, price_per_byte },
            ),
            BillingInput::PriceAdvertised { link, price_per_byte } => {
                if self.state.billing.advertised.get(&link).map(|a| a.now) != Some(price_per_byte) {
                    self.emit(BillingEvent::PriceAdvertised { link, price_per_byte });
                }
            }
            BillingInput::BindNeighbour { neighbour, address } => {
                if self.state.billing.account(neighbour).address != Some(address) {
                    self.emit(BillingEvent::NeighbourBound { neighbour, address });
                }
            }
            BillingInput::Operator(command) => self.operator(command),
            BillingInput::ExitStatementAccepted { neighbour, amount_due } => {
                // Statements are cumulative: only an increase is news (a repeat or an older
                // statement arriving late changes nothing).
                if amount_due.0 > self.state.billing.account(neighbour).exit_due.0 {
                    self.emit(BillingEvent::ExitDue { neighbour, amount_due });
                }
            }
            BillingInput::Chain(observation) => {
                self.observe_chain(observation);
                self.enforce();
            }
        }
        self.drain_usage();
    }

    fn handle_timeout(&mut self, at: Stamp, timer: BillingTimer) {
        match timer {
            BillingTimer::Poll => {
                self.accrual.handle_timeout(&mut self.state.usage, &mut self.usage_out, at, UsageTimer::Poll)
            }
            BillingTimer::Window => {
                self.accrual.handle_timeout(
                    &mut self.state.usage,
                    &mut self.usage_out,
                    at,
                    UsageTimer::Window,
                );
                self.drain_usage();
                self.settle();
                self.enforce();
            }
            BillingTimer::Chain => {
                self.poll_chain();
                self.timers.set(BillingTimer::Chain, at.plus_ms(self.config.chain_poll_ms));
            }
        }
        self.drain_usage();
    }

    fn state(&self) -> &BillingState {
        &self.state
    }

    fn outbox(&mut self) -> &mut Outbox<BillingRecord, BillingEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, BillingTimer)> {
        let usage = self.accrual.poll_timeout().map(|(at, t)| {
            (
                at,
                match t {
                    UsageTimer::Poll => BillingTimer::Poll,
                    UsageTimer::Window => BillingTimer::Window,
                },
            )
        });
        match (usage, self.timers.earliest()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
