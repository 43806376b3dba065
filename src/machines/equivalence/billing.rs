//! The billing machine, payments included, against the chain twin ([`ChainTwin`]).
//!
//! Its world: the kernel counters of three links to two neighbours (traffic, resets), the
//! prices quoted to us and advertised by us, the operator (thresholds, some refused; fees;
//! forgiveness, some refused), accepted exit statements, and the chain. The chain answers
//! every command at once, or, while it is slow, holds them until an answer or a failure is
//! delivered; it mines a block before answering each head query, and on its own; it reorgs;
//! its minimum fee rises and falls (stuck payments, then replacements); RPC failures come and
//! go; our account is topped up; neighbours pay us, and so does a stranger; our key is used
//! elsewhere (a payment beaten to its nonce fails); and the token blocks a recipient (the
//! second neighbour, at first): our transfers to it revert once included (receipts say so;
//! the twin's balances do not follow, and this scenario does not read them).

use super::usage::{link, Kernel};
use super::{Scenario, World};
use crate::events::billing::{
    BillingEffect, BillingEvent, BillingInput, BillingRecord, OperatorCommand, PaymentFailure, Thresholds,
};
use crate::events::chain::{Address, Amount, ChainCommand, ChainObservation, Inclusion, PaymentId, TxHash};
use crate::events::usage::{NeighbourId, UsageEvent};
use crate::events::{Effect, Fold, Stamp};
use crate::machines::billing::{BillingConfig, BillingMachine, BillingState};
use crate::machines::usage::UsageConfig;
use crate::sim::chain::{ChainFaults, ChainTwin};
use quickcheck::{Arbitrary, Gen};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const US: Address = Address([0xaa; 20]);
const STRANGER: Address = Address([0x5e; 20]);

/// The two neighbours of [`link`]'s links.
fn neighbour(n: u8) -> (NeighbourId, Address) {
    let n = n % 2 + 1;
    (NeighbourId(u32::from(n)), Address([n; 20]))
}

#[derive(Clone, Debug)]
pub(super) enum BillingAction {
    Traffic {
        link: u8,
        tx: u16,
        rx: u16,
    },
    Reset {
        link: u8,
    },
    /// The shell reads the counters on its own.
    Read,
    Quote {
        link: u8,
        price: Option<u8>,
    },
    Advertise {
        link: u8,
        price: u8,
    },
    /// The neighbour's identity binds it to its address, or to the stranger's.
    Bind {
        neighbour: u8,
        elsewhere: bool,
    },
    /// Enforcement at `enforce_times` the pay threshold (refused below twice).
    Thresholds {
        pay: u16,
        enforce_times: u8,
    },
    Fee {
        fee: u8,
    },
    Forgive {
        neighbour: u8,
        amount: u16,
        reason: bool,
    },
    /// An exit statement accepted through the neighbour's tunnel, `more` above the last one.
    ExitDue {
        neighbour: u8,
        more: u16,
    },
    Mine,
    Reorg {
        depth: u8,
    },
    /// The neighbour pays us, on chain.
    Pays {
        neighbour: u8,
        amount: u16,
    },
    /// A stranger pays us.
    Stray {
        amount: u16,
    },
    /// Our key signs a transaction elsewhere, with the nonce the chain expects from us next.
    Hijack,
    MinFee {
        fee: u8,
    },
    RpcFailures {
        on: bool,
    },
    /// From now on the chain answers only when told to (or again at once).
    Slow {
        on: bool,
    },
    /// The oldest command held is answered, or fails.
    Answer,
    Fail,
    Fund {
        amount: u16,
    },
    /// The token blocks transfers to the neighbour from now on (they revert), or no longer.
    Blocked {
        neighbour: u8,
        on: bool,
    },
}

impl Arbitrary for BillingAction {
    fn arbitrary(g: &mut Gen) -> Self {
        let l = u8::arbitrary(g) % 3;
        let n = u8::arbitrary(g) % 2;
        match u8::arbitrary(g) % 40 {
            0..=6 => BillingAction::Traffic {
                link: l,
                tx: u16::arbitrary(g) % 2_000,
                rx: u16::arbitrary(g) % 2_000,
            },
            7 => BillingAction::Reset { link: l },
            8 => BillingAction::Read,
            9..=11 => BillingAction::Quote {
                link: l,
                price: (u8::arbitrary(g) % 6 != 0).then(|| u8::arbitrary(g) % 5),
            },
            12 | 13 => BillingAction::Advertise { link: l, price: u8::arbitrary(g) % 5 },
            14 | 15 => BillingAction::Bind { neighbour: n, elsewhere: u8::arbitrary(g) % 4 == 0 },
            16..=18 => BillingAction::Thresholds {
                pay: 100 + u16::arbitrary(g) % 2_000,
                enforce_times: *g.choose(&[1, 2, 3, 3]).expect("choices"),
            },
            19 => BillingAction::Fee { fee: u8::arbitrary(g) % 4 },
            20 | 39 => BillingAction::Forgive {
                neighbour: n,
                amount: u16::arbitrary(g) % 1_000,
                reason: u8::arbitrary(g) % 4 != 0,
            },
            21 => BillingAction::ExitDue { neighbour: n, more: u16::arbitrary(g) % 3_000 },
            22 | 23 => BillingAction::Mine,
            24 => BillingAction::Reorg { depth: 1 + u8::arbitrary(g) % 3 },
            25..=27 => BillingAction::Pays { neighbour: n, amount: 1 + u16::arbitrary(g) % 5_000 },
            28 => BillingAction::Stray { amount: 1 + u16::arbitrary(g) % 1_000 },
            29 | 30 => BillingAction::Hijack,
            31 => BillingAction::Fund { amount: u16::arbitrary(g) },
            32 => BillingAction::MinFee { fee: *g.choose(&[0, 0, 5, 50]).expect("choices") },
            33 => BillingAction::RpcFailures { on: u8::arbitrary(g) % 3 == 0 },
            34 => BillingAction::Slow { on: bool::arbitrary(g) },
            35 | 36 => BillingAction::Answer,
            37 => BillingAction::Fail,
            38 => BillingAction::Blocked { neighbour: n, on: bool::arbitrary(g) },
            _ => unreachable!("a number below 40"),
        }
    }
}

/// The chain twin, the kernel counters, and what the other chain accounts do.
#[derive(Debug)]
pub(super) struct ChainWorld {
    chain: ChainTwin,
    kernel: Kernel,
    slow: bool,
    /// Recipients the token refuses: our transfers to them revert once included.
    blocked: BTreeSet<Address>,
    /// Whom each of our signed transfers pays.
    recipients: BTreeMap<TxHash, Address>,
    /// Commands waiting for an answer while the chain is slow, oldest first.
    held: VecDeque<ChainCommand>,
    /// The next nonce of the other senders (neighbours, the stranger).
    nonces: BTreeMap<Address, u64>,
    /// What each neighbour's exit statements bill us so far.
    exit_due: BTreeMap<NeighbourId, u128>,
}

impl ChainWorld {
    /// Answers one of our commands; a block is mined before every head query is answered.
    fn answer(&mut self, command: ChainCommand) -> BillingInput {
        if command == ChainCommand::QueryHead {
            self.chain.mine();
        }
        let to = match command {
            ChainCommand::Sign { to, .. } => Some(to),
            _ => None,
        };
        match self.chain.handle(US, command) {
            ChainObservation::Signed { id, tx_hash, raw } => {
                self.recipients.extend(to.map(|to| (tx_hash, to)));
                BillingInput::Chain(ChainObservation::Signed { id, tx_hash, raw })
            }
            ChainObservation::Receipt { id, tx_hash, included: Some(inclusion) }
                if self.recipients.get(&tx_hash).is_some_and(|to| self.blocked.contains(to)) =>
            {
                let included = Some(Inclusion { success: false, ..inclusion });
                BillingInput::Chain(ChainObservation::Receipt { id, tx_hash, included })
            }
            observation => BillingInput::Chain(observation),
        }
    }

    /// `from` signs and sends a transfer with `nonce` (its own count unless given).
    fn transfer(&mut self, from: Address, to: Address, amount: u128, nonce: Option<u64>) {
        let nonce = nonce.unwrap_or_else(|| self.nonces.get(&from).copied().unwrap_or(0));
        let sign = ChainCommand::Sign { id: PaymentId(0), to, amount: Amount(amount), nonce };
        let ChainObservation::Signed { raw, .. } = self.chain.handle(from, sign) else { return };
        if let ChainObservation::Sent { .. } =
            self.chain.handle(from, ChainCommand::Send { id: PaymentId(0), raw })
        {
            if from != US {
                self.nonces.insert(from, nonce + 1);
            }
        }
    }
}

impl World<BillingMachine> for ChainWorld {
    type Action = BillingAction;

    fn act(&mut self, _at: Stamp, action: &BillingAction) -> Vec<BillingInput> {
        let one = |input| vec![input];
        match *action {
            BillingAction::Traffic { link: l, tx, rx } => {
                self.kernel.carry(link(l), tx.into(), rx.into());
                vec![]
            }
            BillingAction::Reset { link: l } => {
                self.kernel.reset(link(l), true, true);
                vec![]
            }
            BillingAction::Read => one(BillingInput::Counters(self.kernel.read())),
            BillingAction::Quote { link: l, price } => {
                one(BillingInput::PriceQuoted { link: link(l), price_per_byte: price.map(u64::from) })
            }
            BillingAction::Advertise { link: l, price } => {
                one(BillingInput::PriceAdvertised { link: link(l), price_per_byte: price.into() })
            }
            BillingAction::Bind { neighbour: n, elsewhere } => {
                let (neighbour, address) = neighbour(n);
                one(BillingInput::BindNeighbour {
                    neighbour,
                    address: if elsewhere { STRANGER } else { address },
                })
            }
            BillingAction::Thresholds { pay, enforce_times } => {
                let pay = u128::from(pay);
                one(BillingInput::Operator(OperatorCommand::SetThresholds(Thresholds {
                    pay: Amount(pay),
                    enforce: Amount(pay * u128::from(enforce_times)),
                })))
            }
            BillingAction::Fee { fee } => {
                one(BillingInput::Operator(OperatorCommand::SetFee { fee_per_byte: fee.into() }))
            }
            BillingAction::Forgive { neighbour: n, amount, reason } => {
                one(BillingInput::Operator(OperatorCommand::Forgive {
                    neighbour: neighbour(n).0,
                    amount: Amount(amount.into()),
                    reason: if reason { "goodwill".into() } else { " ".into() },
                }))
            }
            BillingAction::ExitDue { neighbour: n, more } => {
                let neighbour = neighbour(n).0;
                let due = self.exit_due.entry(neighbour).or_default();
                *due += u128::from(more);
                one(BillingInput::ExitStatementAccepted { neighbour, amount_due: Amount(*due) })
            }
            BillingAction::Mine => {
                self.chain.mine();
                vec![]
            }
            BillingAction::Reorg { depth } => {
                self.chain.reorg(depth.into());
                vec![]
            }
            BillingAction::Pays { neighbour: n, amount } => {
                self.transfer(neighbour(n).1, US, amount.into(), None);
                vec![]
            }
            BillingAction::Stray { amount } => {
                self.transfer(STRANGER, US, amount.into(), None);
                vec![]
            }
            BillingAction::Hijack => {
                if let ChainObservation::Nonce { next } = self.chain.handle(US, ChainCommand::QueryNonce) {
                    self.transfer(US, STRANGER, 1, Some(next));
                }
                vec![]
            }
            BillingAction::MinFee { fee } => {
                self.chain.set_min_fee(fee.into());
                vec![]
            }
            BillingAction::RpcFailures { on } => {
                let rpc_failure_ppm = if on { 200_000 } else { 0 };
                self.chain.set_faults(ChainFaults { rpc_failure_ppm, drop_ppm: 0 });
                vec![]
            }
            BillingAction::Slow { on } => {
                self.slow = on;
                vec![]
            }
            BillingAction::Answer => match self.held.pop_front() {
                Some(command) => one(self.answer(command)),
                None => vec![],
            },
            BillingAction::Fail => match self.held.pop_front() {
                Some(command) => one(BillingInput::Chain(ChainObservation::RpcFailed {
                    request: command.request_kind(),
                    reason: "timed out".into(),
                })),
                None => vec![],
            },
            BillingAction::Blocked { neighbour: n, on } => {
                let address = neighbour(n).1;
                if on {
                    self.blocked.insert(address);
                } else {
                    self.blocked.remove(&address);
                }
                vec![]
            }
            BillingAction::Fund { amount } => {
                self.chain.fund(US, u128::from(amount % 20_000));
                vec![]
            }
        }
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<BillingEffect>) -> Option<BillingInput> {
        match effect.action {
            BillingEffect::ReadCounters => Some(BillingInput::Counters(self.kernel.read())),
            BillingEffect::Chain(command) if self.slow => {
                self.held.push_back(command);
                None
            }
            BillingEffect::Chain(command) => Some(self.answer(command)),
            BillingEffect::Enforce { .. } | BillingEffect::Refused { .. } => None,
        }
    }
}

pub(super) struct Billing;

impl Scenario for Billing {
    type Machine = BillingMachine;
    type World = ChainWorld;

    // Cheap cases, and many kinds of events to see in each run.
    const CASES: u64 = 300;
    const WAIT_MS: u64 = 12_000;
    const WAITS: u64 = 30;
    const MUST_SEE: &'static [&'static str] = &[
        "Accrued",
        "CounterReset",
        "NeighbourBound",
        "FeeSet",
        "PriceAdvertised",
        "ThresholdsSet",
        "PaymentIntended",
        "PaymentSigned",
        "PaymentConfirmed",
        // Beaten to its nonce happens too, but in fewer than one case in a hundred.
        "PaymentFailed/Reverted",
        "PaymentReceived",
        "IncomingScanned",
        "CreditApplied",
        "Forgiven",
        "ExitDue",
        "EnforcementChanged",
    ];

    fn world() -> ChainWorld {
        let mut chain = ChainTwin::new(7, ChainFaults::default());
        // Enough for a few payments: then they wait for funds.
        chain.fund(US, 5_000);
        for n in 0..2 {
            chain.fund(neighbour(n).1, 1_000_000_000);
        }
        chain.fund(STRANGER, 1_000_000_000);
        ChainWorld {
            chain,
            kernel: Kernel::default(),
            slow: false,
            // The second neighbour's address starts blocked.
            blocked: BTreeSet::from([neighbour(1).1]),
            recipients: BTreeMap::new(),
            held: VecDeque::new(),
            nonces: BTreeMap::new(),
            exit_due: BTreeMap::new(),
        }
    }

    /// A node whose log already configured it: its identity, thresholds (pay 300, enforce
    /// 900), both neighbours bound and a price advertised on every link.
    fn initial() -> BillingState {
        let mut state = BillingState::default();
        let mut configured = vec![
            BillingEvent::IdentitySet { address: US },
            BillingEvent::ThresholdsSet(Thresholds { pay: Amount(300), enforce: Amount(900) }),
        ];
        for n in 0..2 {
            let (neighbour, address) = neighbour(n);
            configured.push(BillingEvent::NeighbourBound { neighbour, address });
        }
        for l in 0..3 {
            configured.push(BillingEvent::PriceAdvertised { link: link(l), price_per_byte: 1 });
        }
        for event in configured {
            state.apply(&BillingRecord::Billing(event));
        }
        state
    }

    fn start(state: BillingState, at: Stamp) -> BillingMachine {
        let config = BillingConfig {
            usage: UsageConfig { poll_ms: 1_000, window_ms: 5_000 },
            our_address: US,
            confirmations: 2,
            chain_poll_ms: 2_000,
            max_scan_blocks: 4,
            replace_after_polls: 2,
        };
        BillingMachine::new(config, state.usage, state.billing, at)
    }

    fn kind(event: &BillingRecord) -> &'static str {
        match event {
            BillingRecord::Usage(UsageEvent::Accrued(_)) => "Accrued",
            BillingRecord::Usage(UsageEvent::CounterReset(_)) => "CounterReset",
            BillingRecord::Billing(e) => match e {
                BillingEvent::IdentitySet { .. } => "IdentitySet",
                BillingEvent::NeighbourBound { .. } => "NeighbourBound",
                BillingEvent::FeeSet { .. } => "FeeSet",
                BillingEvent::PriceAdvertised { .. } => "PriceAdvertised",
                BillingEvent::ThresholdsSet(_) => "ThresholdsSet",
                BillingEvent::PaymentIntended { .. } => "PaymentIntended",
                BillingEvent::PaymentSigned { .. } => "PaymentSigned",
                BillingEvent::PaymentConfirmed { .. } => "PaymentConfirmed",
                BillingEvent::PaymentFailed { failure: PaymentFailure::Reverted, .. } => {
                    "PaymentFailed/Reverted"
                }
                BillingEvent::PaymentFailed { failure: PaymentFailure::NonceTaken, .. } => {
                    "PaymentFailed/NonceTaken"
                }
                BillingEvent::PaymentReceived { .. } => "PaymentReceived",
                BillingEvent::IncomingScanned { .. } => "IncomingScanned",
                BillingEvent::CreditApplied { .. } => "CreditApplied",
                BillingEvent::Forgiven { .. } => "Forgiven",
                BillingEvent::ExitDue { .. } => "ExitDue",
                BillingEvent::EnforcementChanged { .. } => "EnforcementChanged",
            },
        }
    }
}
