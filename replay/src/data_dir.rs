//! A lastmile data directory opened for reading only.
//!
//! Nothing here writes to the directory: the log is read through [`flash_layout::scan()`] (which
//! never writes) and never through `Log`/`Store` (whose `open` recovers, i.e. cuts and
//! quarantines). The directory is opened with [`DirStorage::open_existing`], which never
//! creates it. The snapshot database is opened from a private copy in a temporary directory,
//! because `SnapshotStore::open` creates its table in a write transaction, and redb repairs a
//! file that was not closed cleanly; neither may touch evidence.
//!
//! Files in a data directory:
//! - `seg-{base_seq:016x}.log`: log segments. A file named so that does not start with the
//!   segment magic (even one shorter than a header) is not ours:
//!   [`ReplayError::ForeignSegment`]. A short or bad segment header is never a torn tail
//!   (headers are written atomically): recovery quarantines such a file before removing it.
//! - `snapshots.redb`: the snapshot database.
//! - `quarantine-*.bin`: bytes a past recovery cut off after mid-log damage.
//! - `*.tmp`: an atomic write interrupted by a crash (ignored by recovery).
//! - anything else is a *foreign file*: listed by `check`, otherwise ignored.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use flash_layout::segment::{decode_header, parse_segment_name, HeaderError};
use flash_layout::snapshot::SNAPSHOT_FILE;
use flash_layout::{scan, DefectReason, DirStorage, Reader, Scan, SnapshotStore, Storage};
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

/// Recovery's restart after the newest snapshot (FORMAT.md "Recovery", step 5): the log, as
/// recovery would cut it, ends below the newest readable snapshot, so `Store::open` will
/// quarantine the whole log and continue after the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    /// The newest readable snapshot.
    pub snapshot_seq: u64,
    /// The last valid seq of the log after the cut (0: none).
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
    /// The snapshot database, or why it cannot be read (only `state` and `check` need it).
    snapshots: Result<Snapshots, String>,
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
    /// Damage with valid data after it, or a bad segment header, or a seq gap.
    Damaged,
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
        let scan = scan(&storage).map_err(|e| match e {
            flash_layout::ScanError::Io { name, source } => {
                ReplayError::Io { path: path.join(name).display().to_string(), source }
            }
        })?;
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
        if scan.segments.is_empty() && scan.beyond.is_empty() && !has_snapshot_file {
            return Err(ReplayError::NotADataDirectory { path: shown });
        }
        let (snapshots, snapshot_copy) = if has_snapshot_file {
            match read_snapshots(&path.join(SNAPSHOT_FILE)) {
                Ok((snapshots, copy)) => (Ok(snapshots), Some(copy)),
                Err(e) => (Err(e), None),
            }
        } else {
            (Ok(Snapshots::default()), None)
        };
        let ending = ending(&scan);
        Ok(Self {
            ending,
            path,
            storage,
            scan,
            snapshots,
            snapshot_copy,
            quarantine,
            interrupted_writes,
            foreign,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshots, or a damaged-snapshot-database error (exit 3).
    pub fn snapshots(&self) -> Result<&Snapshots, ReplayError> {
        self.snapshots.as_ref().map_err(|e| ReplayError::SnapshotDatabase(e.clone()))
    }

    /// The newest readable snapshot with seq `<= seq` (`SnapshotStore::at_or_before`), `None`
    /// if there is none or no snapshot database; a damaged-database error (exit 3).
    pub fn snapshot_at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, ReplayError> {
        self.snapshots()?;
        let Some(copy) = &self.snapshot_copy else {
            return Ok(None);
        };
        copy.store.at_or_before(seq).map_err(|e| {
            ReplayError::SnapshotDatabase(format!("{}: {e}", self.path.join(SNAPSHOT_FILE).display()))
        })
    }

    /// Whether recovery will restart the log after the newest snapshot: the log as it would
    /// be cut ends below that snapshot (damage, or segment files lost from its end). `None`
    /// too when the snapshot database cannot be read.
    pub fn snapshot_restart(&self) -> Option<RestartReport> {
        let (snapshot_seq, _) = self.snapshots.as_ref().ok()?.latest.as_ref()?;
        let log_last_seq = self.scan.next_seq - 1;
        (*snapshot_seq > log_last_seq).then(|| RestartReport {
            snapshot_seq: *snapshot_seq,
            log_last_seq,
            continues_at: snapshot_seq + 1,
        })
    }

    /// Reads the records of the valid prefix from `from_seq` on.
    pub fn records(&self, from_seq: u64) -> Reader<'_, DirStorage> {
        self.scan.reader(&self.storage, from_seq)
    }

    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// The error for a damaged log (exit 3), `None` if the log is clean or only torn. A log
    /// that ends below the newest snapshot is damaged too, even if what is left of it is
    /// clean: records the snapshot covers were durable and are gone.
    pub fn damage(&self) -> Option<ReplayError> {
        self.defect_damage().or_else(|| {
            let r = self.snapshot_restart()?;
            Some(ReplayError::Damaged(format!(
                "the log ends at seq {}, below the newest snapshot (seq {}): records the \
                 snapshot covers are missing; recovery would quarantine the log and continue \
                 at seq {}",
                r.log_last_seq, r.snapshot_seq, r.continues_at
            )))
        })
    }

    fn defect_damage(&self) -> Option<ReplayError> {
        let d = self.scan.defect.as_ref()?;
        if self.ending() != Ending::Damaged {
            return None;
        }
        let cut = cut_text(&self.scan);
        Some(match d.reason {
            DefectReason::BadSegmentHeader => match self.header_error(&d.segment) {
                Some(HeaderError::BadMagic) => ReplayError::ForeignSegment { name: d.segment.clone() },
                Some(e) => ReplayError::Damaged(format!("{}: bad segment header: {e}; {cut}", d.segment)),
                None => ReplayError::Damaged(format!("{}: bad segment header; {cut}", d.segment)),
            },
            DefectReason::SeqGap => {
                let base = parse_segment_name(&d.segment).unwrap_or(0);
                ReplayError::Damaged(format!(
                    "{} starts at seq {base} but seq {} was expected (missing, duplicated or misplaced segment); {cut}",
                    d.segment,
                    d.seq,
                ))
            }
            _ => {
                let after = if d.frames_after > 0 {
                    format!("and {} valid record(s) follow it", d.frames_after)
                } else {
                    "and later segment files follow it".to_string()
                };
                ReplayError::Damaged(format!(
                    "record {} in {} at offset {}: {}, {after}; {cut}",
                    d.seq,
                    d.segment,
                    d.offset,
                    reason_text(d.reason),
                ))
            }
        })
    }

    /// A notice for a torn tail (exit 0: normal after a crash), `None` otherwise.
    pub fn torn_tail_notice(&self) -> Option<String> {
        let d = self.scan.defect.as_ref()?;
        (self.ending() == Ending::TornTail).then(|| {
            format!(
                "notice: torn tail (normal after a crash): {} at offset {} of {}; {}; no valid record follows, \
                 so nothing durable is lost",
                reason_text(d.reason),
                d.offset,
                d.segment,
                cut_text(&self.scan)
            )
        })
    }

    fn header_error(&self, name: &str) -> Option<HeaderError> {
        header_error(&self.storage, name)
    }
}

/// Classifies the scan's defect, if any, as recovery does: only the end of the last segment,
/// with nothing valid after it, is a torn tail ([`Scan::is_torn_tail`]); a short or bad
/// segment header never is (headers are written atomically).
fn ending(scan: &Scan) -> Ending {
    match &scan.defect {
        None => Ending::Clean,
        Some(_) if scan.is_torn_tail() => Ending::TornTail,
        Some(_) => Ending::Damaged,
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
        DefectReason::BadSegmentHeader => "bad segment header",
        DefectReason::SeqGap => "seq gap between segments",
    }
}

/// What recovery would do at the scan's defect: cut, and quarantine unless it is a torn tail.
/// Empty without a defect.
pub fn cut_text(scan: &Scan) -> String {
    let Some(d) = &scan.defect else {
        return String::new();
    };
    format!(
        "recovery would cut {} byte(s) from seq {}{}",
        d.bytes_after,
        d.seq,
        if scan.is_torn_tail() { "" } else { " and quarantine them" }
    )
}

/// `notice: the log is damaged below snapshot #S: …` for a predicted restart.
pub fn restart_notice(r: &RestartReport) -> String {
    format!(
        "notice: the log is damaged below snapshot #{}: recovery will quarantine the log and \
         continue at #{}",
        r.snapshot_seq, r.continues_at
    )
}

/// Reads the snapshot database from a private copy (see the module docs), kept open for
/// [`DataDir::snapshot_at_or_before`].
fn read_snapshots(file: &Path) -> Result<(Snapshots, SnapshotCopy), String> {
    let shown = file.display();
    let tmp = tempfile::tempdir()
        .map_err(|e| format!("cannot create a temporary directory for a copy of {shown}: {e}"))?;
    let copy = tmp.path().join(SNAPSHOT_FILE);
    fs::copy(file, &copy).map_err(|e| format!("cannot copy {shown}: {e}"))?;
    let db_err = |e: flash_layout::SnapshotError| format!("{shown}: {e}");
    let store = SnapshotStore::open(&copy).map_err(db_err)?;
    let snapshots = Snapshots {
        present: true,
        seqs: store.seqs().map_err(db_err)?,
        latest: store.latest().map_err(db_err)?,
    };
    Ok((snapshots, SnapshotCopy { store, _dir: tmp }))
}
