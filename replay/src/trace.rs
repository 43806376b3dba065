//! `replay trace`: one line per record, `#SEQ vVERSION kind.name details…`, or one JSON object
//! per line.

use std::io::Write;

use lastmile::events::Event;
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::error::ReplayError;
use crate::{decode_record, read_error};

/// One record as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct TraceLine<'a> {
    pub seq: u64,
    pub version: u8,
    pub kind: &'static str,
    pub event: &'a Event,
}

/// Writes records `from..=to` (defaults: the whole valid prefix). Refuses a damaged log
/// (exit 3) and a range outside the log (exit 5); stops at the first record that does not
/// decode (exit 4), after writing the ones before it.
pub fn trace(
    dir: &DataDir,
    from: Option<u64>,
    to: Option<u64>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), ReplayError> {
    if let Some(e) = dir.damage() {
        return Err(e);
    }
    let scan = &dir.scan;
    let first = scan.segments.first().map_or(scan.next_seq, |s| s.base_seq);
    let end = scan.next_seq - 1;
    if let Some(f) = from.filter(|&f| f < first) {
        return Err(ReplayError::OutOfRange(format!(
            "--from {f} is before the log's first retained record (seq {first})"
        )));
    }
    if let Some(t) = to.filter(|&t| t > end) {
        return Err(ReplayError::OutOfRange(format!("--to {t} is past the last record (seq {end})")));
    }
    let (from, to) = (from.unwrap_or(first), to.unwrap_or(end));
    if from > to && (from, to) != (first, end) {
        return Err(ReplayError::OutOfRange(format!("--from {from} is after --to {to}")));
    }
    let mut reader = dir.records(from);
    while let Some(rec) = reader.next().map_err(|e| read_error(dir, e))? {
        if rec.seq > to {
            break;
        }
        let event = decode_record(rec.seq, rec.version, rec.payload)?;
        if json {
            let line =
                TraceLine { seq: rec.seq, version: rec.version, kind: event.kind_name(), event: &event };
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            writeln!(out, "#{} v{} {} {}", rec.seq, rec.version, event.kind_name(), event)?;
        }
    }
    Ok(())
}
