use super::*;
use crate::log::{FlushPolicy, Log, LogConfig};
use crate::segment::segment_name;
use crate::storage::MemStorage;

/// 12 records in 100-byte segments, versions alternating 1 and 2, plus a foreign file.
fn log_storage() -> MemStorage {
    let cfg = LogConfig {
        segment_bytes: 100,
        flush: FlushPolicy { max_records: 2, max_bytes: 1 << 20, max_value: 0 },
    };
    let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
    for seq in 1..=12u64 {
        log.append(1 + (seq % 2) as u8, format!("rec {seq:02}").as_bytes(), 0, false).unwrap();
    }
    let mut s = log.into_storage();
    s.write_atomic("snapshots.redb", b"not ours").unwrap();
    s
}

fn seqs(scan: &Scan, s: &MemStorage) -> Vec<u64> {
    let mut r = scan.reader(s, 1);
    let mut out = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        assert_eq!(rec.payload, format!("rec {:02}", rec.seq).as_bytes());
        out.push(rec.seq);
    }
    out
}

#[test]
fn clean_log_report_and_reader() {
    let s = log_storage();
    let scan = scan(&s).unwrap();
    assert!(scan.is_clean());
    assert_eq!((scan.records, scan.first_seq, scan.last_seq, scan.next_seq), (12, 1, 12, 13));
    assert_eq!(scan.versions, BTreeMap::from([(1, 6), (2, 6)]));
    assert_eq!(scan.foreign, vec!["snapshots.redb".to_string()]);
    // Frames are 14 bytes: 4 per 100-byte segment.
    assert_eq!(scan.segments.len(), 3);
    assert_eq!(scan.segments[1].base_seq, 5);
    assert_eq!(scan.segments[1].bytes, 32 + 4 * 14);
    assert!(scan.segments.iter().all(SegmentSummary::is_intact));
    let mut r = scan.reader(&s, 6);
    let mut got = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        got.push(rec.seq);
    }
    assert_eq!(got, (6..=12).collect::<Vec<_>>());
}

#[test]
fn empty_directory_is_an_empty_log() {
    let scan = scan(&MemStorage::new()).unwrap();
    assert_eq!((scan.records, scan.next_seq, scan.is_clean()), (0, 1, true));
}

#[test]
fn torn_tail_versus_bit_rot() {
    let mut s = log_storage();
    let last = segment_name(9);
    let len = s.size(&last).unwrap();
    s.truncate(&last, len - 3).unwrap();
    let scan1 = scan(&s).unwrap();
    let d = scan1.torn_tail().unwrap();
    assert_eq!(
        (d.from_seq, d.offset, d.reason, d.len, d.seqs()),
        (12, 32 + 3 * 14, DefectReason::TornTail, 11, 0)
    );
    assert!(scan1.is_torn_tail());
    assert_eq!(scan1.next_seq, 12, "a torn record's seq is reused: it was never durable");

    // Bit rot in the middle: the scan goes on past it.
    let mut s = log_storage();
    let first = segment_name(1);
    s.bytes_mut(&first).unwrap()[32 + 14] = 0x00; // magic of record 2
    let before = s.clone().list().unwrap();
    let scan2 = scan(&s).unwrap();
    assert_eq!(scan2.damage.len(), 1);
    let d = &scan2.damage[0];
    assert_eq!(
        (d.from_seq, d.to_seq, d.offset, d.len, d.reason, d.kind),
        (2, 3, 46, 14, DefectReason::BadMagic, DamageKind::Lost)
    );
    assert_eq!((scan2.records, scan2.next_seq), (11, 13));
    assert_eq!(seqs(&scan2, &s), (1..=12).filter(|&q| q != 2).collect::<Vec<_>>());
    assert_eq!(s.list().unwrap(), before, "scan never writes");

    // A corrupted length that runs past the end, with frames behind it.
    let mut s = log_storage();
    s.bytes_mut(&first).unwrap()[32 + 14 + 3] = 0xFF;
    let scan3 = scan(&s).unwrap();
    assert_eq!(scan3.damage[0].reason, DefectReason::BadLength);
    assert_eq!(scan3.records, 11);
}

#[test]
fn damage_spanning_many_records_is_skipped_by_solving_for_the_seq() {
    // 200 records in one segment; 100 of them zeroed in the middle.
    let cfg = LogConfig {
        segment_bytes: 1 << 20,
        flush: FlushPolicy { max_records: 1000, max_bytes: 1 << 20, max_value: 0 },
    };
    let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
    for seq in 1..=200u64 {
        log.append(1, format!("rec {seq:02}").as_bytes(), 0, false).unwrap();
    }
    log.flush().unwrap();
    let mut s = log.into_storage();
    let name = segment_name(1);
    let data = s.read(&name).unwrap();
    // Records 1..=99 are 14 bytes, from 100 on 15.
    let start = 32 + 50 * 14;
    let end = 32 + 99 * 14 + 51 * 15; // record 151 starts here
    s.bytes_mut(&name).unwrap()[start..end].fill(0);
    let scan = scan(&s).unwrap();
    assert_eq!(scan.damage.len(), 1);
    let d = &scan.damage[0];
    assert_eq!(
        (d.from_seq, d.to_seq, d.offset, d.len, d.exact),
        (51, 151, start as u64, (end - start) as u64, true)
    );
    assert_eq!(scan.records, 100);
    assert_eq!(seqs(&scan, &s), (1..=50).chain(151..=200).collect::<Vec<_>>());
    assert_eq!(data.len() as u64, scan.segments[0].file_bytes);
}

#[test]
fn segment_named_file_with_bad_magic_or_gap() {
    // A segment whose header lost its magic: its frames verify from the name's seq.
    let mut s = log_storage();
    s.bytes_mut(&segment_name(5)).unwrap()[0] = b'X';
    let scan1 = scan(&s).unwrap();
    let d = &scan1.damage[0];
    assert_eq!(
        (d.from_seq, d.to_seq, d.reason, d.kind, d.len),
        (5, 5, DefectReason::BadSegmentHeader, DamageKind::Lost, 32)
    );
    assert_eq!(scan1.records, 12);
    assert!(!scan1.segments[1].header_ok);

    // A segment far past the end: the seqs between are missing.
    let mut s = log_storage();
    s.write_atomic(&segment_name(100), &crate::segment::encode_header(100)).unwrap();
    let scan2 = scan(&s).unwrap();
    let d = &scan2.damage[0];
    assert_eq!(
        (d.from_seq, d.to_seq, d.reason, d.kind, d.segment.as_str()),
        (13, 100, DefectReason::SeqGap, DamageKind::Missing, segment_name(9).as_str())
    );
    assert_eq!(scan2.next_seq, 100);

    // A segment overlapping the seqs before it is foreign.
    let mut s = log_storage();
    s.write_atomic(&segment_name(7), &crate::segment::encode_header(7)).unwrap();
    let scan3 = scan(&s).unwrap();
    assert_eq!(scan3.damage[0].kind, DamageKind::Foreign);
    assert_eq!(scan3.damage[0].segment, segment_name(7));
    assert_eq!(scan3.records, 12);

    // Zeroed first header: the frames still verify with the seqs the file name gives.
    let mut s = log_storage();
    s.bytes_mut(&segment_name(1)).unwrap()[..32].fill(0);
    let scan4 = scan(&s).unwrap();
    assert_eq!((scan4.records, scan4.next_seq, scan4.damage.len()), (12, 13, 1));
}

#[test]
fn a_short_segment_file_is_foreign_not_a_torn_tail() {
    // Headers are written atomically: a short one is never a crash artifact, never held a record.
    for bytes in [&b"not ours"[..], &b""[..], &b"LMSG"[..]] {
        let mut s = log_storage();
        s.write_atomic(&segment_name(13), bytes).unwrap();
        let scan = scan(&s).unwrap();
        let d = &scan.damage[0];
        assert_eq!((d.kind, d.seqs()), (DamageKind::Foreign, 0), "{bytes:?}");
        assert!(!scan.is_torn_tail());
        assert_eq!(scan.next_seq, 13);
    }
}

#[test]
fn only_the_end_of_the_last_segment_can_be_a_torn_tail() {
    let mut s = log_storage();
    let last = segment_name(9);
    let len = s.size(&last).unwrap();
    s.truncate(&last, len - 3).unwrap();
    assert!(scan(&s).unwrap().is_torn_tail());
    // Garbage without a frame header in it, in the last segment: what a crash leaves.
    let mut s = log_storage();
    let len = s.size(&last).unwrap() as usize;
    s.bytes_mut(&last).unwrap()[len - 14..].fill(0xEE);
    let scan1 = scan(&s).unwrap();
    assert_eq!(scan1.damage[0].reason, DefectReason::BadMagic);
    assert!(scan1.is_torn_tail());
    // The same cut in a segment followed by another segment file is damage.
    let mut s = log_storage();
    let mid = segment_name(5);
    let len = s.size(&mid).unwrap();
    s.truncate(&mid, len - 3).unwrap();
    s.remove(&last).unwrap();
    s.write_atomic(&last, b"garbage").unwrap();
    let scan2 = scan(&s).unwrap();
    let d = &scan2.damage[0];
    assert_eq!((d.from_seq, d.reason, d.kind), (8, DefectReason::BadLength, DamageKind::Lost));
    assert!(!scan2.is_torn_tail());
    assert!(!self::scan(&MemStorage::new()).unwrap().is_torn_tail());
}

/// The recovery scanner on a flipped payload byte (a bad CRC) in every position of every
/// frame: exactly that record is lost, every other one is found.
#[test]
fn a_bad_crc_anywhere_loses_exactly_its_record() {
    let clean = log_storage();
    for (name, base) in [(segment_name(1), 1u64), (segment_name(5), 5), (segment_name(9), 9)] {
        let data = clean.read(&name).unwrap();
        for off in 32..data.len() {
            let mut s = clean.clone();
            s.bytes_mut(&name).unwrap()[off] ^= 0x20;
            let scan = scan(&s).unwrap();
            let record = base + ((off - 32) / 14) as u64;
            let d = &scan.damage[0];
            assert_eq!((scan.damage.len(), d.from_seq, d.to_seq), (1, record, record + 1), "{name} @{off}");
            assert_ne!(d.kind, DamageKind::TornTail, "{name} @{off}");
            assert_eq!(seqs(&scan, &s), (1..=12).filter(|&q| q != record).collect::<Vec<_>>());
        }
    }
}

#[test]
fn reader_reports_a_file_changed_after_the_scan() {
    let mut s = log_storage();
    let scan = scan(&s).unwrap();
    s.bytes_mut(&segment_name(1)).unwrap()[40] ^= 1;
    let mut r = scan.reader(&s, 1);
    assert!(matches!(r.next(), Err(ReadError::Frame { seq: 1, .. })));
}

/// Real logs, clean and damaged, as the scanner fuzzer's seeds (`fuzz/seeds/flash_scan/`: per
/// file, the step of its base seq from the previous one, its length as u16 LE, its bytes).
/// Regenerate with `LASTMILE_WRITE_FUZZ_SEEDS=1 cargo test -p flash-layout fuzz_seeds`;
/// without it, the test checks the seeds on disk are these.
#[test]
fn fuzz_seeds() {
    let encode = |s: &MemStorage| {
        let mut out = Vec::new();
        let mut prev = 1u64;
        for name in s.list().unwrap().iter().filter(|n| n.starts_with("seg-")) {
            let base = crate::segment::parse_segment_name(name).unwrap();
            let data = s.read(name).unwrap();
            out.push((base - prev) as u8);
            out.extend_from_slice(&(data.len() as u16).to_le_bytes());
            out.extend_from_slice(&data);
            prev = base;
        }
        out
    };
    let clean = log_storage();
    let mut flipped = log_storage();
    flipped.bytes_mut(&segment_name(5)).unwrap()[40] ^= 0x08;
    let mut torn = log_storage();
    let len = torn.size(&segment_name(9)).unwrap();
    torn.truncate(&segment_name(9), len - 5).unwrap();
    let mut zeroed = log_storage();
    zeroed.bytes_mut(&segment_name(1)).unwrap()[..32].fill(0);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/flash_scan");
    for (name, s) in [("clean", clean), ("flipped", flipped), ("torn", torn), ("zeroed-header", zeroed)] {
        let path = dir.join(format!("seed-{name}"));
        let seed = encode(&s);
        if std::env::var_os("LASTMILE_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::write(&path, &seed).unwrap();
        }
        assert_eq!(std::fs::read(&path).ok(), Some(seed), "{}: stale seed", path.display());
    }
}
