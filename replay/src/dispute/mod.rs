//! `replay dispute PAYER_DIR PAYEE_DIR`: replays two neighbours' logs side by side and says
//! whether the payer accounted for, and paid, what the payee expected.
//!
//! **Who is who.** Each log names its own payment address (`IdentitySet`) and binds its
//! neighbours' ids to their addresses (`NeighbourBound`). The payee is the neighbour of the
//! payer log bound to an address of the payee log, and the other way round. Destination ids
//! are interned per node and payments settle per neighbour, so the dispute covers every
//! destination through that neighbour. A log that binds the other one under several neighbour
//! ids is ambiguous: the candidates are listed and `--link` (payer side) or `--payee-link`
//! (payee side) names one. A log without an identity (written before lastmile recorded it) is
//! identified by `--link`, or for a payer by its payments found in the payee's log.
//!
//! **Billing windows.** A payment that appears in both logs (the payer's `PaymentSigned` and
//! the payee's `PaymentReceived` carry the same transaction hash) closes a window: in the
//! payer log at its `PaymentIntended` (the payer paid what it owed when it decided to pay), in
//! the payee log at its `PaymentReceived`. The last window is the open tail after the last
//! such payment. Per window: the payer's tx bytes at the prices it was quoted (owed) and the
//! payments it confirmed (paid); the payee's rx bytes at the lowest price it advertised since
//! the link's previous record (expected, computed by lastmile's own ledger fold) and the
//! payments it received.
//!
//! **Verdict.** The balance is what the payer accounted minus what the payee expected
//! (`owed − expected`, cumulative): positive is overpayment (loss on the link, or a price
//! that fell in flight), credited, never a dispute; negative beyond the tolerance is
//! underpayment. The two sides read their counters at different moments, so a window can
//! differ by bytes that the next window makes up; only the cumulative balance decides. What
//! the payer owes by its own log and has not paid yet (below its pay threshold) is reported
//! as outstanding, not as a dispute; a payment one side has and the other has not is listed.
//!
//! **In order**, one file each: `identify` who is who, `sides` each log's own figures for
//! the link, `windows` both cut at the shared payments; the totals and the verdict here;
//! `render` as text or JSON.

mod identify;
mod render;
mod sides;
mod windows;

pub use identify::Side;
pub use render::{render, render_json, verdict_line};
pub use windows::{PaymentRef, Prices, Signed, Window, WindowVerdict};

use std::fmt;
use std::str::FromStr;

use lastmile::events::chain::{Address, Amount};
use lastmile::events::usage::NeighbourId;
use lastmile::events::Event;
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::error::ReplayError;
use crate::{decode_record, read_error};
use identify::Parties;
use sides::{PayeeSide, PayerSide};
use windows::Cut;

/// One side's log, decoded: every event from seq 1, in order.
#[derive(Debug, Clone)]
pub struct Log {
    /// How the log is named in messages (its directory).
    pub name: String,
    pub events: Vec<Event>,
}

/// Reads every record of `dir`. Refuses a damaged log (exit 3) and one whose first records
/// were compacted away (exit 5): the balance is cumulative from the first record.
pub fn load(dir: &DataDir) -> Result<Log, ReplayError> {
    if let Some(e) = dir.damage() {
        return Err(e);
    }
    let name = dir.path().display().to_string();
    let first = dir.scan.segments.first().map_or(dir.scan.next_seq, |s| s.base_seq);
    if first > 1 {
        return Err(ReplayError::OutOfRange(format!(
            "{name}: a dispute replays the log from seq 1, but its first retained record is seq {first} \
             (older records were compacted after a snapshot)"
        )));
    }
    let mut events = Vec::new();
    let mut reader = dir.records(1);
    while let Some(rec) = reader.next().map_err(|e| read_error(dir, e))? {
        events.push(decode_record(rec.seq, rec.version, rec.payload)?);
    }
    Ok(Log { name, events })
}

/// The dispute between `payer` and `payee`. Pure: only the two decoded logs.
pub fn dispute(payer: &Log, payee: &Log, options: &Options) -> Result<Report, ReplayError> {
    let parties = Parties::of(payer, payee, options)?;
    let payer_side = PayerSide::of(payer, &parties);
    let payee_side = PayeeSide::of(payee, &parties, &payer_side);
    sides::check_direction(payer, &payer_side, payee, &payee_side)?;
    let mut notes = parties.notes.clone();
    let Cut { windows, unmatched } = Cut::of(&payer_side, &payee_side, &mut notes);
    let totals = Totals::of(&windows, payee_side.forgiven);
    if totals.forgiven.0 > 0 {
        notes.push(format!(
            "the payee forgave {} (explicit Forgiven events; not part of the balance)",
            totals.forgiven
        ));
    }
    let verdict = Verdict::of(&totals, options.tolerance);
    Ok(Report {
        payer: parties.payer.side(payer),
        payee: parties.payee.side(payee),
        windows,
        unmatched,
        notes,
        totals,
        verdict,
    })
}

/// How `--link` / `--payee-link` name the other side: a neighbour id of this log (`3`, `n3`,
/// or a link `n3/d7`, whose neighbour part counts), or the other side's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Neighbour(NeighbourId),
    Address(Address),
}

impl FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("0x") {
            return s.parse().map(Selector::Address);
        }
        let (n, d) = s.split_once('/').map_or((s, None), |(n, d)| (n, Some(d)));
        let id = |text: &str, prefix: char| text.strip_prefix(prefix).unwrap_or(text).parse::<u32>().ok();
        match (id(n, 'n'), d.map(|d| id(d, 'd'))) {
            (Some(n), None | Some(Some(_))) => Ok(Selector::Neighbour(NeighbourId(n))),
            _ => Err(format!(
                "{s:?} is neither a neighbour (n3), a link (n3/d7) nor an address (0x + 40 hex digits)"
            )),
        }
    }
}

/// How far the payer may fall short before it is a dispute: base units, or a fraction of
/// what the payee expected in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    Units(u128),
    /// `numerator / denominator` of the expected total (rounded down).
    Fraction {
        numerator: u128,
        denominator: u128,
    },
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::Units(0)
    }
}

impl FromStr for Tolerance {
    type Err = String;
    /// `500` (base units), `0.02` or `2%` (fraction of the expected total). Integers only
    /// inside: a decimal is read as a ratio of integers, never as a float.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a tolerance: base units (500), a fraction (0.02) or a percentage (2%)");
        let (text, percent) = s.strip_suffix('%').map_or((s, false), |t| (t, true));
        let (int, frac) = text.split_once('.').map_or((text, None), |(i, f)| (i, Some(f)));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(bad());
        }
        if frac.is_none() && !percent {
            return int.parse().map(Tolerance::Units).map_err(|_| bad());
        }
        let frac = frac.unwrap_or("");
        let numerator: u128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        let scale = 10u128.checked_pow(frac.len() as u32).ok_or_else(bad)?;
        let denominator = if percent { scale.checked_mul(100).ok_or_else(bad)? } else { scale };
        Ok(Tolerance::Fraction { numerator, denominator })
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Units(u) => write!(f, "{u}"),
            Tolerance::Fraction { numerator, denominator } => {
                write!(f, "{numerator}/{denominator} of expected")
            }
        }
    }
}

impl Tolerance {
    fn of(&self, expected: u128) -> u128 {
        match *self {
            Tolerance::Units(u) => u,
            Tolerance::Fraction { numerator, denominator } => {
                // expected × n / d without overflow for any realistic amount; saturate beyond.
                expected.checked_mul(numerator).map_or(u128::MAX, |x| x / denominator.max(1))
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The payer log's neighbour id for the payee, or the payee's address.
    pub link: Option<Selector>,
    /// The payee log's neighbour id for the payer, or the payer's address.
    pub payee_link: Option<Selector>,
    pub tolerance: Tolerance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Consistent,
    Overpaid,
    /// Short, but within the tolerance.
    WithinTolerance,
    Underpaid,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub owed: Amount,
    pub expected: Amount,
    pub paid: Amount,
    pub received: Amount,
    /// Written off by the payee (`Forgiven`).
    pub forgiven: Amount,
    /// `owed − expected`.
    pub balance: Signed,
    /// What the payer owes by its own log and has not paid (`owed − paid`, ≥ 0).
    pub outstanding: Amount,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// Overpaid or short by this much (0 when consistent).
    pub amount: Amount,
    pub tolerance: Amount,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub payer: Side,
    pub payee: Side,
    pub windows: Vec<Window>,
    /// Payments only one log shows.
    pub unmatched: Vec<PaymentRef>,
    pub notes: Vec<String>,
    pub totals: Totals,
    pub verdict: Verdict,
}

impl Report {
    /// The error that makes the exit code nonzero: underpaid beyond the tolerance.
    pub fn error(&self) -> Option<ReplayError> {
        (self.verdict.kind == VerdictKind::Underpaid).then_some(ReplayError::Underpaid {
            amount: self.verdict.amount.0,
            tolerance: self.verdict.tolerance.0,
        })
    }
}

fn not_comparable(text: String) -> ReplayError {
    ReplayError::NotComparable(text)
}

impl Totals {
    /// The sums over every window; `balance` is the last window's.
    fn of(windows: &[Window], forgiven: u128) -> Self {
        let sum = |f: fn(&Window) -> u128| windows.iter().fold(0u128, |s, w| s.saturating_add(f(w)));
        let bytes = |f: fn(&Window) -> u64| windows.iter().fold(0u64, |s, w| s.saturating_add(f(w)));
        let (owed, expected, paid) = (sum(|w| w.owed.0), sum(|w| w.expected.0), sum(|w| w.paid.0));
        Totals {
            tx_bytes: bytes(|w| w.tx_bytes),
            rx_bytes: bytes(|w| w.rx_bytes),
            owed: Amount(owed),
            expected: Amount(expected),
            paid: Amount(paid),
            received: Amount(sum(|w| w.received.0)),
            forgiven: Amount(forgiven),
            balance: windows.last().map_or(Signed(0), |w| w.balance),
            outstanding: Amount(owed.saturating_sub(paid)),
        }
    }
}

impl Verdict {
    /// Decided by the cumulative balance alone, against `tolerance` of what was expected.
    fn of(totals: &Totals, tolerance: Tolerance) -> Self {
        let tolerance = tolerance.of(totals.expected.0);
        let (kind, amount) = match totals.balance.0 {
            0 => (VerdictKind::Consistent, 0),
            b if b > 0 => (VerdictKind::Overpaid, b.unsigned_abs()),
            b if b.unsigned_abs() <= tolerance => (VerdictKind::WithinTolerance, b.unsigned_abs()),
            b => (VerdictKind::Underpaid, b.unsigned_abs()),
        };
        Verdict { kind, amount: Amount(amount), tolerance: Amount(tolerance) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_are_base_units_or_exact_ratios() {
        assert_eq!("500".parse(), Ok(Tolerance::Units(500)));
        assert_eq!("0.02".parse(), Ok(Tolerance::Fraction { numerator: 2, denominator: 100 }));
        assert_eq!("2%".parse(), Ok(Tolerance::Fraction { numerator: 2, denominator: 100 }));
        assert_eq!("2.5%".parse(), Ok(Tolerance::Fraction { numerator: 25, denominator: 1000 }));
        assert_eq!("2.5%".parse::<Tolerance>().unwrap().of(40_000), 1_000);
        for bad in ["", "-1", "1e3", "0.", ".5", "5%%", "x"] {
            assert!(bad.parse::<Tolerance>().is_err(), "{bad:?}");
        }
    }

    /// A fraction of the expected total is rounded down, never to nearest: the tolerance
    /// never grows past what was asked for.
    #[test]
    fn fractional_tolerances_round_down() {
        let of = |text: &str, expected: u128| text.parse::<Tolerance>().unwrap().of(expected);
        assert_eq!(of("30%", 40_000), 12_000);
        assert_eq!(of("29.999%", 40_000), 11_999, "11,999.6");
        assert_eq!(of("0.5", 3), 1, "1.5");
        assert_eq!(of("0.003%", 30_010), 0, "0.9003");
        assert_eq!(of("1", 30_010), 1, "units are not a fraction");
        assert_eq!(of("100%", u128::MAX), u128::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn selectors_name_a_neighbour_a_link_or_an_address() {
        assert_eq!("3".parse(), Ok(Selector::Neighbour(NeighbourId(3))));
        assert_eq!("n3".parse(), Ok(Selector::Neighbour(NeighbourId(3))));
        assert_eq!("n3/d7".parse(), Ok(Selector::Neighbour(NeighbourId(3))));
        let a = format!("0x{}", "ab".repeat(20));
        assert_eq!(a.parse(), Ok(Selector::Address(Address([0xab; 20]))));
        for bad in ["n", "n3/", "n3/dx", "0x12", "d3"] {
            assert!(bad.parse::<Selector>().is_err(), "{bad:?}");
        }
    }
}
