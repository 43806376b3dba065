//! The command line. Thin: it parses, builds the node from its parts and starts the actors.

mod demo;
mod route;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "lastmile", version, about = "One node of a decentralized, self-billing ISP")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the usage machine on simulated tunnel counters, logging to a real event log.
    /// Kill it at any moment and run it again: it recovers; `replay` reads the log.
    Demo(demo::DemoArgs),
    /// Run a routing node: Babel with lastmile's route vector on the named interfaces, the
    /// selected routes installed in the kernel, events in a real event log.
    Route(route::RouteArgs),
    /// Simulate a network of Babel machines in virtual time (link failures, restarts) and
    /// print convergence times, control traffic, route table size and memory per route.
    Sim(sim::SimArgs),
}

pub fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Route(args) => route::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lastmile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LASTMILE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
