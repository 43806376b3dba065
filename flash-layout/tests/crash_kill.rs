//! Real-process crash test: a child process appends to a `DirStorage` log with group commit
//! and prints every seq as it becomes durable; the parent SIGKILLs it at seeded random
//! moments (during recovery, during appends, during segment rolls), then reopens the log and
//! asserts that every record the child reported durable is there, in order, byte-identical,
//! and that nothing after it is corrupt (recovery keeps exactly a prefix of what was written).
//!
//! The test binary re-executes itself (`current_exe()` + `--exact` filter) with
//! `FLASH_LAYOUT_CRASH_CHILD` naming the log directory to select child mode. Children are
//! killed through their own `Child` handle (their pid), nothing else.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flash_layout::{DirStorage, FlushPolicy, Log, LogConfig};

const CHILD_ENV: &str = "FLASH_LAYOUT_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_never_loses_a_reported_durable_record";
const TRIALS: u64 = 240;
/// Trials that share one directory, so recovery also runs over recovered logs.
const TRIALS_PER_DIR: u64 = 8;
const SEED: u64 = 0x1A57_3113;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096, // small, so kills also land around segment rolls
        flush: FlushPolicy { max_records: 8, max_bytes: 1024, max_value: 100 },
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Record `seq`, derived from the seq alone so the parent can recompute it.
fn record(seq: u64) -> (u8, Vec<u8>, u128, bool) {
    let h = mix(seq);
    let len = (h % 120) as usize;
    let payload = (0..len).map(|i| (mix(seq ^ (i as u64) << 32) >> 7) as u8).collect();
    ((h >> 8) as u8 % 3 + 1, payload, u128::from((h >> 16) % 40), h >> 24 & 31 == 0)
}

fn child(dir: &str) -> ! {
    let storage = DirStorage::open(dir).expect("child: open dir");
    let (mut log, _) = Log::open(storage, config()).expect("child: open log");
    let mut out = std::io::stdout().lock();
    let mut reported = log.durable_seq();
    loop {
        let seq = log.last_seq() + 1;
        let (version, payload, value, urgent) = record(seq);
        log.append(version, &payload, value, urgent).expect("child: append");
        if seq % 29 == 0 {
            log.flush().expect("child: flush"); // the caller's timer
        }
        if log.durable_seq() > reported {
            reported = log.durable_seq();
            writeln!(out, "{reported}").expect("child: stdout");
            out.flush().expect("child: stdout");
        }
    }
}

#[test]
fn sigkill_never_loses_a_reported_durable_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let exe = std::env::current_exe().unwrap();
    // The test bounds its own running time; no machine logic reads this clock.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut dir = tempfile::tempdir().unwrap();
    let mut max_durable_seen = 0u64;
    let mut total_recovered = 0u64;
    for trial in 0..TRIALS {
        if trial % TRIALS_PER_DIR == 0 {
            dir = tempfile::tempdir().unwrap();
            max_durable_seen = 0;
        }
        let r = mix(SEED ^ trial);
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut max = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints its own lines too; durable seqs are bare numbers.
                if let Ok(seq) = line.trim().parse::<u64>() {
                    assert!(seq > max, "durable seq went backwards");
                    max = seq;
                }
            }
            max
        });
        // A quarter of the kills land early (often inside open/recovery), the rest mid-run.
        let delay_us = if r.is_multiple_of(4) { (r >> 8) % 8_000 } else { 8_000 + (r >> 8) % 40_000 };
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap(); // SIGKILL, to this child's pid only
        child.wait().unwrap();
        let reported = reader.join().unwrap();
        max_durable_seen = max_durable_seen.max(reported);

        let (log, recovery) = Log::open(DirStorage::open(dir.path()).unwrap(), config()).unwrap();
        let lost: Vec<_> = recovery.lost().collect();
        assert!(lost.is_empty(), "trial {trial}: a process crash is only ever a torn tail: {lost:?}");
        assert_eq!(recovery.quarantined, None, "trial {trial}");
        let mut rd = log.read_from(1);
        let mut n = 0u64;
        while let Some(rec) = rd.next().unwrap() {
            n += 1;
            assert_eq!(rec.seq, n, "trial {trial}");
            let (version, payload, _, _) = record(rec.seq);
            assert_eq!((rec.version, rec.payload), (version, &payload[..]), "trial {trial} seq {n}");
        }
        assert!(n >= max_durable_seen, "trial {trial}: recovered {n} < reported durable {max_durable_seen}");
        total_recovered += n;
        assert!(started.elapsed() < Duration::from_secs(90), "too slow: trial {trial}");
    }
    // The kills must have landed while records were flowing, or the test proves nothing.
    assert!(total_recovered > TRIALS * 10, "children wrote too little: {total_recovered}");
    eprintln!("{TRIALS} kills, {total_recovered} records recovered in {:?}", started.elapsed());
}
