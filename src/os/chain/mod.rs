//! The chain: where payments settle. [`twin::ChainTwin`] is the in-memory twin used by
//! simulations and tests; [`alloy::AlloyChain`] is the adapter for a real node (anvil in
//! tests). The executor actor (`actors::chain`) runs any [`ChainAdapter`].

pub mod alloy;
pub mod twin;

use crate::events::chain::{ChainCommand, ChainObservation};
use std::future::Future;

/// Answers the payments machine's chain commands. Every command gets exactly one observation
/// (`RpcFailed` naming it when the chain could not be asked); an adapter never panics on what
/// the chain says.
pub trait ChainAdapter {
    fn execute(&self, command: ChainCommand) -> impl Future<Output = ChainObservation> + Send;
}

impl ChainAdapter for self::alloy::AlloyChain {
    fn execute(&self, command: ChainCommand) -> impl Future<Output = ChainObservation> + Send {
        self::alloy::AlloyChain::execute(self, command)
    }
}
