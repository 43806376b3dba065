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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use lastmile::events::billing::BillingEvent;
use lastmile::events::chain::{Address, Amount, PaymentId, TxHash};
use lastmile::events::usage::{DestinationId, NeighbourId, UsageEvent};
use lastmile::events::{Event, Fold};
use lastmile::machines::billing::BillingLedger;
use serde::Serialize;

use crate::data_dir::DataDir;
use crate::error::ReplayError;
use crate::{decode_record, read_error};

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

/// One side as identified.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub log: String,
    /// Its own payment addresses (`IdentitySet`; empty if it never recorded one).
    pub addresses: Vec<Address>,
    /// The neighbour id this log uses for the other side.
    pub neighbour: NeighbourId,
    /// The links (`nN/dD`) it recorded usage on for that neighbour.
    pub links: Vec<String>,
}

/// Lowest and highest price per byte used in a window; `unpriced` if some bytes had none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Prices {
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub unpriced: bool,
}

impl Prices {
    fn add(&mut self, price: Option<u64>) {
        match price {
            Some(p) => {
                self.min = Some(self.min.map_or(p, |m| m.min(p)));
                self.max = Some(self.max.map_or(p, |m| m.max(p)));
            }
            None => self.unpriced = true,
        }
    }
}

impl fmt::Display for Prices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "@{a}")?,
            (Some(a), Some(b)) => write!(f, "@{a}..{b}")?,
            _ if self.unpriced => return write!(f, "unpriced"),
            _ => return write!(f, "@-"),
        }
        if self.unpriced {
            write!(f, " (some unpriced)")?;
        }
        Ok(())
    }
}

/// A payment as both logs (or one of them) show it.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentRef {
    /// The payer's payment id, if the payer log has it.
    pub id: Option<PaymentId>,
    pub tx_hash: Option<TxHash>,
    /// Confirmed on the payer side (`None`: not confirmed in its log).
    pub paid: Option<Amount>,
    /// Received on the payee side (`None`: not in its log).
    pub received: Option<Amount>,
    pub block: Option<u64>,
}

/// Signed amounts (balances, differences) as decimal strings in JSON, like [`Amount`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signed(pub i128);

impl Serialize for Signed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "amount", rename_all = "snake_case")]
pub enum WindowVerdict {
    Consistent,
    /// The payer accounted more than expected: loss or a price that fell; credit.
    Overpaid(Amount),
    Underpaid(Amount),
}

impl WindowVerdict {
    fn of(diff: i128) -> Self {
        match diff {
            0 => Self::Consistent,
            d if d > 0 => Self::Overpaid(Amount(d.unsigned_abs())),
            d => Self::Underpaid(Amount(d.unsigned_abs())),
        }
    }
}

impl fmt::Display for WindowVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Consistent => write!(f, "consistent"),
            Self::Overpaid(a) => write!(f, "overpaid by {a} (loss: credit)"),
            Self::Underpaid(a) => write!(f, "underpaid by {a}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// 1-based.
    pub index: usize,
    /// The payment found in both logs that closes it; `None` for the open tail.
    pub closed_by: Option<PaymentRef>,
    pub tx_bytes: u64,
    pub payer_prices: Prices,
    pub owed: Amount,
    /// Confirmed in the payer log, by the payments it decided in this window.
    pub paid: Amount,
    pub rx_bytes: u64,
    pub payee_prices: Prices,
    pub expected: Amount,
    pub received: Amount,
    /// `owed − expected` in this window.
    pub diff: Signed,
    /// `owed − expected`, cumulative up to the end of this window.
    pub balance: Signed,
    pub verdict: WindowVerdict,
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

/// What identification needs from one log.
#[derive(Debug, Default)]
struct Directory {
    identities: Vec<Address>,
    /// Every address each neighbour id was bound to, in order.
    bindings: BTreeMap<NeighbourId, Vec<Address>>,
    destinations: BTreeMap<NeighbourId, BTreeSet<DestinationId>>,
    /// Hashes of the payments it signed, per neighbour paid.
    signed: BTreeMap<TxHash, NeighbourId>,
    /// Neighbours it received each transaction from.
    received: BTreeMap<TxHash, NeighbourId>,
}

impl Directory {
    fn of(log: &Log) -> Self {
        let mut d = Directory::default();
        let mut intents = BTreeMap::new();
        for e in &log.events {
            match e {
                Event::Billing(BillingEvent::IdentitySet { address }) if !d.identities.contains(address) => {
                    d.identities.push(*address)
                }
                Event::Billing(BillingEvent::NeighbourBound { neighbour, address }) => {
                    let v = d.bindings.entry(*neighbour).or_default();
                    if !v.contains(address) {
                        v.push(*address);
                    }
                }
                Event::Billing(BillingEvent::PaymentIntended { id, neighbour, .. }) => {
                    intents.insert(*id, *neighbour);
                }
                Event::Billing(BillingEvent::PaymentSigned { id, tx_hash, .. }) => {
                    if let Some(n) = intents.get(id) {
                        d.signed.insert(*tx_hash, *n);
                    }
                }
                Event::Billing(BillingEvent::PaymentReceived { neighbour, tx_hash, .. }) => {
                    d.received.insert(*tx_hash, *neighbour);
                }
                Event::Usage(UsageEvent::Accrued(r)) => {
                    d.destinations.entry(r.link.neighbour).or_default().insert(r.link.destination);
                }
                _ => {}
            }
        }
        d
    }

    fn links(&self, n: NeighbourId) -> Vec<String> {
        self.destinations
            .get(&n)
            .map_or_else(Vec::new, |ds| ds.iter().map(|d| format!("n{}/d{}", n.0, d.0)).collect())
    }

    fn describe(&self, n: NeighbourId) -> String {
        let addrs: Vec<String> =
            self.bindings.get(&n).map_or_else(Vec::new, |v| v.iter().map(Address::to_string).collect());
        let links = self.links(n);
        format!(
            "n{} → {}{}",
            n.0,
            if addrs.is_empty() { "no address".to_string() } else { addrs.join(", ") },
            if links.is_empty() { String::new() } else { format!(" (links {})", links.join(", ")) }
        )
    }

    fn bound_list(&self) -> String {
        if self.bindings.is_empty() {
            return "it binds no neighbour at all".to_string();
        }
        let all: Vec<String> = self.bindings.keys().map(|n| self.describe(*n)).collect();
        format!("it binds {}", all.join("; "))
    }

    fn ids_bound_to(&self, addrs: &[Address]) -> Vec<NeighbourId> {
        self.bindings.iter().filter(|(_, v)| v.iter().any(|a| addrs.contains(a))).map(|(n, _)| *n).collect()
    }
}

fn addr_list(addrs: &[Address]) -> String {
    addrs.iter().map(Address::to_string).collect::<Vec<_>>().join(", ")
}

/// Finds the neighbour id that `this` log uses for `other`, whose addresses are `other_addrs`
/// (`inferred` when they come from matched payments rather than its `IdentitySet`). `flag`
/// names the option that selects it.
fn identify(
    this: (&Log, &Directory),
    other: (&Log, &[Address]),
    selector: Option<Selector>,
    flag: &str,
) -> Result<(NeighbourId, Vec<Address>), ReplayError> {
    let (log, dir) = this;
    let (other_log, identities) = other;
    let mut addrs = identities.to_vec();
    match selector {
        Some(Selector::Address(a)) => {
            if !addrs.is_empty() && !addrs.contains(&a) {
                return Err(not_comparable(format!(
                    "{flag} {a}: {} is identified by {}, not by {a}",
                    other_log.name,
                    addr_list(&addrs)
                )));
            }
            addrs = vec![a];
        }
        Some(Selector::Neighbour(n)) => {
            let bound = dir.bindings.get(&n).cloned().unwrap_or_default();
            if bound.is_empty() {
                return Err(not_comparable(format!(
                    "{flag} n{}: {} binds no address to n{}; {}",
                    n.0,
                    log.name,
                    n.0,
                    dir.bound_list()
                )));
            }
            if addrs.is_empty() {
                addrs = bound;
            } else if !bound.iter().any(|a| addrs.contains(a)) {
                return Err(not_comparable(format!(
                    "{flag} n{}: {} binds n{} to {}, which is not {} ({})",
                    n.0,
                    log.name,
                    n.0,
                    addr_list(&bound),
                    other_log.name,
                    addr_list(&addrs)
                )));
            }
            return Ok((n, addrs));
        }
        None => {}
    }
    if addrs.is_empty() {
        return Err(not_comparable(format!(
            "{} records no payment address (no IdentitySet), so which neighbour of {} it is cannot be \
             told; name it with {flag} NEIGHBOUR or {flag} ADDRESS ({})",
            other_log.name,
            log.name,
            dir.bound_list()
        )));
    }
    let ids = dir.ids_bound_to(&addrs);
    match ids[..] {
        [n] => Ok((n, addrs)),
        [] => Err(not_comparable(format!(
            "the logs are not neighbours: {} binds no neighbour to {}'s address {}; {}",
            log.name,
            other_log.name,
            addr_list(&addrs),
            dir.bound_list()
        ))),
        _ => {
            let list: Vec<String> = ids.iter().map(|n| dir.describe(*n)).collect();
            Err(not_comparable(format!(
                "{} binds {} ({}) under several neighbour ids: {}; name one with {flag} (e.g. {flag} n{})",
                log.name,
                other_log.name,
                addr_list(&addrs),
                list.join("; "),
                ids[0].0
            )))
        }
    }
}

/// A payment of the payer to the payee, from the payer log.
#[derive(Debug, Clone)]
struct Outgoing {
    id: PaymentId,
    /// Index of its intent in the payer log.
    at: usize,
    amount: Amount,
    hashes: Vec<TxHash>,
    confirmed: Option<u64>,
}

/// A payment the payee received from the payer.
#[derive(Debug, Clone)]
struct Incoming {
    at: usize,
    tx_hash: TxHash,
    amount: Amount,
    block: u64,
}

/// What one window accumulates, before the cumulative pass.
#[derive(Debug, Clone, Default)]
struct Acc {
    tx_bytes: u64,
    payer_prices: Prices,
    owed: u128,
    paid: u128,
    rx_bytes: u64,
    payee_prices: Prices,
    expected: u128,
    received: u128,
}

/// The dispute between `payer` and `payee`. Pure: only the two decoded logs.
pub fn dispute(payer: &Log, payee: &Log, options: &Options) -> Result<Report, ReplayError> {
    let payer_dir = Directory::of(payer);
    let payee_dir = Directory::of(payee);

    // The payee, as the payer knows it.
    let (payer_n, payee_addrs) =
        identify((payer, &payer_dir), (payee, &payee_dir.identities), options.link, "--link")?;
    // The payer, as the payee knows it; without an identity, by its payments the payee got.
    let mut payer_addrs = payer_dir.identities.clone();
    if payer_addrs.is_empty() && options.payee_link.is_none() {
        for (hash, n) in &payee_dir.received {
            if payer_dir.signed.get(hash) == Some(&payer_n) {
                for a in payee_dir.bindings.get(n).into_iter().flatten() {
                    if !payer_addrs.contains(a) {
                        payer_addrs.push(*a);
                    }
                }
            }
        }
    }
    let (payee_n, payer_addrs) =
        identify((payee, &payee_dir), (payer, &payer_addrs), options.payee_link, "--payee-link")?;

    let mut notes = Vec::new();
    if payer_dir.identities.is_empty() {
        notes.push(format!("{} records no identity; identified as {}", payer.name, addr_list(&payer_addrs)));
    }
    if payee_dir.identities.is_empty() {
        notes.push(format!("{} records no identity; identified as {}", payee.name, addr_list(&payee_addrs)));
    }

    // The payer's side: usage through the payee and payments to it, in log order, counted
    // while its neighbour id is bound to the payee (before any binding: its first one).
    let current_binding =
        |dir: &Directory, n: NeighbourId| dir.bindings.get(&n).and_then(|v| v.first().copied());
    let mut bound = current_binding(&payer_dir, payer_n);
    let mut usage_out = Vec::new(); // (index, tx_bytes, price, amount)
    let mut reverse_tx = 0u64; // the payee's tx bytes through the payer (swap detection)
    let mut outgoing: BTreeMap<PaymentId, Outgoing> = BTreeMap::new();
    for (at, e) in payer.events.iter().enumerate() {
        let ours = |n: NeighbourId, bound: Option<Address>| {
            n == payer_n && bound.is_some_and(|a| payee_addrs.contains(&a))
        };
        match e {
            Event::Billing(BillingEvent::NeighbourBound { neighbour, address }) if *neighbour == payer_n => {
                bound = Some(*address)
            }
            Event::Usage(UsageEvent::Accrued(r)) if ours(r.link.neighbour, bound) => {
                usage_out.push((at, r.tx_bytes, r.price_per_byte, r.tx_amount()))
            }
            Event::Billing(BillingEvent::PaymentIntended { id, neighbour, amount, .. })
                if ours(*neighbour, bound) =>
            {
                outgoing
                    .insert(*id, Outgoing { id: *id, at, amount: *amount, hashes: vec![], confirmed: None });
            }
            Event::Billing(BillingEvent::PaymentSigned { id, tx_hash, .. }) => {
                if let Some(p) = outgoing.get_mut(id) {
                    if !p.hashes.contains(tx_hash) {
                        p.hashes.push(*tx_hash);
                    }
                }
            }
            Event::Billing(BillingEvent::PaymentConfirmed { id, block }) => {
                if let Some(p) = outgoing.get_mut(id) {
                    p.confirmed = Some(*block);
                }
            }
            Event::Billing(BillingEvent::PaymentFailed { id, .. }) => {
                outgoing.remove(id);
            }
            _ => {}
        }
    }
    let payer_hashes: BTreeMap<TxHash, PaymentId> =
        outgoing.values().flat_map(|p| p.hashes.iter().map(move |h| (*h, p.id))).collect();

    // The payee's side: rx bytes from the payer at the price lastmile's own ledger expects
    // (the lowest advertised since the link's previous record), and payments received.
    let mut ledger = BillingLedger::default();
    let mut bound = current_binding(&payee_dir, payee_n);
    let mut usage_in = Vec::new(); // (index, rx_bytes, price, amount)
    let mut incoming = Vec::new();
    let mut forgiven = 0u128;
    let mut reverse_paid = false;
    for (at, e) in payee.events.iter().enumerate() {
        let ours = |n: NeighbourId, bound: Option<Address>| {
            n == payee_n && bound.is_some_and(|a| payer_addrs.contains(&a))
        };
        match e {
            Event::Billing(BillingEvent::NeighbourBound { neighbour, address }) if *neighbour == payee_n => {
                bound = Some(*address)
            }
            Event::Usage(UsageEvent::Accrued(r)) if ours(r.link.neighbour, bound) => {
                let price = ledger.rx_price(r.link);
                let amount = u128::from(r.rx_bytes) * u128::from(price.unwrap_or(0));
                usage_in.push((at, r.rx_bytes, price, amount));
                reverse_tx = reverse_tx.saturating_add(r.tx_bytes);
            }
            Event::Billing(BillingEvent::PaymentReceived { neighbour, tx_hash, amount, block, .. })
                if ours(*neighbour, bound) || payer_hashes.contains_key(tx_hash) =>
            {
                incoming.push(Incoming { at, tx_hash: *tx_hash, amount: *amount, block: *block })
            }
            Event::Billing(BillingEvent::Forgiven { neighbour, amount, .. }) if ours(*neighbour, bound) => {
                forgiven = forgiven.saturating_add(amount.0)
            }
            Event::Billing(BillingEvent::PaymentIntended { neighbour, .. }) if ours(*neighbour, bound) => {
                reverse_paid = true
            }
            _ => {}
        }
        ledger.apply(e);
    }

    // Arguments the wrong way round: nothing flows from "payer" to "payee", but the other way.
    let forward = usage_out.iter().any(|u| u.1 > 0)
        || !outgoing.is_empty()
        || usage_in.iter().any(|u| u.1 > 0)
        || !incoming.is_empty();
    if !forward && (reverse_tx > 0 || reverse_paid) {
        return Err(not_comparable(format!(
            "the arguments look swapped: {} sent nothing through {} and paid it nothing, but {} sent {} byte(s) \
             through it{}; the payer comes first: replay dispute {} {}",
            payer.name,
            payee.name,
            payee.name,
            reverse_tx,
            if reverse_paid { " and paid it" } else { "" },
            payee.name,
            payer.name
        )));
    }

    // Windows: payments in both logs, in the payer's order, close them.
    let mut boundaries = Vec::new(); // (payer index, payee index, PaymentRef)
    let mut matched_in = BTreeSet::new();
    let mut unmatched = Vec::new();
    let mut payee_at = 0;
    for p in outgoing.values() {
        let found = incoming.iter().enumerate().find(|(_, r)| p.hashes.contains(&r.tx_hash));
        let paid = p.confirmed.map(|_| p.amount);
        match found {
            Some((k, r)) => {
                matched_in.insert(k);
                payee_at = payee_at.max(r.at);
                if r.amount != p.amount {
                    notes.push(format!(
                        "payment {} ({}): the payer intended {} but the payee received {}",
                        p.id, r.tx_hash, p.amount, r.amount
                    ));
                }
                if p.confirmed.is_none() {
                    notes.push(format!(
                        "payment {} ({}) was received by the payee but is not confirmed in the payer's log",
                        p.id, r.tx_hash
                    ));
                }
                boundaries.push((
                    p.at,
                    payee_at,
                    PaymentRef {
                        id: Some(p.id),
                        tx_hash: Some(r.tx_hash),
                        paid,
                        received: Some(r.amount),
                        block: Some(r.block),
                    },
                ));
            }
            None if p.confirmed.is_some() => unmatched.push(PaymentRef {
                id: Some(p.id),
                tx_hash: p.hashes.last().copied(),
                paid,
                received: None,
                block: p.confirmed,
            }),
            None => notes.push(format!(
                "payment {} of {} is still open in the payer's log (not confirmed)",
                p.id, p.amount
            )),
        }
    }
    for (k, r) in incoming.iter().enumerate() {
        if !matched_in.contains(&k) {
            unmatched.push(PaymentRef {
                id: None,
                tx_hash: Some(r.tx_hash),
                paid: None,
                received: Some(r.amount),
                block: Some(r.block),
            });
        }
    }

    let mut acc = vec![Acc::default(); boundaries.len() + 1];
    let payer_window = |at: usize| boundaries.iter().take_while(|b| b.0 < at).count();
    let payee_window = |at: usize| boundaries.iter().take_while(|b| b.1 < at).count();
    for &(at, bytes, price, amount) in &usage_out {
        let w = &mut acc[payer_window(at)];
        w.tx_bytes = w.tx_bytes.saturating_add(bytes);
        if bytes > 0 {
            w.payer_prices.add(price);
        }
        w.owed = w.owed.saturating_add(amount);
    }
    for p in outgoing.values().filter(|p| p.confirmed.is_some()) {
        let w = &mut acc[payer_window(p.at)];
        w.paid = w.paid.saturating_add(p.amount.0);
    }
    for &(at, bytes, price, amount) in &usage_in {
        let w = &mut acc[payee_window(at)];
        w.rx_bytes = w.rx_bytes.saturating_add(bytes);
        if bytes > 0 {
            w.payee_prices.add(price);
        }
        w.expected = w.expected.saturating_add(amount);
    }
    for r in &incoming {
        let w = &mut acc[payee_window(r.at)];
        w.received = w.received.saturating_add(r.amount.0);
    }

    let signed = |a: u128| i128::try_from(a).unwrap_or(i128::MAX);
    let mut windows = Vec::new();
    let mut balance = 0i128;
    let mut refs = boundaries.into_iter().map(|b| Some(b.2)).chain([None]);
    for (i, a) in acc.into_iter().enumerate() {
        let diff = signed(a.owed).saturating_sub(signed(a.expected));
        balance = balance.saturating_add(diff);
        windows.push(Window {
            index: i + 1,
            closed_by: refs.next().flatten(),
            tx_bytes: a.tx_bytes,
            payer_prices: a.payer_prices,
            owed: Amount(a.owed),
            paid: Amount(a.paid),
            rx_bytes: a.rx_bytes,
            payee_prices: a.payee_prices,
            expected: Amount(a.expected),
            received: Amount(a.received),
            diff: Signed(diff),
            balance: Signed(balance),
            verdict: WindowVerdict::of(diff),
        });
    }
    // An empty open tail says nothing.
    if windows.len() > 1 {
        if let Some(w) = windows.last() {
            if w.tx_bytes == 0 && w.rx_bytes == 0 && w.paid.0 == 0 && w.received.0 == 0 {
                windows.pop();
            }
        }
    }

    let sum = |f: fn(&Window) -> u128| windows.iter().fold(0u128, |s, w| s.saturating_add(f(w)));
    let bytes = |f: fn(&Window) -> u64| windows.iter().fold(0u64, |s, w| s.saturating_add(f(w)));
    let (owed, expected, paid) = (sum(|w| w.owed.0), sum(|w| w.expected.0), sum(|w| w.paid.0));
    let totals = Totals {
        tx_bytes: bytes(|w| w.tx_bytes),
        rx_bytes: bytes(|w| w.rx_bytes),
        owed: Amount(owed),
        expected: Amount(expected),
        paid: Amount(paid),
        received: Amount(sum(|w| w.received.0)),
        forgiven: Amount(forgiven),
        balance: Signed(balance),
        outstanding: Amount(owed.saturating_sub(paid)),
    };
    if forgiven > 0 {
        notes.push(format!(
            "the payee forgave {forgiven} (explicit Forgiven events; not part of the balance)"
        ));
    }
    let tolerance = options.tolerance.of(expected);
    let (kind, amount) = match balance {
        0 => (VerdictKind::Consistent, 0),
        b if b > 0 => (VerdictKind::Overpaid, b.unsigned_abs()),
        b if b.unsigned_abs() <= tolerance => (VerdictKind::WithinTolerance, b.unsigned_abs()),
        b => (VerdictKind::Underpaid, b.unsigned_abs()),
    };
    Ok(Report {
        payer: Side {
            log: payer.name.clone(),
            addresses: payer_dir.identities.clone(),
            neighbour: payer_n,
            links: payer_dir.links(payer_n),
        },
        payee: Side {
            log: payee.name.clone(),
            addresses: payee_dir.identities.clone(),
            neighbour: payee_n,
            links: payee_dir.links(payee_n),
        },
        windows,
        unmatched,
        notes,
        totals,
        verdict: Verdict { kind, amount: Amount(amount), tolerance: Amount(tolerance) },
    })
}

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
