//! The vocabulary of the usage machine: cumulative byte counters per (neighbour, destination)
//! in, usage records out. Billing grows from it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A neighbour, by the small id the node gives each tunnel peer. Ids are compact on flash; the
/// binding of an id to a neighbour's identity is recorded when tunnels arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NeighbourId(pub u32);

/// A destination prefix, by the small id the node interns it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DestinationId(pub u32);

/// The unit that counters, prices and usage are kept per: traffic to one destination through
/// one neighbour's tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    pub neighbour: NeighbourId,
    pub destination: DestinationId,
}

impl Link {
    pub const fn new(neighbour: u32, destination: u32) -> Self {
        Self { neighbour: NeighbourId(neighbour), destination: DestinationId(destination) }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}/d{}", self.neighbour.0, self.destination.0)
    }
}

/// One reading of a link's cumulative, monotonic byte counters (nftables counters on the
/// tunnel interface). A value lower than the previous one means the counter was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSample {
    pub link: Link,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageInput {
    /// Counters read from the kernel (answer to [`UsageEffect::ReadCounters`]).
    Counters(Vec<CounterSample>),
    /// The price per byte the neighbour on `link` charges for its destination, i.e. what it
    /// advertised to us; it prices our tx bytes from now on (`None`: unpriced).
    PriceSelected { link: Link, price_per_byte: Option<u64> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UsageTimer {
    /// Time to read the counters.
    Poll,
    /// Time to close the usage window and write records.
    Window,
}

/// Bytes carried on one link since the previous record.
///
/// It carries one price: what the neighbour charges us per tx byte, which comes from outside
/// the log (its advertisement) and so must be recorded. The price its rx bytes are expected
/// to pay is ours, already in the log as billing `PriceAdvertised` events: the billing fold
/// computes it (the lowest price advertised since the link's previous record), which keeps
/// this record within 32 bytes on flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub link: Link,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// What the neighbour charges per tx byte (base units); `None`: unpriced, or written by
    /// event version 1, which carried no price.
    pub price_per_byte: Option<u64>,
}

impl UsageRecord {
    /// What we owe for the tx bytes (u64 × u64 always fits in u128).
    pub fn tx_amount(&self) -> u128 {
        u128::from(self.tx_bytes) * u128::from(self.price_per_byte.unwrap_or(0))
    }

    /// The money at risk if this record were lost: what we owe for it.
    pub fn value(&self) -> u128 {
        self.tx_amount()
    }
}

/// A counter went backwards. The directions that reset start again from zero; the bytes they
/// counted since the last reading before the reset are unknowable and are not invented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterReset {
    pub link: Link,
    pub tx_reset: bool,
    pub rx_reset: bool,
    /// The counter values that had been accounted for before the reset.
    pub tx_counted: u64,
    pub rx_counted: u64,
    /// The first readings after the reset.
    pub tx_observed: u64,
    pub rx_observed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsageEvent {
    Accrued(UsageRecord),
    CounterReset(CounterReset),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageEffect {
    /// Read every link's counters and answer with [`UsageInput::Counters`].
    ReadCounters,
    /// A usage record that is now durable, for whoever settles it (billing, the neighbour).
    Report(UsageRecord),
}
