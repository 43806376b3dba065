//! The chain: where payments settle. [`twin::ChainTwin`] is the in-memory twin used by
//! simulations and tests; the alloy adapter for a real node (anvil in tests) sits beside it.

pub mod twin;
