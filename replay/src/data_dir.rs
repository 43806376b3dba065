//! A lastmile data directory opened for reading only.
//!
//! Nothing here writes to the directory: the log is read through [`flash_layout::scan()`] (which
//! never writes) and never through `Log`/`Store` (whose `open` recovers, i.e. cuts and
//! quarantines). The directory is opened with [`DirStorage::open_existing`], which never
//! creates it. The snapshot database is opened from a private copy in a temporary directory,
//! because `SnapshotStore::open` creates its table in a write transaction, and redb repairs a
//! file that was not closed cleanly; neither may touch evidence.
//!
//! What the node would do on start is worked out by the same code the node runs
//! (`flash_layout::Inspection`: the scan, the recovery plan, the refusal; and the fold with
//! `NodeState::apply_record`), so `check` and the node always agree
//! (`tests/recovery.rs`, `check_verdict_is_what_the_node_does_for_every_damage_case`).
//!
//! Files in a data directory:
//! - `seg-{base_seq:016x}.log`: log segments. A file named so that is shorter than a header, or
//!   does not start with the segment magic and holds no frame of ours, is not ours
//!   ([`ReplayError::ForeignSegment`]): recovery quarantines it before removing it.
//! - `snapshots.redb`: the snapshot database.
//! - `quarantine-*.bin`: bytes a past recovery removed after damage; `quarantine-snapshots*.redb`:
//!   a snapshot database set aside because it could not be read.
//! - `*.tmp`: an atomic write interrupted by a crash (ignored by recovery).
//! - anything else is a *foreign file*: listed by `check`, otherwise ignored.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use flash_layout::segment::{decode_header, HeaderError};
use flash_layout::snapshot::SNAPSHOT_FILE;
use flash_layout::{
    DamageKind, DefectReason, DirStorage, Inspection, Reader, Restored, Scan, SnapshotFile, SnapshotStore,
    Storage,
};
use lastmile::machines::{FoldError, NodeState};
use serde::Serialize;
use tempfile::TempDir;

use crate::error::ReplayError;

/// The snapshots found in `snapshots.redb`.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    /// Whether the directory has a snapshot database at all.
    pub present: bool,
    /// Seqs of the snapshots kept, oldest first, readable or not.
    pub seqs: Vec<u64>,
    /// The newest snapshot whose CRC verifies: (seq, bytes).
    pub latest: Option<(u64, Vec<u8>)>,
}

/// The private copy of the snapshot database, open (see the module docs).
#[derive(Debug)]
struct SnapshotCopy {
    // Declared before `_dir`: the database closes before its directory is removed.
    store: SnapshotStore,
    _dir: TempDir,
}

/// Recovery's continuation after the newest snapshot (FORMAT.md "Recovery"): the log, as
/// recovery would leave it, ends below the newest readable snapshot, so `Store::open` will
/// record the seqs up to it as a hole and continue after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    /// The newest readable snapshot.
    pub snapshot_seq: u64,
    /// The last seq the log covers (0: none).
    pub log_last_seq: u64,
    /// The seq the next record will get.
    pub continues_at: u64,
}

/// What a data directory holds, validated but not yet decoded.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    storage: DirStorage,
    pub scan: Scan,
    /// What the node's recovery would find and do (`Store::inspect_dir`, the same function).
    inspection: Inspection,
    snapshot_copy: Option<SnapshotCopy>,
    pub quarantine: Vec<String>,
    pub interrupted_writes: Vec<String>,
    pub foreign: Vec<String>,
    ending: Ending,
}

/// How the log ends, as recovery would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Clean,
    /// A crash during an unsynced write: recovery cuts it and nothing durable is lost.
    TornTail,
    /// Damage to bytes that may have been durable, a foreign file named like a segment, or
    /// missing segments.
    Damaged,
}

/// What the node would do at start on this directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Start; nothing to repair (a torn tail is cut, nothing durable was lost).
    Starts,
    /// Start after repairing damage: quarantine the damaged bytes, keep every intact record,
    /// record the lost seqs as holes.
    Recovers,
    /// Refuse to start, changing nothing.
    Refuses,
}

impl DataDir {
    /// Opens `path` for reading. Errors: the directory cannot be read or holds no lastmile log
    /// (exit 2). A snapshot database that cannot be read is reported by [`Self::snapshots`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let storage = DirStorage::open_existing(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ReplayError::Missing { path: shown.clone() },
            io::ErrorKind::NotADirectory => ReplayError::NotADirectory { path: shown.clone() },
            _ => ReplayError::Io { path: shown.clone(), source },
        })?;
        let snapshot_file = path.join(SNAPSHOT_FILE);
        let snapshots = SnapshotFile::inspect(&snapshot_file).map_err(|e| match e {
            flash_layout::SnapshotError::Io { path, source } => ReplayError::Io { path, source },
            other => ReplayError::SnapshotDatabase(other.to_string()),
        })?;
        let inspection = Inspection::of(&storage, snapshots).map_err(|e| match e {
            flash_layout::ScanError::Io { name, source } => ReplayError::Io { path: name, source },
        })?;
        let scan = inspection.scan.clone();
        let mut quarantine = Vec::new();
        let mut interrupted_writes = Vec::new();
        let mut foreign = Vec::new();
        let mut has_snapshot_file = false;
        for name in &scan.foreign {
            if name == SNAPSHOT_FILE {
                has_snapshot_file = true;
            } else if flash_layout::log::is_quarantine_name(name) {
                quarantine.push(name.clone());
            } else if name.ends_with(".tmp") {
                interrupted_writes.push(name.clone());
            } else {
                foreign.push(name.clone());
            }
        }
        if scan.segments.is_empty() && scan.damage.is_empty() && !has_snapshot_file {
            return Err(ReplayError::NotADataDirectory { path: shown });
        }
        let snapshot_copy = match &inspection.snapshots {
            SnapshotFile::Readable { .. } => read_snapshots(&snapshot_file).ok(),
            _ => None,
        };
        let ending = ending(&scan);
        Ok(Self {
            ending,
            path,
            storage,
            scan,
            inspection,
            snapshot_copy,
            quarantine,
            interrupted_writes,
            foreign,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the node's recovery would find and do here.
    pub fn inspection(&self) -> &Inspection {
        &self.inspection
    }

    /// The snapshots, or a damaged-snapshot-database error (exit 3). An empty file (the
    /// database's creation was interrupted) holds none: the node starts a new one.
    pub fn snapshots(&self) -> Result<Snapshots, ReplayError> {
        match &self.inspection.snapshots {
            SnapshotFile::Missing => Ok(Snapshots::default()),
            SnapshotFile::Empty => Ok(Snapshots { present: true, ..Snapshots::default() }),
            SnapshotFile::Unreadable(why) => Err(ReplayError::SnapshotDatabase(why.clone())),
            SnapshotFile::Readable { seqs, latest } => {
                Ok(Snapshots { present: true, seqs: seqs.clone(), latest: latest.clone() })
            }
        }
    }

    /// The newest readable snapshot with seq `<= seq` (`SnapshotStore::at_or_before`), `None`
    /// if there is none or no snapshot database; a damaged-database error (exit 3).
    pub fn snapshot_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, ReplayError> {
        self.snapshots()?;
        let Some(copy) = &self.snapshot_copy else {
            return Ok(None);
        };
        copy.store.at_or_before(seq).map_err(|e| ReplayError::SnapshotDatabase(e.to_string()))
    }

    /// Whether recovery will continue the log after the newest snapshot: the log as recovery
    /// leaves it ends below that snapshot.
    pub fn snapshot_restart(&self) -> Option<RestartReport> {
        let at = self.inspection.plan.continue_at?;
        Some(RestartReport { snapshot_seq: at - 1, log_last_seq: self.scan.next_seq - 1, continues_at: at })
    }

    /// Reads the valid records from `from_seq` on, damaged bytes skipped.
    pub fn records(&self, from_seq: u64) -> Reader<'_, DirStorage> {
        self.scan.reader(&self.storage, from_seq)
    }

    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// The node's durable state as recovery would rebuild it (the same fold the node runs at
    /// start), or why it cannot be.
    pub fn restored(&self) -> Result<Restored<NodeState>, String> {
        self.inspection
            .restore(&self.storage, NodeState::from_snapshot, NodeState::default, NodeState::apply_record)
            .map_err(|e| match e {
                flash_layout::RestoreError::Decode { error, .. }
                | flash_layout::RestoreError::Apply { error, .. } => match error {
                    FoldError::Snapshot(e) => format!("snapshot: {e}"),
                    FoldError::Record { seq, error } => format!("event log record #{seq}: {error}"),
                },
                other => other.to_string(),
            })
    }

    /// What the node would do at start, and why it would refuse (if it would).
    pub fn verdict(&self) -> (Verdict, Option<String>) {
        if let Some(r) = &self.inspection.refusal {
            return (Verdict::Refuses, Some(r.to_string()));
        }
        if let Err(e) = flash_layout::boot::read_boot(&self.path) {
            return (Verdict::Refuses, Some(e.to_string()));
        }
        if let Err(why) = self.restored() {
            return (Verdict::Refuses, Some(why));
        }
        let plan = &self.inspection.plan;
        if self.ending == Ending::Damaged
            || plan.continue_at.is_some()
            || plan.lead.is_some()
            || self.inspection.replaces_snapshots
        {
            return (Verdict::Recovers, None);
        }
        (Verdict::Starts, None)
    }

    /// The error for a directory the node refuses or must repair (exit 3), `None` if the log
    /// is clean or only torn. A log that ends below the newest snapshot is damaged too, even
    /// if what is left of it is clean: records the snapshot covers were durable and are gone.
    pub fn damage(&self) -> Option<ReplayError> {
        if let Some(r) = &self.inspection.refusal {
            return Some(ReplayError::Refused(r.to_string()));
        }
        if let Err(e) = flash_layout::boot::read_boot(&self.path) {
            return Some(ReplayError::Refused(e.to_string()));
        }
        self.defect_damage().or_else(|| {
            if let Some((from, to)) = self.inspection.plan.lead {
                return Some(ReplayError::Damaged(format!(
                    "the log starts at seq {to}, after the newest snapshot (seq {}): seqs {from}..={} are missing; \
                     recovery would record them as a hole",
                    from - 1,
                    to - 1
                )));
            }
            let r = self.snapshot_restart()?;
            Some(ReplayError::Damaged(format!(
                "the log ends at seq {}, below the newest snapshot (seq {}): records the \
                 snapshot covers are missing; recovery would record seqs {}..={} as a hole and \
                 continue at seq {}",
                r.log_last_seq,
                r.snapshot_seq,
                r.log_last_seq + 1,
                r.snapshot_seq,
                r.continues_at
            )))
        })
    }

    fn defect_damage(&self) -> Option<ReplayError> {
        if self.ending() != Ending::Damaged {
            return None;
        }
        let d = self.scan.lost().next()?;
        let more = self.scan.lost().count() - 1;
        let also = if more > 0 { format!(" (and {more} more damaged range(s))") } else { String::new() };
        let what = recovery_text(&self.scan);
        Some(match (d.kind, d.reason) {
            (DamageKind::Foreign, DefectReason::BadSegmentHeader) if self.header_error(&d.segment) == Some(HeaderError::BadMagic) => {
                ReplayError::ForeignSegment { name: d.segment.clone() }
            }
            (DamageKind::Foreign, DefectReason::BadSegmentHeader) => ReplayError::Damaged(format!(
                "{}: not a segment ({}){also}; {what}",
                d.segment,
                self.header_error(&d.segment).map_or("bad segment header".to_string(), |e| e.to_string())
            )),
            (DamageKind::Foreign, _) => ReplayError::Damaged(format!(
                "{} overlaps the seqs before it (a duplicated or misplaced segment){also}; {what}",
                d.segment
            )),
            (DamageKind::Missing, _) => ReplayError::Damaged(format!(
                "{} starts at seq {} but seq {} was expected (segment files missing after {}): seqs {}..={} are gone{also}; {what}",
                flash_layout::segment::segment_name(d.to_seq),
                d.to_seq,
                d.from_seq,
                d.segment,
                d.from_seq,
                d.to_seq - 1
            )),
            (_, DefectReason::BadSegmentHeader) => ReplayError::Damaged(format!(
                "{}: bad segment header: {}{also}; {what}",
                d.segment,
                self.header_error(&d.segment).map_or("invalid".to_string(), |e| e.to_string())
            )),
            _ => ReplayError::Damaged(format!(
                "record {} in {} at offset {}: {}{}{also}; {what}",
                d.from_seq,
                d.segment,
                d.offset,
                reason_text(d.reason),
                if d.seqs() == 0 { String::new() } else { format!(", {} record(s) lost", lost_count(d)) },
            )),
        })
    }

    /// A notice for a torn tail (exit 0: normal after a crash), `None` otherwise.
    pub fn torn_tail_notice(&self) -> Option<String> {
        let d = self.scan.torn_tail()?;
        (self.ending() == Ending::TornTail).then(|| {
            format!(
                "notice: torn tail (normal after a crash): {} at offset {} of {}; recovery would cut \
                 {} byte(s) from seq {}; no valid record follows, so nothing durable is lost",
                reason_text(d.reason),
                d.offset,
                d.segment,
                d.len,
                d.from_seq
            )
        })
    }

    /// A notice for holes an earlier recovery recorded, `None` if there are none.
    pub fn holes_notice(&self) -> Option<String> {
        if self.scan.holes.is_empty() {
            return None;
        }
        let seqs: u64 = self.scan.holes.iter().map(|h| h.to_seq - h.from_seq).sum();
        let ranges: Vec<String> =
            self.scan.holes.iter().take(6).map(|h| seq_range(h.from_seq, h.to_seq)).collect();
        Some(format!(
            "notice: {} hole(s) recorded by an earlier recovery, {seqs} seq(s) whose records were lost to damage: {}{}",
            self.scan.holes.len(),
            ranges.join(", "),
            if self.scan.holes.len() > 6 { ", ..." } else { "" }
        ))
    }

    fn header_error(&self, name: &str) -> Option<HeaderError> {
        header_error(&self.storage, name)
    }
}

/// `#a` or `#a..=#b` for seqs `from..to`.
pub fn seq_range(from: u64, to: u64) -> String {
    if to == from + 1 {
        format!("#{from}")
    } else {
        format!("#{from}..=#{}", to - 1)
    }
}

/// "exactly N" or "up to N" records a damaged range held.
fn lost_count(d: &flash_layout::Damage) -> String {
    if d.exact {
        d.seqs().to_string()
    } else {
        format!("up to {}", d.seqs())
    }
}

/// Classifies the scan's damage as recovery does.
fn ending(scan: &Scan) -> Ending {
    if scan.is_clean() {
        Ending::Clean
    } else if scan.is_torn_tail() {
        Ending::TornTail
    } else {
        Ending::Damaged
    }
}

/// The header error of segment file `name`, if it can be read and is invalid. `BadMagic`
/// whenever the bytes present disagree with the magic, even in a file too short for a header.
fn header_error(storage: &DirStorage, name: &str) -> Option<HeaderError> {
    decode_header(&storage.read(name).ok()?).err()
}

/// A few words for why a frame failed.
pub fn reason_text(reason: DefectReason) -> &'static str {
    match reason {
        DefectReason::TornTail => "the log ends in the middle of a write",
        DefectReason::BadLength => "its length runs past the end of the segment",
        DefectReason::BadMagic => "bad frame magic",
        DefectReason::BadCrc => "CRC mismatch",
        DefectReason::BadVersion => "version 0 (reserved)",
        DefectReason::BadHole => "malformed hole frame",
        DefectReason::BadSegmentHeader => "bad segment header",
        DefectReason::SeqGap => "seq gap between segments",
    }
}

/// What recovery would do about the scan's damage, in words.
pub fn recovery_text(scan: &Scan) -> String {
    let lost: Vec<_> = scan.lost().collect();
    let bytes: u64 = lost.iter().filter(|d| d.quarantined()).map(|d| d.len).sum();
    let seqs: u64 = lost.iter().filter(|d| d.kind != DamageKind::Foreign).map(|d| d.seqs()).sum();
    let removed = lost.iter().filter(|d| d.kind == DamageKind::Foreign).count();
    let mut parts = Vec::new();
    if bytes > 0 {
        parts.push(format!("quarantine {bytes} byte(s)"));
    }
    if seqs > 0 {
        parts.push(format!("record {seqs} seq(s) as holes"));
    }
    if removed > 0 {
        parts.push(format!("remove {removed} foreign file(s)"));
    }
    parts.push(format!("keep all {} intact record(s)", scan.records));
    format!("recovery would {}", parts.join(", "))
}

/// `notice: the log ended below snapshot #S: …` for a predicted continuation.
pub fn restart_notice(r: &RestartReport) -> String {
    format!(
        "notice: the log ends below snapshot #{}: recovery will record seqs {}..={} as a hole and \
         continue at #{}",
        r.snapshot_seq,
        r.log_last_seq + 1,
        r.snapshot_seq,
        r.continues_at
    )
}

/// Reads the snapshot database from a private copy (see the module docs), kept open for
/// [`DataDir::snapshot_at_or_before`].
fn read_snapshots(file: &Path) -> Result<SnapshotCopy, String> {
    let shown = file.display();
    let tmp = tempfile::tempdir()
        .map_err(|e| format!("cannot create a temporary directory for a copy of {shown}: {e}"))?;
    let copy = tmp.path().join(SNAPSHOT_FILE);
    fs::copy(file, &copy).map_err(|e| format!("cannot copy {shown}: {e}"))?;
    let store = SnapshotStore::open(&copy).map_err(|e| format!("{shown}: {e}"))?;
    Ok(SnapshotCopy { store, _dir: tmp })
}
