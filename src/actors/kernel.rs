//! Kernel executors: actors that carry out kernel work described as data and feed the
//! results back to a machine as inputs.
//!
//! ```text
//!   Driver<UsageMachine> ──ReadCounters──► CounterReader ──Input(Counters)──► Driver<UsageMachine>
//! ```

use super::clock::Clock;
use super::driver::Input;
use crate::events::usage::UsageInput;
use crate::os::counters::CounterSource;
use crate::os::throttle::Throttle;
use crate::throttled_error;
use actix::prelude::*;

#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct ReadCounters;

pub struct CounterReader<S: CounterSource> {
    source: S,
    reply: Recipient<Input<UsageInput>>,
    clock: Clock,
    throttle: Throttle,
}

impl<S: CounterSource + Unpin + 'static> CounterReader<S> {
    pub fn new(source: S, reply: Recipient<Input<UsageInput>>, clock: Clock) -> Self {
        Self { source, reply, clock, throttle: Throttle::default() }
    }
}

impl<S: CounterSource + Unpin + 'static> Actor for CounterReader<S> {
    type Context = Context<Self>;
}

impl<S: CounterSource + Unpin + 'static> Handler<ReadCounters> for CounterReader<S> {
    type Result = ();

    fn handle(&mut self, _msg: ReadCounters, _ctx: &mut Context<Self>) {
        match self.source.read() {
            Ok(samples) => {
                if let Some(suppressed) = self.throttle.cleared("counters") {
                    tracing::warn!(failures_not_reported = suppressed, "counters are readable again");
                }
                self.reply.do_send(Input(UsageInput::Counters(samples)))
            }
            // The machine polls again at its next deadline; counters are cumulative, so a
            // missed reading loses nothing.
            Err(e) => {
                let now = self.clock.now();
                throttled_error!(self.throttle, "counters", now, %e, "reading counters failed");
            }
        }
    }
}
