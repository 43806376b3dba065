//! lastmile's on-flash format: framed append-only log segments, snapshots, and the flash
//! budget. The byte layout is specified in `FORMAT.md`, next to this crate's `Cargo.toml`.
//!
//! The crate knows nothing of lastmile's events: a record is a schema `version` (>= 1) and
//! opaque payload bytes, numbered by a sequence number starting at 1 (0 means "none").
//!
//! - [`storage`]: the directory of files behind a trait, real ([`DirStorage`]) and simulated
//!   ([`MemStorage`], which can crash, tear and lose writes).
//! - [`frame`], [`segment`]: the byte codecs.
//! - [`scan`](mod@scan): read-only validation (`replay check`) and the fast replay reader.
//! - [`recovery`]: what recovery does about damage, as a plan shown before it is carried out.
//! - [`log`]: group commit and crash recovery.
//! - [`snapshot`], [`store`]: redb snapshots, compaction and the flash budget.

pub mod boot;
pub mod frame;
pub mod log;
pub mod recovery;
pub mod scan;
pub mod segment;
mod seqsolve;
pub mod snapshot;
pub mod storage;
pub mod store;

pub use frame::{FrameError, Record, MAX_PAYLOAD_LEN};
pub use log::{
    AppendError, Appended, FlushPolicy, Log, LogConfig, LogError, Pushed, QuarantinePiece, Recovery, Removed,
    Retention, SegmentInfo,
};
pub use recovery::Plan;
pub use scan::{
    scan, Damage, DamageKind, DefectReason, Hole, ReadError, Reader, Run, Scan, ScanError, SegmentSummary,
};
pub use snapshot::{SnapshotError, SnapshotFile, SnapshotStore};
pub use storage::{CrashMode, DirStorage, Fault, MemStorage, Storage};
pub use store::{Budget, Inspection, Refusal, RestoreError, Restored, Store, StoreError};
