//! The vocabulary shared by every layer: time ([`Stamp`]), log positions ([`Seq`]), the
//! machine contract ([`Machine`]), named deadlines ([`TimerTable`]), and each machine's
//! inputs, events and effects (the route sync's in [`kernel`]), with the versioned encoding
//! of events on flash ([`codec`]).
//!
//! Pure: no I/O, no clocks, no runtime.

/// A fieldless enum stored on flash as its number (one byte), with `u8` conversions that
/// refuse unknown numbers by name. New variants get new numbers; numbers are never reused.
macro_rules! numbered_enum {
    ($(#[$meta:meta])* pub enum $name:ident ($what:literal) {
        $($(#[$vmeta:meta])* $variant:ident = $n:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(into = "u8", try_from = "u8")]
        pub enum $name {
            $($(#[$vmeta])* $variant = $n,)+
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = String;
            fn try_from(n: u8) -> Result<Self, String> {
                match n {
                    $($n => Ok(Self::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " {}"), other)),
                }
            }
        }
    };
}

/// A fixed-size byte string: MessagePack bin on flash, `0x…` hex in JSON and `Display`.
macro_rules! fixed_bytes {
    ($name:ident, $len:expr, $what:expr) => {
        #[doc = concat!("A ", $what, ": ", stringify!($len), " bytes; MessagePack bin, `0x…` hex in JSON.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl Default for $name {
            fn default() -> Self {
                Self([0; $len])
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("0x")?;
                for b in self.0 {
                    ::std::write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let hex = s.strip_prefix("0x").unwrap_or(s);
                if hex.len() != $len * 2 || !hex.is_ascii() {
                    return Err(format!("a {} is {} hex digits, got {:?}", $what, $len * 2, s));
                }
                let mut out = [0u8; $len];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                        .map_err(|_| format!("not hex: {s:?}"))?;
                }
                Ok(Self(out))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_string())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        ::std::write!(f, "{} bytes or a hex string", $len)
                    }
                    fn visit_bytes<E: ::serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        let bytes: [u8; $len] =
                            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))?;
                        Ok($name(bytes))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_bytes(V)
                }
            }
        }
    };
}

pub mod billing;
pub mod chain;
pub mod codec;
pub mod discovery;
pub mod exit;
pub mod identity;
pub mod incident;
pub mod kernel;
mod machine;
pub mod routing;
mod stamp;
mod timer;
pub mod tunnel;
pub mod usage;

pub use codec::{DecodeError, Event, EVENT_VERSION};
pub use machine::{Effect, Fold, Machine, Outbox, Release};
pub use stamp::{Seq, Stamp};
pub use timer::TimerTable;
