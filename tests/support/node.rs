//! A `lastmile route` process in a test's network namespace: started under `timeout` with a
//! lifetime (nothing outlives the test by more than that even if the test process dies), its
//! stdout collected line by line, its stderr, status file and event log in a private
//! directory, stopped by pid when its guard drops.
//!
//! Include it next to the namespace harness: `#[path = "support/netns.rs"] mod netns;` and
//! `#[path = "support/node.rs"] mod node;`.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use super::netns::{self, Netns};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hello interval of every lastmile node these tests start.
pub const HELLO_MS: u64 = 1000;

#[allow(clippy::disallowed_methods)] // The tests measure real time.
pub fn now() -> Instant {
    Instant::now()
}

/// The tests of one binary run one at a time: they measure convergence, bytes and memory of
/// live processes (babeld, lastmile) in real time on few cores, and parallel tests would
/// slow each other down.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `lastmile route` process in a namespace, stopped by pid when dropped.
pub struct Lastmile {
    pub ns: String,
    pub child: Child,
    pub dir: tempfile::TempDir,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Lastmile {
    /// Starts node `n` on `interfaces`, announcing its two prefixes, 1 s Hellos, stopping by
    /// itself after `lifetime_s`.
    pub fn start(ns: &Netns, n: u8, interfaces: &[&str], extra: &[&str], lifetime_s: u32) -> Lastmile {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lm-route-{}-", ns.name()))
            .tempdir()
            .unwrap_or_else(|e| panic!("lastmile directory: {e}"));
        let stderr =
            std::fs::File::create(dir.path().join("stderr")).unwrap_or_else(|e| panic!("stderr: {e}"));
        let mut cmd = Command::new(netns::tool_path("ip").expect("ip"));
        cmd.args(["netns", "exec", ns.name()])
            .arg(netns::tool_path("timeout").expect("timeout"))
            .args(["-k", "2", &(lifetime_s + 15).to_string()])
            .arg(env!("CARGO_BIN_EXE_lastmile"))
            .arg("route");
        for i in interfaces {
            cmd.args(["--interface", i]);
        }
        cmd.args(["--originate", &format!("2001:db8:{n}::/64"), "--originate", &format!("203.0.113.{n}/32")])
            .args(["--hello-ms", &HELLO_MS.to_string(), "--lifetime-s", &lifetime_s.to_string()])
            .arg("--log-dir")
            .arg(dir.path().join("log"))
            .arg("--status")
            .arg(dir.path().join("status"))
            .args(extra)
            .env("LASTMILE_LOG", "lastmile=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start lastmile: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Lastmile { ns: ns.name().to_string(), child, dir, lines, reader: Some(reader) }
    }

    /// What it printed so far.
    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The status file: the selected routes, one a line.
    pub fn status(&self) -> Vec<String> {
        let path: PathBuf = self.dir.path().join("status");
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
    }

    pub fn log(&self) -> String {
        format!("{} stdout:\n{}\nstderr:\n{}", self.ns, self.stdout().join("\n"), self.stderr())
    }

    /// SIGTERM, then its exit status (it must stop within 10 s).
    pub fn stop(&mut self) -> ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            assert!(now() < deadline, "lastmile did not stop within 10 s of SIGTERM; {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory preconditions; the pid is one of our processes.
        unsafe { libc::kill(pid, sig) };
    }
}

impl Drop for Lastmile {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // The child is `timeout` (exec'd by `ip netns exec`); it passes SIGTERM on.
        signal(self.child.id(), libc::SIGTERM);
        let deadline = now() + Duration::from_secs(5);
        while now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still there: kill lastmile (timeout's child) by pid, then timeout.
        let children = format!("/proc/{0}/task/{0}/children", self.child.id());
        for pid in std::fs::read_to_string(children).unwrap_or_default().split_whitespace() {
            if let Ok(pid) = pid.parse() {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lastmile {
    /// The pid of lastmile itself (the child is `timeout`, which `ip netns exec` became).
    pub fn pid(&self) -> Option<u32> {
        let children = format!("/proc/{0}/task/{0}/children", self.child.id());
        std::fs::read_to_string(children).ok()?.split_whitespace().next()?.parse().ok()
    }

    /// Its resident set size (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}
