//! Payments: our transfers out, and neighbours' transfers in.
//!
//! Out, one at a time, oldest intent first:
//! intent (durable) → sign with the next nonce → `PaymentSigned` (nonce, hash and the signed
//! bytes durable) → broadcast → receipt → confirmed once buried under N blocks. After a
//! restart an open payment is reconciled against the chain: a signed one is broadcast again
//! with the very same bytes (so it can only be mined once) and its receipt is asked for; it is
//! never re-signed with another nonce. A payment fails only when the chain proves nothing
//! moved (reverted) or that our nonce went to some other transaction; a refused broadcast
//! (no funds yet, a node hiccup) is retried, never given up, because giving up on a
//! transaction that may still be mined is how a wallet pays twice.
//!
//! Replacement: signed bytes are final, so a transaction signed with a fee the chain's base
//! fee later exceeds would stay pending forever, and every later payment behind it. When the
//! active payment has been signed but not seen included for `replace_after_polls` chain polls
//! (doubling for each further replacement of it), the very same transfer (id, recipient,
//! amount) is signed again with the very same nonce; the adapter picks the fees of the moment.
//! The new hash is recorded with another `PaymentSigned` (nonce unchanged) before it is
//! broadcast, and becomes the bytes sent from then on (after a restart too). One nonce can be
//! mined once, so at most one of a payment's hashes is ever included: receipts are asked for
//! all of them, whichever is included confirms the payment, and only when every one of them
//! answers "not included" while the chain shows our nonce used is that evidence that the
//! nonce went elsewhere. A payment is never re-signed with another nonce.
//!
//! In: transfers in blocks already buried under N blocks, to our address, from an address
//! bound to a neighbour, never seen before (the seen set is part of the ledger).

use super::BillingMachine;
use crate::events::billing::{BillingEvent, PaymentFailure};
use crate::events::chain::{
    Amount, ChainCommand, ChainObservation, ChainRequestKind, Inclusion, PaymentId, Transfer, TxHash,
};
use std::collections::BTreeSet;

/// How many blocks of incoming scan progress may go unrecorded.
const SCAN_PERSIST_BLOCKS: u64 = 256;

/// How many receipts in a row must answer "not included" for our latest hash while the chain
/// shows our nonce used before the payment is declared beaten to its nonce. Only answers count:
/// a failed query is no evidence.
const NONCE_TAKEN_POLLS: u32 = 3;

/// The most times the wait before a replacement doubles.
const REPLACE_BACKOFF_DOUBLINGS: usize = 8;

/// What the machine currently believes about the chain. Soft: rebuilt by asking after a
/// restart.
#[derive(Debug, Default)]
pub(super) struct ChainView {
    confirmations: u64,
    head: Option<u64>,
    /// The next nonce the chain expects from us.
    chain_nonce: Option<u64>,
    /// A signature we asked for: payment and nonce (a replacement's is the payment's own).
    asked_sign: Option<(PaymentId, u64)>,
    /// Chain polls in a row (this boot) the active payment has been signed and not seen
    /// included since its latest signature.
    unmined_polls: Option<(PaymentId, u32)>,
    /// Hashes of the active payment that answered "not included" since the last chain poll.
    absent: BTreeSet<TxHash>,
    /// The active payment has been broadcast during this boot.
    sent: Option<PaymentId>,
    /// The latest receipt of the active payment.
    included: Option<(PaymentId, TxHash, Inclusion)>,
    nonce_taken_polls: u32,
    /// Next block to scan for incoming transfers, and the scan asked for.
    scan_from: Option<u64>,
    scanning: Option<(u64, u64)>,
    /// Why the last broadcast was refused, for the operator.
    pub(super) last_rejection: Option<String>,
}

impl ChainView {
    pub(super) fn new(confirmations: u64) -> Self {
        Self { confirmations, ..Self::default() }
    }

    /// The newest block buried under the configured confirmations.
    fn buried_head(&self) -> Option<u64> {
        let head = self.head?;
        (head + 1).checked_sub(self.confirmations)
    }
}

impl BillingMachine {
    /// The oldest open payment: the only one in progress.
    fn active(&self) -> Option<(PaymentId, &crate::machines::billing::Payment)> {
        self.state.billing.open.iter().next().map(|(id, p)| (*id, p))
    }

    /// The chain timer: ask about the head, the active payment and incoming transfers.
    pub(super) fn poll_chain(&mut self) {
        self.chain_command(ChainCommand::QueryHead);
        self.chain_command(ChainCommand::QueryNonce);
        self.chain.absent.clear();
        if let Some((id, payment)) = self.active() {
            if payment.nonce.is_some() {
                let hashes = payment.hashes.clone();
                let raw = payment.raw.clone();
                if self.chain.sent != Some(id) {
                    self.chain.sent = Some(id);
                    self.chain_command(ChainCommand::Send { id, raw });
                }
                for tx_hash in hashes {
                    self.chain_command(ChainCommand::QueryReceipt { id, tx_hash });
                }
                self.maybe_replace();
            }
        }
        self.scan_incoming();
    }

    /// Counts one more chain poll of the active, signed payment not seen included, and asks
    /// for a replacement (the same transfer, the same nonce, fresh fees) once it has waited
    /// long enough.
    fn maybe_replace(&mut self) {
        let Some((id, payment)) = self.active() else { return };
        let Some(nonce) = payment.nonce else { return };
        let (to, amount, signed) = (payment.to, payment.amount, payment.hashes.len());
        let included = self.chain.included.is_some_and(|(i, _, _)| i == id);
        // The chain shows our nonce used: one of our hashes (or a stranger's transaction) is
        // mined, and no replacement could be.
        let nonce_used = self.chain.chain_nonce.is_some_and(|next| next > nonce);
        let polls = match self.chain.unmined_polls {
            _ if included || nonce_used => 0,
            Some((i, polls)) if i == id => polls + 1,
            _ => 1, // the first poll of this payment in this boot
        };
        self.chain.unmined_polls = Some((id, polls));
        let after = self.config.replace_after_polls;
        let doublings = signed.saturating_sub(1).min(REPLACE_BACKOFF_DOUBLINGS);
        let wait = after.saturating_mul(1 << doublings);
        if after == 0 || polls < wait || self.chain.asked_sign.is_some() {
            return;
        }
        self.chain.unmined_polls = Some((id, 0));
        self.chain.asked_sign = Some((id, nonce));
        self.chain_command(ChainCommand::Sign { id, to, amount, nonce });
    }

    fn scan_incoming(&mut self) {
        if self.chain.head.is_none() || self.chain.scanning.is_some() {
            return;
        }
        if !self.state.billing.chain_met && self.chain.scan_from.is_none() {
            // First contact with the chain: nothing buried before now was meant for us. It is
            // recorded even at genesis (`to_block` 0), so a restart never takes us for a
            // newcomer and skips transfers we have not credited yet.
            let buried = self.chain.buried_head().unwrap_or(0);
            self.chain.scan_from = Some(buried + 1);
            self.emit(BillingEvent::IncomingScanned { to_block: buried });
        }
        let Some(buried) = self.chain.buried_head() else { return };
        let from = self.chain.scan_from.unwrap_or(self.state.billing.scanned_to_block + 1);
        if from > buried {
            return;
        }
        let to = buried.min(from + self.config.max_scan_blocks.max(1) - 1);
        self.chain.scanning = Some((from, to));
        self.chain_command(ChainCommand::ScanIncoming { from_block: from, to_block: to });
    }

    /// Asks for the active payment's signature when it has none and the nonce is known.
    pub(super) fn advance_payments(&mut self) {
        let Some((id, payment)) = self.active() else {
            return;
        };
        if payment.nonce.is_some() || self.chain.asked_sign.is_some() {
            return;
        }
        let Some(chain_nonce) = self.chain.chain_nonce else {
            return;
        };
        let nonce = self.state.billing.next_nonce.max(chain_nonce);
        let (to, amount) = (payment.to, payment.amount);
        self.chain.asked_sign = Some((id, nonce));
        self.chain_command(ChainCommand::Sign { id, to, amount, nonce });
    }

    pub(super) fn observe_chain(&mut self, observation: ChainObservation) {
        match observation {
            ChainObservation::Signed { id, tx_hash, raw } => {
                let Some((asked, nonce)) = self.chain.asked_sign else {
                    return;
                };
                if asked != id {
                    return;
                }
                self.chain.asked_sign = None;
                // A first signature, or a replacement with the payment's own nonce; the payment
                // may have been confirmed (an older hash mined) while it was being signed.
                let Some(payment) = self.state.billing.open.get(&id) else { return };
                if raw.is_empty() || payment.nonce.is_some_and(|n| n != nonce) {
                    return;
                }
                // Fees unchanged since the last signature give the very same transaction.
                if payment.hashes.last() != Some(&tx_hash) {
                    self.emit(BillingEvent::PaymentSigned { id, nonce, tx_hash, raw: raw.clone() });
                }
                self.chain.unmined_polls = Some((id, 0));
                self.chain.sent = Some(id);
                self.chain_command(ChainCommand::Send { id, raw });
            }
            ChainObservation::Sent { .. } => self.chain.last_rejection = None,
            ChainObservation::SendRejected { id, reason } => {
                if self.chain.sent == Some(id) {
                    self.chain.sent = None;
                }
                self.chain.last_rejection = Some(reason);
            }
            ChainObservation::Receipt { id, tx_hash, included } => {
                let ours = self.active().is_some_and(|(a, p)| a == id && p.hashes.contains(&tx_hash));
                if !ours {
                    return;
                }
                match included {
                    Some(inclusion) => {
                        self.chain.included = Some((id, tx_hash, inclusion));
                        self.chain.nonce_taken_polls = 0;
                        self.chain.absent.remove(&tx_hash);
                    }
                    None => {
                        if self.chain.included.is_some_and(|(i, h, _)| i == id && h == tx_hash) {
                            self.chain.included = None;
                        }
                        self.chain.absent.insert(tx_hash);
                        self.check_nonce_taken();
                        // Not in the chain: reorged out, or dropped by a node that had accepted
                        // it (nodes do drop transactions). Broadcast the very same bytes again
                        // at the next poll: a pending copy is not duplicated by it, and the
                        // nonce lets it be mined only once.
                        self.chain.sent = None;
                    }
                }
                self.confirm();
            }
            ChainObservation::Head { block } => {
                // Confirmation waits for the next receipt: the inclusion seen before this head
                // may have been reorged away since, and only a fresh receipt can say.
                self.chain.head = Some(block);
            }
            ChainObservation::Nonce { next } => {
                self.chain.chain_nonce = Some(next);
                if self.active().and_then(|(_, p)| p.nonce).is_some_and(|nonce| next <= nonce) {
                    self.chain.nonce_taken_polls = 0;
                }
                self.advance_payments();
            }
            ChainObservation::Incoming { from_block, to_block, transfers } => {
                if self.chain.scanning != Some((from_block, to_block)) {
                    return; // not what we asked for: ignore rather than trust
                }
                self.chain.scanning = None;
                self.credit(from_block, to_block, transfers);
            }
            ChainObservation::RpcFailed { request, .. } => match request {
                ChainRequestKind::Sign(id) if self.chain.asked_sign.is_some_and(|(a, _)| a == id) => {
                    self.chain.asked_sign = None
                }
                ChainRequestKind::Send(id) if self.chain.sent == Some(id) => self.chain.sent = None,
                ChainRequestKind::Incoming => self.chain.scanning = None,
                _ => {}
            },
        }
    }

    /// Confirms (or fails, if reverted) the active payment once its inclusion is buried.
    fn confirm(&mut self) {
        let (Some((id, _, inclusion)), Some(head)) = (self.chain.included, self.chain.head) else {
            return;
        };
        if head + 1 < inclusion.block + self.chain.confirmations {
            return;
        }
        self.finished(id);
        if inclusion.success {
            self.emit(BillingEvent::PaymentConfirmed { id, block: inclusion.block });
        } else {
            self.emit(BillingEvent::PaymentFailed {
                id,
                failure: PaymentFailure::Reverted,
                nonce_used: true,
            });
        }
        self.advance_payments();
    }

    /// Forgets the soft state of a payment that is settled either way.
    fn finished(&mut self, id: PaymentId) {
        self.chain.included = None;
        self.chain.sent = None;
        self.chain.unmined_polls = None;
        self.chain.absent.clear();
        if self.chain.asked_sign.is_some_and(|(a, _)| a == id) {
            // A replacement still being signed: its answer is for a payment that is done.
            self.chain.asked_sign = None;
        }
    }

    /// A receipt said one of the active payment's transactions is not in the chain: once every
    /// one of them has said so since the last poll, if the chain also shows our nonce used, that
    /// is one more piece of evidence that another transaction took it (at most once per poll).
    fn check_nonce_taken(&mut self) {
        let Some((id, payment)) = self.active() else {
            return;
        };
        let (Some(nonce), Some(chain_next)) = (payment.nonce, self.chain.chain_nonce) else { return };
        let all_absent = payment.hashes.iter().all(|h| self.chain.absent.contains(h));
        if !all_absent || chain_next <= nonce || self.chain.included.is_some() {
            return;
        }
        self.chain.absent.clear();
        self.chain.nonce_taken_polls += 1;
        if self.chain.nonce_taken_polls >= NONCE_TAKEN_POLLS {
            self.chain.nonce_taken_polls = 0;
            self.finished(id);
            self.emit(BillingEvent::PaymentFailed {
                id,
                failure: PaymentFailure::NonceTaken,
                nonce_used: true,
            });
        }
    }

    /// Credits buried transfers to us from bound neighbours, each once.
    fn credit(&mut self, from_block: u64, to_block: u64, mut transfers: Vec<Transfer>) {
        transfers.sort_by_key(|t| (t.block, t.tx_hash, t.log_index));
        let mut credited = false;
        for t in transfers {
            let in_range = (from_block..=to_block).contains(&t.block);
            if !in_range || t.to != self.config.our_address || t.amount.0 == 0 {
                continue;
            }
            let Some(neighbour) = self.state.billing.neighbour_of(t.from) else {
                continue;
            };
            if self.state.billing.seen.contains_key(&(t.tx_hash, t.log_index)) {
                continue;
            }
            let surplus_before = (-self.state.billing.account(neighbour).its_debt()).max(0);
            self.emit(BillingEvent::PaymentReceived {
                neighbour,
                tx_hash: t.tx_hash,
                log_index: t.log_index,
                amount: t.amount,
                block: t.block,
            });
            let surplus_after = (-self.state.billing.account(neighbour).its_debt()).max(0);
            if surplus_after > surplus_before {
                let amount = Amount((surplus_after - surplus_before) as u128);
                self.emit(BillingEvent::CreditApplied { neighbour, amount });
            }
            credited = true;
        }
        self.chain.scan_from = Some(to_block + 1);
        if credited || to_block >= self.state.billing.scanned_to_block + SCAN_PERSIST_BLOCKS {
            self.emit(BillingEvent::IncomingScanned { to_block });
        }
    }
}
