//! Deterministic simulations of many nodes' machines in virtual time, with seeded faults.

pub mod alloc;
pub mod babel;
pub mod billing;
