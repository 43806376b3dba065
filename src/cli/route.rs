//! `lastmile route`: a live routing node. Speaks Babel (with lastmile's route vector) on the
//! named interfaces, announces the given prefixes, installs the selected routes in the kernel
//! and logs its events to a real event log.
//!
//! ```text
//! lastmile route --interface eth1 --interface wg0:tunnel --originate 2001:db8:1::/64 \
//!     --originate 192.0.2.0/28 --log-dir /var/lib/lastmile --hello-ms 1000 --lifetime-s 60 \
//!     --status /run/lastmile.routes
//! ```
//!
//! Prints one line per fact, flushed at once (for people and tests): `started …`, then
//! `selected PREFIX via NEXT-HOP dev IFNAME neighbour ADDR price N|unpriced` or
//! `selected PREFIX unreachable` for every change of a selected route (what billing will
//! consume), `limits …` when the resource limits refused something (see below), and
//! `stopped …`. With `--status FILE` the whole table of selected routes is kept in FILE (same
//! format without the `selected ` word, one route per line, rewritten atomically at most every
//! 50 ms; empty while nothing is reachable).
//!
//! Resource limits (`--max-neighbours…`, `--admit-…`, `--max-routes…`, `--max-destinations`,
//! `--max-candidates…`, `--max-hello-interval-ms`; what they do is in `machines::babel::limits`, the defaults in
//! `--help`): whenever they refused something, at most every 10 s and once more before
//! `stopped`, a line
//!
//! ```text
//! limits neighbours 3 candidates 64 routes 8194 destinations 8194 refused neighbours-full 12
//!     neighbours-rate 40 candidates-evicted 1436 stranger-tlvs 0 routes-per-neighbour 41808
//!     routes-total 0 destinations 0 martians 2
//! ```
//!
//! (on one line) gives what is held now (neighbours, candidates, route entries, destinations)
//! and, after `refused`, every refusal counted since the start.
//!
//! Every argument is checked before anything starts: a bad value is an error that names the
//! flag, never a panic; numbers are bounded (no interval of 0, nothing that would overflow a
//! deadline); martian prefixes (link-local, multicast, loopback, unspecified) are refused.
//!
//! It stops on SIGTERM, on an interrupt or when `--lifetime-s` is over: it sends the wildcard
//! retraction on every interface, removes its kernel routes and exits with status 0.

use crate::actors::babel::{BabelNode, BabelNodeConfig, RouteSelected};
use crate::actors::clock::Clock;
use crate::actors::driver::Deliver;
use crate::actors::log_writer::{LogWriter, Shutdown};
use crate::events::routing::{InterfaceConfig, LimitsReport, LinkKind};
use crate::machines::babel::{BabelConfig, BabelLimits};
use crate::os::flash::{self, FlashConfig};
use crate::os::interfaces;
use crate::os::journal::JournalConfig;
use crate::os::prober::ProbePlan;
use crate::os::throttle::Throttle;
use crate::throttled_warn;
use crate::wire::babel::{Prefix, RouterId, PORT};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The Hello and update intervals: at least 10 ms (more often floods the link for nothing),
/// at most what the 16-bit centisecond interval fields of Babel can carry (655.35 s).
const INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=655_350;

#[derive(clap::Args, Debug)]
pub struct RouteArgs {
    /// An interface to speak Babel on, and its kind (default wired). Repeatable, at most 256.
    #[arg(long = "interface", value_name = "NAME[:wired|tunnel|wireless]", required = true, value_parser = parse_interface)]
    interfaces: Vec<InterfaceArg>,
    /// A prefix this node announces (IPv6 or IPv4, e.g. 2001:db8:1::/64, 192.0.2.0/28; a bare
    /// address is a host route; not link-local, multicast, loopback or unspecified).
    /// Repeatable, at most 1024.
    #[arg(long = "originate", value_name = "PREFIX", value_parser = parse_prefix)]
    originate: Vec<Prefix>,
    /// The router-id, 16 hex digits (colons allowed). Default: the low 8 bytes of the first
    /// originated IPv6 prefix if they are a valid router-id (not all zeros, as they are for a
    /// /64), else the EUI-64 of the first interface's MAC, else its link-local address's.
    #[arg(long, value_name = "HEX", value_parser = parse_router_id)]
    router_id: Option<RouterId>,
    /// Hello interval of every interface, 10..=655350 (default: 4000, RFC 8966).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(INTERVAL_MS))]
    hello_ms: Option<u64>,
    /// Periodic update interval of every interface, 10..=655350 (default: 16000; 60000 on
    /// tunnels).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(INTERVAL_MS))]
    update_ms: Option<u64>,
    /// What this node charges per byte for forwarding (added to the path price it advertises).
    #[arg(long, default_value_t = 0)]
    fee: u64,
    /// Data directory of the event log (created if missing).
    #[arg(long, value_name = "DIR")]
    log_dir: PathBuf,
    /// Stop by itself after this many seconds, at most a year (0: run until SIGTERM or
    /// interrupt).
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    lifetime_s: u64,
    /// Keep the table of selected routes in this file.
    #[arg(long, value_name = "FILE")]
    status: Option<PathBuf>,
    /// A destination in use, probed end to end to check what neighbours advertise (a host
    /// route of another node). Repeatable, at most 1024.
    #[arg(long = "probe", value_name = "PREFIX", value_parser = parse_prefix)]
    probe: Vec<Prefix>,
    /// How often destinations in use are probed, 100..=86400000 (default 30000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    probe_interval_ms: Option<u64>,
    /// Neither answer nor send end-to-end probes.
    #[arg(long)]
    no_probes: bool,
    /// How often the interfaces' state (up, link-local address) is read, 10..=60000.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    link_poll_ms: u64,
    /// Neighbours held per interface; sources past it are refused (counted), 1..=1024.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().neighbours_per_interface,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_neighbours_per_interface: u32,
    /// Neighbours held on all interfaces together, 1..=4096.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().neighbours,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_neighbours: u32,
    /// Sources heard once (candidates) remembered per interface, 1..=4096.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().candidates_per_interface,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_candidates_per_interface: u32,
    /// New neighbours admitted at once on an interface (then one per --admit-interval-ms),
    /// 1..=1024.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().admit_burst,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    admit_burst: u32,
    /// One more new neighbour may be admitted on an interface every this many ms, 1..=3600000.
    #[arg(long, value_name = "MS", default_value_t = BabelLimits::default().admit_interval_ms,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    admit_interval_ms: u64,
    /// Routes (destinations) accepted from one neighbour; new ones past it are refused, routes
    /// already held still update, 1..=1000000.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().routes_per_neighbour,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_routes_per_neighbour: u32,
    /// Route entries from all neighbours together (~150 bytes each), 1..=1000000.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().routes,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_routes: u32,
    /// Destinations (distinct prefixes, kernel routes) held, 1..=1000000.
    #[arg(long, value_name = "N", default_value_t = BabelLimits::default().destinations,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_destinations: u32,
    /// A neighbour's Hello interval counts as at most this (a silent neighbour is dropped after
    /// 16 of them), 1000..=655350.
    #[arg(long, value_name = "MS", default_value_t = BabelLimits::default().max_hello_interval_ms,
          value_parser = clap::value_parser!(u64).range(1_000..=655_350))]
    max_hello_interval_ms: u64,
}

/// How many times a repeatable flag may be given.
const MAX_INTERFACES: usize = 256;
const MAX_ORIGINATED: usize = 1024;
const MAX_PROBED: usize = 1024;

impl RouteArgs {
    /// What clap cannot check one value at a time: how often repeatable flags are given and
    /// interfaces named twice.
    fn check(&self) -> Result<(), String> {
        let counts = [
            ("--interface", self.interfaces.len(), MAX_INTERFACES),
            ("--originate", self.originate.len(), MAX_ORIGINATED),
            ("--probe", self.probe.len(), MAX_PROBED),
        ];
        for (flag, n, max) in counts {
            if n > max {
                return Err(format!("{flag} is given {n} times; at most {max}"));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for i in &self.interfaces {
            if !names.insert(i.name.as_str()) {
                return Err(format!("--interface {} is given twice", i.name));
            }
        }
        Ok(())
    }

    fn limits(&self) -> BabelLimits {
        BabelLimits {
            neighbours_per_interface: self.max_neighbours_per_interface,
            neighbours: self.max_neighbours,
            candidates_per_interface: self.max_candidates_per_interface,
            admit_burst: self.admit_burst,
            admit_interval_ms: self.admit_interval_ms,
            routes_per_neighbour: self.max_routes_per_neighbour,
            routes: self.max_routes,
            destinations: self.max_destinations,
            max_hello_interval_ms: self.max_hello_interval_ms,
        }
    }
}

#[derive(Clone, Debug)]
struct InterfaceArg {
    name: String,
    kind: LinkKind,
}

fn parse_interface(s: &str) -> Result<InterfaceArg, String> {
    let (name, kind) = match s.split_once(':') {
        None => (s, LinkKind::Wired),
        Some((name, "wired")) => (name, LinkKind::Wired),
        Some((name, "tunnel")) => (name, LinkKind::Tunnel),
        Some((name, "wireless")) => (name, LinkKind::Wireless),
        Some((_, other)) => {
            return Err(format!("unknown interface kind {other:?} (wired, tunnel, wireless)"))
        }
    };
    // What Linux takes as a name (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/',
    // ':' or white space.
    let bad_char = name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || bad_char {
        return Err(format!("{name:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)"));
    }
    Ok(InterfaceArg { name: name.to_string(), kind })
}

/// A prefix (`ADDR/LEN`, or a bare address for a host route) that may be a route's
/// destination: martian prefixes are refused.
fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        // Digits only: u8's parser also takes a sign.
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
            l.parse::<u8>().map_err(|e| format!("{s:?}: prefix length: {e}"))?
        }
        Some(l) => return Err(format!("{s:?}: prefix length {l:?} is not a number of bits")),
        None => max,
    };
    let prefix = Prefix::new(addr, len).ok_or_else(|| format!("{s:?}: prefix length longer than {max}"))?;
    match prefix.martian() {
        Some(class) => Err(format!("{s:?}: a {class} prefix is never a route's destination")),
        None => Ok(prefix),
    }
}

/// 16 hex digits, colons anywhere between them.
fn parse_router_id(s: &str) -> Result<RouterId, String> {
    let mut id = [0u8; 8];
    let mut digits = 0usize;
    for c in s.chars().filter(|c| *c != ':') {
        let Some(value) = c.to_digit(16) else {
            return Err(format!(
                "{s:?}: {c:?} is not a hex digit (a router-id is 16 hex digits, colons allowed)"
            ));
        };
        if digits == 16 {
            return Err(format!("{s:?}: more than 16 hex digits (a router-id is 8 bytes)"));
        }
        // `to_digit(16)` is below 16: the value fits a nibble.
        id[digits / 2] |= (value as u8) << if digits.is_multiple_of(2) { 4 } else { 0 };
        digits += 1;
    }
    if digits != 16 {
        return Err(format!("{s:?}: {digits} hex digits; a router-id is 16"));
    }
    let id = RouterId(id);
    if !id.is_valid() {
        return Err(format!("{s:?}: a router-id is neither all zeros nor all ones"));
    }
    Ok(id)
}

fn interface_config(kind: LinkKind, hello_ms: Option<u64>, update_ms: Option<u64>) -> InterfaceConfig {
    let mut c = match kind {
        LinkKind::Wired => InterfaceConfig::wired(),
        LinkKind::Tunnel => InterfaceConfig::tunnel(),
        LinkKind::Wireless => InterfaceConfig::wireless(),
    };
    // Both bounded by the parser (`INTERVAL_MS`).
    if let Some(ms) = hello_ms {
        c = c.with_hello_ms(ms);
    }
    if let Some(ms) = update_ms {
        c = c.with_update_ms(ms);
    }
    c
}

/// The default router-id (see `--router-id`).
fn default_router_id(args: &RouteArgs) -> Result<RouterId, String> {
    let from_prefix =
        args.originate.iter().find(|p| !p.is_ipv4()).map(RouterId::from_prefix).filter(RouterId::is_valid);
    if let Some(id) = from_prefix {
        return Ok(id);
    }
    let first = &args.interfaces[0].name;
    let state = interfaces::link_state(first)
        .map_err(|e| format!("cannot read interface {first}: {e}"))?
        .ok_or_else(|| format!("no interface {first}"))?;
    let from_link = state.mac.map(interfaces::eui64).or_else(|| {
        state.link_local.map(|ll| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&ll.octets()[8..]);
            id
        })
    });
    from_link
        .map(RouterId)
        .filter(RouterId::is_valid)
        .ok_or_else(|| format!("{first} has no MAC and no link-local address: give --router-id"))
}

pub fn run(args: RouteArgs) -> Result<(), Box<dyn std::error::Error>> {
    args.check()?;
    for i in &args.interfaces {
        if interfaces::link_state(&i.name)?.is_none() {
            return Err(format!("no interface {}", i.name).into());
        }
    }
    let router_id = match args.router_id {
        Some(id) => id,
        None => default_router_id(&args)?,
    };
    let mut babel = BabelConfig::new(router_id);
    babel.fee_per_byte = args.fee;
    babel.limits = args.limits();
    if let Some(ms) = args.probe_interval_ms {
        babel.trust.probe_interval_ms = ms;
    }
    let node_config = BabelNodeConfig {
        babel,
        interfaces: args
            .interfaces
            .iter()
            .map(|i| (i.name.clone(), interface_config(i.kind, args.hello_ms, args.update_ms)))
            .collect(),
        originate: args.originate.clone(),
        port: PORT,
        link_poll: Duration::from_millis(args.link_poll_ms),
        in_use: args.probe.clone(),
        probes: (!args.no_probes).then(ProbePlan::default),
    };

    std::fs::create_dir_all(&args.log_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.log_dir.display()))?;
    // Open first: a refused start must change nothing, the boot counter included.
    let opened = flash::open(&args.log_dir, FlashConfig::default())?;
    let boot = flash::next_boot(&args.log_dir)?;
    let names: Vec<String> = args.interfaces.iter().map(|i| i.name.clone()).collect();

    let system = System::new();
    let outcome: Result<(), String> = system.block_on(async move {
        let clock = Clock::start(boot);
        let log = LogWriter::new(opened.store, opened.state.clone(), JournalConfig::default(), clock).start();
        let status = args.status.clone().map(|path| StatusFile::new(path, clock).start());
        let to_status = status.clone();
        let selected: Deliver<RouteSelected> = Arc::new(move |r: RouteSelected| {
            say(format_args!("selected {}", describe(&r)));
            if let Some(s) = &to_status {
                s.do_send(r);
            }
        });
        let limits: Deliver<LimitsReport> = Arc::new(|r: LimitsReport| say(format_args!("{}", limits_line(&r))));
        let node = match BabelNode::start(node_config, opened.state.routing, clock, log.clone(), selected, limits)
        {
            Ok(node) => node,
            Err(e) => {
                log.do_send(Shutdown);
                return Err(e.to_string());
            }
        };
        let originated: Vec<String> = args.originate.iter().map(Prefix::to_string).collect();
        say(format_args!(
            "started boot {boot} router-id {router_id} on {} originating [{}]",
            names.join(","),
            originated.join(" ")
        ));
        let why = wait_for_stop(args.lifetime_s).await;
        let report = node.shutdown(Duration::from_secs(3)).await;
        if let Some(s) = &status {
            // The last changes (every route unreachable) are in the file before we exit.
            let _ = s.send(WriteStatus).await;
        }
        say(format_args!(
            "stopped ({why}): retraction sent {}, routes left and purged {}, non-link-local datagrams dropped {}",
            report.retracted,
            report.routes_purged.map_or("unknown".to_string(), |n| n.to_string()),
            report.dropped_non_link_local
        ));
        log.do_send(Shutdown);
        Ok(())
    });
    system.run()?;
    outcome.map_err(Into::into)
}

async fn wait_for_stop(lifetime_s: u64) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let lifetime = async {
        if lifetime_s > 0 {
            actix_rt::time::sleep(Duration::from_secs(lifetime_s)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%e, "cannot watch SIGTERM");
            lifetime.await;
            return "lifetime over";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = lifetime => "lifetime over",
    }
}

/// `PREFIX via NEXT-HOP dev IFNAME neighbour ADDR price N|unpriced`, or `PREFIX unreachable`.
fn describe(r: &RouteSelected) -> String {
    match r.via {
        None => format!("{} unreachable", r.prefix),
        Some(v) => {
            let dev = interfaces::name_of(v.ifindex).unwrap_or_else(|| format!("#{}", v.ifindex));
            let price = r.price_per_byte.map_or("unpriced".to_string(), |p| p.to_string());
            format!("{} via {} dev {dev} neighbour {} price {price}", r.prefix, v.next_hop, v.neighbour)
        }
    }
}

/// `limits neighbours N candidates N routes N refused neighbours-full N …` (see the module docs).
fn limits_line(r: &LimitsReport) -> String {
    let f = &r.refused;
    format!(
        "limits neighbours {} candidates {} routes {} destinations {} refused neighbours-full {} \
         neighbours-rate {} candidates-evicted {} stranger-tlvs {} routes-per-neighbour {} routes-total {} \
         destinations {} martians {}",
        r.neighbours,
        r.candidates,
        r.route_entries,
        r.destinations,
        f.neighbours_full,
        f.neighbours_rate,
        f.candidates_evicted,
        f.stranger_tlvs,
        f.routes_per_neighbour,
        f.routes_total,
        f.destinations,
        f.martians
    )
}

/// Keeps the table of selected routes in a file (see the module docs).
struct StatusFile {
    path: PathBuf,
    table: BTreeMap<Prefix, RouteSelected>,
    scheduled: bool,
    clock: Clock,
    /// A status file that cannot be written (a full or read-only disk) is reported once,
    /// then as a count, and when it can be written again.
    errors: Throttle,
}

impl StatusFile {
    fn new(path: PathBuf, clock: Clock) -> Self {
        Self { path, table: BTreeMap::new(), scheduled: false, clock, errors: Throttle::default() }
    }

    fn write(&mut self) {
        let mut text = String::new();
        for r in self.table.values() {
            text.push_str(&describe(r));
            text.push('\n');
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => {
                if let Some(unreported) = self.errors.cleared("status") {
                    tracing::info!(path = %self.path.display(), unreported, "the status file is written again");
                }
            }
            Err(e) => {
                throttled_warn!(self.errors, "status", self.clock.now(), path = %self.path.display(), %e, "cannot write the status file")
            }
        }
    }
}

impl Actor for StatusFile {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.write();
    }
}

/// Write the file now.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteStatus;

impl Handler<WriteStatus> for StatusFile {
    type Result = ();

    fn handle(&mut self, _msg: WriteStatus, _ctx: &mut Context<Self>) {
        self.write();
    }
}

impl Handler<RouteSelected> for StatusFile {
    type Result = ();

    fn handle(&mut self, msg: RouteSelected, ctx: &mut Context<Self>) {
        match msg.via {
            Some(_) => self.table.insert(msg.prefix, msg),
            None => self.table.remove(&msg.prefix),
        };
        if !self.scheduled {
            self.scheduled = true;
            ctx.run_later(Duration::from_millis(50), |act, _| {
                act.scheduled = false;
                act.write();
            });
        }
    }
}

/// One line on stdout, flushed at once (tests read these lines as they come). A reader that
/// went away (a closed pipe) stops nothing.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `lastmile route ARGS…` as clap sees it.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: RouteArgs,
    }

    fn route(extra: &[&str]) -> Result<RouteArgs, String> {
        let base = ["lastmile", "--interface", "eth0", "--log-dir", "/nonexistent"];
        let args = Cli::try_parse_from(base.iter().chain(extra)).map_err(|e| e.to_string())?.args;
        args.check()?;
        Ok(args)
    }

    #[test]
    fn arguments_parse() {
        let i = parse_interface("wg0:tunnel").unwrap();
        assert_eq!((i.name.as_str(), i.kind), ("wg0", LinkKind::Tunnel));
        assert_eq!(parse_interface("eth0").unwrap().kind, LinkKind::Wired);
        assert!(parse_interface("eth0:fast").is_err());
        assert_eq!(parse_prefix("2001:db8:1::7/64").unwrap().to_string(), "2001:db8:1::/64");
        assert_eq!(parse_prefix("192.0.2.9").unwrap().to_string(), "192.0.2.9/32");
        assert!(parse_prefix("192.0.2.0/33").is_err());
        assert_eq!(
            parse_router_id("0011:2233:4455:6677").unwrap().0,
            [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
        );
        assert!(parse_router_id("0000000000000000").is_err());
        assert!(parse_router_id("00112233").is_err());
        let a = route(&[]).unwrap();
        assert_eq!(a.limits(), BabelLimits::default(), "the flags' defaults are the machine's");
    }

    /// Regression: the router-id was cut into two-byte slices of the string, so a non-ASCII
    /// character (several bytes in UTF-8) made `&hex[i..i + 2]` panic at a char boundary, and
    /// `u8::from_str_radix` took a leading sign, so `+100000000000000` (16 characters) was a
    /// router-id. Digits are now read one char at a time: anything but 16 hex digits (colons
    /// anywhere) is an error naming what is wrong, never a panic.
    #[test]
    fn router_ids_are_sixteen_hex_digits_or_a_clear_error() {
        assert_eq!(
            parse_router_id("00:11:22:33:44:55:66:77").unwrap().0,
            [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
        );
        assert_eq!(
            parse_router_id("ABCDEF0123456789").unwrap().0,
            [0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89]
        );
        for (bad, says) in [
            ("00112233445566é7", "'é' is not a hex digit"),
            ("é", "'é' is not a hex digit"),
            ("0011223344556677é", "'é' is not a hex digit"),
            ("日本語日本語日本語日本語日本語日", "not a hex digit"),
            ("+100000000000000", "'+' is not a hex digit"),
            ("-100000000000000", "'-' is not a hex digit"),
            ("0x11223344556677", "'x' is not a hex digit"),
            (" 011223344556677", "' ' is not a hex digit"),
            ("001122334455667", "15 hex digits"),
            ("00112233445566778", "more than 16"),
            ("", "0 hex digits"),
            (":::", "0 hex digits"),
            ("ffffffffffffffff", "neither all zeros nor all ones"),
        ] {
            let e = parse_router_id(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let e = route(&["--router-id", "+100000000000000"]).expect_err("a sign");
        assert!(e.contains("--router-id"), "the error names the flag: {e}");
    }

    /// Regression: `--originate` took fe80::/64, ff02::1/128 and ::1/128, which the node then
    /// announced and its neighbours installed. Martian prefixes are refused with their class;
    /// the default routes an exit announces are not martian.
    #[test]
    fn martian_prefixes_are_refused_with_their_class() {
        for (bad, class) in [
            ("fe80::/64", "link-local"),
            ("fe80::1", "link-local"),
            ("169.254.1.1", "link-local"),
            ("ff02::1/128", "multicast"),
            ("224.0.0.6", "multicast"),
            ("::1/128", "loopback"),
            ("127.0.0.1", "loopback"),
            ("::", "unspecified"),
            ("0.0.0.0/32", "unspecified"),
        ] {
            let e = parse_prefix(bad).expect_err(bad);
            assert!(e.contains(&format!("a {class} prefix")), "{bad}: {e}");
            let e = route(&["--originate", bad]).expect_err(bad);
            assert!(e.contains("--originate") && e.contains(class), "{bad}: {e}");
            assert!(route(&["--probe", bad]).is_err(), "{bad}");
        }
        assert!(parse_prefix("::/0").unwrap().is_default());
        assert!(parse_prefix("0.0.0.0/0").unwrap().is_default());
        // The prefix length is digits only (u8's parser takes a sign).
        for bad in [
            "2001:db8::/+64",
            "2001:db8::/-1",
            "2001:db8::/",
            "2001:db8::/1e2",
            "2001:db8::/0064",
            "2001:db8::/٦٤",
        ] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_prefix("2001:db8::/064").unwrap().len(), 64);
    }

    /// Every numeric flag is bounded: intervals of 0 (busy loops) and values so large that a
    /// deadline `now + interval` would overflow are errors that name the flag.
    #[test]
    fn numeric_flags_are_bounded_with_errors_that_name_the_flag() {
        for (flag, bad) in [
            ("--hello-ms", "0"),
            ("--hello-ms", "9"),
            ("--hello-ms", "655351"),
            ("--hello-ms", "18446744073709551615"),
            ("--hello-ms", "-5"),
            ("--update-ms", "0"),
            ("--update-ms", "99999999999"),
            ("--lifetime-s", "31536001"),
            ("--lifetime-s", "18446744073709551615"),
            ("--probe-interval-ms", "0"),
            ("--probe-interval-ms", "18446744073709551615"),
            ("--link-poll-ms", "0"),
            ("--link-poll-ms", "60001"),
            ("--max-neighbours-per-interface", "0"),
            ("--max-neighbours", "0"),
            ("--max-neighbours", "4097"),
            ("--max-candidates-per-interface", "0"),
            ("--admit-burst", "0"),
            ("--admit-interval-ms", "0"),
            ("--max-routes-per-neighbour", "0"),
            ("--max-routes", "0"),
            ("--max-routes", "1000001"),
            ("--max-routes", "4294967296"),
            ("--max-destinations", "0"),
            ("--max-hello-interval-ms", "999"),
            ("--fee", "-1"),
            ("--fee", "18446744073709551616"),
        ] {
            let arg = format!("{flag}={bad}");
            let e = route(&[&arg]).expect_err(&arg);
            assert!(e.contains(flag), "{arg}: {e}");
        }
        let a =
            route(&["--hello-ms", "10", "--update-ms", "655350", "--lifetime-s", "0", "--max-routes", "1"])
                .unwrap();
        assert_eq!((a.hello_ms, a.update_ms, a.limits().routes), (Some(10), Some(655_350), 1));
        let c = interface_config(LinkKind::Wired, a.hello_ms, a.update_ms);
        assert_eq!((c.hello_interval_ms, c.update_interval_ms), (10, 655_350));
    }

    /// Repeatable flags are bounded too, and an interface named twice is an error.
    #[test]
    fn repeated_flags_are_bounded_and_interfaces_unique() {
        let e = route(&["--interface", "eth0"]).expect_err("twice");
        assert!(e.contains("--interface eth0 is given twice"), "{e}");
        let many: Vec<String> = (0..256).map(|i| format!("--interface=e{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = route(&many).expect_err("257 interfaces");
        assert!(e.contains("--interface is given 257 times; at most 256"), "{e}");
        let originate: Vec<String> = (0..1025).map(|i| format!("--originate=2001:db8:{i:x}::/64")).collect();
        let originate: Vec<&str> = originate.iter().map(String::as_str).collect();
        let e = route(&originate).expect_err("1025 prefixes");
        assert!(e.contains("--originate is given 1025 times"), "{e}");
        for bad in ["", "a/b", "a b", "x:y:wired", "sixteen-bytes-xx", ".", ".."] {
            assert!(parse_interface(bad).is_err(), "{bad:?}");
        }
        assert!(parse_interface("fifteen-bytes-x").is_ok());
    }
}
