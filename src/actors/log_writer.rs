//! The log writer: the one owner of the event log on flash.
//!
//! ```text
//!   drivers ──Append{source, events, held}──► LogWriter ──released effects (closures)──► destinations
//!                                                       ──Refused(refusal)────────────► the source's driver
//!   anyone  ──WatchDurable(r)──────────────►            ──Durable(seq)────────────────► r
//!   timer   ──(journal deadline)───────────►            ──write + fsync (group commit)► flash
//!   shell   ──Shutdown─────────────────────►            (flush, then stop the system)
//! ```
//!
//! A thin shell around [`Journal`]: it stamps, arms one timer for the journal's deadline,
//! delivers what the journal releases, sends each refusal to the driver whose events were
//! refused, and tells watchers the durable seq.

use super::clock::Clock;
use crate::events::{Event, Seq};
use crate::machines::NodeState;
use crate::os::journal::{Journal, JournalConfig, Refusal, Settled, Source, SourceId};
use actix::prelude::*;
use flash_layout::{DirStorage, Store};
use std::collections::BTreeMap;

/// An effect held until durable: delivering it is all that is left to do.
pub struct Held(Box<dyn FnOnce() + Send>);

impl Held {
    pub fn new(deliver: impl FnOnce() + Send + 'static) -> Self {
        Self(Box::new(deliver))
    }

    fn deliver(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held(..)")
    }
}

/// Events a driver drained, in order, and the effects released only once they are durable.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Append {
    pub source: Source,
    pub events: Vec<Event>,
    pub held: Vec<Held>,
    /// Where a refusal of these events goes (the driver itself).
    pub refused_to: Option<Recipient<Refused>>,
}

/// The log refused events of the recipient's machine: it resyncs (see `Journal`).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Refused(pub Refusal);

/// Everything up to this seq is on flash.
#[derive(Message, Clone, Copy, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct Durable(pub Seq);

#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchDurable(pub Recipient<Durable>);

/// Flush what is pending and stop the actor system.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct LogWriter {
    journal: Journal<Held>,
    clock: Clock,
    timer: Option<SpawnHandle>,
    watchers: Vec<Recipient<Durable>>,
    sources: BTreeMap<SourceId, Recipient<Refused>>,
    told: Seq,
}

impl LogWriter {
    /// A writer over a recovered store whose fold is `state`.
    pub fn new(store: Store<DirStorage>, state: NodeState, config: JournalConfig, clock: Clock) -> Self {
        let journal = Journal::new(store, state, config, clock.now());
        let told = journal.durable_seq();
        Self { journal, clock, timer: None, watchers: Vec::new(), sources: BTreeMap::new(), told }
    }

    /// Delivers what was released and the refusals, tells watchers, re-arms the timer.
    fn settle(&mut self, settled: Settled<Held>, ctx: &mut Context<Self>) {
        for held in settled.released {
            held.deliver();
        }
        for refusal in settled.refusals {
            match self.sources.get(&refusal.source) {
                Some(to) => to.do_send(Refused(refusal)),
                // Only drivers append, and every driver says where refusals go.
                None => {
                    tracing::error!(source = refusal.source.0, "a refusal for a source nobody listens for")
                }
            }
        }
        let durable = self.journal.durable_seq();
        if durable > self.told {
            self.told = durable;
            for w in &self.watchers {
                w.do_send(Durable(durable));
            }
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(deadline) = self.journal.flush_deadline() {
            self.timer = Some(ctx.run_later(self.clock.until(deadline), |act, ctx| {
                act.timer = None;
                let released = act.journal.on_timer(act.clock.now());
                act.settle(released, ctx);
            }));
        }
    }
}

impl Actor for LogWriter {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for held in self.journal.flush(self.clock.now()).released {
            held.deliver();
        }
    }
}

impl Handler<Append> for LogWriter {
    type Result = ();

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) {
        if let Some(to) = msg.refused_to {
            self.sources.entry(msg.source.id).or_insert(to);
        }
        let settled = self.journal.append(self.clock.now(), msg.source, msg.events, msg.held);
        self.settle(settled, ctx);
    }
}

impl Handler<WatchDurable> for LogWriter {
    type Result = ();

    fn handle(&mut self, msg: WatchDurable, _ctx: &mut Context<Self>) {
        msg.0.do_send(Durable(self.journal.durable_seq()));
        self.watchers.push(msg.0);
    }
}

impl Handler<Shutdown> for LogWriter {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        let settled = self.journal.flush(self.clock.now());
        self.settle(settled, ctx);
        System::current().stop();
    }
}
