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

use std::fs;
use std::path::Path;

use thiserror::Error;

use crate::frame::frame_len;
use crate::log::{
    is_quarantine_name, Appended, Log, LogConfig, LogError, Pushed, Recovery, Removed, Retention,
};
use crate::recovery::{self, Plan};
use crate::scan::{scan, ReadError, Reader, Scan, ScanError};
use crate::segment::SEGMENT_HEADER_LEN;
use crate::snapshot::{SnapshotError, SnapshotFile, SnapshotStore, SNAPSHOT_FILE};
use crate::storage::{DirStorage, MemStorage, Storage};

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
    /// The record was taken as `seq` and stays buffered, but the flush it triggered failed;
    /// the next flush retries it (see [`crate::AppendError::Unflushed`]).
    #[error("record #{seq} buffered, but writing the batch failed: {source}")]
    Unflushed { seq: u64, source: LogError },
    /// A snapshot may only cover records the log holds.
    #[error("snapshot at seq {seq} is past the log's last seq {last_seq}")]
    SnapshotAhead { seq: u64, last_seq: u64 },
    /// The directory cannot be opened as it is; nothing in it was changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Why a store cannot be opened. Opening refuses before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The log no longer starts at seq 1 (compaction removed what a snapshot covered, or the
    /// first segments are gone), and there is no valid snapshot: the state cannot be rebuilt.
    #[error(
        "the log starts at seq {first_seq}, so a snapshot must cover seqs 1..={}, but {why}",
        first_seq - 1
    )]
    NoSnapshotForStart { first_seq: u64, why: String },
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

/// A restored state: the state, the last seq it reflects, and how many log bytes (frames)
/// were replayed after the snapshot it started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored<T> {
    pub state: T,
    pub last_seq: u64,
    pub snapshot_seq: Option<u64>,
    pub replayed: u64,
    pub replayed_bytes: u64,
}

/// What opening a store directory would find and do, worked out without writing anything:
/// the node decides from it whether to start, and `replay check` reports it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub scan: Scan,
    pub snapshots: SnapshotFile,
    /// What recovery will write to the log.
    pub plan: Plan,
    /// Why opening would be refused (then nothing is written).
    pub refusal: Option<Refusal>,
    /// The snapshot database cannot be read and the log does not need it (it starts at seq
    /// 1): opening sets it aside as `quarantine-snapshots*.redb` and starts a new one.
    pub replaces_snapshots: bool,
}

impl Inspection {
    /// Inspects the log in `storage` beside snapshot database contents `snapshots`.
    pub fn of<S: Storage>(storage: &S, snapshots: SnapshotFile) -> Result<Self, ScanError> {
        let scan = scan(storage)?;
        let latest = snapshots.latest().map(|(seq, _)| *seq);
        let plan = recovery::plan(&scan, latest);
        // Where the log starts (an empty log continues at `next_seq`). Any valid snapshot
        // will do: if the log starts past it, the seqs between are a hole (lost segments).
        let start = scan.segments.first().map_or(1, |s| s.base_seq);
        let refusal = (start > 1 && latest.is_none()).then(|| Refusal::NoSnapshotForStart {
            first_seq: start,
            why: match &snapshots {
                SnapshotFile::Missing => {
                    format!("there is no snapshot database ({SNAPSHOT_FILE} is missing)")
                }
                SnapshotFile::Empty => format!("{SNAPSHOT_FILE} is empty"),
                SnapshotFile::Unreadable(why) => format!("the snapshot database cannot be read: {why}"),
                SnapshotFile::Readable { seqs, .. } if seqs.is_empty() => {
                    "the snapshot database holds no snapshot".into()
                }
                SnapshotFile::Readable { .. } => "no snapshot in the database verifies".into(),
            },
        });
        let replaces_snapshots = refusal.is_none() && matches!(snapshots, SnapshotFile::Unreadable(_));
        Ok(Self { scan, snapshots, plan, refusal, replaces_snapshots })
    }

    /// The snapshot a restore starts from.
    pub fn snapshot(&self) -> Option<&(u64, Vec<u8>)> {
        self.snapshots.latest()
    }

    /// Restores the state the store will have once opened (the newest valid snapshot, then
    /// every intact record after it) from the files as they are now, writing nothing.
    pub fn restore<S: Storage, T, E>(
        &self,
        storage: &S,
        decode_snapshot: impl FnOnce(&[u8]) -> Result<T, E>,
        init: impl FnOnce() -> T,
        apply: impl FnMut(&mut T, u64, u8, &[u8]) -> Result<(), E>,
    ) -> Result<Restored<T>, RestoreError<E>> {
        // Where the log starts once recovery is done: a hole segment it creates comes first.
        let first_seq = self.plan.lead.map_or(self.scan.start_seq(), |(from, _)| from);
        let end = self.plan.next_seq - 1;
        replay(
            self.snapshot().cloned(),
            first_seq,
            end,
            |from| self.scan.reader(storage, from),
            decode_snapshot,
            init,
            apply,
        )
    }
}

/// The newest snapshot (or `init()`), then every record after it in the log through `apply`.
fn replay<'s, S: Storage + 's, T, E>(
    snapshot: Option<(u64, Vec<u8>)>,
    first_seq: u64,
    end_seq: u64,
    reader: impl FnOnce(u64) -> Reader<'s, S>,
    decode_snapshot: impl FnOnce(&[u8]) -> Result<T, E>,
    init: impl FnOnce() -> T,
    mut apply: impl FnMut(&mut T, u64, u8, &[u8]) -> Result<(), E>,
) -> Result<Restored<T>, RestoreError<E>> {
    let (mut state, mut last, snapshot_seq) = match snapshot {
        Some((seq, bytes)) => {
            (decode_snapshot(&bytes).map_err(|error| RestoreError::Decode { seq, error })?, seq, Some(seq))
        }
        None => (init(), 0, None),
    };
    let needed = last + 1;
    if end_seq >= needed && first_seq > needed {
        return Err(RestoreError::Gap { needed, first_seq });
    }
    let (mut replayed, mut replayed_bytes) = (0, 0);
    let mut reader = reader(needed);
    while let Some(rec) = reader.next()? {
        apply(&mut state, rec.seq, rec.version, rec.payload)
            .map_err(|error| RestoreError::Apply { seq: rec.seq, error })?;
        last = rec.seq;
        replayed += 1;
        replayed_bytes += frame_len(rec.payload.len());
    }
    Ok(Restored { state, last_seq: last, snapshot_seq, replayed, replayed_bytes })
}

#[derive(Debug)]
pub struct Store<S: Storage> {
    log: Log<S>,
    snapshots: SnapshotStore,
    budget: Budget,
    snapshot_bytes: u64,
    quarantine_bytes: u64,
    /// Frame bytes of the log after the newest snapshot: what a restore replays.
    bytes_since_snapshot: u64,
}

impl Store<DirStorage> {
    /// What [`Self::open_dir`] would find and do in directory `path`, without writing
    /// anything (a missing directory is an empty store).
    pub fn inspect_dir(path: impl AsRef<Path>) -> Result<Inspection, StoreError> {
        let path = path.as_ref();
        let snapshots = SnapshotFile::inspect(&path.join(SNAPSHOT_FILE))?;
        match DirStorage::open_existing(path) {
            Ok(storage) => Ok(Inspection::of(&storage, snapshots).map_err(LogError::from)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Inspection::of(&MemStorage::new(), snapshots).map_err(LogError::from)?)
            }
            Err(source) => Err(LogError::Io { op: "open", name: path.display().to_string(), source }.into()),
        }
    }

    /// Opens the store in directory `path` (created if missing): segments, `snapshots.redb`
    /// and quarantine files. Refuses, writing nothing, when the state could not be rebuilt.
    pub fn open_dir(
        path: impl AsRef<Path>,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        let inspection = Self::inspect_dir(path.as_ref())?;
        Self::open_inspected(path, inspection, config, budget)
    }

    /// Opens the store as `inspection` (of this directory, just made) says: refuses if it
    /// refuses; else sets an unreadable snapshot database aside, carries out the recovery plan
    /// and opens the log.
    pub fn open_inspected(
        path: impl AsRef<Path>,
        inspection: Inspection,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        if let Some(refusal) = inspection.refusal {
            return Err(refusal.into());
        }
        let path = path.as_ref();
        let storage = DirStorage::open(path).map_err(|source| LogError::Io {
            op: "create",
            name: path.display().to_string(),
            source,
        })?;
        let set_aside =
            if inspection.replaces_snapshots { Some(set_aside_snapshots(&storage)?) } else { None };
        let snapshots = SnapshotStore::open(path.join(SNAPSHOT_FILE))?;
        let (store, mut recovery) = Self::recover(storage, snapshots, &inspection, config, budget)?;
        recovery.snapshots_set_aside = set_aside;
        Ok((store, recovery))
    }
}

/// Renames an unreadable snapshot database to a free `quarantine-snapshots[.N].redb`,
/// durably: evidence is kept, and it counts against the budget like other quarantine.
fn set_aside_snapshots(storage: &DirStorage) -> Result<String, StoreError> {
    let names =
        storage.list().map_err(|source| LogError::Io { op: "list", name: storage.describe(""), source })?;
    let mut n = 0;
    let mut name = "quarantine-snapshots.redb".to_string();
    while names.contains(&name) {
        n += 1;
        name = format!("quarantine-snapshots.{n}.redb");
    }
    let from = storage.path().join(SNAPSHOT_FILE);
    let to = storage.path().join(&name);
    let io = |source| LogError::Io { op: "set aside", name: from.display().to_string(), source };
    fs::rename(&from, &to).map_err(io)?;
    fs::File::open(storage.path()).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(name)
}

impl<S: Storage> Store<S> {
    /// Opens the log (recovering it) next to an open snapshot store. Refuses, writing nothing
    /// to the log, when the state could not be rebuilt ([`Refusal`]). If the newest valid
    /// snapshot covers more than the log holds, the log continues right after it, the seqs in
    /// between a hole; see [`Recovery::continued_after_snapshot`].
    pub fn open(
        storage: S,
        snapshots: SnapshotStore,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        let inspection = Inspection::of(&storage, SnapshotFile::of(&snapshots)?).map_err(LogError::from)?;
        if let Some(refusal) = inspection.refusal {
            return Err(refusal.into());
        }
        Self::recover(storage, snapshots, &inspection, config, budget)
    }

    fn recover(
        storage: S,
        snapshots: SnapshotStore,
        inspection: &Inspection,
        config: LogConfig,
        budget: Budget,
    ) -> Result<(Self, Recovery), StoreError> {
        let (log, recovery) = Log::recover(storage, config, &inspection.scan, &inspection.plan)?;
        let mut quarantine_bytes = 0;
        let io = |op, name: String, source| LogError::Io { op, name, source };
        let names = log.storage().list().map_err(|e| io("list", log.storage().describe(""), e))?;
        for name in names.iter().filter(|n| is_quarantine_name(n)) {
            quarantine_bytes +=
                log.storage().size(name).map_err(|e| io("size", log.storage().describe(name), e))?;
        }
        let snapshot_bytes = snapshots.disk_bytes()?;
        let mut store =
            Self { log, snapshots, budget, snapshot_bytes, quarantine_bytes, bytes_since_snapshot: 0 };
        // Counted from the log itself, so a node that restarts often still snapshots.
        let from = store.snapshots.latest()?.map_or(1, |(seq, _)| seq + 1);
        let mut reader = store.log.read_from(from);
        let mut tail = 0;
        while let Some(rec) = reader.next().map_err(LogError::from)? {
            tail += frame_len(rec.payload.len());
        }
        store.bytes_since_snapshot = tail;
        Ok((store, recovery))
    }

    /// Whether a record of `payload_len` bytes fits the budget (see the module docs).
    fn check_budget(&self, payload_len: usize, urgent: bool) -> Result<(), StoreError> {
        let max = if urgent {
            self.budget.max_bytes
        } else {
            self.budget.max_bytes.saturating_sub(self.budget.urgent_reserve_bytes)
        };
        let used = self.usage_bytes();
        // Counts a segment header too, in case this record starts a new segment.
        let needed = frame_len(payload_len) + SEGMENT_HEADER_LEN;
        if used.saturating_add(needed) > max {
            return Err(StoreError::Full { used, max });
        }
        Ok(())
    }

    /// Buffers a record if the budget allows it, without writing (see [`Log::push`]).
    pub fn push(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Pushed, StoreError> {
        self.check_budget(payload.len(), urgent)?;
        let pushed = self.log.push(version, payload, value, urgent).map_err(LogError::from)?;
        self.bytes_since_snapshot += frame_len(payload.len());
        Ok(pushed)
    }

    /// Appends a record if the budget allows it, flushing per the log's policy. On
    /// [`StoreError::Unflushed`] the record is in; on any other error it is not.
    pub fn append(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Appended, StoreError> {
        let Pushed { seq, flush_due } = self.push(version, payload, value, urgent)?;
        if flush_due {
            self.log.flush().map_err(|source| StoreError::Unflushed { seq, source })?;
        }
        Ok(Appended { seq, flushed: flush_due })
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
        if let Err(e) = self.snapshots.write(seq, bytes) {
            // redb refuses every later transaction after an I/O error until the database is
            // opened again: reopen it, so the next snapshot (space back) can succeed.
            self.snapshots.reopen()?;
            return Err(e.into());
        }
        self.snapshot_bytes = self.snapshots.disk_bytes()?;
        self.bytes_since_snapshot = self.log.pending_bytes();
        let oldest = self.snapshots.seqs()?.first().copied().unwrap_or(0);
        Ok(self.log.remove_segments_before(oldest + 1, self.budget.retention)?)
    }

    /// Rebuilds the state: the newest valid snapshot (or `init()`), then every durable record
    /// after it through `apply`. Returns the state and the seq it reflects.
    pub fn restore<T, E>(
        &self,
        decode_snapshot: impl FnOnce(&[u8]) -> Result<T, E>,
        init: impl FnOnce() -> T,
        apply: impl FnMut(&mut T, u64, u8, &[u8]) -> Result<(), E>,
    ) -> Result<(T, u64), RestoreError<E>> {
        let r = replay(
            self.snapshots.latest()?,
            self.log.first_seq(),
            self.log.durable_seq(),
            |from| self.log.read_from(from),
            decode_snapshot,
            init,
            apply,
        )?;
        Ok((r.state, r.last_seq))
    }

    /// Counts the quarantine files again: an operator may have removed some to free space
    /// (they count against the budget).
    pub fn recount_quarantine(&mut self) -> Result<(), StoreError> {
        let storage = self.log.storage();
        let io = |op, name: String, source| LogError::Io { op, name, source };
        let mut bytes = 0;
        for name in storage.list().map_err(|e| io("list", storage.describe(""), e))? {
            if is_quarantine_name(&name) {
                // Gone since the listing: it frees its space.
                bytes += storage.size(&name).unwrap_or(0);
            }
        }
        self.quarantine_bytes = bytes;
        Ok(())
    }

    /// Frame bytes appended after the newest snapshot (what a restore would replay).
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.bytes_since_snapshot
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
