//! Tidy: the pure layers (events, wire, machines, and the simulations and test support in
//! `sim`) stay pure.
//!
//! The compile-time fact is the `daemon` feature: without it, actix, tokio and the adapters
//! are not even dependencies (checked below with `cargo tree`). This test is the backstop for
//! what a feature cannot forbid: std's files, sockets and clocks, unseeded randomness, and
//! hash maps whose iteration order would make output differ between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

const PURE: &[&str] = &["src/events", "src/wire", "src/machines", "src/sim", "src/rng.rs"];

const FORBIDDEN: &[&str] = &[
    "actix",
    "tokio",
    "std::fs",
    "std::net",
    "std::thread",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::",
    "HashMap",
    "HashSet",
    "flash_layout",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(path).expect("pure folder is readable") {
        let p = entry.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn pure_layers_use_no_runtime_io_clock_or_unordered_maps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        rust_files(&root.join(p), &mut files);
    }
    assert!(files.len() >= 8, "expected the pure layers' files, found {files:?}");
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: `{word}`: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(hits.is_empty(), "the pure layers must stay pure:\n{}", hits.join("\n"));
}

#[test]
fn without_the_daemon_feature_no_runtime_netlink_or_chain_crate_is_a_dependency() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "lastmile",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"rmp-serde"), "unexpected tree:\n{tree}");
    for banned in
        ["actix", "actix-rt", "tokio", "rtnetlink", "netlink-proto", "alloy", "redb", "flash-layout"]
    {
        assert!(!crates.contains(&banned), "{banned} is in the pure build:\n{tree}");
    }
}
