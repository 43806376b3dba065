//! The whole node killed with SIGKILL at random moments, again and again, on one data
//! directory: `lastmile demo` prints `durable #SEQ` as its durable watermark advances and a
//! `report` line for each usage record it released after it was durable. After every kill,
//! the directory must hold every record the node called durable (a torn tail is the only
//! defect a kill may leave), and in the end the recovered state must account for at least
//! every byte that was reported.

use flash_layout::{scan, DamageKind, DirStorage};
use lastmile::os::flash::{self, FlashConfig};
use lastmile::rng::SplitMix64;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROUNDS: u64 = 20;

#[test]
fn sigkill_at_random_moments_never_loses_a_record_reported_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = SplitMix64::new(2026);
    let mut reported_tx = 0u64;
    let mut max_durable = 0u64;
    let mut kills_with_progress = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lastmile"))
            .args(["demo", "--links", "4", "--poll-ms", "5", "--window-ms", "20", "--max-delay-ms", "30"])
            .args(["--seconds", "20", "--seed", &round.to_string(), "--dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lastmile demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(150 + rng.below(350)));
        child.kill().expect("SIGKILL the child by its pid");
        child.wait().expect("reap the child");
        let lines = lines.join().expect("reader thread");

        let mut durable_this_round = 0;
        for line in &lines {
            if let Some(seq) = line.strip_prefix("durable #") {
                durable_this_round = durable_this_round.max(seq.parse::<u64>().expect("durable seq"));
            } else if let Some(rest) = line.strip_prefix("report ") {
                let tx = rest.split_whitespace().find_map(|w| w.strip_prefix("tx=")).expect("tx field");
                reported_tx += tx.parse::<u64>().expect("tx bytes");
            }
        }
        if durable_this_round > max_durable {
            kills_with_progress += 1;
        }
        max_durable = max_durable.max(durable_this_round);

        let storage = DirStorage::open(dir.path()).expect("open dir");
        let found = scan(&storage).expect("scan");
        assert!(
            found.last_seq >= max_durable,
            "round {round}: the node said #{max_durable} was durable, the log ends at #{}",
            found.last_seq
        );
        for damage in &found.damage {
            assert_eq!(
                damage.kind,
                DamageKind::TornTail,
                "round {round}: a kill may only tear the tail: {damage:?}"
            );
        }
    }
    assert!(kills_with_progress >= ROUNDS / 2, "most rounds should make progress ({kills_with_progress})");
    let opened = flash::open(dir.path(), FlashConfig::default()).expect("recover");
    let tx_total: u64 = opened.state.usage.links.values().map(|l| l.tx_total).sum();
    assert!(tx_total >= reported_tx, "recovered {tx_total} tx bytes, {reported_tx} were reported durable");
    let resets: u32 = opened.state.usage.links.values().map(|l| l.resets).sum();
    assert!(resets > 0, "each restart of the demo is a router reboot: counter resets must be recorded");
}
