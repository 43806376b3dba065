//! Building packets: the decoder's parser state, run backwards.

use super::super::types::{Packet, RouterId, Tlv, UnknownSubTlv, Update};
use super::{
    is_link_local_64, octets, vector, ACK, ACK_REQUEST, AE_IPV4, AE_IPV6, AE_LINK_LOCAL, AE_V4_VIA_V6,
    AE_WILDCARD, HEADER_LEN, HELLO, HELLO_UNICAST, IHU, NEXT_HOP, PAD1, PADN, ROUTER_ID, ROUTE_REQUEST,
    SEQNO_REQUEST, SUBTLV_ROUTE_VECTOR, SUB_TIMESTAMP, UPDATE, UPDATE_DEFAULT_PREFIX, UPDATE_ROUTER_ID,
};
use super::{MAGIC, VERSION};
use crate::wire::Prefix;
use core::net::IpAddr;

/// The largest packet: a header and a body whose length fills the 16-bit field.
const MAX_PACKET_LEN: usize = HEADER_LEN + u16::MAX as usize;

/// Builds one Babel packet of at most `max_len` bytes (header included).
///
/// Drive it by pushing TLVs in order; when [`push`](Encoder::push) returns false, [`finish`]
/// the packet, send it, and push the same TLV into a new encoder. A TLV that a new encoder
/// refuses can never be sent within `max_len`.
///
/// The encoder keeps the parser state a receiver will keep (RFC 8966 §4.5): before an
/// announcement it emits a Router-Id TLV only if the router-id in force differs (none if the
/// router-id is the prefix's own, which flag 0x40 says), and a Next Hop TLV only if the
/// next hop of the family differs (AE 3 for an address in fe80::/64). Every Update of AE 1,
/// 2 or 4 sets flag 0x80 and omits the bytes it shares with the previous one of its AE, as
/// babeld does. Retractions are handled like announcements (as babeld does), so that they
/// decode to the same values; a wildcard retraction needs neither router-id nor next hop.
///
/// Values must keep the contracts of [`Update`] and [`Tlv`] (a valid router-id on every
/// announcement, next hops of the prefix's family, unknown TLV types above 10, unknown
/// sub-TLV types that are neither padding nor interpreted); breaking them is a bug of the
/// caller, asserted in debug builds.
///
/// [`finish`]: Encoder::finish
#[derive(Clone, Debug)]
pub struct Encoder {
    max_len: usize,
    buf: Vec<u8>,
    state: State,
}

/// The parser state the receiver will have after the TLVs written so far.
#[derive(Clone, Debug, Default)]
struct State {
    router_id: Option<RouterId>,
    /// `None`: no Next Hop TLV yet, the sender's own address.
    next_hop_v4: Option<IpAddr>,
    next_hop_v6: Option<IpAddr>,
    /// Default prefix per AE, in the decoder's form.
    defaults: [Option<[u8; 16]>; 5],
}

impl Encoder {
    /// An empty packet of at most `max_len` bytes, header included (for example the link MTU
    /// less the IPv6 and UDP headers). Bodies are also limited to 65535 bytes.
    ///
    /// # Panics
    /// If `max_len` is smaller than the 4-byte header.
    pub fn new(max_len: usize) -> Encoder {
        assert!(max_len >= HEADER_LEN, "a Babel packet needs {HEADER_LEN} bytes of header, not {max_len}");
        let mut buf = Vec::with_capacity(max_len.min(1500));
        buf.extend_from_slice(&[MAGIC, VERSION, 0, 0]);
        Encoder { max_len: max_len.min(MAX_PACKET_LEN), buf, state: State::default() }
    }

    /// Appends `tlv` with the Router-Id and Next Hop TLVs it needs. Returns false, and leaves
    /// the packet unchanged, if they would not fit in the budget, if a TLV would exceed 255
    /// bytes, or if the Update needs state this packet can no longer express (the sender as
    /// next hop after a Next Hop TLV of its family, no router-id after one): in every case
    /// the TLV belongs in a new packet.
    pub fn push(&mut self, tlv: &Tlv) -> bool {
        let mark = self.buf.len();
        let saved = self.state.clone();
        if self.write(tlv) && self.buf.len() <= self.max_len {
            return true;
        }
        self.buf.truncate(mark);
        self.state = saved;
        false
    }

    /// The length of the packet if finished now, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no TLV was pushed.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// The packet: header and body, no trailer.
    pub fn finish(mut self) -> Vec<u8> {
        // `push` keeps the body within 65535 bytes.
        let body_len = u16::try_from(self.buf.len() - HEADER_LEN).unwrap_or(u16::MAX);
        self.buf[2..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
        self.buf
    }

    fn write(&mut self, tlv: &Tlv) -> bool {
        match tlv {
            Tlv::Pad1 => {
                self.buf.push(PAD1);
                true
            }
            Tlv::PadN(n) => self.tlv(PADN, |out| out.resize(out.len() + usize::from(*n), 0)),
            Tlv::AckRequest { opaque, interval_cs } => self.tlv(ACK_REQUEST, |out| {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&opaque.to_be_bytes());
                out.extend_from_slice(&interval_cs.to_be_bytes());
            }),
            Tlv::Ack { opaque } => self.tlv(ACK, |out| out.extend_from_slice(&opaque.to_be_bytes())),
            Tlv::Hello(h) => self.tlv(HELLO, |out| {
                let flags = if h.unicast { HELLO_UNICAST } else { 0 };
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&h.seqno.to_be_bytes());
                out.extend_from_slice(&h.interval_cs.to_be_bytes());
                // babeld 1.12.1 takes the type of every sub-TLV of a Hello, IHU or request
                // from the first one (`type = a[0]` in message.c), so what we originate
                // carries one sub-TLV at most: the timestamp. Unknown sub-TLVs only come from
                // packets we decoded.
                if let Some(t) = h.timestamp_us {
                    sub_tlv(out, SUB_TIMESTAMP, &t.to_be_bytes());
                }
                unknown_sub_tlvs(out, &h.unknown);
            }),
            Tlv::Ihu(ihu) => self.tlv(IHU, |out| {
                out.extend_from_slice(&[ihu.address.as_ref().map_or(AE_WILDCARD, address_encoding), 0]);
                out.extend_from_slice(&ihu.rxcost.to_be_bytes());
                out.extend_from_slice(&ihu.interval_cs.to_be_bytes());
                if let Some(a) = &ihu.address {
                    put_address(out, a);
                }
                // One sub-TLV at most, as for Hello.
                if let Some((origin, receive)) = ihu.timestamps_us {
                    let mut t = [0; 8];
                    t[..4].copy_from_slice(&origin.to_be_bytes());
                    t[4..].copy_from_slice(&receive.to_be_bytes());
                    sub_tlv(out, SUB_TIMESTAMP, &t);
                }
                unknown_sub_tlvs(out, &ihu.unknown);
            }),
            Tlv::Update(u) => self.update(u),
            Tlv::RouteRequest(r) => self.tlv(ROUTE_REQUEST, |out| {
                match &r.prefix {
                    None => out.extend_from_slice(&[AE_WILDCARD, 0]),
                    Some(p) => {
                        out.extend_from_slice(&[if p.is_ipv4() { AE_IPV4 } else { AE_IPV6 }, p.len()]);
                        out.extend_from_slice(prefix_bytes(p, &octets(p)));
                    }
                }
                unknown_sub_tlvs(out, &r.unknown);
            }),
            Tlv::SeqnoRequest(r) => self.tlv(SEQNO_REQUEST, |out| {
                debug_assert!(r.hop_count > 0 && r.router_id.is_valid(), "invalid {r:?}");
                let p = &r.prefix;
                out.extend_from_slice(&[if p.is_ipv4() { AE_IPV4 } else { AE_IPV6 }, p.len()]);
                out.extend_from_slice(&r.seqno.to_be_bytes());
                out.extend_from_slice(&[r.hop_count, 0]);
                out.extend_from_slice(&r.router_id.0);
                out.extend_from_slice(prefix_bytes(p, &octets(p)));
                unknown_sub_tlvs(out, &r.unknown);
            }),
            Tlv::Unknown { kind, body } => {
                debug_assert!(*kind > SEQNO_REQUEST, "TLV type {kind} is not unknown");
                self.tlv(*kind, |out| out.extend_from_slice(body))
            }
        }
    }

    fn update(&mut self, u: &Update) -> bool {
        let ae = match &u.prefix {
            None => AE_WILDCARD,
            Some(p) if !p.is_ipv4() => AE_IPV6,
            Some(_) if u.v4_via_v6 => AE_V4_VIA_V6,
            Some(_) => AE_IPV4,
        };
        let mut flags = 0;
        if let Some(prefix) = &u.prefix {
            let id = u.router_id;
            debug_assert!(
                id.is_valid() || u.is_retraction() && id == RouterId::UNSPECIFIED,
                "router-id: {u:?}"
            );
            if id.is_valid() && id == RouterId::from_prefix(prefix) {
                flags |= UPDATE_ROUTER_ID;
            } else if id == RouterId::UNSPECIFIED {
                // A retraction without router-id: only before any router-id is set.
                if self.state.router_id.is_some() {
                    return false;
                }
            } else if self.state.router_id != Some(id) {
                self.state.router_id = Some(id);
                if !self.tlv(ROUTER_ID, |out| {
                    out.extend_from_slice(&[0, 0]);
                    out.extend_from_slice(&id.0);
                }) {
                    return false;
                }
            }
            let slot = if ae == AE_IPV4 { &mut self.state.next_hop_v4 } else { &mut self.state.next_hop_v6 };
            debug_assert!(
                u.next_hop.is_none_or(|nh| nh.is_ipv4() == (ae == AE_IPV4)),
                "next hop family: {u:?}"
            );
            match (u.next_hop, *slot) {
                (None, None) => {}
                (None, Some(_)) => return false,
                (Some(want), Some(have)) if want == have => {}
                (Some(want), _) => {
                    *slot = Some(want);
                    if !self.tlv(NEXT_HOP, |out| {
                        out.extend_from_slice(&[address_encoding(&want), 0]);
                        put_address(out, &want);
                    }) {
                        return false;
                    }
                }
            }
        }
        let (plen, full) = u.prefix.as_ref().map_or((0, [0; 16]), |p| (p.len(), octets(p)));
        let total = usize::from(plen).div_ceil(8);
        let mut omitted = 0;
        if let Some(default) = self.state.defaults.get_mut(usize::from(ae)).filter(|_| ae != AE_WILDCARD) {
            if let Some(d) = default {
                omitted = full[..total].iter().zip(d.iter()).take_while(|(a, b)| a == b).count();
            }
            *default = Some(full);
            flags |= UPDATE_DEFAULT_PREFIX;
        }
        if flags & UPDATE_ROUTER_ID != 0 {
            self.state.router_id = Some(u.router_id);
        }
        self.tlv(UPDATE, |out| {
            // `omitted` is at most `total`, which is at most 16.
            out.extend_from_slice(&[ae, flags, plen, omitted as u8]);
            out.extend_from_slice(&u.interval_cs.to_be_bytes());
            out.extend_from_slice(&u.seqno.to_be_bytes());
            out.extend_from_slice(&u.metric.to_be_bytes());
            out.extend_from_slice(&full[omitted..total]);
            if let Some(v) = &u.vector {
                let mut body = Vec::with_capacity(20);
                vector::encode(v, &mut body);
                sub_tlv(out, SUBTLV_ROUTE_VECTOR, &body);
            }
            debug_assert!(u.unknown.iter().all(|s| s.kind != SUBTLV_ROUTE_VECTOR), "{u:?}");
            unknown_sub_tlvs(out, &u.unknown);
        })
    }

    /// Appends one TLV: its type, its length and what `body` writes; false if the body
    /// exceeds 255 bytes.
    fn tlv(&mut self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) -> bool {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[kind, 0]);
        body(&mut self.buf);
        match u8::try_from(self.buf.len() - start - 2) {
            Ok(len) => {
                self.buf[start + 1] = len;
                true
            }
            Err(_) => false,
        }
    }
}

/// The bytes of a prefix on the wire, without compression.
fn prefix_bytes<'a>(p: &Prefix, full: &'a [u8; 16]) -> &'a [u8] {
    &full[..usize::from(p.len()).div_ceil(8)]
}

/// The address encoding of a unicast address: AE 3 for fe80::/64.
fn address_encoding(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AE_IPV4,
        IpAddr::V6(a) if is_link_local_64(a) => AE_LINK_LOCAL,
        IpAddr::V6(_) => AE_IPV6,
    }
}

/// Appends the bytes of `a` in its [`address_encoding`].
fn put_address(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) if is_link_local_64(a) => out.extend_from_slice(&a.octets()[8..]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

fn sub_tlv(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    // An oversized body makes the enclosing TLV exceed 255 bytes too, which `push` refuses.
    out.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(body);
}

fn unknown_sub_tlvs(out: &mut Vec<u8>, unknown: &[UnknownSubTlv]) {
    for s in unknown {
        debug_assert!(s.kind > 1 && !s.is_mandatory(), "not an unknown sub-TLV: {s:?}");
        sub_tlv(out, s.kind, &s.body);
    }
}

/// Encodes `packet`: its TLVs in one packet, then its trailer.
///
/// # Panics
/// If the TLVs cannot be one packet: the body would exceed 65535 bytes, a TLV 255 bytes, or
/// an Update needs state the packet can no longer express (see [`Encoder::push`]). A
/// decoded packet never breaks the last rule. Use [`Encoder`] to build packets to a budget.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(packet, &mut out);
    out
}

/// [`encode`], appending to `out`.
///
/// # Panics
/// As [`encode`].
pub fn encode_into(packet: &Packet, out: &mut Vec<u8>) {
    let mut encoder = Encoder::new(MAX_PACKET_LEN);
    for tlv in &packet.tlvs {
        assert!(encoder.push(tlv), "cannot be part of one Babel packet: {tlv:?}");
    }
    out.extend_from_slice(&encoder.finish());
    out.extend_from_slice(&packet.trailer);
}
