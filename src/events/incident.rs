//! Incidents: things that went wrong and that an operator or a repair machine must see.

use serde::{Deserialize, Serialize};

/// What kind of trouble. Stored as its number; new kinds get new numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum IncidentKind {
    /// The flash budget is exhausted even after snapshot and compaction; non-urgent records
    /// are refused until space is freed.
    FlashFull = 1,
    /// Writing or syncing the log failed.
    LogWriteFailed = 2,
}

impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FlashFull => "flash-full",
            Self::LogWriteFailed => "log-write-failed",
        })
    }
}

impl From<IncidentKind> for u8 {
    fn from(kind: IncidentKind) -> u8 {
        kind as u8
    }
}

impl TryFrom<u8> for IncidentKind {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        match n {
            1 => Ok(Self::FlashFull),
            2 => Ok(Self::LogWriteFailed),
            other => Err(format!("unknown incident kind {other}")),
        }
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
