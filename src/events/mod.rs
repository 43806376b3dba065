//! The vocabulary shared by every layer: time ([`Stamp`]), log positions ([`Seq`]), the
//! machine contract ([`Machine`]), named deadlines ([`TimerTable`]), and each machine's
//! inputs, events and effects, with the versioned encoding of events on flash ([`codec`]).
//!
//! Pure: no I/O, no clocks, no runtime.

pub mod billing;
pub mod chain;
pub mod codec;
pub mod incident;
mod machine;
mod stamp;
mod timer;
pub mod usage;

pub use codec::{DecodeError, Event, EVENT_VERSION};
pub use machine::{Effect, Fold, Machine, Release};
pub use stamp::{Seq, Stamp};
pub use timer::TimerTable;
