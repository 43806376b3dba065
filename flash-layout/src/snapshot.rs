//! Snapshots in redb: one table `snapshots`, key = the log seq the snapshot covers (u64),
//! value = CRC32C (u32 LE, over seq u64 LE ++ bytes) ++ the snapshot bytes.
//!
//! redb commits are atomic (copy-on-write), so a crash leaves the old or the new set. The
//! extra CRC catches damage redb itself would not notice in the value, and lets `latest` fall
//! back to the older of the two snapshots kept.

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");

/// Snapshots kept; the older one is the fallback when the newest is damaged.
pub const KEEP_SNAPSHOTS: usize = 2;

/// File name of the snapshot database inside a store directory.
pub const SNAPSHOT_FILE: &str = "snapshots.redb";

/// redb's page cache: small, this runs in 128 MB of RAM with everything else.
const CACHE_BYTES: usize = 1 << 20;

/// A snapshot database error, naming the file.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot database {path}: {source}")]
    Db { path: String, source: redb::Error },
    #[error("snapshot database {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// An earlier I/O error closed it and it could not be opened again yet.
    #[error("snapshot database {path}: closed after an I/O error, and not opened again yet")]
    Closed { path: String },
}

fn db(path: &Path, e: impl Into<redb::Error>) -> SnapshotError {
    SnapshotError::Db { path: path.display().to_string(), source: e.into() }
}

/// What a store directory's snapshot database holds, read without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotFile {
    /// No `snapshots.redb`.
    Missing,
    /// A file of zero bytes (creating the database was interrupted).
    Empty,
    /// It cannot be read as a snapshot database; why, naming the file.
    Unreadable(String),
    Readable {
        /// Seqs of the snapshots kept, oldest first, valid or not.
        seqs: Vec<u64>,
        /// The newest snapshot whose CRC verifies: (seq, bytes).
        latest: Option<(u64, Vec<u8>)>,
    },
}

impl SnapshotFile {
    /// Reads the database at `path` from a private copy in the system's temporary directory
    /// (RAM on a router), never from the file itself: opening a redb file writes to it (it
    /// repairs a file not closed cleanly, and creates tables), and what is inspected here —
    /// before the node decides to start, or by `replay` — must not change.
    ///
    /// An error means it could not be looked at (the file cannot be read, the temporary
    /// directory is full): not that the database is damaged.
    pub fn inspect(path: &Path) -> Result<SnapshotFile, SnapshotError> {
        let shown = path.display();
        let io = |source| SnapshotError::Io { path: shown.to_string(), source };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SnapshotFile::Missing),
            Err(e) => return Err(io(e)),
            Ok(m) if m.len() == 0 => return Ok(SnapshotFile::Empty),
            Ok(_) => {}
        }
        let copy = PrivateCopy::of(path).map_err(|e| {
            io(std::io::Error::new(
                e.kind(),
                format!("cannot copy it to a private temporary directory to read it: {e}"),
            ))
        })?;
        let read = SnapshotStore::open(copy.file()).and_then(|s| Ok((s.seqs()?, s.latest()?)));
        Ok(match read {
            Ok((seqs, latest)) => SnapshotFile::Readable { seqs, latest },
            // The error names the copy; name the original.
            Err(SnapshotError::Db { source, .. }) => SnapshotFile::Unreadable(format!("{shown}: {source}")),
            Err(SnapshotError::Io { source, .. }) => SnapshotFile::Unreadable(format!("{shown}: {source}")),
            Err(SnapshotError::Closed { .. }) => SnapshotFile::Unreadable(format!("{shown}: closed")),
        })
    }

    /// What an open store holds.
    pub fn of(store: &SnapshotStore) -> Result<SnapshotFile, SnapshotError> {
        Ok(SnapshotFile::Readable { seqs: store.seqs()?, latest: store.latest()? })
    }

    /// The newest snapshot whose CRC verifies.
    pub fn latest(&self) -> Option<&(u64, Vec<u8>)> {
        match self {
            SnapshotFile::Readable { latest, .. } => latest.as_ref(),
            _ => None,
        }
    }
}

/// A copy of a file in a fresh directory under the system's temporary directory, removed on
/// drop.
struct PrivateCopy {
    dir: PathBuf,
}

impl PrivateCopy {
    /// Copies `path` into a directory this process creates (never one that exists: a name
    /// taken is skipped), readable by its owner only.
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("flash-layout-snapshots-{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1_000_000 => continue,
                Err(e) => return Err(e),
            }
        };
        let copy = Self { dir };
        fs::copy(path, copy.file())?;
        Ok(copy)
    }

    fn file(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The newest [`KEEP_SNAPSHOTS`] snapshots of the machines' state.
#[derive(Debug)]
pub struct SnapshotStore {
    db: Database,
    path: PathBuf,
    /// The file is not open (a reopen failed): reads and writes try to open it again first.
    closed: bool,
}

impl SnapshotStore {
    /// Opens or creates the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        let path = path.as_ref().to_path_buf();
        let database =
            Database::builder().set_cache_size(CACHE_BYTES).create(&path).map_err(|e| db(&path, e))?;
        let txn = database.begin_write().map_err(|e| db(&path, e))?;
        txn.open_table(SNAPSHOTS).map_err(|e| db(&path, e))?;
        txn.commit().map_err(|e| db(&path, e))?;
        Ok(Self { db: database, path, closed: false })
    }

    /// Closes and opens the database again (after an I/O error, redb refuses every
    /// transaction until then).
    pub fn reopen(&mut self) -> Result<(), SnapshotError> {
        let path = self.path.clone();
        if !self.closed {
            // The old handle must be closed before the file is opened again: swap in a
            // database on an in-memory backend while it drops. Until the file opens again
            // every operation fails (`closed`), never reaching that placeholder.
            let placeholder = Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(|e| db(&path, e))?;
            drop(std::mem::replace(&mut self.db, placeholder));
            self.closed = true;
        }
        *self = Self::open(&path)?;
        Ok(())
    }

    fn open_or_err(&self) -> Result<(), SnapshotError> {
        if self.closed {
            return Err(SnapshotError::Closed { path: self.path.display().to_string() });
        }
        Ok(())
    }

    /// After a failed [`Self::reopen`], opens the file first; errors if it still cannot.
    fn ready(&mut self) -> Result<(), SnapshotError> {
        if self.closed {
            self.reopen()?;
        }
        Ok(())
    }

    /// Stores the snapshot at `seq` and drops all but the newest [`KEEP_SNAPSHOTS`], in one
    /// durable transaction.
    pub fn write(&mut self, seq: u64, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.ready()?;
        let mut value = Vec::with_capacity(4 + bytes.len());
        value.extend_from_slice(&snapshot_crc(seq, bytes).to_le_bytes());
        value.extend_from_slice(bytes);
        let txn = self.db.begin_write().map_err(|e| db(&self.path, e))?;
        {
            let mut table = txn.open_table(SNAPSHOTS).map_err(|e| db(&self.path, e))?;
            table.insert(seq, value.as_slice()).map_err(|e| db(&self.path, e))?;
            let mut keys = Vec::new();
            for entry in table.iter().map_err(|e| db(&self.path, e))?.rev().skip(KEEP_SNAPSHOTS) {
                keys.push(entry.map_err(|e| db(&self.path, e))?.0.value());
            }
            for k in keys {
                table.remove(k).map_err(|e| db(&self.path, e))?;
            }
        }
        txn.commit().map_err(|e| db(&self.path, e))?;
        Ok(())
    }

    /// The newest snapshot whose CRC verifies, with its seq.
    pub fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, SnapshotError> {
        self.at_or_before(u64::MAX)
    }

    /// The newest snapshot with seq `<= seq` whose CRC verifies, with its seq: the state a
    /// replay to `seq` can start from (then the log records after it). Damaged snapshots are
    /// skipped for older ones.
    pub fn at_or_before(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>, SnapshotError> {
        self.open_or_err()?;
        let txn = self.db.begin_read().map_err(|e| db(&self.path, e))?;
        let table = txn.open_table(SNAPSHOTS).map_err(|e| db(&self.path, e))?;
        for entry in table.range(..=seq).map_err(|e| db(&self.path, e))?.rev() {
            let (k, v) = entry.map_err(|e| db(&self.path, e))?;
            if let Some(bytes) = verified(k.value(), v.value()) {
                return Ok(Some((k.value(), bytes.to_vec())));
            }
        }
        Ok(None)
    }

    /// Seqs of the snapshots kept, oldest first, valid or not.
    pub fn seqs(&self) -> Result<Vec<u64>, SnapshotError> {
        Ok(self.all()?.into_iter().map(|(seq, _, _)| seq).collect())
    }

    /// (seq, bytes, crc ok), oldest first.
    fn all(&self) -> Result<Vec<(u64, Vec<u8>, bool)>, SnapshotError> {
        self.open_or_err()?;
        let txn = self.db.begin_read().map_err(|e| db(&self.path, e))?;
        let table = txn.open_table(SNAPSHOTS).map_err(|e| db(&self.path, e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| db(&self.path, e))? {
            let (k, v) = entry.map_err(|e| db(&self.path, e))?;
            let seq = k.value();
            out.push(match verified(seq, v.value()) {
                Some(bytes) => (seq, bytes.to_vec(), true),
                None => (seq, Vec::new(), false),
            });
        }
        Ok(out)
    }

    /// Size of the database file on flash.
    pub fn disk_bytes(&self) -> Result<u64, SnapshotError> {
        fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|source| SnapshotError::Io { path: self.path.display().to_string(), source })
    }

    /// Rewrites the file to drop free pages; returns whether it did anything.
    pub fn compact(&mut self) -> Result<bool, SnapshotError> {
        self.ready()?;
        self.db.compact().map_err(|e| db(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    fn write_raw(&mut self, seq: u64, value: &[u8]) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(SNAPSHOTS).unwrap().insert(seq, value).unwrap();
        txn.commit().unwrap();
    }
}

/// The snapshot bytes of stored `value` at `seq`, if its CRC verifies. The value is
/// untrusted: shorter than its CRC means damaged.
fn verified(seq: u64, value: &[u8]) -> Option<&[u8]> {
    let (crc, bytes) = value.split_first_chunk::<4>()?;
    (u32::from_le_bytes(*crc) == snapshot_crc(seq, bytes)).then_some(bytes)
}

fn snapshot_crc(seq: u64, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_two_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut s = SnapshotStore::open(&path).unwrap();
        assert_eq!(s.latest().unwrap(), None);
        for seq in [5u64, 9, 12] {
            s.write(seq, format!("state@{seq}").as_bytes()).unwrap();
        }
        assert_eq!(s.seqs().unwrap(), vec![9, 12]);
        drop(s);
        let s = SnapshotStore::open(&path).unwrap();
        assert_eq!(s.latest().unwrap(), Some((12, b"state@12".to_vec())));
    }

    #[test]
    fn falls_back_when_newest_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SnapshotStore::open(dir.path().join(SNAPSHOT_FILE)).unwrap();
        s.write(3, b"old").unwrap();
        s.write(7, b"new").unwrap();
        let mut bad = snapshot_crc(7, b"new").to_le_bytes().to_vec();
        bad.extend_from_slice(b"neW");
        s.write_raw(7, &bad);
        assert_eq!(s.latest().unwrap(), Some((3, b"old".to_vec())));
        s.write_raw(3, b"ab"); // shorter than a CRC
        assert_eq!(s.latest().unwrap(), None);
        // A snapshot moved to another seq fails too: the seq is under the CRC.
        let mut moved = snapshot_crc(7, b"new").to_le_bytes().to_vec();
        moved.extend_from_slice(b"new");
        s.write_raw(8, &moved);
        assert_eq!(s.latest().unwrap(), None);
    }

    #[test]
    fn at_or_before_is_the_newest_valid_snapshot_not_past_the_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SnapshotStore::open(dir.path().join(SNAPSHOT_FILE)).unwrap();
        assert_eq!(s.at_or_before(u64::MAX).unwrap(), None);
        s.write(12, b"twelve").unwrap();
        s.write(20, b"twenty").unwrap();
        assert_eq!(s.at_or_before(11).unwrap(), None);
        assert_eq!(s.at_or_before(0).unwrap(), None);
        for seq in [12, 13, 19] {
            assert_eq!(s.at_or_before(seq).unwrap(), Some((12, b"twelve".to_vec())));
        }
        for seq in [20, 21, u64::MAX] {
            assert_eq!(s.at_or_before(seq).unwrap(), Some((20, b"twenty".to_vec())));
        }
        // A damaged one is skipped for the older one.
        s.write_raw(20, b"bad crc and bytes");
        assert_eq!(s.at_or_before(25).unwrap(), Some((12, b"twelve".to_vec())));
        s.write_raw(12, b"xy");
        assert_eq!(s.at_or_before(25).unwrap(), None);
    }

    #[test]
    fn reopen_keeps_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SnapshotStore::open(dir.path().join(SNAPSHOT_FILE)).unwrap();
        s.write(3, b"three").unwrap();
        s.reopen().unwrap();
        assert_eq!(s.latest().unwrap(), Some((3, b"three".to_vec())));
        s.write(4, b"four").unwrap();
        assert_eq!(s.seqs().unwrap(), vec![3, 4]);
    }

    #[test]
    fn inspect_reads_a_copy_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        assert_eq!(SnapshotFile::inspect(&path).unwrap(), SnapshotFile::Missing);
        fs::write(&path, b"").unwrap();
        assert_eq!(SnapshotFile::inspect(&path).unwrap(), SnapshotFile::Empty);
        fs::write(&path, b"not a database at all, but long enough to look at").unwrap();
        let before = fs::read(&path).unwrap();
        match SnapshotFile::inspect(&path).unwrap() {
            SnapshotFile::Unreadable(why) => assert!(why.starts_with(&path.display().to_string()), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), before, "inspecting changes nothing");
        fs::remove_file(&path).unwrap();
        let mut s = SnapshotStore::open(&path).unwrap();
        s.write(4, b"four").unwrap();
        let before = fs::read(&path).unwrap();
        assert_eq!(
            SnapshotFile::inspect(&path).unwrap(),
            SnapshotFile::Readable { seqs: vec![4], latest: Some((4, b"four".to_vec())) }
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(SnapshotFile::of(&s).unwrap().latest(), Some(&(4, b"four".to_vec())));
        // Errors name the file.
        let err = SnapshotStore::open(dir.path().join("missing-dir").join(SNAPSHOT_FILE)).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }

    /// The redb file size for small snapshots (reported in FORMAT.md "Snapshots").
    #[test]
    fn file_size_for_small_snapshots_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SnapshotStore::open(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let empty = s.disk_bytes().unwrap();
        let state = vec![0x5Au8; 4096];
        for seq in 1..=200u64 {
            s.write(seq * 100, &state).unwrap();
        }
        let after = s.disk_bytes().unwrap();
        s.compact().unwrap();
        let compacted = s.disk_bytes().unwrap();
        eprintln!(
            "redb file: empty {empty} B, after 200 x 4 KiB snapshots {after} B, compacted {compacted} B"
        );
        assert_eq!(s.seqs().unwrap(), vec![19_900, 20_000]);
        // Two 4 KiB snapshots must not cost more than 256 KiB of flash, however many were written.
        assert!(after <= 256 << 10, "redb file grew to {after} bytes");
        assert!(compacted <= after);
    }
}
