//! lastmile: one node of a decentralized, self-billing ISP.
//!
//! Layers, top to bottom (arrows point down only):
//!
//! - `cli` — the command line (daemon feature)
//! - `actors` — the actix shell: drivers, log writer, clock (daemon feature)
//! - `os` — adapters to the outside world, each with an in-memory twin (daemon feature)
//! - [`sim`] — deterministic simulations in virtual time, the chain twin and the shared test
//!   driver: simulation and test support, pure (built without the daemon feature)
//! - [`machines`] — pure sans-IO state machines
//! - [`wire`] — pure codecs
//! - [`events`] — the vocabulary: stamps, sequence numbers, inputs, events, effects
//!
//! The pure layers build with `--no-default-features` and use no runtime, no sockets, no
//! files and no clocks.

pub mod events;
pub mod machines;
pub mod rng;
pub mod sim;
pub mod wire;

#[cfg(feature = "daemon")]
pub mod actors;
#[cfg(feature = "daemon")]
pub mod cli;
#[cfg(feature = "daemon")]
pub mod os;
