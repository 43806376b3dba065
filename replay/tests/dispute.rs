//! `replay dispute` over real logs: two real billing machines (a payer and a payee) driven
//! against the chain twin, every event they emit written to each node's data directory with
//! flash-layout and lastmile's codec, exactly as the daemon's log writer does.

mod common;

use std::path::Path;

use common::{append, replay, Run};
use flash_layout::{DirStorage, FlushPolicy, LogConfig, Store};
use lastmile::events::billing::{
    BillingEffect, BillingEvent, BillingInput, BillingRecord, BillingTimer, OperatorCommand, Thresholds,
};
use lastmile::events::chain::{Address, Amount, TxHash};
use lastmile::events::usage::{CounterSample, Link, NeighbourId};
use lastmile::events::{Effect, Event, Stamp};
use lastmile::machines::billing::{BillingConfig, BillingLedger, BillingMachine};
use lastmile::machines::usage::{UsageConfig, UsageLedger};
use lastmile::sim::chain::{ChainFaults, ChainTwin};
use lastmile::sim::drive::{self, Flow};
use replay::dispute::{self, Options, Selector, VerdictKind};
use replay::error::{EXIT_NOT_COMPARABLE, EXIT_UNDERPAID};
use replay::DataDir;
use serde_json::Value;
use tempfile::TempDir;

const PAYER: Address = Address([0xaa; 20]);
const PAYEE: Address = Address([0xbb; 20]);
const STRANGER: Address = Address([0xcc; 20]);
/// The payer's link to the payee (neighbour 1, destination 100) and the payee's link from
/// the payer (neighbour 7, destination 300): ids are node-local.
const OUT: Link = Link::new(1, 100);
const IN: Link = Link::new(7, 300);

fn t(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

/// One node: a real billing machine whose every event goes to its store, its chain commands
/// answered by the twin at once.
struct Node {
    m: BillingMachine,
    address: Address,
    store: Store<DirStorage>,
    dir: TempDir,
}

impl Node {
    fn new(address: Address) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Segments large enough for a signed transaction; every record flushed.
        let config = LogConfig {
            segment_bytes: 4096,
            flush: FlushPolicy { max_records: 1, max_bytes: 1 << 20, max_value: 0 },
        };
        let store = Store::open_dir(dir.path(), config, common::budget(true)).unwrap().0;
        let config = BillingConfig {
            usage: UsageConfig { poll_ms: 1_000, window_ms: 10_000 },
            our_address: address,
            confirmations: 3,
            chain_poll_ms: 2_000,
            max_scan_blocks: 1_000,
            replace_after_polls: 0,
        };
        let m = BillingMachine::new(config, UsageLedger::default(), BillingLedger::default(), t(0));
        let mut node = Node { m, address, store, dir };
        node.input(
            &mut ChainTwin::new(0, ChainFaults::default()),
            t(0),
            BillingInput::Operator(OperatorCommand::SetThresholds(Thresholds {
                pay: Amount(1_000),
                enforce: Amount(1_000_000),
            })),
        );
        node
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn input(&mut self, chain: &mut ChainTwin, at: Stamp, input: BillingInput) {
        drive::handle(
            &mut self.m,
            at,
            input,
            &mut ToLog { chain, address: self.address, store: &mut self.store },
        );
        self.store.flush().unwrap();
    }

    fn timeout(&mut self, chain: &mut ChainTwin, at: Stamp, timer: BillingTimer) {
        drive::fire(
            &mut self.m,
            at,
            timer,
            &mut ToLog { chain, address: self.address, store: &mut self.store },
        );
        self.store.flush().unwrap();
    }

    fn counters(&mut self, chain: &mut ChainTwin, at: Stamp, link: Link, tx: u64, rx: u64) {
        self.input(
            chain,
            at,
            BillingInput::Counters(vec![CounterSample { link, tx_bytes: tx, rx_bytes: rx }]),
        );
    }
}

/// The shell of one pump: events to the log first (they are durable before any effect
/// leaves), chain commands answered by the twin, other effects dropped.
struct ToLog<'a> {
    chain: &'a mut ChainTwin,
    address: Address,
    store: &'a mut Store<DirStorage>,
}

impl drive::Shell<BillingMachine> for ToLog<'_> {
    fn record(&mut self, _at: Stamp, event: BillingRecord) -> Flow {
        append(self.store, &event.into());
        Flow::Alive
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<BillingEffect>) -> Option<BillingInput> {
        match effect.action {
            BillingEffect::Chain(command) => {
                Some(BillingInput::Chain(self.chain.handle(self.address, command)))
            }
            _ => None,
        }
    }
}

/// What changes in a round, before its bytes are counted.
#[derive(Clone, Copy, Default)]
struct Round {
    /// Bytes the payer sends through the payee this round.
    bytes: u64,
    /// Percent of them lost before the payee's counter.
    loss_percent: u64,
    /// A new price the payee advertises halfway through the round.
    advertise_mid: Option<u64>,
    /// A new quote the payer receives halfway through the round.
    quote_mid: Option<u64>,
    /// A new quote the payer receives at the end of the round (it lags the advertisement).
    quote_after: Option<u64>,
}

/// The payer and the payee, neighbours, and the chain.
struct Pair {
    chain: ChainTwin,
    payer: Node,
    payee: Node,
    tx: u64,
    rx: u64,
    clock: u64,
}

impl Pair {
    /// Neighbours; the payee advertises `advertised` and the payer was quoted `quoted`.
    fn new(advertised: u64, quoted: u64) -> Self {
        let mut chain = ChainTwin::new(42, ChainFaults::default());
        chain.fund(PAYER, 1 << 40);
        let mut payer = Node::new(PAYER);
        let mut payee = Node::new(PAYEE);
        let c = &mut chain;
        payer.input(c, t(0), BillingInput::BindNeighbour { neighbour: NeighbourId(1), address: PAYEE });
        payee.input(c, t(0), BillingInput::BindNeighbour { neighbour: NeighbourId(7), address: PAYER });
        payee.input(c, t(0), BillingInput::PriceAdvertised { link: IN, price_per_byte: advertised });
        payer.input(c, t(0), BillingInput::PriceQuoted { link: OUT, price_per_byte: Some(quoted) });
        // Both learn the head and their nonce.
        payer.timeout(c, t(0), BillingTimer::Chain);
        payee.timeout(c, t(0), BillingTimer::Chain);
        Pair { chain, payer, payee, tx: 0, rx: 0, clock: 0 }
    }

    /// One usage window: bytes counted on both sides, both windows close (the payer pays
    /// what it owes beyond the threshold), then blocks are mined until the payment is buried
    /// and the payee has scanned it.
    fn round(&mut self, r: Round) {
        let start = self.clock;
        let c = &mut self.chain;
        let rx = r.bytes - r.bytes * r.loss_percent / 100;
        // First half of the bytes, then maybe a new advertised price, then the rest.
        let (half_tx, half_rx) = (r.bytes / 2, rx / 2);
        self.payer.counters(c, t(start + 1_000), OUT, self.tx + half_tx, 0);
        self.payee.counters(c, t(start + 1_000), IN, 0, self.rx + half_rx);
        if let Some(p) = r.advertise_mid {
            self.payee.input(
                c,
                t(start + 2_000),
                BillingInput::PriceAdvertised { link: IN, price_per_byte: p },
            );
        }
        if let Some(q) = r.quote_mid {
            self.payer.input(
                c,
                t(start + 2_000),
                BillingInput::PriceQuoted { link: OUT, price_per_byte: Some(q) },
            );
        }
        self.tx += r.bytes;
        self.rx += rx;
        self.payer.counters(c, t(start + 3_000), OUT, self.tx, 0);
        self.payee.counters(c, t(start + 3_000), IN, 0, self.rx);
        self.payer.timeout(c, t(start + 10_000), BillingTimer::Window);
        self.payee.timeout(c, t(start + 10_000), BillingTimer::Window);
        if let Some(q) = r.quote_after {
            self.payer.input(
                c,
                t(start + 10_001),
                BillingInput::PriceQuoted { link: OUT, price_per_byte: Some(q) },
            );
        }
        for k in 1..=5 {
            c.mine();
            self.payer.timeout(c, t(start + 10_000 + 1_000 * k), BillingTimer::Chain);
            self.payee.timeout(c, t(start + 10_000 + 1_000 * k), BillingTimer::Chain);
        }
        self.clock = start + 20_000;
    }

    fn rounds(mut self, rounds: &[Round]) -> Self {
        for r in rounds {
            self.round(*r);
        }
        self
    }

    fn dispute(&self, extra: &[&str]) -> Run {
        let mut args =
            vec!["dispute", self.payer.path().to_str().unwrap(), self.payee.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        replay(&args)
    }
}

fn plain(bytes: u64) -> Round {
    Round { bytes, ..Round::default() }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

/// The hashes of the payments `node` signed, in its log's order.
fn signed_hashes(node: &Node) -> Vec<TxHash> {
    let dir = DataDir::open(node.path()).unwrap();
    dispute::load(&dir)
        .unwrap()
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Billing(BillingEvent::PaymentSigned { tx_hash, .. }) => Some(*tx_hash),
            _ => None,
        })
        .collect()
}

fn count(node: &Node, pred: fn(&BillingEvent) -> bool) -> usize {
    let dir = DataDir::open(node.path()).unwrap();
    dispute::load(&dir).unwrap().events.iter().filter(|e| matches!(e, Event::Billing(b) if pred(b))).count()
}

#[test]
fn honest_without_loss_is_consistent_window_by_window_and_the_tail_is_outstanding() {
    // Three paid windows at 10 per byte, then 60 bytes (600) below the pay threshold.
    let pair = Pair::new(10, 10).rounds(&[plain(1_000), plain(2_000), plain(500), plain(60)]);
    assert_eq!(count(&pair.payer, |e| matches!(e, BillingEvent::PaymentConfirmed { .. })), 3);
    assert_eq!(count(&pair.payee, |e| matches!(e, BillingEvent::PaymentReceived { .. })), 3);

    let run = pair.dispute(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in [
        &format!("payer: {} ({PAYER}); the other side is n1 there (n1/d100)", pair.payer.path().display()),
        &format!("payee: {} ({PAYEE}); the other side is n7 there (n7/d300)", pair.payee.path().display()),
        "tx 1000 B @10 | rx 1000 B @10 | owed 10000, paid 10000 | expected 10000, received 10000 | balance 0: consistent",
        "tx 2000 B @10 | rx 2000 B @10 | owed 20000, paid 20000 | expected 20000, received 20000 | balance 0: consistent",
        "window 4 (open tail): tx 60 B @10 | rx 60 B @10 | owed 600, paid 0 | expected 600, received 0 | balance 0: consistent",
        "verdict: consistent: the payer accounted 35600 for 3560 B sent, the payee expected 35600 for 3560 B received; \
         600 of it is not paid yet (owed by the payer's own log)",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
    assert!(run.stdout.contains("window 1 (closed by pay0 0x"), "{}", run.stdout);

    let v = json(&pair.dispute(&["--json"]));
    assert_eq!(v["verdict"]["kind"], "consistent");
    assert_eq!(v["verdict"]["amount"], "0");
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 4);
    assert_eq!(windows[0]["tx_bytes"], 1000);
    assert_eq!(windows[0]["rx_bytes"], 1000);
    assert_eq!(windows[0]["paid"], "10000");
    assert_eq!(windows[0]["received"], "10000");
    assert_eq!(windows[0]["payer_prices"]["min"], 10);
    assert_eq!(windows[0]["verdict"]["kind"], "consistent");
    // Closed by the payer's first payment: the hash it signed, found in both logs.
    let signed = signed_hashes(&pair.payer);
    assert_eq!(windows[0]["closed_by"]["tx_hash"], signed[0].to_string());
    assert_eq!(windows[0]["closed_by"]["id"], 0);
    assert_eq!(windows[2]["closed_by"]["tx_hash"], signed[2].to_string());
    assert!(windows[3]["closed_by"].is_null());
    assert_eq!(v["totals"]["outstanding"], "600");
    assert_eq!(v["payer"]["neighbour"], 1);
    assert_eq!(v["payee"]["neighbour"], 7);
    assert!(v["unmatched"].as_array().unwrap().is_empty());
}

#[test]
fn honest_with_ten_percent_loss_is_overpaid_credit_and_exits_zero() {
    let lossy = Round { bytes: 1_000, loss_percent: 10, ..Round::default() };
    let pair = Pair::new(10, 10).rounds(&[lossy, lossy, lossy]);
    // The payee kept the surplus as credit: the machine agrees with the dispute.
    assert_eq!(count(&pair.payee, |e| matches!(e, BillingEvent::CreditApplied { .. })), 3);

    let run = pair.dispute(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("tx 1000 B @10 | rx 900 B @10 | owed 10000, paid 10000 | expected 9000, received 10000 | balance 1000: overpaid by 1000 (loss: credit)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "verdict: overpaid by 3000 (loss on the link: credit, not a dispute): the payer accounted 30000 for 3000 B \
             sent, the payee expected 27000 for 2700 B received"
        ),
        "{}",
        run.stdout
    );
    let v = json(&pair.dispute(&["--json"]));
    assert_eq!(v["verdict"]["kind"], "overpaid");
    assert_eq!(v["verdict"]["amount"], "3000");
    assert_eq!(v["windows"][2]["balance"], "3000");
}

#[test]
fn a_price_raised_mid_window_with_the_quote_lagging_never_makes_the_payer_short() {
    // The payee raises its price from 8 to 10 halfway through the second window; the new
    // quote reaches the payer only after that window, so the payer priced all of it at 8.
    // The payee expects a record's bytes at the lowest price in force over that record's
    // interval and the one before (bytes sent at the old price can be counted a record late):
    // 8 for the second window, and still 8 for the third, which the payer paid at 10. The
    // payer is never short; the difference is its credit.
    let raise = Round { bytes: 1_000, advertise_mid: Some(10), quote_after: Some(10), ..Round::default() };
    let pair = Pair::new(8, 8).rounds(&[plain(500), raise, plain(1_000)]);
    let run = pair.dispute(&[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in [
        "window 2 (closed by pay1 ",
        "tx 1000 B @8 | rx 1000 B @8 | owed 8000, paid 8000 | expected 8000, received 8000 | balance 0: consistent",
        "tx 1000 B @10 | rx 1000 B @8 | owed 10000, paid 10000 | expected 8000, received 10000 | balance 2000: overpaid by 2000 (loss: credit)",
        "verdict: overpaid by 2000 (loss on the link: credit, not a dispute): the payer accounted 22000 for 2500 B sent, \
         the payee expected 20000 for 2500 B received",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
}

#[test]
fn a_price_lowered_mid_window_leaves_the_prompt_payer_in_credit() {
    // Lowered from 10 to 6 halfway; the payer follows at once, which closes its first half at
    // 10. The payee expects the whole window at the lowest price in force: 6.
    let lower = Round { bytes: 1_000, advertise_mid: Some(6), quote_mid: Some(6), ..Round::default() };
    let pair = Pair::new(10, 10).rounds(&[plain(1_000), lower]);
    let run = pair.dispute(&["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run);
    assert_eq!(v["verdict"]["kind"], "overpaid");
    assert_eq!(v["verdict"]["amount"], (500 * (10 - 6)).to_string());
    let w = &v["windows"][1];
    assert_eq!((w["payer_prices"]["min"].as_u64(), w["payer_prices"]["max"].as_u64()), (Some(6), Some(10)));
    assert_eq!((w["payee_prices"]["min"].as_u64(), w["payee_prices"]["max"].as_u64()), (Some(6), Some(6)));
    assert_eq!((w["owed"].as_str(), w["expected"].as_str()), (Some("8000"), Some("6000")));
}

#[test]
fn a_payer_that_quotes_itself_a_lower_price_is_underpaid_by_the_exact_amount() {
    // The payee advertises 10; the payer's records claim it was quoted 7.
    let pair = Pair::new(10, 7).rounds(&[plain(1_000), plain(2_000), plain(1_000)]);
    let run = pair.dispute(&[]);
    assert_eq!(run.code, EXIT_UNDERPAID, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr,
        "replay: underpaid: the payer accounted 12000 less than the payee expected, beyond the tolerance of 0\n"
    );
    for line in [
        "tx 1000 B @7 | rx 1000 B @10 | owed 7000, paid 7000 | expected 10000, received 7000 | balance -3000: underpaid by 3000",
        "tx 2000 B @7 | rx 2000 B @10 | owed 14000, paid 14000 | expected 20000, received 14000 | balance -9000: underpaid by 6000",
        "verdict: underpaid by 12000 (beyond the tolerance of 0): the payer accounted 28000 for 4000 B sent, the payee \
         expected 40000 for 4000 B received",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
    let run = pair.dispute(&["--json", "--tolerance", "10%"]);
    assert_eq!(run.code, EXIT_UNDERPAID);
    let v = json(&run);
    assert_eq!(v["verdict"]["kind"], "underpaid");
    assert_eq!(
        (v["verdict"]["amount"].as_str(), v["verdict"]["tolerance"].as_str()),
        (Some("12000"), Some("4000"))
    );
    // A tolerance that covers the shortfall: exit 0, and it still says by how much.
    let run = pair.dispute(&["--tolerance", "0.3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("verdict: consistent within tolerance: short by 12000 ≤ 12000"),
        "{}",
        run.stdout
    );
    let run = pair.dispute(&["--tolerance", "12000"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = pair.dispute(&["--tolerance", "11999"]);
    assert_eq!(run.code, EXIT_UNDERPAID);
}

/// Regression for the smallest dispute: every other case was a 30% shortfall, so a verdict that
/// rounded, or a tolerance compared with `<` instead of `≤`, went unnoticed. Two paid windows at
/// 10 per byte, then one byte the payer priced at 9 (a lower quote that reached it mid-window,
/// while the payee still advertised 10): short by exactly one base unit. At the default
/// tolerance (0) that is "underpaid by 1", exit 6; `--tolerance 1` covers it exactly.
/// `--tolerance N%` is `expected × N / 100` rounded down: of the 30,010 expected, 0.004% is
/// 1.2 → 1 (covers it) and 0.003% is 0.9 → 0 (does not; rounding to nearest would give 1).
#[test]
fn a_payer_short_by_one_base_unit_is_underpaid_by_1_and_the_tolerance_rounds_down() {
    let last = Round { bytes: 1, quote_mid: Some(9), ..Round::default() };
    let pair = Pair::new(10, 10).rounds(&[plain(1_000), plain(2_000), last]);
    let run = pair.dispute(&[]);
    assert_eq!(run.code, EXIT_UNDERPAID, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stderr,
        "replay: underpaid: the payer accounted 1 less than the payee expected, beyond the tolerance of 0\n"
    );
    for line in [
        "window 3 (open tail): tx 1 B @9 | rx 1 B @10 | owed 9, paid 0 | expected 10, received 0 | balance -1: underpaid by 1",
        "totals: tx 3001 B, rx 3001 B; owed 30009, paid 30000; expected 30010, received 30000; balance -1",
        "verdict: underpaid by 1 (beyond the tolerance of 0): the payer accounted 30009 for 3001 B sent, the payee \
         expected 30010 for 3001 B received; 9 of it is not paid yet (owed by the payer's own log)",
    ] {
        assert!(run.stdout.contains(line), "{line:?} not in\n{}", run.stdout);
    }
    let v = json(&pair.dispute(&["--json"]));
    assert_eq!(v["verdict"], serde_json::json!({ "kind": "underpaid", "amount": "1", "tolerance": "0" }));
    assert_eq!(v["totals"]["balance"], "-1");
    assert_eq!(v["windows"][2]["verdict"], serde_json::json!({ "kind": "underpaid", "amount": "1" }));

    let run = pair.dispute(&["--tolerance", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("verdict: consistent within tolerance: short by 1 ≤ 1: "), "{}", run.stdout);
    let v = json(&pair.dispute(&["--json", "--tolerance", "1"]));
    assert_eq!(
        v["verdict"],
        serde_json::json!({ "kind": "within_tolerance", "amount": "1", "tolerance": "1" })
    );

    let v = json(&pair.dispute(&["--json", "--tolerance", "0.004%"]));
    assert_eq!(
        v["verdict"],
        serde_json::json!({ "kind": "within_tolerance", "amount": "1", "tolerance": "1" })
    );
    let run = pair.dispute(&["--json", "--tolerance", "0.003%"]);
    assert_eq!(run.code, EXIT_UNDERPAID, "0.9 rounds down to 0");
    assert_eq!(
        json(&run)["verdict"],
        serde_json::json!({ "kind": "underpaid", "amount": "1", "tolerance": "0" })
    );
}

/// `--tolerance N%` rounds down at the boundary of the 12,000 shortfall of 40,000 expected:
/// 30% is exactly 12,000 (covers it), 29.999% is 11,999.6 → 11,999 (does not).
#[test]
fn a_percentage_tolerance_is_rounded_down_at_the_boundary() {
    let pair = Pair::new(10, 7).rounds(&[plain(1_000), plain(2_000), plain(1_000)]);
    let v = json(&pair.dispute(&["--json", "--tolerance", "30%"]));
    assert_eq!(
        v["verdict"],
        serde_json::json!({ "kind": "within_tolerance", "amount": "12000", "tolerance": "12000" })
    );
    let run = pair.dispute(&["--json", "--tolerance", "29.999%"]);
    assert_eq!(run.code, EXIT_UNDERPAID);
    assert_eq!(
        json(&run)["verdict"],
        serde_json::json!({ "kind": "underpaid", "amount": "12000", "tolerance": "11999" })
    );
}

#[test]
fn logs_that_are_not_neighbours_are_refused_clearly() {
    let pair = Pair::new(10, 10).rounds(&[plain(1_000)]);
    let mut chain = ChainTwin::new(1, ChainFaults::default());
    let mut stranger = Node::new(STRANGER);
    stranger.input(
        &mut chain,
        t(0),
        BillingInput::BindNeighbour { neighbour: NeighbourId(3), address: PAYEE },
    );
    let run = replay(&["dispute", pair.payer.path().to_str().unwrap(), stranger.path().to_str().unwrap()]);
    assert_eq!(run.code, EXIT_NOT_COMPARABLE, "{}", run.stdout);
    assert!(run.stdout.is_empty());
    let expected = format!(
        "replay: the logs are not neighbours: {} binds no neighbour to {}'s address {STRANGER}; it binds n1 → {PAYEE} \
         (links n1/d100)\n",
        pair.payer.path().display(),
        stranger.path().display()
    );
    assert_eq!(run.stderr, expected);
}

#[test]
fn swapped_arguments_are_detected_and_the_right_order_suggested() {
    let pair = Pair::new(10, 10).rounds(&[plain(1_000)]);
    let (payer, payee) = (pair.payer.path().to_str().unwrap(), pair.payee.path().to_str().unwrap());
    let run = replay(&["dispute", payee, payer]);
    assert_eq!(run.code, EXIT_NOT_COMPARABLE, "{}", run.stdout);
    assert_eq!(
        run.stderr,
        format!(
            "replay: the arguments look swapped: {payee} sent nothing through {payer} and paid it nothing, but {payer} \
             sent 1000 byte(s) through it and paid it; the payer comes first: replay dispute {payer} {payee}\n"
        )
    );
}

#[test]
fn several_candidate_neighbours_are_listed_and_link_picks_one() {
    let mut pair = Pair::new(10, 10);
    // The payer also bound the payee's address under a second id (a second tunnel).
    let c = &mut pair.chain;
    pair.payer.input(c, t(1), BillingInput::BindNeighbour { neighbour: NeighbourId(2), address: PAYEE });
    let pair = pair.rounds(&[plain(1_000)]);
    let run = pair.dispute(&[]);
    assert_eq!(run.code, EXIT_NOT_COMPARABLE, "{}", run.stdout);
    let payer = pair.payer.path().display();
    let payee = pair.payee.path().display();
    assert_eq!(
        run.stderr,
        format!(
            "replay: {payer} binds {payee} ({PAYEE}) under several neighbour ids: n1 → {PAYEE} (links n1/d100); \
             n2 → {PAYEE}; name one with --link (e.g. --link n1)\n"
        )
    );
    for link in ["n1/d100", "n1", "1"] {
        let run = pair.dispute(&["--link", link]);
        assert_eq!(run.code, 0, "--link {link}: {}", run.stderr);
        let verdict =
            "verdict: consistent: the payer accounted 10000 for 1000 B sent, the payee expected 10000 \
                       for 1000 B received\n";
        assert!(run.stdout.ends_with(verdict), "{}", run.stdout);
    }
    // n2 carried nothing and was paid nothing: the payee's bytes and payment are unexplained.
    let run = pair.dispute(&["--link", "n2", "--json"]);
    assert_eq!(run.code, EXIT_UNDERPAID, "{}", run.stderr);
    let v = json(&run);
    assert_eq!(v["payer"]["neighbour"], 2);
    assert_eq!(v["verdict"], serde_json::json!({ "kind": "underpaid", "amount": "10000", "tolerance": "0" }));
    let unmatched = serde_json::json!([{
        "id": null,
        "tx_hash": signed_hashes(&pair.payer)[0].to_string(),
        "paid": null,
        "received": "10000",
        "block": 1,
    }]);
    assert_eq!(v["unmatched"], unmatched);
    let run = pair.dispute(&["--link", "n2"]);
    let hash = signed_hashes(&pair.payer)[0].to_string();
    let line = format!(
        "unmatched payment {}…{} block 1: received by the payee (10000) but not in the payer's log\n",
        &hash[..10],
        &hash[hash.len() - 6..]
    );
    assert!(run.stdout.contains(&line), "{line:?} not in\n{}", run.stdout);
    let run = pair.dispute(&["--link", "n9"]);
    assert_eq!(run.code, EXIT_NOT_COMPARABLE);
    assert_eq!(
        run.stderr,
        format!(
            "replay: --link n9: {payer} binds no address to n9; it binds n1 → {PAYEE} (links n1/d100); n2 → {PAYEE}\n"
        )
    );
    let run = pair.dispute(&["--link", "x/y"]);
    assert_eq!(run.code, 2, "a malformed option is a usage error");
}

#[test]
fn the_dispute_is_a_pure_function_of_two_decoded_logs() {
    let pair = Pair::new(10, 7).rounds(&[plain(1_000)]);
    let payer = dispute::load(&DataDir::open(pair.payer.path()).unwrap()).unwrap();
    let payee = dispute::load(&DataDir::open(pair.payee.path()).unwrap()).unwrap();
    let report = dispute::dispute(&payer, &payee, &Options::default()).unwrap();
    assert_eq!(report.verdict.kind, VerdictKind::Underpaid);
    assert_eq!(report.verdict.amount, Amount(3_000));
    assert_eq!(report.windows.len(), 1);
    assert_eq!(report.payer.neighbour, NeighbourId(1));
    assert_eq!(report.payee.neighbour, NeighbourId(7));
    let named = Options { link: Some(Selector::Address(PAYEE)), ..Options::default() };
    assert_eq!(dispute::dispute(&payer, &payee, &named).unwrap().verdict.amount, Amount(3_000));
    // Reading changed nothing in either directory.
    let before = (common::contents(pair.payer.path()), common::contents(pair.payee.path()));
    pair.dispute(&["--json"]);
    assert_eq!(before, (common::contents(pair.payer.path()), common::contents(pair.payee.path())));
}
