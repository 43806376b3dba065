//! Both exit roles.
//!
//! The exit ([`ExitMachine`]) serves two users: traffic on their tunnels, counter resets,
//! price changes, readings, and a signer that answers each statement at once unless it is
//! down (the exit does not check its own signatures, so the signer's are stand-ins), or a late
//! answer for a statement already superseded.
//!
//! The user ([`ExitUserMachine`]) uses an exit that is honest most of the time: traffic down
//! (with some loss, now and then too much) and up, its own counters fed to the machine, the
//! exit's quotes, and the exit's cumulative statements, really signed, honest or lying in one
//! of the ways the user checks for (inflated, shrinking, stale, signed by another key, a
//! garbage signature, naming another user or an exit it does not use), or sent again.

use super::{Scenario, World};
use crate::events::chain::{Address, Amount};
use crate::events::exit::{
    accrual_amount, ExitEffect, ExitEvent, ExitInput, ExitUserEffect, ExitUserInput, Signature,
    SignedStatement, Statement, UserCounters,
};
use crate::events::{Effect, Machine, Stamp};
use crate::machines::exit::statement::{address_for_test, sign_for_test};
use crate::machines::exit::{ExitConfig, ExitLedger, ExitMachine, ExitUserConfig, ExitUserMachine};
use quickcheck::{Arbitrary, Gen};
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn kind(event: &ExitEvent) -> &'static str {
    match event {
        ExitEvent::PricesSet { .. } => "PricesSet",
        ExitEvent::Accrued { .. } => "Accrued",
        ExitEvent::CounterReset { .. } => "CounterReset",
        ExitEvent::StatementIssued(_) => "StatementIssued",
        ExitEvent::StatementSigned { .. } => "StatementSigned",
        ExitEvent::Bound { .. } => "Bound",
        ExitEvent::Quoted { .. } => "Quoted",
        ExitEvent::StatementAccepted { .. } => "StatementAccepted",
        ExitEvent::StatementDisputed { .. } => "StatementDisputed",
    }
}

// ---- the exit's role ----

const USERS: [Address; 2] = [Address([0x21; 20]), Address([0x22; 20])];

fn user(n: u8) -> Address {
    USERS[usize::from(n % 2)]
}

#[derive(Clone, Debug)]
pub(super) enum ExitAction {
    Traffic {
        user: u8,
        down: u16,
        up: u16,
    },
    Reset {
        user: u8,
        down: bool,
        up: bool,
    },
    /// The shell reads the counters on its own.
    Read,
    Prices {
        user: u8,
        exit: u8,
        path: u8,
    },
    Signer {
        up: bool,
    },
    /// A signature for `seq`, whether or not that is the statement being signed.
    LateSignature {
        user: u8,
        seq: u8,
    },
}

impl Arbitrary for ExitAction {
    fn arbitrary(g: &mut Gen) -> Self {
        let user = u8::arbitrary(g) % 2;
        match u8::arbitrary(g) % 12 {
            0..=4 => ExitAction::Traffic { user, down: u16::arbitrary(g), up: u16::arbitrary(g) },
            5 => ExitAction::Reset { user, down: bool::arbitrary(g), up: bool::arbitrary(g) },
            6 => ExitAction::Read,
            7 | 8 => ExitAction::Prices { user, exit: u8::arbitrary(g) % 4, path: u8::arbitrary(g) % 4 },
            9 | 10 => ExitAction::Signer { up: u8::arbitrary(g) % 3 != 0 },
            _ => ExitAction::LateSignature { user, seq: u8::arbitrary(g) % 4 },
        }
    }
}

/// The exit's kernel counters per user, and its signer.
#[derive(Debug)]
pub(super) struct ExitWorld {
    counters: BTreeMap<Address, (u64, u64)>,
    signer_up: bool,
}

impl ExitWorld {
    fn read(&self) -> ExitInput {
        ExitInput::Counters(
            self.counters
                .iter()
                .map(|(u, c)| UserCounters { user: *u, download_bytes: c.0, upload_bytes: c.1 })
                .collect(),
        )
    }
}

/// A stand-in signature: the exit records whatever its signer answers.
fn stand_in(seq: u64) -> Signature {
    Signature([seq as u8; 65])
}

impl World<ExitMachine> for ExitWorld {
    type Action = ExitAction;

    fn act(&mut self, _at: Stamp, action: &ExitAction) -> Vec<ExitInput> {
        match *action {
            ExitAction::Traffic { user: u, down, up } => {
                let c = self.counters.entry(user(u)).or_default();
                c.0 += u64::from(down);
                c.1 += u64::from(up);
                vec![]
            }
            ExitAction::Reset { user: u, down, up } => {
                let c = self.counters.entry(user(u)).or_default();
                if down {
                    c.0 = 0;
                }
                if up {
                    c.1 = 0;
                }
                vec![]
            }
            ExitAction::Read => vec![self.read()],
            ExitAction::Prices { user: u, exit, path } => vec![ExitInput::Prices {
                user: user(u),
                exit_price_per_byte: exit.into(),
                path_price_per_byte: path.into(),
            }],
            ExitAction::Signer { up } => {
                self.signer_up = up;
                vec![]
            }
            ExitAction::LateSignature { user: u, seq } => {
                vec![ExitInput::Signed { user: user(u), seq: seq.into(), signature: stand_in(seq.into()) }]
            }
        }
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<ExitEffect>) -> Option<ExitInput> {
        match effect.action {
            ExitEffect::ReadCounters => Some(self.read()),
            ExitEffect::SignStatement(s) => self.signer_up.then(|| ExitInput::Signed {
                user: s.user,
                seq: s.seq,
                signature: stand_in(s.seq),
            }),
            ExitEffect::SendStatement(_) | ExitEffect::Refused { .. } => None,
        }
    }
}

pub(super) struct Exit;

impl Scenario for Exit {
    type Machine = ExitMachine;
    type World = ExitWorld;

    const MUST_SEE: &'static [&'static str] =
        &["PricesSet", "Accrued", "CounterReset", "StatementIssued", "StatementSigned"];

    fn world() -> ExitWorld {
        ExitWorld { counters: BTreeMap::new(), signer_up: true }
    }

    fn initial() -> ExitLedger {
        ExitLedger::default()
    }

    fn start(state: ExitLedger, at: Stamp) -> ExitMachine {
        let config = ExitConfig { address: Address([0xee; 20]), poll_ms: 1_000, statement_ms: 4_000 };
        ExitMachine::new(config, state, at)
    }

    fn kind(event: &ExitEvent) -> &'static str {
        kind(event)
    }
}

// ---- the user's role ----

const EXIT_KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [8; 32];
const ME: Address = Address([0x33; 20]);
/// 1%.
const TOLERANCE_PPM: u32 = 10_000;

/// The addresses of the two keys (deriving them costs a scalar multiplication).
fn exits() -> (Address, Address) {
    static EXITS: OnceLock<(Address, Address)> = OnceLock::new();
    *EXITS.get_or_init(|| (address_for_test(&EXIT_KEY), address_for_test(&OTHER_KEY)))
}

/// How the exit's next statement departs from the truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lie {
    Honest,
    /// More download, or more amount, than it counted.
    Download(u16),
    Amount(u16),
    /// Less download than in an earlier statement.
    Shrunk,
    /// The seq of an earlier statement.
    Stale,
    OtherSigner,
    Garbage,
    OtherUser,
    /// Signed by another exit, which the user does not use.
    OtherExit,
}

#[derive(Clone, Debug)]
pub(super) enum ExitUserAction {
    Bind {
        ours: bool,
    },
    Quote {
        exit: u8,
        path: u8,
    },
    /// `lost_permille` of `down` is lost on the way (the exit counted it, we did not); our
    /// counters reach the machine unless `unreported`.
    Traffic {
        down: u16,
        lost_permille: u8,
        up: u16,
        unreported: bool,
    },
    Statement(Lie),
    /// The last statement, sent again.
    Again,
}

impl Arbitrary for ExitUserAction {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 20 {
            0 => ExitUserAction::Bind { ours: u8::arbitrary(g) % 4 != 0 },
            1..=4 => ExitUserAction::Quote { exit: u8::arbitrary(g) % 4, path: u8::arbitrary(g) % 4 },
            5..=13 => ExitUserAction::Traffic {
                down: u16::arbitrary(g),
                // Mostly within the 1% tolerance, now and then beyond it.
                lost_permille: if u8::arbitrary(g) % 8 == 0 { 50 } else { u8::arbitrary(g) % 10 },
                up: u16::arbitrary(g),
                unreported: u8::arbitrary(g) % 8 == 0,
            },
            // Statements are few: signing and verifying are slow in debug builds.
            14..=17 => ExitUserAction::Statement(match u8::arbitrary(g) % 16 {
                0..=7 => Lie::Honest,
                8 => Lie::Download(u16::arbitrary(g) | 1),
                9 => Lie::Amount(u16::arbitrary(g) | 1),
                10 => Lie::Shrunk,
                11 => Lie::Stale,
                12 => Lie::OtherSigner,
                13 => Lie::Garbage,
                14 => Lie::OtherUser,
                _ => Lie::OtherExit,
            }),
            _ => ExitUserAction::Again,
        }
    }
}

/// The exit the user uses, as it counts (honestly), and what the user counts.
#[derive(Debug, Default)]
pub(super) struct UsedExitWorld {
    /// What the exit counted: download sent, upload received, and the amount at its prices.
    sent_down: u64,
    got_up: u64,
    amount: u128,
    prices: (u64, u64),
    /// What the user counted.
    received: u64,
    sent_up: u64,
    seq: u64,
    last: Option<SignedStatement>,
}

impl World<ExitUserMachine> for UsedExitWorld {
    type Action = ExitUserAction;

    fn act(&mut self, _at: Stamp, action: &ExitUserAction) -> Vec<ExitUserInput> {
        let (exit, other) = exits();
        match *action {
            ExitUserAction::Bind { ours } => {
                vec![ExitUserInput::Bind { exit: if ours { exit } else { other } }]
            }
            ExitUserAction::Quote { exit: e, path } => {
                self.prices = (e.into(), path.into());
                vec![ExitUserInput::Quoted {
                    exit,
                    exit_price_per_byte: e.into(),
                    path_price_per_byte: path.into(),
                }]
            }
            ExitUserAction::Traffic { down, lost_permille, up, unreported } => {
                let lost = u64::from(down) * u64::from(lost_permille) / 1000;
                let (down, up) = (u64::from(down), u64::from(up));
                self.sent_down += down + lost;
                self.received += down;
                self.got_up += up;
                self.sent_up += up;
                self.amount += accrual_amount(down + lost, up, self.prices.0, self.prices.1).expect("small");
                if unreported {
                    return vec![];
                }
                vec![ExitUserInput::OwnCounters { exit, rx_bytes: self.received, tx_bytes: self.sent_up }]
            }
            ExitUserAction::Statement(lie) => {
                self.seq += 1;
                let mut s = Statement {
                    user: ME,
                    exit,
                    seq: self.seq,
                    download_bytes: self.sent_down,
                    upload_bytes: self.got_up,
                    amount_due: Amount(self.amount),
                };
                let mut key = EXIT_KEY;
                match lie {
                    Lie::Honest | Lie::Garbage => {}
                    Lie::Download(more) => s.download_bytes += u64::from(more),
                    Lie::Amount(more) => s.amount_due.0 += u128::from(more),
                    Lie::Shrunk => {
                        s.download_bytes = s.download_bytes.saturating_sub(1 + s.download_bytes / 2)
                    }
                    Lie::Stale => s.seq = self.seq.saturating_sub(2),
                    Lie::OtherSigner => key = OTHER_KEY,
                    Lie::OtherUser => s.user = Address([0x44; 20]),
                    Lie::OtherExit => {
                        s.exit = other;
                        key = OTHER_KEY;
                    }
                }
                let signature =
                    if lie == Lie::Garbage { Signature([3; 65]) } else { sign_for_test(&key, &s) };
                let signed = SignedStatement { statement: s, signature };
                self.last = Some(signed);
                vec![ExitUserInput::Statement(signed)]
            }
            ExitUserAction::Again => self.last.map(ExitUserInput::Statement).into_iter().collect(),
        }
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<ExitUserEffect>) -> Option<ExitUserInput> {
        match effect.action {
            ExitUserEffect::Owe { .. } => None,
        }
    }
}

pub(super) struct ExitUser;

impl Scenario for ExitUser {
    type Machine = ExitUserMachine;
    type World = UsedExitWorld;

    // Signing and verifying are slow in debug builds: fewer cases.
    const CASES: u64 = 80;
    // No timers: a wait only moves the clock.
    const WAITS: u64 = 5;
    const MUST_SEE: &'static [&'static str] = &["Bound", "Quoted", "StatementAccepted", "StatementDisputed"];

    fn world() -> UsedExitWorld {
        UsedExitWorld::default()
    }

    fn initial() -> ExitLedger {
        ExitLedger::default()
    }

    /// It is told at every start which exit it uses (from configuration); a bound exit is
    /// recorded once.
    fn start(state: ExitLedger, at: Stamp) -> ExitUserMachine {
        let mut m = ExitUserMachine::new(ExitUserConfig { address: ME, tolerance_ppm: TOLERANCE_PPM }, state);
        m.handle(at, ExitUserInput::Bind { exit: exits().0 });
        m
    }

    fn kind(event: &ExitEvent) -> &'static str {
        kind(event)
    }
}
