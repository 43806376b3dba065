//! The node's data directory on flash: the boot counter, the event log and snapshots
//! (`flash_layout::Store`), and recovery of the node's state from them.

use crate::events::codec::{self, DecodeError};
use crate::events::Fold;
use crate::machines::{NodeState, SnapshotError};
use flash_layout::{
    Budget, DirStorage, FlushPolicy, LogConfig, Recovery, RestoreError, Retention, Store, StoreError,
};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const BOOT_FILE: &str = "boot";

/// How the node's log and snapshots use flash.
#[derive(Clone, Copy, Debug)]
pub struct FlashConfig {
    pub log: LogConfig,
    pub budget: Budget,
}

impl Default for FlashConfig {
    /// For a router with 16 MB of flash, of which the OpenWRT overlay leaves a few MB: the
    /// log and snapshots get 4 MiB; 1 MiB (or 100,000 records) of log is kept for disputes
    /// even when snapshots cover it; a batch is fsynced at 256 records, 8 KiB, or when it
    /// carries more than 10^15 base units (0.001 of an 18-decimal token), whichever is first.
    fn default() -> Self {
        Self {
            log: LogConfig {
                segment_bytes: 256 * 1024,
                flush: FlushPolicy {
                    max_records: 256,
                    max_bytes: 8 * 1024,
                    max_value: 1_000_000_000_000_000,
                },
            },
            budget: Budget {
                max_bytes: 4 * 1024 * 1024,
                urgent_reserve_bytes: 64 * 1024,
                retention: Retention { min_records: 100_000, min_bytes: 1024 * 1024 },
            },
        }
    }
}

#[derive(Debug)]
pub enum FlashError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    BootCounter {
        path: PathBuf,
        reason: String,
    },
    Store(StoreError),
    Snapshot(SnapshotError),
    Event {
        seq: u64,
        source: DecodeError,
    },
    /// The log no longer holds the records a recovery needs.
    Gap(String),
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::BootCounter { path, reason } => {
                write!(f, "boot counter {}: {reason}", path.display())
            }
            Self::Store(e) => write!(f, "event log: {e}"),
            Self::Snapshot(e) => write!(f, "snapshot: {e}"),
            Self::Event { seq, source } => write!(f, "event log record #{seq}: {source}"),
            Self::Gap(e) => write!(f, "event log: {e}"),
        }
    }
}

impl std::error::Error for FlashError {}

/// Reads the boot counter in `dir`, increments it and writes it back durably. A missing file
/// is the first boot. A damaged file is an error: the operator must look, because stamps of
/// this boot could otherwise collide with an earlier one's.
pub fn next_boot(dir: &Path) -> Result<u32, FlashError> {
    let path = dir.join(BOOT_FILE);
    let previous = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u32>().map_err(|e| FlashError::BootCounter {
            path: path.clone(),
            reason: format!("not a number ({e}): {:?}", text.trim()),
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => return Err(FlashError::Io { path, source }),
    };
    let boot = previous
        .checked_add(1)
        .ok_or_else(|| FlashError::BootCounter { path: path.clone(), reason: "counter exhausted".into() })?;
    write_atomic(&path, format!("{boot}\n").as_bytes()).map_err(|source| FlashError::Io { path, source })?;
    Ok(boot)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A recovered data directory.
pub struct Opened {
    pub store: Store<DirStorage>,
    pub state: NodeState,
    pub recovery: Recovery,
    /// The seq of the snapshot recovery started from, if any.
    pub snapshot_seq: Option<u64>,
    /// Records replayed after the snapshot.
    pub replayed: u64,
}

impl Opened {
    /// One line saying what recovery found and did, for the operator.
    pub fn summary(&self) -> String {
        let mut line = match self.snapshot_seq {
            Some(seq) => format!(
                "{} log records; state from snapshot #{seq} + {} replayed",
                self.recovery.records, self.replayed
            ),
            None => format!(
                "{} log records; state from {} replayed, no snapshot",
                self.recovery.records, self.replayed
            ),
        };
        match &self.recovery.cut {
            Some(cut) => line.push_str(&format!(
                "; cut {} bytes from #{} ({:?}{})",
                cut.bytes,
                cut.from_seq,
                cut.reason,
                cut.quarantined.as_ref().map_or(String::new(), |q| format!(", kept in {q}"))
            )),
            None => line.push_str("; log intact"),
        }
        if let Some(r) = &self.recovery.restarted_after_snapshot {
            line.push_str(&format!(
                "; log damaged below snapshot #{}: {} records removed{}, continuing at #{}",
                r.snapshot_seq,
                r.records_removed,
                r.quarantined.as_ref().map_or(String::new(), |q| format!(" (kept in {q})")),
                r.snapshot_seq + 1
            ));
        }
        line
    }
}

/// Opens (creating if needed) the store in `dir`, cuts a torn tail, and recovers the node's
/// state: newest valid snapshot, then the log after it.
pub fn open(dir: &Path, config: FlashConfig) -> Result<Opened, FlashError> {
    fs::create_dir_all(dir).map_err(|source| FlashError::Io { path: dir.to_path_buf(), source })?;
    let (store, recovery) = Store::open_dir(dir, config.log, config.budget).map_err(FlashError::Store)?;
    let (state, restored) = restore(&store)?;
    Ok(Opened { store, state, recovery, snapshot_seq: restored.snapshot_seq, replayed: restored.replayed })
}

/// Where a recovered state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub snapshot_seq: Option<u64>,
    pub replayed: u64,
}

/// Newest valid snapshot + replay of the tail: the node's durable state.
pub fn restore(store: &Store<DirStorage>) -> Result<(NodeState, Restored), FlashError> {
    let mut replayed = 0u64;
    let (state, _last) = store
        .restore(
            |bytes| NodeState::decode_snapshot(bytes).map_err(FlashError::Snapshot),
            NodeState::default,
            |state: &mut NodeState, seq, version, payload| {
                let event =
                    codec::decode(version, payload).map_err(|source| FlashError::Event { seq, source })?;
                state.apply(&event);
                replayed += 1;
                Ok(())
            },
        )
        .map_err(|e| match e {
            RestoreError::Store(e) => FlashError::Store(e),
            RestoreError::Decode { error, .. } | RestoreError::Apply { error, .. } => error,
            gap @ RestoreError::Gap { .. } => FlashError::Gap(gap.to_string()),
        })?;
    let snapshot_seq = store.snapshots().seqs().map_err(|e| FlashError::Store(e.into()))?.last().copied();
    Ok((state, Restored { snapshot_seq, replayed }))
}
