//! Route sync: keeps the kernel's main table in line with the routes the routing machine
//! selected. Pure and sans-IO like quinn-proto: it is told the changes wanted
//! ([`RouteSync::change`]) and the kernel's answers, and says what to ask of the kernel next
//! ([`RouteSync::poll_action`]) and when to wake it ([`RouteSync::poll_timeout`]). The shell
//! (`actors::babel::RouteExecutor`) only carries out its [`RouteAction`]s over rtnetlink,
//! arms the one timer, feeds the answers back, and logs.
//!
//! - The latest change wanted per destination waits in `pending`; what has accumulated goes
//!   out as one batch ([`RouteAction::Apply`]) at the next poll, one batch in flight at a time:
//!   changes arriving meanwhile form the next batch. A shell that polls once per turn of its
//!   event loop so batches the effects of one routing step.
//! - A delete the kernel answers with not-found counts as applied (the route went with its
//!   interface: what was wanted). Any other refusal is kept and goes again with the next
//!   batch, and on a back-off timer ([`RouteTimer::Retry`]: 1 s, doubling to 30 s, back to 1 s
//!   once a batch leaves nothing refused), unless a newer change to the same destination
//!   replaces it.
//! - Every 5 s ([`RouteTimer::Reconcile`]) it lists the kernel's routes of ours
//!   ([`RouteAction::List`]) and queues what repairs the difference with what is wanted (the
//!   kernel drops routes through an interface that blinks down, faster than a link watcher
//!   may notice): a replace for every wanted route missing or different, a delete for every
//!   route of ours nobody wants. Destinations with a change waiting, or a refused change
//!   awaiting its retry, are left alone. Skipped while anything is in flight or changes wait.
//! - At start it purges the routes a previous run left behind ([`RouteAction::PurgeStale`]);
//!   changes wait until that is done.
//! - [`RouteSync::drain`] (shutdown): pending changes are applied first, refused ones are not
//!   waited for; then every route of ours is removed ([`RouteAction::PurgeAll`]), after which
//!   the shell answers the drains. Changes after that are ignored.
//!
//! It keeps no durable state (routes are soft state, re-learnt in seconds) and emits no
//! events, so it is not a [`crate::events::Machine`]: its inputs are the answers to its own
//! actions, fed back one method each.

use crate::events::kernel::{KernelAnswer, KernelRoute, RouteAction, RouteOp, RouteTimer};
use crate::events::{Stamp, TimerTable};
use crate::wire::Prefix;
use std::collections::BTreeMap;

/// The first retry of refused changes, after the refusal.
pub const RETRY_FIRST_MS: u64 = 1_000;
/// The longest wait between retries.
pub const RETRY_MAX_MS: u64 = 30_000;
/// How often the kernel's routes of ours are compared with the wanted ones.
pub const RECONCILE_EVERY_MS: u64 = 5_000;

/// Counters of the route sync, for logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub batches: u64,
    pub applied: u64,
    pub failed: u64,
}

/// What became of a batch ([`RouteSync::applied`]), for the shell's logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Changes the kernel carried out (or a delete of a route already gone).
    pub applied: Vec<RouteOp>,
    /// Changes the kernel refused, with its reason; each goes again with the next batch and
    /// on the back-off timer, unless a newer change to its destination replaces it.
    pub refused: Vec<(RouteOp, String)>,
}

/// What is in flight: asked of the kernel and not answered yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flight {
    Purge,
    Batch,
    List,
}

/// Where a drain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    /// None asked for, or the last one is done (asking again purges again).
    No,
    /// Asked for: the final purge goes once nothing is in flight and no change waits.
    Asked,
    /// The final purge is in flight; drains asked for meanwhile are answered by it.
    Purging,
}

/// Keeps the kernel's routes of ours in line with the wanted ones (see the module docs).
#[derive(Clone, Debug)]
pub struct RouteSync {
    /// The latest change wanted per destination, not yet applied.
    pending: BTreeMap<Prefix, RouteOp>,
    /// Every route the routing machine wants in the kernel now.
    wanted: BTreeMap<Prefix, KernelRoute>,
    /// Changes the kernel refused, retried with the next batch or when the timer fires.
    failed: BTreeMap<Prefix, RouteOp>,
    in_flight: Option<Flight>,
    /// An action decided (and put in flight) but not polled yet.
    ready: Option<RouteAction>,
    /// A batch goes out at the next poll: what has accumulated until then is in it.
    flush: bool,
    /// The wait before the next retry timer.
    retry_ms: u64,
    /// The retry timer fired: refused changes go again even if nothing else waits.
    retry_due: bool,
    timers: TimerTable<RouteTimer>,
    drain: Drain,
    /// The final purge has begun: changes are ignored.
    stopped: bool,
    stats: RouteStats,
}

impl RouteSync {
    /// A route sync starting at `at`: its first action purges what a previous run left.
    pub fn new(at: Stamp) -> Self {
        let mut timers = TimerTable::new();
        timers.set(RouteTimer::Reconcile, at.plus_ms(RECONCILE_EVERY_MS));
        RouteSync {
            pending: BTreeMap::new(),
            wanted: BTreeMap::new(),
            failed: BTreeMap::new(),
            in_flight: Some(Flight::Purge),
            ready: Some(RouteAction::PurgeStale),
            flush: false,
            retry_ms: RETRY_FIRST_MS,
            retry_due: false,
            timers,
            drain: Drain::No,
            stopped: false,
            stats: RouteStats::default(),
        }
    }

    /// The routing machine wants this change; the latest one per destination wins. Ignored
    /// once the final purge has begun.
    pub fn change(&mut self, op: RouteOp) {
        if self.stopped {
            return;
        }
        match op {
            RouteOp::Replace(r) => self.wanted.insert(r.dst, r),
            RouteOp::Delete(d) => self.wanted.remove(&d),
        };
        self.pending.insert(op.dst(), op);
        self.settle();
    }

    /// Shutdown: apply what is pending (not waiting for refused changes), then remove every
    /// route of ours ([`RouteAction::PurgeAll`]).
    pub fn drain(&mut self) {
        self.retry_due = false;
        if self.drain == Drain::No {
            self.drain = Drain::Asked;
        }
        self.settle();
    }

    /// The kernel's answers to the batch in flight, at `at`: every change with its answer.
    pub fn applied(&mut self, at: Stamp, results: Vec<(RouteOp, KernelAnswer)>) -> BatchOutcome {
        self.in_flight = None;
        let mut outcome = BatchOutcome::default();
        for (op, answer) in results {
            let refusal = match (answer, op) {
                (KernelAnswer::Done, _) => None,
                // Gone already (its interface went away and took it along): what we wanted.
                (KernelAnswer::NotFound, RouteOp::Delete(_)) => None,
                (KernelAnswer::NotFound, RouteOp::Replace(_)) => {
                    Some("the kernel has no such route".to_string())
                }
                (KernelAnswer::Refused(reason), _) => Some(reason),
            };
            match refusal {
                None => {
                    self.stats.applied += 1;
                    outcome.applied.push(op);
                }
                Some(reason) => {
                    self.stats.failed += 1;
                    if !self.pending.contains_key(&op.dst()) {
                        self.failed.insert(op.dst(), op);
                    }
                    outcome.refused.push((op, reason));
                }
            }
        }
        if self.failed.is_empty() {
            self.retry_ms = RETRY_FIRST_MS;
        } else if self.timers.deadline(RouteTimer::Retry).is_none() && !self.stopped {
            self.timers.set(RouteTimer::Retry, at.plus_ms(self.retry_ms));
            self.retry_ms = (self.retry_ms * 2).min(RETRY_MAX_MS);
        }
        self.settle();
        outcome
    }

    /// The kernel's routes of ours, as listed for a reconcile. Queues what repairs the
    /// difference and returns how many repairs that is.
    pub fn listed(&mut self, in_kernel: &[KernelRoute]) -> usize {
        self.in_flight = None;
        let repairs = if self.stopped { 0 } else { self.repair(in_kernel) };
        self.settle();
        repairs
    }

    /// The kernel's routes could not be listed: no repairs this time.
    pub fn list_failed(&mut self) {
        self.in_flight = None;
        self.settle();
    }

    /// The purge in flight ([`RouteAction::PurgeStale`] or [`RouteAction::PurgeAll`]) is
    /// over, whatever its result.
    pub fn purged(&mut self) {
        self.in_flight = None;
        if self.drain == Drain::Purging {
            self.drain = Drain::No;
        }
        self.settle();
    }

    /// The deadline `timer` has passed; `at` is the current time.
    pub fn handle_timeout(&mut self, at: Stamp, timer: RouteTimer) {
        match timer {
            RouteTimer::Retry => {
                self.timers.clear(RouteTimer::Retry);
                self.retry_due = true;
                self.settle();
            }
            RouteTimer::Reconcile => {
                if self.stopped {
                    self.timers.clear(RouteTimer::Reconcile);
                    return;
                }
                let next =
                    self.timers.deadline(RouteTimer::Reconcile).unwrap_or(at).plus_ms(RECONCILE_EVERY_MS);
                let next = if next > at { next } else { at.plus_ms(RECONCILE_EVERY_MS) };
                self.timers.set(RouteTimer::Reconcile, next);
                if self.in_flight.is_none() && !self.flush && self.pending.is_empty() {
                    self.in_flight = Some(Flight::List);
                    self.ready = Some(RouteAction::List);
                }
            }
        }
    }

    /// What to ask of the kernel now, if anything. Poll until `None` after every input; a
    /// batch holds every change that arrived before the poll.
    pub fn poll_action(&mut self) -> Option<RouteAction> {
        if let Some(action) = self.ready.take() {
            return Some(action);
        }
        if !self.flush || self.in_flight.is_some() {
            return None;
        }
        self.flush = false;
        // Refused changes go again, unless a newer change to the same destination replaces them.
        let mut batch = std::mem::take(&mut self.failed);
        batch.append(&mut self.pending);
        self.retry_due = false;
        if batch.is_empty() {
            self.settle();
            return self.ready.take();
        }
        self.in_flight = Some(Flight::Batch);
        self.stats.batches += 1;
        Some(RouteAction::Apply(batch.into_values().collect()))
    }

    /// The earliest deadline and why; the shell arms one timer for it.
    pub fn poll_timeout(&self) -> Option<(Stamp, RouteTimer)> {
        self.timers.earliest()
    }

    pub fn stats(&self) -> RouteStats {
        self.stats
    }

    /// The final purge has begun: changes are ignored from now on.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The route wanted to `dst` now, applied or not.
    pub fn wanted(&self, dst: &Prefix) -> Option<&KernelRoute> {
        self.wanted.get(dst)
    }

    /// Decides what follows from the state now: a batch at the next poll if changes wait (or
    /// refused ones are due), else the final purge if a drain was asked for.
    fn settle(&mut self) {
        if self.in_flight.is_some() || self.flush {
            return;
        }
        if !self.pending.is_empty() || (self.retry_due && !self.failed.is_empty()) {
            self.flush = true;
        } else if self.drain == Drain::Asked {
            self.drain = Drain::Purging;
            self.stopped = true;
            self.in_flight = Some(Flight::Purge);
            self.ready = Some(RouteAction::PurgeAll);
            self.failed.clear();
            self.timers.clear(RouteTimer::Retry);
            self.timers.clear(RouteTimer::Reconcile);
        }
    }

    /// Queues a replace for every wanted route the kernel lacks (or has otherwise) and a delete
    /// for every route of ours nobody wants, leaving destinations with a change waiting or a
    /// refused change alone. Returns how many were queued.
    fn repair(&mut self, in_kernel: &[KernelRoute]) -> usize {
        let untouched = |d: &Prefix| !self.pending.contains_key(d) && !self.failed.contains_key(d);
        let present: BTreeMap<Prefix, KernelRoute> = in_kernel.iter().map(|r| (r.dst, *r)).collect();
        let mut repairs = Vec::new();
        for (dst, route) in &self.wanted {
            if untouched(dst) && present.get(dst) != Some(route) {
                repairs.push(RouteOp::Replace(*route));
            }
        }
        for dst in present.keys() {
            if untouched(dst) && !self.wanted.contains_key(dst) {
                repairs.push(RouteOp::Delete(*dst));
            }
        }
        let n = repairs.len();
        for op in repairs {
            self.pending.insert(op.dst(), op);
        }
        n
    }
}

#[cfg(test)]
mod tests;
