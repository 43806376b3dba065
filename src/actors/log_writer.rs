//! The log writer: the one owner of the event log on flash.
//!
//! ```text
//!   drivers ──Append{events, held}──►  LogWriter ──released effects (closures)──► destinations
//!   anyone  ──WatchDurable(r)──────►            ──Durable(seq)──────────────────► r
//!   timer   ──(flush deadline)─────►            ──write + fsync (group commit)──► flash
//!   shell   ──Shutdown─────────────►            (flush, then stop the system)
//! ```
//!
//! A thin shell around [`Journal`]: it stamps, arms one timer for the journal's flush
//! deadline, delivers what the journal releases, and tells watchers the durable seq.

use super::clock::Clock;
use crate::events::{Event, Seq};
use crate::machines::NodeState;
use crate::os::journal::{Journal, JournalConfig};
use actix::prelude::*;
use flash_layout::{DirStorage, Store};

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
    pub events: Vec<Event>,
    pub held: Vec<Held>,
}

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
    told: Seq,
}

impl LogWriter {
    /// A writer over a recovered store whose fold is `state`.
    pub fn new(store: Store<DirStorage>, state: NodeState, config: JournalConfig, clock: Clock) -> Self {
        let journal = Journal::new(store, state, config);
        let told = journal.durable_seq();
        Self { journal, clock, timer: None, watchers: Vec::new(), told }
    }

    /// Delivers what was released, tells watchers, re-arms the flush timer.
    fn settle(&mut self, released: Vec<Held>, ctx: &mut Context<Self>) {
        for held in released {
            held.deliver();
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
        for held in self.journal.flush() {
            held.deliver();
        }
    }
}

impl Handler<Append> for LogWriter {
    type Result = ();

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) {
        let released = self.journal.append(self.clock.now(), msg.events, msg.held);
        self.settle(released, ctx);
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
        let released = self.journal.flush();
        self.settle(released, ctx);
        System::current().stop();
    }
}
