//! Discovery messages: how neighbours find each other and agree on a tunnel.
//!
//! UDP on port [`PORT`]: announcements to the link-local multicast group [`GROUP`] on every
//! configured physical interface (and by unicast to manual peers); offers and accepts by
//! unicast to the address an announcement came from. Three messages:
//!
//! 1. **Announce**, every few seconds: who I am (node id, WireGuard key, boot counter, a
//!    sequence number that grows within a boot) and a fresh nonce.
//! 2. **Offer**, to a node heard announcing: echoes its latest nonce, gives a fresh nonce of
//!    ours, and the WireGuard port we reserved for it.
//! 3. **Accept**, the answer: echoes the offer's nonce and gives the port reserved on the other
//!    side. After it both sides know both ports and keys: the tunnel can be configured.
//!
//! Every message is signed by the sender's identity key (see [`crate::events::identity`]);
//! offers and accepts also carry a MAC keyed with the x25519 shared secret of both WireGuard
//! keys, which only the holders of the two private keys can compute, so nobody can claim a
//! WireGuard key that is not theirs. Echoed nonces make a captured offer or accept useless
//! once the nonce it answers has been replaced.
//!
//! Layout (big-endian, fixed sizes; trailing bytes are an error):
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..3 | magic `LMD` |
//! | 3 | version (1) |
//! | 4 | type: 1 announce, 2 offer, 3 accept |
//! | 5..38 | sender node id (33, compressed secp256k1) |
//! | 38..70 | sender WireGuard public key (32) |
//! | 70..78 | sender boot counter (u64) |
//! | announce: 78..86 | sequence number (u64) |
//! | announce: 86..102 | nonce (16) |
//! | offer, accept: 78..111 | receiver node id (33) |
//! | offer, accept: 111..127 | echoed nonce (16) |
//! | offer: 127..143 | fresh nonce (16) |
//! | offer 143..145, accept 127..129 | the sender's WireGuard listen port for the receiver (u16) |
//! | offer 145..177, accept 129..161 | MAC (32): keccak256([`MAC_DOMAIN`] ‖ x25519 secret ‖ bytes 0..MAC) |
//! | last 64 | signature of every byte before it, domain [`SIGN_DOMAIN`] |
//!
//! Sizes: announce 166 bytes, offer 241, accept 225.

use crate::events::identity::{NodeId, WgKey};
use core::net::Ipv6Addr;
use std::fmt;

/// The UDP port of discovery (next to Babel's 6696).
pub const PORT: u16 = 6698;
/// The link-local multicast group of announcements: `ff02::114`, the group RFC 4727 sets
/// aside for experiments.
pub const GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x114);
/// The domain of discovery signatures.
pub const SIGN_DOMAIN: &[u8] = b"lastmile discovery v1";
/// The domain of discovery MACs.
pub const MAC_DOMAIN: &[u8] = b"lastmile discovery mac v1";

const MAGIC: &[u8; 3] = b"LMD";
const VERSION: u8 = 1;
const ANNOUNCE: u8 = 1;
const OFFER: u8 = 2;
const ACCEPT: u8 = 3;
const HEADER: usize = 78;
pub const ANNOUNCE_LEN: usize = HEADER + 8 + 16 + 64;
pub const OFFER_LEN: usize = HEADER + 33 + 16 + 16 + 2 + 32 + 64;
pub const ACCEPT_LEN: usize = HEADER + 33 + 16 + 2 + 32 + 64;
/// The longest message: a datagram longer than this is refused before it is parsed.
pub const MAX_LEN: usize = OFFER_LEN;

pub type Nonce = [u8; 16];

/// What every message says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    pub node: NodeId,
    pub wg: WgKey,
    pub boot: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    pub from: Sender,
    pub seq: u64,
    pub nonce: Nonce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub from: Sender,
    pub to: NodeId,
    pub echo: Nonce,
    pub nonce: Nonce,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    pub from: Sender,
    pub to: NodeId,
    pub echo: Nonce,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    Announce(Announce),
    Offer(Offer),
    Accept(Accept),
}

impl Message {
    pub fn sender(&self) -> &Sender {
        match self {
            Message::Announce(a) => &a.from,
            Message::Offer(o) => &o.from,
            Message::Accept(a) => &a.from,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::Announce(_) => "announce",
            Message::Offer(_) => "offer",
            Message::Accept(_) => "accept",
        }
    }
}

/// A message as received: its fields, and the parts its MAC and signature cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub message: Message,
    /// The bytes the signature covers (everything before it).
    pub signed: Vec<u8>,
    pub signature: [u8; 64],
    /// Offers and accepts: the bytes the MAC covers, and the MAC.
    pub mac: Option<(usize, [u8; 32])>,
}

impl Received {
    /// The bytes the MAC covers.
    pub fn mac_covered(&self) -> &[u8] {
        match self.mac {
            Some((at, _)) => &self.signed[..at],
            None => &[],
        }
    }
}

/// Why a datagram is not a discovery message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    NotDiscovery,
    UnknownVersion(u8),
    UnknownType(u8),
    Length { kind: &'static str, expected: usize, got: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotDiscovery => f.write_str("not a lastmile discovery message (no LMD magic)"),
            DecodeError::UnknownVersion(v) => write!(f, "discovery version {v}, this node speaks {VERSION}"),
            DecodeError::UnknownType(t) => write!(f, "unknown discovery message type {t}"),
            DecodeError::Length { kind, expected, got } => {
                write!(f, "a discovery {kind} is {expected} bytes, got {got}")
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        // Lengths are checked before any field is read.
        let out: [u8; N] = self.bytes[self.at..self.at + N].try_into().expect("length checked");
        self.at += N;
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
}

/// Reads a datagram. Never panics; checks the layout only (signatures and MACs are the
/// machine's to check, with [`Received::signed`] and [`Received::mac_covered`]).
pub fn decode(bytes: &[u8]) -> Result<Received, DecodeError> {
    if bytes.len() < 5 || &bytes[..3] != MAGIC {
        return Err(DecodeError::NotDiscovery);
    }
    if bytes[3] != VERSION {
        return Err(DecodeError::UnknownVersion(bytes[3]));
    }
    let (kind, expected) = match bytes[4] {
        ANNOUNCE => ("announce", ANNOUNCE_LEN),
        OFFER => ("offer", OFFER_LEN),
        ACCEPT => ("accept", ACCEPT_LEN),
        t => return Err(DecodeError::UnknownType(t)),
    };
    if bytes.len() != expected {
        return Err(DecodeError::Length { kind, expected, got: bytes.len() });
    }
    let mut r = Reader { bytes, at: 5 };
    let from = Sender { node: NodeId(r.take()), wg: WgKey(r.take()), boot: r.u64() };
    let (message, mac) = match bytes[4] {
        ANNOUNCE => (Message::Announce(Announce { from, seq: r.u64(), nonce: r.take() }), None),
        OFFER => {
            let o = Offer { from, to: NodeId(r.take()), echo: r.take(), nonce: r.take(), port: r.u16() };
            let at = r.at;
            (Message::Offer(o), Some((at, r.take())))
        }
        _ => {
            let a = Accept { from, to: NodeId(r.take()), echo: r.take(), port: r.u16() };
            let at = r.at;
            (Message::Accept(a), Some((at, r.take())))
        }
    };
    let signed = bytes[..r.at].to_vec();
    let signature = r.take();
    Ok(Received { message, signed, signature, mac })
}

/// The bytes of `message` up to its MAC (offers and accepts) or its signature (announces):
/// what the MAC covers, and the start of what the signature covers.
pub fn body(message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let from = message.sender();
    out.push(match message {
        Message::Announce(_) => ANNOUNCE,
        Message::Offer(_) => OFFER,
        Message::Accept(_) => ACCEPT,
    });
    out.extend_from_slice(&from.node.0);
    out.extend_from_slice(&from.wg.0);
    out.extend_from_slice(&from.boot.to_be_bytes());
    match message {
        Message::Announce(a) => {
            out.extend_from_slice(&a.seq.to_be_bytes());
            out.extend_from_slice(&a.nonce);
        }
        Message::Offer(o) => {
            out.extend_from_slice(&o.to.0);
            out.extend_from_slice(&o.echo);
            out.extend_from_slice(&o.nonce);
            out.extend_from_slice(&o.port.to_be_bytes());
        }
        Message::Accept(a) => {
            out.extend_from_slice(&a.to.0);
            out.extend_from_slice(&a.echo);
            out.extend_from_slice(&a.port.to_be_bytes());
        }
    }
    out
}

/// The whole datagram: `body`, then the MAC for offers and accepts (`None` for announces),
/// then the signature, which the caller computed over `body ‖ mac`.
pub fn assemble(body: &[u8], mac: Option<&[u8; 32]>, signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 96);
    out.extend_from_slice(body);
    if let Some(mac) = mac {
        out.extend_from_slice(mac);
    }
    out.extend_from_slice(signature);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(n: u8) -> Sender {
        Sender { node: NodeId([n; 33]), wg: WgKey([n + 1; 32]), boot: 0x0102_0304_0506_0708 }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn round_trip(m: Message, mac: Option<[u8; 32]>, len: usize) -> Vec<u8> {
        let body = body(&m);
        let bytes = assemble(&body, mac.as_ref(), &[0x5a; 64]);
        assert_eq!(bytes.len(), len);
        let r = decode(&bytes).expect("decodes");
        assert_eq!(r.message, m);
        assert_eq!(r.signature, [0x5a; 64]);
        assert_eq!(r.signed, bytes[..len - 64]);
        assert_eq!(r.mac.map(|(_, m)| m), mac);
        assert_eq!(r.mac_covered(), if mac.is_some() { &body[..] } else { &[][..] });
        bytes
    }

    #[test]
    fn an_announce_has_its_golden_layout_both_ways() {
        let m = Message::Announce(Announce { from: sender(2), seq: 9, nonce: [0xee; 16] });
        let bytes = round_trip(m, None, ANNOUNCE_LEN);
        let golden = [
            "4c4d440101",
            &"02".repeat(33),
            &"03".repeat(32),
            "0102030405060708",
            "0000000000000009",
            &"ee".repeat(16),
            &"5a".repeat(64),
        ]
        .concat();
        assert_eq!(hex(&bytes), golden);
        assert_eq!(ANNOUNCE_LEN, 166);
    }

    #[test]
    fn an_offer_and_an_accept_have_their_golden_layouts_both_ways() {
        let o =
            Offer { from: sender(4), to: NodeId([7; 33]), echo: [0xe1; 16], nonce: [0xa1; 16], port: 51820 };
        let bytes = round_trip(Message::Offer(o), Some([0x3c; 32]), OFFER_LEN);
        let golden = [
            "4c4d440102",
            &"04".repeat(33),
            &"05".repeat(32),
            "0102030405060708",
            &"07".repeat(33),
            &"e1".repeat(16),
            &"a1".repeat(16),
            "ca6c",
            &"3c".repeat(32),
            &"5a".repeat(64),
        ]
        .concat();
        assert_eq!(hex(&bytes), golden);
        let a = Accept { from: sender(7), to: NodeId([4; 33]), echo: [0xa1; 16], port: 51821 };
        let bytes = round_trip(Message::Accept(a), Some([0x3d; 32]), ACCEPT_LEN);
        let golden = [
            "4c4d440103",
            &"07".repeat(33),
            &"08".repeat(32),
            "0102030405060708",
            &"04".repeat(33),
            &"a1".repeat(16),
            "ca6d",
            &"3d".repeat(32),
            &"5a".repeat(64),
        ]
        .concat();
        assert_eq!(hex(&bytes), golden);
        assert_eq!((OFFER_LEN, ACCEPT_LEN), (241, 225));
    }

    #[test]
    fn malformed_datagrams_are_named_errors() {
        let good = assemble(
            &body(&Message::Announce(Announce { from: sender(1), seq: 1, nonce: [0; 16] })),
            None,
            &[0; 64],
        );
        assert_eq!(decode(b""), Err(DecodeError::NotDiscovery));
        assert_eq!(decode(b"LMD"), Err(DecodeError::NotDiscovery));
        assert_eq!(decode(b"XXX\x01\x01"), Err(DecodeError::NotDiscovery));
        assert_eq!(decode(b"LMD\x02\x01"), Err(DecodeError::UnknownVersion(2)));
        assert_eq!(decode(b"LMD\x01\x09"), Err(DecodeError::UnknownType(9)));
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(DecodeError::Length { kind: "announce", expected: 166, got: 165 })
        );
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(decode(&long), Err(DecodeError::Length { got: 167, .. })));
        // An announce header with an offer's type: the length is checked for the type.
        let mut retyped = good;
        retyped[4] = OFFER;
        assert!(matches!(decode(&retyped), Err(DecodeError::Length { kind: "offer", .. })));
        for e in [DecodeError::NotDiscovery, DecodeError::UnknownVersion(2)] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn every_prefix_and_every_byte_flip_decodes_or_errs_without_panicking() {
        let o = Offer { from: sender(4), to: NodeId([7; 33]), echo: [1; 16], nonce: [2; 16], port: 1 };
        let bytes = assemble(&body(&Message::Offer(o)), Some(&[3; 32]), &[4; 64]);
        for n in 0..=bytes.len() {
            let _ = decode(&bytes[..n]);
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
    }
}
