//! Read-only validation of a whole log directory (`replay check`) and fast reading of its
//! valid prefix (the replay path).
//!
//! [`scan`] never modifies anything. It walks segment files in name order, checks each header,
//! the contiguity of base seqs, and every frame, and stops the valid prefix at the first
//! [`Defect`]. For the defect it then looks further (without trusting what it finds) to tell a
//! torn tail — a crash in the middle of an unsynced write, harmless — from damage in the
//! middle of the log, which means something durable was lost.

use std::collections::BTreeMap;
use std::io;

use thiserror::Error;

use crate::frame::{self, FrameError, Record, FRAME_HEADER_LEN, FRAME_MAGIC};
use crate::segment::{decode_header, parse_segment_name, HeaderError, SEGMENT_HEADER_LEN};
use crate::storage::Storage;

/// How many seqs past the defect resynchronisation tries for each candidate frame offset.
const RESYNC_SEQS: u64 = 64;

#[derive(Debug, Error)]
pub enum ScanError {
    #[error("I/O error reading {name:?}: {source}")]
    Io { name: String, source: io::Error },
}

/// One segment of the valid prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub name: String,
    pub base_seq: u64,
    /// Valid records in this segment.
    pub records: u64,
    /// Valid bytes: header plus valid frames (the whole file unless it holds the defect).
    pub bytes: u64,
}

impl SegmentSummary {
    /// Seq of the last valid record, or `base_seq - 1` if there is none.
    pub fn last_seq(&self) -> u64 {
        self.base_seq + self.records - 1
    }
}

/// What check the first bad byte failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefectReason {
    /// The last segment file ends inside a frame and no valid frame follows: what a crash
    /// during an unsynced write leaves. (A segment file too short for its header is
    /// [`BadSegmentHeader`](Self::BadSegmentHeader): headers are written atomically.)
    TornTail,
    /// A frame's length runs past the end of its segment, yet valid frames follow it or the
    /// segment is not the last one.
    BadLength,
    BadMagic,
    BadCrc,
    /// A frame with version 0 (reserved).
    BadVersion,
    /// A file named like a segment whose header is invalid (including a file too short for
    /// one, or not starting with the segment magic) or disagrees with its name.
    BadSegmentHeader,
    /// A segment's base seq does not continue the previous segment (gap or duplicate).
    SeqGap,
}

/// The first place where the log stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    /// The seq the first invalid record would have had.
    pub seq: u64,
    /// The segment file holding the defect.
    pub segment: String,
    /// Byte offset of the defect in that file.
    pub offset: u64,
    pub reason: DefectReason,
    /// Bytes from the defect to the end of its segment, plus every later segment file.
    pub bytes_after: u64,
    /// Whether any valid frame (or valid segment header) exists after the defect: `true`
    /// means durable data was damaged in the middle of the log. `false` alone does not make a
    /// torn tail: see [`Scan::is_torn_tail`].
    pub valid_frames_after: bool,
    /// Valid frames found after the defect (a lower bound of the records lost by cutting).
    pub frames_after: u64,
}

/// The result of [`scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Segments of the valid prefix, in order; the defect's segment is included with its valid
    /// part when its header is valid.
    pub segments: Vec<SegmentSummary>,
    /// Segment files wholly after the defect (or with a bad header), in order.
    pub beyond: Vec<String>,
    /// Files that are not segments (snapshots, quarantine, temporary files...).
    pub foreign: Vec<String>,
    /// Valid records per version.
    pub versions: BTreeMap<u8, u64>,
    pub records: u64,
    /// First and last valid seq, 0 if there are no records.
    pub first_seq: u64,
    pub last_seq: u64,
    /// The seq the next appended record must get.
    pub next_seq: u64,
    pub defect: Option<Defect>,
}

impl Scan {
    /// Whether the defect is only a torn tail: it lies in the frames of the last segment file
    /// (past a valid header) and no valid frame follows it — what a crash during an unsynced
    /// write leaves ([`DefectReason::TornTail`], or garbage: `BadMagic`, `BadCrc`,
    /// `BadVersion`). Recovery cuts a torn tail without keeping it; every other cut is first
    /// copied into quarantine (FORMAT.md "Recovery"). `false` without a defect.
    pub fn is_torn_tail(&self) -> bool {
        self.defect.as_ref().is_some_and(|d| {
            !d.valid_frames_after
                && self.beyond.is_empty()
                && self.segments.last().is_some_and(|s| s.name == d.segment)
        })
    }

    /// Reads the records of the valid prefix with seq `>= from_seq`.
    pub fn reader<'s, S: Storage>(&self, storage: &'s S, from_seq: u64) -> Reader<'s, S> {
        let segments = self.segments.iter().map(|s| (s.name.clone(), s.base_seq, s.records)).collect();
        Reader::new(storage, segments, from_seq, self.last_seq)
    }
}

/// Scans the log in `storage`. Never writes.
pub fn scan<S: Storage>(storage: &S) -> Result<Scan, ScanError> {
    let names = storage.list().map_err(|source| ScanError::Io { name: String::new(), source })?;
    let mut out = Scan::default();
    let mut segs = Vec::new();
    for name in names {
        match parse_segment_name(&name) {
            Some(base) => segs.push((name, base)),
            None => out.foreign.push(name),
        }
    }
    let read =
        |name: &str| storage.read(name).map_err(|source| ScanError::Io { name: name.to_string(), source });
    let seg_count = segs.len();
    // The seq the next record must have; None before the first segment.
    let mut expected: Option<u64> = None;
    for (i, (name, name_base)) in segs.iter().enumerate() {
        if let Some(defect) = &mut out.defect {
            let data = read(name)?;
            defect.bytes_after += data.len() as u64;
            if let Ok(base) = decode_header(&data) {
                defect.valid_frames_after = true;
                defect.frames_after += count_frames(&data, SEGMENT_HEADER_LEN, base);
            }
            out.beyond.push(name.clone());
            continue;
        }
        let data = read(name)?;
        let is_last = i + 1 == seg_count;
        let want = expected.unwrap_or(*name_base);
        let header = decode_header(&data).and_then(|base| {
            if base == *name_base {
                Ok(base)
            } else {
                Err(HeaderError::NameMismatch { header: base, name: *name_base })
            }
        });
        let base = match header {
            Ok(base) if base == want => base,
            Ok(base) => {
                // Contiguity: a duplicated, skipped or reordered segment.
                let frames = count_frames(&data, SEGMENT_HEADER_LEN, base);
                out.defect = Some(Defect {
                    seq: want,
                    segment: name.clone(),
                    offset: 0,
                    reason: DefectReason::SeqGap,
                    bytes_after: data.len() as u64,
                    valid_frames_after: true,
                    frames_after: frames,
                });
                out.beyond.push(name.clone());
                continue;
            }
            // Headers are written atomically: a short or bad one is never a crash artifact.
            Err(_) => {
                let (found, frames) = resync(&data, 1, want);
                out.defect = Some(Defect {
                    seq: want,
                    segment: name.clone(),
                    offset: 0,
                    reason: DefectReason::BadSegmentHeader,
                    bytes_after: data.len() as u64,
                    valid_frames_after: found,
                    frames_after: frames,
                });
                out.beyond.push(name.clone());
                continue;
            }
        };
        let mut pos = SEGMENT_HEADER_LEN;
        let mut seq = base;
        let mut failure = None;
        // `pos` never exceeds data.len(), which is a usize.
        while (pos as usize) < data.len() {
            match frame::decode(&data[pos as usize..], seq) {
                Ok((rec, len)) => {
                    *out.versions.entry(rec.version).or_insert(0) += 1;
                    pos += len;
                    seq += 1;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let records = seq - base;
        if records > 0 {
            if out.first_seq == 0 {
                out.first_seq = base;
            }
            out.last_seq = seq - 1;
            out.records += records;
        }
        out.segments.push(SegmentSummary { name: name.clone(), base_seq: base, records, bytes: pos });
        expected = Some(seq);
        if let Some(e) = failure {
            let (found, frames) = resync(&data, pos + 1, seq);
            let reason = match e {
                // Only the last segment can end in an unsynced write: a segment is synced
                // before the next one is started.
                FrameError::ShortHeader | FrameError::LengthPastEnd { .. } if is_last && !found => {
                    DefectReason::TornTail
                }
                FrameError::ShortHeader | FrameError::LengthPastEnd { .. } => DefectReason::BadLength,
                FrameError::BadMagic(_) => DefectReason::BadMagic,
                FrameError::BadCrc { .. } => DefectReason::BadCrc,
                FrameError::VersionZero => DefectReason::BadVersion,
                FrameError::PayloadTooLarge(_) => DefectReason::BadLength,
            };
            out.defect = Some(Defect {
                seq,
                segment: name.clone(),
                offset: pos,
                reason,
                bytes_after: data.len() as u64 - pos,
                valid_frames_after: found,
                frames_after: frames,
            });
        }
    }
    out.next_seq = match (&out.defect, expected) {
        (_, Some(seq)) => seq,
        (Some(d), None) => d.seq,
        (None, None) => 1,
    };
    Ok(out)
}

/// Counts valid frames from `pos`, the first one being record `seq`.
fn count_frames(data: &[u8], mut pos: u64, mut seq: u64) -> u64 {
    let mut n = 0;
    while let Some(rest) = data.get(pos as usize..).filter(|r| !r.is_empty()) {
        match frame::decode(rest, seq) {
            Ok((_, len)) => {
                pos += len;
                seq += 1;
                n += 1;
            }
            Err(_) => break,
        }
    }
    n
}

/// Looks for a valid frame at any offset `>= from` whose seq is in `seq..seq + RESYNC_SEQS`,
/// and counts the frames that chain from it. Returns (found, frames).
fn resync(data: &[u8], from: u64, seq: u64) -> (bool, u64) {
    let hdr = FRAME_HEADER_LEN as usize;
    let mut o = from as usize;
    while o + hdr <= data.len() {
        let h = &data[o..o + hdr];
        let len = u16::from_le_bytes([h[2], h[3]]) as usize;
        if h[0] == FRAME_MAGIC && h[1] != 0 && o + hdr + len <= data.len() {
            let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            // CRC(seq ++ rest) = combine(CRC(seq), CRC(rest)): the payload is hashed once.
            let rest = crc32c::crc32c_append(crc32c::crc32c(&h[1..4]), &data[o + hdr..o + hdr + len]);
            for j in 0..RESYNC_SEQS {
                let s = seq + j;
                if crc32c::crc32c_combine(crc32c::crc32c(&s.to_le_bytes()), rest, 3 + len) == stored {
                    return (true, count_frames(data, o as u64, s));
                }
            }
        }
        o += 1;
    }
    (false, 0)
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("I/O error reading {name:?}: {source}")]
    Io { name: String, source: io::Error },
    /// The file changed since it was scanned.
    #[error("record {seq} in {name:?} no longer valid: {error}")]
    Frame { name: String, seq: u64, error: FrameError },
}

/// Reads records in seq order, one segment file in memory at a time. A lending reader: each
/// record borrows the reader's buffer, so there is no allocation per record.
///
/// ```
/// use flash_layout::{scan, MemStorage};
/// let storage = MemStorage::new();
/// let scan = scan(&storage)?;
/// let mut r = scan.reader(&storage, 1);
/// while let Some(rec) = r.next()? {
///     println!("{} v{} {} bytes", rec.seq, rec.version, rec.payload.len());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Reader<'s, S: Storage> {
    storage: &'s S,
    /// (name, base_seq, records) of the segments still to read.
    segments: Vec<(String, u64, u64)>,
    next_segment: usize,
    buf: Vec<u8>,
    name: String,
    pos: usize,
    /// Seq of the frame at `pos`.
    seq: u64,
    /// Last seq of the loaded segment.
    seg_last: u64,
    from_seq: u64,
    last_seq: u64,
}

impl<'s, S: Storage> Reader<'s, S> {
    pub(crate) fn new(
        storage: &'s S,
        segments: Vec<(String, u64, u64)>,
        from_seq: u64,
        last_seq: u64,
    ) -> Self {
        Self {
            storage,
            segments,
            next_segment: 0,
            buf: Vec::new(),
            name: String::new(),
            pos: 0,
            seq: 1,
            seg_last: 0,
            from_seq,
            last_seq,
        }
    }

    /// The next record, `None` at the end.
    #[allow(clippy::should_implement_trait)] // lending: the record borrows `self`
    pub fn next(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        loop {
            if self.seq > self.last_seq {
                return Ok(None);
            }
            if self.seq <= self.seg_last && self.pos < self.buf.len() {
                let (rec, len) = frame::decode(&self.buf[self.pos..], self.seq)
                    .map_err(|error| ReadError::Frame { name: self.name.clone(), seq: self.seq, error })?;
                let start = self.pos;
                self.pos += len as usize; // within buf, which is a usize-indexed slice
                self.seq += 1;
                if rec.seq >= self.from_seq {
                    let payload_start = start + FRAME_HEADER_LEN as usize;
                    return Ok(Some(Record {
                        seq: rec.seq,
                        version: rec.version,
                        payload: &self.buf[payload_start..self.pos],
                    }));
                }
                continue;
            }
            // Load the next segment that holds a record >= from_seq.
            let Some((name, base, records)) = self.segments.get(self.next_segment).cloned() else {
                return Ok(None);
            };
            self.next_segment += 1;
            if records == 0 || base + records - 1 < self.from_seq {
                continue;
            }
            self.buf =
                self.storage.read(&name).map_err(|source| ReadError::Io { name: name.clone(), source })?;
            self.name = name;
            self.pos = SEGMENT_HEADER_LEN as usize;
            self.seq = base;
            self.seg_last = base + records - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{FlushPolicy, Log, LogConfig};
    use crate::segment::segment_name;
    use crate::storage::MemStorage;

    /// 12 records in 100-byte segments, versions alternating 1 and 2, plus a foreign file.
    fn log_storage() -> MemStorage {
        let cfg = LogConfig {
            segment_bytes: 100,
            flush: FlushPolicy { max_records: 2, max_bytes: 1 << 20, max_value: 0 },
        };
        let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
        for seq in 1..=12u64 {
            log.append(1 + (seq % 2) as u8, format!("rec {seq:02}").as_bytes(), 0, false).unwrap();
        }
        let mut s = log.into_storage();
        s.write_atomic("snapshots.redb", b"not ours").unwrap();
        s
    }

    #[test]
    fn clean_log_report_and_reader() {
        let s = log_storage();
        let scan = scan(&s).unwrap();
        assert_eq!(scan.defect, None);
        assert_eq!((scan.records, scan.first_seq, scan.last_seq, scan.next_seq), (12, 1, 12, 13));
        assert_eq!(scan.versions, BTreeMap::from([(1, 6), (2, 6)]));
        assert_eq!(scan.foreign, vec!["snapshots.redb".to_string()]);
        // Frames are 14 bytes: 4 per 100-byte segment.
        assert_eq!(scan.segments.len(), 3);
        assert_eq!(scan.segments[1].base_seq, 5);
        assert_eq!(scan.segments[1].bytes, 32 + 4 * 14);
        let mut r = scan.reader(&s, 6);
        let mut seqs = Vec::new();
        while let Some(rec) = r.next().unwrap() {
            assert_eq!(rec.payload, format!("rec {:02}", rec.seq).as_bytes());
            seqs.push(rec.seq);
        }
        assert_eq!(seqs, (6..=12).collect::<Vec<_>>());
    }

    #[test]
    fn empty_directory_is_an_empty_log() {
        let scan = scan(&MemStorage::new()).unwrap();
        assert_eq!((scan.records, scan.next_seq, scan.defect), (0, 1, None));
    }

    #[test]
    fn torn_tail_versus_bit_rot() {
        let mut s = log_storage();
        let last = segment_name(9);
        let len = s.size(&last).unwrap();
        s.truncate(&last, len - 3).unwrap();
        let d = scan(&s).unwrap().defect.unwrap();
        assert_eq!(
            (d.seq, d.offset, d.reason, d.valid_frames_after),
            (12, 32 + 3 * 14, DefectReason::TornTail, false)
        );
        assert_eq!(d.bytes_after, 11);

        let mut s = log_storage();
        let first = segment_name(1);
        s.bytes_mut(&first).unwrap()[32 + 14] = 0x00; // magic of record 2
        let before = s.clone().list().unwrap();
        let scan2 = scan(&s).unwrap();
        let d = scan2.defect.unwrap();
        assert_eq!((d.seq, d.offset, d.reason, d.valid_frames_after), (2, 46, DefectReason::BadMagic, true));
        assert_eq!(d.frames_after, 2 + 4 + 4);
        assert_eq!(scan2.beyond, vec![segment_name(5), segment_name(9)]);
        assert_eq!(scan2.last_seq, 1);
        assert_eq!(s.list().unwrap(), before, "scan never writes");

        // A corrupted length that runs past the end, with frames behind it.
        let mut s = log_storage();
        s.bytes_mut(&first).unwrap()[32 + 14 + 3] = 0xFF;
        assert_eq!(scan(&s).unwrap().defect.unwrap().reason, DefectReason::BadLength);
    }

    #[test]
    fn segment_named_file_with_bad_magic_or_gap() {
        let mut s = log_storage();
        s.bytes_mut(&segment_name(5)).unwrap()[0] = b'X';
        let d = scan(&s).unwrap().defect.unwrap();
        assert_eq!((d.seq, d.reason, d.valid_frames_after), (5, DefectReason::BadSegmentHeader, true));

        let mut s = log_storage();
        s.write_atomic(&segment_name(100), &crate::segment::encode_header(100)).unwrap();
        let d = scan(&s).unwrap().defect.unwrap();
        assert_eq!((d.seq, d.reason, d.segment), (13, DefectReason::SeqGap, segment_name(100)));

        // Zeroed first header: the seq comes from the file name.
        let mut s = log_storage();
        s.bytes_mut(&segment_name(1)).unwrap()[..32].fill(0);
        let scan = scan(&s).unwrap();
        let d = scan.defect.unwrap();
        assert_eq!((d.seq, d.reason, scan.records, scan.next_seq), (1, DefectReason::BadSegmentHeader, 0, 1));
    }

    #[test]
    fn a_short_segment_file_is_a_bad_header_not_a_torn_tail() {
        // Headers are written atomically: a short one is never a crash artifact.
        for bytes in [&b"not ours"[..], &b""[..], &b"LMSG"[..]] {
            let mut s = log_storage();
            s.write_atomic(&segment_name(13), bytes).unwrap();
            let scan = scan(&s).unwrap();
            let d = scan.defect.clone().unwrap();
            assert_eq!(
                (d.seq, d.reason, d.valid_frames_after),
                (13, DefectReason::BadSegmentHeader, false),
                "{bytes:?}"
            );
            assert!(!scan.is_torn_tail());
        }
        // Alone in the directory, too.
        let mut s = MemStorage::new();
        s.write_atomic(&segment_name(1), b"hi").unwrap();
        let scan = scan(&s).unwrap();
        assert_eq!(scan.defect.unwrap().reason, DefectReason::BadSegmentHeader);
    }

    #[test]
    fn only_the_end_of_the_last_segment_can_be_a_torn_tail() {
        let mut s = log_storage();
        let last = segment_name(9);
        let len = s.size(&last).unwrap();
        s.truncate(&last, len - 3).unwrap();
        assert!(scan(&s).unwrap().is_torn_tail());
        // Garbage with nothing valid after it, in the last segment: what a crash leaves.
        let mut s = log_storage();
        let len = s.size(&last).unwrap() as usize;
        s.bytes_mut(&last).unwrap()[len - 14..].fill(0xEE);
        let scan1 = scan(&s).unwrap();
        assert_eq!(scan1.defect.as_ref().unwrap().reason, DefectReason::BadMagic);
        assert!(scan1.is_torn_tail());
        // The same cut in a segment followed by another segment file is damage.
        let mut s = log_storage();
        let mid = segment_name(5);
        let len = s.size(&mid).unwrap();
        s.truncate(&mid, len - 3).unwrap();
        s.remove(&last).unwrap();
        s.write_atomic(&last, b"garbage").unwrap();
        let scan2 = scan(&s).unwrap();
        let d = scan2.defect.clone().unwrap();
        assert_eq!((d.seq, d.reason, d.valid_frames_after), (8, DefectReason::BadLength, false));
        assert!(!scan2.is_torn_tail());
        assert!(!self::scan(&MemStorage::new()).unwrap().is_torn_tail());
    }

    #[test]
    fn reader_reports_a_file_changed_after_the_scan() {
        let mut s = log_storage();
        let scan = scan(&s).unwrap();
        s.bytes_mut(&segment_name(1)).unwrap()[40] ^= 1;
        let mut r = scan.reader(&s, 1);
        assert!(matches!(r.next(), Err(ReadError::Frame { seq: 1, .. })));
    }
}
