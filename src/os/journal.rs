//! The journal: the node's event log on flash, as the log writer uses it.
//!
//! It wraps `flash_layout::Store` with what the shell needs beyond the store's own group
//! commit: a maximum delay for any pending record (in stamps, so simulations run it in
//! virtual time), the persist-then-send [`Gate`], snapshots taken from a shadow fold of every
//! appended event, and the flash-full procedure. The log-writer actor is a thin shell around
//! it; benchmarks and tests drive it directly.
//!
//! Flash full: flush, snapshot, compact, retry. If the record still does not fit, a
//! `FlashFull` incident is recorded (urgent records may use the reserve) and non-urgent
//! records wait, in order, in a bounded backlog that is retried after every flush. Nothing is
//! dropped silently: past the bound, each refused record is logged as an error and counted in
//! [`Journal::refused`].

use super::gate::Gate;
use crate::events::incident::{IncidentEvent, IncidentKind};
use crate::events::{codec, Event, Fold, Seq, Stamp, EVENT_VERSION};
use crate::machines::NodeState;
use flash_layout::{frame::frame_len, DirStorage, Storage, Store, StoreError};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// The longest a record waits for its fsync.
    pub max_delay_ms: u64,
    /// Take a snapshot (and compact) once this many log bytes were appended since the last.
    pub snapshot_every_bytes: u64,
    /// How many records may wait while the flash is full.
    pub backlog_limit: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { max_delay_ms: 120_000, snapshot_every_bytes: 256 * 1024, backlog_limit: 4096 }
    }
}

pub struct Journal<T, S: Storage = DirStorage> {
    store: Store<S>,
    shadow: NodeState,
    gate: Gate<T>,
    config: JournalConfig,
    backlog: VecDeque<Event>,
    refused: u64,
    /// Frame bytes appended since the last snapshot.
    log_bytes_since_snapshot: u64,
    /// When the oldest unflushed record was appended.
    oldest_pending: Option<Stamp>,
    payload: Vec<u8>,
}

impl<T, S: Storage> Journal<T, S> {
    /// A journal over a recovered store whose fold is `state`.
    pub fn new(store: Store<S>, state: NodeState, config: JournalConfig) -> Self {
        let durable = Seq(store.log().durable_seq());
        Self {
            store,
            shadow: state,
            gate: Gate::new(durable),
            config,
            backlog: VecDeque::new(),
            refused: 0,
            log_bytes_since_snapshot: 0,
            oldest_pending: None,
            payload: Vec::with_capacity(64),
        }
    }

    /// Appends `events` in order; `held` effects wait until all of them (and everything
    /// appended before) are durable. Returns the effects that may leave now.
    pub fn append(&mut self, now: Stamp, events: Vec<Event>, held: Vec<T>) -> Vec<T> {
        for event in events {
            if !self.backlog.is_empty() && !event.is_urgent() {
                self.queue(event);
            } else if let Err(refused) = self.append_or_compact(event) {
                let (event, err) = *refused;
                self.on_refused(event, err);
            }
        }
        if self.pending_records() > 0 && self.oldest_pending.is_none() {
            self.oldest_pending = Some(now);
        }
        let upto = Seq(self.store.log().last_seq());
        let mut ready: Vec<T> = held.into_iter().filter_map(|h| self.gate.hold(upto, h)).collect();
        ready.extend(self.settle());
        ready
    }

    /// When the pending batch must be flushed at the latest.
    pub fn flush_deadline(&self) -> Option<Stamp> {
        self.oldest_pending.map(|at| at.plus_ms(self.config.max_delay_ms))
    }

    /// Flushes if the deadline has passed; returns what that releases.
    pub fn on_timer(&mut self, now: Stamp) -> Vec<T> {
        match self.flush_deadline() {
            Some(deadline) if deadline <= now => self.flush(),
            _ => Vec::new(),
        }
    }

    /// Flushes whatever is pending (shutdown, or the deadline); returns what that releases.
    pub fn flush(&mut self) -> Vec<T> {
        self.flush_now();
        self.settle()
    }

    pub fn durable_seq(&self) -> Seq {
        Seq(self.store.log().durable_seq())
    }

    pub fn state(&self) -> &NodeState {
        &self.shadow
    }

    pub fn store(&self) -> &Store<S> {
        &self.store
    }

    /// Records refused because the flash and the backlog were both full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    pub fn held(&self) -> usize {
        self.gate.held()
    }

    fn pending_records(&self) -> usize {
        self.store.log().pending_records()
    }

    fn append_one(&mut self, event: Event) -> Result<(), Box<(Event, StoreError)>> {
        self.payload.clear();
        codec::encode(&event, &mut self.payload);
        match self.store.append(EVENT_VERSION, &self.payload, event.value(), event.is_urgent()) {
            Ok(_) => {
                self.log_bytes_since_snapshot += frame_len(self.payload.len());
                self.shadow.apply(&event);
                Ok(())
            }
            Err(e) => Err(Box::new((event, e))),
        }
    }

    /// Appends one record; when the flash is full, first makes room (flush, snapshot at the
    /// durable seq, compaction) and tries once more.
    fn append_or_compact(&mut self, event: Event) -> Result<(), Box<(Event, StoreError)>> {
        match self.append_one(event) {
            Err(refused) if matches!(refused.1, StoreError::Full { .. }) => {
                self.flush_now();
                self.snapshot_now();
                self.append_one(refused.0)
            }
            other => other,
        }
    }

    fn on_refused(&mut self, event: Event, err: StoreError) {
        if matches!(err, StoreError::Full { .. }) {
            tracing::error!(%err, "flash budget exhausted after compaction; holding non-urgent records");
            if !self.shadow.incidents.open.contains_key(&IncidentKind::FlashFull) {
                let used = self.store.usage_bytes();
                let opened = IncidentEvent::Opened { kind: IncidentKind::FlashFull, detail: used };
                if let Err(refused) = self.append_one(opened.into()) {
                    let e = &refused.1;
                    tracing::error!(%e, "could not record the FlashFull incident");
                }
            }
        } else {
            tracing::error!(err = %err, kind = event.kind_name(), "log append failed; holding the record");
        }
        self.queue(event);
    }

    fn queue(&mut self, event: Event) {
        if self.backlog.len() >= self.config.backlog_limit {
            self.refused += 1;
            tracing::error!(
                kind = event.kind_name(),
                waiting = self.backlog.len(),
                refused = self.refused,
                "record refused: flash full and backlog full"
            );
            return;
        }
        self.backlog.push_back(event);
    }

    fn retry_backlog(&mut self) {
        while let Some(event) = self.backlog.pop_front() {
            if let Err(refused) = self.append_or_compact(event) {
                self.backlog.push_front(refused.0);
                return;
            }
        }
        if self.shadow.incidents.open.contains_key(&IncidentKind::FlashFull) {
            let closed = IncidentEvent::Closed { kind: IncidentKind::FlashFull };
            if let Err(refused) = self.append_one(closed.into()) {
                let e = &refused.1;
                tracing::error!(%e, "could not record the end of the FlashFull incident");
            }
        }
    }

    fn flush_now(&mut self) {
        if self.pending_records() == 0 {
            return;
        }
        if let Err(e) = self.store.flush() {
            // The batch stays pending and the next flush retries it. Nothing is released.
            tracing::error!(%e, "log flush failed");
        }
    }

    fn snapshot_now(&mut self) {
        let seq = self.store.log().durable_seq();
        if seq == 0 || self.pending_records() > 0 {
            return;
        }
        let bytes = self.shadow.encode_snapshot();
        match self.store.snapshot(seq, &bytes) {
            Ok(_) => self.log_bytes_since_snapshot = 0,
            Err(e) => tracing::error!(%e, "snapshot failed"),
        }
    }

    /// After anything that may have advanced durability: snapshot or retry the backlog when
    /// due, and release what is now durable.
    fn settle(&mut self) -> Vec<T> {
        if self.pending_records() == 0 {
            self.oldest_pending = None;
            if self.log_bytes_since_snapshot >= self.config.snapshot_every_bytes {
                self.snapshot_now();
            }
            if !self.backlog.is_empty() {
                self.retry_backlog();
            }
        }
        let durable = self.durable_seq();
        self.gate.release(durable)
    }
}

#[cfg(test)]
mod tests;
