//! The chain executor: carries out the billing machine's chain commands and feeds what the
//! chain said back to it as inputs.
//!
//! ```text
//!   Driver<BillingMachine> ──Execute(cmd)──► ChainExecutor ──spawn(adapter.execute(cmd))──► chain RPC
//!   (each future, when it resolves) ──Input(BillingInput::Chain(obs))──► Driver<BillingMachine>
//! ```
//!
//! The handler only spawns: it never awaits the chain nor any actor, so a slow or dead chain
//! endpoint delays answers, never the actor system. Answers come back in the order the chain
//! gives them, not the order asked; the machine matches each to its question. `Sign` and `Send`
//! reach this actor only once the events behind them are durable (the driver hands them to the
//! log writer, which releases them), so this actor needs no knowledge of persistence.
//!
//! Every command is answered exactly once: past [`MAX_IN_FLIGHT`] calls, a command is answered
//! at once with `RpcFailed` (the machine asks again at its next chain poll), because a command
//! silently dropped would leave the machine waiting for an answer that never comes.

use super::clock::Clock;
use super::driver::{Deliver, Input};
use crate::events::billing::{BillingEffect, BillingInput};
use crate::events::chain::{ChainCommand, ChainObservation};
use crate::os::chain::ChainAdapter;
use crate::os::throttle::Throttle;
use crate::throttled_error;
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The most chain calls one node has outstanding at once.
pub const MAX_IN_FLIGHT: usize = 32;

/// Carry out one chain command.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct Execute(pub ChainCommand);

pub struct ChainExecutor<C: ChainAdapter> {
    chain: Arc<C>,
    reply: Recipient<Input<BillingInput>>,
    in_flight: Arc<AtomicUsize>,
    clock: Clock,
    throttle: Throttle,
}

impl<C: ChainAdapter + Send + Sync + 'static> ChainExecutor<C> {
    pub fn new(chain: C, reply: Recipient<Input<BillingInput>>, clock: Clock) -> Self {
        Self {
            chain: Arc::new(chain),
            reply,
            in_flight: Arc::new(AtomicUsize::new(0)),
            clock,
            throttle: Throttle::default(),
        }
    }

    /// Calls outstanding now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Routes the billing machine's chain effects to `executor`; the other effects go to `rest`.
/// Use it to build the billing driver's [`Deliver`].
pub fn deliver_billing<C: ChainAdapter + Send + Sync + 'static>(
    executor: Addr<ChainExecutor<C>>,
    rest: impl Fn(BillingEffect) + Send + Sync + 'static,
) -> Deliver<BillingEffect> {
    Arc::new(move |effect| match effect {
        BillingEffect::Chain(command) => executor.do_send(Execute(command)),
        other => rest(other),
    })
}

impl<C: ChainAdapter + Send + Sync + 'static> Actor for ChainExecutor<C> {
    type Context = Context<Self>;
}

impl<C: ChainAdapter + Send + Sync + 'static> Handler<Execute> for ChainExecutor<C> {
    type Result = ();

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) {
        let command = msg.0;
        if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            let reason = format!("{MAX_IN_FLIGHT} chain calls already outstanding");
            let now = self.clock.now();
            throttled_error!(self.throttle, "chain busy", now, ?command, "chain executor busy");
            let request = command.request_kind();
            self.reply.do_send(Input(BillingInput::Chain(ChainObservation::RpcFailed { request, reason })));
            return;
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let chain = Arc::clone(&self.chain);
        let reply = self.reply.clone();
        let in_flight = Arc::clone(&self.in_flight);
        // Spawned on the actor's context: the call runs while the actor handles other
        // messages, and is dropped with the actor.
        ctx.spawn(
            async move {
                let observation = chain.execute(command).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                tracing::trace!(?observation, "chain answered");
                reply.do_send(Input(BillingInput::Chain(observation)));
            }
            .into_actor(self),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::chain::{Address, Amount, PaymentId};
    use crate::sim::chain::{ChainFaults, ChainTwin};
    use std::sync::Mutex;
    use std::time::Duration;

    const US: Address = Address([0xaa; 20]);

    /// The twin as an adapter; `gate` holds every answer until opened, to show the executor
    /// keeps handling messages while calls are outstanding.
    struct Twin {
        chain: Mutex<ChainTwin>,
        gate: tokio::sync::watch::Receiver<bool>,
    }

    impl ChainAdapter for Twin {
        fn execute(
            &self,
            command: ChainCommand,
        ) -> impl std::future::Future<Output = ChainObservation> + Send {
            let mut gate = self.gate.clone();
            // The lock is held only here, never across an await.
            let answer = self.chain.lock().map(|mut c| c.handle(US, command)).ok();
            async move {
                // An error only means the sender is gone; answer anyway.
                let _ = gate.wait_for(|open| *open).await;
                answer.unwrap_or(ChainObservation::RpcFailed {
                    request: crate::events::chain::ChainRequestKind::Head,
                    reason: "poisoned".into(),
                })
            }
        }
    }

    /// Collects what the executor sends back.
    struct Sink(Arc<Mutex<Vec<ChainObservation>>>);

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Input<BillingInput>> for Sink {
        type Result = ();
        fn handle(&mut self, msg: Input<BillingInput>, _ctx: &mut Context<Self>) {
            if let BillingInput::Chain(obs) = msg.0 {
                self.0.lock().expect("not poisoned").push(obs);
            }
        }
    }

    #[actix_rt::test]
    async fn every_command_is_answered_as_an_input_without_blocking_the_actor() {
        let mut twin = ChainTwin::new(1, ChainFaults::default());
        twin.fund(US, 1_000);
        let (open, gate) = tokio::sync::watch::channel(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&seen)).start();
        let executor =
            ChainExecutor::new(Twin { chain: Mutex::new(twin), gate }, sink.recipient(), Clock::start(1))
                .start();
        let deliver = deliver_billing(executor.clone(), |_| {});

        let id = PaymentId(0);
        deliver(BillingEffect::Chain(ChainCommand::QueryHead));
        deliver(BillingEffect::Chain(ChainCommand::Sign {
            id,
            to: Address([1; 20]),
            amount: Amount(5),
            nonce: 0,
        }));
        deliver(BillingEffect::ReadCounters); // not a chain effect: goes elsewhere
                                              // Every answer is held at the gate, yet the executor still takes messages.
        executor.send(Execute(ChainCommand::QueryNonce)).await.expect("the actor answers while calls wait");
        assert!(seen.lock().expect("not poisoned").is_empty());

        open.send(true).expect("the twin waits on the gate");
        for _ in 0..100 {
            if seen.lock().expect("not poisoned").len() == 3 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = seen.lock().expect("not poisoned").clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.contains(&ChainObservation::Head { block: 0 }));
        assert!(seen.contains(&ChainObservation::Nonce { next: 0 }));
        assert!(seen.iter().any(|o| matches!(o, ChainObservation::Signed { id: PaymentId(0), .. })));
    }
}
