//! Adapters to the outside world. Each sits behind a trait (or a small API) with an
//! in-memory twin for pure-logic and simulation tests. Adapters know the effect types and
//! the outside world, and nothing about decisions.

pub mod babel_socket;
pub mod chain;
pub mod counters;
pub mod flash;
pub mod gate;
pub mod interfaces;
pub mod journal;
pub mod keyfile;
pub mod prober;
pub mod routes;
pub mod statement_signer;
pub mod throttle;
