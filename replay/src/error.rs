//! Everything that stops a command, each with its documented exit code.

use std::io;

use thiserror::Error;

/// The directory cannot be read or holds no lastmile log.
pub const EXIT_CANNOT_READ: i32 = 2;
/// The log or the snapshot database is damaged: durable data was lost or altered.
pub const EXIT_DAMAGED: i32 = 3;
/// A record or snapshot this build cannot decode (newer version, or malformed payload).
pub const EXIT_UNDECODABLE: i32 = 4;
/// The requested seq or range is not in what the directory holds.
pub const EXIT_OUT_OF_RANGE: i32 = 5;
/// Writing the output failed (other than a closed pipe).
pub const EXIT_OUTPUT: i32 = 1;
/// `dispute`: the payer is cumulatively short of what the payee expected, beyond the
/// tolerance (the report is written first).
pub const EXIT_UNDERPAID: i32 = 6;
/// `dispute`: the two logs cannot be compared as given: not neighbours, no identity to tell
/// which neighbour the other is, several candidates and no `--link`, or swapped arguments.
pub const EXIT_NOT_COMPARABLE: i32 = 7;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("cannot read {path}: no such directory")]
    Missing { path: String },
    #[error("cannot read {path}: not a directory")]
    NotADirectory { path: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a lastmile data directory: no log segment and no snapshots.redb")]
    NotADataDirectory { path: String },
    /// A file named like a segment that does not start with the segment magic.
    #[error("not a lastmile log segment: {name} (it does not start with the segment magic \"LMSG\")")]
    ForeignSegment { name: String },
    /// A defect that is not a torn tail; the text says where and what recovery would cut.
    #[error("damaged log: {0}")]
    Damaged(String),
    #[error("damaged snapshot database: {0}")]
    SnapshotDatabase(String),
    /// The node would refuse to start on the directory (and change nothing in it).
    #[error("the node refuses to start on this directory: {0}")]
    Refused(String),
    #[error("the snapshot at seq {seq} differs from the fold of records 1..={seq}: the log or the snapshot was altered")]
    SnapshotMismatch { seq: u64 },
    #[error(
        "record {seq}: event version {found} is newer than this build supports ({supported}); \
         upgrade lastmile to read this log"
    )]
    NewerVersion { seq: u64, found: u8, supported: u8 },
    #[error("record {seq} (version {version}) cannot be decoded: {reason}")]
    Undecodable { seq: u64, version: u8, reason: String },
    #[error("snapshot at seq {seq} cannot be decoded: {reason}")]
    SnapshotUndecodable { seq: u64, reason: String },
    #[error("{0}")]
    OutOfRange(String),
    #[error("cannot write output: {0}")]
    Output(io::Error),
    #[error("{0}")]
    NotComparable(String),
    #[error("underpaid: the payer accounted {amount} less than the payee expected, beyond the tolerance of {tolerance}")]
    Underpaid { amount: u128, tolerance: u128 },
}

impl ReplayError {
    /// The process exit code for this error (see the crate docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Missing { .. }
            | Self::NotADirectory { .. }
            | Self::Io { .. }
            | Self::NotADataDirectory { .. } => EXIT_CANNOT_READ,
            Self::ForeignSegment { .. }
            | Self::Damaged(_)
            | Self::Refused(_)
            | Self::SnapshotDatabase(_)
            | Self::SnapshotMismatch { .. } => EXIT_DAMAGED,
            Self::NewerVersion { .. } | Self::Undecodable { .. } | Self::SnapshotUndecodable { .. } => {
                EXIT_UNDECODABLE
            }
            Self::OutOfRange(_) => EXIT_OUT_OF_RANGE,
            Self::Output(_) => EXIT_OUTPUT,
            Self::Underpaid { .. } => EXIT_UNDERPAID,
            Self::NotComparable(_) => EXIT_NOT_COMPARABLE,
        }
    }
}

impl From<io::Error> for ReplayError {
    /// Only for errors writing the output: reading errors carry the path they concern.
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}
