//! Regression (issue 8): `lastmile demo --links 4294967295` tried to allocate 34 GB, and a
//! zero interval would spin. Counts and intervals are bounded with a clear error, before
//! anything is created.

use std::process::Command;

fn demo(args: &[&str]) -> (i32, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(["demo", "--seconds", "1", "--dir"])
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), data.exists())
}

#[test]
fn demo_counts_and_intervals_are_bounded() {
    for (args, needle) in [
        (
            &["--links", "4294967295"][..],
            "invalid value '4294967295' for '--links <LINKS>': 4294967295 is not in 1..=4096",
        ),
        (&["--links", "0"][..], "is not in 1..=4096"),
        (&["--poll-ms", "0"][..], "invalid value '0' for '--poll-ms <POLL_MS>'"),
        (&["--window-ms", "0"][..], "invalid value '0' for '--window-ms <WINDOW_MS>'"),
        (&["--max-delay-ms", "99999999999"][..], "'--max-delay-ms <MAX_DELAY_MS>'"),
    ] {
        let (code, stderr, created) = demo(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!created, "{args:?}: nothing is created for a refused command line");
    }
}
