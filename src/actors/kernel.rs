//! Kernel executors: actors that carry out kernel work described as data and feed the
//! results back to a machine as inputs.
//!
//! ```text
//!   Driver<UsageMachine> ──ReadCounters──► CounterReader ──Input(Counters)──► Driver<UsageMachine>
//! ```

use super::driver::Input;
use crate::events::usage::UsageInput;
use crate::os::counters::CounterSource;
use actix::prelude::*;

#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct ReadCounters;

pub struct CounterReader<S: CounterSource> {
    source: S,
    reply: Recipient<Input<UsageInput>>,
}

impl<S: CounterSource + Unpin + 'static> CounterReader<S> {
    pub fn new(source: S, reply: Recipient<Input<UsageInput>>) -> Self {
        Self { source, reply }
    }
}

impl<S: CounterSource + Unpin + 'static> Actor for CounterReader<S> {
    type Context = Context<Self>;
}

impl<S: CounterSource + Unpin + 'static> Handler<ReadCounters> for CounterReader<S> {
    type Result = ();

    fn handle(&mut self, _msg: ReadCounters, _ctx: &mut Context<Self>) {
        match self.source.read() {
            Ok(samples) => self.reply.do_send(Input(UsageInput::Counters(samples))),
            // The machine polls again at its next deadline; counters are cumulative, so a
            // missed reading loses nothing.
            Err(e) => tracing::warn!(%e, "reading counters failed"),
        }
    }
}
