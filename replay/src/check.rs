//! `replay check`: validates every frame, decodes every payload, compares the newest snapshot
//! with the fold of the log when the log still holds everything before it, and says what the
//! node would do at start — start, repair and start (what it would quarantine, which seqs
//! become holes, where the log continues), or refuse — from the same inspection and fold the
//! node runs (`flash_layout::Inspection`, `NodeState::apply_record`).

use std::collections::BTreeMap;
use std::io::Write;

use flash_layout::DamageKind;
use lastmile::events::Fold;
use lastmile::machines::NodeState;
use serde::Serialize;

use crate::data_dir::{reason_text, restart_notice, seq_range, DataDir, RestartReport, Verdict};
use crate::error::ReplayError;
use crate::{decode_record, read_error};

#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub name: String,
    pub base_seq: u64,
    pub records: u64,
    pub bytes: u64,
}

/// One damaged range and what recovery would do about it.
#[derive(Debug, Clone, Serialize)]
pub struct DamageReport {
    /// "torn_tail" (harmless: cut), "lost" (quarantined, its seqs a hole), "missing"
    /// (segment files gone: a hole), "foreign" (a file named like a segment that is not one:
    /// quarantined and removed).
    pub kind: &'static str,
    pub segment: String,
    pub offset: u64,
    pub bytes: u64,
    pub reason: &'static str,
    /// The seqs lost: `from_seq..to_seq` (empty for a torn tail or a foreign file).
    pub from_seq: u64,
    pub to_seq: u64,
    /// Whether that is exactly the seqs lost, or as many as the damaged bytes could hold.
    pub exact: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    /// Seqs of the snapshots kept, oldest first.
    pub seqs: Vec<u64>,
    /// The newest one whose CRC verifies.
    pub newest_readable: Option<u64>,
    /// Whether the newest readable snapshot equals the fold of records `1..=seq`; `None` when
    /// that cannot be checked (log compacted past seq 1, or snapshot past the log).
    pub matches_log: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub dir: String,
    pub segments: Vec<SegmentReport>,
    pub segment_bytes: u64,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Records per event version.
    pub versions: BTreeMap<u8, u64>,
    /// Decoded records per event kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// `None` when there is no snapshot database, or it cannot be read.
    pub snapshots: Option<SnapshotReport>,
    /// Why the snapshot database cannot be read.
    pub snapshots_unreadable: Option<String>,
    pub quarantine: Vec<String>,
    pub interrupted_writes: Vec<String>,
    pub foreign: Vec<String>,
    /// What the node would do at start: `starts`, `recovers` (repairs, then starts), `refuses`.
    pub verdict: Verdict,
    /// Why it would refuse.
    pub refusal: Option<String>,
    /// Every damaged range, in log order.
    pub damage: Vec<DamageReport>,
    /// Seq ranges `[from, to)` recovery would record as holes.
    pub holes_added: Vec<[u64; 2]>,
    /// Holes an earlier recovery recorded.
    pub holes: Vec<[u64; 2]>,
    /// The seq the next record will get.
    pub next_seq: u64,
    /// Set when the log ends below the newest readable snapshot: recovery will record the seqs
    /// up to it as a hole and continue after it.
    pub snapshot_restart: Option<RestartReport>,
    /// Records whose payload did not decode, and why.
    pub undecodable: u64,
    pub first_error: Option<String>,
}

/// The report, and the error that decides the exit code (`None`: exit 0). Damage (exit 3)
/// takes precedence over an undecodable record (exit 4).
pub fn check(dir: &DataDir) -> Result<(CheckReport, Option<ReplayError>), ReplayError> {
    let scan = &dir.scan;
    let mut kinds = BTreeMap::new();
    let mut undecodable = 0;
    let mut decode_error = None;
    let (snaps, snapshot_db_error) = match dir.snapshots() {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    let snapshot = snaps.as_ref().and_then(|s| s.latest.as_ref());
    let first = scan.segments.first().map_or(scan.next_seq, |s| s.base_seq);
    // Fold from seq 1 alongside decoding, to compare with the newest snapshot: only if no
    // record at or below it was lost (a hole, or damage recovery will make one).
    let snapshot_seq = snapshot.map_or(0, |(seq, _)| *seq);
    let intact_below = scan.holes.iter().all(|h| h.from_seq > snapshot_seq)
        && scan.lost().all(|d| d.seqs() == 0 || d.from_seq > snapshot_seq);
    let mut folding = (first == 1 && intact_below).then(NodeState::default);
    let mut matches_log = None;
    if let Some((0, bytes)) = snapshot {
        matches_log = Some(NodeState::decode_snapshot(bytes).is_ok_and(|s| s == NodeState::default()));
    }
    let mut reader = dir.records(1);
    while let Some(rec) = reader.next().map_err(|e| read_error(dir, e))? {
        match decode_record(rec.seq, rec.version, rec.payload) {
            Ok(event) => {
                *kinds.entry(event.kind_name()).or_insert(0) += 1;
                if let Some(state) = &mut folding {
                    state.apply(&event);
                }
            }
            Err(e) => {
                undecodable += 1;
                folding = None;
                decode_error.get_or_insert(e);
            }
        }
        if let (Some(state), Some((seq, bytes))) = (&folding, snapshot) {
            if *seq == rec.seq {
                matches_log = Some(NodeState::decode_snapshot(bytes).is_ok_and(|s| s == *state));
            }
        }
    }
    let damage = scan
        .damage
        .iter()
        .map(|d| DamageReport {
            kind: match d.kind {
                DamageKind::TornTail => "torn_tail",
                DamageKind::Lost => "lost",
                DamageKind::Missing => "missing",
                DamageKind::Foreign => "foreign",
            },
            segment: d.segment.clone(),
            offset: d.offset,
            bytes: d.len,
            reason: reason_text(d.reason),
            from_seq: d.from_seq,
            to_seq: d.to_seq,
            exact: d.exact,
        })
        .collect();
    let (verdict, refusal) = dir.verdict();
    let snapshots = snaps.as_ref().filter(|s| s.present).map(|s| SnapshotReport {
        seqs: s.seqs.clone(),
        newest_readable: snapshot.map(|(seq, _)| *seq),
        matches_log,
    });
    let snapshot_error = snapshot.and_then(|(seq, bytes)| {
        NodeState::decode_snapshot(bytes)
            .err()
            .map(|e| ReplayError::SnapshotUndecodable { seq: *seq, reason: e.to_string() })
    });
    let mismatch = match (snapshot, matches_log) {
        (Some((seq, _)), Some(false)) if snapshot_error.is_none() => {
            Some(ReplayError::SnapshotMismatch { seq: *seq })
        }
        _ => None,
    };
    let snapshots_unreadable = snapshot_db_error.as_ref().map(ToString::to_string);
    let error = dir.damage().or(snapshot_db_error).or(decode_error).or(snapshot_error).or(mismatch);
    let report = CheckReport {
        dir: dir.path().display().to_string(),
        segments: scan
            .segments
            .iter()
            .map(|s| SegmentReport {
                name: s.name.clone(),
                base_seq: s.base_seq,
                records: s.records,
                bytes: s.bytes,
            })
            .collect(),
        segment_bytes: scan.segments.iter().map(|s| s.bytes).sum(),
        records: scan.records,
        first_seq: (scan.records > 0).then_some(scan.first_seq),
        last_seq: (scan.records > 0).then_some(scan.last_seq),
        versions: scan.versions.clone(),
        kinds,
        snapshots,
        snapshots_unreadable,
        quarantine: dir.quarantine.clone(),
        interrupted_writes: dir.interrupted_writes.clone(),
        foreign: dir.foreign.clone(),
        verdict,
        refusal,
        damage,
        holes_added: dir.inspection().plan.holes.iter().map(|(a, b)| [*a, *b]).collect(),
        holes: scan.holes.iter().map(|h| [h.from_seq, h.to_seq]).collect(),
        next_seq: dir.inspection().plan.next_seq,
        snapshot_restart: dir.snapshot_restart(),
        undecodable,
        first_error: error.as_ref().map(ToString::to_string),
    };
    Ok((report, error))
}

/// Writes the human report.
pub fn render(out: &mut impl Write, r: &CheckReport) -> std::io::Result<()> {
    writeln!(out, "data directory: {}", r.dir)?;
    writeln!(out, "segments: {} ({} bytes valid)", r.segments.len(), r.segment_bytes)?;
    for s in &r.segments {
        writeln!(out, "  {}: base seq {}, {} record(s), {} bytes", s.name, s.base_seq, s.records, s.bytes)?;
    }
    match (r.first_seq, r.last_seq) {
        (Some(first), Some(last)) => writeln!(out, "records: {} (seq {first}..={last})", r.records)?,
        _ => writeln!(out, "records: 0")?,
    }
    let versions: Vec<String> = r.versions.iter().map(|(v, n)| format!("v{v}: {n}")).collect();
    writeln!(out, "versions: {}", none_or(&versions))?;
    let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    writeln!(out, "kinds: {}", none_or(&kinds))?;
    if r.undecodable > 0 {
        writeln!(out, "undecodable records: {}", r.undecodable)?;
    }
    match (&r.snapshots, &r.snapshots_unreadable) {
        (None, Some(why)) => writeln!(out, "snapshots: UNREADABLE ({why})")?,
        (None, None) => writeln!(out, "snapshots: none (no snapshots.redb)")?,
        (Some(s), _) => {
            let seqs: Vec<String> = s.seqs.iter().map(|seq| format!("seq {seq}")).collect();
            let newest = s
                .newest_readable
                .map_or_else(|| "none readable".to_string(), |seq| format!("newest readable: seq {seq}"));
            let verdict = match s.matches_log {
                Some(true) => "; matches the fold of the log",
                Some(false) => "; DIFFERS from the fold of the log",
                None => "",
            };
            writeln!(out, "snapshots: {} ({newest}{verdict})", none_or(&seqs))?;
        }
    }
    writeln!(out, "quarantine files: {}", none_or(&r.quarantine))?;
    if !r.interrupted_writes.is_empty() {
        writeln!(out, "interrupted atomic writes (ignored): {}", r.interrupted_writes.join(", "))?;
    }
    writeln!(out, "foreign files (ignored): {}", none_or(&r.foreign))?;
    if r.damage.is_empty() {
        writeln!(out, "damage: none")?;
    }
    for d in &r.damage {
        let seqs = if d.to_seq > d.from_seq {
            format!(
                "; seqs {} {}",
                seq_range(d.from_seq, d.to_seq),
                if d.exact { "lost" } else { "lost at most" }
            )
        } else {
            String::new()
        };
        let what = match d.kind {
            "torn_tail" => "notice: torn tail (normal after a crash): recovery would cut",
            "foreign" => "DAMAGED: not part of the log: recovery would quarantine and remove",
            "missing" => "DAMAGED: segment files missing after",
            _ => "DAMAGED: recovery would quarantine",
        };
        if d.kind == "missing" {
            writeln!(out, "{what} {}{seqs}", d.segment)?;
        } else if d.kind == "torn_tail" {
            writeln!(
                out,
                "{what} {} byte(s) from seq {} ({} at offset {} of {})",
                d.bytes, d.from_seq, d.reason, d.offset, d.segment
            )?;
        } else {
            writeln!(
                out,
                "{what} {} byte(s) at offset {} of {} ({}){seqs}",
                d.bytes, d.offset, d.segment, d.reason
            )?;
        }
    }
    if !r.holes.is_empty() {
        let list: Vec<String> = r.holes.iter().map(|[a, b]| seq_range(*a, *b)).collect();
        writeln!(out, "holes recorded earlier (records lost to damage): {}", list.join(", "))?;
    }
    match (r.verdict, &r.refusal) {
        (Verdict::Refuses, Some(why)) => {
            writeln!(out, "the node would REFUSE to start (changing nothing): {why}")?
        }
        (Verdict::Recovers, _) => {
            let list: Vec<String> = r.holes_added.iter().map(|[a, b]| seq_range(*a, *b)).collect();
            writeln!(
                out,
                "the node would repair and start: every intact record kept, new holes: {}, next record #{}",
                if list.is_empty() { "none".to_string() } else { list.join(", ") },
                r.next_seq
            )?
        }
        _ => writeln!(out, "the node would start: next record #{}", r.next_seq)?,
    }
    if let Some(restart) = &r.snapshot_restart {
        writeln!(out, "{}", restart_notice(restart))?;
    }
    Ok(())
}

fn none_or(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
