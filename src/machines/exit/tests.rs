use super::statement::{address_for_test, sign_for_test};
use super::*;
use crate::events::exit::{DisputeReason, ExitUserEffect, ExitUserInput, Signature};
use crate::events::{Effect, Fold, Release};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const EXIT_KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [8; 32];
const USER: Address = Address([0x22; 20]);
/// 1%.
const TOLERANCE_PPM: u32 = 10_000;

fn t(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

fn exit_address() -> Address {
    address_for_test(&EXIT_KEY)
}

fn config() -> ExitConfig {
    ExitConfig { address: exit_address(), poll_ms: 1_000, statement_ms: 60_000 }
}

fn counters(download_bytes: u64, upload_bytes: u64) -> ExitInput {
    ExitInput::Counters(vec![UserCounters { user: USER, download_bytes, upload_bytes }])
}

fn prices(exit_price_per_byte: u64, path_price_per_byte: u64) -> ExitInput {
    ExitInput::Prices { user: USER, exit_price_per_byte, path_price_per_byte }
}

fn drain<M: Machine>(m: &mut M) -> (Vec<M::Event>, Vec<Effect<M::Effect>>) {
    let events = std::iter::from_fn(|| m.poll_event()).collect();
    let effects = std::iter::from_fn(|| m.poll_effect()).collect();
    (events, effects)
}

/// Plays the shell of the exit: signs what it is asked to sign and returns what it would send.
/// The events this decides stay queued in the machine.
fn sign_and_send(m: &mut ExitMachine, at: Stamp, effects: Vec<Effect<ExitEffect>>) -> Vec<SignedStatement> {
    let mut sent = Vec::new();
    let mut queue = effects;
    while !queue.is_empty() {
        for effect in std::mem::take(&mut queue) {
            match effect.action {
                ExitEffect::SignStatement(s) => {
                    let signature = sign_for_test(&EXIT_KEY, &s);
                    m.handle(at, ExitInput::Signed { user: s.user, seq: s.seq, signature });
                    queue.extend(std::iter::from_fn(|| m.poll_effect()));
                }
                ExitEffect::SendStatement(signed) => {
                    assert_eq!(effect.release, Release::WhenDurable, "a signed statement is a promise");
                    sent.push(signed);
                }
                ExitEffect::ReadCounters | ExitEffect::Refused { .. } => {}
            }
        }
    }
    sent
}

fn user() -> ExitUserMachine {
    let mut u = ExitUserMachine::new(
        ExitUserConfig { address: USER, tolerance_ppm: TOLERANCE_PPM },
        ExitLedger::default(),
    );
    u.handle(t(0), ExitUserInput::Bind { exit: exit_address() });
    u
}

fn quote(u: &mut ExitUserMachine, exit_price_per_byte: u64, path_price_per_byte: u64) {
    u.handle(t(0), ExitUserInput::Quoted { exit: exit_address(), exit_price_per_byte, path_price_per_byte });
}

fn own(u: &mut ExitUserMachine, rx_bytes: u64, tx_bytes: u64) {
    u.handle(t(0), ExitUserInput::OwnCounters { exit: exit_address(), rx_bytes, tx_bytes });
}

fn signed(s: Statement, key: &[u8; 32]) -> SignedStatement {
    SignedStatement { statement: s, signature: sign_for_test(key, &s) }
}

fn statement(seq: u64, download_bytes: u64, upload_bytes: u64, amount_due: u128) -> Statement {
    Statement {
        user: USER,
        exit: exit_address(),
        seq,
        download_bytes,
        upload_bytes,
        amount_due: Amount(amount_due),
    }
}

/// The user's verdict on `s`: the last event it emitted.
fn verdict(u: &mut ExitUserMachine, s: SignedStatement) -> ExitEvent {
    u.handle(t(0), ExitUserInput::Statement(s));
    let (mut events, _) = drain(u);
    events.pop().expect("a statement always gets a verdict")
}

fn disputed(seq: u64, reason: DisputeReason, by: u128) -> ExitEvent {
    ExitEvent::StatementDisputed { exit: exit_address(), seq, reason, by }
}

#[test]
fn the_exit_issues_a_signed_statement_and_the_user_accepts_it() {
    let mut m = ExitMachine::new(config(), ExitLedger::default(), t(0));
    assert_eq!(m.poll_timeout(), Some((t(0), ExitTimer::Poll)));
    m.handle_timeout(t(0), ExitTimer::Poll);
    assert_eq!(drain(&mut m).1, vec![Effect::now(ExitEffect::ReadCounters)]);
    // Step 1: prices 3 (exit) + 4 (path down), then 1000 bytes down, 200 up.
    m.handle(t(1), prices(3, 4));
    m.handle(t(2), counters(1000, 200));
    let (events, _) = drain(&mut m);
    assert_eq!(
        events,
        vec![ExitEvent::PricesSet { user: USER, exit_price_per_byte: 3, path_price_per_byte: 4 }]
    );
    // Step 2: the statement period ends.
    m.handle_timeout(t(60_000), ExitTimer::Statement);
    let (events, effects) = drain(&mut m);
    let expected = statement(1, 1000, 200, 1000 * 7 + 200 * 3);
    assert_eq!(
        events,
        vec![
            ExitEvent::Accrued {
                user: USER,
                download_bytes: 1000,
                upload_bytes: 200,
                exit_price_per_byte: 3,
                path_price_per_byte: 4
            },
            ExitEvent::StatementIssued(expected),
        ]
    );
    assert_eq!(effects, vec![Effect::now(ExitEffect::SignStatement(expected))]);
    // Step 3: the shell signs; the statement goes out once its signature is durable.
    let sent = sign_and_send(&mut m, t(60_001), effects);
    assert_eq!(sent, vec![signed(expected, &EXIT_KEY)]);
    assert_eq!(
        drain(&mut m).0,
        vec![ExitEvent::StatementSigned { user: USER, seq: 1, signature: sent[0].signature }]
    );
    assert_eq!(m.state().served[&USER].signed.map(|(seq, _)| seq), Some(1));
    // Step 4: the user, who received all 1000 bytes and sent 200, accepts and owes 7600.
    let mut u = user();
    quote(&mut u, 3, 4);
    own(&mut u, 1000, 200);
    drain(&mut u);
    u.handle(t(60_002), ExitUserInput::Statement(sent[0]));
    let (events, effects) = drain(&mut u);
    assert_eq!(
        events,
        vec![ExitEvent::StatementAccepted { statement: expected, own_rx_bytes: 1000, own_tx_bytes: 200 }]
    );
    assert_eq!(
        effects,
        vec![Effect::when_durable(ExitUserEffect::Owe { exit: exit_address(), amount_due: Amount(7600) })]
    );
    assert_eq!(u.state().exits[&exit_address()].owed(), Amount(7600));
    // A retransmission changes nothing.
    u.handle(t(60_003), ExitUserInput::Statement(sent[0]));
    assert_eq!(drain(&mut u), (vec![], vec![]));
    // Nothing new: no statement next period.
    m.handle_timeout(t(120_000), ExitTimer::Statement);
    assert_eq!(drain(&mut m), (vec![], vec![]));
}

#[test]
fn a_lying_exit_that_inflates_download_beyond_tolerance_is_disputed_by_the_excess() {
    let mut u = user();
    quote(&mut u, 3, 4);
    own(&mut u, 1000, 200);
    // 1% of 1000 received is 10 bytes of allowed loss: 1010 passes, 1050 is 40 too many.
    let lie = statement(1, 1050, 200, 1050 * 7 + 200 * 3);
    assert_eq!(
        verdict(&mut u, signed(lie, &EXIT_KEY)),
        disputed(1, DisputeReason::DownloadAboveTolerance, 40)
    );
    let more_upload = statement(1, 1000, 201, 1000 * 7 + 201 * 3);
    assert_eq!(
        verdict(&mut u, signed(more_upload, &EXIT_KEY)),
        disputed(1, DisputeReason::UploadAboveSent, 1)
    );
    // Bytes within bounds, but priced above anything quoted: 1 base unit too many.
    let pricey = statement(1, 1000, 200, 7601);
    assert_eq!(verdict(&mut u, signed(pricey, &EXIT_KEY)), disputed(1, DisputeReason::AmountAbovePrices, 1));
    assert_eq!(u.state().exits[&exit_address()].disputes, 3);
    assert_eq!(u.state().exits[&exit_address()].owed(), Amount(0));
}

#[test]
fn loss_within_tolerance_is_accepted() {
    let mut u = user();
    quote(&mut u, 3, 4);
    own(&mut u, 1000, 200);
    let lossy = statement(1, 1010, 150, 1010 * 7 + 150 * 3);
    assert!(matches!(verdict(&mut u, signed(lossy, &EXIT_KEY)), ExitEvent::StatementAccepted { .. }));
    // The exit counting less than we did (its counters were read earlier) costs only the exit.
    own(&mut u, 5000, 900);
    let short = statement(2, 4000, 800, 4000 * 7 + 800 * 3);
    assert!(matches!(verdict(&mut u, signed(short, &EXIT_KEY)), ExitEvent::StatementAccepted { .. }));
    assert_eq!(u.state().exits[&exit_address()].owed(), Amount(30_400));
}

#[test]
fn forged_replayed_and_shrinking_statements_are_disputed_with_a_reason_never_a_panic() {
    let mut u = user();
    quote(&mut u, 3, 4);
    own(&mut u, 1000, 200);
    let good = statement(2, 500, 100, 500 * 7 + 100 * 3);
    assert!(matches!(verdict(&mut u, signed(good, &EXIT_KEY)), ExitEvent::StatementAccepted { .. }));

    let next = statement(3, 600, 100, 600 * 7 + 100 * 3);
    // Signed by another key.
    assert_eq!(verdict(&mut u, signed(next, &OTHER_KEY)), disputed(3, DisputeReason::WrongSigner, 0));
    // Garbage in place of a signature, and a valid signature of other bytes.
    let garbage = SignedStatement { statement: next, signature: Signature([0xff; 65]) };
    assert_eq!(verdict(&mut u, garbage), disputed(3, DisputeReason::BadSignature, 0));
    let zero = SignedStatement { statement: next, signature: Signature([0; 65]) };
    assert_eq!(verdict(&mut u, zero), disputed(3, DisputeReason::BadSignature, 0));
    let swapped = SignedStatement { statement: next, signature: signed(good, &EXIT_KEY).signature };
    assert_eq!(verdict(&mut u, swapped), disputed(3, DisputeReason::WrongSigner, 0));
    // Seq going backwards or repeating with other values.
    let old = statement(1, 400, 100, 400 * 7 + 100 * 3);
    assert_eq!(verdict(&mut u, signed(old, &EXIT_KEY)), disputed(1, DisputeReason::SeqNotIncreasing, 1));
    let same_seq = statement(2, 501, 100, 501 * 7 + 100 * 3);
    assert_eq!(verdict(&mut u, signed(same_seq, &EXIT_KEY)), disputed(2, DisputeReason::SeqNotIncreasing, 0));
    // Cumulative values going down.
    let less_down = statement(3, 450, 100, 500 * 7 + 100 * 3);
    assert_eq!(
        verdict(&mut u, signed(less_down, &EXIT_KEY)),
        disputed(3, DisputeReason::DownloadDecreased, 50)
    );
    let less_up = statement(3, 500, 90, 500 * 7 + 100 * 3);
    assert_eq!(verdict(&mut u, signed(less_up, &EXIT_KEY)), disputed(3, DisputeReason::UploadDecreased, 10));
    let less_due = statement(3, 500, 100, 100);
    assert_eq!(
        verdict(&mut u, signed(less_due, &EXIT_KEY)),
        disputed(3, DisputeReason::AmountDecreased, 3700)
    );
    // Not for us, or from an exit we do not use (which leaves no trace in the state).
    let mut other_user = next;
    other_user.user = Address([0x99; 20]);
    assert_eq!(verdict(&mut u, signed(other_user, &EXIT_KEY)), disputed(3, DisputeReason::WrongUser, 0));
    let mut stranger = next;
    stranger.exit = address_for_test(&OTHER_KEY);
    let verdict_stranger = verdict(&mut u, signed(stranger, &OTHER_KEY));
    assert!(matches!(
        verdict_stranger,
        ExitEvent::StatementDisputed { reason: DisputeReason::UnknownExit, .. }
    ));
    assert_eq!(u.state().exits.len(), 1);
    // Extreme values do not overflow anything.
    let huge = statement(u64::MAX, u64::MAX, u64::MAX, u128::MAX);
    let v = verdict(&mut u, signed(huge, &EXIT_KEY));
    assert_eq!(v, disputed(u64::MAX, DisputeReason::DownloadAboveTolerance, u128::from(u64::MAX) - 1010));
    // The accepted statement still stands.
    assert_eq!(u.state().exits[&exit_address()].accepted, Some(good));
    assert_eq!(u.state().exits[&exit_address()].disputes, 11);
}

#[test]
fn a_price_change_mid_period_bills_bytes_before_it_at_the_old_prices() {
    let mut m = ExitMachine::new(config(), ExitLedger::default(), t(0));
    let mut u = user();
    m.handle(t(1), prices(3, 4));
    quote(&mut u, 3, 4);
    m.handle(t(2), counters(1000, 100));
    // The path down got dearer: 1000 down and 100 up were carried at 3 + 4.
    m.handle(t(3), prices(3, 9));
    quote(&mut u, 3, 9);
    m.handle(t(4), counters(1500, 300));
    m.handle_timeout(t(60_000), ExitTimer::Statement);
    let (events, effects) = drain(&mut m);
    let due = 1000 * 7 + 100 * 3 + 500 * 12 + 200 * 3;
    assert_eq!(events.last(), Some(&ExitEvent::StatementIssued(statement(1, 1500, 300, due))));
    let sent = sign_and_send(&mut m, t(60_000), effects);
    own(&mut u, 1500, 300);
    assert!(matches!(verdict(&mut u, sent[0]), ExitEvent::StatementAccepted { .. }));
    assert_eq!(u.state().exits[&exit_address()].owed(), Amount(due));
}

#[test]
fn counter_resets_at_the_exit_lose_no_accrued_bytes_and_unsigned_statements_are_signed_later() {
    let mut m = ExitMachine::new(config(), ExitLedger::default(), t(0));
    m.handle(t(1), prices(1, 1));
    m.handle(t(2), counters(800, 300));
    m.handle(t(3), counters(50, 310));
    let (events, _) = drain(&mut m);
    assert_eq!(
        events[1..],
        [
            ExitEvent::Accrued {
                user: USER,
                download_bytes: 800,
                upload_bytes: 300,
                exit_price_per_byte: 1,
                path_price_per_byte: 1
            },
            ExitEvent::CounterReset {
                user: USER,
                download_reset: true,
                upload_reset: false,
                download_counted: 800,
                upload_counted: 300,
                download_observed: 50,
                upload_observed: 310,
            },
        ]
    );
    m.handle_timeout(t(60_000), ExitTimer::Statement);
    let (_, effects) = drain(&mut m);
    let first = statement(1, 850, 310, 850 * 2 + 310);
    assert_eq!(effects, vec![Effect::now(ExitEffect::SignStatement(first))]);
    // The signature never came back (a crash, a failed signing): the next period asks again.
    m.handle_timeout(t(120_000), ExitTimer::Statement);
    assert_eq!(drain(&mut m), (vec![], vec![Effect::now(ExitEffect::SignStatement(first))]));
    // A late answer for another seq is ignored.
    m.handle(t(120_001), ExitInput::Signed { user: USER, seq: 9, signature: Signature([1; 65]) });
    assert_eq!(drain(&mut m), (vec![], vec![]));
    // A restart from the durable state resumes at the right counter values.
    let mut restarted = ExitMachine::new(config(), m.state().clone(), t(0));
    restarted.handle(t(1), counters(70, 330));
    assert_eq!(restarted.pending(USER), (20, 20));
}

// ---- property: honest exits are always accepted, at exactly the integer formula ----

#[derive(Clone, Debug)]
struct Step {
    /// Bytes the user received on the way down, and how many more the exit sent (lost).
    received: u32,
    lost_permille_of_tolerance: u16,
    upload: u32,
    /// New prices (exit, path down), if they change.
    prices: Option<(u16, u16)>,
    /// A statement period ends after this step.
    statement: bool,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        Step {
            received: u32::arbitrary(g) % 1_000_000,
            lost_permille_of_tolerance: u16::arbitrary(g) % 1001,
            upload: u32::arbitrary(g) % 100_000,
            prices: if bool::arbitrary(g) { Some((u16::arbitrary(g), u16::arbitrary(g))) } else { None },
            statement: bool::arbitrary(g),
        }
    }
}

fn fold(events: &[ExitEvent]) -> ExitLedger {
    let mut ledger = ExitLedger::default();
    for e in events {
        ledger.apply(e);
    }
    ledger
}

fn honest_exit_is_accepted(steps: Vec<Step>, tolerance_ppm: u32) -> bool {
    let tolerance_ppm = tolerance_ppm % 100_000;
    let mut m = ExitMachine::new(config(), ExitLedger::default(), t(0));
    let mut u = ExitUserMachine::new(ExitUserConfig { address: USER, tolerance_ppm }, ExitLedger::default());
    u.handle(t(0), ExitUserInput::Bind { exit: exit_address() });
    let (mut exit_log, mut user_log) = (drain(&mut m).0, drain(&mut u).0);
    let (mut sent_down, mut received, mut uploaded) = (0u64, 0u64, 0u64);
    let mut price = (0u64, 0u64);
    let mut expected = 0u128;
    for (i, step) in steps.iter().enumerate() {
        let at = t(i as u64 * 1000 + 1);
        if let Some((e, p)) = step.prices {
            price = (e.into(), p.into());
            m.handle(at, prices(price.0, price.1));
            u.handle(
                at,
                ExitUserInput::Quoted {
                    exit: exit_address(),
                    exit_price_per_byte: price.0,
                    path_price_per_byte: price.1,
                },
            );
        }
        // Per step, loss ≤ ⌊received × tolerance / 10⁶⌋, so the totals respect the tolerance.
        let max_lost = u64::from(step.received) * u64::from(tolerance_ppm) / 1_000_000;
        let lost = max_lost * u64::from(step.lost_permille_of_tolerance) / 1000;
        sent_down += u64::from(step.received) + lost;
        received += u64::from(step.received);
        uploaded += u64::from(step.upload);
        expected += (u128::from(step.received) + u128::from(lost)) * u128::from(price.0 + price.1)
            + u128::from(step.upload) * u128::from(price.0);
        m.handle(at, counters(sent_down, uploaded));
        u.handle(
            at,
            ExitUserInput::OwnCounters { exit: exit_address(), rx_bytes: received, tx_bytes: uploaded },
        );
        if step.statement {
            m.handle_timeout(at, ExitTimer::Statement);
            let (events, effects) = drain(&mut m);
            exit_log.extend(events);
            let sent = sign_and_send(&mut m, at, effects);
            exit_log.extend(drain(&mut m).0);
            for s in sent {
                u.handle(at, ExitUserInput::Statement(s));
                if s.statement.amount_due.0 != expected {
                    return false;
                }
            }
        }
        exit_log.extend(drain(&mut m).0);
        user_log.extend(drain(&mut u).0);
    }
    let no_disputes = !user_log.iter().any(|e| matches!(e, ExitEvent::StatementDisputed { .. }));
    let owed = u.state().exits[&exit_address()].owed();
    let last_issued = m.state().served.get(&USER).and_then(|s| s.issued).map_or(0, |s| s.amount_due.0);
    no_disputes && owed.0 == last_issued && fold(&exit_log) == *m.state() && fold(&user_log) == *u.state()
}

#[test]
fn an_honest_exit_within_the_loss_tolerance_is_always_accepted_at_the_integer_formula() {
    // Signing and recovering are slow in debug builds: fewer, longer cases.
    QuickCheck::new().tests(60).quickcheck(honest_exit_is_accepted as fn(Vec<Step>, u32) -> bool);
}

/// Arbitrary statements, signed or not, never make the user panic, and its state stays the
/// fold of what it emitted.
#[test]
fn arbitrary_statements_never_panic_and_the_user_state_is_its_fold() {
    fn prop(raw: Vec<(u8, u64, u64, u64, u64, bool)>) -> bool {
        let mut u = user();
        let mut log = Vec::new();
        log.extend(drain(&mut u).0);
        for (kind, seq, down, up, due, sign) in raw {
            let s = statement(seq % 8, down % 5000, up % 5000, u128::from(due % 100_000));
            match kind % 3 {
                0 => quote(&mut u, down % 10, up % 10),
                1 => own(&mut u, down, up),
                _ => {
                    let signature = if sign { sign_for_test(&EXIT_KEY, &s) } else { Signature([kind; 65]) };
                    u.handle(t(0), ExitUserInput::Statement(SignedStatement { statement: s, signature }));
                }
            }
            log.extend(drain(&mut u).0);
        }
        fold(&log) == *u.state()
    }
    QuickCheck::new().tests(100).quickcheck(prop as fn(Vec<(u8, u64, u64, u64, u64, bool)>) -> bool);
}
