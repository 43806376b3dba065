//! Babel's durable part: the trust ledger, the fold of trust evidence.
//!
//! The speaker has two wired interfaces and three neighbours (two on the first, one on the
//! second) that start talking (Hellos, with an IHU about us or without), then answer the
//! speaker's Hellos while time passes, announce two destinations with route vectors of their
//! own choosing (flattering, often) and retract them, and fall silent. The destinations are in
//! use or not, reality has an RTT and a loss, and the speaker's probes are answered with it;
//! reports also arrive on their own (late, for a destination no longer routed, with too few
//! probes). Interfaces go down and come back. Packets are real bytes
//! ([`crate::wire::babel::encode`]).

use super::{Scenario, World};
use crate::events::routing::{
    InterfaceConfig, ProbeReport, RoutingEffect, RoutingEvent, RoutingInput, SendTo, TrustEvidence,
};
use crate::events::{Effect, Machine, Stamp};
use crate::machines::babel::{BabelConfig, BabelMachine, TrustLedger};
use crate::wire::babel::{decode, encode, Hello, Ihu, Packet, Prefix, RouteVector, RouterId, Tlv, Update};
use core::net::{IpAddr, Ipv6Addr};
use quickcheck::{Arbitrary, Gen};
use std::collections::{BTreeMap, BTreeSet};

const IFACES: [u32; 2] = [1, 2];

fn our_address(ifindex: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, ifindex as u16)
}

/// Neighbour `n`: its interface and link-local address.
fn neighbour(n: u8) -> (u32, Ipv6Addr) {
    let (ifindex, host) = [(1, 9), (1, 8), (2, 7)][usize::from(n % 3)];
    (ifindex, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, host))
}

/// Destination `d` and the router that originates it.
fn destination(d: u8) -> (Prefix, RouterId) {
    let d = d % 2;
    let prefix = Prefix::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xd0 + u16::from(d))), 128)
        .expect("a /128 is a prefix");
    (prefix, RouterId([0, 0, 0, 0, 0, 0, 0, 0x70 + d]))
}

const RTTS_MS: [u32; 4] = [1, 3, 40, 100];

#[derive(Clone, Debug)]
pub(super) enum RoutingAction {
    Up {
        iface: u8,
    },
    Down {
        iface: u8,
    },
    /// The neighbour says Hello (with an IHU about us, or without) and keeps talking.
    Hello {
        neighbour: u8,
        ihu: bool,
    },
    /// The neighbour stops talking.
    Mute {
        neighbour: u8,
    },
    /// A Hello, an IHU and an Update: `dest` at `metric` with a vector (`rtt` an index into
    /// [`RTTS_MS`]); `newer` bumps the originator's seqno. Repeated with its Hellos.
    Announce {
        neighbour: u8,
        dest: u8,
        metric: u8,
        price: u8,
        rtt: u8,
        lossy: bool,
        newer: bool,
    },
    Retract {
        neighbour: u8,
        dest: u8,
    },
    /// Which destinations are in use (bit 0 and bit 1).
    InUse {
        mask: u8,
    },
    /// What the probes toward `dest` find from now on.
    Reality {
        dest: u8,
        rtt: u8,
        lossy: bool,
    },
    /// A report arriving on its own.
    Probed {
        dest: u8,
        sent: u8,
        received_half: bool,
        rtt: u8,
    },
}

impl Arbitrary for RoutingAction {
    fn arbitrary(g: &mut Gen) -> Self {
        let neighbour = u8::arbitrary(g) % 3;
        let dest = u8::arbitrary(g) % 2;
        // Reality is mostly worse than the flattering advertisements.
        let rtt = *g.choose(&[0, 1, 2, 2, 3, 3]).expect("choices");
        match u8::arbitrary(g) % 24 {
            0 => RoutingAction::Up { iface: u8::arbitrary(g) % 2 },
            1 => RoutingAction::Down { iface: u8::arbitrary(g) % 2 },
            2..=4 => RoutingAction::Hello { neighbour, ihu: u8::arbitrary(g) % 4 != 0 },
            5 => RoutingAction::Mute { neighbour },
            6..=10 => RoutingAction::Announce {
                neighbour,
                dest,
                metric: u8::arbitrary(g),
                price: u8::arbitrary(g) % 8,
                // Mostly the better RTTs: advertisements flatter.
                rtt: u8::arbitrary(g) % 3,
                lossy: u8::arbitrary(g) % 4 == 0,
                newer: bool::arbitrary(g),
            },
            11 => RoutingAction::Retract { neighbour, dest },
            12..=15 => RoutingAction::InUse { mask: 1 + u8::arbitrary(g) % 3 },
            16 => RoutingAction::InUse { mask: 0 },
            17 => RoutingAction::Reality { dest, rtt, lossy: u8::arbitrary(g) % 3 == 0 },
            _ => RoutingAction::Probed {
                dest,
                sent: *g.choose(&[5, 20, 20, 30]).expect("choices"),
                received_half: u8::arbitrary(g) % 4 == 0,
                rtt,
            },
        }
    }
}

/// The neighbours as they talk to the speaker, and what probes find.
///
/// A neighbour that talks answers each multicast Hello of ours on its interface (taking turns
/// with the other one there) with a Hello of its own, an IHU and the routes it announces, so
/// that neighbours and routes live on while time passes.
#[derive(Debug, Default)]
pub(super) struct Links {
    hello_seqno: BTreeMap<u8, u16>,
    route_seqno: BTreeMap<u8, u16>,
    talking: BTreeSet<u8>,
    /// What each neighbour announces, per (neighbour, destination): metric and vector.
    announced: BTreeMap<(u8, u8), (u16, RouteVector)>,
    /// Whose turn it is to answer on each interface.
    turn: BTreeMap<u32, usize>,
    /// Per destination: the RTT (ms) and whether half the probes are lost (40 ms and none
    /// until said otherwise).
    reality: BTreeMap<Prefix, (u32, bool)>,
}

impl Links {
    /// A packet from neighbour `n`: a Hello, an IHU about us (if `ihu`), then `tlvs`.
    fn from(&mut self, n: u8, mut tlvs: Vec<Tlv>, ihu: bool) -> RoutingInput {
        let (ifindex, source) = neighbour(n);
        let seqno = self.hello_seqno.entry(n).or_default();
        *seqno = seqno.wrapping_add(1);
        let mut head = vec![Tlv::Hello(Hello {
            unicast: false,
            seqno: *seqno,
            // Two neighbours share the first interface's turns: one Hello every 2 s each.
            interval_cs: 200,
            timestamp_us: None,
            unknown: vec![],
        })];
        if ihu {
            head.push(Tlv::Ihu(Ihu {
                rxcost: 96,
                interval_cs: 600,
                address: Some(IpAddr::V6(our_address(ifindex))),
                timestamps_us: None,
                unknown: vec![],
            }));
        }
        head.append(&mut tlvs);
        RoutingInput::Received { ifindex, source, bytes: encode(&Packet { tlvs: head, trailer: vec![] }) }
    }

    fn update(&self, dest: u8, metric: u16, vector: Option<RouteVector>) -> Tlv {
        let (prefix, router_id) = destination(dest);
        Tlv::Update(Update {
            prefix: Some(prefix),
            v4_via_v6: false,
            interval_cs: 400,
            seqno: self.route_seqno.get(&dest).copied().unwrap_or(0),
            metric,
            router_id,
            next_hop: None,
            vector,
            unknown: vec![],
        })
    }

    /// Neighbour `n`'s routes, as it repeats them.
    fn routes_of(&self, n: u8) -> Vec<Tlv> {
        self.announced
            .range((n, 0)..=(n, u8::MAX))
            .map(|((_, dest), (metric, vector))| self.update(*dest, *metric, Some(*vector)))
            .collect()
    }

    /// The talking neighbour whose turn it is to answer on `ifindex`.
    fn answering(&mut self, ifindex: u32) -> Option<u8> {
        let there: Vec<u8> = self.talking.iter().copied().filter(|n| neighbour(*n).0 == ifindex).collect();
        let turn = self.turn.entry(ifindex).or_default();
        *turn = turn.wrapping_add(1);
        there.get(*turn % there.len().max(1)).copied()
    }
}

fn report(prefix: Prefix, sent: u32, received_half: bool, rtt_ms: u32) -> ProbeReport {
    let received = if received_half { sent / 2 } else { sent };
    ProbeReport { prefix, sent, received, rtt_us: rtt_ms * 1000 }
}

impl World<BabelMachine> for Links {
    type Action = RoutingAction;

    fn act(&mut self, _at: Stamp, action: &RoutingAction) -> Vec<RoutingInput> {
        let iface = |i: u8| IFACES[usize::from(i % 2)];
        match *action {
            RoutingAction::Up { iface: i } => vec![interface_up(iface(i))],
            RoutingAction::Down { iface: i } => vec![RoutingInput::InterfaceDown { ifindex: iface(i) }],
            RoutingAction::Hello { neighbour, ihu } => {
                self.talking.insert(neighbour);
                vec![self.from(neighbour, vec![], ihu)]
            }
            RoutingAction::Mute { neighbour } => {
                self.talking.remove(&neighbour);
                vec![]
            }
            RoutingAction::Announce { neighbour, dest, metric, price, rtt, lossy, newer } => {
                if newer {
                    let seqno = self.route_seqno.entry(dest).or_default();
                    *seqno = seqno.wrapping_add(1);
                }
                let vector = RouteVector {
                    price_per_byte: price.into(),
                    rtt_us: RTTS_MS[usize::from(rtt % 4)] * 1000,
                    loss_micro_nepers: if lossy { 100_000 } else { 0 },
                };
                self.talking.insert(neighbour);
                self.announced.insert((neighbour, dest), (u16::from(metric) * 4, vector));
                let routes = self.routes_of(neighbour);
                vec![self.from(neighbour, routes, true)]
            }
            RoutingAction::Retract { neighbour, dest } => {
                self.announced.remove(&(neighbour, dest));
                let retraction = self.update(dest, Update::INFINITY, None);
                vec![self.from(neighbour, vec![retraction], true)]
            }
            RoutingAction::InUse { mask } => vec![RoutingInput::InUse(
                (0..2).filter(|d| mask & (1 << d) != 0).map(|d| destination(d).0).collect(),
            )],
            RoutingAction::Reality { dest, rtt, lossy } => {
                self.reality.insert(destination(dest).0, (RTTS_MS[usize::from(rtt % 4)], lossy));
                vec![]
            }
            RoutingAction::Probed { dest, sent, received_half, rtt } => vec![RoutingInput::Probed(report(
                destination(dest).0,
                sent.into(),
                received_half,
                RTTS_MS[usize::from(rtt % 4)],
            ))],
        }
    }

    fn execute(&mut self, _at: Stamp, effect: Effect<RoutingEffect>) -> Option<RoutingInput> {
        match effect.action {
            RoutingEffect::Probe { prefix } => {
                let (rtt_ms, lossy) = self.reality.get(&prefix).copied().unwrap_or((40, false));
                Some(RoutingInput::Probed(report(prefix, 20, lossy, rtt_ms)))
            }
            RoutingEffect::Send { ifindex, to: SendTo::Multicast, bytes } => {
                let ours = decode(&bytes).ok()?;
                if !ours.packet.tlvs.iter().any(|t| matches!(t, Tlv::Hello(h) if !h.unicast)) {
                    return None;
                }
                let n = self.answering(ifindex)?;
                let routes = self.routes_of(n);
                Some(self.from(n, routes, true))
            }
            RoutingEffect::Send { .. } | RoutingEffect::Route(_) | RoutingEffect::Limits(_) => None,
        }
    }
}

fn interface_up(ifindex: u32) -> RoutingInput {
    RoutingInput::InterfaceUp {
        ifindex,
        link_local: our_address(ifindex),
        config: InterfaceConfig::wired().with_hello_ms(1_000).with_update_ms(4_000),
    }
}

pub(super) struct Routing;

impl Scenario for Routing {
    type Machine = BabelMachine;
    type World = Links;

    const CASES: u64 = 200;
    const MIN_PERCENT_WITH_EVENTS: u64 = 40;
    const GAP_MS: u64 = 500;
    const WAIT_MS: u64 = 8_000;
    const WAITS: u64 = 25;
    const MUST_SEE: &'static [&'static str] = &["worse", "distrusted", "honest"];

    fn world() -> Links {
        Links::default()
    }

    fn initial() -> TrustLedger {
        TrustLedger::default()
    }

    /// A speaker with both interfaces up, probing every 3 s.
    fn start(state: TrustLedger, at: Stamp) -> BabelMachine {
        let mut config = BabelConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 1]));
        config.trust.probe_interval_ms = 3_000;
        let mut m = BabelMachine::new(config, state, at);
        for ifindex in IFACES {
            m.handle(at, interface_up(ifindex));
        }
        m
    }

    fn kind(event: &RoutingEvent) -> &'static str {
        match event {
            RoutingEvent::TrustEvidence(TrustEvidence { worse: false, .. }) => "honest",
            RoutingEvent::TrustEvidence(TrustEvidence { streak, .. }) if *streak >= 3 => "distrusted",
            RoutingEvent::TrustEvidence(_) => "worse",
        }
    }
}
