//! Cutting both logs at the payments they share: a payment the payer signed and the payee
//! received (the same transaction hash) closes a window, in the payer log at its intent and in
//! the payee log at its receipt; the last window is the open tail. Per window the payer's
//! owed and paid beside the payee's expected and received, and the running balance.

use std::collections::BTreeSet;
use std::fmt;

use lastmile::events::chain::{Amount, PaymentId, TxHash};
use serde::Serialize;

use super::sides::{PayeeSide, PayerSide, Usage};

/// Lowest and highest price per byte used in a window; `unpriced` if some bytes had none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Prices {
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub unpriced: bool,
}

impl Prices {
    fn add(&mut self, price: Option<u64>) {
        match price {
            Some(p) => {
                self.min = Some(self.min.map_or(p, |m| m.min(p)));
                self.max = Some(self.max.map_or(p, |m| m.max(p)));
            }
            None => self.unpriced = true,
        }
    }
}

impl fmt::Display for Prices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "@{a}")?,
            (Some(a), Some(b)) => write!(f, "@{a}..{b}")?,
            _ if self.unpriced => return write!(f, "unpriced"),
            _ => return write!(f, "@-"),
        }
        if self.unpriced {
            write!(f, " (some unpriced)")?;
        }
        Ok(())
    }
}

/// A payment as both logs (or one of them) show it.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentRef {
    /// The payer's payment id, if the payer log has it.
    pub id: Option<PaymentId>,
    pub tx_hash: Option<TxHash>,
    /// Confirmed on the payer side (`None`: not confirmed in its log).
    pub paid: Option<Amount>,
    /// Received on the payee side (`None`: not in its log).
    pub received: Option<Amount>,
    pub block: Option<u64>,
}

/// Signed amounts (balances, differences) as decimal strings in JSON, like [`Amount`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signed(pub i128);

impl Serialize for Signed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "amount", rename_all = "snake_case")]
pub enum WindowVerdict {
    Consistent,
    /// The payer accounted more than expected: loss or a price that fell; credit.
    Overpaid(Amount),
    Underpaid(Amount),
}

impl WindowVerdict {
    fn of(diff: i128) -> Self {
        match diff {
            0 => Self::Consistent,
            d if d > 0 => Self::Overpaid(Amount(d.unsigned_abs())),
            d => Self::Underpaid(Amount(d.unsigned_abs())),
        }
    }
}

impl fmt::Display for WindowVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Consistent => write!(f, "consistent"),
            Self::Overpaid(a) => write!(f, "overpaid by {a} (loss: credit)"),
            Self::Underpaid(a) => write!(f, "underpaid by {a}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// 1-based.
    pub index: usize,
    /// The payment found in both logs that closes it; `None` for the open tail.
    pub closed_by: Option<PaymentRef>,
    pub tx_bytes: u64,
    pub payer_prices: Prices,
    pub owed: Amount,
    /// Confirmed in the payer log, by the payments it decided in this window.
    pub paid: Amount,
    pub rx_bytes: u64,
    pub payee_prices: Prices,
    pub expected: Amount,
    pub received: Amount,
    /// `owed − expected` in this window.
    pub diff: Signed,
    /// `owed − expected`, cumulative up to the end of this window.
    pub balance: Signed,
    pub verdict: WindowVerdict,
}

/// A payment found in both logs, and where it cuts each.
#[derive(Debug, Clone)]
struct Boundary {
    /// Index of the payer's intent: the payer's records before it are in the window.
    payer_at: usize,
    /// Index of the payee's receipt (never before an earlier boundary's): the payee's records
    /// before it are in the window.
    payee_at: usize,
    payment: PaymentRef,
}

/// One side's figures in one window, before the cumulative pass: the payer's tx bytes, owed
/// and paid, or the payee's rx bytes, expected and received.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    bytes: u64,
    prices: Prices,
    /// Owed (payer) or expected (payee).
    amount: u128,
    /// Paid (payer) or received (payee).
    settled: u128,
}

impl Figures {
    fn add_usage(&mut self, u: &Usage) {
        self.bytes = self.bytes.saturating_add(u.bytes);
        if u.bytes > 0 {
            self.prices.add(u.price);
        }
        self.amount = self.amount.saturating_add(u.amount);
    }

    fn add_settled(&mut self, amount: Amount) {
        self.settled = self.settled.saturating_add(amount.0);
    }
}

/// Both sides' figures in one window.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    payer: Figures,
    payee: Figures,
}

/// Both logs cut into windows.
#[derive(Debug)]
pub(super) struct Cut {
    pub windows: Vec<Window>,
    /// Payments only one log shows.
    pub unmatched: Vec<PaymentRef>,
}

impl Cut {
    /// Cuts at the payments in both logs, in the payer's order; what the matching noticed (an
    /// amount that differs, a payment received but not confirmed, one still open) goes to
    /// `notes`. An empty open tail is dropped.
    pub fn of(payer: &PayerSide, payee: &PayeeSide, notes: &mut Vec<String>) -> Self {
        let Matched { boundaries, unmatched } = match_payments(payer, payee, notes);
        let mut acc = vec![Acc::default(); boundaries.len() + 1];
        let payer_window = |at: usize| boundaries.iter().take_while(|b| b.payer_at < at).count();
        let payee_window = |at: usize| boundaries.iter().take_while(|b| b.payee_at < at).count();
        for u in &payer.usage {
            acc[payer_window(u.at)].payer.add_usage(u);
        }
        for p in payer.outgoing.values().filter(|p| p.confirmed.is_some()) {
            acc[payer_window(p.at)].payer.add_settled(p.amount);
        }
        for u in &payee.usage {
            acc[payee_window(u.at)].payee.add_usage(u);
        }
        for r in &payee.incoming {
            acc[payee_window(r.at)].payee.add_settled(r.amount);
        }

        let signed = |a: u128| i128::try_from(a).unwrap_or(i128::MAX);
        let mut windows = Vec::new();
        let mut balance = 0i128;
        let mut refs = boundaries.into_iter().map(|b| Some(b.payment)).chain([None]);
        for (i, Acc { payer, payee }) in acc.into_iter().enumerate() {
            let diff = signed(payer.amount).saturating_sub(signed(payee.amount));
            balance = balance.saturating_add(diff);
            windows.push(Window {
                index: i + 1,
                closed_by: refs.next().flatten(),
                tx_bytes: payer.bytes,
                payer_prices: payer.prices,
                owed: Amount(payer.amount),
                paid: Amount(payer.settled),
                rx_bytes: payee.bytes,
                payee_prices: payee.prices,
                expected: Amount(payee.amount),
                received: Amount(payee.settled),
                diff: Signed(diff),
                balance: Signed(balance),
                verdict: WindowVerdict::of(diff),
            });
        }
        // An empty open tail says nothing.
        if windows.len() > 1 {
            if let Some(w) = windows.last() {
                if w.tx_bytes == 0 && w.rx_bytes == 0 && w.paid.0 == 0 && w.received.0 == 0 {
                    windows.pop();
                }
            }
        }
        Cut { windows, unmatched }
    }
}

/// The payer's payments matched with the payee's receipts by hash.
#[derive(Debug)]
struct Matched {
    /// In the payer's order.
    boundaries: Vec<Boundary>,
    /// Payments only one side has: the payer's first, then the payee's.
    unmatched: Vec<PaymentRef>,
}

fn match_payments(payer: &PayerSide, payee: &PayeeSide, notes: &mut Vec<String>) -> Matched {
    let mut boundaries = Vec::new();
    let mut matched_in = BTreeSet::new();
    let mut unmatched = Vec::new();
    let mut payee_at = 0;
    for p in payer.outgoing.values() {
        let found = payee.incoming.iter().enumerate().find(|(_, r)| p.hashes.contains(&r.tx_hash));
        let paid = p.confirmed.map(|_| p.amount);
        match found {
            Some((k, r)) => {
                matched_in.insert(k);
                payee_at = payee_at.max(r.at);
                if r.amount != p.amount {
                    notes.push(format!(
                        "payment {} ({}): the payer intended {} but the payee received {}",
                        p.id, r.tx_hash, p.amount, r.amount
                    ));
                }
                if p.confirmed.is_none() {
                    notes.push(format!(
                        "payment {} ({}) was received by the payee but is not confirmed in the payer's log",
                        p.id, r.tx_hash
                    ));
                }
                boundaries.push(Boundary {
                    payer_at: p.at,
                    payee_at,
                    payment: PaymentRef {
                        id: Some(p.id),
                        tx_hash: Some(r.tx_hash),
                        paid,
                        received: Some(r.amount),
                        block: Some(r.block),
                    },
                });
            }
            None if p.confirmed.is_some() => unmatched.push(PaymentRef {
                id: Some(p.id),
                tx_hash: p.hashes.last().copied(),
                paid,
                received: None,
                block: p.confirmed,
            }),
            None => notes.push(format!(
                "payment {} of {} is still open in the payer's log (not confirmed)",
                p.id, p.amount
            )),
        }
    }
    for (k, r) in payee.incoming.iter().enumerate() {
        if !matched_in.contains(&k) {
            unmatched.push(PaymentRef {
                id: None,
                tx_hash: Some(r.tx_hash),
                paid: None,
                received: Some(r.amount),
                block: Some(r.block),
            });
        }
    }
    Matched { boundaries, unmatched }
}
