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
//! corrupt one (see FORMAT.md "Recovery").

use std::io;

use thiserror::Error;

use crate::frame::{self, FrameError, FRAME_HEADER_LEN};
use crate::scan::{scan, DefectReason, ReadError, Reader, Scan, ScanError};
use crate::segment::{encode_header, parse_segment_name, segment_name, SEGMENT_HEADER_LEN};
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

/// The outcome of [`Log::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// Whether this append flushed the batch (so `seq` is durable).
    pub flushed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    pub base_seq: u64,
    /// `base_seq - 1` for a segment without records.
    pub last_seq: u64,
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
    /// Valid records kept (0 after a restart past a snapshot: the log then holds none).
    pub records: u64,
    pub cut: Option<Cut>,
    /// Set by [`crate::Store::open`] when the recovered log ended below the newest valid
    /// snapshot: the old log was quarantined and the log continues after the snapshot.
    /// Always `None` from [`Log::open`], which knows nothing of snapshots.
    pub restarted_after_snapshot: Option<SnapshotRestart>,
}

/// The log restarted after a snapshot (FORMAT.md "Recovery", step 5): damage cut the log below
/// the newest valid snapshot, whose seq was durable when it was taken, so the snapshot is the
/// truth. Every segment file was copied into quarantine and removed; the log continues at
/// `snapshot_seq + 1` (a fresh empty segment with that base seq), so no new record reuses a
/// seq the snapshot covers.
///
/// Suggested report: "log damaged below snapshot #`snapshot_seq`: old log quarantined in
/// `quarantined`, continuing at #`snapshot_seq + 1`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRestart {
    /// Seq of the newest valid snapshot; the next record gets `snapshot_seq + 1`.
    pub snapshot_seq: u64,
    /// The recovered log's last seq, below `snapshot_seq` (0: none).
    pub log_last_seq: u64,
    /// Valid records that were in the removed segments (all covered by the snapshot).
    pub records_removed: u64,
    /// Segment files removed, in log order.
    pub segments_removed: Vec<String>,
    /// Their total size.
    pub bytes_removed: u64,
    /// The quarantine file holding their bytes (offset 0, whole files); `None` if there were
    /// no segment files left (e.g. an earlier, interrupted restart had removed them all).
    pub quarantined: Option<String>,
}

/// The part of the log `open` cut off at the first defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Seq of the first record that was not kept.
    pub from_seq: u64,
    /// Valid-looking records found in the cut bytes, plus the damaged one.
    pub records_cut_estimate: u64,
    pub bytes: u64,
    pub reason: DefectReason,
    /// Where the cut bytes were saved: always, unless they were only a torn tail
    /// ([`Scan::is_torn_tail`](crate::Scan::is_torn_tail)).
    pub quarantined: Option<String>,
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
    #[error("{op} {name:?}: {source}")]
    Io { op: &'static str, name: String, source: io::Error },
}

fn io_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io { op, name: name.to_string(), source }
}

#[derive(Debug, Clone)]
struct Seg {
    name: String,
    base_seq: u64,
    records: u64,
    /// Durable bytes (header + synced frames).
    bytes: u64,
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
}

impl<S: Storage> Log<S> {
    /// Opens the log, recovering from a crash: cuts it at the first defect, first copying the
    /// cut bytes into quarantine unless they are only a torn tail of the last segment.
    pub fn open(mut storage: S, config: LogConfig) -> Result<(Self, Recovery), LogError> {
        let scan = scan(&storage)?;
        let cut = match &scan.defect {
            Some(_) => Some(cut_at_defect(&mut storage, &scan)?),
            None => None,
        };
        let segs: Vec<Seg> = scan
            .segments
            .iter()
            .map(|s| Seg { name: s.name.clone(), base_seq: s.base_seq, records: s.records, bytes: s.bytes })
            .collect();
        if let Some(last) = segs.last() {
            // What a previous run wrote may sit in the page cache only: make it true.
            storage.sync(&last.name).map_err(io_err("sync", &last.name))?;
        }
        let log = Self {
            storage,
            config,
            segs,
            durable_seq: scan.next_seq - 1,
            pending: Vec::new(),
            pending_records: 0,
            pending_value: 0,
            dirty: false,
        };
        Ok((log, Recovery { records: scan.records, cut, restarted_after_snapshot: None }))
    }

    /// Buffers a record and flushes if the policy says so. On an `Err` from that flush the
    /// record stays buffered as `last_seq()` and the next flush retries. Invalid records
    /// (version 0, payload over 65535 bytes) are rejected with nothing buffered.
    pub fn append(
        &mut self,
        version: u8,
        payload: &[u8],
        value: u128,
        urgent: bool,
    ) -> Result<Appended, LogError> {
        let seq = self.last_seq() + 1;
        frame::encode(&mut self.pending, seq, version, payload)?;
        self.pending_records += 1;
        self.pending_value = self.pending_value.saturating_add(value);
        let policy = self.config.flush;
        let due = urgent
            || self.pending_records >= policy.max_records
            || self.pending.len() >= policy.max_bytes
            || self.pending_value > policy.max_value;
        if due {
            self.flush()?;
        }
        Ok(Appended { seq, flushed: due })
    }

    /// Writes and fsyncs every pending record: one write and one fsync per segment touched
    /// (one, unless the batch crosses into a new segment). Returns the new `durable_seq()`.
    pub fn flush(&mut self) -> Result<u64, LogError> {
        if self.dirty {
            // Cut the partial write so the retry does not leave a frame twice.
            if let Some(active) = self.segs.last() {
                self.storage
                    .truncate(&active.name, active.bytes)
                    .map_err(io_err("truncate", &active.name))?;
            }
            self.dirty = false;
        }
        while !self.pending.is_empty() {
            let Some(active) = self.segs.last() else {
                self.start_segment()?;
                continue;
            };
            let room = self.config.segment_bytes.saturating_sub(active.bytes);
            let empty = active.records == 0;
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
            self.storage.append(&name, chunk).map_err(io_err("append", &name))?;
            self.storage.sync(&name).map_err(io_err("sync", &name))?;
            self.dirty = false;
            let active = self.segs.last_mut().expect("active segment checked above");
            active.bytes += take;
            active.records += n;
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
        self.storage.write_atomic(&name, &encode_header(base)).map_err(io_err("create segment", &name))?;
        self.segs.push(Seg { name, base_seq: base, records: 0, bytes: SEGMENT_HEADER_LEN });
        Ok(())
    }

    /// Restarts the log after a snapshot at `snapshot_seq` past its end (see
    /// [`SnapshotRestart`]): copies every segment file into one quarantine file (reusing an
    /// existing one that already holds them all, so a repeated restart adds nothing), removes
    /// them last first, then writes the empty segment `snapshot_seq + 1`.
    ///
    /// Crash safety: every step is durable and the steps are ordered so that a crash anywhere
    /// leaves either the same log or a prefix of it (still ending below the snapshot, so the
    /// next open restarts again), or no segment at all (likewise), or the new empty segment
    /// (a clean log continuing at `snapshot_seq + 1`).
    ///
    /// Only right after `open`: nothing pending, `snapshot_seq > last_seq()`.
    pub(crate) fn restart_after_snapshot(&mut self, snapshot_seq: u64) -> Result<SnapshotRestart, LogError> {
        assert!(
            snapshot_seq > self.last_seq() && self.pending.is_empty(),
            "restart at snapshot {snapshot_seq} with log at {}",
            self.last_seq()
        );
        let log_last_seq = self.last_seq();
        let records_removed = self.segs.iter().map(|s| s.records).sum();
        // Every segment-named file, not only `segs`: the directory must hold none below the
        // new base (after `open` the two lists are the same).
        let names: Vec<String> = self
            .storage
            .list()
            .map_err(io_err("list", ""))?
            .into_iter()
            .filter(|n| parse_segment_name(n).is_some())
            .collect();
        let mut files = Vec::with_capacity(names.len());
        for name in &names {
            files.push(self.storage.read(name).map_err(io_err("read", name))?);
        }
        let bytes_removed = files.iter().map(|f| f.len() as u64).sum();
        let quarantined = match names.first().and_then(|n| parse_segment_name(n)) {
            None => None,
            Some(first_seq) => Some(quarantine_whole_files(&mut self.storage, first_seq, &names, &files)?),
        };
        // Last first: an interrupted restart leaves a prefix of the log, which still ends
        // below the snapshot.
        for name in names.iter().rev() {
            self.storage.remove(name).map_err(io_err("remove", name))?;
        }
        self.segs.clear();
        self.durable_seq = snapshot_seq;
        self.dirty = false;
        // Written now rather than at the first flush: the log itself then says it continues
        // at `snapshot_seq + 1`, so a reopen is clean, and losing the snapshots later is a
        // `RestoreError::Gap` instead of a silent replay of an empty log.
        self.start_segment()?;
        Ok(SnapshotRestart {
            snapshot_seq,
            log_last_seq,
            records_removed,
            segments_removed: names,
            bytes_removed,
            quarantined,
        })
    }

    /// Highest seq known to be on flash (0: none).
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
        let segments = self.segs.iter().map(|s| (s.name.clone(), s.base_seq, s.records)).collect();
        Reader::new(&self.storage, segments, seq, self.durable_seq)
    }

    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segs
            .iter()
            .map(|s| SegmentInfo {
                name: s.name.clone(),
                base_seq: s.base_seq,
                last_seq: s.base_seq + s.records - 1,
                bytes: s.bytes,
            })
            .collect()
    }

    /// Removes the oldest segments whose records all have seq `< seq` (covered by a snapshot),
    /// as long as what remains still satisfies `retention`. Never removes the active segment.
    pub fn remove_segments_before(&mut self, seq: u64, retention: Retention) -> Result<Removed, LogError> {
        let mut records: u64 = self.segs.iter().map(|s| s.records).sum();
        let mut bytes: u64 = self.segs.iter().map(|s| s.bytes).sum();
        let mut removed = Removed::default();
        while self.segs.len() > 1 {
            let s = &self.segs[0];
            let covered = s.base_seq + s.records <= seq; // last_seq < seq
            let keeps_window =
                records - s.records >= retention.min_records && bytes - s.bytes >= retention.min_bytes;
            if !covered || !keeps_window {
                break;
            }
            self.storage.remove(&s.name).map_err(io_err("remove", &s.name))?;
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

/// Removes everything from the scan's defect on, after copying it into quarantine unless it is
/// only a torn tail ([`Scan::is_torn_tail`]): recovery never drops other bytes unkept.
fn cut_at_defect<S: Storage>(storage: &mut S, scan: &Scan) -> Result<Cut, LogError> {
    let d = scan.defect.as_ref().expect("called with a defect");
    let in_prefix = scan.segments.last().is_some_and(|s| s.name == d.segment);
    let quarantined = if !scan.is_torn_tail() {
        let mut q = QUARANTINE_MAGIC.to_vec();
        if in_prefix {
            let data = storage.read(&d.segment).map_err(io_err("read", &d.segment))?;
            let from = (d.offset as usize).min(data.len());
            quarantine_piece(&mut q, &d.segment, d.offset, &data[from..]);
        }
        for name in &scan.beyond {
            let data = storage.read(name).map_err(io_err("read", name))?;
            quarantine_piece(&mut q, name, 0, &data);
        }
        Some(write_quarantine(storage, d.seq, &q)?)
    } else {
        None
    };
    // Last first, so an interrupted recovery leaves a log that still ends in the defect.
    for name in scan.beyond.iter().rev() {
        storage.remove(name).map_err(io_err("remove", name))?;
    }
    if in_prefix {
        storage.truncate(&d.segment, d.offset).map_err(io_err("truncate", &d.segment))?;
    }
    let damaged_frame = !matches!(d.reason, DefectReason::SeqGap | DefectReason::BadSegmentHeader);
    Ok(Cut {
        from_seq: d.seq,
        records_cut_estimate: d.frames_after + u64::from(damaged_frame && d.bytes_after > 0),
        bytes: d.bytes_after,
        reason: d.reason,
        quarantined,
    })
}

/// Writes quarantine file `bytes` for a cut at `seq` under a free name, and returns it.
fn write_quarantine<S: Storage>(storage: &mut S, seq: u64, bytes: &[u8]) -> Result<String, LogError> {
    // Never overwrite: a crash during an earlier recovery may have left a fuller copy.
    let existing = storage.list().map_err(io_err("list", ""))?;
    let mut name = quarantine_name(seq, 0);
    let mut n = 0;
    while existing.contains(&name) {
        n += 1;
        name = quarantine_name(seq, n);
    }
    storage.write_atomic(&name, bytes).map_err(io_err("quarantine", &name))?;
    Ok(name)
}

/// Saves whole files `names` (contents `files`) in quarantine, unless one quarantine file
/// already holds every one of them whole (an interrupted earlier restart wrote it). Returns
/// the quarantine file's name.
fn quarantine_whole_files<S: Storage>(
    storage: &mut S,
    seq: u64,
    names: &[String],
    files: &[Vec<u8>],
) -> Result<String, LogError> {
    for existing in storage.list().map_err(io_err("list", ""))? {
        if !is_quarantine_name(&existing) {
            continue;
        }
        let data = storage.read(&existing).map_err(io_err("read", &existing))?;
        let Some(pieces) = quarantine_pieces(&data) else {
            continue;
        };
        let holds_all = names.iter().zip(files).all(|(name, bytes)| {
            pieces.iter().any(|p| p.name == name && p.offset == 0 && p.bytes == bytes.as_slice())
        });
        if holds_all {
            return Ok(existing);
        }
    }
    let mut q = QUARANTINE_MAGIC.to_vec();
    for (name, bytes) in names.iter().zip(files) {
        quarantine_piece(&mut q, name, 0, bytes);
    }
    write_quarantine(storage, seq, &q)
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

/// Whether a file name is a quarantine file's.
pub fn is_quarantine_name(name: &str) -> bool {
    name.starts_with("quarantine-") && name.ends_with(".bin")
}

fn quarantine_piece(out: &mut Vec<u8>, name: &str, offset: u64, bytes: &[u8]) {
    // Segment names are 24 bytes; the u16 cannot overflow.
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
