//! The generic driver: runs any [`Machine`] inside an actix actor.
//!
//! ```text
//!   anyone    ──Input(i)──────► Driver<M> ──Append{source, events, held effects}──► LogWriter
//!   timer     ──(fires)───────►           ──immediate effects────────────────────► deliver(effect)
//!   LogWriter ──Refused(r)────►           (resync the machine from r's durable state)
//! ```
//!
//! For every message: stamp (the [`Clock`]) → record (a trace line with the stamped input) →
//! `handle` → drain events and effects → re-arm the one timer. Events go to the log writer
//! in order; an effect marked [`Release::WhenDurable`] travels with them and is delivered by
//! the log writer once they are on flash; other effects are delivered at once. The driver
//! never waits for anyone's reply. If the log refuses the machine's events (the flash is
//! full and so is the backlog), their held effects are dropped and the driver resyncs the
//! machine ([`Resync`]) from the durable state the refusal carries, then sends with its epoch.

use super::clock::Clock;
use super::log_writer::{Append, Held, LogWriter, Refused};
use crate::events::{Event, Machine, Release, Stamp};
use crate::machines::Resync;
use crate::os::journal::{Source, SourceId};
use actix::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Source ids for the journal, one per driver in the process.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(1);

/// Where a machine's effects go: usually a closure that sends a message to an executor actor.
pub type Deliver<E> = Arc<dyn Fn(E) + Send + Sync>;

/// An input for the machine of type `I`.
pub struct Input<I>(pub I);

impl<I: 'static> Message for Input<I> {
    type Result = ();
}

pub struct Driver<M: Machine> {
    machine: M,
    clock: Clock,
    log: Addr<LogWriter>,
    deliver: Deliver<M::Effect>,
    armed: Option<(Stamp, M::Timer, SpawnHandle)>,
    source: Source,
}

impl<M> Driver<M>
where
    M: Machine + Resync + Unpin + 'static,
    M::Timer: Unpin,
    M::Event: Into<Event>,
    M::Effect: Send + 'static,
{
    pub fn new(machine: M, clock: Clock, log: Addr<LogWriter>, deliver: Deliver<M::Effect>) -> Self {
        let source = Source::new(SourceId(NEXT_SOURCE.fetch_add(1, Ordering::Relaxed)));
        Self { machine, clock, log, deliver, armed: None, source }
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        let mut events = Vec::new();
        while let Some(event) = self.machine.poll_event() {
            events.push(event.into());
        }
        let mut held = Vec::new();
        while let Some(effect) = self.machine.poll_effect() {
            match effect.release {
                Release::Immediately => (self.deliver)(effect.action),
                Release::WhenDurable => {
                    let deliver = Arc::clone(&self.deliver);
                    let action = effect.action;
                    held.push(Held::new(move || deliver(action)));
                }
            }
        }
        if !events.is_empty() || !held.is_empty() {
            let refused_to = Some(ctx.address().recipient());
            self.log.do_send(Append { source: self.source, events, held, refused_to });
        }
        self.rearm(ctx);
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        let next = self.machine.poll_timeout();
        if let (Some((at, reason)), Some((armed_at, armed_reason, _))) = (next, &self.armed) {
            if at == *armed_at && reason == *armed_reason {
                return;
            }
        }
        if let Some((_, _, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
        if let Some((at, reason)) = next {
            let handle = ctx.run_later(self.clock.until(at), move |act, ctx| {
                act.armed = None;
                let now = act.clock.now();
                tracing::trace!(%now, ?reason, "timeout");
                act.machine.handle_timeout(now, reason);
                act.drain(ctx);
            });
            self.armed = Some((at, reason, handle));
        }
    }
}

impl<M> Actor for Driver<M>
where
    M: Machine + Resync + Unpin + 'static,
    M::Timer: Unpin,
    M::Event: Into<Event>,
    M::Effect: Send + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A machine may have decided things while it was built (recovery); drain them.
        self.drain(ctx);
    }
}

impl<M> Handler<Input<M::Input>> for Driver<M>
where
    M: Machine + Resync + Unpin + 'static,
    M::Timer: Unpin,
    M::Input: 'static,
    M::Event: Into<Event>,
    M::Effect: Send + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: Input<M::Input>, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        tracing::trace!(%now, input = ?msg.0, "input");
        self.machine.handle(now, msg.0);
        self.drain(ctx);
    }
}

impl<M> Handler<Refused> for Driver<M>
where
    M: Machine + Resync + Unpin + 'static,
    M::Timer: Unpin,
    M::Event: Into<Event>,
    M::Effect: Send + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: Refused, ctx: &mut Context<Self>) {
        let refusal = msg.0;
        if refusal.epoch <= self.source.epoch {
            return; // already resynced past it
        }
        let now = self.clock.now();
        tracing::warn!(%now, reason = %refusal.reason, epoch = refusal.epoch, "the log refused this machine's records; resyncing it");
        self.source.epoch = refusal.epoch;
        self.machine.resync(now, &refusal.state);
        self.drain(ctx);
    }
}
