//! Discovery between machines on a simulated link: the exchange, its retries and races, and
//! every way a stranger or a replay is refused.

use super::*;
use crate::events::discovery::DiscoveryCounters;
use crate::rng::SplitMix64;
use core::net::{IpAddr, Ipv6Addr};

const LINK: &str = "wlan0";

fn link() -> Via {
    Via::Link(LINK.into())
}

fn settings() -> DiscoverySettings {
    DiscoverySettings { vias: vec![link()], announce_interval_ms: 1_000, ..DiscoverySettings::default() }
}

fn keys(n: u8) -> Keys {
    Keys::new(SigningKey::from_slice(&[n; 32]).expect("test key"), [n.wrapping_add(100); 32])
}

/// The link-local address of node `n` on the test link (scope 7).
fn addr(n: u8) -> SocketAddr {
    let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(n));
    SocketAddr::V6(SocketAddrV6::new(ip, wire::PORT, 0, 7))
}

/// Which datagrams the link loses: a predicate over (from node, to, bytes).
type DropRule = Box<dyn FnMut(u8, SendTo, &[u8]) -> bool>;

/// Nodes on one link. Every datagram sent goes to every other node (multicast) or to the
/// one it is addressed to; every Candidate is answered with a port at once (the tunnel
/// machine's part: node `n` reserves port 50000 + n for everyone).
struct Net {
    nodes: Vec<(u8, DiscoveryMachine)>,
    now: Stamp,
    reports: Vec<(u8, DiscoveryReport)>,
    /// Every datagram sent: (from node, to, bytes).
    wire: Vec<(u8, SendTo, Vec<u8>)>,
    /// Datagrams to drop: a predicate over (from, to, bytes).
    drop: DropRule,
}

impl Net {
    fn new(ids: &[u8]) -> Net {
        let now = Stamp::new(1, 0);
        let nodes =
            ids.iter().map(|&n| (n, DiscoveryMachine::new(settings(), keys(n), 1, [n; 32], now))).collect();
        Net { nodes, now, reports: Vec::new(), wire: Vec::new(), drop: Box::new(|_, _, _| false) }
    }

    fn machine(&mut self, n: u8) -> &mut DiscoveryMachine {
        &mut self.nodes.iter_mut().find(|(id, _)| *id == n).expect("node").1
    }

    fn counters(&mut self, n: u8) -> DiscoveryCounters {
        *self.machine(n).counters()
    }

    /// Delivers `bytes` from `from` to node `to`, then runs everything that follows.
    fn inject(&mut self, to: u8, from: SocketAddr, bytes: Vec<u8>) {
        let now = self.now;
        self.machine(to).handle(now, DiscoveryInput::Packet { via: link(), from, bytes });
        self.settle();
    }

    /// Drains every machine's effects until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for k in 0..self.nodes.len() {
                while let Some(effect) = self.nodes[k].1.poll_effect() {
                    moved = true;
                    let from = self.nodes[k].0;
                    match effect.action {
                        DiscoveryEffect::Report(r) => {
                            if let DiscoveryReport::Candidate { node, via } = &r {
                                let input = DiscoveryInput::PortReserved {
                                    node: *node,
                                    via: via.clone(),
                                    port: 50_000 + u16::from(from),
                                };
                                let now = self.now;
                                self.nodes[k].1.handle(now, input);
                            }
                            self.reports.push((from, r));
                        }
                        DiscoveryEffect::Send { to, bytes, .. } => {
                            self.wire.push((from, to, bytes.clone()));
                            if (self.drop)(from, to, &bytes) {
                                continue;
                            }
                            let now = self.now;
                            for (id, m) in self.nodes.iter_mut() {
                                let addressed = match to {
                                    SendTo::Multicast => *id != from,
                                    SendTo::Unicast(a) => a == addr(*id),
                                };
                                if addressed {
                                    let input = DiscoveryInput::Packet {
                                        via: link(),
                                        from: addr(from),
                                        bytes: bytes.clone(),
                                    };
                                    m.handle(now, input);
                                }
                            }
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs every timer up to `until`, in order.
    fn run_until(&mut self, until: Stamp) {
        self.settle();
        loop {
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(k, (_, m))| m.poll_timeout().map(|(at, t)| (at, k, t)))
                .min();
            match next {
                Some((at, k, timer)) if at <= until => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.nodes[k].1.handle_timeout(now, timer);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, ms: u64) {
        let until = self.now.plus_ms(ms);
        self.run_until(until);
    }

    fn agreed(&self, by: u8) -> Vec<(NodeId, u16, SocketAddr)> {
        self.reports
            .iter()
            .filter(|(n, _)| *n == by)
            .filter_map(|(_, r)| match r {
                DiscoveryReport::Agreed { node, local_port, endpoint, .. } => {
                    Some((*node, *local_port, *endpoint))
                }
                _ => None,
            })
            .collect()
    }
}

fn node(n: u8) -> NodeId {
    keys(n).node()
}

#[test]
fn two_neighbours_agree_on_ports_keys_and_endpoints() {
    let mut net = Net::new(&[1, 2]);
    net.run_for(1_500);
    let (a, b) = (net.agreed(1), net.agreed(2));
    assert_eq!(a.len(), 1, "{:?}", net.reports);
    assert_eq!(b.len(), 1, "{:?}", net.reports);
    // Each side listens on its own port and sends to the other's, at its link-local address
    // with the link's scope.
    let mut b_endpoint = addr(2);
    b_endpoint.set_port(50_002);
    let mut a_endpoint = addr(1);
    a_endpoint.set_port(50_001);
    assert_eq!(a[0], (node(2), 50_001, b_endpoint));
    assert_eq!(b[0], (node(1), 50_002, a_endpoint));
    let key = |r: &DiscoveryReport| match r {
        DiscoveryReport::Agreed { peer_key, .. } => Some(*peer_key),
        _ => None,
    };
    let keys_seen: Vec<_> = net.reports.iter().filter_map(|(n, r)| key(r).map(|k| (*n, k))).collect();
    assert!(keys_seen.contains(&(1, keys(2).wg_public())));
    assert!(keys_seen.contains(&(2, keys(1).wg_public())));
    // Later announcements are reported as heard, not as new exchanges.
    net.run_for(3_000);
    assert_eq!(net.agreed(1).len(), 1);
    let heard = net.reports.iter().filter(|(_, r)| matches!(r, DiscoveryReport::Heard { .. })).count();
    assert!(heard >= 4, "{heard}");
    for n in [1, 2] {
        let c = net.counters(n);
        assert_eq!(c.agreed, 1);
        assert_eq!(c.bad_signature + c.bad_mac + c.replayed + c.stale + c.malformed, 0, "{c:?}");
    }
}

#[test]
fn a_lost_accept_is_recovered_by_the_offers_retry() {
    let mut net = Net::new(&[1, 2]);
    let mut dropped = 0;
    net.drop = Box::new(move |_, _, bytes| {
        let accept = wire::decode(bytes).is_ok_and(|r| matches!(r.message, Message::Accept(_)));
        if accept && dropped < 2 {
            dropped += 1;
            return true;
        }
        false
    });
    net.run_for(3_500);
    assert_eq!(net.agreed(1).len(), 1, "{:?}", net.reports);
    // The answering side agreed at its first accept and was asked again, with the same ports.
    let b = net.agreed(2);
    assert!(!b.is_empty() && b.iter().all(|x| *x == b[0]), "{b:?}");
}

#[test]
fn an_offer_with_no_answer_is_given_up_after_its_tries_and_started_again() {
    let mut net = Net::new(&[1, 2]);
    // The smaller node id offers.
    let (offerer, answerer) = if node(1) < node(2) { (1, 2) } else { (2, 1) };
    net.drop = Box::new(move |from, _, bytes| {
        from == answerer && wire::decode(bytes).is_ok_and(|r| matches!(r.message, Message::Accept(_)))
    });
    // Offers at 0, 1, 2, 3 and 4 s (offer_retry_ms 1 s, offer_tries 5); at 5 s it gives up
    // and starts again at an announce.
    net.run_for(4_500);
    let offers = |net: &Net| {
        let offer = |b: &[u8]| wire::decode(b).is_ok_and(|r| matches!(r.message, Message::Offer(_)));
        net.wire.iter().filter(|(f, _, b)| *f == offerer && offer(b)).count()
    };
    assert_eq!(offers(&net), 5);
    net.run_for(1_000);
    assert!((5..=6).contains(&offers(&net)), "{}", offers(&net));
    assert!(net.agreed(offerer).is_empty());
    net.drop = Box::new(|_, _, _| false);
    net.run_for(2_000);
    assert_eq!(net.agreed(offerer).len(), 1);
}

#[test]
fn simultaneous_offers_resolve_to_the_smaller_node_ids() {
    // After a Forget on both sides, both offer at the next announce.
    let mut net = Net::new(&[1, 2]);
    net.run_for(1_500);
    let (n1, n2) = (node(1), node(2));
    let now = net.now;
    net.machine(1).handle(now, DiscoveryInput::Forget { node: n2, via: link() });
    net.machine(2).handle(now, DiscoveryInput::Forget { node: n1, via: link() });
    net.reports.clear();
    net.run_for(2_000);
    let (a, b) = (net.agreed(1), net.agreed(2));
    assert!(!a.is_empty() && !b.is_empty(), "{:?}", net.reports);
    // One exchange: the ports agree on both sides.
    assert_eq!(a.last().map(|x| x.2.port()), Some(50_002));
    assert_eq!(b.last().map(|x| x.2.port()), Some(50_001));
}

#[test]
fn a_restarted_neighbour_is_agreed_with_again() {
    let mut net = Net::new(&[1, 2]);
    net.run_for(1_500);
    // Node 2 restarts: boot 2, a new machine, nothing remembered.
    let now = net.now;
    net.nodes[1].1 = DiscoveryMachine::new(settings(), keys(2), 2, [9; 32], now);
    net.reports.clear();
    net.run_for(2_500);
    let a = net.agreed(1);
    assert_eq!(a.len(), 1, "{:?}", net.reports);
    let boots: Vec<u64> = net
        .reports
        .iter()
        .filter_map(|(n, r)| match r {
            DiscoveryReport::Agreed { peer_boot, .. } if *n == 1 => Some(*peer_boot),
            _ => None,
        })
        .collect();
    assert_eq!(boots, vec![2]);
}

/// Signs `message` as `keys` would, with a MAC toward `mac_peer` (offers and accepts).
fn forge(signer: &Keys, message: Message, mac_peer: Option<WgKey>) -> Vec<u8> {
    let body = wire::body(&message);
    let mac = mac_peer.map(|p| signer.mac(&p, &body).expect("contributory"));
    let mut signed = body.clone();
    if let Some(m) = &mac {
        signed.extend_from_slice(m);
    }
    wire::assemble(&body, mac.as_ref(), &identity::sign(&signer.identity, wire::SIGN_DOMAIN, &signed))
}

#[test]
fn a_stranger_claiming_another_nodes_identity_or_wireguard_key_gets_nothing() {
    let mut net = Net::new(&[1]);
    net.run_for(10);
    let stranger = keys(9);
    let victim = keys(3);
    let stranger_addr = addr(9);
    // Someone else's node id (so its mesh and payment addresses), signed by the stranger.
    let claim = Sender { node: victim.node(), wg: stranger.wg_public(), boot: 1 };
    let m = Message::Announce(Announce { from: claim, seq: 1, nonce: [1; 16] });
    net.inject(1, stranger_addr, forge(&stranger, m, None));
    assert_eq!(net.counters(1).bad_signature, 1);
    // Its own identity with the victim's WireGuard key: the announce is signed, so node 1
    // offers (it cannot know yet), but the stranger cannot compute the MAC of an accept for
    // a key it does not hold.
    let claim = Sender { node: stranger.node(), wg: victim.wg_public(), boot: 1 };
    let m = Message::Announce(Announce { from: claim, seq: 1, nonce: [2; 16] });
    net.inject(1, stranger_addr, forge(&stranger, m, None));
    let offer = net.wire.iter().rev().find_map(|(_, _, b)| match wire::decode(b).map(|r| r.message) {
        Ok(Message::Offer(o)) => Some(o),
        _ => None,
    });
    // The smaller node id offers.
    if node(1) < stranger.node() {
        assert_eq!(offer.map(|o| o.to), Some(stranger.node()));
        let o = offer.expect("offer");
        let accept = Accept { from: claim, to: node(1), echo: o.nonce, port: 4242 };
        // The best it can do: a MAC with its own WireGuard key.
        net.inject(1, stranger_addr, forge(&stranger, Message::Accept(accept), Some(keys(1).wg_public())));
        assert_eq!(net.counters(1).bad_mac, 1);
    }
    // Whoever starts, an offer claiming the victim's key fails the same way.
    let echo = net.machine(1).announced[0][0].expect("announced");
    let offer = Offer { from: claim, to: node(1), echo, nonce: [3; 16], port: 4243 };
    net.inject(1, stranger_addr, forge(&stranger, Message::Offer(offer), Some(keys(1).wg_public())));
    assert!(net.counters(1).bad_mac >= 1);
    assert!(net.agreed(1).is_empty(), "{:?}", net.reports);
}

#[test]
fn captured_messages_replayed_are_refused_and_counted() {
    let mut net = Net::new(&[1, 2]);
    net.run_for(1_500);
    assert_eq!(net.agreed(1).len(), 1);
    let captured = net.wire.clone();
    let find = |kind: &str| {
        captured
            .iter()
            .find(|(_, _, b)| wire::decode(b).is_ok_and(|r| r.message.kind() == kind))
            .cloned()
            .expect("captured")
    };
    let (offer_from, _, offer) = find("offer");
    let (accept_from, _, accept) = find("accept");
    let (announce_from, _, announce) = find("announce");
    // Two announce intervals later, the echoed nonces are no longer ours.
    net.run_for(2_100);
    net.reports.clear();
    let target = |from: u8| if from == 1 { 2 } else { 1 };
    let replayer = addr(42);
    net.inject(target(offer_from), replayer, offer);
    net.inject(target(accept_from), replayer, accept);
    net.inject(target(announce_from), replayer, announce);
    let c1 = net.counters(1);
    let c2 = net.counters(2);
    assert_eq!(c1.replayed + c2.replayed, 2, "{c1:?} {c2:?}");
    assert_eq!(c1.stale + c2.stale, 1, "{c1:?} {c2:?}");
    assert!(net
        .reports
        .iter()
        .all(|(_, r)| !matches!(r, DiscoveryReport::Agreed { .. } | DiscoveryReport::Candidate { .. })));
}

#[test]
fn a_flood_of_forged_and_random_datagrams_changes_nothing_and_the_neighbour_still_joins() {
    let mut net = Net::new(&[1]);
    net.run_for(10);
    let mut rng = SplitMix64::new(7);
    let stranger = keys(50);
    for i in 0..10_000u32 {
        let from = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, (i >> 8) as u16, i as u16)),
            6698,
        );
        let bytes = match i % 3 {
            0 => (0..(rng.below(300) as usize)).map(|_| rng.next_u64() as u8).collect(),
            1 => {
                // A well-formed announce from an identity with a broken signature.
                let m = Message::Announce(Announce {
                    from: Sender { node: stranger.node(), wg: stranger.wg_public(), boot: 1 },
                    seq: u64::from(i),
                    nonce: [i as u8; 16],
                });
                let mut b = forge(&stranger, m, None);
                let last = b.len() - 1;
                b[last] ^= 1;
                b
            }
            _ => {
                let o = Offer {
                    from: Sender { node: stranger.node(), wg: stranger.wg_public(), boot: 1 },
                    to: node(1),
                    echo: [rng.next_u64() as u8; 16],
                    nonce: [0; 16],
                    port: 1,
                };
                forge(&stranger, Message::Offer(o), Some(keys(1).wg_public()))
            }
        };
        net.now = net.now.plus_ms(u64::from(i % 4 == 0));
        net.inject(1, from, bytes);
    }
    let c = net.counters(1);
    assert_eq!(c.received, 10_000);
    let refused = c.rate_limited_interface
        + c.rate_limited_source
        + c.malformed
        + c.bad_signature
        + c.bad_mac
        + c.replayed
        + c.stale
        + c.not_for_us;
    assert_eq!(refused, 10_000, "{c:?}");
    assert!(c.rate_limited_interface > 0, "{c:?}");
    assert!(net.reports.is_empty(), "{:?}", net.reports);
    assert!(net.machine(1).tracked_sources() <= settings().max_sources);
    assert!(net.machine(1).peers.len() <= settings().max_candidates);
    // The legitimate neighbour arrives after the flood and joins.
    let now = net.now;
    net.nodes.push((2, DiscoveryMachine::new(settings(), keys(2), 1, [2; 32], now)));
    net.run_for(2_000);
    assert_eq!(net.agreed(1).len(), 1, "{:?}", net.counters(1));
}

#[test]
fn the_candidate_table_is_bounded() {
    let mut s = settings();
    s.max_candidates = 3;
    s.source_rate = Rate { per_s: 1_000, burst: 1_000 };
    let mut m = DiscoveryMachine::new(s, keys(1), 1, [1; 32], Stamp::new(1, 0));
    for n in 10..20u8 {
        let k = keys(n);
        let a = Message::Announce(Announce {
            from: Sender { node: k.node(), wg: k.wg_public(), boot: 1 },
            seq: 1,
            nonce: [n; 16],
        });
        m.handle(
            Stamp::new(1, 1),
            DiscoveryInput::Packet { via: link(), from: addr(n), bytes: forge(&k, a, None) },
        );
    }
    assert_eq!(m.peers.len(), 3);
    assert_eq!(m.counters().table_full, 7);
    // Candidates not heard for the TTL make room.
    let later = Stamp::new(1, 1 + settings().candidate_ttl_ms);
    let k = keys(30);
    let a = Message::Announce(Announce {
        from: Sender { node: k.node(), wg: k.wg_public(), boot: 1 },
        seq: 1,
        nonce: [30; 16],
    });
    m.handle(later, DiscoveryInput::Packet { via: link(), from: addr(30), bytes: forge(&k, a, None) });
    assert!(m.peers.contains_key(&(0, k.node())));
}

#[test]
fn datagrams_on_an_unconfigured_via_and_our_own_are_not_taken() {
    let mut net = Net::new(&[1]);
    net.run_for(10);
    let own = net.wire[0].2.clone();
    net.inject(1, addr(1), own);
    assert_eq!(net.counters(1).own, 1);
    let now = net.now;
    net.machine(1)
        .handle(now, DiscoveryInput::Packet { via: Via::Link("eth9".into()), from: addr(5), bytes: vec![1] });
    assert_eq!(net.counters(1).unexpected, 1);
}

#[test]
fn settings_are_validated_by_field() {
    assert!(settings().validate().is_ok());
    let mut s = settings();
    s.vias.push(link());
    assert!(s.validate().unwrap_err().contains("named twice"));
    let mut s = settings();
    s.offer_tries = 0;
    assert!(s.validate().unwrap_err().contains("offer_tries"));
    let mut s = settings();
    s.vias = vec![Via::Link("a-very-long-interface-name".into())];
    assert!(s.validate().unwrap_err().contains("not an interface name"));
}
