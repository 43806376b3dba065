//! What a run is judged by: each pair's accounts, the ground truth a relay's ledger must
//! match, the chain-side audit (nothing paid twice, chain == ledgers, replay equivalence), and
//! whether the network settled.

use super::world::address_of;
use super::{BillingSim, Enforced};
use crate::events::billing::{BillingEvent, Enforcement};
use crate::events::chain::{Address, TxHash};
use crate::events::Event;
use std::collections::{BTreeMap, BTreeSet};

impl BillingSim {
    /// Node `payee`'s account of node `payer` (they must be neighbours).
    pub fn account(&self, payee: usize, payer: usize) -> crate::machines::billing::Account {
        let node = &self.nodes[payee];
        node.fold.billing.account(node.local(payer))
    }

    /// Every (payer, payee) pair that carried priced traffic (the payee relayed it: traffic to
    /// the payee itself is free), payer first.
    pub fn billed_pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs: Vec<(usize, usize)> =
            self.hops.keys().filter(|(_, b, d)| b != d).map(|(a, b, _)| (*a, *b)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// An upper bound on what any one link carries per window: the flows through it, each at
    /// its largest tick, at the largest price the payee could advertise (the most expensive fee
    /// at every hop left). Tests size thresholds from it.
    pub fn max_value_per_window(&self) -> u128 {
        let ticks = u128::from(self.config.usage.window_ms.div_ceil(self.config.tick_ms));
        let mut links: BTreeMap<(usize, usize), u128> = BTreeMap::new();
        for &(src, dst, rate) in &self.flows {
            let mut path = vec![src];
            while path[path.len() - 1] != dst {
                path.push(self.next_hop[path[path.len() - 1]][dst]);
            }
            for (i, hop) in path.windows(2).enumerate() {
                let hops_left = (path.len() - 2 - i) as u128;
                let value = u128::from(rate + rate / 2) * ticks * u128::from(self.config.max_fee) * hops_left;
                *links.entry((hop[0], hop[1])).or_default() += value;
            }
        }
        links.into_values().max().unwrap_or(0)
    }

    /// Whether `payer` was ever throttled by anyone.
    pub fn throttled(&self, payer: usize) -> Vec<Enforced> {
        self.enforcements
            .iter()
            .copied()
            .filter(|e| e.payer == payer && e.level == Enforcement::Throttled)
            .collect()
    }

    /// The cheat, if any, is node `id`.
    pub fn is_cheat(&self, id: usize) -> bool {
        self.config.cheat.is_some_and(|c| c.node == id)
    }

    /// The bytes node `r` forwarded (received for others) and the value of what it lost on the
    /// way in (each lost byte at the price `r` advertised for its destination): the ground
    /// truth conservation is checked against. Prices must not have changed.
    pub fn relay_truth(&self, r: usize) -> (u64, u128, u128) {
        let mut forwarded = 0u64;
        let mut lost_value = 0u128;
        for (&(_, to, dest), hop) in &self.hops {
            if to == r && dest != r {
                forwarded += hop.delivered;
                lost_value += u128::from(hop.sent - hop.delivered) * u128::from(self.advertised[r][dest]);
            }
        }
        let mut own_cost = 0u128;
        for (&(src, dest), &bytes) in &self.originated {
            if src == r {
                own_cost += u128::from(bytes) * u128::from(self.advertised[self.next_hop[r][dest]][dest]);
            }
        }
        (forwarded, lost_value, own_cost)
    }

    /// The least payee `payee`'s ledger may expect from `payer` (they must be neighbours):
    /// every byte it received from `payer` for others' destinations at the lowest price it
    /// ever advertised for that destination, less the bytes counter resets hid from it.
    /// A payee expecting less under-bills: the guard on the payee's side of consensus.
    pub fn expected_at_least(&self, payer: usize, payee: usize) -> u128 {
        let mut least = 0u128;
        for (&(from, to, dest), hop) in &self.hops {
            if (from, to) == (payer, payee) && dest != payee {
                let unseen = self.reset_unseen_rx.get(&(payee, payer, dest)).copied().unwrap_or(0);
                let counted = hop.delivered.saturating_sub(unseen);
                least += u128::from(counted) * u128::from(self.lowest_advertised[payee][dest]);
            }
        }
        least
    }

    /// Chain-side audit: every problem found, empty when all holds. Checks, per node, that
    /// - no payment was included twice (each included transfer from it maps to a distinct
    ///   payment id it signed), and no stray transfer was credited (`SimConfig::strays`);
    /// - what left it on chain to each neighbour equals its ledger's `paid` plus what is in
    ///   flight and already included, and what arrived from each neighbour equals the payee's
    ///   `received` plus what is not yet buried or scanned (exact once settled);
    /// - its live ledgers equal the fold of its log (replay equivalence).
    pub fn audit(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_payment: BTreeMap<(usize, u64), u32> = BTreeMap::new();
        let mut sent: BTreeMap<(Address, Address), u128> = BTreeMap::new();
        for t in self.chain.transfers() {
            if self.strays.contains_key(&t.tx_hash) {
                continue;
            }
            *sent.entry((t.from, t.to)).or_default() += t.amount.0;
            match self.signed.get(&t.tx_hash) {
                Some(&key) => *by_payment.entry(key).or_default() += 1,
                None => problems.push(format!("a transfer nobody signed: {t:?}")),
            }
        }
        for ((node, payment), count) in by_payment {
            if count > 1 {
                problems.push(format!("node {node} payment {payment} is on chain {count} times"));
            }
        }
        for node in &self.nodes {
            let seen = node.fold.billing.seen.keys().map(|(hash, _)| hash);
            let received = node.log.iter().filter_map(|e| match e {
                Event::Billing(BillingEvent::PaymentReceived { tx_hash, .. }) => Some(tx_hash),
                _ => None,
            });
            let credited: BTreeSet<&TxHash> = seen.chain(received).collect();
            for hash in credited {
                if let Some(index) = self.strays.get(hash) {
                    problems.push(format!("node {} credited stray transfer {index} ({hash})", node.id));
                }
            }
            if let Some(m) = &node.machine {
                if *m.ledger() != node.fold.billing {
                    problems
                        .push(format!("node {}: billing ledger differs from the fold of its log", node.id));
                }
                if *m.usage() != node.fold.usage {
                    problems.push(format!("node {}: usage ledger differs from the fold of its log", node.id));
                }
            }
            for &k in &node.neighbours {
                let ours = node.fold.billing.account(node.local(k));
                let on_chain = sent.get(&(node.address, address_of(k))).copied().unwrap_or(0);
                if ours.paid.0 > on_chain || on_chain > ours.paid.0 + ours.in_flight.0 {
                    problems.push(format!(
                        "node {} → {k}: paid {} + in flight {} vs {on_chain} on chain",
                        node.id, ours.paid, ours.in_flight
                    ));
                }
                let theirs = self.account(k, node.id);
                if theirs.received.0 > on_chain {
                    problems.push(format!(
                        "node {k} received {} from {} but only {on_chain} is on chain",
                        theirs.received, node.id
                    ));
                }
            }
        }
        problems
    }

    /// How many replacements were signed: hashes signed for a payment beyond its first.
    pub fn replacements(&self) -> usize {
        let payments: BTreeSet<_> = self.signed.values().collect();
        self.signed.len() - payments.len()
    }

    /// Whether every node is up with no payment open and nothing owed beyond what it paid.
    pub fn settled(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.machine.is_some()
                && n.fold.billing.open.is_empty()
                && n.fold.billing.accounts.values().all(|a| a.our_debt() <= 0)
        })
    }
}
