//! The log and the snapshots of one node, under one flash budget.
//!
//! The daemon appends through [`Store::append`], decides when to snapshot (it knows how big
//! its state is and how long replay takes), and calls [`Store::restore`] at start.
//!
//! Budget rules (FORMAT.md "Budget"): usage = segment files + pending batch + snapshot file +
//! quarantine files. A non-urgent append that could push usage above
//! `max_bytes - urgent_reserve_bytes` fails with [`StoreError::Full`], writing nothing; an
//! urgent one (money) may use the reserve, up to `max_bytes`. Snapshots are never refused:
//! they are how space is freed.

use std::path::Path;

use thiserror::Error;

use crate::frame::frame_len;
use crate::log::{is_quarantine_name, Appended, Log, LogConfig, LogError, Recovery, Removed, Retention};
use crate::scan::ReadError;
use crate::segment::SEGMENT_HEADER_LEN;
use crate::snapshot::{SnapshotError, SnapshotStore, SNAPSHOT_FILE};
use crate::storage::{DirStorage, Storage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Log + snapshots + quarantine, in bytes.
    pub max_bytes: u64,
    /// Bytes only urgent records may use.
    pub urgent_reserve_bytes: u64,
    pub retention: Retention,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The record does not fit the flash budget; nothing was written.
    #[error("flash budget full: {used} bytes used, limit {max}")]
    Full { used: u64, max: u64 },
    /// A snapshot may only cover records the log holds.
    #[error("snapshot at seq {seq} is past the log's last seq {last_seq}")]
    SnapshotAhead { seq: u64, last_seq: u64 },
}

#[derive(Debug, Error)]
pub enum RestoreError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("decoding snapshot at seq {seq}")]
    Decode { seq: u64, error: E },
    #[error("applying record {seq}")]
    Apply { seq: u64, error: E },
    /// The log no longer holds the records after the snapshot (or from seq 1 without one).
    #[error("log starts at seq {first_seq}, replay needs {needed}")]
    Gap { needed: u64, first_seq: u64 },
}

impl<E> From<LogError> for RestoreError<E> {
    fn from(e: LogError) -> Self {
        Self::Store(e.into())
    }
}

impl<E> From<ReadError> for RestoreError<E> {
    fn from(e: ReadError) -> Self {
        Self::Store(LogError::from(e).into())
    }
}

impl<E> From<SnapshotError> for RestoreError<E> {
    fn from(e: SnapshotError) -> Self {
        Self::Store(e.into())
    }
}

#[derive(Debug)]
pub struct Store<S: Storage> {
    log: Log<S>,
    snapshots: SnapshotStore,
    budget: Budget,
    snapshot_bytes: u64,
    quarantine_bytes: u64,
}

impl Store<DirStorage> {
    /// Opens the store in directory `path`: segments, `snapshots.redb` and quarantine files.
    pub fn open_dir(
        path: impl AsRef<Path>,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        let storage = DirStorage::open(path.as_ref()).map_err(SnapshotError::Io)?;
        let snapshots = SnapshotStore::open(path.as_ref().join(SNAPSHOT_FILE))?;
        Self::open(storage, snapshots, config, budget)
    }
}

impl<S: Storage> Store<S> {
    /// Opens the log (recovering it) next to an open snapshot store. If the recovered log
    /// ends below the newest valid snapshot (damage cut records it covers), the old log is
    /// quarantined and the log continues at the snapshot's seq + 1; see
    /// [`Recovery::restarted_after_snapshot`].
    pub fn open(
        storage: S,
        snapshots: SnapshotStore,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        let (mut log, mut recovery) = Log::open(storage, config)?;
        // Damage cut the log below the newest snapshot: that snapshot was taken at a durable
        // seq, so it is the truth. New records must not reuse the seqs it covers (the next
        // restore would skip them), so the log continues right after it (FORMAT.md
        // "Recovery", step 5).
        if let Some((snapshot_seq, _)) = snapshots.latest()? {
            if snapshot_seq > log.last_seq() {
                let restart = log.restart_after_snapshot(snapshot_seq)?;
                recovery.records = 0;
                recovery.restarted_after_snapshot = Some(restart);
            }
        }
        let mut quarantine_bytes = 0;
        let io = |op, source| LogError::Io { op, name: String::new(), source };
        for name in log.storage().list().map_err(|e| io("list", e))? {
            if is_quarantine_name(&name) {
                quarantine_bytes += log.storage().size(&name).map_err(|e| io("size", e))?;
            }
        }
        let snapshot_bytes = snapshots.disk_bytes()?;
        let store = Self { log, snapshots, budget, snapshot_bytes, quarantine_bytes };
        Ok((store, recovery))
    }

    /// Appends a record if the budget allows it (see the module docs), flushing per the log's
    /// policy.
    pub fn append(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Appended, StoreError> {
        let max = if urgent {
            self.budget.max_bytes
        } else {
            self.budget.max_bytes.saturating_sub(self.budget.urgent_reserve_bytes)
        };
        let used = self.usage_bytes();
        // Counts a segment header too, in case this record starts a new segment.
        let needed = frame_len(payload.len()) + SEGMENT_HEADER_LEN;
        if used.saturating_add(needed) > max {
            return Err(StoreError::Full { used, max });
        }
        Ok(self.log.append(version, payload, value, urgent)?)
    }

    pub fn flush(&mut self) -> Result<u64, StoreError> {
        Ok(self.log.flush()?)
    }

    /// Stores a snapshot of the state after record `seq`, then removes the segments covered by
    /// the OLDER of the two snapshots kept (so falling back to it still finds its log tail),
    /// within the retention window. Flushes first if `seq` is not yet durable.
    pub fn snapshot(&mut self, seq: u64, bytes: &[u8]) -> Result<Removed, StoreError> {
        if seq > self.log.last_seq() {
            return Err(StoreError::SnapshotAhead { seq, last_seq: self.log.last_seq() });
        }
        if seq > self.log.durable_seq() {
            self.log.flush()?;
        }
        self.snapshots.write(seq, bytes)?;
        self.snapshot_bytes = self.snapshots.disk_bytes()?;
        let oldest = self.snapshots.seqs()?.first().copied().unwrap_or(0);
        Ok(self.log.remove_segments_before(oldest + 1, self.budget.retention)?)
    }

    /// Rebuilds the state: the newest valid snapshot (or `init()`), then every durable record
    /// after it through `apply`. Returns the state and the seq it reflects.
    pub fn restore<T, E>(
        &self,
        decode_snapshot: impl FnOnce(&[u8]) -> Result<T, E>,
        init: impl FnOnce() -> T,
        mut apply: impl FnMut(&mut T, u64, u8, &[u8]) -> Result<(), E>,
    ) -> Result<(T, u64), RestoreError<E>> {
        let (mut state, mut last) = match self.snapshots.latest()? {
            Some((seq, bytes)) => {
                (decode_snapshot(&bytes).map_err(|error| RestoreError::Decode { seq, error })?, seq)
            }
            None => (init(), 0),
        };
        let needed = last + 1;
        if self.log.durable_seq() >= needed && self.log.first_seq() > needed {
            return Err(RestoreError::Gap { needed, first_seq: self.log.first_seq() });
        }
        let mut reader = self.log.read_from(needed);
        while let Some(rec) = reader.next()? {
            apply(&mut state, rec.seq, rec.version, rec.payload)
                .map_err(|error| RestoreError::Apply { seq: rec.seq, error })?;
            last = rec.seq;
        }
        Ok((state, last))
    }

    /// Bytes on flash (and about to be): segments, pending batch, snapshots, quarantine.
    pub fn usage_bytes(&self) -> u64 {
        self.log.disk_bytes() + self.log.pending_bytes() + self.snapshot_bytes + self.quarantine_bytes
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    pub fn log(&self) -> &Log<S> {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut Log<S> {
        &mut self.log
    }

    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }
}

#[cfg(test)]
mod tests;
