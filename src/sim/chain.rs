//! The in-memory twin of the chain: accounts, nonces, a mempool, blocks, reorgs and RPC
//! faults, all deterministic. Simulations and tests drive every node's payments against one
//! twin; the real adapter (`os::chain::alloy`, against anvil or a real node) answers the same
//! commands the same way. It lives here, outside the shell, so that the billing machine's unit
//! tests and the simulators build without the daemon feature.
//!
//! It answers [`ChainCommand`]s from a given account the way an honest node would, except
//! where a fault is injected. "Signing" is a deterministic encoding with a 256-bit digest:
//! enough to give every transaction a distinct hash and to make a re-sent transaction the
//! very same one.
//!
//! Fees, like EIP-1559's, are modelled just enough to make a transaction stuck: the twin has a
//! minimum fee per block (0 by default), a "signed" transaction carries the fee picked when it
//! was signed (`min(cap, 2 × minimum + tip)`, as the real adapter picks its max fee from the
//! base fee), and a block includes only transactions whose fee reaches its minimum; the others
//! (and every later nonce of their sender) stay pending. With the defaults every fee is 0 and
//! every transaction is minable, as before fees existed.

use crate::events::chain::{
    Address, Amount, ChainCommand, ChainObservation, ChainRequestKind, Inclusion, Transfer, TxHash,
};
use crate::rng::SplitMix64;
use std::collections::BTreeMap;

/// A signed transfer in the twin's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tx {
    from: Address,
    to: Address,
    amount: Amount,
    nonce: u64,
    /// The most it pays per unit of block space: mined only in a block whose minimum fee it
    /// reaches.
    fee: u128,
}

impl Tx {
    fn raw(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(80);
        raw.extend_from_slice(&self.from.0);
        raw.extend_from_slice(&self.to.0);
        raw.extend_from_slice(&self.amount.0.to_be_bytes());
        raw.extend_from_slice(&self.nonce.to_be_bytes());
        raw.extend_from_slice(&self.fee.to_be_bytes());
        raw
    }

    fn parse(raw: &[u8]) -> Option<Tx> {
        if raw.len() != 80 {
            return None;
        }
        let mut from = [0; 20];
        let mut to = [0; 20];
        from.copy_from_slice(&raw[..20]);
        to.copy_from_slice(&raw[20..40]);
        let amount = u128::from_be_bytes(raw[40..56].try_into().ok()?);
        let nonce = u64::from_be_bytes(raw[56..64].try_into().ok()?);
        let fee = u128::from_be_bytes(raw[64..80].try_into().ok()?);
        Some(Tx { from: Address(from), to: Address(to), amount: Amount(amount), nonce, fee })
    }

    fn hash(&self) -> TxHash {
        let raw = self.raw();
        let mut out = [0u8; 32];
        for (lane, chunk) in out.chunks_mut(8).enumerate() {
            let mut h = SplitMix64::new(0x7a11_u64 ^ lane as u64);
            let mut acc = 0u64;
            for b in &raw {
                acc = acc.rotate_left(5) ^ u64::from(*b);
                acc = acc.wrapping_add(h.next_u64());
            }
            chunk.copy_from_slice(&acc.to_be_bytes());
        }
        TxHash(out)
    }
}

/// Faults the twin injects, each with a probability in parts per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainFaults {
    /// Any request fails with `RpcFailed`.
    pub rpc_failure_ppm: u32,
    /// A broadcast is acknowledged but silently dropped from the mempool.
    pub drop_ppm: u32,
}

/// How the twin prices what it signs, like the real adapter's `Fees`: the fee of a transaction
/// signed now is `min(cap, 2 × the current minimum fee + tip)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningFees {
    pub tip: u128,
    pub cap: u128,
}

impl Default for SigningFees {
    fn default() -> Self {
        Self { tip: 0, cap: u128::MAX }
    }
}

#[derive(Debug)]
pub struct ChainTwin {
    balances: BTreeMap<Address, u128>,
    /// Next nonce per account, counting included transactions only.
    nonces: BTreeMap<Address, u64>,
    mempool: Vec<Tx>,
    /// Block n holds `blocks[n - 1]`; block 0 is genesis.
    blocks: Vec<Vec<Tx>>,
    /// Where each included transaction is: hash → block (receipts without a scan of all blocks).
    included: BTreeMap<TxHash, u64>,
    faults: ChainFaults,
    /// The least fee a transaction must carry to be included in the next block.
    min_fee: u128,
    signing: SigningFees,
    rng: SplitMix64,
    pub rpc_failures: u64,
}

impl ChainTwin {
    pub fn new(seed: u64, faults: ChainFaults) -> Self {
        Self {
            balances: BTreeMap::new(),
            nonces: BTreeMap::new(),
            mempool: Vec::new(),
            blocks: Vec::new(),
            included: BTreeMap::new(),
            faults,
            min_fee: 0,
            signing: SigningFees::default(),
            rng: SplitMix64::new(seed),
            rpc_failures: 0,
        }
    }

    pub fn fund(&mut self, account: Address, amount: u128) {
        *self.balances.entry(account).or_default() += amount;
    }

    pub fn balance(&self, account: Address) -> u128 {
        self.balances.get(&account).copied().unwrap_or(0)
    }

    pub fn head(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Changes the injected faults from now on (a flaky node that recovers, or the reverse).
    pub fn set_faults(&mut self, faults: ChainFaults) {
        self.faults = faults;
    }

    /// Sets the minimum fee of the blocks mined from now on (a base fee that rises or falls).
    pub fn set_min_fee(&mut self, min_fee: u128) {
        self.min_fee = min_fee;
    }

    pub fn min_fee(&self) -> u128 {
        self.min_fee
    }

    /// Sets how transactions signed from now on are priced.
    pub fn set_signing_fees(&mut self, signing: SigningFees) {
        self.signing = signing;
    }

    /// The fee a transaction signed now carries.
    fn signing_fee(&self) -> u128 {
        self.min_fee.saturating_mul(2).saturating_add(self.signing.tip).min(self.signing.cap)
    }

    /// Transactions broadcast and neither mined nor dropped yet.
    pub fn pending(&self) -> usize {
        self.mempool.len()
    }

    /// Every transfer included in the current chain, oldest block first: what auditors of a
    /// simulation compare ledgers against.
    pub fn transfers(&self) -> Vec<Transfer> {
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            for tx in block {
                out.push(Transfer {
                    tx_hash: tx.hash(),
                    log_index: 0,
                    from: tx.from,
                    to: tx.to,
                    amount: tx.amount,
                    block: i as u64 + 1,
                });
            }
        }
        out
    }

    /// Includes every valid mempool transaction whose fee reaches the minimum fee, in nonce
    /// order per sender, in a new block. One below the minimum stays pending, and so does every
    /// later nonce of its sender.
    pub fn mine(&mut self) {
        let mut pool = std::mem::take(&mut self.mempool);
        pool.sort_by_key(|t| (t.from, t.nonce));
        let mut block = Vec::new();
        let mut waiting = Vec::new();
        for tx in pool {
            let expected = self.nonces.get(&tx.from).copied().unwrap_or(0);
            let funds = self.balance(tx.from);
            if tx.nonce == expected && funds >= tx.amount.0 && tx.fee >= self.min_fee {
                *self.balances.entry(tx.from).or_default() -= tx.amount.0;
                *self.balances.entry(tx.to).or_default() += tx.amount.0;
                *self.nonces.entry(tx.from).or_default() += 1;
                self.included.insert(tx.hash(), self.blocks.len() as u64 + 1);
                block.push(tx);
            } else if tx.nonce >= expected {
                waiting.push(tx); // a gap before it, no funds yet or a fee too low: it stays pending
            }
            // A nonce below the account's is stale: dropped.
        }
        self.mempool = waiting;
        self.blocks.push(block);
    }

    /// Undoes the last `depth` blocks; their transactions go back to the mempool.
    pub fn reorg(&mut self, depth: usize) {
        for _ in 0..depth.min(self.blocks.len()) {
            let Some(block) = self.blocks.pop() else {
                break;
            };
            for tx in block.into_iter().rev() {
                *self.balances.entry(tx.to).or_default() -= tx.amount.0;
                *self.balances.entry(tx.from).or_default() += tx.amount.0;
                *self.nonces.entry(tx.from).or_default() -= 1;
                self.included.remove(&tx.hash());
                self.mempool.push(tx);
            }
        }
    }

    fn fault(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.below(1_000_000) < u64::from(ppm)
    }

    fn find(&self, hash: TxHash) -> Option<u64> {
        self.included.get(&hash).copied()
    }

    /// Answers one request from `account`, as a node would (or with an injected fault).
    pub fn handle(&mut self, account: Address, command: ChainCommand) -> ChainObservation {
        let kind = command.request_kind();
        // Signing is local to the node: it does not fail with the RPC.
        if !matches!(kind, ChainRequestKind::Sign(_)) && self.fault(self.faults.rpc_failure_ppm) {
            self.rpc_failures += 1;
            return ChainObservation::RpcFailed { request: kind, reason: "injected RPC failure".into() };
        }
        match command {
            ChainCommand::Sign { id, to, amount, nonce } => {
                let tx = Tx { from: account, to, amount, nonce, fee: self.signing_fee() };
                ChainObservation::Signed { id, tx_hash: tx.hash(), raw: tx.raw() }
            }
            ChainCommand::Send { id, raw } => {
                let Some(tx) = Tx::parse(&raw).filter(|t| t.from == account) else {
                    return ChainObservation::SendRejected { id, reason: "malformed transaction".into() };
                };
                let expected = self.nonces.get(&account).copied().unwrap_or(0);
                if tx.nonce < expected {
                    return ChainObservation::SendRejected { id, reason: "nonce too low".into() };
                }
                if self.balance(account) < tx.amount.0 {
                    return ChainObservation::SendRejected { id, reason: "insufficient funds".into() };
                }
                let known = self.mempool.iter().any(|t| t.hash() == tx.hash());
                let pending_fee =
                    self.mempool.iter().find(|t| t.from == tx.from && t.nonce == tx.nonce).map(|t| t.fee);
                if !known && pending_fee.is_some_and(|fee| tx.fee < fee.saturating_add(fee / 10)) {
                    // A node replaces a pending transaction only with one paying at least 10%
                    // more (geth's default price bump); with every fee 0 any replacement goes.
                    return ChainObservation::SendRejected {
                        id,
                        reason: "replacement transaction underpriced".into(),
                    };
                }
                if !known && !self.fault(self.faults.drop_ppm) {
                    // Same nonce from the same sender replaces the pending one.
                    self.mempool.retain(|t| !(t.from == tx.from && t.nonce == tx.nonce));
                    self.mempool.push(tx);
                }
                ChainObservation::Sent { id }
            }
            ChainCommand::QueryReceipt { id, tx_hash } => {
                let included = self.find(tx_hash).map(|block| Inclusion { block, success: true });
                ChainObservation::Receipt { id, tx_hash, included }
            }
            ChainCommand::QueryHead => ChainObservation::Head { block: self.head() },
            ChainCommand::QueryNonce => {
                ChainObservation::Nonce { next: self.nonces.get(&account).copied().unwrap_or(0) }
            }
            ChainCommand::ScanIncoming { from_block, to_block } => {
                let mut transfers = Vec::new();
                for block in from_block.max(1)..=to_block.min(self.head()) {
                    for tx in &self.blocks[(block - 1) as usize] {
                        if tx.to == account {
                            transfers.push(Transfer {
                                tx_hash: tx.hash(),
                                log_index: 0,
                                from: tx.from,
                                to: tx.to,
                                amount: tx.amount,
                                block,
                            });
                        }
                    }
                }
                ChainObservation::Incoming { from_block, to_block, transfers }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::chain::PaymentId;

    fn a(n: u8) -> Address {
        Address([n; 20])
    }

    #[test]
    fn transfers_are_mined_once_in_nonce_order_and_reorgs_undo_them() {
        let mut chain = ChainTwin::new(1, ChainFaults::default());
        chain.fund(a(1), 1000);
        let sign = |chain: &mut ChainTwin, nonce, amount| match chain.handle(
            a(1),
            ChainCommand::Sign { id: PaymentId(nonce), to: a(2), amount: Amount(amount), nonce },
        ) {
            ChainObservation::Signed { raw, tx_hash, .. } => (raw, tx_hash),
            other => panic!("{other:?}"),
        };
        let (raw1, h1) = sign(&mut chain, 1, 100);
        let (raw0, h0) = sign(&mut chain, 0, 300);
        assert_ne!(h0, h1);
        assert_eq!(
            chain.handle(a(1), ChainCommand::Send { id: PaymentId(1), raw: raw1 }),
            ChainObservation::Sent { id: PaymentId(1) }
        );
        chain.mine();
        assert_eq!(chain.balance(a(2)), 0, "nonce 1 waits for nonce 0");
        chain.handle(a(1), ChainCommand::Send { id: PaymentId(0), raw: raw0.clone() });
        chain.handle(a(1), ChainCommand::Send { id: PaymentId(0), raw: raw0.clone() });
        chain.mine();
        assert_eq!(chain.balance(a(2)), 400);
        assert_eq!(chain.balance(a(1)), 600);
        let receipt = chain.handle(a(1), ChainCommand::QueryReceipt { id: PaymentId(0), tx_hash: h0 });
        assert_eq!(
            receipt,
            ChainObservation::Receipt {
                id: PaymentId(0),
                tx_hash: h0,
                included: Some(Inclusion { block: 2, success: true })
            }
        );
        assert_eq!(
            chain.handle(a(1), ChainCommand::Send { id: PaymentId(0), raw: raw0 }),
            ChainObservation::SendRejected { id: PaymentId(0), reason: "nonce too low".into() },
            "a mined transaction cannot be mined again"
        );
        chain.reorg(1);
        assert_eq!(chain.balance(a(2)), 0);
        chain.mine();
        assert_eq!(chain.balance(a(2)), 400, "reorged transactions come back");
        match chain.handle(a(2), ChainCommand::ScanIncoming { from_block: 1, to_block: 2 }) {
            ChainObservation::Incoming { transfers, .. } => {
                assert_eq!(transfers.iter().map(|t| t.amount.0).sum::<u128>(), 400)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_transaction_below_the_minimum_fee_stays_pending_until_a_better_paying_one_replaces_it() {
        let mut chain = ChainTwin::new(2, ChainFaults::default());
        chain.fund(a(1), 1000);
        let sign = |chain: &mut ChainTwin, nonce| match chain
            .handle(a(1), ChainCommand::Sign { id: PaymentId(0), to: a(2), amount: Amount(100), nonce })
        {
            ChainObservation::Signed { raw, tx_hash, .. } => (raw, tx_hash),
            other => panic!("{other:?}"),
        };
        let send = |chain: &mut ChainTwin, raw: &[u8]| {
            chain.handle(a(1), ChainCommand::Send { id: PaymentId(0), raw: raw.to_vec() })
        };
        chain.set_min_fee(10);
        let (raw0, h0) = sign(&mut chain, 0); // fee 20
        let (raw1, _) = sign(&mut chain, 1);
        assert_eq!(send(&mut chain, &raw0), ChainObservation::Sent { id: PaymentId(0) });
        send(&mut chain, &raw1);
        chain.set_min_fee(100);
        chain.mine();
        assert_eq!((chain.balance(a(2)), chain.pending()), (0, 2), "stuck, and nonce 1 behind it");
        chain.set_min_fee(11);
        let (cheaper, _) = sign(&mut chain, 0); // fee 22
        chain.set_min_fee(10);
        let (same, same_hash) = sign(&mut chain, 0);
        assert_eq!(same_hash, h0, "the same fees sign the same transaction");
        assert_eq!(send(&mut chain, &same), ChainObservation::Sent { id: PaymentId(0) });
        chain.set_min_fee(100);
        let (replacement, h2) = sign(&mut chain, 0); // fee 200
        assert_ne!(h2, h0);
        let underpriced = ChainObservation::SendRejected {
            id: PaymentId(0),
            reason: "replacement transaction underpriced".into(),
        };
        assert_eq!(send(&mut chain, &replacement), ChainObservation::Sent { id: PaymentId(0) });
        assert_eq!(send(&mut chain, &raw0), underpriced, "the pending one pays more");
        assert_eq!(send(&mut chain, &cheaper), underpriced);
        chain.mine();
        assert_eq!(chain.balance(a(2)), 100, "the replacement; nonce 1 is still below the minimum");
        let mined: Vec<TxHash> = chain.transfers().iter().map(|t| t.tx_hash).collect();
        assert!(mined.contains(&h2) && !mined.contains(&h0));
        assert_eq!(
            send(&mut chain, &raw0),
            ChainObservation::SendRejected { id: PaymentId(0), reason: "nonce too low".into() },
            "one nonce is mined once"
        );
    }
}
