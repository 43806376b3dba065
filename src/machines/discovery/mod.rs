//! Discovery: neighbours find each other on the configured links, prove who they are, and
//! agree on the ports and keys of their tunnel (messages in [`crate::wire::discovery`]).
//!
//! Every datagram passes, in this order: the interface's rate limit and the source address's
//! (before any cryptography, so a flood costs a lookup per packet), the layout, the sender's
//! signature, and for offers and accepts the MAC that proves the sender holds its WireGuard
//! key. Each refusal is counted by reason ([`DiscoveryCounters`]).
//!
//! The exchange, per neighbour and via: when we hear a verified, fresh announcement and we
//! should start (our node id is the smaller one, or the tunnel machine told us to start
//! again), we ask the tunnel machine for a port ([`DiscoveryReport::Candidate`]) and send an
//! offer echoing the neighbour's latest nonce. The neighbour, given a port by its own tunnel
//! machine, accepts; both report [`DiscoveryReport::Agreed`]. Offers are resent every
//! `offer_retry_ms` with a fresh nonce, up to `offer_tries` times. If both sides offer at
//! once, the smaller node id's offer wins. A neighbour that is already agreed and offers again
//! has lost its side (a restart, a stale tunnel): we answer again. Fresh announcements from an
//! agreed neighbour are reported as [`DiscoveryReport::Heard`] (the tunnel machine's
//! discovery silence).
//!
//! Freshness: an announce must be newer, in (boot, sequence), than the last one seen from
//! its node on that via; an offer must echo one of our two latest announce nonces on that via;
//! an accept must echo the nonce of the offer we are waiting on. Captured messages are
//! therefore useless once replayed.
//!
//! Nothing here must last: discovery has no events. The table of candidates is bounded.

mod limits;
#[cfg(test)]
mod tests;

pub use limits::Rate;

use crate::events::discovery::{DiscoveryCounters, DiscoveryEffect, DiscoveryInput, DiscoveryTimer, SendTo};
use crate::events::identity::{self, NodeId, WgKey};
use crate::events::tunnel::{DiscoveryReport, Via};
use crate::events::{Fold, Machine, Outbox, Stamp, TimerTable};
use crate::wire::discovery::{self as wire, Accept, Announce, Message, Nonce, Offer, Sender};
use core::net::{SocketAddr, SocketAddrV6};
use k256::ecdsa::SigningKey;
use limits::{Bucket, SourceLimits};
use sha3::{Digest, Keccak256};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};

/// Discovery's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// The physical interfaces discovery runs on and the manual peers, in a fixed order.
    pub vias: Vec<Via>,
    pub announce_interval_ms: u64,
    pub offer_retry_ms: u64,
    pub offer_tries: u32,
    /// A candidate not heard for this long (and not agreed) is forgotten.
    pub candidate_ttl_ms: u64,
    /// At most this many candidates, all vias together.
    pub max_candidates: usize,
    /// Per interface (or manual peer), all sources together.
    pub interface_rate: Rate,
    /// Per source address.
    pub source_rate: Rate,
    /// Source addresses with a bucket of their own, at most.
    pub max_sources: usize,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        Self {
            vias: Vec::new(),
            announce_interval_ms: 5_000,
            offer_retry_ms: 1_000,
            offer_tries: 5,
            candidate_ttl_ms: 30_000,
            max_candidates: 256,
            interface_rate: Rate { per_s: 200, burst: 400 },
            source_rate: Rate { per_s: 10, burst: 20 },
            max_sources: 1024,
        }
    }
}

impl DiscoverySettings {
    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.vias.len() > usize::from(u16::MAX) {
            return Err("discovery.vias: too many".into());
        }
        for (i, v) in self.vias.iter().enumerate() {
            if self.vias[..i].contains(v) {
                return Err(format!("discovery.vias: {v} is named twice"));
            }
            if let Via::Link(name) = v {
                if name.is_empty() || name.len() > 15 {
                    return Err(format!("discovery.vias: {name:?} is not an interface name"));
                }
            }
        }
        let positive = [
            ("announce_interval_ms", self.announce_interval_ms),
            ("offer_retry_ms", self.offer_retry_ms),
            ("offer_tries", u64::from(self.offer_tries)),
            ("candidate_ttl_ms", self.candidate_ttl_ms),
            ("max_candidates", self.max_candidates as u64),
            ("interface_rate.per_s", u64::from(self.interface_rate.per_s)),
            ("interface_rate.burst", u64::from(self.interface_rate.burst)),
            ("source_rate.per_s", u64::from(self.source_rate.per_s)),
            ("source_rate.burst", u64::from(self.source_rate.burst)),
            ("max_sources", self.max_sources as u64),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("discovery.{name} must be positive"));
            }
        }
        Ok(())
    }
}

/// The node's two keys: its identity (which signs) and its WireGuard key (whose shared
/// secrets key the MACs). `Debug` shows neither.
pub struct Keys {
    identity: SigningKey,
    wg: StaticSecret,
}

impl Keys {
    pub fn new(identity: SigningKey, wg_secret: [u8; 32]) -> Self {
        Self { identity, wg: StaticSecret::from(wg_secret) }
    }

    /// Keys from their secrets as the key files hold them; `Err` if the identity secret is not
    /// a valid secp256k1 key (zero, or beyond the curve order).
    pub fn from_secrets(identity: &[u8; 32], wg_secret: [u8; 32]) -> Result<Self, String> {
        let identity =
            SigningKey::from_slice(identity).map_err(|_| "not a valid secp256k1 private key".to_string())?;
        Ok(Self::new(identity, wg_secret))
    }

    pub fn node(&self) -> NodeId {
        NodeId::of(&self.identity)
    }

    pub fn wg_public(&self) -> WgKey {
        WgKey(PublicKey::from(&self.wg).to_bytes())
    }

    /// The MAC of `covered` between us and the holder of `peer`; `None` when the shared
    /// secret is zero (a low-order point: no one holds such a key).
    fn mac(&self, peer: &WgKey, covered: &[u8]) -> Option<[u8; 32]> {
        let shared = self.wg.diffie_hellman(&PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return None;
        }
        let mut h = Keccak256::new();
        h.update(wire::MAC_DOMAIN);
        h.update(shared.as_bytes());
        h.update(covered);
        Some(h.finalize().into())
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({})", self.node().short())
    }
}

/// Where an exchange with one neighbour on one via stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Heard, nothing under way (we wait for its offer, or for the next announce).
    Idle,
    /// Waiting for the tunnel machine's port, to offer (`answer` none) or to accept `answer`.
    WantPort {
        answer: Option<(Offer, SocketAddr)>,
    },
    /// Our offer is out.
    Offering {
        port: u16,
        nonce: Nonce,
        tries: u32,
    },
    Agreed {
        port: u16,
        peer_port: u16,
    },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::WantPort { .. } => "want-port",
            Phase::Offering { .. } => "offering",
            Phase::Agreed { .. } => "agreed",
        }
    }
}

/// One neighbour on one via, as discovery knows it.
#[derive(Clone, Debug)]
pub struct Peer {
    pub wg: WgKey,
    pub boot: u64,
    /// The latest announce's sequence number (none yet if it only offered).
    pub seq: Option<u64>,
    pub announce_nonce: Option<Nonce>,
    /// The address it was last heard from.
    pub from: SocketAddr,
    pub last_heard: Stamp,
    pub phase: Phase,
    /// The tunnel machine asked to start again: we offer whatever the order of node ids.
    forgotten: bool,
}

/// The empty fold: discovery emits no events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoEvents;

impl Fold for NoEvents {
    type Event = Infallible;
    fn apply(&mut self, event: &Infallible) {
        match *event {}
    }
}

#[derive(Debug)]
pub struct DiscoveryMachine {
    settings: DiscoverySettings,
    keys: Keys,
    me: Sender,
    nonce_seed: [u8; 32],
    nonces_made: u64,
    seq: u64,
    /// Per via: our current and previous announce nonces.
    announced: Vec<[Option<Nonce>; 2]>,
    peers: BTreeMap<(u16, NodeId), Peer>,
    /// Which node proved it holds a WireGuard key.
    wg_owner: BTreeMap<WgKey, NodeId>,
    via_buckets: Vec<Bucket>,
    sources: SourceLimits,
    counters: DiscoveryCounters,
    timers: TimerTable<DiscoveryTimer>,
    out: Outbox<Infallible, DiscoveryEffect>,
    nothing: NoEvents,
}

impl DiscoveryMachine {
    /// A machine that announces at once and then every interval. `boot` is the node's boot
    /// counter (it makes our messages newer than any of a previous boot); `nonce_seed` must
    /// be secret and new at every start (the shell takes it from the OS's random source).
    pub fn new(settings: DiscoverySettings, keys: Keys, boot: u64, nonce_seed: [u8; 32], now: Stamp) -> Self {
        let me = Sender { node: keys.node(), wg: keys.wg_public(), boot };
        let n = settings.vias.len();
        let mut timers = TimerTable::new();
        timers.set(DiscoveryTimer::Announce, now);
        timers.set(DiscoveryTimer::Sweep, now.plus_ms(settings.candidate_ttl_ms));
        Self {
            via_buckets: vec![Bucket::full(settings.interface_rate, now); n],
            announced: vec![[None, None]; n],
            settings,
            keys,
            me,
            nonce_seed,
            nonces_made: 0,
            seq: 0,
            peers: BTreeMap::new(),
            wg_owner: BTreeMap::new(),
            sources: SourceLimits::default(),
            counters: DiscoveryCounters::default(),
            timers,
            out: Outbox::new(),
            nothing: NoEvents,
        }
    }

    pub fn node(&self) -> NodeId {
        self.me.node
    }

    pub fn counters(&self) -> &DiscoveryCounters {
        &self.counters
    }

    /// Every candidate: (via, node, what discovery knows of it).
    pub fn peers(&self) -> impl Iterator<Item = (&Via, &NodeId, &Peer)> {
        self.peers.iter().map(|((i, node), p)| (&self.settings.vias[usize::from(*i)], node, p))
    }

    /// Source addresses with a rate-limit bucket (bounded by `max_sources`).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn via_index(&self, via: &Via) -> Option<u16> {
        self.settings.vias.iter().position(|v| v == via).map(|i| i as u16)
    }

    fn fresh_nonce(&mut self) -> Nonce {
        self.nonces_made += 1;
        let mut h = Keccak256::new();
        h.update(b"lastmile discovery nonce");
        h.update(self.nonce_seed);
        h.update(self.nonces_made.to_be_bytes());
        let d = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        out
    }

    fn send(&mut self, via: u16, to: SendTo, message: Message, mac_for: Option<WgKey>) {
        let body = wire::body(&message);
        let mac = match mac_for {
            Some(peer) => match self.keys.mac(&peer, &body) {
                Some(mac) => Some(mac),
                None => return,
            },
            None => None,
        };
        let mut signed = body.clone();
        if let Some(mac) = &mac {
            signed.extend_from_slice(mac);
        }
        let signature = identity::sign(&self.keys.identity, wire::SIGN_DOMAIN, &signed);
        let bytes = wire::assemble(&body, mac.as_ref(), &signature);
        let via = self.settings.vias[usize::from(via)].clone();
        self.out.now(DiscoveryEffect::Send { via, to, bytes });
    }

    fn report(&mut self, report: DiscoveryReport) {
        self.out.now(DiscoveryEffect::Report(report));
    }

    fn announce(&mut self, now: Stamp) {
        for i in 0..self.settings.vias.len() {
            let nonce = self.fresh_nonce();
            let slot = &mut self.announced[i];
            *slot = [Some(nonce), slot[0]];
            self.seq += 1;
            let to = match &self.settings.vias[i] {
                Via::Link(_) => SendTo::Multicast,
                Via::Manual(addr) => SendTo::Unicast(*addr),
            };
            let m = Message::Announce(Announce { from: self.me, seq: self.seq, nonce });
            self.send(i as u16, to, m, None);
        }
        self.timers.set(DiscoveryTimer::Announce, now.plus_ms(self.settings.announce_interval_ms));
    }

    fn receive(&mut self, now: Stamp, via: Via, from: SocketAddr, bytes: &[u8]) {
        self.counters.received += 1;
        let Some(i) = self.via_index(&via) else {
            self.counters.unexpected += 1;
            return;
        };
        if !self.via_buckets[usize::from(i)].take(self.settings.interface_rate, now) {
            self.counters.rate_limited_interface += 1;
            return;
        }
        if !self.sources.take(from.ip(), self.settings.source_rate, self.settings.max_sources, now) {
            self.counters.rate_limited_source += 1;
            return;
        }
        let Ok(received) = wire::decode(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let sender = *received.message.sender();
        if sender.node == self.me.node {
            self.counters.own += 1;
            return;
        }
        if !identity::verify(&sender.node, wire::SIGN_DOMAIN, &received.signed, &received.signature) {
            self.counters.bad_signature += 1;
            return;
        }
        if self.wg_owner.get(&sender.wg).is_some_and(|owner| *owner != sender.node) {
            self.counters.key_conflict += 1;
            return;
        }
        if let Some((_, mac)) = received.mac {
            let to = match &received.message {
                Message::Offer(o) => o.to,
                Message::Accept(a) => a.to,
                Message::Announce(_) => unreachable!("announces carry no MAC"),
            };
            if to != self.me.node {
                self.counters.not_for_us += 1;
                return;
            }
            if self.keys.mac(&sender.wg, received.mac_covered()) != Some(mac) {
                self.counters.bad_mac += 1;
                return;
            }
        }
        if let Some(p) = self.peers.get(&(i, sender.node)) {
            if sender.boot < p.boot {
                self.counters.stale += 1;
                return;
            }
        }
        match received.message {
            Message::Announce(a) => self.on_announce(now, i, from, a),
            Message::Offer(o) => self.on_offer(now, i, from, o),
            Message::Accept(a) => self.on_accept(now, i, from, a),
        }
    }

    /// The entry of `node` on via `i`, created if the table has room.
    fn entry(&mut self, now: Stamp, i: u16, from: SocketAddr, sender: &Sender) -> bool {
        if self.peers.contains_key(&(i, sender.node)) {
            return true;
        }
        if self.peers.len() >= self.settings.max_candidates {
            self.sweep(now);
            if self.peers.len() >= self.settings.max_candidates {
                self.counters.table_full += 1;
                return false;
            }
        }
        let peer = Peer {
            wg: sender.wg,
            boot: sender.boot,
            seq: None,
            announce_nonce: None,
            from,
            last_heard: now,
            phase: Phase::Idle,
            forgotten: false,
        };
        self.peers.insert((i, sender.node), peer);
        true
    }

    fn on_announce(&mut self, now: Stamp, i: u16, from: SocketAddr, a: Announce) {
        let node = a.from.node;
        if let Some(p) = self.peers.get(&(i, node)) {
            if p.seq.is_some_and(|seq| (a.from.boot, a.seq) <= (p.boot, seq)) {
                self.counters.stale += 1;
                return;
            }
        }
        if !self.entry(now, i, from, &a.from) {
            return;
        }
        let me = self.me.node;
        let p = self.peers.get_mut(&(i, node)).expect("entry made");
        if a.from.boot > p.boot || a.from.wg != p.wg {
            // It restarted or changed its key: whatever we agreed with it is void.
            p.phase = Phase::Idle;
        }
        p.boot = a.from.boot;
        p.wg = a.from.wg;
        p.seq = Some(a.seq);
        p.announce_nonce = Some(a.nonce);
        p.from = from;
        p.last_heard = now;
        let via = self.settings.vias[usize::from(i)].clone();
        match p.phase {
            Phase::Agreed { .. } => {
                let peer_boot = p.boot;
                self.report(DiscoveryReport::Heard { node, via, peer_boot });
            }
            Phase::Idle if me < node || p.forgotten => {
                p.phase = Phase::WantPort { answer: None };
                self.report(DiscoveryReport::Candidate { node, via });
            }
            _ => {}
        }
    }

    fn on_offer(&mut self, now: Stamp, i: u16, from: SocketAddr, o: Offer) {
        if !self.announced[usize::from(i)].contains(&Some(o.echo)) {
            self.counters.replayed += 1;
            return;
        }
        if !self.entry(now, i, from, &o.from) {
            return;
        }
        let node = o.from.node;
        let me = self.me.node;
        let p = self.peers.get_mut(&(i, node)).expect("entry made");
        match p.phase {
            // Both offered: the smaller node id's offer wins.
            Phase::Offering { .. } | Phase::WantPort { answer: None } if me < node => return,
            // It offered again what we agreed: our accept was lost. Accept again.
            Phase::Agreed { port, peer_port }
                if peer_port == o.port && p.wg == o.from.wg && p.boot == o.from.boot =>
            {
                p.from = from;
                p.last_heard = now;
                let accept = Accept { from: self.me, to: node, echo: o.nonce, port };
                self.send(i, SendTo::Unicast(from), Message::Accept(accept), Some(o.from.wg));
                return;
            }
            _ => {}
        }
        p.boot = o.from.boot;
        p.wg = o.from.wg;
        p.from = from;
        p.last_heard = now;
        p.phase = Phase::WantPort { answer: Some((o, from)) };
        self.timers.clear(DiscoveryTimer::Offer { via: i, node });
        let via = self.settings.vias[usize::from(i)].clone();
        self.report(DiscoveryReport::Candidate { node, via });
    }

    fn on_accept(&mut self, now: Stamp, i: u16, from: SocketAddr, a: Accept) {
        let node = a.from.node;
        let Some(p) = self.peers.get_mut(&(i, node)) else {
            self.counters.replayed += 1;
            return;
        };
        let Phase::Offering { port, nonce, .. } = p.phase else {
            self.counters.replayed += 1;
            return;
        };
        if nonce != a.echo {
            self.counters.replayed += 1;
            return;
        }
        p.boot = a.from.boot;
        p.wg = a.from.wg;
        p.from = from;
        p.last_heard = now;
        self.timers.clear(DiscoveryTimer::Offer { via: i, node });
        self.agree(i, node, port, a.port, from);
    }

    fn agree(&mut self, i: u16, node: NodeId, port: u16, peer_port: u16, from: SocketAddr) {
        let p = self.peers.get_mut(&(i, node)).expect("agreeing with a known peer");
        p.phase = Phase::Agreed { port, peer_port };
        p.forgotten = false;
        let (peer_key, peer_boot) = (p.wg, p.boot);
        self.wg_owner.insert(peer_key, node);
        self.counters.agreed += 1;
        let via = self.settings.vias[usize::from(i)].clone();
        let endpoint = with_port(from, peer_port);
        self.report(DiscoveryReport::Agreed { node, via, peer_key, endpoint, local_port: port, peer_boot });
    }

    fn port_reserved(&mut self, now: Stamp, node: NodeId, via: &Via, port: u16) {
        let Some(i) = self.via_index(via) else { return };
        let Some(p) = self.peers.get(&(i, node)) else { return };
        let Phase::WantPort { answer } = p.phase.clone() else { return };
        match answer {
            Some((offer, from)) => {
                let accept = Accept { from: self.me, to: node, echo: offer.nonce, port };
                self.send(i, SendTo::Unicast(from), Message::Accept(accept), Some(offer.from.wg));
                self.agree(i, node, port, offer.port, from);
            }
            None => self.offer(now, i, node, port, 1),
        }
    }

    fn offer(&mut self, now: Stamp, i: u16, node: NodeId, port: u16, tries: u32) {
        let nonce = self.fresh_nonce();
        let Some(p) = self.peers.get_mut(&(i, node)) else { return };
        let Some(echo) = p.announce_nonce else {
            p.phase = Phase::Idle;
            return;
        };
        p.phase = Phase::Offering { port, nonce, tries };
        let (to, wg) = (p.from, p.wg);
        let offer = Offer { from: self.me, to: node, echo, nonce, port };
        self.send(i, SendTo::Unicast(to), Message::Offer(offer), Some(wg));
        self.timers.set(DiscoveryTimer::Offer { via: i, node }, now.plus_ms(self.settings.offer_retry_ms));
    }

    fn retry_offer(&mut self, now: Stamp, i: u16, node: NodeId) {
        let Some(p) = self.peers.get_mut(&(i, node)) else { return };
        let Phase::Offering { port, tries, .. } = p.phase else { return };
        if tries >= self.settings.offer_tries {
            // Given up; the next announce starts again.
            p.phase = Phase::Idle;
            p.forgotten = true;
            return;
        }
        self.offer(now, i, node, port, tries + 1);
    }

    fn forget(&mut self, node: NodeId, via: &Via) {
        let Some(i) = self.via_index(via) else { return };
        if let Some(p) = self.peers.get_mut(&(i, node)) {
            p.phase = Phase::Idle;
            p.forgotten = true;
        }
        self.timers.clear(DiscoveryTimer::Offer { via: i, node });
    }

    /// Forgets candidates not heard for `candidate_ttl_ms` that are not agreed.
    fn sweep(&mut self, now: Stamp) {
        let ttl = self.settings.candidate_ttl_ms;
        let expired: Vec<(u16, NodeId)> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !matches!(p.phase, Phase::Agreed { .. })
                    && (p.last_heard.boot != now.boot || now.ms_since(p.last_heard) >= ttl)
            })
            .map(|(k, _)| *k)
            .collect();
        for (i, node) in expired {
            self.peers.remove(&(i, node));
            self.timers.clear(DiscoveryTimer::Offer { via: i, node });
        }
    }
}

/// `addr` with another port (the scope id of a link-local address is kept).
fn with_port(addr: SocketAddr, port: u16) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), port, 0, a.scope_id())),
        SocketAddr::V4(a) => SocketAddr::new(core::net::IpAddr::V4(*a.ip()), port),
    }
}

impl Machine for DiscoveryMachine {
    type Input = DiscoveryInput;
    type Event = Infallible;
    type Effect = DiscoveryEffect;
    type Timer = DiscoveryTimer;
    type State = NoEvents;

    fn handle(&mut self, at: Stamp, input: DiscoveryInput) {
        match input {
            DiscoveryInput::Packet { via, from, bytes } => self.receive(at, via, from, &bytes),
            DiscoveryInput::PortReserved { node, via, port } => self.port_reserved(at, node, &via, port),
            DiscoveryInput::Forget { node, via } => self.forget(node, &via),
        }
    }

    fn handle_timeout(&mut self, at: Stamp, timer: DiscoveryTimer) {
        self.timers.clear(timer);
        match timer {
            DiscoveryTimer::Announce => self.announce(at),
            DiscoveryTimer::Offer { via, node } => self.retry_offer(at, via, node),
            DiscoveryTimer::Sweep => {
                self.sweep(at);
                self.timers.set(DiscoveryTimer::Sweep, at.plus_ms(self.settings.candidate_ttl_ms));
            }
        }
    }

    fn state(&self) -> &NoEvents {
        &self.nothing
    }

    fn outbox(&mut self) -> &mut Outbox<Infallible, DiscoveryEffect> {
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<(Stamp, DiscoveryTimer)> {
        self.timers.earliest()
    }
}
