//! The `replay` command line; the logic and the exit codes are documented in the library.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use replay::dispute::{self, Selector, Tolerance};
use replay::state::Start;
use replay::{check, state, trace, DataDir, ReplayError};

/// Check, fold and trace a lastmile data directory. Never modifies it.
///
/// Exit codes: 0 ok (a torn tail is only a notice), 1 output failed, 2 cannot read / not a
/// lastmile data directory, 3 damaged log or snapshots, 4 undecodable record (newer event
/// version or malformed payload) or snapshot, 5 seq out of range (or a dispute log without
/// seq 1), 6 dispute: underpaid beyond the tolerance, 7 dispute: the logs cannot be compared
/// (not neighbours, ambiguous, swapped).
#[derive(Debug, Parser)]
#[command(name = "replay", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate every frame, decode every payload, report what recovery would cut.
    Check {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The folded node state: newest snapshot at or before the target plus the log after it.
    State {
        dir: PathBuf,
        /// The seq whose state to show (default: the last record).
        #[arg(long, value_name = "SEQ")]
        at: Option<u64>,
        /// Ignore snapshots and fold from seq 1 (the log must still hold it).
        #[arg(long)]
        from_start: bool,
        #[arg(long)]
        json: bool,
    },
    /// One line per record: `#SEQ vVERSION kind.name details`.
    Trace {
        dir: PathBuf,
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Compare a payer's and a payee's logs, window by window between the payments both show.
    ///
    /// Exit 0 when consistent or overpaid (loss is credit), 6 when the payer is cumulatively
    /// short beyond the tolerance, 7 when the logs cannot be compared as given.
    Dispute {
        /// The data directory of the node that sent the bytes and pays.
        #[arg(value_name = "PAYER_DIR")]
        payer: PathBuf,
        /// The data directory of the neighbour that forwarded them and is paid.
        #[arg(value_name = "PAYEE_DIR")]
        payee: PathBuf,
        /// The payee as the payer log knows it: a neighbour id (3, n3), a link (n3/d7: its
        /// neighbour counts, payments settle per neighbour) or the payee's address (0x…).
        #[arg(long, value_name = "NEIGHBOUR/DEST|ADDRESS")]
        link: Option<Selector>,
        /// The payer as the payee log knows it: a neighbour id or the payer's address.
        #[arg(long, value_name = "NEIGHBOUR|ADDRESS")]
        payee_link: Option<Selector>,
        /// How far the payer may be short: base units (500), a fraction (0.02) or a percentage
        /// (2%) of what the payee expected.
        #[arg(long, value_name = "BASE_UNITS|FRACTION", default_value = "0")]
        tolerance: Tolerance,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli.command, &mut out).and_then(|()| out.flush().map_err(ReplayError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not a failure.
        Err(ReplayError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever was written before the error goes out first.
            let _ = out.flush();
            eprintln!("replay: {e}");
            // Exit codes are small constants (1..=7).
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run(command: Command, out: &mut impl Write) -> Result<(), ReplayError> {
    match command {
        Command::Check { dir, json } => {
            let dir = DataDir::open(dir)?;
            let (report, error) = check::check(&dir)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::from)?;
                writeln!(out)?;
            } else {
                check::render(out, &report)?;
            }
            error.map_or(Ok(()), Err)
        }
        Command::State { dir, at, from_start, json } => {
            let dir = DataDir::open(dir)?;
            let start = if from_start { Start::FirstRecord } else { Start::Snapshot };
            let folded = state::fold(&dir, at, start)?;
            notice(&dir, json, out)?;
            if json {
                for note in &folded.notes {
                    eprintln!("replay: note: {note}");
                }
                state::render_json(out, &folded)?;
            } else {
                state::render(out, &folded)?;
            }
            Ok(())
        }
        Command::Trace { dir, from, to, json } => {
            let dir = DataDir::open(dir)?;
            notice(&dir, json, out)?;
            trace::trace(&dir, from, to, json, out)
        }
        Command::Dispute { payer, payee, link, payee_link, tolerance, json } => {
            let (payer, payee) = (DataDir::open(payer)?, DataDir::open(payee)?);
            for dir in [&payer, &payee] {
                for n in [dir.torn_tail_notice(), dir.holes_notice()].into_iter().flatten() {
                    eprintln!("replay: {}: {n}", dir.path().display());
                }
            }
            let (payer, payee) = (dispute::load(&payer)?, dispute::load(&payee)?);
            let options = dispute::Options { link, payee_link, tolerance };
            let report = dispute::dispute(&payer, &payee, &options)?;
            if json {
                dispute::render_json(out, &report)?;
            } else {
                dispute::render(out, &report)?;
            }
            report.error().map_or(Ok(()), Err)
        }
    }
}

/// The torn-tail and holes notices: on stdout for humans, on stderr when stdout is JSON.
fn notice(dir: &DataDir, json: bool, out: &mut impl Write) -> io::Result<()> {
    for n in [dir.torn_tail_notice(), dir.holes_notice()].into_iter().flatten() {
        if json {
            eprintln!("replay: {n}");
        } else {
            writeln!(out, "{n}")?;
        }
    }
    Ok(())
}
