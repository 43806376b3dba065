use super::*;
use crate::segment::segment_name;
use crate::storage::{CrashMode, Fault, MemStorage};

fn config(max_records: usize, segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, flush: FlushPolicy { max_records, max_bytes: 1 << 20, max_value: 1000 } }
}

fn payload(seq: u64) -> Vec<u8> {
    format!("record {seq}").into_bytes()
}

fn records<S: Storage>(log: &Log<S>, from: u64) -> Vec<(u64, u8, Vec<u8>)> {
    let mut r = log.read_from(from);
    let mut out = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        out.push((rec.seq, rec.version, rec.payload.to_vec()));
    }
    out
}

fn filled(n: u64, cfg: LogConfig) -> Log<MemStorage> {
    let (mut log, rec) = Log::open(MemStorage::new(), cfg).unwrap();
    assert_eq!(rec, Recovery { records: 0, cut: None, restarted_after_snapshot: None });
    for seq in 1..=n {
        assert_eq!(log.append(1, &payload(seq), 0, false).unwrap().seq, seq);
    }
    log.flush().unwrap();
    log
}

#[test]
fn group_commit_by_count_value_and_urgency() {
    let (mut log, _) = Log::open(MemStorage::new(), config(3, 1 << 20)).unwrap();
    assert_eq!(log.append(1, b"a", 0, false).unwrap(), Appended { seq: 1, flushed: false });
    assert_eq!(log.append(1, b"b", 0, false).unwrap(), Appended { seq: 2, flushed: false });
    assert_eq!((log.durable_seq(), log.last_seq(), log.pending_records()), (0, 2, 2));
    assert_eq!(log.storage().syncs(), 0);
    assert_eq!(log.append(1, b"c", 0, false).unwrap(), Appended { seq: 3, flushed: true });
    assert_eq!(log.durable_seq(), 3);
    assert_eq!(log.storage().syncs(), 1, "one fsync for the batch of 3");
    // Value: 600 + 600 > max_value 1000.
    assert!(!log.append(1, b"d", 600, false).unwrap().flushed);
    assert_eq!(log.pending_value(), 600);
    assert!(log.append(1, b"e", 600, false).unwrap().flushed);
    assert_eq!(log.pending_value(), 0);
    assert!(log.append(2, b"f", 0, true).unwrap().flushed);
    assert_eq!(log.durable_seq(), 6);
    assert_eq!(records(&log, 5), vec![(5, 1, b"e".to_vec()), (6, 2, b"f".to_vec())]);
}

#[test]
fn group_commit_by_bytes() {
    let mut cfg = config(1000, 1 << 20);
    cfg.flush.max_bytes = 30;
    let (mut log, _) = Log::open(MemStorage::new(), cfg).unwrap();
    assert!(!log.append(1, &[0; 10], 0, false).unwrap().flushed); // 18 bytes pending
    assert!(log.append(1, &[0; 10], 0, false).unwrap().flushed); // 36 >= 30
}

#[test]
fn invalid_records_buffer_nothing() {
    let (mut log, _) = Log::open(MemStorage::new(), config(10, 1 << 20)).unwrap();
    assert!(matches!(log.append(0, b"x", 0, false), Err(LogError::Record(FrameError::VersionZero))));
    let big = vec![0; 70_000];
    assert!(matches!(log.append(1, &big, 0, true), Err(LogError::Record(FrameError::PayloadTooLarge(_)))));
    assert_eq!((log.last_seq(), log.pending_bytes()), (0, 0));
}

#[test]
fn segments_roll_and_reopen_continues() {
    // Frames of "record N" are 16-17 bytes; 100-byte segments hold 4 after the header.
    let log = filled(20, config(3, 100));
    let segs = log.segments();
    assert!(segs.len() >= 5, "{segs:?}");
    for w in segs.windows(2) {
        assert_eq!(w[0].last_seq + 1, w[1].base_seq);
        assert!(w[0].bytes <= 100);
    }
    let storage = log.into_storage();
    let (mut log, rec) = Log::open(storage, config(3, 100)).unwrap();
    assert_eq!(rec, Recovery { records: 20, cut: None, restarted_after_snapshot: None });
    assert_eq!(log.append(1, &payload(21), 0, true).unwrap().seq, 21);
    let all = records(&log, 1);
    assert_eq!(all.len(), 21);
    assert!(all.iter().all(|(seq, _, p)| *p == payload(*seq)));
}

#[test]
fn oversized_frame_gets_its_own_segment() {
    let (mut log, _) = Log::open(MemStorage::new(), config(1, 64)).unwrap();
    log.append(1, &[1; 100], 0, false).unwrap();
    log.append(1, &[2; 100], 0, false).unwrap();
    assert_eq!(log.segments().len(), 2);
    assert_eq!(records(&log, 2)[0].2, vec![2; 100]);
}

/// A failed write or fsync keeps the batch, claims nothing, and the retry leaves no
/// duplicate frame (the partial write is truncated first).
#[test]
fn failed_flush_keeps_batch_and_retries_without_duplicates() {
    for fault in [Fault::PartialAppend { written: 20 }, Fault::Sync, Fault::NextOp] {
        let mut log = filled(2, config(100, 1 << 20));
        log.append(1, &payload(3), 0, false).unwrap();
        log.append(1, &payload(4), 0, false).unwrap();
        log.storage_mut().inject(fault);
        assert!(log.flush().is_err(), "{fault:?}");
        assert_eq!((log.durable_seq(), log.pending_records()), (2, 2));
        // An urgent append during the outage reports the error but keeps the record.
        log.storage_mut().inject(Fault::NextOp);
        assert!(log.append(1, &payload(5), 0, true).is_err());
        assert_eq!(log.last_seq(), 5);
        assert_eq!(log.flush().unwrap(), 5);
        let storage = log.into_storage();
        let (log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
        assert_eq!(rec.cut, None, "{fault:?}");
        let got: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5], "{fault:?}");
    }
}

#[test]
fn torn_tail_is_cut_without_quarantine() {
    let mut log = filled(5, config(100, 1 << 20));
    log.append(1, &payload(6), 0, false).unwrap();
    log.append(1, &payload(7), 0, false).unwrap();
    // Write the batch, then crash with the last frame torn: simulate by a partial append.
    log.storage_mut().inject(Fault::PartialAppend { written: 20 });
    assert!(log.flush().is_err());
    let mut storage = log.into_storage();
    storage.crash(0, CrashMode::KeepAll);
    let (log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
    let cut = rec.cut.unwrap();
    assert_eq!(
        (rec.records, cut.from_seq, cut.reason, cut.quarantined),
        (6, 7, DefectReason::TornTail, None)
    );
    assert_eq!(log.durable_seq(), 6);
    assert!(log.storage().list().unwrap().iter().all(|n| !is_quarantine_name(n)));
}

#[test]
fn flipped_byte_mid_log_is_quarantined_then_cut() {
    let mut log = filled(10, config(100, 1 << 20));
    let name = segment_name(1);
    // Record 4 starts after the header and three frames of "record N" (8 + 8 bytes each).
    let off = 32 + 3 * 16 + 10;
    log.storage_mut().bytes_mut(&name).unwrap()[off] ^= 0x01;
    let damaged = log.storage().read(&name).unwrap();
    let storage = log.into_storage();
    let (log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
    let cut = rec.cut.unwrap();
    assert_eq!((rec.records, cut.from_seq, cut.reason), (3, 4, DefectReason::BadCrc));
    assert_eq!(cut.records_cut_estimate, 7);
    let q = cut.quarantined.unwrap();
    assert_eq!(q, "quarantine-0000000000000004.bin");
    let qb = log.storage().read(&q).unwrap();
    // magic, then one piece: name length, name, offset, length, the bytes from record 4 on.
    let cut_bytes = &damaged[32 + 3 * 16..];
    assert_eq!(&qb[..4], b"LMQ1");
    assert_eq!(&qb[4..6], &24u16.to_le_bytes());
    assert_eq!(&qb[6..30], name.as_bytes());
    assert_eq!(&qb[30..38], &80u64.to_le_bytes());
    assert_eq!(&qb[38..46], &(cut_bytes.len() as u64).to_le_bytes());
    assert_eq!(&qb[46..], cut_bytes);
    assert_eq!(log.last_seq(), 3);
    assert_eq!(records(&log, 1).len(), 3);
}

#[test]
fn duplicated_segment_header_is_detected_and_cut() {
    let log = filled(20, config(100, 100));
    let segs = log.segments();
    let mut storage = log.into_storage();
    // Copy segment 0's header over segment 2's.
    let h0 = storage.read(&segs[0].name).unwrap()[..32].to_vec();
    storage.bytes_mut(&segs[2].name).unwrap()[..32].copy_from_slice(&h0);
    let (log, rec) = Log::open(storage, config(3, 100)).unwrap();
    let cut = rec.cut.unwrap();
    assert_eq!(cut.reason, DefectReason::BadSegmentHeader);
    assert_eq!(cut.from_seq, segs[2].base_seq);
    assert!(cut.quarantined.is_some(), "later segments held valid frames");
    assert_eq!(log.last_seq(), segs[1].last_seq);
    assert_eq!(log.segments().len(), 2);
}

#[test]
fn missing_middle_segment_is_a_seq_gap() {
    let log = filled(20, config(100, 100));
    let segs = log.segments();
    let mut storage = log.into_storage();
    storage.remove(&segs[1].name).unwrap();
    let (log, rec) = Log::open(storage, config(3, 100)).unwrap();
    let cut = rec.cut.unwrap();
    assert_eq!((cut.reason, cut.from_seq), (DefectReason::SeqGap, segs[1].base_seq));
    assert_eq!(log.last_seq(), segs[0].last_seq);
}

#[test]
fn retention_and_snapshot_coverage_bound_removal() {
    let mut log = filled(20, config(100, 100));
    let segs = log.segments();
    let n = segs.len();
    // Nothing covered: nothing removed.
    assert_eq!(log.remove_segments_before(1, Retention::default()).unwrap(), Removed::default());
    // Covered up to the end of segment 1, but the window wants all but one segment's records.
    let window = Retention { min_records: 20 - (segs[0].last_seq - segs[0].base_seq + 1), min_bytes: 0 };
    let removed = log.remove_segments_before(segs[1].last_seq + 1, window).unwrap();
    assert_eq!(removed.segments, vec![segs[0].name.clone()]);
    // Everything covered, no window: all but the active segment go.
    let removed = log.remove_segments_before(u64::MAX, Retention::default()).unwrap();
    assert_eq!(removed.segments.len(), n - 2);
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.disk_bytes(), log.segments()[0].bytes);
    // The log reopens starting mid-way and keeps appending.
    let storage = log.into_storage();
    let (mut log, rec) = Log::open(storage, config(100, 100)).unwrap();
    assert_eq!(rec.cut, None);
    assert_eq!(log.first_seq(), segs[n - 1].base_seq);
    assert_eq!(log.append(1, b"x", 0, true).unwrap().seq, 21);
}

#[test]
fn bytes_window_keeps_segments() {
    let mut log = filled(20, config(100, 100));
    let total = log.disk_bytes();
    let removed =
        log.remove_segments_before(u64::MAX, Retention { min_records: 0, min_bytes: total }).unwrap();
    assert!(removed.segments.is_empty());
}

/// The pieces of quarantine file `name`, owned.
fn pieces(s: &MemStorage, name: &str) -> Vec<(String, u64, Vec<u8>)> {
    let data = s.read(name).unwrap();
    quarantine_pieces(&data)
        .expect("well-formed quarantine file")
        .into_iter()
        .map(|p| (p.name.to_string(), p.offset, p.bytes.to_vec()))
        .collect()
}

/// A segment-named file that is not a segment (short or not, with or without a magic prefix),
/// with nothing valid after it, is not a torn tail: segment headers are written atomically.
/// Recovery removes it only after copying it to quarantine.
#[test]
fn a_bad_or_short_segment_header_is_quarantined_even_with_nothing_after_it() {
    let stray = segment_name(6);
    for bytes in [
        &b"hello"[..],    // short, not the magic
        &b""[..],         // empty
        &b"LMSG\x01"[..], // short, a magic prefix
        &[b'x'; 64][..],  // long, not the magic
        &[0u8; 40][..],   // zeros
    ] {
        let mut storage = filled(5, config(100, 1 << 20)).into_storage();
        storage.write_atomic(&stray, bytes).unwrap();
        let (log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
        let cut = rec.cut.unwrap();
        assert_eq!(
            (cut.reason, cut.from_seq, cut.bytes),
            (DefectReason::BadSegmentHeader, 6, bytes.len() as u64),
            "{bytes:?}"
        );
        let q = cut.quarantined.expect("the foreign bytes are kept");
        assert_eq!(q, quarantine_name(6, 0));
        assert_eq!(pieces(log.storage(), &q), vec![(stray.clone(), 0, bytes.to_vec())]);
        assert!(!log.storage().list().unwrap().contains(&stray));
        assert_eq!((rec.records, log.last_seq()), (5, 5));
    }
}

/// A frame cut short in a segment that is not the last one is not a torn tail either: the
/// later segment was started only after this one was synced.
#[test]
fn a_short_frame_before_a_later_segment_file_is_quarantined() {
    let log = filled(20, config(100, 100));
    let segs = log.segments();
    let mut storage = log.into_storage();
    // Segment 0 loses its last 5 bytes; segment 1 gets a garbage header; the rest goes.
    let s0 = storage.read(&segs[0].name).unwrap();
    storage.truncate(&segs[0].name, s0.len() as u64 - 5).unwrap();
    storage.bytes_mut(&segs[1].name).unwrap()[..32].fill(b'x');
    for s in &segs[2..] {
        storage.remove(&s.name).unwrap();
    }
    let s1 = storage.read(&segs[1].name).unwrap();
    let (log, rec) = Log::open(storage, config(3, 100)).unwrap();
    let cut = rec.cut.unwrap();
    assert_eq!((cut.reason, cut.from_seq), (DefectReason::BadLength, segs[0].last_seq));
    let q = cut.quarantined.expect("the cut bytes are kept");
    let last_frame = frame_start(&s0, segs[0].last_seq - segs[0].base_seq);
    assert_eq!(
        pieces(log.storage(), &q),
        vec![
            (segs[0].name.clone(), last_frame, s0[last_frame as usize..s0.len() - 5].to_vec()),
            (segs[1].name.clone(), 0, s1),
        ]
    );
    assert_eq!(log.last_seq(), segs[0].last_seq - 1);
}

/// Offset of frame `index` (from 0) in segment bytes.
fn frame_start(seg: &[u8], index: u64) -> u64 {
    let mut at = 32usize;
    for _ in 0..index {
        at += 8 + u16::from_le_bytes([seg[at + 2], seg[at + 3]]) as usize;
    }
    at as u64
}
