//! What recovery does about the damage a [`scan`](crate::scan()) found (FORMAT.md
//! "Recovery"), as a plan that can be shown before anything is written (`replay check`, and
//! the node's refusal to start) and then carried out by [`execute`].
//!
//! - Damaged bytes that may have been durable ([`DamageKind::Lost`]) and foreign files are
//!   first copied into one quarantine file (pieces already held by an earlier quarantine
//!   file are not copied again).
//! - Every segment holding lost bytes, or followed by missing segment files, is rewritten
//!   (atomically) as its intact frames with a hole frame in place of each damaged range
//!   that held seqs: every intact record is kept, and no seq that a lost record had is ever
//!   given to a new one.
//! - Foreign files are removed; a torn tail is cut.
//! - Given the newest valid snapshot (the store knows it): if it covers more than the log
//!   holds, the log continues right after it (a hole up to there is added to the last
//!   segment, or an empty segment is created there when none is left); if the log starts
//!   after the seq right after it (the first segments are gone), a segment holding only the
//!   hole between them is created, so the log says what is missing.
//!
//! Every step is atomic or idempotent and the plan is recomputed from what is on flash at
//! every open, so a crash anywhere in it is finished by the next open.

use std::collections::BTreeMap;

use crate::frame::encode_hole;
use crate::log::{is_quarantine_name, quarantine_name, quarantine_pieces, LogError, QUARANTINE_MAGIC};
use crate::scan::{Damage, DamageKind, Scan, SegmentSummary};
use crate::segment::{encode_header, encode_header_format, segment_name, SEGMENT_FORMAT_WITH_HOLES};
use crate::storage::Storage;

/// Bytes of one file to copy into quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub name: String,
    pub offset: u64,
    pub len: u64,
    /// The first seq the bytes held (names the quarantine file).
    pub seq: u64,
}

/// What recovery will write. Empty for an intact log that need not continue elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub quarantine: Vec<Piece>,
    /// Segment files rewritten with hole frames, in log order.
    pub rewrite: Vec<String>,
    /// Files removed (foreign files named like segments).
    pub remove: Vec<String>,
    /// The torn tail cut: (file, new length).
    pub truncate: Option<(String, u64)>,
    /// An empty segment created where the log continues, when no segment is left.
    pub create: Option<String>,
    /// Seqs `from..to` missing between the snapshot and the first segment: a segment
    /// `seg-{from}` holding only that hole is created.
    pub lead: Option<(u64, u64)>,
    /// Seq ranges `from..to` that become holes.
    pub holes: Vec<(u64, u64)>,
    /// Where the log continues past its end, if the caller asked (a snapshot beyond it).
    pub continue_at: Option<u64>,
    /// The seq the next record gets.
    pub next_seq: u64,
}

impl Plan {
    /// Whether recovery writes nothing.
    pub fn is_empty(&self) -> bool {
        self.quarantine.is_empty()
            && self.rewrite.is_empty()
            && self.remove.is_empty()
            && self.truncate.is_none()
            && self.create.is_none()
            && self.lead.is_none()
    }

    /// Seqs that become holes.
    pub fn hole_seqs(&self) -> u64 {
        self.holes.iter().map(|(from, to)| to - from).sum()
    }
}

/// The plan for `scan`, the newest valid snapshot being at `snapshot_seq`.
pub fn plan(scan: &Scan, snapshot_seq: Option<u64>) -> Plan {
    let continue_at = snapshot_seq.map(|s| s + 1);
    let mut p = Plan { next_seq: scan.next_seq, ..Plan::default() };
    let mut rewrite = Vec::new();
    for d in &scan.damage {
        match d.kind {
            DamageKind::TornTail => p.truncate = Some((d.segment.clone(), d.offset)),
            DamageKind::Lost | DamageKind::Missing => {
                if d.quarantined() {
                    p.quarantine.push(piece(d));
                }
                rewrite.push(d.segment.clone());
                if d.seqs() > 0 {
                    p.holes.push((d.from_seq, d.to_seq));
                }
            }
            DamageKind::Foreign => {
                if d.quarantined() {
                    p.quarantine.push(Piece { seq: scan.next_seq, ..piece(d) });
                }
                p.remove.push(d.segment.clone());
            }
        }
    }
    if let Some(at) = continue_at.filter(|&at| at > scan.next_seq) {
        match scan.segments.last() {
            Some(last) => {
                rewrite.push(last.name.clone());
                p.holes.push((scan.next_seq, at));
            }
            None => p.create = Some(segment_name(at)),
        }
        p.continue_at = Some(at);
        p.next_seq = at;
    }
    if let (Some(after), Some(first)) = (continue_at, scan.segments.first()) {
        if after < first.base_seq {
            p.lead = Some((after, first.base_seq));
            p.holes.insert(0, (after, first.base_seq));
        }
    }
    p.rewrite = scan.segments.iter().map(|s| s.name.clone()).filter(|n| rewrite.contains(n)).collect();
    if p.truncate.as_ref().is_some_and(|(name, _)| p.rewrite.contains(name)) {
        p.truncate = None; // the rewrite leaves the torn bytes out
    }
    p
}

fn piece(d: &Damage) -> Piece {
    Piece { name: d.segment.clone(), offset: d.offset, len: d.len, seq: d.from_seq }
}

/// Carries out `plan` (made from `scan` of the same `storage`). Returns the quarantine file
/// written, if any.
pub fn execute<S: Storage>(storage: &mut S, scan: &Scan, plan: &Plan) -> Result<Option<String>, LogError> {
    let io = |op: &'static str, storage: &S, name: &str| {
        let name = storage.describe(name);
        move |source| LogError::Io { op, name, source }
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in plan.quarantine.iter().map(|p| &p.name).chain(&plan.rewrite) {
        if !files.contains_key(name) {
            let data = storage.read(name).map_err(io("read", storage, name))?;
            files.insert(name.clone(), data);
        }
    }
    // 1. Quarantine first: nothing is removed before its copy is durable.
    let quarantined = quarantine(storage, plan, &files)?;
    // 2. Rewrites, each atomic: the file holds the old or the repaired bytes.
    let last = scan.segments.last().map(|s| s.name.as_str());
    for name in &plan.rewrite {
        let seg = scan.segments.iter().find(|s| &s.name == name).expect("rewrites name scanned segments");
        let damage: Vec<&Damage> = scan.damage.iter().filter(|d| &d.segment == name).collect();
        let extend =
            (Some(name.as_str()) == last).then_some(plan.continue_at).flatten().map(|at| (scan.next_seq, at));
        let bytes = rewritten(seg, &damage, &files[name], extend);
        storage.write_atomic(name, &bytes).map_err(io("rewrite", storage, name))?;
    }
    // 3. Foreign files, last first.
    for name in plan.remove.iter().rev() {
        storage.remove(name).map_err(io("remove", storage, name))?;
    }
    // 4. The torn tail.
    if let Some((name, len)) = &plan.truncate {
        storage.truncate(name, *len).map_err(io("truncate", storage, name))?;
    }
    // 5. Where the log continues, when no segment is left to carry a hole.
    if let (Some(name), Some(at)) = (&plan.create, plan.continue_at) {
        storage.write_atomic(name, &encode_header(at)).map_err(io("create segment", storage, name))?;
    }
    // 6. What is missing between the snapshot and the first segment.
    if let Some((from, to)) = plan.lead {
        let name = segment_name(from);
        let mut bytes = encode_header_format(from, SEGMENT_FORMAT_WITH_HOLES).to_vec();
        encode_hole(&mut bytes, from, to - from);
        storage.write_atomic(&name, &bytes).map_err(io("create segment", storage, &name))?;
    }
    Ok(quarantined)
}

/// Writes one quarantine file with every planned piece that no quarantine file holds yet.
fn quarantine<S: Storage>(
    storage: &mut S,
    plan: &Plan,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<String>, LogError> {
    if plan.quarantine.is_empty() {
        return Ok(None);
    }
    let list =
        storage.list().map_err(|source| LogError::Io { op: "list", name: storage.describe(""), source })?;
    let mut held = Vec::new();
    for name in list.iter().filter(|n| is_quarantine_name(n)) {
        let data = storage.read(name).map_err(|source| LogError::Io {
            op: "read",
            name: storage.describe(name),
            source,
        })?;
        if let Some(pieces) = quarantine_pieces(&data) {
            held.extend(pieces.into_iter().map(|p| (p.name.to_string(), p.offset, p.bytes.to_vec())));
        }
    }
    let mut out = QUARANTINE_MAGIC.to_vec();
    let mut first_seq = None;
    for p in &plan.quarantine {
        let data = &files[&p.name];
        let bytes = &data[p.offset as usize..(p.offset + p.len) as usize];
        if held.iter().any(|(n, o, b)| *n == p.name && *o == p.offset && b == bytes) {
            continue; // an interrupted earlier recovery saved it already
        }
        first_seq.get_or_insert(p.seq);
        crate::log::quarantine_piece(&mut out, &p.name, p.offset, bytes);
    }
    let Some(seq) = first_seq else {
        return Ok(None);
    };
    let mut n = 0;
    let mut name = quarantine_name(seq, 0);
    while list.contains(&name) {
        n += 1;
        name = quarantine_name(seq, n);
    }
    storage.write_atomic(&name, &out).map_err(|source| LogError::Io {
        op: "quarantine",
        name: storage.describe(&name),
        source,
    })?;
    Ok(Some(name))
}

/// The repaired bytes of segment `seg`: a valid header, its intact frames in order, a hole
/// frame in place of each damaged range that held seqs, and the hole `extend` at the end.
fn rewritten(seg: &SegmentSummary, damage: &[&Damage], data: &[u8], extend: Option<(u64, u64)>) -> Vec<u8> {
    enum Item {
        Run(u64, u64),
        Hole(u64, u64),
    }
    let mut items: Vec<(u64, Item)> =
        seg.runs.iter().map(|r| (r.offset, Item::Run(r.offset, r.len))).collect();
    for d in damage {
        if matches!(d.kind, DamageKind::Lost | DamageKind::Missing) && d.seqs() > 0 {
            items.push((d.offset, Item::Hole(d.from_seq, d.to_seq)));
        }
    }
    if let Some((from, to)) = extend.filter(|(from, to)| to > from) {
        items.push((u64::MAX, Item::Hole(from, to)));
    }
    items.sort_by_key(|(offset, _)| *offset);
    let holes = seg.holes > 0 || items.iter().any(|(_, i)| matches!(i, Item::Hole(..)));
    let format = if holes { SEGMENT_FORMAT_WITH_HOLES } else { seg.format.max(1) };
    let mut out = encode_header_format(seg.base_seq, format).to_vec();
    for (_, item) in items {
        match item {
            Item::Run(offset, len) => out.extend_from_slice(&data[offset as usize..(offset + len) as usize]),
            Item::Hole(from, to) => encode_hole(&mut out, from, to - from),
        }
    }
    out
}
