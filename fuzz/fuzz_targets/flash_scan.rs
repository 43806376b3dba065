//! The flash-layout scanner and recovery on an arbitrary directory: the input is cut into
//! files named like segments (and a quarantine file). The scan must not panic; its reader
//! must read every record it counted; recovery (plan, then carry it out) must converge: the
//! directory then scans clean, holds every record the scan found with the same bytes, and a
//! second recovery changes nothing.

#![no_main]

use flash_layout::segment::segment_name;
use flash_layout::{scan, Log, LogConfig, MemStorage, Storage};
use libfuzzer_sys::fuzz_target;

fn records(s: &MemStorage) -> Vec<(u64, u8, Vec<u8>)> {
    let found = scan(s).expect("memory storage reads");
    let mut r = found.reader(s, 1);
    let mut out = Vec::new();
    while let Some(rec) = r.next().expect("the reader reads what the scan found") {
        out.push((rec.seq, rec.version, rec.payload.to_vec()));
    }
    assert_eq!(out.len() as u64, found.records);
    out
}

fuzz_target!(|bytes: &[u8]| {
    // Each file: how far its base seq is past the previous one (a byte), its length (u16 LE),
    // then its bytes (`flash_layout::scan::tests::fuzz_seeds` writes real logs this way).
    let mut storage = MemStorage::new();
    let mut rest = bytes;
    let mut base = 1u64;
    while let [step, l0, l1, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        base += u64::from(*step);
        let _ = storage.write_atomic(&segment_name(base), &tail[..n]);
        rest = &tail[n..];
    }
    let found = records(&storage);
    let Ok((log, _)) = Log::open(storage, LogConfig::default()) else { return };
    let storage = log.into_storage();
    let again = scan(&storage).expect("scans");
    assert!(again.is_clean(), "recovery converges: {:?}", again.damage);
    assert_eq!(records(&storage), found, "every record the scan found is kept, byte for byte");
    let before = storage.clone();
    let (log, recovery) = Log::open(storage, LogConfig::default()).expect("a clean log opens");
    assert!(recovery.damage.is_empty());
    assert_eq!(records(log.storage()), records(&before));
});
