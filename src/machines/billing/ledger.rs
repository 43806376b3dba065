//! The billing ledger: the fold of billing events. Per neighbour, cumulative amounts in base
//! units; balances are differences of cumulative sums, so nothing is ever "reset" or clamped.

use crate::events::billing::{BillingEvent, Enforcement, PaymentFailure, Thresholds};
use crate::events::chain::{Address, Amount, PaymentId, TxHash};
use crate::events::usage::{Link, NeighbourId, UsageEvent};
use crate::events::{Event, Fold};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What we and one neighbour owe each other, cumulatively.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Option<Address>,
    /// What our tx bytes through it cost, at the prices it quoted.
    pub owed: Amount,
    /// What we paid it, confirmed on chain.
    pub paid: Amount,
    /// What we intend to pay it or have sent and not yet seen confirmed.
    pub in_flight: Amount,
    /// What its bytes through us are worth at the lowest price we advertised to it.
    pub expected: Amount,
    /// What it paid us, confirmed on chain.
    pub received: Amount,
    /// What it paid beyond what we expected, kept as its credit.
    pub credited: Amount,
    pub forgiven: Amount,
    pub enforcement: Enforcement,
    /// What our exit's accepted statements bill us in total, when this neighbour is the
    /// tunnel to our exit (its increases are added to `owed`).
    #[serde(default)]
    pub exit_due: Amount,
}

impl Account {
    /// What we still owe it beyond what is paid or on its way (negative: we paid ahead).
    pub fn our_debt(&self) -> i128 {
        signed(self.owed) - signed(self.paid) - signed(self.in_flight)
    }

    /// What it owes us (negative: it has credit with us).
    pub fn its_debt(&self) -> i128 {
        signed(self.expected) - signed(self.received) - signed(self.forgiven)
    }
}

/// Amounts are below 2^127 in any real ledger; beyond, they saturate rather than wrap.
fn signed(a: Amount) -> i128 {
    i128::try_from(a.0).unwrap_or(i128::MAX)
}

fn add(a: &mut Amount, b: u128) {
    a.0 = a.0.saturating_add(b);
}

fn sub(a: &mut Amount, b: u128) {
    a.0 = a.0.saturating_sub(b);
}

/// Where one of our payments stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub neighbour: NeighbourId,
    pub to: Address,
    pub amount: Amount,
    /// Set once signed: the nonce and every hash signed for it (a replacement adds one).
    pub nonce: Option<u64>,
    pub hashes: Vec<TxHash>,
    /// The latest signed transaction, so a restart can broadcast the very same bytes.
    pub raw: Vec<u8>,
}

/// A price we advertise on one link: now, the lowest since the link's last usage record, and
/// the lowest during the interval of that record.
///
/// A record's rx bytes are expected at the lowest of `low` and `before`: bytes the neighbour
/// sent at an old price (our new quote still travelling to it, our counters read only at the
/// next poll) can land in the record after the one during which the price changed. Covering
/// two intervals absorbs quote delay plus counter lag up to one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advertised {
    pub now: u64,
    pub low: u64,
    /// The lowest price of the previous record's interval (`None` before the first record, and
    /// in snapshots written before this field existed).
    #[serde(default)]
    pub before: Option<u64>,
}

impl Advertised {
    /// The price a record closed now expects its rx bytes at.
    pub fn rx_price(&self) -> u64 {
        self.low.min(self.before.unwrap_or(self.low))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingLedger {
    /// Our own payment address.
    pub identity: Option<Address>,
    pub fee_per_byte: u64,
    /// What we advertise to each neighbour for each destination.
    #[serde(with = "crate::machines::pairs")]
    pub advertised: BTreeMap<Link, Advertised>,
    pub thresholds: Option<Thresholds>,
    #[serde(with = "crate::machines::pairs")]
    pub accounts: BTreeMap<NeighbourId, Account>,
    /// Payments not yet confirmed or failed, oldest first.
    #[serde(with = "crate::machines::pairs")]
    pub open: BTreeMap<PaymentId, Payment>,
    pub next_payment: u64,
    /// The nonce the next signed transaction uses.
    pub next_nonce: u64,
    pub payments_confirmed: u64,
    pub payments_failed: u64,
    /// Incoming transfers already credited: (tx hash, log index) with their block, so none is
    /// credited twice. Entries far below the scanned block are pruned.
    #[serde(with = "crate::machines::pairs")]
    pub seen: BTreeMap<(TxHash, u32), u64>,
    pub scanned_to_block: u64,
    /// Whether first contact with the chain is recorded (any `IncomingScanned`, even at
    /// genesis): from then on scans resume from `scanned_to_block`, never skip ahead.
    /// Snapshots written before this field existed decode it as `false`; they only lacked it
    /// when `scanned_to_block` was 0 too.
    #[serde(default)]
    pub chain_met: bool,
}

/// How far below the scanned block a seen transfer is remembered. Scans restart from
/// `scanned_to_block`, so only a reorg deeper than this could show an old transfer again.
pub const SEEN_RETENTION_BLOCKS: u64 = 100_000;

impl BillingLedger {
    pub fn account(&self, n: NeighbourId) -> Account {
        self.accounts.get(&n).cloned().unwrap_or_default()
    }

    /// The neighbour bound to `address`, if any.
    pub fn neighbour_of(&self, address: Address) -> Option<NeighbourId> {
        self.accounts.iter().find(|(_, a)| a.address == Some(address)).map(|(n, _)| *n)
    }

    /// Folds a usage record into the accounts: its tx bytes at the neighbour's quoted price
    /// (in the record) are owed; its rx bytes at the lowest price we advertised on the link
    /// since the record before its previous one (`Advertised`) are expected. u64 × u64
    /// always fits in u128.
    pub fn apply_usage(&mut self, event: &UsageEvent) {
        if let UsageEvent::Accrued(r) = event {
            let rx_price = self.advertised.get_mut(&r.link).map(|p| {
                let price = p.rx_price();
                p.before = Some(p.low);
                p.low = p.now; // the next interval starts at the price in force now
                price
            });
            let account = self.accounts.entry(r.link.neighbour).or_default();
            add(&mut account.owed, r.tx_amount());
            if let Some(p) = rx_price {
                add(&mut account.expected, u128::from(r.rx_bytes) * u128::from(p));
            }
        }
    }

    /// The price an rx byte on `link` is expected to pay if recorded now.
    pub fn rx_price(&self, link: Link) -> Option<u64> {
        self.advertised.get(&link).map(Advertised::rx_price)
    }

    pub fn seen_transfers(&self) -> BTreeSet<(TxHash, u32)> {
        self.seen.keys().copied().collect()
    }
}

/// The accounts are the fold of usage records and billing facts.
impl Fold for BillingLedger {
    type Event = Event;

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Usage(e) => self.apply_usage(e),
            Event::Billing(e) => self.apply_billing(e),
            Event::Incident(_) | Event::Exit(_) | Event::Routing(_) => {}
        }
    }
}

impl BillingLedger {
    pub fn apply_billing(&mut self, event: &BillingEvent) {
        match event {
            BillingEvent::IdentitySet { address } => self.identity = Some(*address),
            BillingEvent::ExitDue { neighbour, amount_due } => {
                let account = self.accounts.entry(*neighbour).or_default();
                if amount_due.0 > account.exit_due.0 {
                    add(&mut account.owed, amount_due.0 - account.exit_due.0);
                    account.exit_due = *amount_due;
                }
            }
            BillingEvent::NeighbourBound { neighbour, address } => {
                self.accounts.entry(*neighbour).or_default().address = Some(*address);
            }
            BillingEvent::FeeSet { fee_per_byte } => self.fee_per_byte = *fee_per_byte,
            BillingEvent::PriceAdvertised { link, price_per_byte } => {
                let p = *price_per_byte;
                self.advertised
                    .entry(*link)
                    .and_modify(|a| {
                        a.now = p;
                        a.low = a.low.min(p);
                    })
                    .or_insert(Advertised { now: p, low: p, before: None });
            }
            BillingEvent::ThresholdsSet(t) => self.thresholds = Some(*t),
            BillingEvent::PaymentIntended { id, neighbour, to, amount } => {
                add(&mut self.accounts.entry(*neighbour).or_default().in_flight, amount.0);
                self.open.insert(
                    *id,
                    Payment {
                        neighbour: *neighbour,
                        to: *to,
                        amount: *amount,
                        nonce: None,
                        hashes: Vec::new(),
                        raw: Vec::new(),
                    },
                );
                self.next_payment = self.next_payment.max(id.0 + 1);
            }
            BillingEvent::PaymentSigned { id, nonce, tx_hash, raw } => {
                if let Some(p) = self.open.get_mut(id) {
                    p.nonce = Some(*nonce);
                    if !p.hashes.contains(tx_hash) {
                        p.hashes.push(*tx_hash);
                    }
                    p.raw.clone_from(raw);
                }
            }
            BillingEvent::PaymentConfirmed { id, .. } => {
                if let Some(p) = self.open.remove(id) {
                    let account = self.accounts.entry(p.neighbour).or_default();
                    sub(&mut account.in_flight, p.amount.0);
                    add(&mut account.paid, p.amount.0);
                    if let Some(nonce) = p.nonce {
                        self.next_nonce = self.next_nonce.max(nonce + 1);
                    }
                    self.payments_confirmed += 1;
                }
            }
            BillingEvent::PaymentFailed { id, nonce_used, failure } => {
                if let Some(p) = self.open.remove(id) {
                    sub(&mut self.accounts.entry(p.neighbour).or_default().in_flight, p.amount.0);
                    if let (true, Some(nonce)) = (*nonce_used, p.nonce) {
                        self.next_nonce = self.next_nonce.max(nonce + 1);
                    }
                    debug_assert!(*nonce_used || *failure != PaymentFailure::Reverted);
                    self.payments_failed += 1;
                }
            }
            BillingEvent::PaymentReceived { neighbour, tx_hash, log_index, amount, block } => {
                add(&mut self.accounts.entry(*neighbour).or_default().received, amount.0);
                self.seen.insert((*tx_hash, *log_index), *block);
            }
            BillingEvent::IncomingScanned { to_block } => {
                self.chain_met = true;
                self.scanned_to_block = self.scanned_to_block.max(*to_block);
                let horizon = self.scanned_to_block.saturating_sub(SEEN_RETENTION_BLOCKS);
                self.seen.retain(|_, block| *block >= horizon);
            }
            BillingEvent::CreditApplied { neighbour, amount } => {
                add(&mut self.accounts.entry(*neighbour).or_default().credited, amount.0);
            }
            BillingEvent::Forgiven { neighbour, amount, .. } => {
                add(&mut self.accounts.entry(*neighbour).or_default().forgiven, amount.0);
            }
            BillingEvent::EnforcementChanged { neighbour, level } => {
                self.accounts.entry(*neighbour).or_default().enforcement = *level;
            }
        }
    }
}
