//! A directory of named files behind a small trait, with a real and an in-memory twin
//! (as raft-rs `Storage`/`MemStorage` and TigerBeetle's testing storage).
//!
//! Durability contract, which both implementations follow and the log relies on:
//! - `append` is volatile until `sync` of that file returns `Ok`.
//! - `create`, `truncate`, `remove` and `write_atomic` are durable when they return `Ok`.
//! - `write_atomic` is all-or-nothing: after a crash the file holds the old or the new bytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A flat directory of named files. Names are plain file names (no `/`).
pub trait Storage {
    /// File names, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    fn size(&self, name: &str) -> io::Result<u64>;
    /// Creates a new empty file (error if it exists); the directory entry is durable.
    fn create(&mut self, name: &str) -> io::Result<()>;
    /// Appends to an existing file; not durable until `sync`.
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes every byte appended so far durable (fdatasync).
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Cuts a file to `len` bytes, durably. `len` past the end is an error.
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Removes a file, durably.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Replaces (or creates) a file with `bytes`, atomically and durably. On error nothing is
    /// left behind: the old file (if any) is unchanged and no temporary file remains.
    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// How to name file `name` in a message for the operator (a real storage gives the path).
    fn describe(&self, name: &str) -> String {
        name.to_string()
    }
}

/// [`Storage`] on a real directory.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
    /// Open append handles, so a flush costs one write and one fdatasync, not an open too.
    handles: HashMap<String, File>,
    syncs: u64,
}

impl DirStorage {
    /// Opens (creating if needed) the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let dir = path.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir, handles: HashMap::new(), syncs: 0 })
    }

    /// Opens the existing directory `path`, never creating it: for readers that must not
    /// change what they inspect. Errors: `NotFound` if it does not exist, `NotADirectory` if it
    /// is something else.
    pub fn open_existing(path: impl AsRef<Path>) -> io::Result<Self> {
        let dir = path.as_ref().to_path_buf();
        if !fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self { dir, handles: HashMap::new(), syncs: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// fsync/fdatasync calls made so far (file and directory), for benchmarks.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    fn file(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad file name {name:?}")));
        }
        Ok(self.dir.join(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        self.syncs += 1;
        File::open(&self.dir)?.sync_all()
    }

    fn handle(&mut self, name: &str) -> io::Result<&mut File> {
        if !self.handles.contains_key(name) {
            let f = OpenOptions::new().append(true).open(self.file(name)?)?;
            self.handles.insert(name.to_string(), f);
        }
        // Inserted just above if it was missing.
        Ok(self.handles.get_mut(name).expect("handle present"))
    }
}

impl Storage for DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.file(name)?)
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.file(name)?)?.len())
    }

    fn create(&mut self, name: &str) -> io::Result<()> {
        let f = OpenOptions::new().append(true).create_new(true).open(self.file(name)?)?;
        self.handles.insert(name.to_string(), f);
        self.sync_dir()
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.handle(name)?.write_all(bytes)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.syncs += 1;
        self.handle(name)?.sync_data()
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let path = self.file(name)?;
        let f = OpenOptions::new().write(true).open(path)?;
        if len > f.metadata()?.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "truncate past end"));
        }
        f.set_len(len)?;
        self.syncs += 1;
        f.sync_all()
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.handles.remove(name);
        fs::remove_file(self.file(name)?)?;
        self.sync_dir()
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.file(name)?;
        let tmp = self.file(&format!("{name}.tmp"))?;
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            self.syncs += 1;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            // A full disk must not also be left holding half a temporary file.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // A cached append handle points at the replaced inode.
        self.handles.remove(name);
        self.sync_dir()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// What happens to unsynced appended bytes at a [`MemStorage::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// All unsynced bytes reached flash.
    KeepAll,
    /// Unsynced bytes are cut at a random byte.
    Torn,
    /// No unsynced byte reached flash.
    Lost,
    /// Unsynced bytes are kept up to a random point, then garbage to the end of what was written.
    Garbage,
    /// One of the above, chosen per file.
    Any,
}

/// Which operation the next injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next mutating operation fails, doing nothing.
    NextOp,
    /// The next `append` writes only its first `written` bytes, then fails.
    PartialAppend { written: u64 },
    /// The next `sync` fails (bytes stay volatile).
    Sync,
    /// The next `sync` reports success but its bytes are lost at the next crash, even if a
    /// later sync of the same file succeeds (the fsyncgate failure): they read back as zeros.
    LostSync,
}

#[derive(Debug, Clone, Default)]
struct MemFile {
    /// What reads see.
    data: Vec<u8>,
    /// Bytes `data[..durable]` survive a crash (except the lost range).
    durable: u64,
    /// Bytes "synced" by a lying fsync: zeroed at the next crash.
    lost: Option<(u64, u64)>,
}

/// In-memory [`Storage`] that tracks durable and volatile bytes, can crash, and can run out of
/// space like a small filesystem.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    files: BTreeMap<String, MemFile>,
    fault: Option<Fault>,
    syncs: u64,
    /// Total bytes the files may hold (`None`: unlimited). Past it, `append` writes what fits
    /// and fails, `write_atomic` and `create` fail and change nothing: ENOSPC.
    capacity: Option<u64>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms a fault for the next matching operation.
    pub fn inject(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Whether an injected fault is still waiting for its operation.
    pub fn fault_pending(&self) -> bool {
        self.fault.is_some()
    }

    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Limits the total size of all files (a full filesystem); `None` lifts the limit. Files
    /// already past it keep their bytes; only growth fails.
    pub fn set_capacity(&mut self, capacity: Option<u64>) {
        self.capacity = capacity;
    }

    /// Total bytes held by all files.
    pub fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.data.len() as u64).sum()
    }

    /// Bytes that may still be written before the filesystem is full.
    fn free_bytes(&self) -> u64 {
        self.capacity.map_or(u64::MAX, |cap| cap.saturating_sub(self.used_bytes()))
    }

    /// Bytes of `name` that would survive a crash in which no unsynced byte persists.
    pub fn durable_len(&self, name: &str) -> Option<u64> {
        self.files.get(name).map(|f| f.durable)
    }

    /// Simulates a power cut: decides, per file and seeded by `rng_seed`, what happened to
    /// unsynced bytes; zeroes the ranges of lying syncs. Afterwards every byte is durable.
    pub fn crash(&mut self, rng_seed: u64, mode: CrashMode) {
        let mut rng = SplitMix64(rng_seed);
        self.fault = None;
        for file in self.files.values_mut() {
            let durable = file.durable as usize; // <= data.len(), which fits in memory
            let unsynced = file.data.len() - durable;
            let mode = match mode {
                CrashMode::Any => [CrashMode::KeepAll, CrashMode::Torn, CrashMode::Lost, CrashMode::Garbage]
                    [(rng.next() % 4) as usize],
                m => m,
            };
            let cut = rng.below(unsynced as u64 + 1) as usize;
            match mode {
                CrashMode::KeepAll | CrashMode::Any => {}
                CrashMode::Torn => file.data.truncate(durable + cut),
                CrashMode::Lost => file.data.truncate(durable),
                CrashMode::Garbage => {
                    for b in &mut file.data[durable + cut..] {
                        *b = rng.next() as u8;
                    }
                }
            }
            if let Some((from, to)) = file.lost.take() {
                let len = file.data.len() as u64;
                for b in &mut file.data[from.min(len) as usize..to.min(len) as usize] {
                    *b = 0;
                }
            }
            file.durable = file.data.len() as u64;
        }
    }

    /// Direct access to a file's bytes, to damage them in tests (bit rot, copied headers).
    /// Bytes changed here are durable.
    pub fn bytes_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.files.get_mut(name).map(|f| {
            f.durable = f.durable.min(f.data.len() as u64);
            &mut f.data
        })
    }

    fn take_fault(&mut self, matches: impl Fn(Fault) -> bool) -> Option<Fault> {
        match self.fault {
            Some(f) if matches(f) => self.fault.take(),
            _ => None,
        }
    }

    fn fail_if_next_op(&mut self) -> io::Result<()> {
        match self.take_fault(|f| f == Fault::NextOp) {
            Some(_) => Err(io::Error::other("injected fault")),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> io::Result<&MemFile> {
        self.files.get(name).ok_or_else(|| not_found(name))
    }

    fn get_mut(&mut self, name: &str) -> io::Result<&mut MemFile> {
        self.files.get_mut(name).ok_or_else(|| not_found(name))
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28) // ENOSPC
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name:?}"))
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.files.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(self.get(name)?.data.clone())
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        Ok(self.get(name)?.data.len() as u64)
    }

    fn create(&mut self, name: &str) -> io::Result<()> {
        self.fail_if_next_op()?;
        if self.files.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_string()));
        }
        self.files.insert(name.to_string(), MemFile::default());
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.fail_if_next_op()?;
        let partial = self.take_fault(|f| matches!(f, Fault::PartialAppend { .. }));
        let free = self.free_bytes();
        let file = self.get_mut(name)?;
        if let Some(Fault::PartialAppend { written }) = partial {
            let n = (written.min(bytes.len() as u64).min(free)) as usize;
            file.data.extend_from_slice(&bytes[..n]);
            return Err(io::Error::other("injected partial write"));
        }
        if (bytes.len() as u64) > free {
            // What a full filesystem does: the write stops where the space ends.
            file.data.extend_from_slice(&bytes[..free as usize]);
            return Err(no_space());
        }
        file.data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.fail_if_next_op()?;
        let fault = self.take_fault(|f| matches!(f, Fault::Sync | Fault::LostSync));
        self.syncs += 1;
        let file = self.get_mut(name)?;
        let len = file.data.len() as u64;
        match fault {
            Some(Fault::Sync) => Err(io::Error::other("injected fsync failure")),
            Some(Fault::LostSync) => {
                let from = file.durable;
                file.lost = Some(match file.lost {
                    Some((a, b)) => (a.min(from), b.max(len)),
                    None => (from, len),
                });
                file.durable = len;
                Ok(())
            }
            _ => {
                file.durable = len;
                Ok(())
            }
        }
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.fail_if_next_op()?;
        let file = self.get_mut(name)?;
        if len > file.data.len() as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "truncate past end"));
        }
        file.data.truncate(len as usize);
        file.durable = file.durable.min(len);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.fail_if_next_op()?;
        self.files.remove(name).map(|_| ()).ok_or_else(|| not_found(name))
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.fail_if_next_op()?;
        // The new file is written beside the old one before the rename.
        if (bytes.len() as u64) > self.free_bytes() {
            return Err(no_space());
        }
        let file = MemFile { data: bytes.to_vec(), durable: bytes.len() as u64, lost: None };
        self.files.insert(name.to_string(), file);
        Ok(())
    }
}

/// SplitMix64: a tiny seeded generator, so crashes replay exactly from their seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `0..n` (`n >= 1`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &mut impl Storage) {
        s.create("a").unwrap();
        assert_eq!(s.create("a").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        s.append("a", b"hello ").unwrap();
        s.append("a", b"world").unwrap();
        s.sync("a").unwrap();
        assert_eq!(s.read("a").unwrap(), b"hello world");
        assert_eq!(s.size("a").unwrap(), 11);
        s.truncate("a", 5).unwrap();
        assert!(s.truncate("a", 6).is_err());
        s.append("a", b"!").unwrap();
        assert_eq!(s.read("a").unwrap(), b"hello!");
        s.write_atomic("b", b"one").unwrap();
        s.write_atomic("b", b"two").unwrap();
        s.append("b", b"+").unwrap();
        assert_eq!(s.read("b").unwrap(), b"two+");
        assert_eq!(s.list().unwrap(), vec!["a".to_string(), "b".to_string()]);
        s.remove("a").unwrap();
        assert!(s.remove("a").is_err());
        assert!(s.read("a").is_err());
        assert_eq!(s.list().unwrap(), vec!["b".to_string()]);
    }

    #[test]
    fn dir_storage_ops() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DirStorage::open(dir.path()).unwrap();
        exercise(&mut s);
        assert!(s.syncs() >= 5);
        assert!(s.read("../x").is_err());
    }

    #[test]
    fn dir_storage_open_existing_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = DirStorage::open_existing(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!missing.exists());
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = DirStorage::open_existing(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        let mut s = DirStorage::open_existing(dir.path()).unwrap();
        assert_eq!(s.path(), dir.path());
        s.write_atomic("a", b"1").unwrap();
        assert_eq!(s.list().unwrap(), vec!["a".to_string(), "file".to_string()]);
    }

    #[test]
    fn mem_storage_ops() {
        exercise(&mut MemStorage::new());
    }

    fn with_unsynced() -> MemStorage {
        let mut s = MemStorage::new();
        s.create("f").unwrap();
        s.append("f", b"durable").unwrap();
        s.sync("f").unwrap();
        s.append("f", b"0123456789").unwrap();
        s
    }

    #[test]
    fn crash_modes() {
        let mut s = with_unsynced();
        s.crash(1, CrashMode::KeepAll);
        assert_eq!(s.read("f").unwrap(), b"durable0123456789");

        let mut s = with_unsynced();
        s.crash(1, CrashMode::Lost);
        assert_eq!(s.read("f").unwrap(), b"durable");

        let mut torn_lens = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let mut s = with_unsynced();
            s.crash(seed, CrashMode::Torn);
            let d = s.read("f").unwrap();
            assert!(b"durable0123456789".starts_with(&d) && d.len() >= 7);
            torn_lens.insert(d.len());
            // Deterministic from the seed.
            let mut again = with_unsynced();
            again.crash(seed, CrashMode::Torn);
            assert_eq!(again.read("f").unwrap(), d);
        }
        assert!(torn_lens.len() > 5, "torn points vary with the seed");

        let mut garbled = false;
        for seed in 0..16 {
            let mut s = with_unsynced();
            s.crash(seed, CrashMode::Garbage);
            let d = s.read("f").unwrap();
            assert_eq!(d.len(), 17);
            assert_eq!(&d[..7], b"durable");
            garbled |= d != b"durable0123456789";
        }
        assert!(garbled);
    }

    #[test]
    fn lost_sync_zeroes_at_crash_even_after_a_good_sync() {
        let mut s = with_unsynced();
        s.inject(Fault::LostSync);
        s.sync("f").unwrap();
        s.append("f", b"ab").unwrap();
        s.sync("f").unwrap();
        s.crash(3, CrashMode::Lost);
        let mut want = b"durable".to_vec();
        want.extend_from_slice(&[0; 10]);
        want.extend_from_slice(b"ab");
        assert_eq!(s.read("f").unwrap(), want);
    }

    #[test]
    fn injected_faults() {
        let mut s = with_unsynced();
        s.inject(Fault::NextOp);
        assert!(s.append("f", b"x").is_err());
        assert_eq!(s.size("f").unwrap(), 17);
        s.inject(Fault::PartialAppend { written: 2 });
        assert!(s.append("f", b"xyz").is_err());
        assert_eq!(s.read("f").unwrap(), b"durable0123456789xy");
        s.inject(Fault::Sync);
        assert!(s.sync("f").is_err());
        assert_eq!(s.durable_len("f"), Some(7));
        s.sync("f").unwrap();
        assert_eq!(s.durable_len("f"), Some(19));
        assert!(!s.fault_pending());
    }
}
