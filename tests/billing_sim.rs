//! Pay per forward across a simulated network (issue 3): real billing machines on a topology,
//! one chain twin, seeded loss, price changes, counter resets, chain faults, cheats and crashes
//! (`lastmile::sim::billing`); see docs/ARCHITECTURE.md, "Billing".
//!
//! Every property runs the whole network to its settlement (traffic stops, the pay threshold
//! drops to 0, payments confirm) and then compares ledgers with the simulator's ground truth
//! and with the chain.

use lastmile::events::billing::{BillingEvent, Enforcement, OperatorCommand, Thresholds};
use lastmile::events::chain::Amount;
use lastmile::events::Event;
use lastmile::rng::SplitMix64;
use lastmile::sim::billing::{BillingSim, Cheat, Crash, SimConfig, Stray, StraySender, Topology};
use lastmile::sim::chain::ChainFaults;
use quickcheck::{QuickCheck, TestResult};

fn run(config: SimConfig) -> BillingSim {
    let mut sim = BillingSim::new(config);
    sim.run();
    sim
}

/// A seeded scenario: 3–8 nodes, line or random, some flows; `SimConfig::small`'s pay
/// threshold (low, so payments are frequent) with the enforcement threshold in the regime
/// (`with_room`).
fn scenario(seed: u64) -> SimConfig {
    let mut g = SplitMix64::new(seed).derive(0x5ce);
    let mut c = SimConfig::small(seed);
    c.nodes = 3 + g.below(6) as usize;
    c.topology =
        if g.below(2) == 0 { Topology::Line } else { Topology::Random { extra_edges: g.below(3) as usize } };
    c.flows = 1 + g.below(6) as usize;
    with_room(c)
}

/// Settlement, audit and replay equivalence, for every run.
fn settled_and_audited(sim: &BillingSim) -> Result<(), String> {
    let problems = sim.audit();
    if !problems.is_empty() {
        return Err(format!("audit: {problems:?}"));
    }
    if !sim.settled() {
        return Err("not settled at the end".into());
    }
    if !sim.refusals.is_empty() {
        return Err(format!("refused: {:?}", sim.refusals));
    }
    Ok(())
}

/// Consensus, guarding both sides. The payer's: no honest payer is ever throttled, no payer in
/// credit is left throttled, and after settlement every payee has received at least what it
/// expects from each honest payer, less only what counter resets hid from the payer's machine
/// (bytes × quote, recorded by the simulator). The payee's: every payee expects at least what
/// it was sent for others' destinations at the lowest price it ever advertised, less what
/// resets hid from its own machine (`BillingSim::expected_at_least`), so a payee that
/// under-bills fails too, cheat or not.
fn consensus(sim: &BillingSim) -> Result<(), String> {
    settled_and_audited(sim)?;
    for e in &sim.enforcements {
        if e.level == Enforcement::Throttled && !sim.is_cheat(e.payer) {
            return Err(format!("honest node {} throttled: {e:?}", e.payer));
        }
    }
    for (payer, payee) in sim.billed_pairs() {
        let a = sim.account(payee, payer);
        let least = sim.expected_at_least(payer, payee);
        if a.expected.0 < least {
            return Err(format!(
                "{payee} expects {} from {payer}, less than the {least} it was sent",
                a.expected
            ));
        }
        if a.its_debt() < 0 && a.enforcement != Enforcement::None {
            return Err(format!(
                "{payer} is in credit at {payee} ({}) but {:?}",
                -a.its_debt(),
                a.enforcement
            ));
        }
        if sim.is_cheat(payer) {
            continue;
        }
        let slack = sim.reset_unbilled.get(&(payer, payee)).copied().unwrap_or(0);
        if a.received.0 + slack < a.expected.0 {
            return Err(format!(
                "{payee} expected {} from {payer} but received {} (reset slack {slack})",
                a.expected, a.received
            ));
        }
    }
    Ok(())
}

fn check(result: Result<(), String>) -> TestResult {
    match result {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

/// Without loss: every billed pair's owed, paid, expected and received are equal (and not 0),
/// and nobody was ever enforced against.
fn exact(sim: &BillingSim) -> Result<(), String> {
    settled_and_audited(sim)?;
    for (payer, payee) in sim.billed_pairs() {
        let ours = sim.account(payer, payee);
        let theirs = sim.account(payee, payer);
        let amounts = [ours.owed, ours.paid, theirs.expected, theirs.received];
        if amounts.iter().any(|a| *a != ours.owed) || ours.owed.0 == 0 {
            return Err(format!("{payer}→{payee}: owed, paid, expected, received = {amounts:?}"));
        }
    }
    if !sim.enforcements.is_empty() {
        return Err(format!("enforced: {:?}", sim.enforcements));
    }
    Ok(())
}

#[test]
fn exactness_without_loss_paid_equals_expected_to_the_base_unit() {
    fn prop(seed: u64) -> TestResult {
        check(exact(&run(scenario(seed))))
    }
    QuickCheck::new().tests(12).quickcheck(prop as fn(u64) -> TestResult);
}

/// Regression: on these seeds one window of one link is worth more than `SimConfig::small`'s
/// fixed room between the thresholds (enforce − pay = 2,000,000), which the exactness scenario
/// used to keep. An honest payer then owed just under the pay threshold after one window
/// (seed 11228849086494662533, 0 → 1: 1,960,324, so it did not pay), and at the next close just
/// over the enforcement threshold (+ 2,276,684 = 4,237,008 > 4,000,000): its payee throttled it
/// at the very close at which it paid, and lifted it when the payment arrived 6 s later. With
/// the enforcement threshold in the regime the same runs are exact and never enforced.
#[test]
fn exactness_holds_where_one_window_is_worth_more_than_the_fixed_thresholds_room() {
    for seed in [18054082321272548793, 11228849086494662533, 17075010794090309512, 3225630594405767804] {
        let c = scenario(seed);
        exact(&run(c.clone())).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // The seed still reaches the mechanism: with the fixed thresholds, an honest payer is
        // throttled.
        let fixed = run(SimConfig { thresholds: SimConfig::small(seed).thresholds, ..c });
        assert!(
            fixed.enforcements.iter().any(|e| e.level == Enforcement::Throttled),
            "seed {seed}: no longer throttled with the fixed thresholds"
        );
    }
}

/// The consensus scenario: any loss (0–20% per hop), price changes, counter resets, delayed
/// and shuffled readings, RPC failures, dropped broadcasts, shallow reorgs, and transfers from
/// strangers to seeded nodes at seeded moments (never to be credited).
fn stormy(seed: u64) -> SimConfig {
    let mut g = SplitMix64::new(seed).derive(0x570);
    let mut c = scenario(seed);
    c.max_loss_ppm = g.below(200_001) as u32;
    c.price_changes = g.below(12) as usize;
    c.counter_reset_ppm = g.below(3) as u32 * 5_000;
    c.chain_faults =
        ChainFaults { rpc_failure_ppm: g.below(2) as u32 * 50_000, drop_ppm: g.below(2) as u32 * 100_000 };
    c.reorg_ppm = g.below(2) as u32 * 200_000;
    c.confirmations = 2 + g.below(2);
    c.strays = (0..g.below(3))
        .map(|_| Stray {
            at_ms: g.below(c.end_ms),
            to: g.below(c.nodes as u64) as usize,
            from: StraySender::Stranger,
            amount: 1 + u128::from(g.below(10_000_000)),
        })
        .collect();
    sized(c)
}

/// The regime every property is stated for: an honest payer's debt, as its payee sees it, is
/// at most the pay threshold plus what the link carries while the payment is decided (the
/// window that takes the debt over the pay threshold counts in full at the very close at which
/// the payer pays), queued behind the payer's other payments, mined, buried and scanned, plus
/// counter lag. So the room between the thresholds, enforce − pay, must be at least 6 × V, V
/// being the most one link can carry per window (an upper bound from the flows through it and
/// the largest possible price); enforce ≥ 2 × pay alone is not enough whenever V > pay.
///
/// `sized` sets pay = 6 × V and enforce = 2 × pay = 12 × V, the least allowed.
fn sized(mut c: SimConfig) -> SimConfig {
    let v = BillingSim::new(c.clone()).max_value_per_window();
    c.thresholds = Thresholds { pay: Amount(6 * v), enforce: Amount(12 * v) };
    c
}

/// `with_room` keeps the pay threshold and sets enforce = max(2 × pay, pay + 6 × V).
fn with_room(mut c: SimConfig) -> SimConfig {
    let v = BillingSim::new(c.clone()).max_value_per_window();
    let pay = c.thresholds.pay.0;
    c.thresholds.enforce = Amount((2 * pay).max(pay + 6 * v));
    c
}

#[test]
fn consensus_an_honest_payer_is_never_throttled_and_pays_at_least_what_is_expected() {
    fn prop(seed: u64) -> TestResult {
        check(consensus(&run(stormy(seed))))
    }
    QuickCheck::new().tests(30).quickcheck(prop as fn(u64) -> TestResult);
}

/// Conservation, for every relay r with fixed prices (no cheat, no resets), measured on r's own
/// ledger after settlement:
/// Σ received − Σ paid == fee_r × bytes r forwarded (its rx for others' destinations)
///                      + Σ bytes lost on the way into r × r's price for their destination
///                      − what r's own flows cost it (bytes it originated × its next hop's price).
#[test]
fn conservation_a_relay_keeps_its_fee_on_what_it_forwards_plus_the_credited_loss() {
    fn prop(seed: u64) -> TestResult {
        let mut c = stormy(seed);
        c.price_changes = 0;
        c.counter_reset_ppm = 0;
        let sim = run(c);
        check(consensus(&sim).and_then(|()| {
            for r in 0..sim.nodes.len() {
                let ledger = &sim.nodes[r].fold.billing;
                let received: u128 = ledger.accounts.values().map(|a| a.received.0).sum();
                let paid: u128 = ledger.accounts.values().map(|a| a.paid.0).sum();
                let (forwarded, lost_value, own_cost) = sim.relay_truth(r);
                let fee = u128::from(sim.fees[r]);
                let lhs = received as i128 - paid as i128;
                let rhs = (fee * u128::from(forwarded) + lost_value) as i128 - own_cost as i128;
                if lhs != rhs {
                    return Err(format!(
                        "relay {r}: received {received} − paid {paid} = {lhs}, but fee {fee} × {forwarded} + \
                         lost {lost_value} − own {own_cost} = {rhs}"
                    ));
                }
            }
            Ok(())
        }))
    }
    QuickCheck::new().tests(20).quickcheck(prop as fn(u64) -> TestResult);
}

/// A line 0 — 1 — 2 — 3 with one flow 0 → 3 and node 0 reporting `keep_permille` of its tx
/// bytes. Its shortfall grows by at least `(1 − keep) × min bytes per window × price`; node 1
/// must throttle it within `(enforce + pay) / that + 3` windows (pay: what an honest payer may
/// owe before paying; 3: the window that counts, one to settle, one for counter lag).
fn cheat_line(seed: u64, keep_permille: u64, honest_from_ms: Option<u64>) -> (SimConfig, u64) {
    let mut c = SimConfig::small(seed);
    c.nodes = 4;
    c.flows = 0;
    c.cheat = Some(Cheat { node: 0, keep_permille, honest_from_ms });
    c.traffic_ms = 600_000;
    c.end_ms = 900_000;
    let probe = BillingSim::new(c.clone());
    let price = probe.advertised[1][3] as u128;
    let min_per_window = 2_000 / 2 * (c.usage.window_ms / c.tick_ms) as u128;
    let short_per_window = min_per_window * (1000 - keep_permille) as u128 / 1000 * price;
    let windows = (c.thresholds.enforce.0 + c.thresholds.pay.0) / short_per_window.max(1) + 3;
    (c, windows as u64 * 10_000)
}

fn with_flow(c: SimConfig) -> BillingSim {
    let mut sim = BillingSim::new(c);
    sim.flows = vec![(0, 3, 20_000)];
    sim
}

#[test]
fn detection_a_short_payer_is_throttled_within_a_bounded_number_of_windows_and_lifted_once_it_pays() {
    fn prop(seed: u64, keep: u8) -> TestResult {
        let keep_permille = u64::from(keep) * 600 / 255; // pays at most 60% of what it owes
        let (c, bound_ms) = cheat_line(seed, keep_permille, Some(400_000));
        let mut sim = with_flow(c);
        sim.run();
        check((|| {
            let first = sim.throttled(0).first().copied().ok_or("the cheat was never throttled")?;
            if first.payee != 1 || first.at_ms > bound_ms {
                return Err(format!("throttled late or by the wrong node: {first:?}, bound {bound_ms} ms"));
            }
            let lifted = sim
                .enforcements
                .iter()
                .any(|e| e.payer == 0 && e.level == Enforcement::None && e.at_ms > 400_000);
            if !lifted || sim.account(1, 0).enforcement != Enforcement::None {
                return Err(format!("not lifted after paying: {:?}", sim.enforcements));
            }
            // Made honest, it paid back what it hid: the payee got everything it expected.
            let a = sim.account(1, 0);
            if a.received < a.expected {
                return Err(format!("expected {} received {}", a.expected, a.received));
            }
            consensus(&sim)
        })())
    }
    QuickCheck::new().tests(10).quickcheck(prop as fn(u64, u8) -> TestResult);
}

#[test]
fn a_throttled_cheat_is_lifted_when_its_payee_forgives_the_debt_with_a_reason() {
    let (c, bound_ms) = cheat_line(41, 0, None);
    let mut sim = with_flow(c);
    sim.run_until(bound_ms);
    assert_eq!(sim.account(1, 0).enforcement, Enforcement::Throttled, "{:?}", sim.enforcements);
    let debt = sim.account(1, 0).its_debt();
    assert!(debt > sim.config.thresholds.enforce.0 as i128);
    sim.operator(
        1,
        OperatorCommand::Forgive {
            neighbour: sim.nodes[1]
                .neighbours
                .iter()
                .position(|n| *n == 0)
                .map(|k| lastmile::events::usage::NeighbourId(k as u32 + 1))
                .unwrap(),
            amount: Amount(debt as u128),
            reason: "test: written off".into(),
        },
    );
    assert_eq!(sim.account(1, 0).enforcement, Enforcement::None);
    assert_eq!(sim.enforcements.last().map(|e| (e.payer, e.level)), Some((0, Enforcement::None)));
    assert!(sim.audit().is_empty(), "{:?}", sim.audit());
}

/// Crash: node `c.node` dies when its log reaches `at_event` events and restarts from the fold
/// of its log. Fixed prices and no counter resets (amounts then do not depend on record
/// boundaries), loss, chain faults and reorgs on. Asserts: settled; the audit (no payment
/// twice on chain, chain == ledgers, replay equivalence); consensus; and every account of every
/// node (owed, paid, expected, received) equals the uncrashed run's.
fn crash_case(seed: u64, pick: u64, keep_last: bool) -> Result<(), String> {
    let mut c = stormy(seed);
    c.price_changes = 0;
    c.counter_reset_ppm = 0;
    c.chain_faults.drop_ppm = 0;
    let reference = run(c.clone());
    let node = (pick % c.nodes as u64) as usize;
    let len = reference.nodes[node].log_len;
    let at_event = 1 + (pick / 7) % len;
    c.crash = Some(Crash { node, at_event, keep_last, down_ms: 1 + pick % 15_000 });
    compare_crashed(&reference, c)
}

fn compare_crashed(reference: &BillingSim, c: SimConfig) -> Result<(), String> {
    let crashed = run(c);
    if crashed.nodes.iter().map(|n| n.crashes).sum::<u32>() != 1 {
        return Err("the crash did not happen".into());
    }
    consensus(&crashed)?;
    for (a, b) in reference.nodes.iter().zip(&crashed.nodes) {
        for (n, x) in &a.fold.billing.accounts {
            let y = b.fold.billing.account(*n);
            let amounts = |a: &lastmile::machines::billing::Account| (a.owed, a.paid, a.expected, a.received);
            if amounts(x) != amounts(&y) {
                return Err(format!(
                    "node {} n{}: {:?} uncrashed, {:?} crashed",
                    a.id,
                    n.0,
                    amounts(x),
                    amounts(&y)
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn crash_at_any_event_boundary_pays_nothing_twice_and_loses_nothing() {
    fn prop(seed: u64, pick: u64, keep_last: bool) -> TestResult {
        check(crash_case(seed, pick, keep_last))
    }
    QuickCheck::new().tests(20).quickcheck(prop as fn(u64, u64, bool) -> TestResult);
}

/// The crash the payments design is about: `PaymentSigned` is on flash, the `Send` never left.
/// The restarted node must broadcast the very same bytes (so the payment is mined once), with
/// reorgs on so the crash may also fall while the payment is reorged out.
#[test]
fn crash_between_payment_signed_and_send_and_during_reorgs() {
    let mut tested = 0;
    for seed in 0..20 {
        let mut c = scenario(seed);
        c.max_loss_ppm = 50_000;
        c.reorg_ppm = 500_000;
        let reference = run(c.clone());
        // Seeds whose flows cross no relay pay nothing (traffic to a neighbour is free).
        let Some((node, at_event)) = reference.nodes.iter().find_map(|n| {
            n.log.iter().enumerate().skip(1).find_map(|(i, e)| {
                matches!(e, Event::Billing(lastmile::events::billing::BillingEvent::PaymentSigned { .. }))
                    .then_some((n.id, i as u64 + 1))
            })
        }) else {
            continue;
        };
        for keep_last in [true, false] {
            let mut c = c.clone();
            c.crash = Some(Crash { node, at_event, keep_last, down_ms: 4_000 });
            compare_crashed(&reference, c)
                .unwrap_or_else(|e| panic!("seed {seed} keep_last {keep_last}: {e}"));
        }
        tested += 1;
    }
    assert!(tested >= 10, "only {tested} of 20 seeds paid anything");
}

/// Billing never reads time: the same world with every stamp shifted (another boot counter,
/// ticks 10^12 ms later) writes exactly the same events on every node.
#[test]
fn no_wall_clock_dependence_shifted_stamps_write_the_same_logs() {
    for seed in 0..4 {
        let c = stormy(seed);
        let a = run(c.clone());
        let b = run(SimConfig { stamp_offset: (7, 1_000_000_000_000), ..c });
        for (x, y) in a.nodes.iter().zip(&b.nodes) {
            assert!(x.log_len > 0);
            assert_eq!(x.log, y.log, "seed {seed} node {}", x.id);
        }
    }
}

/// Replay equivalence on a bigger random network with everything on: every node's live
/// ledgers equal the fold of its log from empty (checked by the audit), at the end and at
/// several points during the run.
#[test]
fn replay_equivalence_for_every_node_during_and_after_a_stormy_run() {
    let mut c = stormy(99);
    c.nodes = 12;
    c.topology = Topology::Random { extra_edges: 4 };
    c.flows = 10;
    let mut sim = BillingSim::new(c);
    for k in 1..=8 {
        sim.run_until(k * 50_000);
        let problems: Vec<String> = sim.audit().into_iter().filter(|p| p.contains("fold")).collect();
        assert!(problems.is_empty(), "{problems:?}");
        for n in &sim.nodes {
            let mut state = lastmile::machines::NodeState::default();
            for e in &n.log {
                lastmile::events::Fold::apply(&mut state, e);
            }
            assert_eq!(state, n.fold, "node {}", n.id);
        }
    }
    consensus(&sim).unwrap();
}

/// Stuck fees: the chain's minimum fee jumps up and down during the traffic phase, so payments
/// signed before a jump stay pending below it until their payer replaces them (the same
/// transfer and nonce, signed again at the fee of the moment). Everything else of the consensus
/// scenario stays on for even seeds; odd seeds run the crash regime (fixed prices, no resets, no
/// dropped broadcasts: see `crash_case`). Asserts consensus (settled, audited: no payment twice on chain, chain ==
/// ledgers, replay equivalence), that replacements happened, and that a crash at a
/// replacement's `PaymentSigned` (kept or lost, so its `Send` never left) changes no account.
#[test]
fn stuck_fees_payments_are_replaced_never_paid_twice_even_across_a_crash() {
    let mut replaced = 0;
    let mut crashed = 0;
    for seed in 0..12 {
        let mut c = stormy(seed);
        c.nodes = 6;
        c.flows = 6; // enough payments to be stuck
        c.min_fee_changes = 80;
        let crashable = seed % 2 == 1;
        if crashable {
            c.price_changes = 0;
            c.counter_reset_ppm = 0;
            c.chain_faults.drop_ppm = 0;
        }
        let c = sized(c);
        let reference = run(c.clone());
        consensus(&reference).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        replaced += reference.replacements();
        // The first replacement in the run: a second `PaymentSigned` for one payment.
        let replacement = reference.nodes.iter().find_map(|n| {
            let mut signed = std::collections::BTreeSet::new();
            n.log.iter().enumerate().find_map(|(i, e)| match e {
                Event::Billing(lastmile::events::billing::BillingEvent::PaymentSigned { id, .. }) => {
                    (!signed.insert(*id)).then_some((n.id, i as u64 + 1))
                }
                _ => None,
            })
        });
        let Some((node, at_event)) = replacement.filter(|_| crashable) else { continue };
        for keep_last in [true, false] {
            let mut c = c.clone();
            c.crash = Some(Crash { node, at_event, keep_last, down_ms: 4_000 });
            compare_crashed(&reference, c)
                .unwrap_or_else(|e| panic!("seed {seed} keep_last {keep_last}: {e}"));
        }
        crashed += 1;
    }
    assert!(replaced >= 6, "only {replaced} replacements in 12 runs");
    assert!(crashed >= 1, "no run crashed at a replacement");
}

/// A line 0 — 1 — 2 — 3 — 4 with the one flow `rate` bytes per tick 0 → 3 (so 1 and 2 relay,
/// and 4 neither pays nor is paid), every hop losing `loss_ppm`, thresholds in the regime for
/// that flow (pay = V, enforce = 3 × V; V as in `sized`), and these stray transfers.
fn line_with_flow(seed: u64, rate: u64, loss_ppm: u32, traffic_ms: u64, strays: Vec<Stray>) -> BillingSim {
    let mut c = SimConfig::small(seed);
    c.nodes = 5;
    c.flows = 0;
    c.max_loss_ppm = loss_ppm;
    c.uniform_loss = true;
    c.traffic_ms = traffic_ms;
    c.end_ms = traffic_ms + 200_000;
    c.strays = strays;
    let mut probe = BillingSim::new(c.clone());
    probe.flows = vec![(0, 3, rate)];
    let v = probe.max_value_per_window();
    c.thresholds = Thresholds { pay: Amount(v), enforce: Amount(3 * v) };
    let mut sim = BillingSim::new(c);
    sim.flows = vec![(0, 3, rate)];
    sim
}

/// Regression guard: transfers that are no payment are never credited. The simulator used to
/// send only the nodes' own payments, so a payee that credited any transfer to it from any
/// address would have passed every property. Here a stranger (an address no node knows) and
/// node 4 (bound by its neighbour 3, but no neighbour of the receivers) send transfers to the
/// relays 1 and 2, during the traffic and during settlement. They land on chain and the
/// receivers scan past them, yet nobody credits them (the audit looks for their hashes in every
/// log and in every seen set), and each relay has received from its neighbours exactly what
/// they paid it on chain, to the base unit.
#[test]
fn transfers_from_a_stranger_or_an_address_bound_elsewhere_are_never_credited() {
    // Settlement starts at 220 s (two windows after the traffic).
    let strays = vec![
        Stray { at_ms: 50_000, to: 1, from: StraySender::Stranger, amount: 1_000_000 },
        Stray { at_ms: 80_000, to: 1, from: StraySender::Node(4), amount: 777 },
        Stray { at_ms: 221_000, to: 2, from: StraySender::Stranger, amount: 5 },
        Stray { at_ms: 222_000, to: 2, from: StraySender::Node(4), amount: 123_456 },
    ];
    let mut sim = line_with_flow(7, 20_000, 0, 200_000, strays.clone());
    sim.run();
    consensus(&sim).unwrap();
    assert_eq!(sim.strays.len(), strays.len(), "every stray was sent");
    let transfers = sim.chain.transfers();
    for (hash, &index) in &sim.strays {
        let t = transfers
            .iter()
            .find(|t| t.tx_hash == *hash)
            .unwrap_or_else(|| panic!("stray {index} not mined"));
        assert_eq!(t.amount, Amount(strays[index].amount));
        // Scanned past: the receiver recorded a scan, or credited a payment, beyond its block.
        let receiver = &sim.nodes[strays[index].to];
        let credited_past = receiver.log.iter().any(
            |e| matches!(e, Event::Billing(BillingEvent::PaymentReceived { block, .. }) if *block > t.block),
        );
        assert!(
            receiver.fold.billing.scanned_to_block >= t.block || credited_past,
            "stray {index} was not scanned past"
        );
    }
    for relay in [1, 2] {
        let node = &sim.nodes[relay];
        let received: u128 = node.fold.billing.accounts.values().map(|a| a.received.0).sum();
        let paid_to_it: u128 = transfers
            .iter()
            .filter(|t| t.to == node.address && !sim.strays.contains_key(&t.tx_hash))
            .map(|t| t.amount.0)
            .sum();
        assert!(paid_to_it > 0, "relay {relay} was paid");
        assert_eq!(received, paid_to_it, "relay {relay}: received only its neighbours' payments");
    }
}

/// Regression guard: a neighbour in credit stays unthrottled however much credit it has. With
/// 30% loss on every hop a payer pays for every byte it sent and its payee expects only what
/// arrived, so the payee keeps the surplus as the payer's credit; the run is long enough that
/// this credit passes the enforcement threshold, so a payee that took credit for debt (its
/// size, not its sign) would throttle an honest payer.
#[test]
fn an_overpaid_neighbour_stays_unthrottled_whatever_its_credit() {
    let mut sim = line_with_flow(11, 20_000, 300_000, 1_000_000, Vec::new());
    sim.run();
    consensus(&sim).unwrap();
    let enforce = sim.config.thresholds.enforce.0;
    assert_eq!(sim.billed_pairs(), [(0, 1), (1, 2)]);
    for (payer, payee) in sim.billed_pairs() {
        let a = sim.account(payee, payer);
        assert!(
            a.credited.0 > enforce,
            "{payer} → {payee}: credit {} ≤ enforce {enforce}: the case is not reached",
            a.credited
        );
        assert!(a.its_debt() < 0, "{payer} → {payee}: in credit at the end");
        assert_eq!(a.enforcement, Enforcement::None);
    }
    assert_eq!(sim.enforcements, [], "nobody was ever throttled, nor lifted");
}
