//! The payment key on flash: one secp256k1 private key, 64 hex digits (an optional `0x` and
//! surrounding whitespace are accepted), in a file only its owner may read.
//!
//! [`load_or_create`] reads the key, or creates it when the file is missing: 32 bytes from the
//! OS's random source, written with mode 0600 from the start, atomically (temporary file,
//! fsync, rename, fsync of the directory), so a crash leaves either no key or the whole key,
//! never a torn one. The key is never logged: [`PaymentKey`]'s `Debug` prints nothing of it,
//! and errors name the file, never its content.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A payment private key. Zeroed when dropped.
pub struct PaymentKey([u8; 32]);

impl PaymentKey {
    /// A key from 64 hex digits. `Err` says why, without echoing the input.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let hex = text.strip_prefix("0x").unwrap_or(text);
        if hex.len() != 64 {
            return Err(format!("expected 64 hex digits, found {} characters", hex.len()));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or("not hex")?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| "not hex".to_string())?;
        }
        Self::from_bytes(out)
    }

    /// A key from its 32 bytes; refuses zero and values beyond the curve order.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, String> {
        alloy::signers::local::PrivateKeySigner::from_bytes(&bytes.into())
            .map_err(|_| "not a valid secp256k1 private key".to_string())?;
        Ok(Self(bytes))
    }

    /// The secret itself, for the signer.
    pub fn secret(&self) -> &[u8; 32] {
        &self.0
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Drop for PaymentKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile, so the wipe is not optimised away as a dead store.
            // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl fmt::Debug for PaymentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaymentKey(..)")
    }
}

#[derive(Debug)]
pub enum KeyFileError {
    /// The directory that should hold the key does not exist (the data directory is not
    /// mounted, or the path is wrong): we do not create it, so a key never lands on the wrong
    /// filesystem.
    MissingDirectory {
        dir: PathBuf,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Malformed {
        path: PathBuf,
        reason: String,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingDirectory { dir } => {
                write!(f, "payment key directory {} does not exist", dir.display())
            }
            Self::Io { path, source } => write!(f, "payment key {}: {source}", path.display()),
            Self::Malformed { path, reason } => write!(f, "payment key {}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// What [`load_or_create`] found.
#[derive(Debug)]
pub struct LoadedKey {
    pub key: PaymentKey,
    /// The file did not exist and was created.
    pub created: bool,
    /// The file's mode lets others than its owner read or write it (warned about).
    pub loose_mode: Option<u32>,
}

/// Reads the key at `path`, creating it if missing. A mode that lets group or others in is
/// warned about, not refused: the operator may have reasons, and refusing would stop payments.
pub fn load_or_create(path: &Path) -> Result<LoadedKey, KeyFileError> {
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Err(KeyFileError::MissingDirectory { dir: path.to_path_buf() }),
    };
    if !dir.is_dir() {
        return Err(KeyFileError::MissingDirectory { dir: dir.to_path_buf() });
    }
    let io_err = |source| KeyFileError::Io { path: path.to_path_buf(), source };
    match fs::File::open(path) {
        Ok(mut file) => {
            let mode = file.metadata().map_err(io_err)?.permissions().mode() & 0o777;
            let loose_mode = (mode & 0o077 != 0).then_some(mode);
            if let Some(mode) = loose_mode {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "payment key is readable by others; chmod 600 it");
            }
            let mut text = String::new();
            // A key file is 64–67 bytes; anything far beyond is not a key file.
            (&mut file).take(256).read_to_string(&mut text).map_err(io_err)?;
            let key = PaymentKey::from_hex(&text)
                .map_err(|reason| KeyFileError::Malformed { path: path.to_path_buf(), reason })?;
            Ok(LoadedKey { key, created: false, loose_mode })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = generate().map_err(io_err)?;
            write_private(path, dir, format!("{}\n", key.to_hex()).as_bytes()).map_err(io_err)?;
            tracing::info!(path = %path.display(), "created a new payment key");
            Ok(LoadedKey { key, created: true, loose_mode: None })
        }
        Err(e) => Err(io_err(e)),
    }
}

/// A fresh key from the OS's random source (a key is not replayed: no seed applies).
fn generate() -> io::Result<PaymentKey> {
    let mut urandom = fs::File::open("/dev/urandom")?;
    // A random 256-bit value is a valid key except with probability ~2^-128; retry anyway.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        urandom.read_exact(&mut bytes)?;
        if let Ok(key) = PaymentKey::from_bytes(bytes) {
            return Ok(key);
        }
    }
    Err(io::Error::other("the random source gave no valid key in 8 draws"))
}

/// Writes `bytes` to `path` atomically, readable by the owner only from the first byte on.
/// (`os::flash` has its own atomic write for the boot counter; this one differs in the mode
/// and in refusing to follow a stale temporary file.)
fn write_private(path: &Path, dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash holds at most a torn key that was never used.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_created_private_and_loaded_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("payment.key");
        let first = load_or_create(&path).expect("created");
        assert!(first.created);
        let mode = fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("payment.tmp").exists());
        let again = load_or_create(&path).expect("loaded");
        assert!(!again.created);
        assert_eq!(again.key.secret(), first.key.secret());
        assert_eq!(format!("{:?}", again.key), "PaymentKey(..)");
    }

    #[test]
    fn loose_modes_are_reported_and_bad_content_or_directories_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("payment.key");
        let hex = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n";
        fs::write(&path, hex).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let loaded = load_or_create(&path).expect("a loose mode is a warning");
        assert_eq!(loaded.loose_mode, Some(0o644));

        for bad in ["", "zz", &"00".repeat(32), &"ff".repeat(32), &"ab".repeat(40)] {
            fs::write(&path, bad).expect("write");
            match load_or_create(&path) {
                Err(KeyFileError::Malformed { reason, .. }) => {
                    assert!(!reason.contains("ffff") && !reason.contains("abab"), "never echoed: {reason}");
                }
                other => panic!("{bad:?}: expected Malformed, got {other:?}"),
            }
        }
        let missing = dir.path().join("no-such-dir").join("payment.key");
        assert!(matches!(load_or_create(&missing), Err(KeyFileError::MissingDirectory { .. })));
    }
}
