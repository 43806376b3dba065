//! The routing machine's events: what it learnt about its neighbours' honesty. Routes
//! themselves are soft state (re-learnt from neighbours in seconds); the evidence that made
//! the node distrust a neighbour is not, and it explains routing choices later.

use crate::wire::babel::Prefix;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
pub enum BabelEvent {
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
