//! `lastmile sim`: the routing simulator ([`crate::sim::babel`]) on one scenario, with its
//! figures. The default scenario: a 7×7 grid of tunnels with the machine's default intervals,
//! 10 minutes of virtual time, one link failing at 5 min and recovering at 7 min, one node
//! crashing and rebooting at 8 min.
//!
//! Prints what happened in words, then every figure again as `figure: NAME VALUE UNIT`.

use crate::events::routing::{InterfaceConfig, LinkKind};
use crate::sim::babel::{BabelSim, Change, SimConfig, Topology, Window};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyArg {
    Grid,
    Geometric,
    Line,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    Tunnel,
    Wired,
    Wireless,
}

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    #[arg(long, value_enum, default_value = "grid")]
    topology: TopologyArg,
    /// Number of nodes (a grid is made as square as possible: width ⌊√n⌋).
    #[arg(long, default_value_t = 49)]
    nodes: usize,
    /// Mean degree of a geometric topology.
    #[arg(long, default_value_t = 5.0)]
    mean_degree: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual time to simulate.
    #[arg(long, default_value_t = 600)]
    duration_s: u64,
    /// Packet loss probability of every link (0..1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// One-way link delay; each link adds a seeded share of --delay-spread-ms.
    #[arg(long, default_value_t = 10)]
    delay_ms: u64,
    #[arg(long, default_value_t = 10)]
    delay_spread_ms: u64,
    #[arg(long, value_enum, default_value = "tunnel")]
    link_kind: KindArg,
    /// Hello interval (default: the link kind's, 4 s).
    #[arg(long)]
    hello_ms: Option<u64>,
    /// Periodic update interval (default: the link kind's, 60 s for tunnels, 16 s otherwise).
    #[arg(long)]
    update_ms: Option<u64>,
    /// Node fees are seeded in 0..=max-fee base units per byte.
    #[arg(long, default_value_t = 10)]
    max_fee: u64,
    /// A seeded link (one whose loss leaves the network connected) fails then (0: never).
    #[arg(long, default_value_t = 300)]
    fail_link_at_s: u64,
    /// ... and recovers then (0: never).
    #[arg(long, default_value_t = 420)]
    recover_link_at_s: u64,
    /// A seeded node crashes and reboots then (0: never).
    #[arg(long, default_value_t = 480)]
    restart_node_at_s: u64,
    /// How long the restarted node stays down.
    #[arg(long, default_value_t = 0)]
    down_s: u64,
    /// Forwarding check interval (convergence times are found to this precision).
    #[arg(long, default_value_t = 100)]
    check_ms: u64,
}

fn figure(name: &str, value: f64, unit: &str) {
    println!("figure: {name} {value:.3} {unit}");
}

pub fn run(args: SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    #[allow(clippy::disallowed_methods)] // Wall time of the run, for the operator only.
    let started = std::time::Instant::now();
    let topology = match args.topology {
        TopologyArg::Grid => {
            let width = (args.nodes as f64).sqrt().floor().max(1.0) as usize;
            Topology::Grid { width, height: args.nodes.div_ceil(width) }
        }
        TopologyArg::Geometric => {
            Topology::Geometric { nodes: args.nodes, mean_degree_milli: (args.mean_degree * 1000.0) as u32 }
        }
        TopologyArg::Line => Topology::Line { nodes: args.nodes },
    };
    if topology.nodes() < 2 {
        return Err("a network needs at least two nodes".into());
    }
    if !(0.0..1.0).contains(&args.loss) {
        return Err(format!("--loss {} is not a probability below 1", args.loss).into());
    }
    let mut interface = match args.link_kind {
        KindArg::Tunnel => InterfaceConfig::tunnel(),
        KindArg::Wired => InterfaceConfig::wired(),
        KindArg::Wireless => InterfaceConfig::wireless(),
    };
    interface = interface.with_hello_ms(args.hello_ms.unwrap_or(interface.hello_interval_ms).max(1));
    interface = interface.with_update_ms(args.update_ms.unwrap_or(interface.update_interval_ms).max(1));
    let mut config = SimConfig::new(args.seed, topology);
    config.interface = interface;
    config.delay_ms = args.delay_ms;
    config.delay_spread_ms = args.delay_spread_ms;
    config.loss_ppm = (args.loss * 1e6).round() as u32;
    config.max_fee = args.max_fee;
    config.boot_spread_ms = interface.hello_interval_ms;
    config.check_interval_ms = args.check_ms.max(1);
    config.babeld_accounting = true;
    let duration_ms = args.duration_s * 1000;
    let mut sim = BabelSim::new(config);
    let at = |s: u64| (s > 0 && s * 1000 < duration_ms).then_some(s * 1000);
    let link = sim.pick_link(args.seed ^ 0x11);
    let node = (args.seed ^ 0x22) as usize % sim.nodes.len();
    if let Some(t) = at(args.fail_link_at_s) {
        sim.schedule(t, Change::LinkDown(link));
    }
    if let Some(t) = at(args.recover_link_at_s).filter(|_| at(args.fail_link_at_s).is_some()) {
        sim.schedule(t, Change::LinkUp(link));
    }
    if let Some(t) = at(args.restart_node_at_s) {
        sim.schedule_restart(t, node, args.down_s * 1000);
    }
    let first_change =
        [args.fail_link_at_s, args.restart_node_at_s].into_iter().filter_map(at).min().unwrap_or(duration_ms);

    let kind = kind_name(interface.kind);
    println!(
        "lastmile sim: {topology}: {} nodes, {} links (mean degree {:.2}), seed {}",
        sim.graph.nodes,
        sim.links.len(),
        sim.graph.mean_degree(),
        args.seed
    );
    if sim.graph.components_drawn > 1 {
        println!(
            "  the geometric draw had {} components; {} shortest edges joined them",
            sim.graph.components_drawn, sim.graph.joined_components
        );
    }
    println!(
        "  {kind} links, Hello every {} ms, updates every {} ms, delay {}–{} ms, loss {:.2}%, fees 0–{}",
        interface.hello_interval_ms,
        interface.update_interval_ms,
        args.delay_ms,
        args.delay_ms + args.delay_spread_ms,
        args.loss * 100.0,
        args.max_fee
    );
    println!(
        "  {} s of virtual time; nodes boot within the first {} ms",
        args.duration_s, interface.hello_interval_ms
    );

    // The steady-state window: whole update intervals after the first convergence, before the
    // first scheduled change.
    let update_ms = interface.update_interval_ms;
    let window = sim.run_until_converged(1_000, first_change).map(|t| {
        let from = (t / update_ms + 1) * update_ms;
        let whole = first_change.saturating_sub(from) / update_ms;
        let to = if whole > 0 { from + whole * update_ms } else { first_change.max(from + 1) };
        sim.measure(from, to)
    });
    sim.run_until(duration_ms);

    println!("convergence (every {} ms, packets followed along the kernel routes):", args.check_ms);
    let mut link_down = None;
    let mut restart = None;
    for (i, e) in sim.epochs.iter().enumerate() {
        let c = e.convergence_ms();
        match c {
            Some(ms) => {
                println!("  t={:>7.1} s  {:<28} converged after {:.1} s", secs(e.start_ms), e.label, secs(ms))
            }
            None => println!(
                "  t={:>7.1} s  {:<28} NOT converged by its end ({} pairs unreached, {} looping)",
                secs(e.start_ms),
                e.label,
                e.verdict.no_route + e.verdict.dead_link,
                e.verdict.looped
            ),
        }
        let c = c.map_or(f64::NAN, secs);
        if i == 0 {
            figure("convergence_s", c, "s");
        } else if e.label.contains("down") && e.label.starts_with("link") {
            link_down.get_or_insert(c);
        } else if e.label.starts_with("node") {
            restart.get_or_insert(c);
        }
    }
    if let Some(c) = link_down {
        figure("reconvergence_link_failure_s", c, "s");
    }
    if let Some(c) = restart {
        figure("reconvergence_node_restart_s", c, "s");
    }
    match window {
        Some(w) => print_window(&w),
        None => println!("steady state: the network did not converge before the first change; no window"),
    }
    let t = sim.table_size();
    let entries_per_node = t.route_entries as f64 / t.nodes.max(1) as f64;
    let destinations_per_node = t.destinations as f64 / t.nodes.max(1) as f64;
    println!(
        "route table at the end: {entries_per_node:.1} route entries per node (max {}), {destinations_per_node:.1} destinations per node",
        t.max_route_entries
    );
    figure("route_entries_per_node", entries_per_node, "entries");
    figure("destinations_per_node", destinations_per_node, "destinations");
    if sim.bogus_routes + sim.misaddressed > 0 {
        println!(
            "MACHINE BUGS: {} routes through unknown interfaces or neighbours, {} misaddressed packets",
            sim.bogus_routes, sim.misaddressed
        );
    }
    match sim.drop_machines_measuring() {
        Some(bytes) => {
            let per = bytes as f64 / t.route_entries.max(1) as f64;
            println!(
                "memory: the machines hold {:.1} KiB, {per:.1} bytes per route entry (counting allocator: bytes requested, allocator overhead excluded)",
                bytes as f64 / 1024.0
            );
            figure("memory_bytes_per_route_entry", per, "bytes");
        }
        None => println!("memory: not measured (this binary does not count its heap)"),
    }
    figure("wall_time_s", started.elapsed().as_secs_f64(), "s");
    Ok(())
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn print_window(w: &Window) {
    println!(
        "steady state {:.0}–{:.0} s: per node {:.1} Babel payload bytes/s in {:.2} packets/s; \
         {:.1} bytes/s ({:.0} bit/s) with IPv6+UDP headers; the same packets in babeld's encoding \
         (no vector, a Router-Id TLV per route): {:.0} bit/s",
        secs(w.from_ms),
        secs(w.to_ms),
        w.payload_bytes_per_node_s(),
        w.traffic.packets as f64 * 1000.0 / (w.nodes.max(1) as f64 * (w.to_ms - w.from_ms) as f64),
        w.wire_bytes_per_node_s(),
        8.0 * w.wire_bytes_per_node_s(),
        8.0 * w.babeld_like_wire_bytes_per_node_s(),
    );
    figure("control_payload_bytes_per_s_per_node", w.payload_bytes_per_node_s(), "B/s");
    figure("control_wire_bytes_per_s_per_node", w.wire_bytes_per_node_s(), "B/s");
    figure("control_bits_per_s_per_node", 8.0 * w.wire_bytes_per_node_s(), "bit/s");
}

fn kind_name(k: LinkKind) -> &'static str {
    match k {
        LinkKind::Wired => "wired",
        LinkKind::Tunnel => "tunnel",
        LinkKind::Wireless => "wireless",
    }
}
