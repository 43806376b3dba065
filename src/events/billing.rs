//! The vocabulary of billing: pay per forward, payments on chain, enforcement.
//!
//! Every node sets a relay fee per byte. A sender pays its next hop, for every byte it sends
//! through it, the price that hop advertised for the destination (its fee plus the price of
//! its own route). The payer counts from its tx counter; the payee expects from its rx counter
//! at the lowest price it advertised while those bytes could have been priced. Loss makes
//! tx ≥ rx, so loss shows up as overpayment, which is credit, never a dispute. Amounts come
//! only from counters and prices in events; nothing depends on time.

use super::chain::{Address, Amount, ChainObservation, PaymentId, TxHash};
use super::usage::{CounterSample, Link, NeighbourId};
use serde::{Deserialize, Serialize};

/// When to pay and when to enforce, in base units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Pay a neighbour once what we owe it exceeds this.
    pub pay: Amount,
    /// Throttle a neighbour that owes us more than this; lifted when its debt falls back.
    /// Must leave room for an honest payer's threshold, counter lag and payments in flight:
    /// configuration refuses `enforce < 2 × pay`.
    pub enforce: Amount,
}

numbered_enum! {
    /// How hard a neighbour's tunnel is throttled for unpaid debt.
    #[derive(Default)]
    pub enum Enforcement ("enforcement level") {
        #[default]
        None = 0,
        /// Shaped to a trickle until it pays.
        Throttled = 1,
    }
}

numbered_enum! {
    /// Why a payment did not happen.
    pub enum PaymentFailure ("payment failure") {
        /// The chain used our nonce for a transaction that is none of ours (the key is used
        /// elsewhere): nothing of this payment moved.
        NonceTaken = 1,
        /// Included but reverted (an ERC-20 transfer that failed): nothing moved, nonce used.
        Reverted = 2,
    }
}

/// What an operator may tell billing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    SetFee {
        fee_per_byte: u64,
    },
    SetThresholds(Thresholds),
    /// Write off part of what a neighbour owes us. Always explicit, always logged.
    Forgive {
        neighbour: NeighbourId,
        amount: Amount,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingInput {
    /// Cumulative per-link counters (answer to `ReadCounters`).
    Counters(Vec<CounterSample>),
    /// The price the neighbour on `link` charges us for its destination: what it advertised
    /// to us (`None`: unpriced).
    PriceQuoted {
        link: Link,
        price_per_byte: Option<u64>,
    },
    /// The price we advertised to the neighbour on `link` for its destination.
    PriceAdvertised {
        link: Link,
        price_per_byte: u64,
    },
    /// The neighbour's payment address, from its authenticated identity.
    BindNeighbour {
        neighbour: NeighbourId,
        address: Address,
    },
    Operator(OperatorCommand),
    Chain(ChainObservation),
    /// We accepted a statement from our exit, reached through the tunnel of `neighbour`:
    /// `amount_due` is the cumulative amount it bills us (the user side of
    /// `machines::exit`). The increase since the last one is owed to the exit and paid
    /// like any debt.
    ExitStatementAccepted {
        neighbour: NeighbourId,
        amount_due: Amount,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BillingTimer {
    /// Read the counters.
    Poll,
    /// Close the usage window: write records, settle, enforce.
    Window,
    /// Ask the chain about the head, our payment and incoming transfers.
    Chain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingEffect {
    ReadCounters,
    Chain(super::chain::ChainCommand),
    /// Shape the neighbour's tunnel (the shaper executes it).
    Enforce {
        neighbour: NeighbourId,
        level: Enforcement,
    },
    /// An operator command or configuration was refused; the reason is for the operator.
    Refused {
        reason: String,
    },
}

/// What the billing machine records: the usage records its accrual writes, and billing facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingRecord {
    Usage(super::usage::UsageEvent),
    Billing(BillingEvent),
}

/// Durable billing facts (usage records are [`super::usage::UsageEvent`]s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingEvent {
    /// Our own payment address (recorded at start when it differs): it names this node in
    /// disputes, where two logs are aligned by the addresses they pay and are paid from.
    IdentitySet {
        address: Address,
    },
    NeighbourBound {
        neighbour: NeighbourId,
        address: Address,
    },
    FeeSet {
        fee_per_byte: u64,
    },
    /// We advertised a new price to the neighbour on `link` for its destination. The lowest
    /// price in force since the link's previous usage record prices its rx bytes.
    PriceAdvertised {
        link: Link,
        price_per_byte: u64,
    },
    ThresholdsSet(Thresholds),
    /// We intend to pay `amount` to `to`. Durable before anything leaves the node.
    PaymentIntended {
        id: PaymentId,
        neighbour: NeighbourId,
        to: Address,
        amount: Amount,
    },
    /// The transfer was signed with `nonce` into `raw` with hash `tx_hash`; durable before it is
    /// broadcast, so a restart can find it on chain or send the very same bytes again.
    PaymentSigned {
        id: PaymentId,
        nonce: u64,
        tx_hash: TxHash,
        raw: Vec<u8>,
    },
    /// Included at `block` and buried under the configured number of confirmations.
    PaymentConfirmed {
        id: PaymentId,
        block: u64,
    },
    PaymentFailed {
        id: PaymentId,
        failure: PaymentFailure,
        nonce_used: bool,
    },
    /// A transfer from a neighbour's bound address to us, buried under the confirmations.
    PaymentReceived {
        neighbour: NeighbourId,
        tx_hash: TxHash,
        log_index: u32,
        amount: Amount,
        block: u64,
    },
    /// Incoming transfers were scanned up to this block.
    IncomingScanned {
        to_block: u64,
    },
    /// What the neighbour paid beyond what we expected (loss on the link, or a price it
    /// believed higher): kept as its credit, never disputed.
    CreditApplied {
        neighbour: NeighbourId,
        amount: Amount,
    },
    Forgiven {
        neighbour: NeighbourId,
        amount: Amount,
        reason: String,
    },
    /// Our exit's accepted statements now bill us `amount_due` in total (cumulative).
    ExitDue {
        neighbour: NeighbourId,
        amount_due: Amount,
    },
    EnforcementChanged {
        neighbour: NeighbourId,
        level: Enforcement,
    },
}
