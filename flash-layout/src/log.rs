//! The append-only event log with group commit and crash recovery.
//!
//! Drive loop (the log writer actor): `append` every record the machines emit; the log
//! flushes by itself when the batch reaches the policy's record, byte or value limit, or at
//! once for an urgent record; the caller also calls `flush` from a timer to bound the delay.
//! After every call, `durable_seq()` is the highest seq that reached flash: only effects
//! justified by records at or below it may be released (persist, then send).
//!
//! Crash model: an unsynced append may be kept, torn at any byte, lost, or turned into
//! garbage; every synced byte and every completed `truncate`/`remove`/`write_atomic` survives.
//! Under it, `open` recovers every record that `durable_seq()` ever covered, and never a
//! corrupt one. Under damage to durable bytes it keeps every intact record and never gives a
//! new record the seq of a lost one (see FORMAT.md "Recovery").

use std::io;

use thiserror::Error;

use crate::frame::{self, FrameError, FRAME_HEADER_LEN};
use crate::recovery;
use crate::scan::{scan, Damage, DamageKind, ReadError, ReadSegment, Reader, Run, Scan, ScanError};
use crate::segment::{encode_header, segment_name, SEGMENT_FORMAT_WITH_HOLES, SEGMENT_HEADER_LEN};
use crate::storage::Storage;

/// When a batch of appended records is written and fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush when this many records are pending.
    pub max_records: usize,
    /// Flush when this many framed bytes are pending.
    pub max_bytes: usize,
    /// Flush when the value (money) of pending records exceeds this.
    pub max_value: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment starts when the current one would pass this size (a single frame larger
    /// than it still gets a segment of its own).
    pub segment_bytes: u64,
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 20,
            flush: FlushPolicy { max_records: 256, max_bytes: 16 << 10, max_value: 0 },
        }
    }
}

/// The outcome of [`Log::push`]: the record is buffered as `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub seq: u64,
    /// Whether the flush policy says the batch should be written now.
    pub flush_due: bool,
}

/// The outcome of [`Log::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// Whether this append flushed the batch (so `seq` is durable).
    pub flushed: bool,
}

/// Why [`Log::append`] failed. The two cases differ in what matters most: whether the record
/// is in the log.
#[derive(Debug, Error)]
pub enum AppendError {
    /// The record was not taken: nothing is buffered and no seq was used.
    #[error("record refused: {0}")]
    Invalid(#[from] FrameError),
    /// The record was taken as `seq` and stays buffered; the flush it triggered failed, and the
    /// next flush retries it. Appending it again would log it twice.
    #[error("record #{seq} buffered, but writing the batch failed: {error}")]
    Unflushed { seq: u64, error: LogError },
}

impl AppendError {
    /// The seq the record was taken as, if it was.
    pub fn taken_seq(&self) -> Option<u64> {
        match self {
            Self::Invalid(_) => None,
            Self::Unflushed { seq, .. } => Some(*seq),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    pub base_seq: u64,
    /// The last seq the segment covers, records and holes (`base_seq - 1` if none).
    pub last_seq: u64,
    pub records: u64,
    pub bytes: u64,
}

/// How much log must stay, whatever snapshots cover (the dispute window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub min_records: u64,
    pub min_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Removed {
    pub segments: Vec<String>,
    pub records: u64,
    pub bytes: u64,
}

/// What `open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records in the log after recovery.
    pub records: u64,
    /// Every damaged range the scan found, torn tail included (empty: the log was intact).
    pub damage: Vec<Damage>,
    /// The quarantine file written with the damaged bytes, if any were saved.
    pub quarantined: Option<String>,
    /// Seq ranges `from..to` recorded as holes by this recovery: lost records, whose seqs no
    /// new record will take.
    pub holes: Vec<(u64, u64)>,
    /// Set by [`crate::Store::open`] when the newest valid snapshot covered more than the log
    /// held: the log continues right after that snapshot (its seq), the seqs between being a
    /// hole. Always `None` from [`Log::open`], which knows nothing of snapshots.
    pub continued_after_snapshot: Option<u64>,
    /// The seq the next record gets.
    pub next_seq: u64,
    /// Set by [`crate::Store`] when the snapshot database could not be read and was set
    /// aside under this name (the log held everything, so the state is rebuilt from it).
    pub snapshots_set_aside: Option<String>,
}

impl Recovery {
    /// The torn tail cut, if the log ended in one (a crash; nothing durable lost).
    pub fn torn_tail(&self) -> Option<&Damage> {
        self.damage.iter().find(|d| d.kind == DamageKind::TornTail)
    }

    /// Damage to bytes that may have been durable, and foreign files removed.
    pub fn lost(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| d.kind != DamageKind::TornTail)
    }

    /// Seqs that became holes (lost records, or as many as the damaged bytes could hold).
    pub fn hole_seqs(&self) -> u64 {
        self.holes.iter().map(|(from, to)| to - from).sum()
    }
}

#[derive(Debug, Error)]
pub enum LogError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("invalid record: {0}")]
    Record(#[from] FrameError),
    /// A storage operation failed. After a failed flush the batch is kept and retried by the
    /// next flush; nothing past `durable_seq()` is claimed.
    #[error("{op} {name}: {source}")]
    Io { op: &'static str, name: String, source: io::Error },
    /// Recovery ran, yet the log still does not scan clean (another process writing the
    /// directory?). Nothing more is done.
    #[error("{dir}: the log still has damage after recovery (another process writing it?): {what}")]
    Unrecovered { dir: String, what: String },
}

#[derive(Debug, Clone)]
struct Seg {
    name: String,
    base_seq: u64,
    records: u64,
    /// Seq after the last record or hole.
    next_seq: u64,
    /// Durable bytes (header + synced frames).
    bytes: u64,
    /// Format 2: may hold hole frames.
    holes: bool,
}

/// The log over a [`Storage`] directory. See the module docs for the drive loop.
#[derive(Debug)]
pub struct Log<S: Storage> {
    storage: S,
    config: LogConfig,
    segs: Vec<Seg>,
    durable_seq: u64,
    /// Framed records not yet written, seqs `durable_seq + 1 ..= last_seq`.
    pending: Vec<u8>,
    pending_records: usize,
    pending_value: u128,
    /// The active segment's file may hold bytes past its durable length (a failed write).
    dirty: bool,
    /// The last segment holds hole frames (recovery rewrote it): new records go to a new
    /// segment, whose header names their seq. A hole takes any number of seqs in 16 bytes, so
    /// if rot later damaged it, the scan could not tell from the bytes alone where the seqs
    /// after it resume.
    sealed: bool,
}

impl<S: Storage> Log<S> {
    /// Opens the log, recovering from a crash and from damage (see [`crate::recovery`]):
    /// every intact record is kept, damaged bytes are quarantined and their seqs become
    /// holes, a torn tail is cut.
    pub fn open(storage: S, config: LogConfig) -> Result<(Self, Recovery), LogError> {
        let scan = scan(&storage)?;
        let plan = recovery::plan(&scan, None);
        Self::recover(storage, config, &scan, &plan)
    }

    /// Carries out `plan` (from `scan` of `storage`) and opens the repaired log.
    pub(crate) fn recover(
        mut storage: S,
        config: LogConfig,
        scan: &Scan,
        plan: &recovery::Plan,
    ) -> Result<(Self, Recovery), LogError> {
        let quarantined = recovery::execute(&mut storage, scan, plan)?;
        let clean = if plan.is_empty() { scan.clone() } else { crate::scan::scan(&storage)? };
        if !clean.is_clean() {
            let what: Vec<String> = clean
                .damage
                .iter()
                .map(|d| format!("{} at offset {} of {} ({:?})", d.len, d.offset, d.segment, d.reason))
                .collect();
            return Err(LogError::Unrecovered { dir: storage.describe(""), what: what.join("; ") });
        }
        let segs: Vec<Seg> = clean
            .segments
            .iter()
            .map(|s| Seg {
                name: s.name.clone(),
                base_seq: s.base_seq,
                records: s.records,
                next_seq: s.next_seq,
                bytes: s.bytes,
                holes: s.format >= SEGMENT_FORMAT_WITH_HOLES,
            })
            .collect();
        if let Some(last) = segs.last() {
            // What a previous run wrote may sit in the page cache only: make it true.
            storage.sync(&last.name).map_err(io_err("sync", &storage, &last.name))?;
        }
        let sealed = segs.last().is_some_and(|s| s.holes);
        let log = Self {
            storage,
            config,
            durable_seq: clean.next_seq - 1,
            segs,
            pending: Vec::new(),
            pending_records: 0,
            pending_value: 0,
            dirty: false,
            sealed,
        };
        let recovery = Recovery {
            records: clean.records,
            damage: scan.damage.clone(),
            quarantined,
            holes: plan.holes.clone(),
            continued_after_snapshot: plan.continue_at.map(|at| at - 1),
            next_seq: clean.next_seq,
            snapshots_set_aside: None,
        };
        Ok((log, recovery))
    }

    /// Buffers a record as the next seq, without writing it. Invalid records (version 0,
    /// payload over 65535 bytes) are refused with nothing buffered. The caller flushes when
    /// `flush_due` says so (or later, from its timer).
    pub fn push(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Pushed, FrameError> {
        let seq = self.last_seq() + 1;
        frame::encode(&mut self.pending, seq, version, payload)?;
        self.pending_records += 1;
        self.pending_value = self.pending_value.saturating_add(value);
        let policy = self.config.flush;
        let flush_due = urgent
            || self.pending_records >= policy.max_records
            || self.pending.len() >= policy.max_bytes
            || self.pending_value > policy.max_value;
        Ok(Pushed { seq, flush_due })
    }

    /// Buffers a record and flushes if the policy says so. See [`AppendError`] for what a
    /// failure means: a record that was taken must not be appended again.
    pub fn append(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Appended, AppendError> {
        let Pushed { seq, flush_due } = self.push(version, payload, value, urgent)?;
        if flush_due {
            self.flush().map_err(|error| AppendError::Unflushed { seq, error })?;
        }
        Ok(Appended { seq, flushed: flush_due })
    }

    /// Writes and fsyncs every pending record: one write and one fsync per segment touched
    /// (one, unless the batch crosses into a new segment). Returns the new `durable_seq()`.
    /// On error the unwritten records stay pending, in order, with their seqs: the next flush
    /// first cuts whatever the failed write left in the file, then writes them again.
    pub fn flush(&mut self) -> Result<u64, LogError> {
        if self.dirty {
            // Cut the partial write so the retry does not leave a frame twice.
            if let Some(active) = self.segs.last() {
                self.storage.truncate(&active.name, active.bytes).map_err(io_err(
                    "truncate",
                    &self.storage,
                    &active.name,
                ))?;
            }
            self.dirty = false;
        }
        while !self.pending.is_empty() {
            let Some(active) = self.segs.last().filter(|_| !self.sealed) else {
                self.start_segment()?;
                continue;
            };
            let room = self.config.segment_bytes.saturating_sub(active.bytes);
            let empty = active.records == 0 && active.next_seq == active.base_seq;
            let name = active.name.clone();
            let (mut take, mut n) = (0u64, 0u64);
            while (take as usize) < self.pending.len() {
                let at = take as usize;
                // Our own encoding: the length field at `at + 2` is trusted.
                let len = u16::from_le_bytes([self.pending[at + 2], self.pending[at + 3]]);
                let flen = FRAME_HEADER_LEN + u64::from(len);
                let fits = take + flen <= room || (empty && n == 0);
                if !fits {
                    break;
                }
                take += flen;
                n += 1;
            }
            if n == 0 {
                self.start_segment()?;
                continue;
            }
            self.dirty = true;
            let chunk = &self.pending[..take as usize];
            self.storage.append(&name, chunk).map_err(io_err("append", &self.storage, &name))?;
            self.storage.sync(&name).map_err(io_err("sync", &self.storage, &name))?;
            self.dirty = false;
            let active = self.segs.last_mut().expect("active segment checked above");
            active.bytes += take;
            active.records += n;
            active.next_seq += n;
            self.durable_seq += n;
            self.pending.drain(..take as usize);
            self.pending_records -= n as usize;
        }
        self.pending_value = 0;
        Ok(self.durable_seq)
    }

    /// Starts a segment for record `durable_seq + 1`, its header written atomically.
    fn start_segment(&mut self) -> Result<(), LogError> {
        let base = self.durable_seq + 1;
        let name = segment_name(base);
        self.storage.write_atomic(&name, &encode_header(base)).map_err(io_err(
            "create segment",
            &self.storage,
            &name,
        ))?;
        self.segs.push(Seg {
            name,
            base_seq: base,
            records: 0,
            next_seq: base,
            bytes: SEGMENT_HEADER_LEN,
            holes: false,
        });
        self.sealed = false;
        Ok(())
    }

    /// Highest seq known to be on flash (0: none). Holes count: a seq in a hole is durable
    /// in that no record will ever have it.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Highest seq appended, durable or not (0: none).
    pub fn last_seq(&self) -> u64 {
        self.durable_seq + self.pending_records as u64
    }

    /// Seq of the oldest record still in the log (`last_seq() + 1` if it holds none).
    pub fn first_seq(&self) -> u64 {
        self.segs.first().map_or(self.durable_seq + 1, |s| s.base_seq)
    }

    pub fn pending_records(&self) -> usize {
        self.pending_records
    }

    /// Framed bytes waiting for the next flush.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.len() as u64
    }

    pub fn pending_value(&self) -> u128 {
        self.pending_value
    }

    /// Reads durable records with seq `>= seq`.
    pub fn read_from(&self, seq: u64) -> Reader<'_, S> {
        let segments = self
            .segs
            .iter()
            .map(|s| ReadSegment {
                name: s.name.clone(),
                next_seq: s.next_seq,
                holes: s.holes,
                runs: (s.bytes > SEGMENT_HEADER_LEN)
                    .then(|| Run {
                        offset: SEGMENT_HEADER_LEN,
                        len: s.bytes - SEGMENT_HEADER_LEN,
                        seq: s.base_seq,
                        next_seq: s.next_seq,
                    })
                    .into_iter()
                    .collect(),
            })
            .collect();
        Reader::new(&self.storage, segments, seq, self.durable_seq)
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segs
            .iter()
            .map(|s| SegmentInfo {
                name: s.name.clone(),
                base_seq: s.base_seq,
                last_seq: s.next_seq - 1,
                records: s.records,
                bytes: s.bytes,
            })
            .collect()
    }

    /// Removes the oldest segments whose seqs are all `< seq` (covered by a snapshot), as
    /// long as what remains still satisfies `retention`. Never removes the active segment.
    pub fn remove_segments_before(&mut self, seq: u64, retention: Retention) -> Result<Removed, LogError> {
        let mut records: u64 = self.segs.iter().map(|s| s.records).sum();
        let mut bytes: u64 = self.segs.iter().map(|s| s.bytes).sum();
        let mut removed = Removed::default();
        while self.segs.len() > 1 {
            let s = &self.segs[0];
            let covered = s.next_seq <= seq;
            let keeps_window =
                records - s.records >= retention.min_records && bytes - s.bytes >= retention.min_bytes;
            if !covered || !keeps_window {
                break;
            }
            self.storage.remove(&s.name).map_err(io_err("remove", &self.storage, &s.name))?;
            let s = self.segs.remove(0);
            records -= s.records;
            bytes -= s.bytes;
            removed.records += s.records;
            removed.bytes += s.bytes;
            removed.segments.push(s.name);
        }
        Ok(removed)
    }

    /// Bytes of segment files on flash.
    pub fn disk_bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.bytes).sum()
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// For writing non-log files (the store's quarantine accounting, tests).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    pub fn into_storage(self) -> S {
        self.storage
    }
}

fn io_err<'a, S: Storage>(
    op: &'static str,
    storage: &S,
    name: &'a str,
) -> impl FnOnce(io::Error) -> LogError + 'a {
    let name = storage.describe(name);
    move |source| LogError::Io { op, name, source }
}

/// One piece of a quarantine file: bytes `offset..offset + bytes.len()` of file `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantinePiece<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// Parses a quarantine file (FORMAT.md "Quarantine file"); `None` if it is malformed.
pub fn quarantine_pieces(file: &[u8]) -> Option<Vec<QuarantinePiece<'_>>> {
    let mut rest = file.strip_prefix(&QUARANTINE_MAGIC[..])?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (name_len, r) = rest.split_first_chunk::<2>()?;
        let name_len = usize::from(u16::from_le_bytes(*name_len));
        let (name, r) = (r.get(..name_len)?, r.get(name_len..)?);
        let (offset, r) = r.split_first_chunk::<8>()?;
        let (len, r) = r.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let (bytes, r) = (r.get(..len)?, r.get(len..)?);
        out.push(QuarantinePiece {
            name: std::str::from_utf8(name).ok()?,
            offset: u64::from_le_bytes(*offset),
            bytes,
        });
        rest = r;
    }
    Some(out)
}

/// First bytes of a quarantine file.
pub const QUARANTINE_MAGIC: [u8; 4] = *b"LMQ1";

/// Name of the quarantine file for a cut at `seq`; `n > 0` when that name is taken.
pub fn quarantine_name(seq: u64, n: u32) -> String {
    if n == 0 {
        format!("quarantine-{seq:016x}.bin")
    } else {
        format!("quarantine-{seq:016x}.{n}.bin")
    }
}

/// Whether a file name is a quarantine file's: cut log bytes (`.bin`) or a snapshot database
/// set aside because it could not be read (`.redb`). Both count against the flash budget.
pub fn is_quarantine_name(name: &str) -> bool {
    name.starts_with("quarantine-") && (name.ends_with(".bin") || name.ends_with(".redb"))
}

/// Appends one piece to quarantine file bytes `out` (FORMAT.md "Quarantine file").
pub(crate) fn quarantine_piece(out: &mut Vec<u8>, name: &str, offset: u64, bytes: &[u8]) {
    // Segment names are 24 bytes; the u16 cannot overflow.
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
