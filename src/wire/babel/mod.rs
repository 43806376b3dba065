//! The Babel routing protocol on the wire (RFC 8966), with the v4-via-v6 address encoding
//! (RFC 9229), the timestamp sub-TLVs (RFC 9616) and lastmile's route-vector sub-TLV
//! (`docs/babel-route-vector.md`).
//!
//! A packet decodes into a list of [`Tlv`] values in wire order. The parser state the RFC
//! keeps per packet (current Router-Id, next hops, the previous prefix of every address
//! encoding for compression) is resolved by the decoder: every [`Update`] carries its full
//! prefix, its originator's router-id and its next hop, so the machines never see compression.
//! The encoder does the reverse: it emits Router-Id and Next Hop TLVs only when the state
//! changes and compresses prefixes against the previous one of the same encoding.
//!
//! The decoder never panics: anything malformed is an error for the packet or, where the RFC
//! says so, a TLV that is skipped (see [`decode`]).

mod codec;
mod types;

pub use codec::{
    decode, encode, encode_into, DecodeError, Decoded, Encoder, IgnoreReason, Ignored, SUBTLV_ROUTE_VECTOR,
};
pub use types::*;
// The prefix type is the wire's, the machines' and the kernel adapter's; named here too, where
// the codec's users have always found it.
pub use crate::wire::prefix::{Martian, Prefix};

/// UDP port of Babel (RFC 8966 §5).
pub const PORT: u16 = 6696;
/// The link-local multicast group of Babel over IPv6: ff02::1:6.
pub const MULTICAST_V6: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x06];
/// First byte of every Babel packet.
pub const MAGIC: u8 = 42;
/// The protocol version this codec speaks.
pub const VERSION: u8 = 2;

#[cfg(test)]
mod tests;
