//! `replay state`: the node's durable state at a seq, as recovery would rebuild it: the newest
//! readable snapshot at or before the target, then the log records after it.

use std::io::Write;

use lastmile::events::Fold;
use lastmile::machines::NodeState;
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::error::ReplayError;
use crate::{decode_record, read_error};

/// The folded state and how it was reached.
#[derive(Debug, Clone, Serialize)]
pub struct Folded {
    /// The seq of the last record folded in: the state is the one right after it.
    pub seq: u64,
    /// The snapshot the fold started from, `None` when it started from seq 1.
    pub snapshot_seq: Option<u64>,
    pub state: NodeState,
    /// Why the fold did not start where it normally would (shown, not serialized).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// Where the fold starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The newest readable snapshot at or before the target, else seq 1.
    Snapshot,
    /// Seq 1, ignoring snapshots (needs the whole log): verifies the snapshots.
    FirstRecord,
}

/// Folds the state at `at` (default: the last record). Refuses a damaged log (exit 3); folds
/// the valid prefix of a torn one.
pub fn fold(dir: &DataDir, at: Option<u64>, start: Start) -> Result<Folded, ReplayError> {
    if let Some(e) = dir.damage() {
        return Err(e);
    }
    let scan = &dir.scan;
    // Folding from seq 1 does not need the snapshot database, which may be the damaged part.
    let snapshots = match start {
        Start::Snapshot => Some(dir.snapshots()?),
        Start::FirstRecord => None,
    };
    let latest = snapshots.as_ref().and_then(|s| s.latest.as_ref());
    // The seq the directory reaches, and the first record the log still holds.
    let (end, first) = match scan.segments.first() {
        Some(seg) => (scan.next_seq - 1, seg.base_seq),
        None => {
            let end = latest.map_or(0, |(seq, _)| *seq);
            (end, end + 1)
        }
    };
    let target = at.unwrap_or(end);
    if target > end {
        return Err(ReplayError::OutOfRange(format!("--at {target} is past the last record (seq {end})")));
    }
    let mut notes = Vec::new();
    let mut base = None;
    if start == Start::Snapshot {
        // The newest readable snapshot at or before the target, if the log continues it.
        if let Some((seq, bytes)) =
            dir.snapshot_at_or_before(target)?.filter(|(seq, _)| *seq == target || *seq + 1 >= first)
        {
            match NodeState::decode_snapshot(&bytes) {
                Ok(state) => base = Some((seq, state)),
                Err(e) if first == 1 => notes.push(format!(
                    "snapshot at seq {seq} cannot be decoded ({e}); folded from seq 1 instead"
                )),
                Err(e) => return Err(ReplayError::SnapshotUndecodable { seq, reason: e.to_string() }),
            }
        }
    }
    let (snapshot_seq, mut state) = match base {
        Some((seq, state)) => (Some(seq), state),
        None if first == 1 || target == 0 => (None, NodeState::default()),
        None => {
            return Err(ReplayError::OutOfRange(unreachable_text(
                snapshots.as_ref().map_or(&[][..], |s| &s.seqs),
                target,
                first,
                start,
            )))
        }
    };
    let mut seq = snapshot_seq.unwrap_or(0);
    let mut reader = dir.records(seq + 1);
    while seq < target {
        let Some(rec) = reader.next().map_err(|e| read_error(dir, e))? else {
            break;
        };
        state.apply(&decode_record(rec.seq, rec.version, rec.payload)?);
        seq = rec.seq;
    }
    Ok(Folded { seq, snapshot_seq, state, notes })
}

/// Why seq `target` cannot be rebuilt.
fn unreachable_text(snapshots: &[u64], target: u64, first: u64, start: Start) -> String {
    if start == Start::FirstRecord {
        return format!(
            "--from-start needs the log from seq 1, but its first retained record is seq {first}"
        );
    }
    let kept = if snapshots.is_empty() {
        "there is no snapshot".to_string()
    } else {
        let list: Vec<String> = snapshots.iter().map(u64::to_string).collect();
        format!(
            "no snapshot kept (seqs {}) is readable, at or before it, and continued by the log",
            list.join(", ")
        )
    };
    format!("seq {target} cannot be rebuilt: it is before the log's first retained record (seq {first}) and {kept}")
}

/// Writes the human summary of `folded`.
pub fn render(out: &mut impl Write, folded: &Folded) -> std::io::Result<()> {
    match folded.snapshot_seq {
        Some(s) => writeln!(
            out,
            "state at seq {}: snapshot at seq {s} + {} record(s) replayed",
            folded.seq,
            folded.seq - s
        )?,
        None => writeln!(out, "state at seq {}: folded from seq 1, no snapshot used", folded.seq)?,
    }
    for note in &folded.notes {
        writeln!(out, "note: {note}")?;
    }
    let usage = &folded.state.usage;
    writeln!(out, "usage: {} link(s)", usage.links.len())?;
    for (link, u) in &usage.links {
        writeln!(
            out,
            "  {link}: tx {} B, rx {} B in {} record(s), {} reset(s); counters accounted up to tx {}, rx {}",
            u.tx_total, u.rx_total, u.records, u.resets, u.tx_counted, u.rx_counted
        )?;
    }
    let incidents = &folded.state.incidents;
    let open: Vec<String> =
        incidents.open.iter().map(|(kind, detail)| format!("{kind} (detail {detail})")).collect();
    writeln!(
        out,
        "incidents: {} open{}{}; {} opened in total",
        open.len(),
        if open.is_empty() { "" } else { ": " },
        open.join(", "),
        incidents.opened_total
    )
}

/// Writes `{"seq": N, "snapshot_seq": X|null, "state": {...}}` and a newline.
pub fn render_json(out: &mut impl Write, folded: &Folded) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, folded)?;
    writeln!(out)
}
