use super::*;
use crate::scan::DefectReason;
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
    assert_eq!(rec, clean_open(0));
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
    assert!(matches!(log.append(0, b"x", 0, false), Err(AppendError::Invalid(FrameError::VersionZero))));
    let big = vec![0; 70_000];
    let err = log.append(1, &big, 0, true).unwrap_err();
    assert!(matches!(err, AppendError::Invalid(FrameError::PayloadTooLarge(_))), "{err:?}");
    assert_eq!(err.taken_seq(), None);
    assert_eq!((log.last_seq(), log.pending_bytes()), (0, 0));
}

#[test]
fn push_buffers_and_says_when_a_flush_is_due() {
    let (mut log, _) = Log::open(MemStorage::new(), config(2, 1 << 20)).unwrap();
    assert_eq!(log.push(1, b"a", 0, false).unwrap(), Pushed { seq: 1, flush_due: false });
    assert_eq!(log.push(1, b"b", 0, false).unwrap(), Pushed { seq: 2, flush_due: true });
    assert_eq!(log.push(1, b"c", 0, true).unwrap(), Pushed { seq: 3, flush_due: true });
    assert_eq!((log.durable_seq(), log.storage().syncs()), (0, 0), "push never writes");
    assert_eq!(log.flush().unwrap(), 3);
}

fn clean_open(n: u64) -> Recovery {
    Recovery {
        records: n,
        damage: vec![],
        quarantined: None,
        holes: vec![],
        continued_after_snapshot: None,
        next_seq: n + 1,
        snapshots_set_aside: None,
    }
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
    assert_eq!(rec, clean_open(20));
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
/// duplicate frame (the partial write is truncated first). An append whose flush fails says
/// that the record was taken, so the caller does not append it again.
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
        let err = log.append(1, &payload(5), 0, true).unwrap_err();
        assert!(matches!(err, AppendError::Unflushed { seq: 5, .. }), "{err:?}");
        assert_eq!(err.taken_seq(), Some(5));
        assert_eq!(log.last_seq(), 5);
        assert_eq!(log.flush().unwrap(), 5);
        let storage = log.into_storage();
        let (log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
        assert_eq!(rec, clean_open(5), "{fault:?}");
        let got: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5], "{fault:?}");
    }
}

/// A full filesystem (ENOSPC) in the middle of a batch: the partial write is cut when space
/// comes back, and the batch is written once.
#[test]
fn a_full_filesystem_then_space_freed_writes_each_record_once() {
    let mut log = filled(2, config(100, 1 << 20));
    let used = log.storage().used_bytes();
    log.storage_mut().set_capacity(Some(used + 20));
    for seq in 3..=6 {
        log.append(1, &payload(seq), 0, false).unwrap();
    }
    let err = log.flush().unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!((log.durable_seq(), log.pending_records()), (2, 4));
    assert_eq!(log.storage().used_bytes(), used + 20, "the write stopped where the space ended");
    log.storage_mut().set_capacity(None);
    assert_eq!(log.flush().unwrap(), 6);
    let (log, rec) = Log::open(log.into_storage(), config(100, 1 << 20)).unwrap();
    assert_eq!(rec, clean_open(6));
    let got: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
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
    let torn = rec.torn_tail().unwrap();
    assert_eq!((rec.records, torn.from_seq, torn.reason, torn.seqs()), (6, 7, DefectReason::TornTail, 0));
    assert_eq!((rec.quarantined.as_deref(), rec.holes.len(), rec.next_seq), (None, 0, 7));
    assert_eq!(log.durable_seq(), 6);
    assert!(log.storage().list().unwrap().iter().all(|n| !is_quarantine_name(n)));
}

/// Regression (issue 8): a corrupt frame in the middle cut every record after it out of the
/// log, though they were intact, and new records then reused their seqs. Now the scan finds
/// the next intact frame, only the bad frame's bytes are quarantined, its seq becomes a hole,
/// and every other record stays where it was.
#[test]
fn flipped_byte_mid_log_is_quarantined_and_the_records_after_it_kept() {
    let mut log = filled(10, config(100, 1 << 20));
    let name = segment_name(1);
    // Record 4 starts after the header and three frames of "record N" (8 + 8 bytes each).
    let off = 32 + 3 * 16 + 10;
    log.storage_mut().bytes_mut(&name).unwrap()[off] ^= 0x01;
    let damaged = log.storage().read(&name).unwrap();
    let (mut log, rec) = Log::open(log.into_storage(), config(100, 1 << 20)).unwrap();
    let d = &rec.damage[0];
    assert_eq!(
        (d.reason, d.kind, d.from_seq, d.to_seq, d.exact),
        (DefectReason::BadCrc, DamageKind::Lost, 4, 5, true)
    );
    assert_eq!((rec.records, rec.holes.clone(), rec.next_seq), (9, vec![(4, 5)], 11));
    let q = rec.quarantined.unwrap();
    assert_eq!(q, "quarantine-0000000000000004.bin");
    // magic, then one piece: name length, name, offset, length, the bad frame's bytes only.
    let qb = log.storage().read(&q).unwrap();
    assert_eq!(&qb[..4], b"LMQ1");
    assert_eq!(&qb[4..6], &24u16.to_le_bytes());
    assert_eq!(&qb[6..30], name.as_bytes());
    assert_eq!(&qb[30..38], &80u64.to_le_bytes());
    assert_eq!(&qb[38..46], &16u64.to_le_bytes());
    assert_eq!(&qb[46..], &damaged[80..96]);
    let seqs: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 5, 6, 7, 8, 9, 10]);
    assert!(records(&log, 1).iter().all(|(seq, _, p)| *p == payload(*seq)));
    // The next record never takes seq 4 (nor any other).
    assert_eq!(log.append(1, b"new", 0, true).unwrap().seq, 11);
    let (log, again) = Log::open(log.into_storage(), config(100, 1 << 20)).unwrap();
    assert_eq!((again.damage.len(), again.records), (0, 10));
    assert_eq!(log.read_from(4).next().unwrap().map(|r| r.seq), Some(5));
}

/// Regression (issue 8): a flipped byte inside the last complete frame was called a torn tail
/// and cut without quarantine, its seq reused, though the frame may have been durable.
#[test]
fn a_damaged_last_complete_frame_is_lost_data_not_a_torn_tail() {
    // A payload byte, the CRC, the length field, the magic: each flips to "lost", never "torn".
    for (what, at) in [("payload", 8 + 3), ("crc", 5), ("length", 2), ("magic", 0)] {
        let mut log = filled(10, config(100, 1 << 20));
        let name = segment_name(1);
        let last = frame_start(&log.storage().read(&name).unwrap(), 9) as usize;
        log.storage_mut().bytes_mut(&name).unwrap()[last + at] ^= 0x04;
        let (mut log, rec) = Log::open(log.into_storage(), config(100, 1 << 20)).unwrap();
        let d = &rec.damage[0];
        assert_eq!((d.kind, d.from_seq, d.to_seq), (DamageKind::Lost, 10, 11), "{what}: {d:?}");
        assert!(rec.torn_tail().is_none() && rec.quarantined.is_some(), "{what}");
        assert_eq!((rec.records, log.last_seq()), (9, 10), "{what}");
        assert_eq!(log.append(1, b"new", 0, true).unwrap().seq, 11, "{what}: seq 10 is not reused");
    }
}

/// A copied segment header (bit rot, a misdirected write) no longer loses the segment: its
/// frames verify with the seqs its name gives, so only the header is rewritten.
#[test]
fn a_copied_segment_header_loses_no_record() {
    let log = filled(20, config(100, 100));
    let segs = log.segments();
    let mut storage = log.into_storage();
    let h0 = storage.read(&segs[0].name).unwrap()[..32].to_vec();
    storage.bytes_mut(&segs[2].name).unwrap()[..32].copy_from_slice(&h0);
    let (log, rec) = Log::open(storage, config(3, 100)).unwrap();
    let d = &rec.damage[0];
    assert_eq!(
        (d.reason, d.segment.as_str(), d.offset, d.len, d.seqs()),
        (DefectReason::BadSegmentHeader, segs[2].name.as_str(), 0, 32, 0)
    );
    assert!(rec.quarantined.is_some(), "the bad header is kept");
    assert_eq!((rec.records, log.last_seq(), log.segments().len()), (20, 20, segs.len()));
    assert!(records(&log, 1).iter().all(|(seq, _, p)| *p == payload(*seq)));
}

/// A missing segment file in the middle becomes a hole; the segments after it are kept.
#[test]
fn missing_middle_segment_is_a_hole() {
    let log = filled(20, config(100, 100));
    let segs = log.segments();
    let mut storage = log.into_storage();
    storage.remove(&segs[1].name).unwrap();
    let (mut log, rec) = Log::open(storage, config(3, 100)).unwrap();
    let d = &rec.damage[0];
    assert_eq!((d.reason, d.kind), (DefectReason::SeqGap, DamageKind::Missing));
    assert_eq!(rec.holes, vec![(segs[1].base_seq, segs[2].base_seq)]);
    let lost = segs[1].last_seq - segs[1].base_seq + 1;
    assert_eq!((rec.records, log.last_seq(), rec.quarantined), (20 - lost, 20, None));
    assert_eq!(log.append(1, b"x", 0, true).unwrap().seq, 21);
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
    assert!(rec.damage.is_empty());
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

/// A segment-named file shorter than a header never held one (headers are written
/// atomically), so never a record: it is foreign, quarantined and removed, and takes no seq.
/// A longer one with no segment magic and no intact frame may be one of ours destroyed by rot
/// (found by review): its bytes are quarantined and as many seqs as they could have held
/// become a hole, so none is reused.
#[test]
fn a_stray_or_destroyed_segment_named_file_is_quarantined_and_never_gives_seqs_away() {
    let stray = segment_name(6);
    for (bytes, lost_seqs) in [
        (&b"hello"[..], None),      // short, not the magic
        (&b""[..], None),           // empty
        (&b"LMSG\x01"[..], None),   // short, a magic prefix
        (&[b'x'; 64][..], Some(4)), // long, not the magic: (64 - 32) / 8 seqs
        (&[0u8; 40][..], Some(1)),  // zeros
    ] {
        let mut storage = filled(5, config(100, 1 << 20)).into_storage();
        storage.write_atomic(&stray, bytes).unwrap();
        let (mut log, rec) = Log::open(storage, config(100, 1 << 20)).unwrap();
        let d = &rec.damage[0];
        match lost_seqs {
            None => {
                assert_eq!(
                    (d.kind, d.len, d.seqs()),
                    (DamageKind::Foreign, bytes.len() as u64, 0),
                    "{bytes:?}"
                );
                assert!(!log.storage().list().unwrap().contains(&stray));
            }
            Some(n) => assert_eq!((d.kind, d.from_seq, d.seqs()), (DamageKind::Lost, 6, n), "{bytes:?}"),
        }
        if bytes.is_empty() {
            assert_eq!(rec.quarantined, None);
        } else {
            let q = rec.quarantined.clone().expect("the bytes are kept");
            assert_eq!(q, quarantine_name(6, 0));
            assert_eq!(pieces(log.storage(), &q), vec![(stray.clone(), 0, bytes.to_vec())]);
        }
        assert_eq!(rec.records, 5);
        let next = log.append(1, b"new", 0, true).unwrap().seq;
        assert_eq!(next, 6 + lost_seqs.unwrap_or(0), "{bytes:?}");
    }
}

/// Review (issue 8): a one-bit flip that zeroes the version byte of the last durable frame
/// made it look like garbage from a crash: cut as a torn tail, its seq reused.
#[test]
fn a_zeroed_version_byte_in_the_last_frame_is_lost_data() {
    let mut log = filled(10, config(100, 1 << 20));
    let name = segment_name(1);
    let last = frame_start(&log.storage().read(&name).unwrap(), 9) as usize;
    log.storage_mut().bytes_mut(&name).unwrap()[last + 1] = 0;
    let (mut log, rec) = Log::open(log.into_storage(), config(100, 1 << 20)).unwrap();
    assert_eq!(
        (rec.damage[0].kind, rec.damage[0].from_seq, rec.damage[0].to_seq),
        (DamageKind::Lost, 10, 11)
    );
    assert_eq!(log.append(1, b"new", 0, true).unwrap().seq, 11);
}

/// Review (issue 8): a hole takes any number of seqs in 16 bytes, so damage to one defeated
/// the search for the next intact frame (which assumed n bytes hold at most n / 8 seqs): the
/// records after it were cut and their seqs reused. Records after a hole written by recovery
/// now start a new segment, and the search looks further where holes may be.
#[test]
fn a_damaged_hole_frame_loses_no_record_after_it() {
    // 10 records; the 5th damaged, so recovery writes a hole for it mid-segment.
    let mut log = filled(10, config(1000, 1 << 20));
    let name = segment_name(1);
    let fifth = frame_start(&log.storage().read(&name).unwrap(), 4) as usize;
    log.storage_mut().bytes_mut(&name).unwrap()[fifth + 9] ^= 0x01;
    let (mut log, rec) = Log::open(log.into_storage(), config(1000, 1 << 20)).unwrap();
    assert_eq!(rec.holes, vec![(5, 6)]);
    // New records go to a new segment.
    for seq in 11..=14 {
        assert_eq!(log.append(1, &payload(seq), 0, true).unwrap().seq, seq);
    }
    assert_eq!(log.segments().last().map(|s| s.base_seq), Some(11));
    // Now rot hits the hole frame itself (its count).
    let data = log.storage().read(&name).unwrap();
    let hole = data.iter().position(|&b| b == crate::frame::HOLE_MAGIC).unwrap();
    log.storage_mut().bytes_mut(&name).unwrap()[hole + 9] ^= 0x40;
    let (mut log, rec) = Log::open(log.into_storage(), config(1000, 1 << 20)).unwrap();
    let seqs: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14], "{rec:?}");
    assert_eq!(log.append(1, b"new", 0, true).unwrap().seq, 15);
}

/// A frame cut short in a segment that is not the last one is not a torn tail: the later
/// segment was started only after this one was synced. And a later segment whose header is
/// garbage still gives its frames back.
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
    let short = &rec.damage[0];
    assert_eq!(
        (short.reason, short.from_seq, short.to_seq),
        (DefectReason::BadLength, segs[0].last_seq, segs[1].base_seq)
    );
    let q = rec.quarantined.clone().expect("the cut bytes are kept");
    let last_frame = frame_start(&s0, segs[0].last_seq - segs[0].base_seq);
    assert_eq!(
        pieces(log.storage(), &q),
        vec![
            (segs[0].name.clone(), last_frame, s0[last_frame as usize..s0.len() - 5].to_vec()),
            (segs[1].name.clone(), 0, s1[..32].to_vec()),
        ]
    );
    assert_eq!(log.last_seq(), segs[1].last_seq);
    let seqs: Vec<u64> = records(&log, 1).iter().map(|r| r.0).collect();
    let want: Vec<u64> = (1..=segs[1].last_seq).filter(|&s| s != segs[0].last_seq).collect();
    assert_eq!(seqs, want);
}

/// Offset of frame `index` (from 0) in segment bytes.
fn frame_start(seg: &[u8], index: u64) -> u64 {
    let mut at = 32usize;
    for _ in 0..index {
        at += 8 + u16::from_le_bytes([seg[at + 2], seg[at + 3]]) as usize;
    }
    at as u64
}
