//! Each log's own figures for the disputed link, in log order: the payer's tx bytes at the
//! prices it was quoted and its payments to the payee; the payee's rx bytes at the price
//! lastmile's own ledger fold expects (the lowest advertised since the link's previous record)
//! and the payments it received. A record counts while the log's neighbour id is bound to the
//! other side (before any binding: its first one).

use std::collections::BTreeMap;

use lastmile::events::billing::BillingEvent;
use lastmile::events::chain::{Amount, PaymentId, TxHash};
use lastmile::events::usage::UsageEvent;
use lastmile::events::{Event, Fold};
use lastmile::machines::billing::BillingLedger;

use super::identify::Parties;
use super::{not_comparable, Log};
use crate::error::ReplayError;

/// One usage record of the disputed link, as its log priced it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    /// Index of the record in its log.
    pub at: usize,
    /// Tx bytes on the payer side, rx bytes on the payee side.
    pub bytes: u64,
    pub price: Option<u64>,
    /// Owed (payer side) or expected (payee side).
    pub amount: u128,
}

/// A payment of the payer to the payee, from the payer log.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub id: PaymentId,
    /// Index of its intent in the payer log.
    pub at: usize,
    pub amount: Amount,
    /// Every hash it was signed under (a replacement adds one), in order.
    pub hashes: Vec<TxHash>,
    /// The block it was confirmed in.
    pub confirmed: Option<u64>,
}

/// A payment the payee received from the payer.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    /// Index of its `PaymentReceived` in the payee log.
    pub at: usize,
    pub tx_hash: TxHash,
    pub amount: Amount,
    pub block: u64,
}

/// The payer log's figures for the payee.
#[derive(Debug)]
pub(super) struct PayerSide {
    pub usage: Vec<Usage>,
    /// Payments intended to the payee and not failed, by payment id.
    pub outgoing: BTreeMap<PaymentId, Outgoing>,
}

impl PayerSide {
    pub fn of(log: &Log, parties: &Parties) -> Self {
        let party = &parties.payer;
        let mut bound = party.directory.first_binding(party.neighbour);
        let mut usage = Vec::new();
        let mut outgoing: BTreeMap<PaymentId, Outgoing> = BTreeMap::new();
        for (at, e) in log.events.iter().enumerate() {
            match e {
                Event::Billing(BillingEvent::NeighbourBound { neighbour, address })
                    if *neighbour == party.neighbour =>
                {
                    bound = Some(*address)
                }
                Event::Usage(UsageEvent::Accrued(r)) if party.concerns(r.link.neighbour, bound) => usage
                    .push(Usage { at, bytes: r.tx_bytes, price: r.price_per_byte, amount: r.tx_amount() }),
                Event::Billing(BillingEvent::PaymentIntended { id, neighbour, amount, .. })
                    if party.concerns(*neighbour, bound) =>
                {
                    outgoing.insert(
                        *id,
                        Outgoing { id: *id, at, amount: *amount, hashes: vec![], confirmed: None },
                    );
                }
                Event::Billing(BillingEvent::PaymentSigned { id, tx_hash, .. }) => {
                    if let Some(p) = outgoing.get_mut(id) {
                        if !p.hashes.contains(tx_hash) {
                            p.hashes.push(*tx_hash);
                        }
                    }
                }
                Event::Billing(BillingEvent::PaymentConfirmed { id, block }) => {
                    if let Some(p) = outgoing.get_mut(id) {
                        p.confirmed = Some(*block);
                    }
                }
                Event::Billing(BillingEvent::PaymentFailed { id, .. }) => {
                    outgoing.remove(id);
                }
                _ => {}
            }
        }
        PayerSide { usage, outgoing }
    }

    /// Every hash the payer signed a payment to the payee under, with the payment.
    fn hashes(&self) -> BTreeMap<TxHash, PaymentId> {
        self.outgoing.values().flat_map(|p| p.hashes.iter().map(move |h| (*h, p.id))).collect()
    }
}

/// The payee log's figures for the payer.
#[derive(Debug)]
pub(super) struct PayeeSide {
    pub usage: Vec<Usage>,
    /// Received from the payer (bound to it, or a hash the payer signed), in log order.
    pub incoming: Vec<Incoming>,
    /// Written off with explicit `Forgiven` events.
    pub forgiven: u128,
    /// The payee's own tx bytes through the payer, and whether it paid the payer: traffic
    /// the other way, which says the arguments may be swapped.
    pub reverse_tx: u64,
    pub reverse_paid: bool,
}

impl PayeeSide {
    pub fn of(log: &Log, parties: &Parties, payer: &PayerSide) -> Self {
        let party = &parties.payee;
        let payer_hashes = payer.hashes();
        let mut ledger = BillingLedger::default();
        let mut bound = party.directory.first_binding(party.neighbour);
        let mut side = PayeeSide {
            usage: Vec::new(),
            incoming: Vec::new(),
            forgiven: 0,
            reverse_tx: 0,
            reverse_paid: false,
        };
        for (at, e) in log.events.iter().enumerate() {
            match e {
                Event::Billing(BillingEvent::NeighbourBound { neighbour, address })
                    if *neighbour == party.neighbour =>
                {
                    bound = Some(*address)
                }
                Event::Usage(UsageEvent::Accrued(r)) if party.concerns(r.link.neighbour, bound) => {
                    let price = ledger.rx_price(r.link);
                    let amount = u128::from(r.rx_bytes) * u128::from(price.unwrap_or(0));
                    side.usage.push(Usage { at, bytes: r.rx_bytes, price, amount });
                    side.reverse_tx = side.reverse_tx.saturating_add(r.tx_bytes);
                }
                Event::Billing(BillingEvent::PaymentReceived {
                    neighbour, tx_hash, amount, block, ..
                }) if party.concerns(*neighbour, bound) || payer_hashes.contains_key(tx_hash) => {
                    side.incoming.push(Incoming { at, tx_hash: *tx_hash, amount: *amount, block: *block })
                }
                Event::Billing(BillingEvent::Forgiven { neighbour, amount, .. })
                    if party.concerns(*neighbour, bound) =>
                {
                    side.forgiven = side.forgiven.saturating_add(amount.0)
                }
                Event::Billing(BillingEvent::PaymentIntended { neighbour, .. })
                    if party.concerns(*neighbour, bound) =>
                {
                    side.reverse_paid = true
                }
                _ => {}
            }
            ledger.apply(e);
        }
        side
    }
}

/// Refuses arguments the wrong way round: nothing flows from "payer" to "payee", but some
/// flows the other way.
pub(super) fn check_direction(
    payer_log: &Log,
    payer: &PayerSide,
    payee_log: &Log,
    payee: &PayeeSide,
) -> Result<(), ReplayError> {
    let forward = payer.usage.iter().any(|u| u.bytes > 0)
        || !payer.outgoing.is_empty()
        || payee.usage.iter().any(|u| u.bytes > 0)
        || !payee.incoming.is_empty();
    if !forward && (payee.reverse_tx > 0 || payee.reverse_paid) {
        return Err(not_comparable(format!(
            "the arguments look swapped: {} sent nothing through {} and paid it nothing, but {} sent {} byte(s) \
             through it{}; the payer comes first: replay dispute {} {}",
            payer_log.name,
            payee_log.name,
            payee_log.name,
            payee.reverse_tx,
            if payee.reverse_paid { " and paid it" } else { "" },
            payee_log.name,
            payer_log.name
        )));
    }
    Ok(())
}
