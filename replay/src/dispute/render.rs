//! The report for people (text, one line per window, the verdict last) and for tools (one
//! JSON document, the [`Report`] as it is).

use std::io::{self, Write};

use lastmile::events::chain::TxHash;

use super::identify::addr_list;
use super::{PaymentRef, Report, VerdictKind};

fn short(h: &TxHash) -> String {
    let s = h.to_string();
    format!("{}…{}", &s[..10], &s[s.len() - 6..])
}

fn payment_text(p: &PaymentRef) -> String {
    let mut parts = Vec::new();
    if let Some(id) = p.id {
        parts.push(id.to_string());
    }
    if let Some(h) = &p.tx_hash {
        parts.push(short(h));
    }
    if let Some(b) = p.block {
        parts.push(format!("block {b}"));
    }
    parts.join(" ")
}

/// The verdict line, as printed last.
pub fn verdict_line(report: &Report) -> String {
    let t = &report.totals;
    let v = &report.verdict;
    let what = format!(
        "the payer accounted {} for {} B sent, the payee expected {} for {} B received",
        t.owed, t.tx_bytes, t.expected, t.rx_bytes
    );
    let head = match v.kind {
        VerdictKind::Consistent => "consistent".to_string(),
        VerdictKind::Overpaid => {
            format!("overpaid by {} (loss on the link: credit, not a dispute)", v.amount)
        }
        VerdictKind::WithinTolerance => {
            format!("consistent within tolerance: short by {} ≤ {}", v.amount, v.tolerance)
        }
        VerdictKind::Underpaid => {
            format!("underpaid by {} (beyond the tolerance of {})", v.amount, v.tolerance)
        }
    };
    let outstanding = if t.outstanding.0 > 0 {
        format!("; {} of it is not paid yet (owed by the payer's own log)", t.outstanding)
    } else {
        String::new()
    };
    format!("verdict: {head}: {what}{outstanding}")
}

/// Writes the human report.
pub fn render(out: &mut impl Write, report: &Report) -> io::Result<()> {
    for (role, side) in [("payer", &report.payer), ("payee", &report.payee)] {
        let addrs =
            if side.addresses.is_empty() { "no identity".to_string() } else { addr_list(&side.addresses) };
        let links = if side.links.is_empty() { "no usage".to_string() } else { side.links.join(", ") };
        writeln!(
            out,
            "{role}: {} ({addrs}); the other side is n{} there ({links})",
            side.log, side.neighbour.0
        )?;
    }
    writeln!(
        out,
        "windows close at payments found in both logs (same tx hash); balance = owed by the payer − expected by the payee"
    )?;
    for w in &report.windows {
        let closed = w
            .closed_by
            .as_ref()
            .map_or("open tail".to_string(), |p| format!("closed by {}", payment_text(p)));
        writeln!(
            out,
            "window {} ({closed}): tx {} B {} | rx {} B {} | owed {}, paid {} | expected {}, received {} | balance {}: {}",
            w.index,
            w.tx_bytes,
            w.payer_prices,
            w.rx_bytes,
            w.payee_prices,
            w.owed,
            w.paid,
            w.expected,
            w.received,
            w.balance.0,
            w.verdict
        )?;
    }
    for p in &report.unmatched {
        let text = match (p.paid, p.received) {
            (Some(a), _) => format!("confirmed by the payer ({a}) but not in the payee's log"),
            (_, Some(a)) => format!("received by the payee ({a}) but not in the payer's log"),
            _ => "in neither log".to_string(),
        };
        writeln!(out, "unmatched payment {}: {text}", payment_text(p))?;
    }
    for n in &report.notes {
        writeln!(out, "note: {n}")?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "totals: tx {} B, rx {} B; owed {}, paid {}; expected {}, received {}; balance {}",
        t.tx_bytes, t.rx_bytes, t.owed, t.paid, t.expected, t.received, t.balance.0
    )?;
    writeln!(out, "{}", verdict_line(report))
}

/// Writes the report as one JSON document and a newline.
pub fn render_json(out: &mut impl Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
