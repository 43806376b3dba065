//! Network-namespace harness for tests that touch the kernel: namespaces, veth links, babeld
//! peers, and running code inside a namespace.
//!
//! Include it with `#[path = "support/netns.rs"] mod netns;`. Needs root and the tools named in
//! [`require_root_and_tools`]; without them a test fails (never skips) and says what to install.
//!
//! Safety: everything lives inside namespaces a test creates. A namespace is named
//! `lm-<tag>-<pid>`, and is deleted by that name when its [`Netns`] guard drops, also when the
//! test panics; deleting it removes its interfaces with it. Interfaces are created directly
//! inside test namespaces (`ip -n NS link add … peer … netns OTHER`), never in the host's.
//! Every process started runs under `timeout`, so it stops by itself even if the test process
//! dies, and its guard stops it by its own pid. Use only documentation and ULA addresses
//! (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, fd00::/8).
//!
//! Running Rust code in a namespace: `setns(CLONE_NEWNET)` moves only the calling thread, and a
//! socket (UDP or netlink) stays in the namespace it was created in. So code runs in a fresh
//! thread that enters the namespace first ([`in_netns`]); it builds its tokio runtime (or actix
//! system) and its sockets there. A thread may also [`enter_netns`] several namespaces in turn
//! and create a socket in each, then drive them all from one runtime: that is how one test
//! plays two nodes. Never call [`enter_netns`] on a thread you did not create (the test
//! harness's own thread would stay in the namespace).

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The harness waits on the kernel and on babeld in real time.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// How long a command run by [`Netns::run`] may take before `timeout` stops it.
pub const COMMAND_TIMEOUT_S: u32 = 20;

/// Fails the test unless it runs as root with every tool in `tools` (and `timeout`, `sysctl`)
/// on the path, naming the Debian packages to install. Tests never skip silently.
pub fn require_root_and_tools(tools: &[&str]) {
    let mut problems = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        problems.push("not running as root (network namespaces need CAP_SYS_ADMIN)".to_string());
    }
    let mut missing = BTreeSet::new();
    for tool in tools.iter().chain(&["timeout", "sysctl"]) {
        if tool_path(tool).is_none() {
            missing.insert(package_of(tool));
        }
    }
    if !missing.is_empty() {
        let packages: Vec<&str> = missing.into_iter().collect();
        problems
            .push(format!("missing tools: run scripts/setup.sh or `apt-get install {}`", packages.join(" ")));
    }
    if !problems.is_empty() {
        let ci =
            if std::env::var_os("CI").is_some() { " (CI: the setup step did not install them)" } else { "" };
        panic!("this test needs root and {tools:?}{ci}: {}", problems.join("; "));
    }
}

fn package_of(tool: &str) -> &str {
    match tool {
        "babeld" => "babeld",
        "ip" | "tc" => "iproute2",
        "nft" => "nftables",
        "sysctl" => "procps",
        "bird" | "birdc" => "bird2",
        "timeout" => "coreutils",
        other => other,
    }
}

/// The absolute path of `tool`: on `PATH`, or in the sbin directories a non-login root shell
/// may lack.
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file());
    found
}

pub fn tool(name: &str) -> PathBuf {
    tool_path(name).unwrap_or_else(|| panic!("{name} is not installed; call require_root_and_tools first"))
}

/// Runs a command to completion and returns its stdout, or a message with its stderr.
fn output(cmd: &mut Command) -> Result<String, String> {
    let Output { status, stdout, stderr } =
        cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    } else {
        Err(format!("{cmd:?} failed ({status}): {}", String::from_utf8_lossy(&stderr).trim()))
    }
}

/// Names of the namespaces this process holds, so a tag used twice fails loudly instead of
/// deleting another test's namespace.
static IN_USE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A network namespace `lm-<tag>-<pid>`, deleted on drop. Created with IPv6 duplicate address
/// detection off (addresses are usable at once) and loopback up.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace. `tag` names the test and role (e.g. `sock-a`); it must be unique
    /// within the test process.
    pub fn new(tag: &str) -> Netns {
        let name = format!("lm-{tag}-{}", std::process::id());
        assert!(
            IN_USE.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone()),
            "namespace tag {tag} is already used in this process"
        );
        // A namespace of this name can only be a leftover of a killed run whose pid we now
        // have: it is ours to remove.
        if Path::new("/var/run/netns").join(&name).exists() {
            let _ = output(Command::new(tool("ip")).args(["netns", "delete", &name]));
        }
        let ns = Netns { name };
        output(Command::new(tool("ip")).args(["netns", "add", &ns.name])).unwrap_or_else(|e| panic!("{e}"));
        ns.run(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `args` in the namespace under `timeout`; returns stdout, panics with stderr.
    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(COMMAND_TIMEOUT_S, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `args` in the namespace, stopped after `timeout_s` seconds; stdout or the error.
    pub fn try_run(&self, timeout_s: u32, args: &[&str]) -> Result<String, String> {
        let timeout_arg = timeout_s.to_string();
        output(
            Command::new(tool("ip"))
                .args(["netns", "exec", &self.name])
                .arg(tool("timeout"))
                .args(["-k", "2", &timeout_arg])
                .args(args),
        )
    }

    /// Runs `ip -n NS ARGS…`; returns stdout, panics with stderr.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        output(Command::new(tool("ip")).args(["-n", &self.name]).args(args))
    }

    /// The index of interface `ifname` in this namespace.
    pub fn ifindex(&self, ifname: &str) -> u32 {
        let line = self.ip(&["-o", "link", "show", "dev", ifname]);
        line.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex in `ip link` output {line:?}"))
    }

    /// Waits (up to 5 s) until `ifname` has a usable (not tentative) link-local address and
    /// returns it.
    pub fn wait_link_local(&self, ifname: &str) -> Ipv6Addr {
        let deadline = now() + Duration::from_secs(5);
        loop {
            let out = self.ip(&["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]);
            let usable = out.lines().filter(|l| !l.contains("tentative")).find_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet6")?;
                words.next()?.split('/').next()?.parse().ok()
            });
            if let Some(addr) = usable {
                return addr;
            }
            assert!(now() < deadline, "{ifname} in {} has no usable link-local address: {out}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = output(Command::new(tool("ip")).args(["netns", "delete", &self.name])) {
            eprintln!("netns harness: {e}");
        }
        IN_USE.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.name);
    }
}

/// A veth link between two namespaces: `a_if` in `a`, `b_if` in `b`, both up, with their
/// link-local addresses usable. It goes away with either namespace.
pub struct Veth {
    pub a_ifindex: u32,
    pub a_link_local: Ipv6Addr,
    pub b_ifindex: u32,
    pub b_link_local: Ipv6Addr,
}

pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Veth {
    a.ip(&["link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name()]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
    Veth {
        a_ifindex: a.ifindex(a_if),
        a_link_local: a.wait_link_local(a_if),
        b_ifindex: b.ifindex(b_if),
        b_link_local: b.wait_link_local(b_if),
    }
}

/// Moves the calling thread into namespace `name`. Only for threads the caller created (see
/// the module doc); sockets created afterwards on this thread belong to that namespace.
pub fn enter_netns(name: &str) {
    let path = Path::new("/var/run/netns").join(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    // SAFETY: `file` is an open namespace file; setns affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {name}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a fresh thread inside namespace `name` and returns its result (a panic in `f`
/// is the caller's panic).
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let thread = s.spawn(|| {
            enter_netns(name);
            f()
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `f`'s future to completion on a current-thread tokio runtime (I/O and time enabled)
/// in a fresh thread inside namespace `name`.
pub fn in_netns_async<T: Send, F: std::future::Future<Output = T>>(
    name: &str,
    f: impl FnOnce() -> F + Send,
) -> T {
    in_netns(name, || runtime().block_on(f()))
}

/// A current-thread tokio runtime with I/O and time: what [`in_netns_async`] uses, for tests
/// that enter several namespaces on one thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

/// How a [`Babeld`] runs.
pub struct BabeldConfig {
    /// Interfaces babeld speaks on.
    pub interfaces: Vec<String>,
    /// Hello interval of every interface, seconds (babeld's default is 4).
    pub hello_interval_s: f64,
    /// Further configuration statements, one per `-C` (e.g. `redistribute local ip
    /// 2001:db8:a::/48 allow`).
    pub lines: Vec<String>,
    /// babeld is stopped by `timeout` after this long even if its guard never drops.
    pub lifetime_s: u32,
}

impl Default for BabeldConfig {
    fn default() -> Self {
        Self { interfaces: Vec::new(), hello_interval_s: 0.5, lines: Vec::new(), lifetime_s: 120 }
    }
}

/// Debian's babeld running in a namespace: `default type wired` (split horizon on veths), no
/// state file, its pid file, log and read-write local socket in a private directory. Stopped by
/// pid when dropped.
pub struct Babeld {
    child: Child,
    dir: tempfile::TempDir,
}

impl Babeld {
    pub fn start(ns: &Netns, config: BabeldConfig) -> Babeld {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lm-babeld-{}-", ns.name()))
            .tempdir()
            .unwrap_or_else(|e| panic!("babeld directory: {e}"));
        let log = File::create(dir.path().join("log")).unwrap_or_else(|e| panic!("babeld log: {e}"));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("babeld log: {e}"));
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", ns.name()])
            .arg(tool("timeout"))
            .args(["-k", "2", &config.lifetime_s.to_string()])
            .arg(tool("babeld"))
            .args(["-d", "0", "-S", ""])
            .arg("-I")
            .arg(dir.path().join("pid"))
            .arg("-G")
            .arg(dir.path().join("sock"))
            .arg("-C")
            .arg(format!("default type wired hello-interval {}", config.hello_interval_s));
        for line in &config.lines {
            cmd.arg("-C").arg(line);
        }
        cmd.args(&config.interfaces).stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start babeld: {e}"));
        let babeld = Babeld { child, dir };
        babeld.wait_for_socket();
        babeld
    }

    fn wait_for_socket(&self) {
        let deadline = now() + Duration::from_secs(5);
        while !self.socket_path().exists() {
            assert!(now() < deadline, "babeld did not open its local socket; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The read-write local configuration socket (`-G`).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// babeld's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The lines of a `dump` on the local socket (`add neighbour …`, `add route …`, …).
    pub fn dump(&self) -> Vec<String> {
        let mut stream = UnixStream::connect(self.socket_path())
            .unwrap_or_else(|e| panic!("babeld socket: {e}; log:\n{}", self.log()));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("babeld socket: {e}")));
        read_until_ok(&mut reader); // The greeting.
        stream.write_all(b"dump\n").unwrap_or_else(|e| panic!("babeld socket: {e}"));
        read_until_ok(&mut reader)
    }
}

fn read_until_ok(reader: &mut impl BufRead) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => panic!("babeld closed its socket after {lines:?}"),
            Ok(_) => {}
            Err(e) => panic!("reading babeld's socket: {e} after {lines:?}"),
        }
        let line = line.trim_end().to_string();
        if line == "ok" {
            return lines;
        }
        assert!(!line.starts_with("bad") && !line.starts_with("no"), "babeld answered {line:?}");
        lines.push(line);
    }
}

impl Drop for Babeld {
    fn drop(&mut self) {
        // The child is `timeout`, which passes SIGTERM on to babeld; babeld then removes its
        // routes and exits, and so does `timeout`.
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else { return };
        // SAFETY: kill has no memory preconditions; `pid` is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = now() + Duration::from_secs(3);
        while now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still there: kill babeld by the pid it wrote, then `timeout`.
        let mut text = String::new();
        if File::open(self.dir.path().join("pid")).and_then(|mut f| f.read_to_string(&mut text)).is_ok() {
            if let Ok(babeld) = text.trim().parse::<libc::pid_t>() {
                // SAFETY: as above; the pid is babeld's, which still runs under our child.
                unsafe { libc::kill(babeld, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The routes babeld installed in `ns`: `ip -6 route show proto babel` then `ip -4 route show
/// proto babel`, one line each.
pub fn babeld_routes(ns: &Netns) -> Vec<String> {
    let mut routes: Vec<String> = Vec::new();
    for family in ["-6", "-4"] {
        routes.extend(ns.ip(&[family, "route", "show", "proto", "babel"]).lines().map(str::to_string));
    }
    routes
}

/// Polls `check` every 50 ms until it returns `Some`; panics naming `what` once `timeout`
/// has passed.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = now() + timeout;
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
