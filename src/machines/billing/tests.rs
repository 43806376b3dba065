//! Billing and payments, step by step against the chain twin.

use super::*;
use crate::events::billing::{PaymentFailure, Thresholds};
use crate::events::chain::{ChainObservation, Inclusion, PaymentId, TxHash};
use crate::events::usage::{CounterSample, Link, NeighbourId};
use crate::events::Release;
use crate::events::{Event, Fold};
use crate::sim::chain::{ChainFaults, ChainTwin};
use crate::sim::drive;

const US: Address = Address([0xaa; 20]);
const N1: NeighbourId = NeighbourId(1);
const N1_ADDR: Address = Address([0x01; 20]);
const L1: Link = Link::new(1, 100);

fn t(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

fn config() -> BillingConfig {
    BillingConfig {
        usage: UsageConfig { poll_ms: 1_000, window_ms: 10_000 },
        our_address: US,
        confirmations: 3,
        chain_poll_ms: 2_000,
        max_scan_blocks: 1_000,
        replace_after_polls: 0,
    }
}

fn thresholds(pay: u128, enforce: u128) -> BillingInput {
    BillingInput::Operator(OperatorCommand::SetThresholds(Thresholds {
        pay: Amount(pay),
        enforce: Amount(enforce),
    }))
}

/// One node's billing machine wired to the chain twin through the shared driver
/// ([`drive`]): chain effects are answered at once (in the order emitted), everything emitted
/// is kept in `seen`.
struct Node {
    m: BillingMachine,
    seen: Seen,
}

/// What the test shell saw of one node, and how it answers.
struct Seen {
    address: Address,
    events: Vec<Event>,
    enforced: Vec<(NeighbourId, Enforcement)>,
    refused: Vec<String>,
    held_chain: Vec<ChainCommand>,
    /// Every chain command the machine issued, held or not.
    commands: Vec<ChainCommand>,
    /// When true, chain effects are kept in `held_chain` instead of executed (a crash
    /// before the shell could act on them).
    hold: bool,
}

/// The test shell for one pump: `seen` against `chain`.
struct OnTwin<'a> {
    chain: &'a mut ChainTwin,
    seen: &'a mut Seen,
}

impl drive::Shell<BillingMachine> for OnTwin<'_> {
    fn record(&mut self, _at: Stamp, event: BillingRecord) -> drive::Flow {
        self.seen.events.push(event.into());
        drive::Flow::Alive
    }

    fn execute(&mut self, _at: Stamp, effect: crate::events::Effect<BillingEffect>) -> Option<BillingInput> {
        let seen = &mut *self.seen;
        match effect.action {
            BillingEffect::Chain(command) => {
                if matches!(command, ChainCommand::Sign { .. } | ChainCommand::Send { .. }) {
                    assert_eq!(effect.release, Release::WhenDurable, "{command:?} commits money");
                }
                seen.commands.push(command.clone());
                if seen.hold {
                    seen.held_chain.push(command);
                    return None;
                }
                Some(BillingInput::Chain(self.chain.handle(seen.address, command)))
            }
            BillingEffect::Enforce { neighbour, level } => {
                seen.enforced.push((neighbour, level));
                None
            }
            BillingEffect::Refused { reason } => {
                seen.refused.push(reason);
                None
            }
            BillingEffect::ReadCounters => None,
        }
    }
}

impl Node {
    fn new(address: Address, ledger: BillingLedger, usage: UsageLedger, now: Stamp) -> Self {
        Self::with_config(BillingConfig { our_address: address, ..config() }, ledger, usage, now)
    }

    fn with_config(config: BillingConfig, ledger: BillingLedger, usage: UsageLedger, now: Stamp) -> Self {
        let address = config.our_address;
        Node {
            m: BillingMachine::new(config, usage, ledger, now),
            seen: Seen {
                address,
                events: Vec::new(),
                enforced: Vec::new(),
                refused: Vec::new(),
                held_chain: Vec::new(),
                commands: Vec::new(),
                hold: false,
            },
        }
    }

    fn input(&mut self, chain: &mut ChainTwin, at: Stamp, input: BillingInput) {
        drive::handle(&mut self.m, at, input, &mut OnTwin { chain, seen: &mut self.seen });
    }

    fn timeout(&mut self, chain: &mut ChainTwin, at: Stamp, timer: BillingTimer) {
        drive::fire(&mut self.m, at, timer, &mut OnTwin { chain, seen: &mut self.seen });
    }

    /// For each stamp: a block is mined, then the chain timer fires.
    fn mine_then_poll(&mut self, chain: &mut ChainTwin, stamps: impl IntoIterator<Item = Stamp>) {
        for at in stamps {
            chain.mine();
            self.timeout(chain, at, BillingTimer::Chain);
        }
    }

    /// For each stamp: the chain timer fires, then a block is mined.
    fn poll_then_mine(&mut self, chain: &mut ChainTwin, stamps: impl IntoIterator<Item = Stamp>) {
        for at in stamps {
            self.timeout(chain, at, BillingTimer::Chain);
            chain.mine();
        }
    }

    fn billing_events(&self) -> Vec<&BillingEvent> {
        self.seen
            .events
            .iter()
            .filter_map(|e| if let Event::Billing(b) = e { Some(b) } else { None })
            .collect()
    }

    /// The ledger folded from everything emitted, from empty.
    fn replayed(&self) -> BillingLedger {
        let mut l = BillingLedger::default();
        for e in &self.seen.events {
            l.apply(e);
        }
        l
    }
}

fn counters(tx: u64, rx: u64) -> BillingInput {
    BillingInput::Counters(vec![CounterSample { link: L1, tx_bytes: tx, rx_bytes: rx }])
}

/// A payer that owes N1 `bytes × price`, with thresholds (pay 1000, enforce 5000).
fn payer(chain: &mut ChainTwin, bytes: u64, price: u64) -> Node {
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(chain, t(0), thresholds(1_000, 5_000));
    n.input(chain, t(0), BillingInput::BindNeighbour { neighbour: N1, address: N1_ADDR });
    n.input(chain, t(0), BillingInput::PriceQuoted { link: L1, price_per_byte: Some(price) });
    n.input(chain, t(1), counters(bytes, 0));
    n
}

#[test]
fn a_debt_over_the_threshold_is_paid_once_and_confirmed_after_burial() {
    let mut chain = ChainTwin::new(1, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 600, 3); // owes 1800 > 1000
    n.timeout(&mut chain, t(0), BillingTimer::Chain); // learns head and nonce
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    let intended = n.billing_events().into_iter().find_map(|e| match e {
        BillingEvent::PaymentIntended { id, amount, to, .. } => Some((*id, *amount, *to)),
        _ => None,
    });
    assert_eq!(intended, Some((PaymentId(0), Amount(1800), N1_ADDR)));
    assert!(matches!(n.billing_events().last(), Some(BillingEvent::PaymentSigned { nonce: 0, .. })));
    assert_eq!(n.m.ledger().account(N1).in_flight, Amount(1800));

    // Mined in block 1; needs 3 confirmations: head 3.
    for k in 1..=3 {
        chain.mine();
        n.timeout(&mut chain, t(10_000 + 2_000 * k), BillingTimer::Chain);
        let confirmed = n.billing_events().iter().any(|e| matches!(e, BillingEvent::PaymentConfirmed { .. }));
        assert_eq!(confirmed, k == 3, "after {k} blocks");
    }
    assert_eq!(chain.balance(N1_ADDR), 1800);
    let account = n.m.ledger().account(N1);
    assert_eq!((account.paid, account.in_flight, account.our_debt()), (Amount(1800), Amount(0), 0));
    assert_eq!(n.replayed(), *n.m.ledger(), "replay equivalence");

    // Nothing more is owed, so the next window pays nothing.
    n.timeout(&mut chain, t(20_000), BillingTimer::Window);
    let intents =
        n.billing_events().iter().filter(|e| matches!(e, BillingEvent::PaymentIntended { .. })).count();
    assert_eq!(intents, 1);
}

#[test]
fn a_crash_between_signing_and_sending_sends_the_same_transaction_once() {
    let mut chain = ChainTwin::new(2, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.seen.hold = true; // the shell dies before it can act on the Send
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    // Sign was held too; answer it by hand as the adapter would have, then crash.
    let sign =
        n.seen.held_chain.drain(..).find(|c| matches!(c, ChainCommand::Sign { .. })).expect("asked to sign");
    let signed = chain.handle(US, sign);
    n.input(&mut chain, t(10_001), BillingInput::Chain(signed));
    assert!(n.seen.held_chain.iter().any(|c| matches!(c, ChainCommand::Send { .. })), "the send never left");
    let ledger = n.replayed();
    let usage = n.m.usage().clone();

    // Restart from what was durable: the open payment is signed; the first chain poll sends
    // the very same bytes.
    let mut again = Node::new(US, ledger, usage, Stamp::new(2, 0));
    again.poll_then_mine(&mut chain, (0..6).map(|k| Stamp::new(2, 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000, "paid exactly once");
    assert_eq!(again.m.ledger().account(N1).paid, Amount(2000));
    assert!(again.m.ledger().open.is_empty());
    // A second restart and more polls change nothing.
    let mut third = Node::new(US, again.replayed(), again.m.usage().clone(), Stamp::new(3, 0));
    for k in 0..3 {
        third.timeout(&mut chain, Stamp::new(3, 2_000 * k), BillingTimer::Chain);
        third.timeout(&mut chain, Stamp::new(3, 10_000 * (k + 1)), BillingTimer::Window);
        chain.mine();
    }
    assert_eq!(chain.balance(N1_ADDR), 2000);
}

#[test]
fn a_reorg_before_burial_rebroadcasts_and_still_pays_once() {
    let mut chain = ChainTwin::new(3, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 700, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    chain.mine();
    n.timeout(&mut chain, t(12_000), BillingTimer::Chain);
    chain.reorg(1);
    // The reorg drops the block but the twin keeps the transaction pending; drop it entirely
    // by mining empty blocks only after the machine has seen it vanish.
    n.timeout(&mut chain, t(14_000), BillingTimer::Chain);
    n.mine_then_poll(&mut chain, (0..5).map(|k| t(16_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 1400);
    assert!(n.billing_events().iter().any(|e| matches!(e, BillingEvent::PaymentConfirmed { .. })));
    assert_eq!(n.m.ledger().account(N1).paid, Amount(1400));
}

#[test]
fn without_funds_a_payment_waits_and_is_never_given_up() {
    let mut chain = ChainTwin::new(4, ChainFaults::default());
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    n.mine_then_poll(&mut chain, (0..5).map(|k| t(12_000 + 2_000 * k)));
    assert_eq!(n.m.ledger().open.len(), 1, "still open");
    assert!(n.m.chain.last_rejection.as_deref() == Some("insufficient funds"));
    chain.fund(US, 5_000);
    n.poll_then_mine(&mut chain, (0..6).map(|k| t(30_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(n.m.ledger().payments_failed, 0);
}

#[test]
fn a_nonce_taken_by_another_transaction_fails_the_payment_and_the_debt_is_paid_again() {
    let mut chain = ChainTwin::new(5, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.seen.hold = true;
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    n.seen.hold = false;
    // Meanwhile the same key pays someone else with nonce 0 (the key is used elsewhere).
    let other = match chain.handle(
        US,
        ChainCommand::Sign { id: PaymentId(99), to: Address([9; 20]), amount: Amount(1), nonce: 0 },
    ) {
        ChainObservation::Signed { raw, .. } => raw,
        o => panic!("{o:?}"),
    };
    chain.handle(US, ChainCommand::Send { id: PaymentId(99), raw: other });
    chain.mine();
    let sign = n.seen.held_chain.drain(..).find(|c| matches!(c, ChainCommand::Sign { .. })).expect("sign");
    let signed = chain.handle(US, sign);
    n.input(&mut chain, t(10_001), BillingInput::Chain(signed));
    n.poll_then_mine(&mut chain, (0..8).map(|k| t(12_000 + 2_000 * k)));
    assert!(n.billing_events().iter().any(|e| matches!(
        e,
        BillingEvent::PaymentFailed { failure: PaymentFailure::NonceTaken, nonce_used: true, .. }
    )));
    // The debt is still owed; the next window pays it with a fresh nonce.
    n.timeout(&mut chain, t(40_000), BillingTimer::Window);
    n.poll_then_mine(&mut chain, (0..6).map(|k| t(42_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(n.replayed(), *n.m.ledger());
}

#[test]
fn incoming_transfers_count_once_only_when_buried_from_the_bound_address_to_us() {
    let mut chain = ChainTwin::new(6, ChainFaults::default());
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(&mut chain, t(0), thresholds(1_000, 5_000));
    n.input(&mut chain, t(0), BillingInput::BindNeighbour { neighbour: N1, address: N1_ADDR });
    n.input(&mut chain, t(0), BillingInput::PriceAdvertised { link: L1, price_per_byte: 10 });
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.input(&mut chain, t(1), counters(0, 900)); // N1 owes 9000 > 5000
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    assert_eq!(n.seen.enforced, vec![(N1, Enforcement::Throttled)]);
    assert_eq!(n.m.ledger().account(N1).its_debt(), 9000);

    let pay = |chain: &mut ChainTwin, from: Address, to: Address, amount: u128, nonce: u64| {
        chain.fund(from, amount);
        if let ChainObservation::Signed { raw, .. } =
            chain.handle(from, ChainCommand::Sign { id: PaymentId(0), to, amount: Amount(amount), nonce })
        {
            chain.handle(from, ChainCommand::Send { id: PaymentId(0), raw });
        }
    };
    pay(&mut chain, N1_ADDR, US, 9_500, 0); // 500 more than expected: credit
    pay(&mut chain, Address([0x77; 20]), US, 1_000, 0); // a stranger: not N1's payment
    pay(&mut chain, N1_ADDR, Address([0x55; 20]), 1_000, 1); // N1 paying someone else
    chain.mine();
    n.timeout(&mut chain, t(12_000), BillingTimer::Chain);
    assert_eq!(n.m.ledger().account(N1).received, Amount(0), "not yet buried");
    chain.mine();
    chain.mine();
    for k in 0..3 {
        n.timeout(&mut chain, t(14_000 + 2_000 * k), BillingTimer::Chain);
    }
    let account = n.m.ledger().account(N1);
    assert_eq!(account.received, Amount(9_500), "credited once, only N1's transfer to us");
    assert_eq!(account.credited, Amount(500));
    assert_eq!(account.its_debt(), -500);
    assert_eq!(
        n.seen.enforced,
        vec![(N1, Enforcement::Throttled), (N1, Enforcement::None)],
        "lifted once paid"
    );
    // A lying node showing the same transfer again, or a scan we did not ask for, moves nothing.
    let seen = n.m.ledger().seen.keys().next().copied().expect("seen");
    let replay = ChainObservation::Incoming {
        from_block: 1,
        to_block: 3,
        transfers: vec![crate::events::chain::Transfer {
            tx_hash: seen.0,
            log_index: seen.1,
            from: N1_ADDR,
            to: US,
            amount: Amount(9_500),
            block: 1,
        }],
    };
    n.input(&mut chain, t(30_000), BillingInput::Chain(replay));
    assert_eq!(n.m.ledger().account(N1).received, Amount(9_500));
    assert_eq!(n.replayed(), *n.m.ledger());
}

#[test]
fn operator_commands_are_checked_and_forgiveness_is_explicit() {
    let mut chain = ChainTwin::new(7, ChainFaults::default());
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(&mut chain, t(0), thresholds(1_000, 1_500));
    assert_eq!(n.m.ledger().thresholds, None);
    assert_eq!(
        n.seen.refused,
        ["enforcement threshold 1500 must be at least twice the pay threshold 1000: an honest neighbour owes up to \
          its pay threshold plus counter lag before it pays"]
    );
    n.input(&mut chain, t(0), thresholds(1_000, 2_000));
    n.input(&mut chain, t(0), BillingInput::PriceAdvertised { link: L1, price_per_byte: 5 });
    n.input(&mut chain, t(1), counters(0, 1_000));
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    assert_eq!(n.seen.enforced, vec![(N1, Enforcement::Throttled)]);
    let forgive = |amount, reason: &str| {
        BillingInput::Operator(OperatorCommand::Forgive {
            neighbour: N1,
            amount: Amount(amount),
            reason: reason.into(),
        })
    };
    n.input(&mut chain, t(20_000), forgive(100, " "));
    n.input(&mut chain, t(20_000), forgive(6_000, "too much"));
    assert_eq!(
        n.seen.refused[1..],
        ["forgiving n1 needs a reason".to_string(), "n1 owes 5000; cannot forgive 6000".to_string()]
    );
    n.input(&mut chain, t(20_000), forgive(4_500, "storm outage, agreed with the neighbour"));
    assert_eq!(n.m.ledger().account(N1).its_debt(), 500);
    assert_eq!(n.seen.enforced.last(), Some(&(N1, Enforcement::None)));
    let forgiven = BillingEvent::Forgiven {
        neighbour: N1,
        amount: Amount(4_500),
        reason: "storm outage, agreed with the neighbour".into(),
    };
    assert_eq!(n.billing_events().into_iter().filter(|e| **e == forgiven).count(), 1);
    n.input(&mut chain, t(20_000), BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte: 3 }));
    assert_eq!(n.m.ledger().fee_per_byte, 3);
    assert_eq!(n.replayed(), *n.m.ledger());
}

#[test]
fn rx_bytes_are_expected_at_the_lowest_price_advertised_since_the_links_last_record() {
    let mut chain = ChainTwin::new(8, ChainFaults::default());
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    let advertise = |p| BillingInput::PriceAdvertised { link: L1, price_per_byte: p };
    n.input(&mut chain, t(0), advertise(10));
    n.input(&mut chain, t(1), counters(0, 100));
    n.input(&mut chain, t(2), advertise(4));
    n.input(&mut chain, t(3), advertise(12));
    n.input(&mut chain, t(3), advertise(12));
    n.input(&mut chain, t(4), counters(0, 300));
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    // These bytes may have been priced by the payer at 10, 4 or 12 while prices moved.
    assert_eq!(n.m.ledger().account(N1).expected, Amount(300 * 4));
    // The next record still covers the previous record's interval (bytes priced at 4 may land
    // in it: see `after_a_price_rise_the_next_record_is_still_expected_at_the_old_price`) …
    n.input(&mut chain, t(10_001), counters(0, 350));
    n.timeout(&mut chain, t(20_000), BillingTimer::Window);
    assert_eq!(n.m.ledger().account(N1).expected, Amount(300 * 4 + 50 * 4));
    // … and the one after starts from the price in force at the previous one.
    n.input(&mut chain, t(20_001), counters(0, 360));
    n.timeout(&mut chain, t(30_000), BillingTimer::Window);
    assert_eq!(n.m.ledger().account(N1).expected, Amount(300 * 4 + 50 * 4 + 10 * 12));
    let advertised =
        n.billing_events().iter().filter(|e| matches!(e, BillingEvent::PriceAdvertised { .. })).count();
    assert_eq!(advertised, 3, "an unchanged price is not recorded again");
    assert_eq!(n.replayed(), *n.m.ledger());
}

/// Regression (found by the billing simulation, `tests/billing_sim.rs`): a node may accept a
/// broadcast and then drop it from its mempool. The machine marked the payment as sent and only
/// broadcast again after a receipt had once shown it included, so a dropped transaction left
/// the payment open forever and every later payment queued behind it. Asserted: while the
/// receipt says "not included", each chain poll broadcasts the very same bytes again, and the
/// payment is mined once.
#[test]
fn a_broadcast_the_node_dropped_is_sent_again_until_it_is_mined_once() {
    let mut chain = ChainTwin::new(9, ChainFaults { rpc_failure_ppm: 0, drop_ppm: 1_000_000 });
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    chain.mine();
    n.timeout(&mut chain, t(12_000), BillingTimer::Chain);
    assert_eq!(chain.balance(N1_ADDR), 0, "the node dropped it");
    chain.set_faults(ChainFaults::default());
    n.poll_then_mine(&mut chain, (0..6).map(|k| t(14_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000, "sent again, mined once");
    assert_eq!(n.m.ledger().account(N1).paid, Amount(2000));
    assert!(n.m.ledger().open.is_empty());
    let signed =
        n.billing_events().iter().filter(|e| matches!(e, BillingEvent::PaymentSigned { .. })).count();
    assert_eq!(signed, 1, "never re-signed");
}

/// Regression (found by the billing simulation, seed 42 of `consensus_…`: node 5 paid node 6
/// twice). The chain poll counted every poll in which the nonce had moved past ours and no
/// receipt had yet shown our transaction, so two failed receipt queries after inclusion (plus
/// the poll in which the nonce answer arrives before the receipt) declared the payment
/// `NonceTaken` although it was mined; its debt was then paid again with a new nonce. A failed
/// query is no evidence. Asserted: only receipts that answer "not included" count, and the
/// payment is confirmed and paid once.
#[test]
fn failed_receipt_queries_are_no_evidence_that_our_nonce_went_elsewhere() {
    use crate::events::chain::ChainRequestKind;
    let mut chain = ChainTwin::new(10, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    chain.mine();
    for k in 0..4 {
        let at = t(12_000 + 2_000 * k);
        n.input(&mut chain, at, BillingInput::Chain(ChainObservation::Nonce { next: 1 }));
        let failed = ChainObservation::RpcFailed {
            request: ChainRequestKind::Receipt(PaymentId(0)),
            reason: "timeout".into(),
        };
        n.input(&mut chain, at, BillingInput::Chain(failed));
    }
    assert_eq!(n.m.ledger().payments_failed, 0, "{:?}", n.billing_events());
    n.mine_then_poll(&mut chain, (0..4).map(|k| t(20_000 + 2_000 * k)));
    n.timeout(&mut chain, t(30_000), BillingTimer::Window);
    n.mine_then_poll(&mut chain, (0..4).map(|k| t(32_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000, "paid once");
    assert_eq!(n.m.ledger().account(N1).paid, Amount(2000));
    assert_eq!(n.replayed(), *n.m.ledger());
}

/// Regression (found by the billing simulation: with price changes, an honest payer ended short
/// of what its payee expected, e.g. seed 79 of `consensus_…` without resets). After a price
/// rise, bytes the payer sent before the new quote reached it (quotes travel, counters are read
/// by polls) can land in the payee's record after the one in which the price rose; the rule
/// "lowest price since the link's previous record" then expected them at the new, higher price.
/// Repeated rises made an honest payer drift towards enforcement. Asserted: a record's rx bytes
/// are expected at the lowest price in force during that record's interval and the one before
/// (covering quote delay plus counter lag up to one window).
#[test]
fn after_a_price_rise_the_next_record_is_still_expected_at_the_old_price() {
    let mut chain = ChainTwin::new(11, ChainFaults::default());
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    let advertise = |p| BillingInput::PriceAdvertised { link: L1, price_per_byte: p };
    n.input(&mut chain, t(0), advertise(10));
    n.input(&mut chain, t(1), counters(0, 100));
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    n.input(&mut chain, t(19_000), advertise(12));
    n.timeout(&mut chain, t(20_000), BillingTimer::Window); // nothing new read: no record
    n.input(&mut chain, t(20_500), counters(0, 200));
    n.timeout(&mut chain, t(30_000), BillingTimer::Window);
    // Sent around the rise, priced at 10 by a payer that had not heard of 12 yet.
    n.input(&mut chain, t(30_500), counters(0, 400));
    n.timeout(&mut chain, t(40_000), BillingTimer::Window);
    assert_eq!(n.m.ledger().account(N1).expected, Amount(100 * 10 + 100 * 10 + 200 * 10));
    // Two records after the rise, the old price no longer applies.
    n.input(&mut chain, t(40_500), counters(0, 450));
    n.timeout(&mut chain, t(50_000), BillingTimer::Window);
    assert_eq!(n.m.ledger().account(N1).expected, Amount(4_000 + 50 * 12));
    assert_eq!(n.replayed(), *n.m.ledger());
}

#[test]
fn advertised_prices_from_snapshots_without_the_previous_interval_still_decode() {
    // Written before `Advertised::before` existed: [now, low].
    let old = rmp_serde::to_vec(&(12u64, 4u64)).expect("encode");
    let decoded: super::ledger::Advertised = rmp_serde::from_slice(&old).expect("decode");
    assert_eq!((decoded.now, decoded.low, decoded.before, decoded.rx_price()), (12, 4, None, 4));
}

/// Regression (found by the billing simulation's crash property: a payee lost a 14,010,600
/// transfer). Scan progress was recorded only with a credit or every 256 blocks, and "nothing
/// recorded yet" doubles as "first contact with the chain", where everything already buried is
/// skipped as not meant for us. A node that met the chain at genesis (a fresh anvil, the twin)
/// and crashed before its first credit therefore restarted as a newcomer and skipped buried
/// transfers it had not credited yet. Asserted: the first scan is recorded, so a restart
/// resumes from it and credits the transfer.
#[test]
fn a_restart_before_the_first_credit_does_not_skip_transfers_as_a_newcomer_would() {
    let mut chain = ChainTwin::new(12, ChainFaults::default());
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(&mut chain, t(0), thresholds(1_000, 5_000));
    n.input(&mut chain, t(0), BillingInput::BindNeighbour { neighbour: N1, address: N1_ADDR });
    n.timeout(&mut chain, t(0), BillingTimer::Chain); // first contact at genesis
    for _ in 0..3 {
        chain.mine();
    }
    n.timeout(&mut chain, t(2_000), BillingTimer::Chain); // scans block 1: empty
    chain.fund(N1_ADDR, 700);
    if let ChainObservation::Signed { raw, .. } =
        chain.handle(N1_ADDR, ChainCommand::Sign { id: PaymentId(0), to: US, amount: Amount(700), nonce: 0 })
    {
        chain.handle(N1_ADDR, ChainCommand::Send { id: PaymentId(0), raw });
    }
    chain.mine(); // block 4 pays us
    let (ledger, usage) = (n.replayed(), n.m.usage().clone());
    for _ in 0..3 {
        chain.mine();
    }
    let mut again = Node::new(US, ledger, usage, Stamp::new(2, 0));
    for k in 0..4 {
        again.timeout(&mut chain, Stamp::new(2, 2_000 * k), BillingTimer::Chain);
    }
    assert_eq!(again.m.ledger().account(N1).received, Amount(700));
}

/// The bug: a head that reached the burial depth confirmed the payment on the strength of a
/// receipt from an earlier poll, although a reorg could have dropped the transaction since.
/// Only a receipt that still shows the inclusion, seen at that depth, confirms.
#[test]
fn burial_is_confirmed_only_by_a_fresh_receipt_not_by_a_head_alone() {
    let mut chain = ChainTwin::new(11, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    let (id, tx_hash) = n
        .billing_events()
        .iter()
        .find_map(|e| match e {
            BillingEvent::PaymentSigned { id, tx_hash, .. } => Some((*id, *tx_hash)),
            _ => None,
        })
        .expect("signed");
    let at = |block| crate::events::chain::Inclusion { block, success: true };
    let feed = |n: &mut Node, chain: &mut ChainTwin, o| n.input(chain, t(20_000), BillingInput::Chain(o));
    feed(&mut n, &mut chain, ChainObservation::Head { block: 5 });
    feed(&mut n, &mut chain, ChainObservation::Receipt { id, tx_hash, included: Some(at(5)) });
    feed(&mut n, &mut chain, ChainObservation::Head { block: 9 });
    let confirmed =
        |n: &Node| n.billing_events().iter().any(|e| matches!(e, BillingEvent::PaymentConfirmed { .. }));
    assert!(!confirmed(&n), "a head alone does not confirm");
    feed(&mut n, &mut chain, ChainObservation::Receipt { id, tx_hash, included: None });
    assert!(!confirmed(&n), "reorged away");
    feed(&mut n, &mut chain, ChainObservation::Receipt { id, tx_hash, included: Some(at(7)) });
    assert!(confirmed(&n), "re-included at 7 and buried under 3 blocks by head 9");
}

/// Replacement waits this many chain polls in these tests.
const REPLACE_AFTER: u32 = 2;

fn replacing(ledger: BillingLedger, usage: UsageLedger, now: Stamp) -> Node {
    let config = BillingConfig { replace_after_polls: REPLACE_AFTER, ..config() };
    Node::with_config(config, ledger, usage, now)
}

/// A payer with replacement on that owes N1 2000, whose payment is signed (nonce 0) and
/// broadcast while the chain's minimum fee is 10 (so it carries 20), after which the minimum
/// fee rises to 100: the transaction is stuck.
fn stuck_payment(chain: &mut ChainTwin) -> Node {
    chain.fund(US, 1_000_000);
    chain.set_min_fee(10);
    let mut n = replacing(BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(chain, t(0), thresholds(1_000, 5_000));
    n.input(chain, t(0), BillingInput::BindNeighbour { neighbour: N1, address: N1_ADDR });
    n.input(chain, t(0), BillingInput::PriceQuoted { link: L1, price_per_byte: Some(2) });
    n.input(chain, t(1), counters(1000, 0));
    n.timeout(chain, t(0), BillingTimer::Chain);
    n.timeout(chain, t(10_000), BillingTimer::Window);
    assert_eq!(signed_hashes(&n).len(), 1);
    chain.set_min_fee(100);
    n
}

/// Every hash signed for payment 0, in order, with the nonce each was signed with.
fn signed_hashes(n: &Node) -> Vec<(u64, TxHash)> {
    n.billing_events()
        .iter()
        .filter_map(|e| match e {
            BillingEvent::PaymentSigned { id: PaymentId(0), nonce, tx_hash, .. } => Some((*nonce, *tx_hash)),
            _ => None,
        })
        .collect()
}

fn confirmations(n: &Node) -> usize {
    n.billing_events().iter().filter(|e| matches!(e, BillingEvent::PaymentConfirmed { .. })).count()
}

/// Every signature the machine ever asked for was for nonce 0: never another nonce.
fn only_nonce_zero(n: &Node) {
    for c in &n.seen.commands {
        if let ChainCommand::Sign { nonce, id, .. } = c {
            assert_eq!((*id, *nonce), (PaymentId(0), 0), "{c:?}");
        }
    }
}

/// Answers the held `Sign` (as the adapter would) while everything else stays held: the
/// replacement's `PaymentSigned` is emitted, its `Send` never leaves.
/// A stuck payment whose replacement is signed (and recorded) while the shell holds every
/// chain command, so the replacement's `Send` has not left. Returns the node, still holding,
/// and both signed hashes.
fn replacement_signed_send_held(chain: &mut ChainTwin) -> (Node, Vec<(u64, TxHash)>) {
    let mut n = stuck_payment(chain);
    n.mine_then_poll(chain, (1..REPLACE_AFTER).map(|k| t(10_000 + 2_000 * u64::from(k))));
    n.seen.hold = true;
    n.timeout(chain, t(20_000), BillingTimer::Chain);
    sign_held_replacement(&mut n, chain, t(20_001));
    let hashes = signed_hashes(&n);
    assert_eq!(hashes.len(), 2);
    (n, hashes)
}

fn sign_held_replacement(n: &mut Node, chain: &mut ChainTwin, at: Stamp) {
    let sign =
        n.seen.held_chain.iter().find(|c| matches!(c, ChainCommand::Sign { .. })).cloned().expect("sign");
    let signed = chain.handle(US, sign);
    n.input(chain, at, BillingInput::Chain(signed));
    assert!(n.seen.held_chain.iter().any(|c| matches!(c, ChainCommand::Send { .. })), "the send is held");
    n.seen.held_chain.clear();
}

#[test]
fn a_payment_stuck_below_the_minimum_fee_is_replaced_with_the_same_nonce_and_confirmed_once() {
    let mut chain = ChainTwin::new(20, ChainFaults::default());
    let mut n = stuck_payment(&mut chain);
    let mut at = 10_000;
    let mut poll = |n: &mut Node, chain: &mut ChainTwin| {
        chain.mine();
        at += 2_000;
        n.timeout(chain, t(at), BillingTimer::Chain);
    };
    for _ in 0..REPLACE_AFTER - 1 {
        poll(&mut n, &mut chain);
        assert_eq!(signed_hashes(&n).len(), 1, "not replaced before {REPLACE_AFTER} polls");
    }
    assert_eq!(chain.balance(N1_ADDR), 0, "stuck below the minimum fee");
    poll(&mut n, &mut chain);
    let hashes = signed_hashes(&n);
    assert_eq!(hashes.len(), 2, "replaced");
    assert_eq!(hashes[1].0, 0, "with the same nonce");
    assert_ne!(hashes[0].1, hashes[1].1, "at a new fee: another transaction");
    let payment = &n.m.ledger().open[&PaymentId(0)];
    assert_eq!(payment.hashes, vec![hashes[0].1, hashes[1].1], "both watched");
    for _ in 0..5 {
        poll(&mut n, &mut chain);
    }
    assert_eq!(chain.balance(N1_ADDR), 2000, "paid once");
    assert_eq!(confirmations(&n), 1);
    assert_eq!(n.m.ledger().account(N1).paid, Amount(2000));
    assert_eq!(n.m.ledger().next_nonce, 1);
    assert!(n.m.ledger().open.is_empty());
    only_nonce_zero(&n);
    assert_eq!(n.replayed(), *n.m.ledger(), "replay equivalence");
    // Nothing more is owed and nothing is re-signed once it is confirmed.
    n.timeout(&mut chain, t(60_000), BillingTimer::Window);
    for _ in 0..6 {
        poll(&mut n, &mut chain);
    }
    assert_eq!(signed_hashes(&n).len(), 2);
    assert_eq!(chain.balance(N1_ADDR), 2000);
}

/// The replacement is signed (and durable) but the older transaction is the one mined (the
/// minimum fee falls back before the replacement spreads): the receipt for the older hash
/// confirms the payment, once, and the replacement can never be mined on top (same nonce).
#[test]
fn when_the_older_hash_is_mined_after_a_replacement_the_payment_is_still_confirmed_once() {
    let mut chain = ChainTwin::new(21, ChainFaults::default());
    let (mut n, hashes) = replacement_signed_send_held(&mut chain);
    n.seen.hold = false;
    chain.set_min_fee(10);
    chain.mine(); // the older transaction, still pending, is mined
    n.mine_then_poll(&mut chain, (0..6).map(|k| t(22_000 + 2_000 * k)));
    let mined: Vec<TxHash> = chain.transfers().iter().map(|t| t.tx_hash).collect();
    assert_eq!(mined, vec![hashes[0].1], "the older hash, once");
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(confirmations(&n), 1);
    assert_eq!(n.m.ledger().payments_failed, 0);
    assert_eq!(n.m.ledger().account(N1).paid, Amount(2000));
    only_nonce_zero(&n);
    assert_eq!(n.replayed(), *n.m.ledger(), "replay equivalence");
    // The next windows owe nothing; nothing is paid again.
    for k in 0..3 {
        n.timeout(&mut chain, t(40_000 + 10_000 * k), BillingTimer::Window);
        chain.mine();
        n.timeout(&mut chain, t(41_000 + 10_000 * k), BillingTimer::Chain);
    }
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(chain.transfers().len(), 1);
}

/// A receipt for the older hash arriving after the replacement was recorded still counts.
#[test]
fn a_receipt_for_an_older_hash_confirms_the_payment() {
    let mut chain = ChainTwin::new(22, ChainFaults::default());
    let mut n = stuck_payment(&mut chain);
    for k in 1..=REPLACE_AFTER {
        n.timeout(&mut chain, t(10_000 + 2_000 * u64::from(k)), BillingTimer::Chain);
    }
    let hashes = signed_hashes(&n);
    assert_eq!(hashes.len(), 2);
    let at = |block| Inclusion { block, success: true };
    let feed = |n: &mut Node, chain: &mut ChainTwin, o| n.input(chain, t(30_000), BillingInput::Chain(o));
    let (id, old, new) = (PaymentId(0), hashes[0].1, hashes[1].1);
    feed(&mut n, &mut chain, ChainObservation::Head { block: 9 });
    feed(&mut n, &mut chain, ChainObservation::Receipt { id, tx_hash: old, included: Some(at(5)) });
    feed(&mut n, &mut chain, ChainObservation::Receipt { id, tx_hash: new, included: None });
    assert_eq!(confirmations(&n), 1);
    assert_eq!(n.m.ledger().next_nonce, 1);
    assert_eq!(n.replayed(), *n.m.ledger());
}

/// The crash replacement is about: the replacement's `PaymentSigned` is on flash, its `Send`
/// never left. The restarted node broadcasts the latest bytes (the replacement, which pays the
/// fee of the moment) and still watches the older hash; the payment is mined and confirmed once.
#[test]
fn a_crash_between_a_replacements_signature_and_its_send_pays_once_after_restart() {
    let mut chain = ChainTwin::new(23, ChainFaults::default());
    let (n, hashes) = replacement_signed_send_held(&mut chain);
    // Crash: restart from the fold of what was durable.
    let (ledger, usage) = (n.replayed(), n.m.usage().clone());
    assert_eq!(ledger.open[&PaymentId(0)].hashes, vec![hashes[0].1, hashes[1].1]);
    let mut again = replacing(ledger, usage, Stamp::new(2, 0));
    again.poll_then_mine(&mut chain, (0..8).map(|k| Stamp::new(2, 2_000 * k)));
    assert!(
        again
            .seen
            .commands
            .iter()
            .any(|c| matches!(c, ChainCommand::QueryReceipt { tx_hash, .. } if *tx_hash == hashes[0].1)),
        "the older hash is still watched"
    );
    let mined: Vec<TxHash> = chain.transfers().iter().map(|t| t.tx_hash).collect();
    assert_eq!(mined, vec![hashes[1].1], "the replacement, once");
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(confirmations(&again), 1);
    assert_eq!(again.m.ledger().account(N1).paid, Amount(2000));
    assert!(again.m.ledger().open.is_empty());
    only_nonce_zero(&n);
    only_nonce_zero(&again);
    let mut whole_log = n.replayed();
    for e in &again.seen.events {
        whole_log.apply(e);
    }
    assert_eq!(whole_log, *again.m.ledger(), "replay equivalence across the restart");
    // A second restart and more windows change nothing.
    let mut third = replacing(again.m.ledger().clone(), again.m.usage().clone(), Stamp::new(3, 0));
    for k in 0..3 {
        third.timeout(&mut chain, Stamp::new(3, 2_000 * k), BillingTimer::Chain);
        third.timeout(&mut chain, Stamp::new(3, 10_000 * (k + 1)), BillingTimer::Window);
        chain.mine();
    }
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(chain.transfers().len(), 1);
}

/// Replacement only ever re-signs the same nonce: while a replacement is being signed the
/// older transaction may be confirmed; the late signature is then ignored, and the next payment
/// is not blocked by it.
#[test]
fn a_replacement_signed_after_its_payment_was_confirmed_is_ignored() {
    let mut chain = ChainTwin::new(24, ChainFaults::default());
    let mut n = stuck_payment(&mut chain);
    for k in 1..REPLACE_AFTER {
        n.timeout(&mut chain, t(10_000 + 2_000 * u64::from(k)), BillingTimer::Chain);
    }
    n.seen.hold = true;
    n.timeout(&mut chain, t(20_000), BillingTimer::Chain);
    let sign =
        n.seen.held_chain.iter().find(|c| matches!(c, ChainCommand::Sign { .. })).cloned().expect("sign");
    n.seen.held_chain.clear();
    n.seen.hold = false;
    chain.set_min_fee(10);
    n.mine_then_poll(&mut chain, (0..5).map(|k| t(22_000 + 2_000 * k)));
    assert_eq!(confirmations(&n), 1);
    let late = chain.handle(US, sign);
    n.input(&mut chain, t(40_000), BillingInput::Chain(late));
    assert_eq!(signed_hashes(&n).len(), 1, "not recorded for a confirmed payment");
    // A new debt is paid with the next nonce.
    n.input(&mut chain, t(40_001), counters(2000, 0));
    n.timeout(&mut chain, t(50_000), BillingTimer::Window);
    n.mine_then_poll(&mut chain, (0..5).map(|k| t(52_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 4000);
    assert_eq!(n.m.ledger().next_nonce, 2);
    assert_eq!(n.replayed(), *n.m.ledger());
}

/// After a restart, replacement carries on: the replacement recorded before the crash is
/// stuck too (the minimum fee rose again), so the restarted machine replaces it once more, with
/// the same nonce, waiting twice as long (the second replacement of this payment), and keeps
/// watching every hash; one of them is mined, once.
#[test]
fn after_a_restart_a_still_stuck_payment_is_replaced_again_with_the_same_nonce() {
    let mut chain = ChainTwin::new(25, ChainFaults::default());
    let mut n = stuck_payment(&mut chain);
    n.mine_then_poll(&mut chain, (1..=REPLACE_AFTER).map(|k| t(10_000 + 2_000 * u64::from(k))));
    assert_eq!(signed_hashes(&n).len(), 2);
    chain.set_min_fee(1_000); // the replacement (fee 200) is stuck as well
    let mut again = replacing(n.replayed(), n.m.usage().clone(), Stamp::new(2, 0));
    let mut polls = 0;
    while signed_hashes(&n).len() + signed_hashes(&again).len() < 3 {
        assert!(polls < 2 * REPLACE_AFTER, "not replaced again within {polls} polls");
        chain.mine();
        again.timeout(&mut chain, Stamp::new(2, 2_000 * u64::from(polls)), BillingTimer::Chain);
        polls += 1;
    }
    assert_eq!(polls, 2 * REPLACE_AFTER, "the second replacement waits twice as long");
    assert_eq!(chain.balance(N1_ADDR), 0);
    let payment = &again.m.ledger().open[&PaymentId(0)];
    assert_eq!((payment.nonce, payment.hashes.len()), (Some(0), 3));
    again.mine_then_poll(&mut chain, (0..6).map(|k| Stamp::new(2, 20_000 + 2_000 * k)));
    assert_eq!(chain.balance(N1_ADDR), 2000, "paid once");
    assert_eq!(chain.transfers().len(), 1);
    assert_eq!(confirmations(&again), 1);
    only_nonce_zero(&n);
    only_nonce_zero(&again);
}

/// With several hashes, "our nonce is used and our transaction is not in the chain" is evidence
/// only when every hash says so: the newer hash answering "not included" while the older one's
/// receipt query fails says nothing (the older one may be the one mined). Declaring the payment
/// beaten to its nonce there would pay its debt again.
#[test]
fn a_replacement_not_included_is_no_evidence_of_a_taken_nonce_while_an_older_hash_is_unanswered() {
    use crate::events::chain::ChainRequestKind;
    let mut chain = ChainTwin::new(26, ChainFaults::default());
    let mut n = stuck_payment(&mut chain);
    for k in 1..=REPLACE_AFTER {
        n.timeout(&mut chain, t(10_000 + 2_000 * u64::from(k)), BillingTimer::Chain);
    }
    let hashes = signed_hashes(&n);
    assert_eq!(hashes.len(), 2);
    let (id, old, new) = (PaymentId(0), hashes[0].1, hashes[1].1);
    n.seen.hold = true; // answers are fed by hand
    for k in 0..6 {
        let at = t(30_000 + 2_000 * k);
        n.timeout(&mut chain, at, BillingTimer::Chain);
        n.seen.held_chain.clear();
        for o in [
            ChainObservation::Nonce { next: 1 },
            ChainObservation::Receipt { id, tx_hash: new, included: None },
            ChainObservation::RpcFailed { request: ChainRequestKind::Receipt(id), reason: "timeout".into() },
        ] {
            n.input(&mut chain, at, BillingInput::Chain(o));
        }
    }
    assert_eq!(n.m.ledger().payments_failed, 0, "{:?}", n.billing_events());
    let included = Some(Inclusion { block: 5, success: true });
    n.input(&mut chain, t(50_000), BillingInput::Chain(ChainObservation::Head { block: 9 }));
    n.input(
        &mut chain,
        t(50_000),
        BillingInput::Chain(ChainObservation::Receipt { id, tx_hash: old, included }),
    );
    assert_eq!(confirmations(&n), 1);
    assert_eq!(n.replayed(), *n.m.ledger());
}

/// A user pays its exit what the exit's accepted statements bill it, through the tunnel to
/// the exit, like any debt: increases of the cumulative amount due are owed, repeats and
/// late older statements change nothing.
#[test]
fn accepted_exit_statements_are_owed_to_the_exit_and_paid_once() {
    const EXIT: NeighbourId = NeighbourId(9);
    const EXIT_ADDR: Address = Address([0x09; 20]);
    let mut chain = ChainTwin::new(12, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = Node::new(US, BillingLedger::default(), UsageLedger::default(), t(0));
    n.input(&mut chain, t(0), thresholds(1_000, 5_000));
    n.input(&mut chain, t(0), BillingInput::BindNeighbour { neighbour: EXIT, address: EXIT_ADDR });
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    let accepted = |due| BillingInput::ExitStatementAccepted { neighbour: EXIT, amount_due: Amount(due) };
    n.input(&mut chain, t(1), accepted(5_000));
    n.input(&mut chain, t(2), accepted(5_000));
    n.input(&mut chain, t(3), accepted(4_000));
    assert_eq!(n.m.ledger().account(EXIT).owed, Amount(5_000));
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    n.mine_then_poll(&mut chain, (0..4).map(|k| t(12_000 + 2_000 * k)));
    n.input(&mut chain, t(20_001), accepted(8_000));
    n.timeout(&mut chain, t(30_000), BillingTimer::Window);
    n.mine_then_poll(&mut chain, (0..4).map(|k| t(32_000 + 2_000 * k)));
    assert_eq!(chain.balance(EXIT_ADDR), 8_000, "5000, then the 3000 the next statement added");
    let account = n.m.ledger().account(EXIT);
    assert_eq!((account.owed, account.paid, account.exit_due), (Amount(8_000), Amount(8_000), Amount(8_000)));
    let dues = n.billing_events().iter().filter(|e| matches!(e, BillingEvent::ExitDue { .. })).count();
    assert_eq!(dues, 2);
    assert_eq!(n.replayed(), *n.m.ledger());
}
