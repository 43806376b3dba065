//! Read-only validation of a whole log directory (`replay check`, and the first step of
//! recovery) and fast reading of the records it holds (the replay path).
//!
//! [`scan`] never modifies anything. It walks segment files in name order, checks each header,
//! the contiguity of seqs, and every frame. Past a damaged frame it does not stop: it looks
//! for the next intact frame (magic, a length that fits, and a CRC that verifies for a seq
//! the damage could have swallowed, found in constant time by [`crate::seqsolve`]) and keeps
//! going, so every intact record is found. Each damaged byte range becomes a [`Damage`] that
//! says which seqs it held, or may have held: recovery quarantines those bytes and records
//! the seqs as a hole, so they are never reused. Only the end of the last segment file can be
//! a torn tail (a crash in the middle of an unsynced write, harmless: cut without quarantine).

use std::collections::BTreeMap;
use std::io;

use thiserror::Error;

use crate::frame::{self, Frame, FrameError, Record, FRAME_HEADER_LEN, FRAME_MAGIC, HOLE_MAGIC};
use crate::segment::{decode_segment_header, parse_segment_name, HeaderError, SEGMENT_HEADER_LEN};
use crate::seqsolve::Solver;
use crate::storage::Storage;

#[derive(Debug, Error)]
pub enum ScanError {
    #[error("I/O error reading {name}: {source}")]
    Io { name: String, source: io::Error },
}

/// Consecutive valid frames (records and holes) in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Byte offset of the first frame in the file.
    pub offset: u64,
    pub len: u64,
    /// Seq of the first frame.
    pub seq: u64,
    /// Seq after the last frame.
    pub next_seq: u64,
}

/// One segment of the log, as the scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub name: String,
    pub base_seq: u64,
    /// Valid records in this segment.
    pub records: u64,
    /// The seq after everything this segment covers: its records, holes and damage (what
    /// the next segment must start at).
    pub next_seq: u64,
    /// Valid bytes: header plus valid frames (the whole file unless it holds damage).
    pub bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// Segment format version (1 when the header is damaged and is to be rewritten).
    pub format: u8,
    /// Whether its header is valid (else recovery rewrites it from the file name).
    pub header_ok: bool,
    /// Hole frames it holds.
    pub holes: u64,
    /// Where the valid frames are, in file order.
    pub runs: Vec<Run>,
}

impl SegmentSummary {
    /// The last seq this segment covers (`base_seq - 1` if none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Whether the file holds nothing but a valid header and valid frames.
    pub fn is_intact(&self) -> bool {
        self.header_ok && self.bytes == self.file_bytes
    }
}

/// What check the first bad byte of a damaged range failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefectReason {
    /// The last segment file ends inside a frame and no valid frame follows: what a crash
    /// during an unsynced write leaves. (A segment file too short for its header is
    /// [`BadSegmentHeader`](Self::BadSegmentHeader): headers are written atomically.)
    TornTail,
    /// A frame's length runs past the end of its segment, yet more follows.
    BadLength,
    BadMagic,
    BadCrc,
    /// A frame with version 0 (reserved).
    BadVersion,
    /// A malformed hole frame, or one in a format-1 segment.
    BadHole,
    /// A file named like a segment whose header is invalid (including a file too short for
    /// one, or not starting with the segment magic) or disagrees with its name.
    BadSegmentHeader,
    /// A segment's base seq does not continue the previous segment: segment files are
    /// missing (a gap), or a file overlaps the seqs before it (a duplicate or stray).
    SeqGap,
}

/// What recovery does about a damaged range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// The end of the last segment file, where a crash left an unfinished write: never
    /// durable. Cut without quarantine; its seqs are reused.
    TornTail,
    /// Bytes that held (or may have held) durable records: copied to quarantine, and the
    /// seqs `from_seq..to_seq` become a hole in the log.
    Lost,
    /// Segment files missing between two segments: the seqs become a hole; no bytes exist.
    Missing,
    /// A file named like a segment that is not part of the log (no segment magic and no
    /// frame of ours in it, or seqs that overlap the log before it): quarantined and removed.
    Foreign,
}

/// One damaged range of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file holding it (for [`DamageKind::Missing`], the segment before the gap).
    pub segment: String,
    /// Byte offset in that file (for `Missing`: the end of the file).
    pub offset: u64,
    /// Damaged bytes from `offset` (0 for `Missing`).
    pub len: u64,
    pub reason: DefectReason,
    pub kind: DamageKind,
    /// The seqs these bytes held or may have held: `from_seq..to_seq` (empty for a torn tail
    /// and a foreign file).
    pub from_seq: u64,
    pub to_seq: u64,
    /// Whether `from_seq..to_seq` is exactly the seqs lost (an intact frame or segment
    /// follows) or an upper bound (damage at the end of the log: as many seqs as the bytes
    /// could have held, so that none of them is reused).
    pub exact: bool,
}

impl Damage {
    /// Seqs this damage takes out of the log.
    pub fn seqs(&self) -> u64 {
        self.to_seq - self.from_seq
    }

    /// Whether recovery copies its bytes into quarantine before removing them.
    pub fn quarantined(&self) -> bool {
        matches!(self.kind, DamageKind::Lost | DamageKind::Foreign) && self.len > 0
    }
}

/// Seqs that hold no record, recorded in the log by a hole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    pub segment: String,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// The result of [`scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Segments of the log, in order (files with a damaged header included when recovery
    /// rewrites them; foreign files not).
    pub segments: Vec<SegmentSummary>,
    /// Every damaged range, in log order.
    pub damage: Vec<Damage>,
    /// Holes already recorded in the log.
    pub holes: Vec<Hole>,
    /// Files that are not segments (snapshots, quarantine, temporary files...).
    pub foreign: Vec<String>,
    /// Valid records per version.
    pub versions: BTreeMap<u8, u64>,
    pub records: u64,
    /// First and last valid record seq, 0 if there are no records.
    pub first_seq: u64,
    pub last_seq: u64,
    /// The seq the next appended record gets once recovery has handled the damage.
    pub next_seq: u64,
}

impl Scan {
    /// Whether the log is intact: no damage, torn tail included.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    /// The torn tail, if the log ends in one.
    pub fn torn_tail(&self) -> Option<&Damage> {
        self.damage.iter().find(|d| d.kind == DamageKind::TornTail)
    }

    /// Damage beyond a torn tail: durable bytes lost, or foreign files.
    pub fn lost(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| d.kind != DamageKind::TornTail)
    }

    /// Whether the only damage is a torn tail (`false` for a clean log).
    pub fn is_torn_tail(&self) -> bool {
        self.torn_tail().is_some() && self.lost().next().is_none()
    }

    /// Seq of the first segment: where the log starts (`next_seq` if it has no segment).
    pub fn start_seq(&self) -> u64 {
        self.segments.first().map_or(self.next_seq, |s| s.base_seq)
    }

    /// Reads the valid records with seq `>= from_seq`, damaged bytes skipped.
    pub fn reader<'s, S: Storage>(&self, storage: &'s S, from_seq: u64) -> Reader<'s, S> {
        let segments = self
            .segments
            .iter()
            .map(|s| ReadSegment {
                name: s.name.clone(),
                next_seq: s.next_seq,
                holes: s.format >= crate::segment::SEGMENT_FORMAT_WITH_HOLES || !s.header_ok,
                runs: s.runs.clone(),
            })
            .collect();
        Reader::new(storage, segments, from_seq, self.next_seq.saturating_sub(1))
    }
}

/// Scans the log in `storage`. Never writes.
pub fn scan<S: Storage>(storage: &S) -> Result<Scan, ScanError> {
    let names = storage.list().map_err(|source| ScanError::Io { name: storage.describe(""), source })?;
    let mut out = Scan::default();
    let mut files = Vec::new();
    for name in names {
        match parse_segment_name(&name) {
            Some(base) => files.push((name, base)),
            None => out.foreign.push(name),
        }
    }
    let mut w = Walker { out, next: None, open_end: None, solver: Solver::default(), ceiling: u64::MAX };
    let last = files.len().checked_sub(1);
    for (i, (name, name_base)) in files.iter().enumerate() {
        let data =
            storage.read(name).map_err(|source| ScanError::Io { name: storage.describe(name), source })?;
        // No frame of this file can have a seq the next file's name says starts there.
        w.ceiling = files.get(i + 1).map_or(u64::MAX, |(_, next)| next.saturating_sub(1));
        w.file(name, *name_base, &data, Some(i) == last);
    }
    w.finish();
    let mut out = w.out;
    out.next_seq = w.next.unwrap_or(1);
    Ok(out)
}

/// The scan's state while it walks the files.
struct Walker {
    out: Scan,
    /// The seq the next segment must start at (`None` before the first).
    next: Option<u64>,
    /// Damage running to the end of the previous segment, whose seqs end where the next
    /// segment starts: (index in `out.damage`, index in `out.segments`).
    open_end: Option<(usize, usize)>,
    solver: Solver,
    /// The highest seq a frame of the current file may have (the next file's base - 1).
    ceiling: u64,
}

impl Walker {
    fn file(&mut self, name: &str, name_base: u64, data: &[u8], is_last: bool) {
        let header = decode_segment_header(data).and_then(|h| {
            if h.base_seq == name_base {
                Ok(h)
            } else {
                Err(HeaderError::NameMismatch { header: h.base_seq, name: name_base })
            }
        });
        // A segment must not start before the seqs already covered.
        let floor = match self.open_end {
            Some((d, _)) => self.out.damage[d].from_seq,
            None => self.next.unwrap_or(0),
        };
        if name_base < floor {
            self.foreign(name, data, DefectReason::SeqGap);
            return;
        }
        let (start, seq, format, holes, header_ok) = match header {
            Ok(h) => (SEGMENT_HEADER_LEN, h.base_seq, h.format, h.holes_allowed(), true),
            Err(e) => {
                // Salvage the frames of a file with a damaged header: its name gives the seqs.
                let continues = self.next.is_none_or(|next| next == name_base);
                match self.find(data, 0, 0, name_base, true) {
                    Some((offset, s)) => (offset, s, 1, true, false),
                    // Shorter than a header: never held one (headers are written atomically),
                    // so never a record. Longer, without the segment magic and not where the
                    // log continues: not ours. Otherwise it may be one of ours destroyed by rot.
                    None if data.len() < SEGMENT_HEADER_LEN as usize
                        || (e == HeaderError::BadMagic && !continues) =>
                    {
                        self.foreign(name, data, DefectReason::BadSegmentHeader);
                        return;
                    }
                    None => {
                        self.whole_file_lost(name, name_base, data, is_last);
                        return;
                    }
                }
            }
        };
        let index = self.push_segment(name, name_base, data, format, header_ok);
        if !header_ok {
            // The bytes before the first salvaged frame (the header among them) are lost,
            // with the seqs before that frame.
            self.out.damage.push(Damage {
                segment: name.to_string(),
                offset: 0,
                len: start,
                reason: DefectReason::BadSegmentHeader,
                kind: DamageKind::Lost,
                from_seq: name_base,
                to_seq: seq,
                exact: true,
            });
        }
        self.frames(index, data, start, seq, holes, is_last);
    }

    /// The next intact frame at an offset `>= from` after damage that starts at `damage_start`
    /// with seq `seq` (see [`find_frame`]): first within what the damaged bytes could hold;
    /// then, where hole frames may be (one of them may be the damaged bytes, and a hole takes
    /// any number of seqs in 16 bytes), up to the ceiling, trusting only a frame that an
    /// intact frame follows.
    fn find(
        &mut self,
        data: &[u8],
        from: u64,
        damage_start: u64,
        seq: u64,
        holes: bool,
    ) -> Option<(u64, u64)> {
        let ceiling = self.ceiling;
        let wide = holes.then(|| ceiling.min(seq.saturating_add(u64::from(u32::MAX))));
        let window = Window { damage_start, ceiling, wide };
        find_frame(&mut self.solver, data, from, seq, window, holes)
    }

    /// Starts segment `name` at `base` and returns its index.
    fn push_segment(&mut self, name: &str, base: u64, data: &[u8], format: u8, header_ok: bool) -> usize {
        self.start_segment(base);
        self.out.segments.push(SegmentSummary {
            name: name.to_string(),
            base_seq: base,
            records: 0,
            next_seq: base,
            bytes: if header_ok { SEGMENT_HEADER_LEN } else { 0 },
            file_bytes: data.len() as u64,
            format,
            header_ok,
            holes: 0,
            runs: Vec::new(),
        });
        self.out.segments.len() - 1
    }

    /// A segment file with a damaged header and no intact frame, but the segment magic (so
    /// ours): all of it is lost. Its seqs run to the next segment; in the last file, as many
    /// as its frames could have held (a file shorter than a header never held a valid one,
    /// headers being written atomically, so never a record).
    fn whole_file_lost(&mut self, name: &str, base: u64, data: &[u8], is_last: bool) {
        let index = self.push_segment(name, base, data, 1, false);
        let mut d = Damage {
            segment: name.to_string(),
            offset: 0,
            len: data.len() as u64,
            reason: DefectReason::BadSegmentHeader,
            kind: DamageKind::Lost,
            from_seq: base,
            to_seq: base,
            exact: false,
        };
        if is_last {
            d.to_seq = base
                .saturating_add((data.len() as u64).saturating_sub(SEGMENT_HEADER_LEN) / FRAME_HEADER_LEN);
            self.out.segments[index].next_seq = d.to_seq;
            self.next = Some(d.to_seq);
            self.out.damage.push(d);
        } else {
            self.next = Some(base);
            self.out.damage.push(d);
            self.open_end = Some((self.out.damage.len() - 1, index));
        }
    }

    /// Walks the frames of segment `index` from `pos` (whose seq is `seq`).
    fn frames(&mut self, index: usize, data: &[u8], mut pos: u64, mut seq: u64, holes: bool, is_last: bool) {
        let len = data.len() as u64;
        let mut run = (pos, seq);
        while pos < len {
            match frame::decode_frame(&data[pos as usize..], seq, holes) {
                Ok((frame, flen)) => {
                    self.count(index, &frame);
                    pos += flen;
                    seq = frame.next_seq();
                }
                Err(e) => {
                    self.close_run(index, run, pos, seq);
                    let reason = reason_of(e);
                    match self.find(data, pos + 1, pos, seq, holes) {
                        Some((next, s)) => {
                            let d = Damage {
                                segment: self.out.segments[index].name.clone(),
                                offset: pos,
                                len: next - pos,
                                reason,
                                kind: DamageKind::Lost,
                                from_seq: seq,
                                to_seq: s,
                                exact: true,
                            };
                            self.out.damage.push(d);
                            pos = next;
                            seq = s;
                            run = (pos, seq);
                        }
                        None => {
                            self.out.segments[index].next_seq = seq;
                            self.end_damage(index, data, pos, is_last, reason);
                            return;
                        }
                    }
                }
            }
        }
        self.close_run(index, run, pos, seq);
        self.out.segments[index].next_seq = seq;
        self.next = Some(seq);
    }

    /// Damage from `pos` to the end of segment `index`. In the last segment file it is a
    /// torn tail or lost records, judged from its bytes; elsewhere its seqs run up to the next
    /// segment (resolved when that arrives, in `start_segment`).
    fn end_damage(&mut self, index: usize, data: &[u8], pos: u64, is_last: bool, reason: DefectReason) {
        let seg = &self.out.segments[index];
        let from = seg.next_seq;
        let region = &data[pos as usize..];
        let mut d = Damage {
            segment: seg.name.clone(),
            offset: pos,
            len: region.len() as u64,
            reason,
            kind: DamageKind::Lost,
            from_seq: from,
            to_seq: from,
            exact: false,
        };
        if is_last {
            let tail = classify_tail(
                region,
                from,
                self.out.segments[index].format >= crate::segment::SEGMENT_FORMAT_WITH_HOLES,
            );
            d.kind = tail.kind;
            d.to_seq = from.saturating_add(tail.seqs);
            d.exact = tail.exact;
            if tail.kind == DamageKind::TornTail && d.reason == DefectReason::BadLength {
                // Not damage: the file simply ends inside the frame being written.
                d.reason = DefectReason::TornTail;
            }
            self.out.segments[index].next_seq = d.to_seq;
            self.next = Some(d.to_seq);
            self.out.damage.push(d);
            return;
        }
        self.next = Some(from);
        self.out.damage.push(d);
        self.open_end = Some((self.out.damage.len() - 1, index));
    }

    /// A segment starts at `base`: resolves damage left open at the end of the previous one,
    /// or records the seqs missing between them.
    fn start_segment(&mut self, base: u64) {
        if let Some((d, seg)) = self.open_end.take() {
            let damage = &mut self.out.damage[d];
            damage.to_seq = base;
            damage.exact = true;
            self.out.segments[seg].next_seq = base;
        } else if let Some(next) = self.next {
            if base > next {
                let prev = self.out.segments.last_mut().expect("a previous segment set `next`");
                prev.next_seq = base;
                let d = Damage {
                    segment: prev.name.clone(),
                    offset: prev.file_bytes,
                    len: 0,
                    reason: DefectReason::SeqGap,
                    kind: DamageKind::Missing,
                    from_seq: next,
                    to_seq: base,
                    exact: true,
                };
                self.out.damage.push(d);
            }
        }
        self.next = Some(base);
    }

    /// The end of the walk: damage still open ran to the end of a segment that no later
    /// segment bounds (only foreign files followed). Its seqs are bounded by its bytes.
    fn finish(&mut self) {
        if let Some((d, seg)) = self.open_end.take() {
            let damage = &mut self.out.damage[d];
            damage.to_seq = damage.from_seq.saturating_add(damage.len / FRAME_HEADER_LEN);
            damage.exact = false;
            self.out.segments[seg].next_seq = damage.to_seq;
            self.next = Some(damage.to_seq);
        }
    }

    fn foreign(&mut self, name: &str, data: &[u8], reason: DefectReason) {
        self.out.damage.push(Damage {
            segment: name.to_string(),
            offset: 0,
            len: data.len() as u64,
            reason,
            kind: DamageKind::Foreign,
            from_seq: 0,
            to_seq: 0,
            exact: true,
        });
    }

    fn count(&mut self, index: usize, frame: &Frame<'_>) {
        let seg = &mut self.out.segments[index];
        match frame {
            Frame::Record(r) => {
                seg.records += 1;
                self.out.records += 1;
                *self.out.versions.entry(r.version).or_insert(0) += 1;
                if self.out.first_seq == 0 {
                    self.out.first_seq = r.seq;
                }
                self.out.last_seq = r.seq;
            }
            Frame::Hole { seq, count } => {
                seg.holes += 1;
                self.out.holes.push(Hole { segment: seg.name.clone(), from_seq: *seq, to_seq: seq + count });
            }
        }
    }

    fn close_run(&mut self, index: usize, (offset, seq): (u64, u64), end: u64, next_seq: u64) {
        if end > offset {
            let seg = &mut self.out.segments[index];
            seg.bytes += end - offset;
            seg.runs.push(Run { offset, len: end - offset, seq, next_seq });
        }
    }
}

fn reason_of(e: FrameError) -> DefectReason {
    match e {
        FrameError::ShortHeader | FrameError::LengthPastEnd { .. } | FrameError::PayloadTooLarge(_) => {
            DefectReason::BadLength
        }
        FrameError::BadMagic(_) => DefectReason::BadMagic,
        FrameError::BadCrc { .. } => DefectReason::BadCrc,
        FrameError::VersionZero => DefectReason::BadVersion,
        FrameError::BadHole => DefectReason::BadHole,
    }
}

/// How the bytes after the last valid frame of the log are judged.
struct Tail {
    kind: DamageKind,
    seqs: u64,
    exact: bool,
}

/// Judges `region`, the bytes after the last valid frame of the last segment file (whose
/// first frame would have seq `seq`; nothing valid follows in them); `holes`: the segment may
/// hold hole frames.
///
/// An unfinished write — fewer bytes than a frame header, a length running past the end of
/// the file, garbage where a magic should be — is a torn tail. A complete-looking frame whose
/// CRC fails (a flipped byte in a frame that may have been durable), or a complete frame with
/// a damaged magic or length field (its CRC verifies once the field is corrected), is lost
/// data: quarantined, and its seqs never reused.
fn classify_tail(region: &[u8], seq: u64, holes: bool) -> Tail {
    // Frames chained by their headers: the magic and a length that fits, whatever the version
    // byte says (rot may have zeroed it). A hole frame is never appended, only written by
    // recovery, so one at the end is durable: a frame too.
    let (mut pos, mut complete) = (0usize, 0u64);
    while let Some(h) = region.get(pos..pos + FRAME_HEADER_LEN as usize) {
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let hole = holes && h[0] == HOLE_MAGIC;
        if !(h[0] == FRAME_MAGIC || hole) || pos + FRAME_HEADER_LEN as usize + len > region.len() {
            break;
        }
        pos += FRAME_HEADER_LEN as usize + len;
        complete += 1;
    }
    if complete > 0 {
        return if pos == region.len() {
            Tail { kind: DamageKind::Lost, seqs: complete, exact: true }
        } else {
            // As many frames as the bytes could hold (each is at least a header).
            Tail { kind: DamageKind::Lost, seqs: region.len() as u64 / FRAME_HEADER_LEN, exact: false }
        };
    }
    if let Some(h) = region.get(..FRAME_HEADER_LEN as usize) {
        let version = h[1];
        let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let body = &region[FRAME_HEADER_LEN as usize..];
        let stated = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let verifies = |payload: &[u8]| {
            version != 0
                && payload.len() <= frame::MAX_PAYLOAD_LEN
                && frame::frame_crc(seq, version, payload) == stored
        };
        // A damaged length: the frame fills the region exactly.
        // A damaged magic: the stated length fits.
        if verifies(body) || body.get(..stated).is_some_and(verifies) {
            let exact = verifies(body) || stated == body.len();
            let seqs = if exact { 1 } else { region.len() as u64 / FRAME_HEADER_LEN };
            return Tail { kind: DamageKind::Lost, seqs, exact };
        }
    }
    Tail { kind: DamageKind::TornTail, seqs: 0, exact: true }
}

/// The widest window in which the end of the file alone confirms a frame: what the narrow
/// window of a damaged 512 KiB range is.
const MAX_NARROW: u64 = 1 << 16;

/// The seqs a frame found after damage may have.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The narrow window at offset `o`: `seq..=seq + (o - damage_start) / 8` (a damaged range
    /// of `n` bytes holds at most `n / 8` record frames), at most `ceiling`.
    damage_start: u64,
    ceiling: u64,
    /// Where hole frames may be (one of them may be among the damaged bytes, and a hole takes
    /// any number of seqs in 16 bytes): `seq..=wide` too, for a frame an intact frame follows.
    wide: Option<u64>,
}

/// Finds the first intact frame at an offset `>= from` whose seq lies in the window. A
/// candidate counts only if the frame after it is intact too, or (in the narrow window) it
/// ends exactly at the end of the file: a random match of the CRC alone is possible in a
/// large damaged range, two in a row are not. Returns (offset, seq).
fn find_frame(
    solver: &mut Solver,
    data: &[u8],
    from: u64,
    seq: u64,
    window: Window,
    holes: bool,
) -> Option<(u64, u64)> {
    let hdr = FRAME_HEADER_LEN as usize;
    let mut o = from as usize;
    while o + hdr <= data.len() {
        let h = &data[o..o + hdr];
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let record = h[0] == FRAME_MAGIC && h[1] != 0;
        let hole = holes && h[0] == HOLE_MAGIC && h[1] == crate::frame::HOLE_KIND;
        if (record || hole) && o + hdr + len <= data.len() {
            let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let rest = crc32c::crc32c_append(crc32c::crc32c(&h[1..4]), &data[o + hdr..o + hdr + len]);
            let narrow =
                seq.saturating_add((o as u64 - window.damage_start) / FRAME_HEADER_LEN).min(window.ceiling);
            let top = window.wide.map_or(narrow, |w| w.max(narrow));
            if let Some(s) = solver.seq_for_crc(stored, rest, 3 + len as u64, seq, top) {
                // The end of the file confirms a frame only in a window no wider than a narrow
                // one can be (a chance match of the CRC is as unlikely there).
                if confirmed(data, o, s, holes, s <= narrow || top - seq <= MAX_NARROW) {
                    return Some((o as u64, s));
                }
            }
        }
        o += 1;
    }
    None
}

/// Whether the frame at `o` (seq `s`) is intact and followed by an intact frame (or the end
/// of the file, if `at_end_will_do`).
fn confirmed(data: &[u8], o: usize, s: u64, holes: bool, at_end_will_do: bool) -> bool {
    let Ok((frame, len)) = frame::decode_frame(&data[o..], s, holes) else {
        return false;
    };
    let after = o + len as usize;
    (at_end_will_do && after == data.len())
        || frame::decode_frame(&data[after..], frame.next_seq(), holes).is_ok()
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("I/O error reading {name}: {source}")]
    Io { name: String, source: io::Error },
    /// The file changed since it was scanned.
    #[error("record {seq} in {name} no longer valid: {error}")]
    Frame { name: String, seq: u64, error: FrameError },
}

/// A segment as the reader sees it: where its valid frames are.
#[derive(Debug, Clone)]
pub(crate) struct ReadSegment {
    pub(crate) name: String,
    pub(crate) next_seq: u64,
    pub(crate) holes: bool,
    pub(crate) runs: Vec<Run>,
}

/// Reads records in seq order, one segment file in memory at a time, skipping holes and
/// damaged bytes. A lending reader: each record borrows the reader's buffer, so there is no
/// allocation per record.
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
    segments: Vec<ReadSegment>,
    next_segment: usize,
    buf: Vec<u8>,
    name: String,
    holes: bool,
    runs: Vec<Run>,
    next_run: usize,
    pos: usize,
    run_end: usize,
    /// Seq of the frame at `pos`.
    seq: u64,
    from_seq: u64,
    last_seq: u64,
}

impl<'s, S: Storage> Reader<'s, S> {
    pub(crate) fn new(storage: &'s S, segments: Vec<ReadSegment>, from_seq: u64, last_seq: u64) -> Self {
        Self {
            storage,
            segments,
            next_segment: 0,
            buf: Vec::new(),
            name: String::new(),
            holes: false,
            runs: Vec::new(),
            next_run: 0,
            pos: 0,
            run_end: 0,
            seq: 1,
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
            if self.pos < self.run_end {
                let bytes = &self.buf[self.pos..self.run_end];
                let (frame, len) = frame::decode_frame(bytes, self.seq, self.holes)
                    .map_err(|error| ReadError::Frame { name: self.name.clone(), seq: self.seq, error })?;
                let start = self.pos;
                self.pos += len as usize; // within the run, which is within buf
                self.seq = frame.next_seq();
                match frame {
                    Frame::Record(rec) if rec.seq >= self.from_seq && rec.seq <= self.last_seq => {
                        let payload_start = start + FRAME_HEADER_LEN as usize;
                        return Ok(Some(Record {
                            seq: rec.seq,
                            version: rec.version,
                            payload: &self.buf[payload_start..self.pos],
                        }));
                    }
                    _ => continue,
                }
            }
            if let Some(run) = self.runs.get(self.next_run).copied() {
                self.next_run += 1;
                if run.next_seq <= self.from_seq {
                    continue; // entirely before what is asked
                }
                let end = run.offset + run.len;
                if end > self.buf.len() as u64 {
                    // The file shrank since it was scanned.
                    let error = FrameError::LengthPastEnd { len: run.len, available: self.buf.len() as u64 };
                    return Err(ReadError::Frame { name: self.name.clone(), seq: run.seq, error });
                }
                self.pos = run.offset as usize;
                self.run_end = end as usize;
                self.seq = run.seq;
                continue;
            }
            // Load the next segment that holds a seq >= from_seq.
            let Some(seg) = self.segments.get(self.next_segment).cloned() else {
                return Ok(None);
            };
            self.next_segment += 1;
            if seg.next_seq <= self.from_seq || seg.runs.is_empty() {
                continue;
            }
            self.buf = self
                .storage
                .read(&seg.name)
                .map_err(|source| ReadError::Io { name: self.storage.describe(&seg.name), source })?;
            self.name = seg.name;
            self.holes = seg.holes;
            self.runs = seg.runs;
            self.next_run = 0;
            self.pos = 0;
            self.run_end = 0;
        }
    }
}

#[cfg(test)]
mod tests;
