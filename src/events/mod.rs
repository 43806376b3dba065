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

pub mod billing;
pub mod chain;
pub mod codec;
pub mod exit;
pub mod incident;
pub mod kernel;
mod machine;
pub mod routing;
mod stamp;
mod timer;
pub mod usage;

pub use codec::{DecodeError, Event, EVENT_VERSION};
pub use machine::{Effect, Fold, Machine, Outbox, Release};
pub use stamp::{Seq, Stamp};
pub use timer::TimerTable;
