//! The chain: where payments settle. [`alloy::AlloyChain`] is the adapter for a real node
//! (anvil in tests); its in-memory twin, [`crate::sim::chain::ChainTwin`], lives with the
//! simulations so that pure tests can use it without the daemon feature. The executor actor
//! (`actors::chain`) runs any [`ChainAdapter`].

pub mod alloy;

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
