//! The vocabulary of exits: users pay the exit for what it sends down to them and for what it
//! carries up for them, against signed cumulative usage statements.
//!
//! The exit counts, per user (named by its payment [`Address`]), the bytes it sent down
//! (download) and the bytes it received from the user (upload) on the user's exit tunnel. It
//! prices download at its exit price plus the path price down, upload at its exit price, and
//! periodically signs a cumulative [`Statement`]. The user checks each statement against its
//! own counters within its loss tolerance, and either accepts it (what it owes the exit is the
//! statement's amount due) or disputes it, saying why and by how much.
//!
//! The signed bytes and the digest are defined in [`crate::machines::exit::statement`].

use super::chain::{Address, Amount};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A cumulative usage statement of one exit for one user: everything since the user's first
/// byte, not a delta, so a lost statement loses nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub user: Address,
    pub exit: Address,
    /// Increases by one with every statement the exit issues to this user.
    pub seq: u64,
    /// Bytes the exit sent down to the user.
    pub download_bytes: u64,
    /// Bytes the exit received from the user.
    pub upload_bytes: u64,
    /// What the user owes for all of it (base units).
    pub amount_due: Amount,
}

/// A recoverable secp256k1 ECDSA signature, `r ‖ s ‖ v` (65 bytes, `v` 27 or 28 as Ethereum
/// writes it; 0 or 1 are accepted too). MessagePack bin on flash, `0x…` hex for people.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 65-byte signature or its hex")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                let bytes: [u8; 65] = v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Signature(bytes))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Signature, E> {
                let hex = v.strip_prefix("0x").unwrap_or(v);
                if hex.len() != 130 || !hex.is_ascii() {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                let mut out = [0u8; 65];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))?;
                }
                Ok(Signature(out))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V)
        } else {
            d.deserialize_bytes(V)
        }
    }
}

/// A statement with the exit's signature over its bytes, as sent to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    pub statement: Statement,
    pub signature: Signature,
}

/// One reading of a user's exit tunnel counters at the exit: cumulative and monotonic; a value
/// lower than the previous one is a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCounters {
    pub user: Address,
    /// Bytes sent down to the user.
    pub download_bytes: u64,
    /// Bytes received from the user.
    pub upload_bytes: u64,
}

/// What the exit role learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitInput {
    /// Per-user tunnel counters (answer to [`ExitEffect::ReadCounters`]).
    Counters(Vec<UserCounters>),
    /// The prices in force for `user` from now on: the exit's own price per byte and the price
    /// of the path down to the user (what the exit pays the forwarders).
    Prices { user: Address, exit_price_per_byte: u64, path_price_per_byte: u64 },
    /// The adapter signed the statement issued as `seq` for `user` (answer to
    /// [`ExitEffect::SignStatement`]).
    Signed { user: Address, seq: u64, signature: Signature },
}

/// What the user role learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitUserInput {
    /// We use `exit` (its payment address, from configuration or its authenticated identity).
    Bind { exit: Address },
    /// The prices `exit` quotes us now (exit price, path price down).
    Quoted { exit: Address, exit_price_per_byte: u64, path_price_per_byte: u64 },
    /// Our own cumulative byte counts on the tunnel to `exit`, across counter resets (the
    /// usage ledger's totals for that tunnel plus what is pending).
    OwnCounters { exit: Address, rx_bytes: u64, tx_bytes: u64 },
    /// A statement arrived from the network: untrusted until verified.
    Statement(SignedStatement),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitTimer {
    /// Read the per-user counters.
    Poll,
    /// Account pending bytes and issue statements.
    Statement,
}

/// What the exit role asks of the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitEffect {
    ReadCounters,
    /// Sign this statement with the payment key and answer with [`ExitInput::Signed`].
    SignStatement(Statement),
    /// Send the signed statement to its user. Released once its signature is durable.
    SendStatement(SignedStatement),
    /// An amount would overflow u128: the bytes stay pending, the operator is told.
    Refused {
        reason: String,
    },
}

/// What the user role tells the rest of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitUserEffect {
    /// We accepted that we owe `exit` this much in total (cumulative). Released once the
    /// acceptance is durable; the shell hands it to billing as
    /// `BillingInput::ExitStatementAccepted` for the tunnel to that exit, and billing pays it.
    Owe { exit: Address, amount_due: Amount },
}

numbered_enum! {
    /// Why a user refused a statement.
    pub enum DisputeReason ("dispute reason") {
        /// The statement names another user.
        WrongUser = 1,
        /// The statement names an exit we do not use.
        UnknownExit = 2,
        /// The signature does not parse or recovers to no key.
        BadSignature = 3,
        /// The signature is valid but by another key than the named exit's.
        WrongSigner = 4,
        /// The statement's seq is not above the last accepted one (`by`: how far below or
        /// equal, as last accepted − seq).
        SeqNotIncreasing = 5,
        /// A cumulative value went down (`by`: how much).
        DownloadDecreased = 6,
        UploadDecreased = 7,
        AmountDecreased = 8,
        /// The exit claims more download than we received plus the loss tolerance (`by`: bytes
        /// beyond the tolerance).
        DownloadAboveTolerance = 9,
        /// The exit claims more upload than we sent (`by`: bytes beyond what we sent).
        UploadAboveSent = 10,
        /// The amount grew more than the new bytes at the highest prices quoted to us allow
        /// (`by`: base units beyond that).
        AmountAbovePrices = 11,
    }
}

impl fmt::Display for DisputeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Durable facts of both roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitEvent {
    // The exit role.
    /// Prices for `user` from now on.
    PricesSet { user: Address, exit_price_per_byte: u64, path_price_per_byte: u64 },
    /// Bytes counted for `user` since its previous record, at the prices written here.
    Accrued {
        user: Address,
        download_bytes: u64,
        upload_bytes: u64,
        exit_price_per_byte: u64,
        path_price_per_byte: u64,
    },
    /// A user's tunnel counter went backwards (see [`super::usage::CounterReset`]).
    CounterReset {
        user: Address,
        download_reset: bool,
        upload_reset: bool,
        download_counted: u64,
        upload_counted: u64,
        download_observed: u64,
        upload_observed: u64,
    },
    /// A statement was decided; the shell is asked to sign it.
    StatementIssued(Statement),
    /// Its signature, durable before the statement leaves the node.
    StatementSigned { user: Address, seq: u64, signature: Signature },

    // The user role.
    /// We use this exit.
    Bound { exit: Address },
    /// The exit quotes us these prices from now on.
    Quoted { exit: Address, exit_price_per_byte: u64, path_price_per_byte: u64 },
    /// We accepted the statement: we owe `amount_due` in total. `own_rx_bytes` and
    /// `own_tx_bytes` are the counts it was checked against (evidence for a dispute).
    StatementAccepted { statement: Statement, own_rx_bytes: u64, own_tx_bytes: u64 },
    /// We refused statement `seq` of `exit` for `reason`, off by `by` (bytes, base units or
    /// seqs, as the reason says; 0 where there is no measure).
    StatementDisputed { exit: Address, seq: u64, reason: DisputeReason, by: u128 },
}

impl ExitEvent {
    /// Money at risk if the record were lost (base units): what an accrual bills. Statements
    /// are cumulative, so losing one loses nothing the next does not restate.
    pub fn value(&self) -> u128 {
        match self {
            ExitEvent::Accrued {
                download_bytes,
                upload_bytes,
                exit_price_per_byte,
                path_price_per_byte,
                ..
            } => accrual_amount(*download_bytes, *upload_bytes, *exit_price_per_byte, *path_price_per_byte)
                .unwrap_or(u128::MAX),
            _ => 0,
        }
    }

    /// Records that go with a promise to another node: a signed statement about to be sent, an
    /// acceptance of debt, a dispute.
    pub fn is_urgent(&self) -> bool {
        matches!(
            self,
            ExitEvent::StatementSigned { .. }
                | ExitEvent::StatementAccepted { .. }
                | ExitEvent::StatementDisputed { .. }
        )
    }
}

/// What `download_bytes` and `upload_bytes` cost at these prices: download × (exit price + path
/// price down) + upload × exit price, or `None` if that overflows u128.
pub fn accrual_amount(
    download_bytes: u64,
    upload_bytes: u64,
    exit_price_per_byte: u64,
    path_price_per_byte: u64,
) -> Option<u128> {
    let down_price = u128::from(exit_price_per_byte) + u128::from(path_price_per_byte);
    let down = u128::from(download_bytes).checked_mul(down_price)?;
    let up = u128::from(upload_bytes) * u128::from(exit_price_per_byte);
    down.checked_add(up)
}
