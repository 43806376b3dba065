//! A lastmile data directory opened for reading only.
//!
//! Nothing here writes to the directory: the log is read through [`flash_layout::scan`] (which
//! never writes) and never through `Log`/`Store` (whose `open` recovers, i.e. cuts and
//! quarantines). The snapshot database is opened from a private copy in a temporary directory,
//! because `SnapshotStore::open` creates its table in a write transaction, and redb repairs a
//! file that was not closed cleanly; neither may touch evidence.
//!
//! Files in a data directory:
//! - `seg-{base_seq:016x}.log`: log segments. A file named so that does not start with the
//!   segment magic is not ours: [`ReplayError::ForeignSegment`].
//! - `snapshots.redb`: the snapshot database.
//! - `quarantine-*.bin`: bytes a past recovery cut off after mid-log damage.
//! - `*.tmp`: an atomic write interrupted by a crash (ignored by recovery).
//! - anything else is a *foreign file*: listed by `check`, otherwise ignored.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use flash_layout::segment::{decode_header, parse_segment_name, HeaderError, SEGMENT_MAGIC};
use flash_layout::snapshot::SNAPSHOT_FILE;
use flash_layout::{scan, Defect, DefectReason, DirStorage, Reader, Scan, SnapshotStore, Storage};

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

/// What a data directory holds, validated but not yet decoded.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    storage: DirStorage,
    pub scan: Scan,
    /// The snapshot database, or why it cannot be read (only `state` and `check` need it).
    snapshots: Result<Snapshots, String>,
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
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ReplayError::NotADirectory { path: shown }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ReplayError::Missing { path: shown })
            }
            Err(source) => {
                return Err(ReplayError::Io {
                    path: shown,
                    source,
                })
            }
        }
        // The directory exists, so `open` (which would create a missing one) changes nothing.
        let io_err = |source| ReplayError::Io {
            path: shown.clone(),
            source,
        };
        let storage = DirStorage::open(&path).map_err(io_err)?;
        let scan = scan(&storage).map_err(|e| match e {
            flash_layout::ScanError::Io { name, source } => ReplayError::Io {
                path: path.join(name).display().to_string(),
                source,
            },
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
        let snapshots = if has_snapshot_file {
            read_snapshots(&path.join(SNAPSHOT_FILE))
        } else {
            Ok(Snapshots::default())
        };
        let ending = ending(&storage, &scan);
        Ok(Self {
            ending,
            path,
            storage,
            scan,
            snapshots,
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
        self.snapshots
            .as_ref()
            .map_err(|e| ReplayError::SnapshotDatabase(e.clone()))
    }

    /// Reads the records of the valid prefix from `from_seq` on.
    pub fn records(&self, from_seq: u64) -> Reader<'_, DirStorage> {
        self.scan.reader(&self.storage, from_seq)
    }

    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// The error for a damaged log (exit 3), `None` if the log is clean or only torn.
    pub fn damage(&self) -> Option<ReplayError> {
        let d = self.scan.defect.as_ref()?;
        if self.ending() != Ending::Damaged {
            return None;
        }
        Some(match d.reason {
            DefectReason::BadSegmentHeader | DefectReason::TornTail => {
                match self.header_error(&d.segment) {
                    Some(HeaderError::BadMagic) => ReplayError::ForeignSegment {
                        name: d.segment.clone(),
                    },
                    Some(e) => ReplayError::Damaged(format!(
                        "{}: bad segment header: {e}; {}",
                        d.segment,
                        cut_text(d)
                    )),
                    None => ReplayError::Damaged(format!(
                        "{}: bad segment header; {}",
                        d.segment,
                        cut_text(d)
                    )),
                }
            }
            DefectReason::SeqGap => {
                let base = parse_segment_name(&d.segment).unwrap_or(0);
                ReplayError::Damaged(format!(
                    "{} starts at seq {base} but seq {} was expected (missing, duplicated or misplaced segment); {}",
                    d.segment,
                    d.seq,
                    cut_text(d)
                ))
            }
            _ => ReplayError::Damaged(format!(
                "record {} in {} at offset {}: {}, and {} valid record(s) follow it; {}",
                d.seq,
                d.segment,
                d.offset,
                reason_text(d.reason),
                d.frames_after,
                cut_text(d)
            )),
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
                cut_text(d)
            )
        })
    }

    fn header_error(&self, name: &str) -> Option<HeaderError> {
        header_error(&self.storage, name)
    }
}

/// Classifies the scan's defect, if any.
fn ending(storage: &DirStorage, scan: &Scan) -> Ending {
    let Some(d) = &scan.defect else {
        return Ending::Clean;
    };
    match d.reason {
        // A segment shorter than its header: torn only if what is there could be our header
        // (an empty file, or the start of the magic); otherwise the file is not ours.
        DefectReason::TornTail if d.offset == 0 => match header_error(storage, &d.segment) {
            Some(HeaderError::BadMagic) => Ending::Damaged,
            _ => Ending::TornTail,
        },
        DefectReason::TornTail => Ending::TornTail,
        // Segment headers are written atomically: a bad one is never a crash artifact.
        DefectReason::BadSegmentHeader | DefectReason::SeqGap => Ending::Damaged,
        _ if d.valid_frames_after => Ending::Damaged,
        // Garbage in the unsynced tail with nothing valid after it: what a crash leaves.
        _ => Ending::TornTail,
    }
}

/// The header error of segment file `name`, if it can be read and is invalid. `BadMagic`
/// whenever the bytes present disagree with the magic, even in a file too short for a header.
fn header_error(storage: &DirStorage, name: &str) -> Option<HeaderError> {
    let data = storage.read(name).ok()?;
    let n = data.len().min(SEGMENT_MAGIC.len());
    if data[..n] != SEGMENT_MAGIC[..n] {
        return Some(HeaderError::BadMagic);
    }
    decode_header(&data).err()
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

/// What recovery would do at defect `d`.
pub fn cut_text(d: &Defect) -> String {
    format!(
        "recovery would cut {} byte(s) from seq {}{}",
        d.bytes_after,
        d.seq,
        if d.valid_frames_after {
            " and quarantine them"
        } else {
            ""
        }
    )
}

/// Reads the snapshot database from a private copy (see the module docs).
fn read_snapshots(file: &Path) -> Result<Snapshots, String> {
    let shown = file.display();
    let tmp = tempfile::tempdir()
        .map_err(|e| format!("cannot create a temporary directory for a copy of {shown}: {e}"))?;
    let copy = tmp.path().join(SNAPSHOT_FILE);
    fs::copy(file, &copy).map_err(|e| format!("cannot copy {shown}: {e}"))?;
    let db_err = |e: flash_layout::SnapshotError| format!("{shown}: {e}");
    let store = SnapshotStore::open(&copy).map_err(db_err)?;
    Ok(Snapshots {
        present: true,
        seqs: store.seqs().map_err(db_err)?,
        latest: store.latest().map_err(db_err)?,
    })
}
