//! The routing machine's vocabulary ([`crate::machines::babel::BabelMachine`], the Babel
//! speaker): what it is told ([`RoutingInput`]), what it asks the shell to do
//! ([`RoutingEffect`]), its deadlines ([`RoutingTimer`]) and its events ([`RoutingEvent`]).
//!
//! Routes themselves are soft state (re-learnt from neighbours in seconds), so the only events
//! are what the machine learnt about its neighbours' honesty: the evidence that made the node
//! distrust a neighbour is durable, and it explains routing choices later.

use crate::wire::babel::Prefix;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What kind of link an interface is; it decides the cost function and the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// A wired link: 2-out-of-3 (RFC 8966 §A.2.1), split horizon.
    Wired,
    /// A WireGuard tunnel to one neighbour: like wired, with long periodic update intervals
    /// (triggered updates carry the changes).
    Tunnel,
    /// A lossy link: ETX (RFC 8966 §A.2.2), no split horizon.
    Wireless,
}

/// Per-interface configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub kind: LinkKind,
    pub hello_interval_ms: u64,
    /// Periodic full updates; triggered updates carry changes in between.
    pub update_interval_ms: u64,
    /// The rxcost advertised while the link is up (96 for wired, 256 for wireless).
    pub nominal_cost: u16,
    pub split_horizon: bool,
}

impl InterfaceConfig {
    /// RFC 8966 defaults for a wired link: Hello every 4 s, updates every 16 s.
    pub fn wired() -> Self {
        Self {
            kind: LinkKind::Wired,
            hello_interval_ms: 4_000,
            update_interval_ms: 16_000,
            nominal_cost: 96,
            split_horizon: true,
        }
    }

    /// A WireGuard tunnel to one neighbour: Hellos as on wired links, but periodic updates
    /// only every 60 s; changes go out as triggered updates when they happen.
    pub fn tunnel() -> Self {
        Self { kind: LinkKind::Tunnel, update_interval_ms: 60_000, ..Self::wired() }
    }

    /// A lossy radio link: ETX, no split horizon.
    pub fn wireless() -> Self {
        Self { kind: LinkKind::Wireless, nominal_cost: 256, split_horizon: false, ..Self::wired() }
    }

    pub fn with_hello_ms(self, hello_interval_ms: u64) -> Self {
        Self { hello_interval_ms, ..self }
    }

    pub fn with_update_ms(self, update_interval_ms: u64) -> Self {
        Self { update_interval_ms, ..self }
    }
}

/// Where packets to a destination go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Via {
    pub ifindex: u32,
    /// The neighbour's link-local address (whom billing pays).
    pub neighbour: Ipv6Addr,
    /// The next hop for the kernel: the neighbour, or the address its Update named.
    pub next_hop: IpAddr,
}

/// A change of the selected route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChange {
    pub prefix: Prefix,
    /// `None`: the destination is unreachable now (remove the kernel route).
    pub via: Option<Via>,
    /// The path price the neighbour advertised (what it charges us per byte); `None`:
    /// unpriced.
    pub price_per_byte: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTo {
    /// ff02::1:6 on the interface.
    Multicast,
    /// A neighbour's link-local address.
    Unicast(Ipv6Addr),
}

/// End-to-end measurements toward a destination over the selected path (the prober's
/// answer to [`RoutingEffect::Probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    pub prefix: Prefix,
    pub sent: u32,
    pub received: u32,
    /// Mean RTT of the received probes (µs).
    pub rtt_us: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutingInput {
    InterfaceUp {
        ifindex: u32,
        link_local: Ipv6Addr,
        config: InterfaceConfig,
    },
    InterfaceDown {
        ifindex: u32,
    },
    /// A datagram from port 6696 with a link-local source.
    Received {
        ifindex: u32,
        source: Ipv6Addr,
        bytes: Vec<u8>,
    },
    /// Announce a prefix of this node (its mesh address, a LAN, an exit's default route).
    Originate(Prefix),
    Withdraw(Prefix),
    /// The destinations whose traffic this node forwards or sends (from its counters):
    /// these are probed end to end.
    InUse(Vec<Prefix>),
    Probed(ProbeReport),
    /// Retract everything (wildcard retraction) before the daemon stops.
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutingEffect {
    Send {
        ifindex: u32,
        to: SendTo,
        bytes: Vec<u8>,
    },
    Route(RouteChange),
    /// Measure loss and RTT end to end toward the destination over its selected path, then
    /// answer with [`RoutingInput::Probed`].
    Probe {
        prefix: Prefix,
    },
    /// The limits refused something since the last report ([`crate::machines::babel::limits`]): for the
    /// operator. At most one every [`crate::machines::babel::limits::REPORT_INTERVAL_MS`], and a last one at shutdown.
    Limits(LimitsReport),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoutingTimer {
    Hello(u32),
    Update(u32),
    Neighbours,
    Routes,
    Requests,
    Probes,
    /// A refusal report is due ([`RoutingEffect::Limits`]).
    Report,
}

/// What the limits refused or forgot, counted since the machine started (part of
/// [`crate::machines::babel::BabelStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Sources heard repeatedly but not admitted: the interface's or the node's neighbour
    /// table was full.
    pub neighbours_full: u64,
    /// Sources heard repeatedly but not admitted: no admission token on the interface.
    pub neighbours_rate: u64,
    /// Candidates forgotten for newer ones (the candidate table was full).
    pub candidates_evicted: u64,
    /// TLVs from strangers ignored: everything but their multicast Hellos (and padding).
    pub stranger_tlvs: u64,
    /// Updates for new destinations refused: the neighbour gave us its bound already.
    pub routes_per_neighbour: u64,
    /// Updates for new destinations refused: the node holds its bound of route entries.
    pub routes_total: u64,
    /// Updates for new destinations refused: the node holds its bound of destinations.
    pub destinations: u64,
    /// Martian prefixes ([`crate::wire::Prefix::martian`]) refused in Updates, and
    /// in `Originate`.
    pub martians: u64,
}

impl Refusals {
    /// Every refusal, of every kind.
    pub fn total(&self) -> u64 {
        self.neighbours_full
            + self.neighbours_rate
            + self.candidates_evicted
            + self.stranger_tlvs
            + self.routes_per_neighbour
            + self.routes_total
            + self.destinations
            + self.martians
    }
}

/// The state of the limits as the machine reports it ([`RoutingEffect::Limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsReport {
    pub refused: Refusals,
    /// Neighbours held now, on all interfaces.
    pub neighbours: usize,
    /// Candidates remembered now, on all interfaces.
    pub candidates: usize,
    /// Route entries held now.
    pub route_entries: u32,
    /// Destinations held now.
    pub destinations: usize,
}

/// One end-to-end probe report judged against what the neighbour advertised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEvidence {
    pub ifindex: u32,
    /// The neighbour's link-local address.
    #[serde(with = "prefix_bytes::bin16")]
    pub neighbour: [u8; 16],
    #[serde(with = "prefix_bytes")]
    pub prefix: Prefix,
    /// The path RTT and loss of the neighbour's advertisement plus our link to it.
    pub advertised_rtt_us: u32,
    pub advertised_loss_micro_nepers: u32,
    pub sent: u32,
    pub received: u32,
    pub measured_rtt_us: u32,
    /// The verdict: reality was worse than the advertisement beyond the tolerances.
    pub worse: bool,
    /// Consecutive worse verdicts for this neighbour, this one included.
    pub streak: u8,
    /// The neighbour's trust after this evidence (1000: full trust).
    pub trust_permille: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingEvent {
    TrustEvidence(TrustEvidence),
}

impl TrustEvidence {
    pub fn neighbour_address(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.neighbour)
    }
}

/// A prefix on flash: `[address bytes (bin 4 or 16), length]`.
pub mod prefix_bytes {
    use super::*;
    use serde::de::{Error, Visitor};
    use std::fmt;

    struct Bin<'a>(&'a [u8]);

    impl Serialize for Bin<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    struct BinBuf(Vec<u8>);

    impl<'de> Deserialize<'de> for BinBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = BinBuf;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("4 or 16 address bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<BinBuf, E> {
                    Ok(BinBuf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<BinBuf, E> {
                    Ok(BinBuf(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    /// A 16-byte address as MessagePack bin.
    pub mod bin16 {
        use super::*;

        pub fn serialize<S: Serializer>(a: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
            Bin(a).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
            let b = BinBuf::deserialize(d)?;
            <[u8; 16]>::try_from(&b.0[..])
                .map_err(|_| D::Error::custom(format!("an address has 16 bytes, not {}", b.0.len())))
        }
    }

    pub fn serialize<S: Serializer>(p: &Prefix, s: S) -> Result<S::Ok, S::Error> {
        match p.addr() {
            IpAddr::V4(a) => (Bin(&a.octets()), p.len()).serialize(s),
            IpAddr::V6(a) => (Bin(&a.octets()), p.len()).serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let (bytes, len): (BinBuf, u8) = Deserialize::deserialize(d)?;
        let addr = if let Ok(a) = <[u8; 4]>::try_from(&bytes.0[..]) {
            IpAddr::V4(Ipv4Addr::from(a))
        } else if let Ok(a) = <[u8; 16]>::try_from(&bytes.0[..]) {
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            return Err(D::Error::custom(format!(
                "a prefix address has 4 or 16 bytes, not {}",
                bytes.0.len()
            )));
        };
        Prefix::new(addr, len).ok_or_else(|| D::Error::custom(format!("prefix length {len} too long")))
    }
}
