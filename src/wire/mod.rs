//! Pure codecs for what crosses the network: Babel packets with lastmile's route-vector
//! extension ([`babel`]), discovery's announcements and exchanges ([`discovery`]); and the
//! destination [`Prefix`], which the wire, the machines and the kernel adapter share. The
//! event log's own encoding is in [`crate::events::codec`], because it is part of the
//! vocabulary, not of a protocol.

pub mod babel;
pub mod discovery;
mod prefix;

pub use prefix::{Martian, Prefix};
