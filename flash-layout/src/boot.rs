//! The boot counter of a data directory (`boot`: a decimal number and a newline): which boot
//! of the node this is, so stamps of one boot never collide with another's.
//!
//! A missing file is the first boot. A damaged one is an error: the operator must look,
//! because stamps of the next boot could otherwise collide with an earlier one's. The node
//! reads it before it starts (a damaged counter refuses the start, like a damaged log would)
//! and bumps it only once its data directory has opened.

use std::io;
use std::path::Path;

use thiserror::Error;

use crate::storage::{DirStorage, Storage};

/// The file name of the boot counter in a data directory.
pub const BOOT_FILE: &str = "boot";

#[derive(Debug, Error)]
pub enum BootError {
    #[error("boot counter {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("boot counter {path}: {reason}")]
    Damaged { path: String, reason: String },
}

/// The last boot recorded in `dir` (`None`: no boot yet, or no directory). Reads only.
pub fn read_boot(dir: &Path) -> Result<Option<u32>, BootError> {
    let path = dir.join(BOOT_FILE);
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(BootError::Damaged { path: shown, reason: "not text".into() })
        }
        Err(source) => return Err(BootError::Io { path: shown, source }),
    };
    let boot = text.trim().parse::<u32>().map_err(|e| BootError::Damaged {
        path: shown.clone(),
        reason: format!("not a number ({e}): {:?}", text.trim()),
    })?;
    if boot == u32::MAX {
        return Err(BootError::Damaged { path: shown, reason: "counter exhausted".into() });
    }
    Ok(Some(boot))
}

/// Increments the boot counter in `dir` durably (atomic write; nothing is left behind on
/// error) and returns the new boot.
pub fn next_boot(dir: &Path) -> Result<u32, BootError> {
    let boot = read_boot(dir)?.unwrap_or(0) + 1; // read_boot refuses u32::MAX
    let path = dir.join(BOOT_FILE).display().to_string();
    let mut storage =
        DirStorage::open_existing(dir).map_err(|source| BootError::Io { path: path.clone(), source })?;
    storage
        .write_atomic(BOOT_FILE, format!("{boot}\n").as_bytes())
        .map_err(|source| BootError::Io { path, source })?;
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_boots_and_refuses_a_damaged_counter() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_boot(dir.path()).unwrap(), None);
        assert_eq!(next_boot(dir.path()).unwrap(), 1);
        assert_eq!(next_boot(dir.path()).unwrap(), 2);
        assert_eq!(read_boot(dir.path()).unwrap(), Some(2));
        for bad in [&b"x\n"[..], b"-1", b"\xff\xfe", b"4294967295\n"] {
            std::fs::write(dir.path().join(BOOT_FILE), bad).unwrap();
            let err = read_boot(dir.path()).unwrap_err();
            assert!(matches!(err, BootError::Damaged { .. }), "{bad:?}: {err}");
            assert!(next_boot(dir.path()).is_err());
            assert_eq!(std::fs::read(dir.path().join(BOOT_FILE)).unwrap(), bad, "unchanged");
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }
}
