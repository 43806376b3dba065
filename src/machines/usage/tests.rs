use super::*;
use crate::events::{Effect, Release};
use quickcheck::{Arbitrary, Gen, QuickCheck};

const L1: Link = Link::new(1, 10);
const L2: Link = Link::new(2, 10);

fn t(ms: u64) -> Stamp {
    Stamp::new(1, ms)
}

fn sample(link: Link, tx: u64, rx: u64) -> CounterSample {
    CounterSample { link, tx_bytes: tx, rx_bytes: rx }
}

fn drain(m: &mut UsageMachine) -> (Vec<UsageEvent>, Vec<Effect<UsageEffect>>) {
    let events = std::iter::from_fn(|| m.poll_event()).collect();
    let effects = std::iter::from_fn(|| m.poll_effect()).collect();
    (events, effects)
}

fn record(link: Link, tx: u64, rx: u64, price: Option<u64>) -> UsageEvent {
    UsageEvent::Accrued(UsageRecord { link, tx_bytes: tx, rx_bytes: rx, price_per_byte: price })
}

#[test]
fn first_timeout_reads_counters_and_window_writes_one_record_per_busy_link() {
    let mut m = UsageMachine::new(UsageConfig::default(), UsageLedger::default(), t(0));
    assert_eq!(m.poll_timeout(), Some((t(0), UsageTimer::Poll)));
    m.handle_timeout(t(0), UsageTimer::Poll);
    let (events, effects) = drain(&mut m);
    assert!(events.is_empty());
    assert_eq!(effects, vec![Effect::now(UsageEffect::ReadCounters)]);
    assert_eq!(m.poll_timeout(), Some((t(10_000), UsageTimer::Poll)));

    m.handle(t(5), UsageInput::PriceSelected { link: L1, price_per_byte: Some(3) });
    m.handle(t(10), UsageInput::Counters(vec![sample(L1, 1000, 400), sample(L2, 0, 0)]));
    m.handle(t(20), UsageInput::Counters(vec![sample(L1, 1500, 900), sample(L2, 0, 0)]));
    assert_eq!(m.pending(L1), (1500, 900));
    assert_eq!(drain(&mut m).0, vec![]);

    m.handle_timeout(t(60_000), UsageTimer::Window);
    let (events, effects) = drain(&mut m);
    assert_eq!(events, vec![record(L1, 1500, 900, Some(3))]);
    let UsageEvent::Accrued(r) = events[0].clone() else { unreachable!() };
    // A usage record is a promise to whoever settles it: it leaves only once durable.
    assert_eq!(effects, vec![Effect { release: Release::WhenDurable, action: UsageEffect::Report(r) }]);
    assert_eq!(m.pending(L1), (0, 0));
    assert_eq!(m.state().links[&L1].tx_counted, 1500);
    assert_eq!(m.poll_timeout(), Some((t(10_000), UsageTimer::Poll)));
}

#[test]
fn a_counter_going_backwards_is_recorded_as_a_reset_after_closing_what_was_read() {
    let mut m = UsageMachine::new(UsageConfig::default(), UsageLedger::default(), t(0));
    m.handle(t(1), UsageInput::Counters(vec![sample(L1, 800, 300)]));
    m.handle(t(2), UsageInput::Counters(vec![sample(L1, 50, 310)]));
    let (events, _) = drain(&mut m);
    assert_eq!(
        events,
        vec![
            record(L1, 800, 300, None),
            UsageEvent::CounterReset(CounterReset {
                link: L1,
                tx_reset: true,
                rx_reset: false,
                tx_counted: 800,
                rx_counted: 300,
                tx_observed: 50,
                rx_observed: 310,
            }),
        ]
    );
    assert_eq!(m.pending(L1), (50, 10));
    assert_eq!(m.state().links[&L1].resets, 1);
}

#[test]
fn after_a_restart_bytes_read_before_the_crash_are_not_lost_and_a_reboot_is_a_reset() {
    let mut m = UsageMachine::new(UsageConfig::default(), UsageLedger::default(), t(0));
    m.handle(t(1), UsageInput::Counters(vec![sample(L1, 1000, 1000)]));
    m.handle_timeout(t(60_000), UsageTimer::Window);
    m.handle(t(60_001), UsageInput::Counters(vec![sample(L1, 1700, 1200)]));
    drain(&mut m);
    // Crash before the next window: only the ledger survives (it is the fold of the log).
    let ledger = m.state().clone();

    // Daemon restart: the kernel counter kept counting.
    let mut again = UsageMachine::new(UsageConfig::default(), ledger.clone(), Stamp::new(2, 0));
    again.handle(Stamp::new(2, 5), UsageInput::Counters(vec![sample(L1, 1900, 1250)]));
    again.handle_timeout(Stamp::new(2, 60_000), UsageTimer::Window);
    assert_eq!(drain(&mut again).0, vec![record(L1, 900, 250, None)]);

    // Router reboot: the kernel counter restarted from zero.
    let mut rebooted = UsageMachine::new(UsageConfig::default(), ledger, Stamp::new(2, 0));
    rebooted.handle(Stamp::new(2, 5), UsageInput::Counters(vec![sample(L1, 40, 30)]));
    let (events, _) = drain(&mut rebooted);
    assert!(matches!(
        events.as_slice(),
        [UsageEvent::CounterReset(CounterReset { tx_reset: true, rx_reset: true, tx_counted: 1000, .. })]
    ));
    assert_eq!(rebooted.pending(L1), (40, 30));
}

/// The log refused a record (flash and backlog full): its report was dropped, and the machine
/// resyncs to the durable ledger. The bytes are pending again and go into the next record: a
/// refused record is late, never lost, and never counted twice.
#[test]
fn after_a_refused_record_the_resynced_machine_records_its_bytes_again() {
    use crate::machines::{NodeState, Resync};
    let mut m = UsageMachine::new(UsageConfig::default(), UsageLedger::default(), t(0));
    m.handle(t(5), UsageInput::PriceSelected { link: L1, price_per_byte: Some(3) });
    m.handle(t(10), UsageInput::Counters(vec![sample(L1, 1000, 400)]));
    m.handle_timeout(t(60_000), UsageTimer::Window);
    assert_eq!(drain(&mut m).0, vec![record(L1, 1000, 400, Some(3))]);
    // Refused: the durable state never saw that record.
    let durable = NodeState::default();
    m.resync(t(60_001), &durable);
    assert_eq!(m.state(), &durable.usage);
    assert_eq!(m.pending(L1), (1000, 400), "the bytes are pending again");
    m.handle(t(70_000), UsageInput::Counters(vec![sample(L1, 1200, 450)]));
    m.handle_timeout(t(120_000), UsageTimer::Window);
    assert_eq!(
        drain(&mut m).0,
        vec![record(L1, 1200, 450, Some(3))],
        "one record for all of it, at the price kept"
    );
}

#[test]
fn a_price_change_closes_pending_bytes_at_the_old_price() {
    let mut m = UsageMachine::new(UsageConfig::default(), UsageLedger::default(), t(0));
    m.handle(t(0), UsageInput::PriceSelected { link: L1, price_per_byte: Some(7) });
    m.handle(t(1), UsageInput::Counters(vec![sample(L1, 100, 0)]));
    m.handle(t(2), UsageInput::PriceSelected { link: L1, price_per_byte: Some(7) });
    assert_eq!(drain(&mut m).0, vec![], "an unchanged price closes nothing");
    m.handle(t(3), UsageInput::PriceSelected { link: L1, price_per_byte: Some(9) });
    m.handle(t(4), UsageInput::Counters(vec![sample(L1, 150, 0)]));
    m.handle_timeout(t(60_000), UsageTimer::Window);
    assert_eq!(drain(&mut m).0, vec![record(L1, 100, 0, Some(7)), record(L1, 50, 0, Some(9))]);
}

// ---- properties over arbitrary input sequences ----

#[derive(Clone, Debug)]
enum Step {
    Traffic { link: u8, tx: u32, rx: u32 },
    Read,
    Reset { link: u8, tx: bool, rx: bool },
    Price { link: u8, price: Option<u8> },
    Window,
    Restart,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        let link = u8::arbitrary(g) % 3;
        match u8::arbitrary(g) % 12 {
            0..=3 => Step::Traffic { link, tx: u32::arbitrary(g) % 100_000, rx: u32::arbitrary(g) % 100_000 },
            4..=6 => Step::Read,
            7 => Step::Reset { link, tx: bool::arbitrary(g), rx: bool::arbitrary(g) },
            8 => Step::Price { link, price: Option::<u8>::arbitrary(g) },
            9 | 10 => Step::Window,
            _ => Step::Restart,
        }
    }
}

/// The simulated kernel: true cumulative counters per link.
struct Run {
    machine: UsageMachine,
    counters: BTreeMap<Link, (u64, u64)>,
    events: Vec<UsageEvent>,
    now: Stamp,
    resets: bool,
    true_tx: u64,
}

fn link_of(n: u8) -> Link {
    Link::new(u32::from(n), 100 + u32::from(n))
}

impl Run {
    fn new(offset_ms: u64) -> Self {
        let now = Stamp::new(1, offset_ms);
        Self {
            machine: UsageMachine::new(UsageConfig::default(), UsageLedger::default(), now),
            counters: BTreeMap::new(),
            events: Vec::new(),
            now,
            resets: false,
            true_tx: 0,
        }
    }

    fn step(&mut self, step: &Step) {
        self.now = self.now.plus_ms(1_000);
        match *step {
            Step::Traffic { link, tx, rx } => {
                let c = self.counters.entry(link_of(link)).or_default();
                c.0 += u64::from(tx);
                c.1 += u64::from(rx);
                self.true_tx += u64::from(tx);
            }
            Step::Read => {
                let samples = self.counters.iter().map(|(l, c)| sample(*l, c.0, c.1)).collect();
                self.machine.handle(self.now, UsageInput::Counters(samples));
            }
            Step::Reset { link, tx, rx } => {
                let c = self.counters.entry(link_of(link)).or_default();
                if tx && c.0 > 0 {
                    c.0 = 0;
                    self.resets = true;
                }
                if rx && c.1 > 0 {
                    c.1 = 0;
                    self.resets = true;
                }
            }
            Step::Price { link, price } => {
                let price_per_byte = price.map(u64::from);
                self.machine
                    .handle(self.now, UsageInput::PriceSelected { link: link_of(link), price_per_byte });
            }
            Step::Window => self.machine.handle_timeout(self.now, UsageTimer::Window),
            Step::Restart => {
                self.drain();
                let ledger = self.machine.state().clone();
                self.now = Stamp::new(self.now.boot + 1, 0);
                self.machine = UsageMachine::new(UsageConfig::default(), ledger, self.now);
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.machine.poll_event() {
            self.events.push(e);
        }
        while self.machine.poll_effect().is_some() {}
    }
}

fn fold(events: &[UsageEvent]) -> UsageLedger {
    let mut ledger = UsageLedger::default();
    for e in events {
        ledger.apply(e);
    }
    ledger
}

#[test]
fn replaying_the_emitted_events_gives_exactly_the_live_ledger() {
    fn prop(steps: Vec<Step>, cut: usize) -> bool {
        let mut run = Run::new(0);
        for s in &steps {
            run.step(s);
        }
        let live = run.machine.state().clone();
        // From nothing, and from a "snapshot" at any event boundary plus the tail.
        let cut = if run.events.is_empty() { 0 } else { cut % run.events.len() };
        let mut from_snapshot = fold(&run.events[..cut]);
        for e in &run.events[cut..] {
            from_snapshot.apply(e);
        }
        fold(&run.events) == live && from_snapshot == live
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(Vec<Step>, usize) -> bool);
}

#[test]
fn no_byte_is_invented_and_none_is_lost_without_a_reset() {
    fn prop(steps: Vec<Step>) -> bool {
        let mut run = Run::new(0);
        for s in &steps {
            run.step(s);
        }
        // A final reading and window close account for everything the kernel counted.
        run.step(&Step::Read);
        run.step(&Step::Window);
        let recorded: u64 = run.machine.state().links.values().map(|l| l.tx_total).sum();
        let from_records: u64 =
            run.events.iter().map(|e| if let UsageEvent::Accrued(r) = e { r.tx_bytes } else { 0 }).sum();
        let counted_matches_kernel = run.resets
            || run.counters.iter().all(|(l, c)| {
                run.machine
                    .state()
                    .links
                    .get(l)
                    .map_or(c.0 == 0 && c.1 == 0, |u| u.tx_counted == c.0 && u.rx_counted == c.1)
            });
        recorded == from_records
            && recorded <= run.true_tx
            && (run.resets || recorded == run.true_tx)
            && counted_matches_kernel
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(Vec<Step>) -> bool);
}

#[test]
fn shifting_every_stamp_changes_no_event() {
    fn prop(steps: Vec<Step>, offset: u32) -> bool {
        let mut a = Run::new(0);
        let mut b = Run::new(u64::from(offset) * 7);
        for s in &steps {
            a.step(s);
            b.step(s);
        }
        a.events == b.events
    }
    QuickCheck::new().tests(200).quickcheck(prop as fn(Vec<Step>, u32) -> bool);
}
