//! Who is who: from what each log recorded of itself (`IdentitySet`) and of its neighbours
//! (`NeighbourBound`), the neighbour id each log uses for the other side, and the other side's
//! addresses. Ambiguity and strangers are refused with a message that lists what the log does
//! bind, so the operator can name the link with `--link` / `--payee-link`.

use std::collections::{BTreeMap, BTreeSet};

use lastmile::events::billing::BillingEvent;
use lastmile::events::chain::{Address, TxHash};
use lastmile::events::usage::{DestinationId, NeighbourId, UsageEvent};
use lastmile::events::Event;
use serde::Serialize;

use super::{not_comparable, Log, Options, Selector};
use crate::error::ReplayError;

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

/// What identification needs from one log.
#[derive(Debug, Default)]
pub(super) struct Directory {
    pub identities: Vec<Address>,
    /// Every address each neighbour id was bound to, in order.
    pub bindings: BTreeMap<NeighbourId, Vec<Address>>,
    destinations: BTreeMap<NeighbourId, BTreeSet<DestinationId>>,
    /// Hashes of the payments it signed, per neighbour paid.
    signed: BTreeMap<TxHash, NeighbourId>,
    /// Neighbours it received each transaction from.
    received: BTreeMap<TxHash, NeighbourId>,
}

impl Directory {
    pub fn of(log: &Log) -> Self {
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

    /// The first address `n` was bound to: the binding in force before the log rebinds it.
    pub fn first_binding(&self, n: NeighbourId) -> Option<Address> {
        self.bindings.get(&n).and_then(|v| v.first().copied())
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

/// One log as identified: what it recorded, the neighbour id it uses for the other side, and
/// the addresses the other side is known by.
#[derive(Debug)]
pub(super) struct Party {
    pub directory: Directory,
    /// The neighbour id this log uses for the other side.
    pub neighbour: NeighbourId,
    /// The other side's addresses: its own `IdentitySet`s, or what `--link` / matched
    /// payments say when it recorded none.
    pub other: Vec<Address>,
}

impl Party {
    /// The report's view of this side.
    pub fn side(&self, log: &Log) -> Side {
        Side {
            log: log.name.clone(),
            addresses: self.directory.identities.clone(),
            neighbour: self.neighbour,
            links: self.directory.links(self.neighbour),
        }
    }

    /// Whether usage or a payment on neighbour `n`, while `n` is bound to `bound`, concerns
    /// the other side.
    pub fn concerns(&self, n: NeighbourId, bound: Option<Address>) -> bool {
        n == self.neighbour && bound.is_some_and(|a| self.other.contains(&a))
    }
}

/// Both sides identified, with notes on what had to be inferred.
#[derive(Debug)]
pub(super) struct Parties {
    /// The payer log; its `other` are the payee's addresses.
    pub payer: Party,
    /// The payee log; its `other` are the payer's addresses.
    pub payee: Party,
    pub notes: Vec<String>,
}

impl Parties {
    /// Who is who (see the module docs of `dispute`).
    pub fn of(payer: &Log, payee: &Log, options: &Options) -> Result<Self, ReplayError> {
        let payee_dir = Directory::of(payee);
        // The payee, as the payer knows it.
        let payer_party =
            Directory::of(payer).identify(payer, payee, &payee_dir.identities, options.link, "--link")?;
        // The payer, as the payee knows it; without an identity, by its payments the payee got.
        let payer_dir = &payer_party.directory;
        let mut payer_addrs = payer_dir.identities.clone();
        if payer_addrs.is_empty() && options.payee_link.is_none() {
            for (hash, n) in &payee_dir.received {
                if payer_dir.signed.get(hash) == Some(&payer_party.neighbour) {
                    for a in payee_dir.bindings.get(n).into_iter().flatten() {
                        if !payer_addrs.contains(a) {
                            payer_addrs.push(*a);
                        }
                    }
                }
            }
        }
        let payee_party =
            payee_dir.identify(payee, payer, &payer_addrs, options.payee_link, "--payee-link")?;

        let mut notes = Vec::new();
        if payer_party.directory.identities.is_empty() {
            notes.push(format!(
                "{} records no identity; identified as {}",
                payer.name,
                addr_list(&payee_party.other)
            ));
        }
        if payee_party.directory.identities.is_empty() {
            notes.push(format!(
                "{} records no identity; identified as {}",
                payee.name,
                addr_list(&payer_party.other)
            ));
        }
        Ok(Parties { payer: payer_party, payee: payee_party, notes })
    }
}

pub(super) fn addr_list(addrs: &[Address]) -> String {
    addrs.iter().map(Address::to_string).collect::<Vec<_>>().join(", ")
}

impl Directory {
    /// Finds the neighbour id that `log` (whose directory this is) uses for `other_log`, whose
    /// addresses are `identities` (its `IdentitySet`s, or for a payer without one the addresses
    /// inferred from its payments; empty if neither). `flag` names the option that selects it.
    fn identify(
        self,
        log: &Log,
        other_log: &Log,
        identities: &[Address],
        selector: Option<Selector>,
        flag: &str,
    ) -> Result<Party, ReplayError> {
        let dir = &self;
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
                return Ok(Party { directory: self, neighbour: n, other: addrs });
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
            [n] => Ok(Party { directory: self, neighbour: n, other: addrs }),
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
}
