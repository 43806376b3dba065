//! Deterministic simulations of many nodes' machines in virtual time, with seeded faults, and
//! what they and the tests share: the in-memory chain twin ([`chain`]) and the one drive loop
//! ([`drive`]).
//!
//! Simulation and test support, not part of a node: a router never runs this code. It is pure
//! (no runtime, no sockets, no files, no clocks), so it builds without the `daemon` feature and
//! the pure layers' own tests, the `replay` crate's tests and the integration tests can all use
//! it.

pub mod alloc;
pub mod babel;
pub mod billing;
pub mod chain;
pub mod drive;
