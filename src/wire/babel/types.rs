//! The values of Babel packets, after the parser state has been resolved.

use crate::wire::Prefix;
use core::net::IpAddr;
use std::fmt;

/// A Babel router-id: 8 opaque bytes, never all zeros or all ones (RFC 8966 §4.6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterId(pub [u8; 8]);

impl RouterId {
    /// All zeros: never a router's id. Stands for "none" in the retractions that have none.
    pub const UNSPECIFIED: RouterId = RouterId([0; 8]);

    /// The router-id a prefix stands for when an Update sets the Router-Id flag (0x40): the
    /// low 8 bytes of an IPv6 prefix, the 4 bytes of an IPv4 prefix padded with zeros in
    /// front (RFC 8966 §4.6.9).
    pub fn from_prefix(prefix: &Prefix) -> RouterId {
        match prefix.addr() {
            IpAddr::V6(a) => {
                let o = a.octets();
                let mut id = [0; 8];
                id.copy_from_slice(&o[8..]);
                RouterId(id)
            }
            IpAddr::V4(a) => {
                let mut id = [0; 8];
                id[4..].copy_from_slice(&a.octets());
                RouterId(id)
            }
        }
    }

    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8] && self.0 != [0xff; 8]
    }
}

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// Where a route's packets go next: an address on the link the Update arrived on. IPv4
/// routes may have an IPv6 next hop (v4-via-v6, RFC 9229).
pub type NextHop = IpAddr;

/// lastmile's route vector (`docs/babel-route-vector.md`): what the route costs and how good
/// it is, as separate components, each additive along the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouteVector {
    /// Path price: base units per byte, the sum of every forwarding node's fee.
    pub price_per_byte: u64,
    /// Path round-trip time in microseconds (saturating).
    pub rtt_us: u32,
    /// Path loss: −ln(delivery probability) in micro-nepers (saturating). Additive along the
    /// path because delivery probabilities multiply.
    pub loss_micro_nepers: u32,
}

/// A sub-TLV this codec does not interpret, kept as it came. Decoded values only hold
/// non-mandatory ones, never Pad1 or PadN (types 0 and 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownSubTlv {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl UnknownSubTlv {
    /// Sub-TLV types 128 and above are mandatory (RFC 8966 §4.4): a TLV carrying one that is
    /// not understood must be ignored.
    pub fn is_mandatory(&self) -> bool {
        self.kind >= 128
    }
}

/// Hello TLV (type 4, RFC 8966 §4.6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Flag U (0x8000): this is a unicast Hello.
    pub unicast: bool,
    pub seqno: u16,
    /// Centiseconds until the next Hello of the same kind; 0: none is scheduled.
    pub interval_cs: u16,
    /// RFC 9616 Timestamp sub-TLV: the sender's clock at transmission, in microseconds.
    pub timestamp_us: Option<u32>,
    pub unknown: Vec<UnknownSubTlv>,
}

/// IHU TLV (type 5, RFC 8966 §4.6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ihu {
    pub rxcost: u16,
    pub interval_cs: u16,
    /// The neighbour the IHU is about; `None`: address encoding 0 (the packet's receiver).
    pub address: Option<IpAddr>,
    /// RFC 9616 Timestamp sub-TLV: (origin = the Hello's timestamp being answered, receive =
    /// when that Hello arrived), microseconds of each side's clock.
    pub timestamps_us: Option<(u32, u32)>,
    pub unknown: Vec<UnknownSubTlv>,
}

/// Update TLV (type 8, RFC 8966 §4.6.9), with the parser state resolved.
///
/// Announcements (finite metric) always have a valid `router_id` and a `next_hop` of their
/// own family: IPv4 for an IPv4 prefix, IPv6 for an IPv6 prefix or a `v4_via_v6` one.
/// Retractions resolve both the same way, since a receiver does not use them (RFC 8966
/// §4.6.9); a wildcard retraction resolves neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// `None`: a wildcard retraction (address encoding 0, metric infinity).
    pub prefix: Option<Prefix>,
    /// An IPv4 prefix carried with address encoding 4 (RFC 9229): its next hop is IPv6 (the
    /// `next_hop`, or the packet's source). The encoder uses AE 4 exactly when this is set.
    pub v4_via_v6: bool,
    pub interval_cs: u16,
    pub seqno: u16,
    /// 0xFFFF: a retraction.
    pub metric: u16,
    /// The originator: the current Router-Id of the packet, or derived from the prefix.
    /// [`RouterId::UNSPECIFIED`] for a wildcard retraction, and for a retraction sent before
    /// any router-id was set in its packet.
    pub router_id: RouterId,
    /// The next hop from the current Next Hop TLV of the prefix's family (or IPv6 for AE 4);
    /// `None`: the sender's own address (the packet's source), and always for a wildcard
    /// retraction. For an IPv4 prefix the source is only usable if the packet came over IPv4
    /// (RFC 8966 §4.5); over IPv6 the receiver must drop such an announcement.
    pub next_hop: Option<NextHop>,
    /// lastmile's route vector; `None`: unpriced (absent, or malformed and noted in
    /// [`Decoded::ignored`](super::Decoded::ignored)).
    pub vector: Option<RouteVector>,
    pub unknown: Vec<UnknownSubTlv>,
}

impl Update {
    pub const INFINITY: u16 = 0xFFFF;

    pub fn is_retraction(&self) -> bool {
        self.metric == Self::INFINITY
    }
}

/// Route Request TLV (type 9, RFC 8966 §4.6.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRequest {
    /// `None`: a wildcard request (a full dump is wanted).
    pub prefix: Option<Prefix>,
    pub unknown: Vec<UnknownSubTlv>,
}

/// Seqno Request TLV (type 10, RFC 8966 §4.6.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqnoRequest {
    pub prefix: Prefix,
    pub seqno: u16,
    /// Never 0 (such a request is ignored).
    pub hop_count: u8,
    pub router_id: RouterId,
    pub unknown: Vec<UnknownSubTlv>,
}

/// One TLV of a packet body. Router-Id and Next Hop TLVs are parser state: they are resolved
/// into the [`Update`]s that follow them and are not listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tlv {
    Pad1,
    /// PadN with `n` zero bytes of body.
    PadN(u8),
    AckRequest {
        opaque: u16,
        interval_cs: u16,
    },
    Ack {
        opaque: u16,
    },
    Hello(Hello),
    Ihu(Ihu),
    Update(Update),
    RouteRequest(RouteRequest),
    SeqnoRequest(SeqnoRequest),
    /// A TLV type this codec does not know (11 and above); ignored by the machine, kept for
    /// inspection and re-emitted as it came.
    Unknown {
        kind: u8,
        body: Vec<u8>,
    },
}

/// A whole Babel packet: the body TLVs in order, and the packet trailer (RFC 8966 §4.2), kept
/// as raw bytes (we send none; MAC/HMAC trailers are not interpreted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub tlvs: Vec<Tlv>,
    pub trailer: Vec<u8>,
}
