//! The vocabulary of discovery: datagrams in, datagrams out, and what it tells the tunnel
//! machine (`tunnel::DiscoveryReport`). Discovery decides nothing that must last: the facts
//! billing needs (who a neighbour is, its tunnel) are the tunnel machine's events.

use super::identity::NodeId;
use super::tunnel::{DiscoveryReport, Via};
use core::net::SocketAddr;

/// What discovery is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryInput {
    /// A datagram that arrived on `via` from `from` (a link-local source carries the arrival
    /// interface as its scope id).
    Packet { via: Via, from: SocketAddr, bytes: Vec<u8> },
    /// From the tunnel machine: the port reserved for `node` on `via`.
    PortReserved { node: NodeId, via: Via, port: u16 },
    /// From the tunnel machine: start again with `node` on `via` (its tunnel went stale, was
    /// rebuilt or closed).
    Forget { node: NodeId, via: Via },
}

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTo {
    /// The discovery group on the via's interface.
    Multicast,
    Unicast(SocketAddr),
}

/// What discovery asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryEffect {
    Send {
        via: Via,
        to: SendTo,
        bytes: Vec<u8>,
    },
    /// To the tunnel machine.
    Report(DiscoveryReport),
}

/// Discovery's deadlines. Vias are named by their index in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiscoveryTimer {
    /// Announce on every via.
    Announce,
    /// Resend our offer to `node` on via number `via` (or give up).
    Offer { via: u16, node: NodeId },
    /// Forget candidates not heard for a while.
    Sweep,
}

/// Every refusal, counted by reason, and what went well: visible in the node's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveryCounters {
    pub received: u64,
    /// Over the interface's rate limit (checked before any cryptography).
    pub rate_limited_interface: u64,
    /// Over the source address's rate limit.
    pub rate_limited_source: u64,
    /// Not a discovery message, an unknown version, a wrong length.
    pub malformed: u64,
    /// The node id is not a public key, or the signature does not verify.
    pub bad_signature: u64,
    /// The MAC does not verify: the sender does not hold the WireGuard key it claims.
    pub bad_mac: u64,
    /// An announce whose (boot, sequence) is not newer than one already seen, or any message
    /// from an older boot.
    pub stale: u64,
    /// An offer or accept echoing a nonce we did not just send (a replay, or too late).
    pub replayed: u64,
    /// Addressed to another node.
    pub not_for_us: u64,
    /// An accept we did not ask for, or a message that does not fit the exchange's phase.
    pub unexpected: u64,
    /// A new candidate while the table is full.
    pub table_full: u64,
    /// A WireGuard key already claimed by another node (signed and MACed by a node that holds
    /// it: two identities sharing one WireGuard key).
    pub key_conflict: u64,
    /// Our own messages, looped back.
    pub own: u64,
    /// Exchanges completed.
    pub agreed: u64,
}
