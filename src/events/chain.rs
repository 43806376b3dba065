//! Chain vocabulary: addresses, transaction hashes, amounts, and what the payments machine
//! asks of the chain adapter and learns back from it.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An amount of the settlement token, in its base unit. Encoded as a MessagePack integer
/// when it fits in 64 bits (almost always) and as 16 big-endian bytes otherwise; as a decimal
/// string in JSON, so no reader loses precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u128);

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.0.to_string())
        } else if let Ok(small) = u64::try_from(self.0) {
            s.serialize_u64(small)
        } else {
            s.serialize_bytes(&self.0.to_be_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount: an unsigned integer, 16 big-endian bytes, or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(u128::from(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Amount, E> {
                let bytes: [u8; 16] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Amount(u128::from_be_bytes(bytes)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse().map(Amount).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_any(V)
        }
    }
}

fixed_bytes!(Address, 20, "chain address");
fixed_bytes!(TxHash, 32, "transaction hash");

/// The token payments settle in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Asset {
    /// The chain's native token (wei).
    Native,
    /// An ERC-20 token at this contract address.
    Erc20(Address),
}

/// A node-local payment number, assigned in order by the payments machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PaymentId(pub u64);

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pay{}", self.0)
    }
}

/// What the payments machine asks of the chain adapter. Every request is answered by a
/// [`ChainObservation`], or by `RpcFailed` naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCommand {
    /// Sign (do not send) a transfer of `amount` to `to` with exactly this nonce.
    Sign {
        id: PaymentId,
        to: Address,
        amount: Amount,
        nonce: u64,
    },
    /// Broadcast a signed transaction. Released only once its hash is durable.
    Send {
        id: PaymentId,
        raw: Vec<u8>,
    },
    QueryReceipt {
        id: PaymentId,
        tx_hash: TxHash,
    },
    QueryHead,
    /// How many transactions of ours the chain has included (the next nonce it expects).
    QueryNonce,
    /// Transfers of the asset to us in blocks `from_block..=to_block`.
    ScanIncoming {
        from_block: u64,
        to_block: u64,
    },
}

impl ChainCommand {
    /// The request kind this command's failure is reported as (`RpcFailed { request, .. }`):
    /// the one mapping every adapter and the executor use.
    pub fn request_kind(&self) -> ChainRequestKind {
        match self {
            ChainCommand::Sign { id, .. } => ChainRequestKind::Sign(*id),
            ChainCommand::Send { id, .. } => ChainRequestKind::Send(*id),
            ChainCommand::QueryReceipt { id, .. } => ChainRequestKind::Receipt(*id),
            ChainCommand::QueryHead => ChainRequestKind::Head,
            ChainCommand::QueryNonce => ChainRequestKind::Nonce,
            ChainCommand::ScanIncoming { .. } => ChainRequestKind::Incoming,
        }
    }
}

/// A transfer of the asset seen on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub tx_hash: TxHash,
    /// The log index for an ERC-20 transfer, 0 for a native transfer.
    pub log_index: u32,
    pub from: Address,
    pub to: Address,
    pub amount: Amount,
    pub block: u64,
}

/// Where a transaction was included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub block: u64,
    /// Whether it executed successfully (a reverted ERC-20 transfer moves nothing).
    pub success: bool,
}

/// What the chain adapter learned. Faults of the chain (errors, lies, reorgs) arrive here as
/// data, never as panics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainObservation {
    Signed {
        id: PaymentId,
        tx_hash: TxHash,
        raw: Vec<u8>,
    },
    Sent {
        id: PaymentId,
    },
    /// The node refused the transaction (e.g. insufficient funds, nonce too low).
    SendRejected {
        id: PaymentId,
        reason: String,
    },
    Receipt {
        id: PaymentId,
        tx_hash: TxHash,
        included: Option<Inclusion>,
    },
    Head {
        block: u64,
    },
    Nonce {
        next: u64,
    },
    Incoming {
        from_block: u64,
        to_block: u64,
        transfers: Vec<Transfer>,
    },
    /// A request failed (timeout, connection refused, malformed answer).
    RpcFailed {
        request: ChainRequestKind,
        reason: String,
    },
}

/// Which kind of request failed, so the machine can retry the right thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainRequestKind {
    Sign(PaymentId),
    Send(PaymentId),
    Receipt(PaymentId),
    Head,
    Nonce,
    Incoming,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_compact_on_flash_and_exact_in_json() {
        let small = rmp_serde::to_vec(&Amount(300)).expect("encode");
        assert_eq!(small, vec![0xcd, 0x01, 0x2c]);
        let big = Amount(u128::MAX - 7);
        let bytes = rmp_serde::to_vec(&big).expect("encode");
        assert_eq!(bytes.len(), 18);
        assert_eq!(rmp_serde::from_slice::<Amount>(&bytes).expect("decode"), big);
        assert_eq!(rmp_serde::from_slice::<Amount>(&small).expect("decode"), Amount(300));
        let json = serde_json::to_string(&big).expect("json");
        assert_eq!(json, format!("\"{}\"", u128::MAX - 7));
        assert_eq!(serde_json::from_str::<Amount>(&json).expect("json back"), big);
    }

    /// A failure names the request it answers, with the payment it concerns: the payments
    /// machine retries by this, so every command must map to its own kind.
    #[test]
    fn every_command_reports_its_own_request_kind() {
        let id = PaymentId(4);
        for (command, kind) in [
            (
                ChainCommand::Sign { id, to: Address([7; 20]), amount: Amount(1), nonce: 0 },
                ChainRequestKind::Sign(id),
            ),
            (ChainCommand::Send { id, raw: vec![1, 2, 3] }, ChainRequestKind::Send(id)),
            (ChainCommand::QueryReceipt { id, tx_hash: TxHash([1; 32]) }, ChainRequestKind::Receipt(id)),
            (ChainCommand::QueryHead, ChainRequestKind::Head),
            (ChainCommand::QueryNonce, ChainRequestKind::Nonce),
            (ChainCommand::ScanIncoming { from_block: 1, to_block: 2 }, ChainRequestKind::Incoming),
        ] {
            assert_eq!(command.request_kind(), kind, "{command:?}");
        }
    }

    #[test]
    fn addresses_and_hashes_are_bytes_on_flash_and_hex_for_people() {
        let a: Address = "0x00000000000000000000000000000000000000ff".parse().expect("hex");
        assert_eq!(a.0[19], 0xff);
        let bytes = rmp_serde::to_vec(&a).expect("encode");
        assert_eq!(bytes.len(), 22, "bin8 header + 20 bytes");
        assert_eq!(rmp_serde::from_slice::<Address>(&bytes).expect("decode"), a);
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            "\"0x00000000000000000000000000000000000000ff\""
        );
        assert!("0x12".parse::<Address>().is_err());
        assert!("zz00000000000000000000000000000000000000".parse::<Address>().is_err());
        assert!(rmp_serde::from_slice::<TxHash>(&bytes).is_err(), "20 bytes are not a hash");
    }
}
