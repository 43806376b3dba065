//! The usage machine: cumulative per-(neighbour, destination) byte counters in, usage records
//! out. Billing grows from it.
//!
//! Counters come from the kernel (nftables counters on each tunnel), cumulative and
//! monotonic. The machine keeps, durably, the counter value up to which each link's bytes
//! have been accounted ([`LinkUsage::tx_counted`]); everything above it is pending. At the end
//! of each window it writes one [`UsageRecord`] per link that carried traffic, at the price in
//! force, and reports it once durable.
//!
//! Why this survives crashes without losing bytes: pending bytes live in the kernel counter,
//! not in memory. After a daemon restart the first reading is still above the durable
//! `tx_counted`, and the difference is accrued. After a reboot the kernel counter starts from
//! zero, the reading is below `tx_counted`, and that is recorded as a [`CounterReset`] (the
//! bytes between the last record and the reboot are unknowable and are not invented).
//!
//! Tx bytes are priced at what the neighbour quotes us for the destination; a change of quote
//! closes the link's pending bytes at the old quote first, so each record has exactly one
//! price, written in it. (What rx bytes are expected to pay is billing's business: see
//! `machines::billing`.)

use crate::events::usage::{
    CounterReset, CounterSample, Link, UsageEffect, UsageEvent, UsageInput, UsageRecord, UsageTimer,
};
use crate::events::{Fold, Machine, Outbox, Stamp, TimerTable};
use crate::machines::counter::{CounterPair, Reset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageConfig {
    /// How often counters are read.
    pub poll_ms: u64,
    /// How often pending usage is written as records.
    pub window_ms: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self { poll_ms: 10_000, window_ms: 60_000 }
    }
}

/// Durable usage per link: the fold of usage events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLedger {
    #[serde(with = "crate::machines::pairs")]
    pub links: BTreeMap<Link, LinkUsage>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkUsage {
    /// Counter values up to which bytes have been recorded.
    pub tx_counted: u64,
    pub rx_counted: u64,
    /// Bytes recorded in all usage records, across resets.
    pub tx_total: u64,
    pub rx_total: u64,
    pub records: u64,
    pub resets: u32,
}

impl Fold for UsageLedger {
    type Event = UsageEvent;

    fn apply(&mut self, event: &UsageEvent) {
        // Saturating: a log is trusted once its CRC checks, but folding must never panic on
        // what a record says. No honest counter reaches 2^64 bytes.
        match event {
            UsageEvent::Accrued(r) => {
                let link = self.links.entry(r.link).or_default();
                link.tx_counted = link.tx_counted.saturating_add(r.tx_bytes);
                link.rx_counted = link.rx_counted.saturating_add(r.rx_bytes);
                link.tx_total = link.tx_total.saturating_add(r.tx_bytes);
                link.rx_total = link.rx_total.saturating_add(r.rx_bytes);
                link.records += 1;
            }
            UsageEvent::CounterReset(r) => {
                let link = self.links.entry(r.link).or_default();
                let reset = Reset { first: r.tx_reset, second: r.rx_reset };
                (link.tx_counted, link.rx_counted) = reset.apply((link.tx_counted, link.rx_counted));
                link.resets = link.resets.saturating_add(1);
            }
        }
    }
}

/// The decisions of usage accrual over a ledger it is handed: counter readings, prices and
/// the two timers (soft state), the ledger itself being the durable state of whichever
/// machine owns it (the usage machine, or the billing machine with its own ledger beside).
#[derive(Debug)]
pub struct Accrual {
    config: UsageConfig,
    /// Latest counter readings (soft: the kernel keeps the truth).
    observed: BTreeMap<Link, CounterPair>,
    /// Price per byte in force per link (soft: routing re-announces it).
    prices: BTreeMap<Link, Option<u64>>,
    timers: TimerTable<UsageTimer>,
}

/// Where accrual's decisions go.
pub type UsageOutbox = Outbox<UsageEvent, UsageEffect>;

impl Accrual {
    /// Started at `now`: it reads counters at once and closes its first window one window
    /// later.
    pub fn new(config: UsageConfig, now: Stamp) -> Self {
        let mut timers = TimerTable::new();
        timers.set(UsageTimer::Poll, now);
        timers.set(UsageTimer::Window, now.plus_ms(config.window_ms));
        Self { config, observed: BTreeMap::new(), prices: BTreeMap::new(), timers }
    }

    /// Bytes read from the counters but not yet in a record of `ledger`.
    pub fn pending(&self, ledger: &UsageLedger, link: Link) -> (u64, u64) {
        let counted = ledger.links.get(&link).copied().unwrap_or_default();
        self.observed.get(&link).map_or((0, 0), |c| c.pending((counted.tx_counted, counted.rx_counted)))
    }

    pub fn handle(&mut self, ledger: &mut UsageLedger, out: &mut UsageOutbox, input: UsageInput) {
        match input {
            UsageInput::Counters(samples) => {
                for sample in samples {
                    self.observe(ledger, out, sample);
                }
            }
            UsageInput::PriceSelected { link, price_per_byte } => {
                let old = self.prices.get(&link).copied().flatten();
                if old != price_per_byte {
                    self.accrue(ledger, out, link);
                    self.prices.insert(link, price_per_byte);
                }
            }
        }
    }

    pub fn handle_timeout(
        &mut self,
        ledger: &mut UsageLedger,
        out: &mut UsageOutbox,
        at: Stamp,
        timer: UsageTimer,
    ) {
        match timer {
            UsageTimer::Poll => {
                out.now(UsageEffect::ReadCounters);
                self.timers.set(UsageTimer::Poll, at.plus_ms(self.config.poll_ms));
            }
            UsageTimer::Window => {
                let links: Vec<Link> = self.observed.keys().copied().collect();
                for link in links {
                    self.accrue(ledger, out, link);
                }
                self.timers.set(UsageTimer::Window, at.plus_ms(self.config.window_ms));
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<(Stamp, UsageTimer)> {
        self.timers.earliest()
    }

    fn observe(&mut self, ledger: &mut UsageLedger, out: &mut UsageOutbox, sample: CounterSample) {
        let link = sample.link;
        let counted = ledger.links.get(&link).copied().unwrap_or_default();
        let reading = (sample.tx_bytes, sample.rx_bytes);
        let counter = self.observed.get(&link).copied().unwrap_or_default();
        if let Some(reset) = counter.reset_by(reading, (counted.tx_counted, counted.rx_counted)) {
            // Record what was read before the reset at the price it was carried at, then the
            // reset itself.
            self.accrue(ledger, out, link);
            let counted = ledger.links.get(&link).copied().unwrap_or_default();
            let reset = CounterReset {
                link,
                tx_reset: reset.first,
                rx_reset: reset.second,
                tx_counted: counted.tx_counted,
                rx_counted: counted.rx_counted,
                tx_observed: sample.tx_bytes,
                rx_observed: sample.rx_bytes,
            };
            out.emit(ledger, UsageEvent::CounterReset(reset));
        }
        self.observed.entry(link).or_default().record(reading);
    }

    /// Writes the link's pending bytes as a record, if there are any.
    fn accrue(&mut self, ledger: &mut UsageLedger, out: &mut UsageOutbox, link: Link) {
        let (tx_bytes, rx_bytes) = self.pending(ledger, link);
        if tx_bytes == 0 && rx_bytes == 0 {
            return;
        }
        let price_per_byte = self.prices.get(&link).copied().flatten();
        let record = UsageRecord { link, tx_bytes, rx_bytes, price_per_byte };
        out.emit(ledger, UsageEvent::Accrued(record));
        out.when_durable(UsageEffect::Report(record));
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct UsageMachine {
    accrual: Accrual,
    ledger: UsageLedger,
    out: UsageOutbox,
}

impl UsageMachine {
    /// A machine resuming from `ledger` (empty on first start, recovered otherwise), started
    /// at `now`: it reads counters at once and closes its first window one window later.
    pub fn new(config: UsageConfig, ledger: UsageLedger, now: Stamp) -> Self {
        Self { accrual: Accrual::new(config, now), ledger, out: Outbox::new() }
    }

    /// Bytes read from the counters but not yet in a record, per link.
    pub fn pending(&self, link: Link) -> (u64, u64) {
        self.accrual.pending(&self.ledger, link)
    }
}

impl crate::machines::Resync for UsageMachine {
    /// The readings and prices stay: bytes whose record was refused are pending again, above
    /// the durable `tx_counted`, and go into the next window's record.
    fn resync(&mut self, _at: Stamp, durable: &crate::machines::NodeState) {
        self.ledger = durable.usage.clone();
    }
}

impl Machine for UsageMachine {
    type Input = UsageInput;
    type Event = UsageEvent;
    type Effect = UsageEffect;
    type Timer = UsageTimer;
    type State = UsageLedger;

    fn handle(&mut self, _at: Stamp, input: UsageInput) {
        self.accrual.handle(&mut self.ledger, &mut self.out, input);
    }

    fn handle_timeout(&mut self, at: Stamp, timer: UsageTimer) {
        self.accrual.handle_timeout(&mut self.ledger, &mut self.out, at, timer);
    }

    fn state(&self) -> &UsageLedger {
        &self.ledger
    }

    fn outbox(&mut self) -> &mut Outbox<UsageEvent, UsageEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, UsageTimer)> {
        self.accrual.poll_timeout()
    }
}

#[cfg(test)]
mod tests;
