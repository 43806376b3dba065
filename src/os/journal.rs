//! The journal: the node's event log on flash, as the log writer uses it.
//!
//! It wraps `flash_layout::Store` with what the shell needs beyond the store's own group
//! commit: a maximum delay for any pending record (in stamps, so simulations run it in
//! virtual time), the persist-then-send [`Gate`], snapshots taken from a shadow fold of every
//! record the log took, what to do when the flash is full or failing, and rate-limited error
//! reports. The log-writer actor is a thin shell around it; benchmarks and tests drive it
//! directly.
//!
//! # The invariant (persist, then send)
//!
//! An effect handed to [`Journal::append`] is released only once every event handed over with
//! it, and every event handed over before them, is durable on flash — whatever happened to
//! those events on the way: buffered in the batch, waiting in the backlog, written by a flush
//! that failed and was retried. Concretely:
//! - An event gets its seq only when the store takes it (`Store::push`); the store keeps a
//!   taken record buffered until a flush succeeds, and the journal never hands it over again
//!   (a failed flush never makes a record twice).
//! - While anything waits in the backlog, later events and the effects handed over with them
//!   queue behind it, in order; effects are held at the seq of the last event taken before
//!   them, and released when that seq is durable ([`Gate`]).
//! - An event the journal cannot take (the backlog is full, or the record cannot be framed)
//!   is *refused*: the effects handed over with it are dropped and never released, and its
//!   source gets a [`Refusal`] with the state to resync to (`machines::Resync`). Until the
//!   source sends with the refusal's epoch, everything else it sends is refused too.
//!
//! `tests.rs` checks this with a quickcheck property over injected faults: ENOSPC at any
//! point, EIO on fsync, space coming back, a full backlog, quarantine filling the budget.
//!
//! # Flash full, flash failing
//!
//! Full (the budget): flush, snapshot, compact, retry, at most every few seconds. If the record
//! still does not fit, records wait, in order, in a bounded backlog retried after every flush
//! and from the timer. Failing (a flush returns an error: ENOSPC, EIO): the batch stays with the
//! store and flushes are retried with back-off from the timer (not on every append). Both
//! conditions, and their ends, are observations handed to an `IncidentMachine`, which decides
//! when a `FlashFull` or `LogWriteFailed` incident opens and closes; the journal records what
//! it decides ahead of the backlog (urgent: it may use the reserve). Every failure is counted;
//! repeats are reported at most every 30 s.

use super::gate::Gate;
use super::throttle::Throttle;
use crate::events::incident::{IncidentInput, IncidentKind};
use crate::events::Machine;
use crate::events::{codec, Event, Fold, Seq, Stamp, EVENT_VERSION};
use crate::machines::incidents::IncidentMachine;
use crate::machines::NodeState;
use crate::throttled_error;
use flash_layout::{DirStorage, LogError, Storage, Store, StoreError};
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// The longest a record waits for its fsync.
    pub max_delay_ms: u64,
    /// Take a snapshot (and compact) once this many log bytes were appended since the last.
    pub snapshot_every_bytes: u64,
    /// How many records may wait while the flash is full.
    pub backlog_limit: usize,
    /// The first retry of a failed flush; it doubles up to `max_retry_ms`.
    pub first_retry_ms: u64,
    pub max_retry_ms: u64,
    /// How often a full flash is compacted to make room, at most.
    pub compact_every_ms: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            max_delay_ms: 120_000,
            snapshot_every_bytes: 256 * 1024,
            backlog_limit: 4096,
            first_retry_ms: 100,
            max_retry_ms: 5_000,
            compact_every_ms: 5_000,
        }
    }
}

/// Who hands events to the journal (one per machine driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

/// A source, and the epoch it sends with: it starts at 0 and takes the epoch of each
/// [`Refusal`] it resyncs from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub id: SourceId,
    pub epoch: u32,
}

impl Source {
    pub fn new(id: SourceId) -> Self {
        Self { id, epoch: 0 }
    }
}

/// The journal could not take an event of `source`: what it must do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub source: SourceId,
    /// The epoch to send with from now on; until then everything it sends is refused.
    pub epoch: u32,
    /// Why, for the operator.
    pub reason: String,
    /// The node's durable state once everything the log took (and still holds in order) is
    /// on flash: the source's machine resyncs its part of it (`machines::Resync`).
    pub state: NodeState,
}

/// What a call released, and the refusals to deliver to their sources.
#[derive(Debug)]
pub struct Settled<T> {
    pub released: Vec<T>,
    pub refusals: Vec<Refusal>,
}

impl<T> Default for Settled<T> {
    fn default() -> Self {
        Self { released: Vec::new(), refusals: Vec::new() }
    }
}

/// What waits in the backlog, in order.
enum Queued<T> {
    Event {
        source: Option<SourceId>,
        event: Event,
    },
    /// Effects handed over after the events before them: held once those are taken.
    Held(Vec<T>),
}

/// Counts for the operator and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records refused (never written; their sources were told).
    pub refused: u64,
    /// Effects dropped because an event handed over with them was refused.
    pub dropped_effects: u64,
    /// Flushes that failed (each retried).
    pub failed_flushes: u64,
    /// Snapshots that failed.
    pub failed_snapshots: u64,
}

/// A flush failing: when to retry.
#[derive(Clone, Copy, Debug)]
struct Failing {
    retry_at: Stamp,
    backoff_ms: u64,
}

pub struct Journal<T, S: Storage = DirStorage> {
    store: Store<S>,
    /// The fold of every record the store took, in seq order (what snapshots hold).
    shadow: NodeState,
    /// Decides when the flash conditions the journal observes open and close incidents.
    incidents: IncidentMachine,
    gate: Gate<T>,
    config: JournalConfig,
    backlog: VecDeque<Queued<T>>,
    backlog_events: usize,
    /// The epoch each source must send with (absent: 0).
    epochs: BTreeMap<SourceId, u32>,
    refusals: Vec<Refusal>,
    stats: JournalStats,
    /// When the oldest unflushed record was taken.
    oldest_pending: Option<Stamp>,
    failing: Option<Failing>,
    last_compaction: Option<Stamp>,
    /// A snapshot failed: not tried again before this.
    snapshot_retry_at: Option<Stamp>,
    now: Stamp,
    throttle: Throttle,
    payload: Vec<u8>,
}

impl<T, S: Storage> Journal<T, S> {
    /// A journal over a recovered store whose fold is `state`, started at `now`.
    pub fn new(store: Store<S>, state: NodeState, config: JournalConfig, now: Stamp) -> Self {
        let durable = Seq(store.log().durable_seq());
        Self {
            store,
            incidents: IncidentMachine::new(state.incidents.clone()),
            shadow: state,
            gate: Gate::new(durable),
            config,
            backlog: VecDeque::new(),
            backlog_events: 0,
            epochs: BTreeMap::new(),
            refusals: Vec::new(),
            stats: JournalStats::default(),
            oldest_pending: None,
            failing: None,
            last_compaction: None,
            snapshot_retry_at: None,
            now,
            throttle: Throttle::default(),
            payload: Vec::with_capacity(64),
        }
    }

    /// Hands over `events` of `source`, in order, and `held` effects that may leave only once
    /// all of them (and everything handed over before) are durable. Returns what may leave
    /// now and the refusals to deliver. See the module docs for the invariant.
    pub fn append(&mut self, now: Stamp, source: Source, events: Vec<Event>, held: Vec<T>) -> Settled<T> {
        self.now = now;
        let required = self.epochs.get(&source.id).copied().unwrap_or(0);
        if source.epoch < required {
            // Decided on a state that included a refused event: refused as well. The source
            // was told; it resyncs and sends with the new epoch.
            self.stats.refused += events.len() as u64;
            self.stats.dropped_effects += held.len() as u64;
            return self.settle();
        }
        // What waits goes first, if there is room now (compaction, freed quarantine).
        if !self.backlog.is_empty() && self.failing.is_none() {
            self.make_room();
            self.retry_backlog();
        }
        // All of the batch or none of it: its effects stand on all its events.
        if let Err(reason) = self.can_take(&events) {
            self.refuse(source.id, reason, events.len() as u64, held.len() as u64);
            return self.settle();
        }
        for event in events {
            self.take_or_queue(Some(source.id), event);
        }
        if !held.is_empty() {
            if self.backlog.is_empty() {
                let upto = Seq(self.store.log().last_seq());
                for h in held {
                    self.gate.hold(upto, h);
                }
            } else {
                self.backlog.push_back(Queued::Held(held));
            }
        }
        if self.store.log().pending_records() > 0 && self.oldest_pending.is_none() {
            self.oldest_pending = Some(now);
        }
        self.settle()
    }

    /// When the journal must run again at the latest: the flush deadline of the oldest pending
    /// record, a failed flush's retry, or a retry of the backlog.
    pub fn flush_deadline(&self) -> Option<Stamp> {
        if let Some(f) = self.failing {
            return Some(f.retry_at);
        }
        let flush = self.oldest_pending.map(|at| at.plus_ms(self.config.max_delay_ms));
        let backlog = (!self.backlog.is_empty()).then(|| self.now.plus_ms(self.config.compact_every_ms));
        match (flush, backlog) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline has passed (or not: nothing is done early); returns what that releases.
    pub fn on_timer(&mut self, now: Stamp) -> Settled<T> {
        self.now = now;
        let flush_due = self.oldest_pending.is_some_and(|at| at.plus_ms(self.config.max_delay_ms) <= now);
        let retry_due = self.failing.is_some_and(|f| f.retry_at <= now);
        if flush_due || retry_due {
            self.flush_now();
        }
        self.settle()
    }

    /// Flushes whatever is pending now, back-off or not (shutdown), and what the backlog can
    /// still take; returns what that releases.
    pub fn flush(&mut self, now: Stamp) -> Settled<T> {
        self.now = now;
        if let Some(f) = &mut self.failing {
            f.retry_at = now;
        }
        self.flush_now();
        let mut settled = self.settle();
        // Taking from the backlog may leave records pending: write them too, until nothing is
        // pending, a flush fails, or the backlog takes nothing more.
        while self.store.log().pending_records() > 0 && self.failing.is_none() {
            self.flush_now();
            let more = self.settle();
            settled.released.extend(more.released);
            settled.refusals.extend(more.refusals);
        }
        settled
    }

    pub fn durable_seq(&self) -> Seq {
        Seq(self.store.log().durable_seq())
    }

    /// The fold of every record the store took.
    pub fn state(&self) -> &NodeState {
        &self.shadow
    }

    pub fn store(&self) -> &Store<S> {
        &self.store
    }

    /// For tests that inject faults into the storage.
    pub fn store_mut(&mut self) -> &mut Store<S> {
        &mut self.store
    }

    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Records refused (never written).
    pub fn refused(&self) -> u64 {
        self.stats.refused
    }

    /// Records waiting in the backlog.
    pub fn backlog(&self) -> usize {
        self.backlog_events
    }

    /// Effects held until durable.
    pub fn held(&self) -> usize {
        self.gate.held()
            + self.backlog.iter().map(|q| if let Queued::Held(h) = q { h.len() } else { 0 }).sum::<usize>()
    }

    /// Whether flushes are failing (and being retried).
    pub fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Whether every event of a batch can be taken or queued: each can be framed, and the
    /// backlog has room for all of them (whatever the store takes at once needs less).
    fn can_take(&mut self, events: &[Event]) -> Result<(), String> {
        for event in events {
            self.payload.clear();
            codec::encode(event, &mut self.payload);
            if let Err(e) = flash_layout::frame::check_record(EVENT_VERSION, &self.payload) {
                // It could never be taken: queueing it would block everything behind it.
                return Err(format!("the log cannot take this record ({}): {e}", event.kind_name()));
            }
        }
        if self.backlog_events + events.len() > self.config.backlog_limit {
            return Err(format!(
                "flash full ({} of {} bytes used) and {} records already waiting",
                self.store.usage_bytes(),
                self.store.budget().max_bytes,
                self.backlog_events
            ));
        }
        Ok(())
    }

    /// Takes `event` into the store, or queues it behind the backlog (room checked by
    /// [`Self::can_take`]).
    fn take_or_queue(&mut self, source: Option<SourceId>, event: Event) {
        if self.backlog.is_empty() {
            match self.take(&event, event.is_urgent()) {
                Ok(()) => return,
                Err(StoreError::Full { .. }) => {
                    if self.make_room() && self.take(&event, event.is_urgent()).is_ok() {
                        return;
                    }
                    self.flash_full();
                }
                // Framing was checked; `push` fails only on the budget or framing.
                Err(e) => unreachable!("a checked record refused by the store: {e}"),
            }
        }
        self.backlog.push_back(Queued::Event { source, event });
        self.backlog_events += 1;
    }

    /// Pushes one record into the store (flushing if its policy says so) and folds it.
    fn take(&mut self, event: &Event, urgent: bool) -> Result<(), StoreError> {
        self.payload.clear();
        codec::encode(event, &mut self.payload);
        let pushed = self.store.push(EVENT_VERSION, &self.payload, event.value(), urgent)?;
        self.shadow.apply(event);
        if pushed.flush_due {
            self.flush_now();
        }
        Ok(())
    }

    /// A flash condition observed: the incident machine decides, and what it decides is
    /// recorded ahead of any backlog (nothing waits on incidents). With `flush`, the record may
    /// trigger a flush; without, it only joins the batch (used while a flush fails). If it does
    /// not fit either, it is reported, and the machine resyncs to what the log has.
    fn observe(&mut self, input: IncidentInput, flush: bool) {
        self.incidents.handle(self.now, input);
        while let Some(e) = self.incidents.poll_event() {
            let event = Event::Incident(e);
            let taken = if flush {
                self.take(&event, true)
            } else {
                self.payload.clear();
                codec::encode(&event, &mut self.payload);
                self.store
                    .push(EVENT_VERSION, &self.payload, event.value(), true)
                    .map(|_| self.shadow.apply(&event))
            };
            if let Err(e) = taken {
                let now = self.now;
                throttled_error!(self.throttle, "incident not recorded", now, error = %e, kind = event.kind_name(), "could not record an incident");
                self.incidents.resync(self.shadow.incidents.clone());
            }
        }
    }

    /// Refuses what is left of a batch of `source`: `records` events, `effects` effects.
    fn refuse(&mut self, source: SourceId, reason: String, records: u64, effects: u64) {
        self.stats.refused += records;
        self.stats.dropped_effects += effects;
        let epoch = self.epochs.get(&source).copied().unwrap_or(0) + 1;
        self.epochs.insert(source, epoch);
        let mut state = self.shadow.clone();
        for q in &self.backlog {
            if let Queued::Event { event, .. } = q {
                state.apply(event);
            }
        }
        let now = self.now;
        throttled_error!(
            self.throttle,
            "record refused",
            now,
            source = source.0,
            refused_total = self.stats.refused,
            %reason,
            "records refused; their effects are dropped and the machine resyncs"
        );
        self.refusals.push(Refusal { source, epoch, reason, state });
    }

    /// Flush, snapshot and compact to make room, if not tried too recently. Whether it ran.
    fn make_room(&mut self) -> bool {
        let due = self.last_compaction.is_none_or(|at| self.now >= at.plus_ms(self.config.compact_every_ms));
        if !due {
            return false;
        }
        self.last_compaction = Some(self.now);
        // Quarantine an operator removed frees space without a restart.
        if let Err(e) = self.store.recount_quarantine() {
            let now = self.now;
            throttled_error!(self.throttle, "quarantine recount failed", now, error = %e, "cannot count the quarantine files");
        }
        self.flush_now();
        self.snapshot_now();
        true
    }

    fn flash_full(&mut self) {
        let now = self.now;
        let (used, max) = (self.store.usage_bytes(), self.store.budget().max_bytes);
        throttled_error!(
            self.throttle,
            "flash full",
            now,
            used,
            max,
            "flash budget exhausted; records wait in the backlog"
        );
        self.observe(IncidentInput::Holds { kind: IncidentKind::FlashFull, detail: used }, true);
    }

    fn flush_now(&mut self) {
        if self.store.log().pending_records() == 0 {
            return;
        }
        if self.failing.is_some_and(|f| self.now < f.retry_at) {
            return; // backing off: the timer retries
        }
        match self.store.flush() {
            Ok(_) => {
                if self.failing.take().is_some() {
                    let suppressed = self.throttle.cleared("log flush failed").unwrap_or(0);
                    tracing::warn!(failures_not_reported = suppressed, "the log writes again");
                    self.observe(IncidentInput::Cleared { kind: IncidentKind::LogWriteFailed }, true);
                    self.flush_now();
                }
            }
            Err(e) => {
                self.stats.failed_flushes += 1;
                let backoff_ms = match self.failing {
                    Some(f) => (f.backoff_ms * 2).min(self.config.max_retry_ms),
                    None => self.config.first_retry_ms,
                };
                let first = self.failing.is_none();
                self.failing = Some(Failing { retry_at: self.now.plus_ms(backoff_ms), backoff_ms });
                let now = self.now;
                throttled_error!(
                    self.throttle,
                    "log flush failed",
                    now,
                    error = %e,
                    pending = self.store.log().pending_records(),
                    retry_ms = backoff_ms,
                    "log flush failed; nothing waiting on it is released, the batch is retried"
                );
                if first {
                    // Buffered with the batch: on flash once the log writes again.
                    let detail = match &e {
                        StoreError::Log(LogError::Io { source, .. }) => {
                            source.raw_os_error().unwrap_or(0) as u64
                        }
                        _ => 0,
                    };
                    self.observe(IncidentInput::Holds { kind: IncidentKind::LogWriteFailed, detail }, false);
                }
            }
        }
    }

    fn snapshot_now(&mut self) {
        let seq = self.store.log().durable_seq();
        if seq == 0 || self.store.log().pending_records() > 0 {
            return;
        }
        // After a failure, not before the back-off (the snapshot is retried from `settle`).
        if self.snapshot_retry_at.is_some_and(|at| self.now < at) {
            return;
        }
        let bytes = self.shadow.encode_snapshot();
        match self.store.snapshot(seq, &bytes) {
            Ok(_) => {
                self.snapshot_retry_at = None;
                self.throttle.cleared("snapshot failed");
            }
            Err(e) => {
                self.stats.failed_snapshots += 1;
                self.snapshot_retry_at = Some(self.now.plus_ms(self.config.compact_every_ms));
                let now = self.now;
                throttled_error!(self.throttle, "snapshot failed", now, error = %e, "snapshot failed");
            }
        }
    }

    /// Takes what waits in the backlog, in order, until something does not fit.
    fn retry_backlog(&mut self) {
        // Money waits behind the records before it: while it does, they may use the reserve.
        let urgent_ahead =
            self.backlog.iter().any(|q| matches!(q, Queued::Event { event, .. } if event.is_urgent()));
        while let Some(q) = self.backlog.pop_front() {
            match q {
                Queued::Event { source, event } => {
                    let urgent = urgent_ahead || event.is_urgent();
                    if self.take(&event, urgent).is_err() {
                        self.backlog.push_front(Queued::Event { source, event });
                        return;
                    }
                    self.backlog_events -= 1;
                }
                Queued::Held(held) => {
                    let upto = Seq(self.store.log().last_seq());
                    for h in held {
                        self.gate.hold(upto, h);
                    }
                }
            }
        }
        // Everything waiting is taken: the flash is no longer full.
        self.throttle.cleared("flash full");
        self.observe(IncidentInput::Cleared { kind: IncidentKind::FlashFull }, true);
    }

    /// After anything that may have advanced durability: snapshot or retry the backlog when
    /// due, and release what is now durable.
    fn settle(&mut self) -> Settled<T> {
        if self.store.log().pending_records() == 0 {
            self.oldest_pending = None;
            if self.store.bytes_since_snapshot() >= self.config.snapshot_every_bytes {
                self.snapshot_now();
            }
        }
        if !self.backlog.is_empty() && self.failing.is_none() {
            if self.store.log().pending_records() == 0 {
                self.make_room();
            }
            self.retry_backlog();
        }
        if self.store.log().pending_records() > 0 && self.oldest_pending.is_none() {
            self.oldest_pending = Some(self.now);
        }
        let durable = self.durable_seq();
        Settled { released: self.gate.release(durable), refusals: std::mem::take(&mut self.refusals) }
    }
}

#[cfg(test)]
mod tests;
