//! Decoding and encoding of Babel packets (RFC 8966 §4), with the parser state resolved.
//!
//! [`decode`] walks the body TLV by TLV and keeps the per-packet parser state of RFC 8966
//! §4.5: the current router-id, the current next hop of each family, and the default prefix
//! of each compressible address encoding (AE 1, AE 2, and AE 4 separately from AE 1, as
//! babeld and BIRD do). What the RFCs say to ignore is listed in [`Decoded::ignored`] with an
//! [`IgnoreReason`]; only a packet whose header is unusable is an error ([`DecodeError`]).
//!
//! Where the RFCs leave a malformed TLV's effect on the parser state open, the decoder
//! forgets the state the TLV may have meant to set (a Router-Id, a Next Hop, an Update's
//! default prefix or router-id flag), so that later Updates are ignored rather than
//! attributed to a stale originator or next hop.
//!
//! [`Encoder`] does the reverse, see `encode.rs`.

use super::types::{Hello, Ihu, Packet, RouteRequest, RouterId, SeqnoRequest, Tlv, UnknownSubTlv, Update};
use super::{MAGIC, VERSION};
use crate::wire::Prefix;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;

mod encode;
mod vector;

pub use encode::{encode, encode_into, Encoder};
pub use vector::SUBTLV_ROUTE_VECTOR;

/// Magic, version and body length (RFC 8966 §4.2).
const HEADER_LEN: usize = 4;

// TLV types (RFC 8966 §4.6).
const PAD1: u8 = 0;
const PADN: u8 = 1;
const ACK_REQUEST: u8 = 2;
const ACK: u8 = 3;
const HELLO: u8 = 4;
const IHU: u8 = 5;
const ROUTER_ID: u8 = 6;
const NEXT_HOP: u8 = 7;
const UPDATE: u8 = 8;
const ROUTE_REQUEST: u8 = 9;
const SEQNO_REQUEST: u8 = 10;

// Sub-TLV types (RFC 8966 §4.4, RFC 9616 §3).
const SUB_PAD1: u8 = 0;
const SUB_PADN: u8 = 1;
const SUB_TIMESTAMP: u8 = 3;

// Address encodings (RFC 8966 §4.1.4, RFC 9229 §4).
const AE_WILDCARD: u8 = 0;
const AE_IPV4: u8 = 1;
const AE_IPV6: u8 = 2;
const AE_LINK_LOCAL: u8 = 3;
const AE_V4_VIA_V6: u8 = 4;

/// Hello flag U (RFC 8966 §4.6.5).
const HELLO_UNICAST: u16 = 0x8000;
/// Update flags (RFC 8966 §4.6.9): establish a default prefix / a router-id.
const UPDATE_DEFAULT_PREFIX: u8 = 0x80;
const UPDATE_ROUTER_ID: u8 = 0x40;

/// A packet whose header makes it unusable (RFC 8966 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the 4-byte header.
    TooShort { len: usize },
    /// First byte is not 42.
    BadMagic(u8),
    /// Version is not 2.
    BadVersion(u8),
    /// The body length runs past the end of the datagram.
    BodyOverrun { body_len: usize, available: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { len } => write!(f, "{len} bytes is too short for a Babel packet"),
            DecodeError::BadMagic(m) => write!(f, "not a Babel packet (magic {m})"),
            DecodeError::BadVersion(v) => write!(f, "Babel version {v} is not 2"),
            DecodeError::BodyOverrun { body_len, available } => {
                write!(f, "body length {body_len} exceeds the {available} bytes after the header")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A decoded packet and what of it was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub packet: Packet,
    /// TLVs left out of `packet.tlvs`, and notes on TLVs that were kept with a part dropped
    /// ([`IgnoreReason::tlv_kept`]), in wire order.
    pub ignored: Vec<Ignored>,
}

/// One TLV skipped (or kept with a note) by the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// Offset of the TLV's type byte from the start of the packet.
    pub offset: usize,
    /// The TLV's type.
    pub kind: u8,
    pub reason: IgnoreReason,
}

/// Why a TLV was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The TLV runs past the end of the body: it and the rest of the body are skipped.
    Truncated,
    /// The body is shorter than the TLV's fixed fields, address or prefix.
    TooShort,
    /// An address encoding this TLV may not carry: AE 0 in a Next Hop or Seqno Request,
    /// AE 4 in a Next Hop or IHU (RFC 9229 §4).
    BadAddressEncoding(u8),
    /// An address encoding this codec does not know: the TLV is silently ignored
    /// (RFC 8966 §4.1.4).
    UnknownAddressEncoding(u8),
    /// Longer than the address (or shorter than the implied fe80::/64 for AE 3), or not 0
    /// with AE 0.
    BadPrefixLength(u8),
    /// More omitted bytes than the prefix has, or any with AE 0 or AE 3.
    BadOmitted(u8),
    /// Omitted bytes, but no earlier Update of this address encoding set a default prefix.
    NoDefaultPrefix,
    /// A sub-TLV runs past the end of its TLV.
    SubTlvOverrun,
    /// A mandatory sub-TLV (type 128 and above) this codec does not understand: the TLV is
    /// ignored, but its effect on the parser state still applies (RFC 8966 §4.4).
    UnknownMandatorySubTlv(u8),
    /// A wildcard Update that is not a retraction (RFC 8966 §4.6.9).
    WildcardWithFiniteMetric,
    /// An announcement with no router-id in force (RFC 8966 §4.6.9), or any Update after the
    /// router-id in force was lost to a malformed TLV.
    NoRouterId,
    /// A router-id of all zeros or all ones (RFC 8966 §4.6.7): from a Router-Id TLV, from an
    /// Update's router-id flag, or in a Seqno Request.
    InvalidRouterId,
    /// An Update whose family's next hop was set by a malformed Next Hop TLV.
    NoNextHop,
    /// A Seqno Request with a hop count of 0 (RFC 8966 §4.6.11).
    HopCountZero,
    /// Note, TLV kept: a Timestamp sub-TLV too short for its TLV (RFC 9616 §3); the
    /// timestamp is dropped.
    MalformedTimestamp,
    /// Note, TLV kept: a route-vector sub-TLV that is truncated or out of range
    /// (`docs/babel-route-vector.md`); the route is unpriced.
    MalformedRouteVector,
    /// Note, TLV kept: a second sub-TLV of a type that may appear once; the first is used.
    DuplicateSubTlv(u8),
}

impl IgnoreReason {
    /// Whether this is a note on a TLV that was kept.
    pub fn tlv_kept(&self) -> bool {
        matches!(
            self,
            IgnoreReason::MalformedTimestamp
                | IgnoreReason::MalformedRouteVector
                | IgnoreReason::DuplicateSubTlv(_)
        )
    }
}

/// Decodes one Babel packet (the UDP payload).
///
/// Never panics. Errors only for an unusable header; every TLV the RFCs say to ignore is
/// left out of the packet and listed in [`Decoded::ignored`]. TLVs of unknown type are kept
/// as [`Tlv::Unknown`]. Router-Id and Next Hop TLVs are resolved into the Updates that follow
/// them. Bytes after the body are the trailer, kept raw.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let [magic, version, hi, lo, ..] = *bytes else {
        return Err(DecodeError::TooShort { len: bytes.len() });
    };
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    let Some(body) = bytes.get(HEADER_LEN..HEADER_LEN + body_len) else {
        return Err(DecodeError::BodyOverrun { body_len, available: bytes.len() - HEADER_LEN });
    };
    let mut decoded = Decoded {
        packet: Packet { tlvs: Vec::new(), trailer: bytes[HEADER_LEN + body_len..].to_vec() },
        ignored: Vec::new(),
    };
    let mut parser = Parser::default();
    let mut notes = Vec::new();
    let mut pos = 0;
    while let Some(&kind) = body.get(pos) {
        let offset = HEADER_LEN + pos;
        if kind == PAD1 {
            decoded.packet.tlvs.push(Tlv::Pad1);
            pos += 1;
            continue;
        }
        let tlv_body = body.get(pos + 1).and_then(|&len| body.get(pos + 2..pos + 2 + usize::from(len)));
        let Some(tlv_body) = tlv_body else {
            // The framing is lost: nothing after this point can be found reliably.
            decoded.ignored.push(Ignored { offset, kind, reason: IgnoreReason::Truncated });
            break;
        };
        match parser.tlv(kind, tlv_body, &mut notes) {
            Ok(tlv) => {
                decoded.packet.tlvs.extend(tlv);
                decoded.ignored.extend(notes.drain(..).map(|reason| Ignored { offset, kind, reason }));
            }
            Err(reason) => {
                notes.clear();
                decoded.ignored.push(Ignored { offset, kind, reason });
            }
        }
        pos += 2 + tlv_body.len();
    }
    Ok(decoded)
}

/// The parser state of one packet (RFC 8966 §4.5).
#[derive(Default)]
struct Parser {
    router_id: RouterIdState,
    next_hop_v4: NextHopState,
    next_hop_v6: NextHopState,
    /// Default prefix per address encoding (only 1, 2 and 4 compress), as the 16 bytes of
    /// the prefix's normalised address (IPv4 in the first 4), as babeld keeps it.
    defaults: [Option<[u8; 16]>; 5],
}

#[derive(Clone, Copy, Default)]
enum RouterIdState {
    /// None set yet in this packet.
    #[default]
    Unset,
    Set(RouterId),
    /// Forgotten after a malformed or invalid one: the sender meant some router-id we cannot
    /// know.
    Lost,
}

#[derive(Clone, Copy, Default)]
enum NextHopState {
    /// No Next Hop TLV yet: the packet's source.
    #[default]
    Source,
    Addr(IpAddr),
    /// A malformed Next Hop TLV: the sender meant some next hop we cannot know.
    Lost,
}

type Result<T, E = IgnoreReason> = core::result::Result<T, E>;

impl Parser {
    /// The value of one TLV; `Ok(None)` for Router-Id and Next Hop, which only set state.
    fn tlv(&mut self, kind: u8, body: &[u8], notes: &mut Vec<IgnoreReason>) -> Result<Option<Tlv>> {
        let tlv = match kind {
            // A TLV body is at most 255 bytes: its length is one byte.
            PADN => Tlv::PadN(body.len() as u8),
            ACK_REQUEST => {
                let (&[_, _, o0, o1, i0, i1], rest) = split::<6>(body)?;
                no_sub_tlvs(rest)?;
                Tlv::AckRequest {
                    opaque: u16::from_be_bytes([o0, o1]),
                    interval_cs: u16::from_be_bytes([i0, i1]),
                }
            }
            ACK => {
                let (&opaque, rest) = split::<2>(body)?;
                no_sub_tlvs(rest)?;
                Tlv::Ack { opaque: u16::from_be_bytes(opaque) }
            }
            HELLO => Tlv::Hello(hello(body, notes)?),
            IHU => Tlv::Ihu(ihu(body, notes)?),
            ROUTER_ID => {
                self.router_id_tlv(body)?;
                return Ok(None);
            }
            NEXT_HOP => {
                self.next_hop_tlv(body)?;
                return Ok(None);
            }
            UPDATE => Tlv::Update(self.update(body, notes)?),
            ROUTE_REQUEST => Tlv::RouteRequest(route_request(body)?),
            SEQNO_REQUEST => Tlv::SeqnoRequest(seqno_request(body)?),
            _ => Tlv::Unknown { kind, body: body.to_vec() },
        };
        Ok(Some(tlv))
    }

    /// Router-Id TLV (RFC 8966 §4.6.7).
    fn router_id_tlv(&mut self, body: &[u8]) -> Result<()> {
        let parsed = split::<2>(body).and_then(|(_reserved, rest)| split::<8>(rest));
        let (&id, rest) = parsed.inspect_err(|_| self.router_id = RouterIdState::Lost)?;
        let id = RouterId(id);
        if !id.is_valid() {
            self.router_id = RouterIdState::Lost;
            return Err(IgnoreReason::InvalidRouterId);
        }
        // Set before the sub-TLVs are checked: an unknown mandatory one still sets it (§4.4).
        self.router_id = RouterIdState::Set(id);
        no_sub_tlvs(rest)
    }

    /// Next Hop TLV (RFC 8966 §4.6.8; AE 4 is not allowed, RFC 9229 §4).
    fn next_hop_tlv(&mut self, body: &[u8]) -> Result<()> {
        let Ok((&[ae, _reserved], rest)) = split::<2>(body) else {
            self.next_hop_v4 = NextHopState::Lost;
            self.next_hop_v6 = NextHopState::Lost;
            return Err(IgnoreReason::TooShort);
        };
        let slot = match ae {
            AE_IPV4 => &mut self.next_hop_v4,
            AE_IPV6 | AE_LINK_LOCAL => &mut self.next_hop_v6,
            AE_WILDCARD | AE_V4_VIA_V6 => return Err(IgnoreReason::BadAddressEncoding(ae)),
            _ => return Err(IgnoreReason::UnknownAddressEncoding(ae)),
        };
        let (address, rest) = unicast_address(ae, rest).inspect_err(|_| *slot = NextHopState::Lost)?;
        *slot = NextHopState::Addr(address);
        no_sub_tlvs(rest)
    }

    /// Update TLV (RFC 8966 §4.6.9, RFC 9229 §4).
    fn update(&mut self, body: &[u8], notes: &mut Vec<IgnoreReason>) -> Result<Update> {
        let Ok((&[ae, flags, plen, omitted, i0, i1, s0, s1, m0, m1], rest)) = split::<10>(body) else {
            if let [ae, flags, ..] = *body {
                self.forget(ae, flags);
            }
            return Err(IgnoreReason::TooShort);
        };
        let resolved = match ae {
            AE_WILDCARD if plen != 0 => Err(IgnoreReason::BadPrefixLength(plen)),
            AE_WILDCARD if omitted != 0 => Err(IgnoreReason::BadOmitted(omitted)),
            AE_WILDCARD => Ok((None, rest)),
            _ => prefix(ae, plen, omitted, rest, self.defaults.get(usize::from(ae)).copied().flatten())
                .map(|(p, rest)| (Some(p), rest)),
        };
        let (prefix, rest) = resolved.inspect_err(|_| self.forget(ae, flags))?;
        // The state changes even if the TLV is then ignored for a sub-TLV (RFC 8966 §4.4).
        if let (Some(p), true) = (prefix, flags & UPDATE_DEFAULT_PREFIX != 0) {
            if let Some(slot) = self.default_slot(ae) {
                *slot = Some(octets(&p));
            }
        }
        let mut flag_id_invalid = false;
        if flags & UPDATE_ROUTER_ID != 0 {
            let id = prefix.map(|p| RouterId::from_prefix(&p)).filter(RouterId::is_valid);
            flag_id_invalid = id.is_none();
            self.router_id = id.map_or(RouterIdState::Lost, RouterIdState::Set);
        }
        let mut update = Update {
            prefix,
            v4_via_v6: ae == AE_V4_VIA_V6,
            interval_cs: u16::from_be_bytes([i0, i1]),
            seqno: u16::from_be_bytes([s0, s1]),
            metric: u16::from_be_bytes([m0, m1]),
            router_id: RouterId::UNSPECIFIED,
            next_hop: None,
            vector: None,
            unknown: Vec::new(),
        };
        let mut seen_vector = false;
        for (kind, sub) in sub_tlvs(rest)? {
            match kind {
                SUBTLV_ROUTE_VECTOR if seen_vector => notes.push(IgnoreReason::DuplicateSubTlv(kind)),
                SUBTLV_ROUTE_VECTOR => {
                    seen_vector = true;
                    update.vector = vector::decode(sub);
                    if update.vector.is_none() {
                        notes.push(IgnoreReason::MalformedRouteVector);
                    }
                }
                _ => unknown_sub_tlv(kind, sub, &mut update.unknown)?,
            }
        }
        if ae == AE_WILDCARD {
            // Resolves neither router-id nor next hop: it retracts every route of the sender.
            return if update.is_retraction() {
                Ok(update)
            } else {
                Err(IgnoreReason::WildcardWithFiniteMetric)
            };
        }
        update.router_id = match self.router_id {
            RouterIdState::Set(id) => id,
            // A retraction needs no router-id (RFC 8966 §4.6.9); babeld and BIRD accept one
            // sent before any.
            RouterIdState::Unset if update.is_retraction() => RouterId::UNSPECIFIED,
            RouterIdState::Unset => return Err(IgnoreReason::NoRouterId),
            RouterIdState::Lost if flag_id_invalid => return Err(IgnoreReason::InvalidRouterId),
            RouterIdState::Lost => return Err(IgnoreReason::NoRouterId),
        };
        let next_hop = if ae == AE_IPV4 { self.next_hop_v4 } else { self.next_hop_v6 };
        update.next_hop = match next_hop {
            NextHopState::Source => None,
            NextHopState::Addr(a) => Some(a),
            NextHopState::Lost => return Err(IgnoreReason::NoNextHop),
        };
        Ok(update)
    }

    fn default_slot(&mut self, ae: u8) -> Option<&mut Option<[u8; 16]>> {
        matches!(ae, AE_IPV4 | AE_IPV6 | AE_V4_VIA_V6).then(|| &mut self.defaults[usize::from(ae)])
    }

    /// A malformed Update may have meant to set a default prefix or a router-id: forget
    /// them, so that the TLVs after it are not resolved against stale ones.
    fn forget(&mut self, ae: u8, flags: u8) {
        if flags & UPDATE_DEFAULT_PREFIX != 0 {
            if let Some(slot) = self.default_slot(ae) {
                *slot = None;
            }
        }
        if flags & UPDATE_ROUTER_ID != 0 {
            self.router_id = RouterIdState::Lost;
        }
    }
}

/// Hello TLV (RFC 8966 §4.6.5) with its Timestamp sub-TLV (RFC 9616 §3).
fn hello(body: &[u8], notes: &mut Vec<IgnoreReason>) -> Result<Hello> {
    let (&[f0, f1, s0, s1, i0, i1], rest) = split::<6>(body)?;
    let mut hello = Hello {
        unicast: u16::from_be_bytes([f0, f1]) & HELLO_UNICAST != 0,
        seqno: u16::from_be_bytes([s0, s1]),
        interval_cs: u16::from_be_bytes([i0, i1]),
        timestamp_us: None,
        unknown: Vec::new(),
    };
    hello.timestamp_us = timestamp_sub_tlv::<4>(rest, notes, &mut hello.unknown)?.map(u32::from_be_bytes);
    Ok(hello)
}

/// IHU TLV (RFC 8966 §4.6.6) with its Timestamp sub-TLV (RFC 9616 §3).
fn ihu(body: &[u8], notes: &mut Vec<IgnoreReason>) -> Result<Ihu> {
    let (&[ae, _reserved, r0, r1, i0, i1], rest) = split::<6>(body)?;
    let (address, rest) = match ae {
        AE_WILDCARD => (None, rest),
        AE_V4_VIA_V6 => return Err(IgnoreReason::BadAddressEncoding(ae)),
        _ => unicast_address(ae, rest).map(|(a, rest)| (Some(a), rest))?,
    };
    let mut ihu = Ihu {
        rxcost: u16::from_be_bytes([r0, r1]),
        interval_cs: u16::from_be_bytes([i0, i1]),
        address,
        timestamps_us: None,
        unknown: Vec::new(),
    };
    ihu.timestamps_us =
        timestamp_sub_tlv::<8>(rest, notes, &mut ihu.unknown)?.map(|[o0, o1, o2, o3, r0, r1, r2, r3]| {
            (u32::from_be_bytes([o0, o1, o2, o3]), u32::from_be_bytes([r0, r1, r2, r3]))
        });
    Ok(ihu)
}

/// Route Request TLV (RFC 8966 §4.6.10); AE 4 is read like AE 1 (RFC 9229 §4).
fn route_request(body: &[u8]) -> Result<RouteRequest> {
    let (&[ae, plen], rest) = split::<2>(body)?;
    let (prefix, rest) = match ae {
        AE_WILDCARD if plen != 0 => return Err(IgnoreReason::BadPrefixLength(plen)),
        AE_WILDCARD => (None, rest),
        _ => prefix(ae, plen, 0, rest, None).map(|(p, rest)| (Some(p), rest))?,
    };
    Ok(RouteRequest { prefix, unknown: unknown_sub_tlvs(rest)? })
}

/// Seqno Request TLV (RFC 8966 §4.6.11); AE 4 is read like AE 1 (RFC 9229 §4).
fn seqno_request(body: &[u8]) -> Result<SeqnoRequest> {
    let (&[ae, plen, s0, s1, hop_count, _reserved, r0, r1, r2, r3, r4, r5, r6, r7], rest) =
        split::<14>(body)?;
    if ae == AE_WILDCARD {
        return Err(IgnoreReason::BadAddressEncoding(ae));
    }
    let (prefix, rest) = prefix(ae, plen, 0, rest, None)?;
    let unknown = unknown_sub_tlvs(rest)?;
    if hop_count == 0 {
        return Err(IgnoreReason::HopCountZero);
    }
    let router_id = RouterId([r0, r1, r2, r3, r4, r5, r6, r7]);
    if !router_id.is_valid() {
        return Err(IgnoreReason::InvalidRouterId);
    }
    Ok(SeqnoRequest { prefix, seqno: u16::from_be_bytes([s0, s1]), hop_count, router_id, unknown })
}

/// The first `N` bytes of `bytes` and the rest.
fn split<const N: usize>(bytes: &[u8]) -> Result<(&[u8; N], &[u8])> {
    bytes.split_first_chunk::<N>().ok_or(IgnoreReason::TooShort)
}

/// An address of encoding 1, 2 or 3 at the start of `bytes` (RFC 8966 §4.1.4), and the rest.
fn unicast_address(ae: u8, bytes: &[u8]) -> Result<(IpAddr, &[u8])> {
    match ae {
        AE_IPV4 => split::<4>(bytes).map(|(&a, rest)| (IpAddr::V4(Ipv4Addr::from(a)), rest)),
        AE_IPV6 => split::<16>(bytes).map(|(&a, rest)| (IpAddr::V6(Ipv6Addr::from(a)), rest)),
        AE_LINK_LOCAL => split::<8>(bytes).map(|(low, rest)| {
            let mut a = LINK_LOCAL_PREFIX;
            a[8..].copy_from_slice(low);
            (IpAddr::V6(Ipv6Addr::from(a)), rest)
        }),
        _ => Err(IgnoreReason::UnknownAddressEncoding(ae)),
    }
}

/// fe80::/64, implied by AE 3.
const LINK_LOCAL_PREFIX: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Whether AE 3 can carry `a`: it is in fe80::/64.
fn is_link_local_64(a: &Ipv6Addr) -> bool {
    a.octets()[..8] == LINK_LOCAL_PREFIX[..8]
}

/// A prefix of encoding `ae` with `plen` bits at the start of `bytes`, its first `omitted`
/// bytes taken from `default` (RFC 8966 §4.1.5, §4.6.9), and the rest.
///
/// AE 4 is encoded like AE 1 (RFC 9229 §4). AE 3 carries the bytes after the implied
/// fe80::/64, so its prefix is at least 64 bits long and omits nothing (as babeld reads it).
fn prefix(ae: u8, plen: u8, omitted: u8, bytes: &[u8], default: Option<[u8; 16]>) -> Result<(Prefix, &[u8])> {
    let (mut octets, max_len, implied) = match ae {
        AE_IPV4 | AE_V4_VIA_V6 => ([0; 16], 32, 0),
        AE_IPV6 => ([0; 16], 128, 0),
        AE_LINK_LOCAL if plen < 64 => return Err(IgnoreReason::BadPrefixLength(plen)),
        AE_LINK_LOCAL if omitted != 0 => return Err(IgnoreReason::BadOmitted(omitted)),
        AE_LINK_LOCAL => (LINK_LOCAL_PREFIX, 128, 8),
        AE_WILDCARD => return Err(IgnoreReason::BadAddressEncoding(ae)),
        _ => return Err(IgnoreReason::UnknownAddressEncoding(ae)),
    };
    if plen > max_len {
        return Err(IgnoreReason::BadPrefixLength(plen));
    }
    let total = usize::from(plen).div_ceil(8);
    if usize::from(omitted) > total {
        return Err(IgnoreReason::BadOmitted(omitted));
    }
    let from = usize::from(omitted).max(implied);
    if omitted > 0 {
        let default = default.ok_or(IgnoreReason::NoDefaultPrefix)?;
        octets[..from].copy_from_slice(&default[..from]);
    }
    let (sent, rest) = bytes.split_at_checked(total - from).ok_or(IgnoreReason::TooShort)?;
    octets[from..total].copy_from_slice(sent);
    let addr = if max_len == 32 {
        let [a, b, c, d, ..] = octets;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let prefix = Prefix::new(addr, plen).ok_or(IgnoreReason::BadPrefixLength(plen))?;
    Ok((prefix, rest))
}

/// The prefix's address as 16 bytes, IPv4 in the first 4: the form of a default prefix.
fn octets(p: &Prefix) -> [u8; 16] {
    match p.addr() {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => {
            let mut o = [0; 16];
            o[..4].copy_from_slice(&a.octets());
            o
        }
    }
}

/// The sub-TLVs after a TLV's body proper (RFC 8966 §4.4), without Pad1 and PadN.
fn sub_tlvs(mut bytes: &[u8]) -> Result<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        if kind == SUB_PAD1 {
            bytes = rest;
            continue;
        }
        let (&len, rest) = rest.split_first().ok_or(IgnoreReason::SubTlvOverrun)?;
        let (body, rest) = rest.split_at_checked(usize::from(len)).ok_or(IgnoreReason::SubTlvOverrun)?;
        if kind != SUB_PADN {
            out.push((kind, body));
        }
        bytes = rest;
    }
    Ok(out)
}

/// Keeps a sub-TLV this codec does not interpret, or refuses the TLV if it is mandatory.
fn unknown_sub_tlv(kind: u8, body: &[u8], unknown: &mut Vec<UnknownSubTlv>) -> Result<()> {
    let sub = UnknownSubTlv { kind, body: body.to_vec() };
    if sub.is_mandatory() {
        return Err(IgnoreReason::UnknownMandatorySubTlv(kind));
    }
    unknown.push(sub);
    Ok(())
}

/// The sub-TLVs of a Hello or IHU: the RFC 9616 Timestamp (its first `N` bytes; longer
/// bodies are accepted, as babeld and BIRD do: room for extensions), the others kept as
/// unknown. A second Timestamp or a short one is noted and not used.
fn timestamp_sub_tlv<const N: usize>(
    bytes: &[u8],
    notes: &mut Vec<IgnoreReason>,
    unknown: &mut Vec<UnknownSubTlv>,
) -> Result<Option<[u8; N]>> {
    let mut found = None;
    let mut seen = false;
    for (kind, sub) in sub_tlvs(bytes)? {
        match kind {
            SUB_TIMESTAMP if seen => notes.push(IgnoreReason::DuplicateSubTlv(kind)),
            SUB_TIMESTAMP => {
                seen = true;
                match sub.first_chunk::<N>() {
                    Some(t) => found = Some(*t),
                    None => notes.push(IgnoreReason::MalformedTimestamp),
                }
            }
            _ => unknown_sub_tlv(kind, sub, unknown)?,
        }
    }
    Ok(found)
}

/// Sub-TLVs of a TLV that defines none of its own.
fn unknown_sub_tlvs(bytes: &[u8]) -> Result<Vec<UnknownSubTlv>> {
    let mut unknown = Vec::new();
    for (kind, body) in sub_tlvs(bytes)? {
        unknown_sub_tlv(kind, body, &mut unknown)?;
    }
    Ok(unknown)
}

/// Sub-TLVs of a TLV whose value has no room for them: non-mandatory ones are dropped.
fn no_sub_tlvs(bytes: &[u8]) -> Result<()> {
    unknown_sub_tlvs(bytes).map(drop)
}
