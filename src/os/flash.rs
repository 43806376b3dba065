//! The node's data directory on flash: the boot counter, the event log and snapshots
//! (`flash_layout::Store`), and recovery of the node's state from them.

use crate::events::codec::{self, DecodeError};
use crate::events::Fold;
use crate::machines::{FoldError, NodeState, SnapshotError};
use flash_layout::{
    Budget, DamageKind, DirStorage, FlushPolicy, Inspection, LogConfig, MemStorage, Recovery, RestoreError,
    Restored, Retention, Storage, Store, StoreError,
};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
    /// The node refuses to start on this data directory as it is: nothing in it was changed.
    Refused {
        dir: PathBuf,
        reason: String,
    },
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
            Self::Refused { dir, reason } => {
                write!(f, "refusing to start on {}: {reason} (nothing in it was changed)", dir.display())
            }
        }
    }
}

impl std::error::Error for FlashError {}

/// Increments the boot counter in `dir` durably and returns the new boot
/// ([`flash_layout::boot`]). Call it once the data directory has opened ([`open`], which
/// refuses a damaged counter before anything is written): a refused start must not count as a
/// boot. On error nothing is left behind (no temporary file).
pub fn next_boot(dir: &Path) -> Result<u32, FlashError> {
    flash_layout::boot::next_boot(dir).map_err(boot_error(dir))
}

fn boot_error(dir: &Path) -> impl Fn(flash_layout::boot::BootError) -> FlashError + '_ {
    move |e| match e {
        flash_layout::boot::BootError::Io { source, .. } => {
            FlashError::Io { path: dir.join(flash_layout::boot::BOOT_FILE), source }
        }
        flash_layout::boot::BootError::Damaged { reason, .. } => {
            FlashError::BootCounter { path: dir.join(flash_layout::boot::BOOT_FILE), reason }
        }
    }
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
        line.push_str(&recovery_text(&self.recovery));
        line
    }
}

/// What recovery did, as a clause for [`Opened::summary`] ("; log intact" if nothing).
pub fn recovery_text(r: &Recovery) -> String {
    if r.damage.is_empty() && r.continued_after_snapshot.is_none() && r.snapshots_set_aside.is_none() {
        return "; log intact".into();
    }
    let mut out = String::new();
    if let Some(t) = r.torn_tail() {
        out.push_str(&format!(
            "; torn tail cut at #{} ({} bytes of an unfinished write, never durable)",
            t.from_seq, t.len
        ));
    }
    let lost: Vec<_> = r.lost().collect();
    let foreign = lost.iter().filter(|d| d.kind == DamageKind::Foreign).count();
    let damaged: Vec<_> = lost.iter().filter(|d| d.kind != DamageKind::Foreign).collect();
    if !damaged.is_empty() {
        let bytes: u64 = damaged.iter().map(|d| d.len).sum();
        let mut ranges: Vec<String> = r.holes.iter().take(4).map(|(a, b)| seq_range(*a, *b)).collect();
        if r.holes.len() > 4 {
            ranges.push(format!("and {} more", r.holes.len() - 4));
        }
        out.push_str(&format!(
            "; DAMAGE: {} damaged range(s), {bytes} bytes; {} seq(s) lost as holes ({}), every intact record kept",
            damaged.len(),
            r.hole_seqs(),
            if ranges.is_empty() { "none".to_string() } else { ranges.join(", ") }
        ));
    }
    if foreign > 0 {
        out.push_str(&format!("; {foreign} file(s) named like segments but not part of the log, removed"));
    }
    if let Some(q) = &r.quarantined {
        out.push_str(&format!("; damaged bytes kept in {q}"));
    }
    if let Some(name) = &r.snapshots_set_aside {
        out.push_str(&format!(
            "; the snapshot database could not be read: kept as {name}, state rebuilt from the log"
        ));
    }
    if let Some(seq) = r.continued_after_snapshot {
        out.push_str(&format!("; the log ended below snapshot #{seq}: continuing at #{}", seq + 1));
    }
    out
}

fn seq_range(from: u64, to: u64) -> String {
    if to == from + 1 {
        format!("#{from}")
    } else {
        format!("#{from}..#{}", to - 1)
    }
}

/// The node's durable state as opening `dir` would recover it, worked out without writing
/// anything, and why the node would refuse to start on it, if it would. `replay check` and
/// [`open`] both decide from this, so they always agree.
pub struct Preflight {
    pub inspection: Inspection,
    /// The recovered state, or why it cannot be recovered (a refusal).
    pub restored: Result<Restored<NodeState>, FlashError>,
    /// The boot counter, or why it cannot be read (a refusal).
    pub boot: Result<Option<u32>, FlashError>,
}

impl Preflight {
    /// Why the node refuses to start, if it does.
    pub fn refusal(&self) -> Option<String> {
        if let Some(r) = &self.inspection.refusal {
            return Some(r.to_string());
        }
        if let Err(e) = &self.boot {
            return Some(e.to_string());
        }
        self.restored.as_ref().err().map(ToString::to_string)
    }
}

/// See [`Preflight`]. A missing directory is an empty one.
pub fn preflight(dir: &Path) -> Result<Preflight, FlashError> {
    let inspection = Store::inspect_dir(dir).map_err(FlashError::Store)?;
    let restored = match DirStorage::open_existing(dir) {
        Ok(storage) => restore_inspected(&inspection, &storage),
        Err(e) if e.kind() == io::ErrorKind::NotFound => restore_inspected(&inspection, &MemStorage::new()),
        Err(source) => Err(FlashError::Io { path: dir.to_path_buf(), source }),
    };
    let boot = flash_layout::boot::read_boot(dir).map_err(boot_error(dir));
    Ok(Preflight { inspection, restored, boot })
}

fn restore_inspected<S: Storage>(
    inspection: &Inspection,
    storage: &S,
) -> Result<Restored<NodeState>, FlashError> {
    inspection
        .restore(storage, NodeState::from_snapshot, NodeState::default, NodeState::apply_record)
        .map_err(|e| match e {
            RestoreError::Decode { error, .. } | RestoreError::Apply { error, .. } => match error {
                FoldError::Snapshot(e) => FlashError::Snapshot(e),
                FoldError::Record { seq, error } => FlashError::Event { seq, source: error },
            },
            RestoreError::Store(e) => FlashError::Store(e),
            gap @ RestoreError::Gap { .. } => FlashError::Gap(gap.to_string()),
        })
}

fn restore_error(e: RestoreError<FlashError>) -> FlashError {
    match e {
        RestoreError::Store(e) => FlashError::Store(e),
        RestoreError::Decode { error, .. } | RestoreError::Apply { error, .. } => error,
        gap @ RestoreError::Gap { .. } => FlashError::Gap(gap.to_string()),
    }
}

/// Opens (creating if needed) the store in `dir` and recovers the node's state: newest valid
/// snapshot, then the log after it. First it works out, without writing, what it would find
/// ([`preflight`]); if the node cannot start on the directory as it is (a compacted log
/// without its snapshots, a record or snapshot this build cannot read), it refuses and
/// nothing in the directory changes. Only then does recovery write (quarantine, holes, a
/// torn tail cut).
pub fn open(dir: &Path, config: FlashConfig) -> Result<Opened, FlashError> {
    let pre = preflight(dir)?;
    if let Some(reason) = pre.refusal() {
        return Err(FlashError::Refused { dir: dir.to_path_buf(), reason });
    }
    let restored = pre.restored.expect("no refusal: restored");
    fs::create_dir_all(dir).map_err(|source| FlashError::Io { path: dir.to_path_buf(), source })?;
    let (store, recovery) =
        Store::open_inspected(dir, pre.inspection, config.log, config.budget).map_err(FlashError::Store)?;
    Ok(Opened {
        store,
        state: restored.state,
        recovery,
        snapshot_seq: restored.snapshot_seq,
        replayed: restored.replayed,
    })
}

/// Where a recovered state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoredFrom {
    pub snapshot_seq: Option<u64>,
    pub replayed: u64,
}

/// Newest valid snapshot + replay of the tail of an open store: the node's durable state.
pub fn restore(store: &Store<DirStorage>) -> Result<(NodeState, RestoredFrom), FlashError> {
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
        .map_err(restore_error)?;
    let snapshot_seq =
        store.snapshots().latest().map_err(|e| FlashError::Store(e.into()))?.map(|(seq, _)| seq);
    Ok((state, RestoredFrom { snapshot_seq, replayed }))
}
