//! Replay, trace and check tools over a lastmile data directory (event log segments and
//! snapshots), for recovery checks and billing disputes.
//!
//! ```text
//! replay check DIR [--json]                         validate every frame and decode every payload
//! replay state DIR [--at SEQ] [--from-start] [--json]   the folded NodeState at a seq
//! replay trace DIR [--from SEQ] [--to SEQ] [--json]     one line per record
//! replay dispute PAYER_DIR PAYEE_DIR [--link N|nN/dD|ADDRESS] [--payee-link N|ADDRESS]
//!                [--tolerance UNITS|FRACTION|PERCENT%] [--json]
//!                                                   replay two neighbours' logs side by side
//! ```
//!
//! `dispute` aligns the payer's and the payee's logs into billing windows closed by the
//! payments both show (same tx hash), and compares what the payer accounted (tx bytes at the
//! prices it was quoted) with what the payee expected (rx bytes at the lowest price it
//! advertised): see [`dispute`].
//!
//! The tools never modify the directory: a dispute tool must not alter evidence (see
//! [`data_dir`]).
//!
//! Exit codes (an error is one line on stderr, `replay: <what>`):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success; a torn tail (the end of the last segment, nothing valid after it: normal after a crash) and holes an earlier recovery recorded are reported with a notice |
//! | 1 | the output could not be written |
//! | 2 | cannot read: missing directory, not a directory, I/O error, no lastmile log there (also clap's usage errors) |
//! | 3 | damaged or refused: the node would refuse to start on the directory (a log that starts above seq 1 without a valid snapshot: the snapshot database missing, empty, unreadable or holding none that verifies), or would repair it first: a corrupt frame that is not a torn tail, a bad, short or foreign segment file, missing segments, a log ending below the newest snapshot, an unreadable snapshot database; also a snapshot that disagrees with the log. `check` says which, and what recovery would quarantine, which seqs become holes, and where the log continues |
//! | 4 | undecodable: an event version newer than this build, a malformed payload, a snapshot this build cannot decode |
//! | 5 | out of range: `--at`/`--from`/`--to` outside what the directory holds; a `dispute` log that no longer holds seq 1 |
//! | 6 | `dispute`: underpaid: the payer accounted cumulatively less than the payee expected, beyond `--tolerance` (the report is written first; overpayment, i.e. loss, is exit 0) |
//! | 7 | `dispute`: the logs cannot be compared as given: not neighbours, a log without identity and no `--link`, several candidate neighbour ids and no `--link`/`--payee-link`, or the arguments swapped |

pub mod check;
pub mod data_dir;
pub mod dispute;
pub mod error;
pub mod state;
pub mod trace;

pub use data_dir::{DataDir, Ending};
pub use error::ReplayError;

use lastmile::events::codec::{self, DecodeError};
use lastmile::events::Event;

/// Decodes the payload of record `seq`, naming the seq in any error.
pub fn decode_record(seq: u64, version: u8, payload: &[u8]) -> Result<Event, ReplayError> {
    codec::decode(version, payload).map_err(|e| match e {
        DecodeError::NewerVersion { found, supported } => ReplayError::NewerVersion { seq, found, supported },
        other => ReplayError::Undecodable { seq, version, reason: other.to_string() },
    })
}

/// Maps an error of the record reader (the files changed or vanished since the scan).
pub(crate) fn read_error(dir: &DataDir, e: flash_layout::ReadError) -> ReplayError {
    match e {
        flash_layout::ReadError::Io { name, source } => {
            ReplayError::Io { path: dir.path().join(name).display().to_string(), source }
        }
        flash_layout::ReadError::Frame { name, seq, error } => {
            ReplayError::Damaged(format!("record {seq} in {name} changed while being read: {error}"))
        }
    }
}
