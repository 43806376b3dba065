//! Billing and payments, step by step against the chain twin.

use super::*;
use crate::events::billing::{PaymentFailure, Thresholds};
use crate::events::chain::{ChainObservation, PaymentId};
use crate::events::usage::{CounterSample, Link, NeighbourId};
use crate::events::Fold;
use crate::events::Release;
use crate::os::chain::twin::{ChainFaults, ChainTwin};

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
    }
}

fn thresholds(pay: u128, enforce: u128) -> BillingInput {
    BillingInput::Operator(OperatorCommand::SetThresholds(Thresholds {
        pay: Amount(pay),
        enforce: Amount(enforce),
    }))
}

/// One node's billing machine wired to the chain twin: chain effects are answered at once
/// (in the order emitted), everything emitted is kept.
struct Node {
    m: BillingMachine,
    address: Address,
    events: Vec<Event>,
    enforced: Vec<(NeighbourId, Enforcement)>,
    refused: Vec<String>,
    held_chain: Vec<ChainCommand>,
    /// When true, chain effects are kept in `held_chain` instead of executed (a crash
    /// before the shell could act on them).
    hold: bool,
}

impl Node {
    fn new(address: Address, ledger: BillingLedger, usage: UsageLedger, now: Stamp) -> Self {
        let config = BillingConfig { our_address: address, ..config() };
        Node {
            m: BillingMachine::new(config, usage, ledger, now),
            address,
            events: Vec::new(),
            enforced: Vec::new(),
            refused: Vec::new(),
            held_chain: Vec::new(),
            hold: false,
        }
    }

    fn input(&mut self, chain: &mut ChainTwin, at: Stamp, input: BillingInput) {
        self.m.handle(at, input);
        self.pump(chain, at);
    }

    fn timeout(&mut self, chain: &mut ChainTwin, at: Stamp, timer: BillingTimer) {
        self.m.handle_timeout(at, timer);
        self.pump(chain, at);
    }

    fn pump(&mut self, chain: &mut ChainTwin, at: Stamp) {
        loop {
            while let Some(e) = self.m.poll_event() {
                self.events.push(e);
            }
            let Some(effect) = self.m.poll_effect() else {
                break;
            };
            match effect.action {
                BillingEffect::Chain(command) => {
                    if matches!(command, ChainCommand::Sign { .. } | ChainCommand::Send { .. }) {
                        assert_eq!(effect.release, Release::WhenDurable, "{command:?} commits money");
                    }
                    if self.hold {
                        self.held_chain.push(command);
                        continue;
                    }
                    let answer = chain.handle(self.address, command);
                    self.m.handle(at, BillingInput::Chain(answer));
                }
                BillingEffect::Enforce { neighbour, level } => self.enforced.push((neighbour, level)),
                BillingEffect::Refused { reason } => self.refused.push(reason),
                BillingEffect::ReadCounters => {}
            }
        }
    }

    fn billing_events(&self) -> Vec<&BillingEvent> {
        self.events.iter().filter_map(|e| if let Event::Billing(b) = e { Some(b) } else { None }).collect()
    }

    /// The ledger folded from everything emitted, from empty.
    fn replayed(&self) -> BillingLedger {
        let mut l = BillingLedger::default();
        for e in &self.events {
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
    n.hold = true; // the shell dies before it can act on the Send
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    // Sign was held too; answer it by hand as the adapter would have, then crash.
    let sign =
        n.held_chain.drain(..).find(|c| matches!(c, ChainCommand::Sign { .. })).expect("asked to sign");
    let signed = chain.handle(US, sign);
    n.m.handle(t(10_001), BillingInput::Chain(signed));
    n.pump(&mut chain, t(10_001));
    assert!(n.held_chain.iter().any(|c| matches!(c, ChainCommand::Send { .. })), "the send never left");
    let ledger = n.replayed();
    let usage = n.m.usage().clone();

    // Restart from what was durable: the open payment is signed; the first chain poll sends
    // the very same bytes.
    let mut again = Node::new(US, ledger, usage, Stamp::new(2, 0));
    for k in 0..6 {
        again.timeout(&mut chain, Stamp::new(2, 2_000 * k), BillingTimer::Chain);
        chain.mine();
    }
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
    for k in 0..5 {
        chain.mine();
        n.timeout(&mut chain, t(16_000 + 2_000 * k), BillingTimer::Chain);
    }
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
    for k in 0..5 {
        chain.mine();
        n.timeout(&mut chain, t(12_000 + 2_000 * k), BillingTimer::Chain);
    }
    assert_eq!(n.m.ledger().open.len(), 1, "still open");
    assert!(n.m.chain.last_rejection.as_deref() == Some("insufficient funds"));
    chain.fund(US, 5_000);
    for k in 0..6 {
        n.timeout(&mut chain, t(30_000 + 2_000 * k), BillingTimer::Chain);
        chain.mine();
    }
    assert_eq!(chain.balance(N1_ADDR), 2000);
    assert_eq!(n.m.ledger().payments_failed, 0);
}

#[test]
fn a_nonce_taken_by_another_transaction_fails_the_payment_and_the_debt_is_paid_again() {
    let mut chain = ChainTwin::new(5, ChainFaults::default());
    chain.fund(US, 1_000_000);
    let mut n = payer(&mut chain, 1000, 2);
    n.timeout(&mut chain, t(0), BillingTimer::Chain);
    n.hold = true;
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    n.hold = false;
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
    let sign = n.held_chain.drain(..).find(|c| matches!(c, ChainCommand::Sign { .. })).expect("sign");
    let signed = chain.handle(US, sign);
    n.input(&mut chain, t(10_001), BillingInput::Chain(signed));
    for k in 0..8 {
        n.timeout(&mut chain, t(12_000 + 2_000 * k), BillingTimer::Chain);
        chain.mine();
    }
    assert!(n.billing_events().iter().any(|e| matches!(
        e,
        BillingEvent::PaymentFailed { failure: PaymentFailure::NonceTaken, nonce_used: true, .. }
    )));
    // The debt is still owed; the next window pays it with a fresh nonce.
    n.timeout(&mut chain, t(40_000), BillingTimer::Window);
    for k in 0..6 {
        n.timeout(&mut chain, t(42_000 + 2_000 * k), BillingTimer::Chain);
        chain.mine();
    }
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
    assert_eq!(n.enforced, vec![(N1, Enforcement::Throttled)]);
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
    assert_eq!(n.enforced, vec![(N1, Enforcement::Throttled), (N1, Enforcement::None)], "lifted once paid");
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
    assert!(n.refused[0].contains("at least twice the pay threshold"), "{:?}", n.refused);
    n.input(&mut chain, t(0), thresholds(1_000, 2_000));
    n.input(&mut chain, t(0), BillingInput::PriceAdvertised { link: L1, price_per_byte: 5 });
    n.input(&mut chain, t(1), counters(0, 1_000));
    n.timeout(&mut chain, t(10_000), BillingTimer::Window);
    assert_eq!(n.enforced, vec![(N1, Enforcement::Throttled)]);
    let forgive = |amount, reason: &str| {
        BillingInput::Operator(OperatorCommand::Forgive {
            neighbour: N1,
            amount: Amount(amount),
            reason: reason.into(),
        })
    };
    n.input(&mut chain, t(20_000), forgive(100, " "));
    n.input(&mut chain, t(20_000), forgive(6_000, "too much"));
    assert_eq!(n.refused.len(), 3);
    n.input(&mut chain, t(20_000), forgive(4_500, "storm outage, agreed with the neighbour"));
    assert_eq!(n.m.ledger().account(N1).its_debt(), 500);
    assert_eq!(n.enforced.last(), Some(&(N1, Enforcement::None)));
    assert!(n
        .billing_events()
        .iter()
        .any(|e| matches!(e, BillingEvent::Forgiven { reason, .. } if reason.starts_with("storm"))));
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
    // The next record starts from the price in force at the previous one.
    n.input(&mut chain, t(10_001), counters(0, 350));
    n.timeout(&mut chain, t(20_000), BillingTimer::Window);
    assert_eq!(n.m.ledger().account(N1).expected, Amount(300 * 4 + 50 * 12));
    let advertised =
        n.billing_events().iter().filter(|e| matches!(e, BillingEvent::PriceAdvertised { .. })).count();
    assert_eq!(advertised, 3, "an unchanged price is not recorded again");
    assert_eq!(n.replayed(), *n.m.ledger());
}
