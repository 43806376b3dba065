//! Incidents: things that went wrong and that an operator or a repair machine must see.

use serde::{Deserialize, Serialize};

numbered_enum! {
    /// What kind of trouble.
    pub enum IncidentKind ("incident kind") {
        /// The flash budget is exhausted even after snapshot and compaction; non-urgent records
        /// are refused until space is freed.
        FlashFull = 1,
        /// Writing or syncing the log failed.
        LogWriteFailed = 2,
    }
}

impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FlashFull => "flash-full",
            Self::LogWriteFailed => "log-write-failed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncidentEvent {
    /// `detail` is kind-specific: bytes used for `FlashFull`, the OS error number for
    /// `LogWriteFailed`.
    Opened {
        kind: IncidentKind,
        detail: u64,
    },
    Closed {
        kind: IncidentKind,
    },
}

/// What the node saw of a condition it watches (the journal: the flash budget, log writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentInput {
    /// The condition holds; `detail` as in [`IncidentEvent::Opened`].
    Holds { kind: IncidentKind, detail: u64 },
    /// The condition is over.
    Cleared { kind: IncidentKind },
}
