//! The vocabulary of neighbours and their tunnels: what discovery learns, what the tunnel
//! machine decides, and what the WireGuard adapter executes.
//!
//! One WireGuard interface per neighbour and physical link (two radios to the same router give
//! two tunnels, one neighbour), so every tunnel's counters are one neighbour's traffic. The
//! lifecycle of a tunnel is proposed (a port reserved for an exchange in progress) →
//! configured (the adapter applied it) → handshake seen → up (a Babel interface) → stale (no
//! handshake for too long) → removed.

use super::chain::Address;
use super::identity::{NodeId, WgKey};
use super::usage::NeighbourId;
use core::net::{IpAddr, SocketAddr};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a neighbour was found: on one of our physical interfaces (by name), or as a manual
/// peer at a configured address (a neighbour on another network, e.g. across the internet).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Via {
    Link(String),
    Manual(SocketAddr),
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Link(ifname) => f.write_str(ifname),
            Via::Manual(addr) => write!(f, "manual {addr}"),
        }
    }
}

/// A tunnel's number, allocated by the tunnel machine and never reused (the log keeps the
/// next one). Its interface is named `lmt<number>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TunnelNo(pub u32);

/// The prefix of every interface lastmile creates for a tunnel: what it looks for, and
/// removes, after a crash.
pub const TUNNEL_IFNAME_PREFIX: &str = "lmt";

impl TunnelNo {
    pub fn ifname(self) -> String {
        format!("{TUNNEL_IFNAME_PREFIX}{}", self.0)
    }

    /// The tunnel number of one of our interface names (`lmt12` → 12), `None` for others.
    pub fn from_ifname(name: &str) -> Option<TunnelNo> {
        let digits = name.strip_prefix(TUNNEL_IFNAME_PREFIX)?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0') && digits.len() > 1
        {
            return None;
        }
        digits.parse().ok().map(TunnelNo)
    }
}

impl fmt::Display for TunnelNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ifname())
    }
}

numbered_enum! {
    /// Why a tunnel was closed.
    pub enum CloseReason ("tunnel close reason") {
        /// No handshake for the stale time and nothing heard from the neighbour for the GC time.
        Gone = 0,
        /// The neighbour restarted or said it lost its side: the tunnel is rebuilt.
        PeerReset = 1,
        /// The neighbour agreed a different port or WireGuard key: rebuilt with them.
        Changed = 2,
        /// Configured, but no handshake came in time, too many times in a row.
        NoHandshake = 3,
        /// The adapter could not configure it.
        Failed = 4,
        /// Found open at start: a tunnel of a previous run (its interface is gone or removed).
        Restart = 5,
    }
}

/// Durable facts of the tunnel machine: what billing and a dispute need to know about
/// neighbours (who they are and how they are paid) and when their tunnels existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunnelEvent {
    /// A neighbour identity got its billing id. Once per identity, ever: the same router on
    /// two radios, or back after a restart, is the same neighbour.
    NeighbourBound {
        neighbour: NeighbourId,
        node: NodeId,
        payment: Address,
    },
    /// A tunnel to `neighbour` was opened on `via`, listening on `listen_port`, to the peer's
    /// WireGuard key at `endpoint`.
    TunnelOpened {
        tunnel: TunnelNo,
        neighbour: NeighbourId,
        via: Via,
        listen_port: u16,
        peer_key: WgKey,
        endpoint: SocketAddr,
    },
    TunnelClosed {
        tunnel: TunnelNo,
        reason: CloseReason,
    },
}

/// What the adapter must make true for one tunnel (idempotent: applying it again changes
/// nothing; applying a changed one updates the interface in place). The node's WireGuard
/// private key is the adapter's, never in an effect. The one peer's allowed IPs are all
/// addresses (`::/0`, `0.0.0.0/0`): routing decides what goes into which tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    pub ifname: String,
    pub listen_port: u16,
    pub peer_key: WgKey,
    /// The peer's address and port: `[fe80::…%phys]:port` on a link, the configured address
    /// for a manual peer.
    pub endpoint: SocketAddr,
    pub keepalive_s: u16,
    /// The node's mesh /128 and the tunnel's link-local /64 (Babel runs on it).
    pub addresses: Vec<(IpAddr, u8)>,
    pub mtu: u32,
}

/// What the adapter read back about one tunnel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Time since the last completed handshake, `None` if there was none.
    pub last_handshake_ago_ms: Option<u64>,
}

/// What discovery tells the tunnel machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryReport {
    /// A verified neighbour wants a tunnel on `via`: reserve a port for it (answered with
    /// [`TunnelEffect::PortReserved`]).
    Candidate { node: NodeId, via: Via },
    /// The exchange completed: both sides agreed on ports and keys.
    Agreed { node: NodeId, via: Via, peer_key: WgKey, endpoint: SocketAddr, local_port: u16, peer_boot: u64 },
    /// A fresh, verified announcement from `node` on `via` (it is still there).
    Heard { node: NodeId, via: Via, peer_boot: u64 },
}

/// What the tunnel machine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelInput {
    Discovery(DiscoveryReport),
    /// The adapter applied (or failed to apply) a [`TunnelEffect::Configure`].
    Configured {
        tunnel: TunnelNo,
        result: Result<(), String>,
    },
    /// The adapter removed (or failed to remove) an interface.
    Removed {
        ifname: String,
        result: Result<(), String>,
    },
    /// What the adapter read, per tunnel; `None`: the interface does not exist.
    Stats(Vec<(TunnelNo, Option<TunnelStats>)>),
    /// At start: the interfaces named like ours that exist (leftovers of a previous run).
    Found(Vec<String>),
}

/// What the tunnel machine asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelEffect {
    /// To discovery: the port reserved on our side for `node` on `via`.
    PortReserved {
        node: NodeId,
        via: Via,
        port: u16,
    },
    /// To discovery: forget the exchange with `node` on `via` and start again when it is heard.
    Forget {
        node: NodeId,
        via: Via,
    },
    /// To the adapter (released when the opening is durable).
    Configure(TunnelSpec),
    Remove {
        ifname: String,
    },
    /// To the adapter: read the stats of these tunnels.
    Read(Vec<TunnelNo>),
    /// To routing: run Babel on this tunnel (it is up), or stop.
    BabelUp {
        ifname: String,
    },
    BabelDown {
        ifname: String,
    },
    /// To billing: this neighbour is paid at this address.
    Bind {
        neighbour: NeighbourId,
        payment: Address,
    },
}

/// The tunnel machine's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TunnelTimer {
    /// Read every tunnel's stats.
    Read,
    /// The next deadline of one tunnel (handshake expected, stale, GC, retry).
    Tunnel(TunnelNo),
    /// A reserved port whose exchange did not complete in time.
    Reservation(u16),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_round_trip_and_others_are_not_ours() {
        for n in [0, 7, 12, u32::MAX] {
            let name = TunnelNo(n).ifname();
            assert!(name.len() <= 15, "IFNAMSIZ: {name}");
            assert_eq!(TunnelNo::from_ifname(&name), Some(TunnelNo(n)));
        }
        for other in ["lmt", "lmt01", "lmtx", "lmt-1", "wg0", "lmt4294967296", "eth0"] {
            assert_eq!(TunnelNo::from_ifname(other), None, "{other}");
        }
    }
}
