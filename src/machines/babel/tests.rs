//! Step-by-step conformance cases: packets and timeouts in, packets and effects out. Each test
//! names the RFC 8966 section it checks.

mod hardening;

use super::requests::REQUEST_HOLD_MS;
use super::*;
use crate::events::routing::{LimitsReport, ProbeReport, RouteChange, Via};
use crate::events::Fold;
use crate::wire::babel::{decode, encode, Hello, Ihu, Packet, SeqnoRequest};
use core::net::IpAddr;

const A: u32 = 1;
const B: u32 = 2;

fn ll(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n)
}

fn rid(n: u8) -> RouterId {
    RouterId([0, 0, 0, 0, 0, 0, 0, n])
}

fn p6(n: u16) -> Prefix {
    Prefix::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n)), 128).unwrap()
}

fn at(ms: u64) -> Stamp {
    Stamp::new(0, ms)
}

/// A node with two wired interfaces (A with link-local ::1, B with ::2), 1 s Hellos.
struct Peer {
    ifindex: u32,
    address: Ipv6Addr,
    seqno: u16,
    repeat: Vec<Tlv>,
    muted: bool,
}

struct Node {
    m: BabelMachine,
    now: u64,
    /// Neighbours that keep talking while time advances: (ifindex, address, next Hello
    /// seqno, TLVs repeated with every Hello, muted).
    peers: Vec<Peer>,
    sent: Vec<(u32, SendTo, Packet)>,
    routes: Vec<RouteChange>,
    probes: Vec<Prefix>,
    limits: Vec<LimitsReport>,
}

impl Node {
    fn new(config: BabelConfig) -> Self {
        let mut n = Node {
            m: BabelMachine::new(config, TrustLedger::default(), at(0)),
            now: 0,
            peers: vec![],
            sent: vec![],
            routes: vec![],
            probes: vec![],
            limits: vec![],
        };
        for (i, l) in [(A, ll(1)), (B, ll(2))] {
            let c = InterfaceConfig::wired().with_hello_ms(1_000).with_update_ms(4_000);
            n.input(RoutingInput::InterfaceUp { ifindex: i, link_local: l, config: c });
        }
        n
    }

    fn default() -> Self {
        let mut c = BabelConfig::new(rid(1));
        c.fee_per_byte = 5;
        Self::new(c)
    }

    fn drain(&mut self) {
        while self.m.poll_event().is_some() {}
        while let Some(e) = self.m.poll_effect() {
            match e.action {
                RoutingEffect::Send { ifindex, to, bytes } => {
                    let d = decode(&bytes).expect("the machine sends valid packets");
                    assert!(d.ignored.is_empty(), "{:?}", d.ignored);
                    self.sent.push((ifindex, to, d.packet));
                }
                RoutingEffect::Route(r) => self.routes.push(r),
                RoutingEffect::Probe { prefix } => self.probes.push(prefix),
                RoutingEffect::Limits(r) => self.limits.push(r),
            }
        }
    }

    fn input(&mut self, i: RoutingInput) {
        self.m.handle(at(self.now), i);
        self.drain();
    }

    fn from(&mut self, ifindex: u32, source: Ipv6Addr, tlvs: Vec<Tlv>) {
        let bytes = encode(&Packet { tlvs, trailer: vec![] });
        self.input(RoutingInput::Received { ifindex, source, bytes });
    }

    /// Advances virtual time to `ms`, firing every timer due on the way.
    fn run_until(&mut self, ms: u64) {
        while let Some((when, timer)) = self.m.poll_timeout() {
            if when.tick_ms > ms {
                break;
            }
            self.now = self.now.max(when.tick_ms);
            self.m.handle_timeout(at(self.now), timer);
            self.drain();
        }
        self.now = ms;
    }

    /// Advances time second by second to `ms`: every unmuted peer says Hello with an IHU
    /// and repeats its TLVs each second.
    fn live_until(&mut self, ms: u64) {
        while self.now + 1_000 <= ms {
            let t = self.now + 1_000;
            self.run_until(t);
            for i in 0..self.peers.len() {
                if self.peers[i].muted {
                    continue;
                }
                let (ifindex, address) = (self.peers[i].ifindex, self.peers[i].address);
                let me = if ifindex == A { ll(1) } else { ll(2) };
                let mut tlvs = vec![hello(self.peers[i].seqno), ihu(me, 96)];
                tlvs.extend(self.peers[i].repeat.iter().cloned());
                self.peers[i].seqno += 1;
                self.from(ifindex, address, tlvs);
            }
        }
        self.run_until(ms);
    }

    /// A neighbour that stays alive while time passes, repeating `repeat` every second.
    fn peer(&mut self, ifindex: u32, address: Ipv6Addr, repeat: Vec<Tlv>) {
        self.acquire(ifindex, address);
        if !repeat.is_empty() {
            self.from(ifindex, address, repeat.clone());
        }
        self.peers.push(Peer { ifindex, address, seqno: 2, repeat, muted: false });
    }

    fn take_sent(&mut self) -> Vec<(u32, SendTo, Packet)> {
        std::mem::take(&mut self.sent)
    }

    fn updates_on(&mut self, ifindex: u32) -> Vec<Update> {
        self.take_sent()
            .into_iter()
            .filter(|(i, _, _)| *i == ifindex)
            .flat_map(|(_, _, p)| p.tlvs)
            .filter_map(|t| match t {
                Tlv::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// Makes `source` on `ifindex` a usable neighbour: two Hellos and an IHU with cost 96.
    fn acquire(&mut self, ifindex: u32, source: Ipv6Addr) {
        let me = if ifindex == A { ll(1) } else { ll(2) };
        for s in 0..2u16 {
            self.from(ifindex, source, vec![hello(s), ihu(me, 96)]);
        }
    }
}

fn hello(seqno: u16) -> Tlv {
    Tlv::Hello(Hello { unicast: false, seqno, interval_cs: 100, timestamp_us: None, unknown: vec![] })
}

fn ihu(about: Ipv6Addr, rxcost: u16) -> Tlv {
    Tlv::Ihu(Ihu {
        rxcost,
        interval_cs: 100,
        address: Some(IpAddr::V6(about)),
        timestamps_us: None,
        unknown: vec![],
    })
}

fn update(prefix: Prefix, router: RouterId, seqno: u16, metric: u16, vector: Option<RouteVector>) -> Tlv {
    Tlv::Update(Update {
        prefix: Some(prefix),
        v4_via_v6: false,
        interval_cs: 400,
        seqno,
        metric,
        router_id: router,
        next_hop: None,
        vector,
        unknown: vec![],
    })
}

fn vector(price: u64, rtt_ms: u32) -> Option<RouteVector> {
    Some(RouteVector { price_per_byte: price, rtt_us: rtt_ms * 1000, loss_micro_nepers: 0 })
}

// RFC 8966 §3.4 and §3.8.1.1: an interface starts with a Hello and a wildcard Route Request.
#[test]
fn an_interface_starts_with_a_hello_and_a_wildcard_route_request() {
    let mut n = Node::default();
    let sent = n.take_sent();
    for ifindex in [A, B] {
        let (_, to, p) = sent.iter().find(|(i, _, _)| *i == ifindex).expect("a packet per interface");
        assert_eq!(*to, SendTo::Multicast);
        assert!(matches!(p.tlvs[0], Tlv::Hello(Hello { unicast: false, interval_cs: 100, .. })));
        assert!(p.tlvs.iter().any(|t| matches!(t, Tlv::RouteRequest(RouteRequest { prefix: None, .. }))));
    }
}

// RFC 8966 §3.4, Appendix A.1 and A.2.1: a neighbour becomes usable after two Hellos and an
// IHU; our IHUs report the rxcost; a usable neighbour gets a full dump at once.
#[test]
fn neighbour_acquisition_needs_hellos_both_ways() {
    let mut n = Node::default();
    n.input(RoutingInput::Originate(p6(1)));
    n.take_sent();
    n.from(A, ll(9), vec![hello(0)]);
    assert!(n.m.neighbours().is_empty(), "one Hello and no IHU: not usable");
    n.from(A, ll(9), vec![hello(1)]);
    assert!(n.m.neighbours().is_empty(), "no IHU yet: our Hellos may not reach it");
    n.from(A, ll(9), vec![ihu(ll(1), 96)]);
    assert_eq!(n.m.neighbours(), vec![(A, ll(9), 96, None)]);
    let dump = n.updates_on(A);
    assert!(dump.iter().any(|u| u.prefix == Some(p6(1)) && u.metric == 0), "{dump:?}");
    // Our next Hello carries an IHU about the neighbour with our rxcost.
    n.run_until(1_000);
    let sent = n.take_sent();
    let ihus: Vec<&Ihu> = sent
        .iter()
        .filter(|(i, _, _)| *i == A)
        .flat_map(|(_, _, p)| p.tlvs.iter())
        .filter_map(|t| if let Tlv::Ihu(i) = t { Some(i) } else { None })
        .collect();
    assert_eq!(ihus.len(), 1);
    assert_eq!(ihus[0].address, Some(IpAddr::V6(ll(9))));
    assert_eq!(ihus[0].rxcost, 96);
}

// RFC 8966 §3.5.3 and §3.6, §3.7.2: an update is installed, selected and propagated with our
// link cost added; the vector gains our fee.
#[test]
fn a_route_is_selected_reported_and_propagated_with_fee_and_cost() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.take_sent();
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    assert_eq!(
        n.routes,
        vec![RouteChange {
            prefix: p6(7),
            via: Some(Via { ifindex: A, neighbour: ll(9), next_hop: IpAddr::V6(ll(9)) }),
            price_per_byte: Some(10),
        }]
    );
    let on_b = n.updates_on(B);
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    let u = &on_b[0];
    assert_eq!((u.router_id, u.seqno, u.metric), (rid(7), 3, 196));
    assert_eq!(u.vector.unwrap().price_per_byte, 15, "our fee of 5 is added");
}

// RFC 8966 §3.7.4: split horizon on wired links: the periodic dump on A omits what was learnt
// on A.
#[test]
fn split_horizon_keeps_a_route_off_its_own_interface() {
    let mut n = Node::default();
    n.peer(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    n.peer(B, ll(8), vec![]);
    n.take_sent();
    n.live_until(4_000);
    let sent = n.take_sent();
    let has = |ifindex: u32| {
        sent.iter()
            .filter(|(i, _, _)| *i == ifindex)
            .flat_map(|(_, _, p)| p.tlvs.iter())
            .any(|t| matches!(t, Tlv::Update(u) if u.prefix == Some(p6(7)) && u.metric != INFINITY))
    };
    assert!(has(B), "the periodic dump on B has the route");
    assert!(!has(A), "and the one on A does not");
}

// RFC 8966 §3.5.1: the feasibility condition. After we advertised (seqno 3, metric 196), an
// update with the same seqno and a metric no smaller than that is unfeasible and not selected;
// a newer seqno is feasible.
#[test]
fn unfeasible_updates_are_not_selected() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    // The only route is retracted: the destination is unreachable, the source entry stays.
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, INFINITY, None)]);
    n.routes.clear();
    n.take_sent();
    n.from(B, ll(8), vec![update(p6(7), rid(7), 3, 196, vector(1, 1))]);
    assert!(n.routes.is_empty(), "unfeasible: same seqno, metric not below the feasibility distance");
    let sent = n.take_sent();
    let request = sent.iter().flat_map(|(_, _, p)| p.tlvs.iter()).find_map(|t| match t {
        Tlv::SeqnoRequest(r) => Some(r.clone()),
        _ => None,
    });
    let r = request.expect("an unfeasible route while unreachable asks for a new seqno (§3.8.2.2)");
    assert_eq!((r.prefix, r.router_id, r.seqno), (p6(7), rid(7), 4));
    n.from(B, ll(8), vec![update(p6(7), rid(7), 3, 95, vector(1, 1))]);
    assert_eq!(n.routes.len(), 1, "a smaller metric is feasible");
    n.routes.clear();
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 500, vector(1, 1))]);
    assert_eq!(n.m.selected().next().unwrap().1.metric, 596, "a newer seqno is feasible at any metric");
}

// RFC 8966 §3.8.2.1: starvation. The selected route is lost and the remaining one is
// unfeasible: a seqno request for seqno + 1 goes out on every interface, is resent, and the
// newer update ends the starvation.
#[test]
fn starvation_sends_a_seqno_request_and_a_newer_seqno_ends_it() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    n.from(B, ll(8), vec![update(p6(7), rid(7), 3, 300, vector(10, 4))]);
    // Our advertisement via A set the feasibility distance to (3, 196); B's 300 is unfeasible.
    n.take_sent();
    n.routes.clear();
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, INFINITY, None)]);
    assert_eq!(n.routes, vec![RouteChange { prefix: p6(7), via: None, price_per_byte: None }]);
    let sent = n.take_sent();
    let requests: Vec<(u32, SeqnoRequest)> = sent
        .iter()
        .flat_map(|(i, _, p)| p.tlvs.iter().map(move |t| (*i, t)))
        .filter_map(|(i, t)| if let Tlv::SeqnoRequest(r) = t { Some((i, r.clone())) } else { None })
        .collect();
    assert_eq!(requests.len(), 2, "one per interface: {requests:?}");
    assert!(requests.iter().all(|(_, r)| r.seqno == 4 && r.router_id == rid(7) && r.hop_count >= 2));
    // A retraction goes out too (§3.7.2).
    assert!(sent
        .iter()
        .flat_map(|(_, _, p)| p.tlvs.iter())
        .any(|t| matches!(t, Tlv::Update(u) if u.prefix == Some(p6(7)) && u.metric == INFINITY)));
    // Resent while starving.
    n.run_until(n.now + REQUEST_HOLD_MS);
    assert!(n
        .take_sent()
        .iter()
        .flat_map(|(_, _, p)| p.tlvs.iter())
        .any(|t| matches!(t, Tlv::SeqnoRequest(_))));
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 300, vector(10, 4))]);
    assert_eq!(n.m.selected().count(), 1);
}

// RFC 8966 §3.8.1.2: a seqno request for our own prefix with a newer seqno makes us increase
// our seqno and announce; one for another node's prefix is forwarded toward it with the hop
// count decreased.
#[test]
fn seqno_requests_are_answered_by_the_source_and_forwarded_by_others() {
    let mut n = Node::default();
    n.input(RoutingInput::Originate(p6(1)));
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.take_sent();
    let before = n.m.seqno();
    let req = |prefix, router_id, seqno, hop_count| {
        Tlv::SeqnoRequest(SeqnoRequest { prefix, seqno, hop_count, router_id, unknown: vec![] })
    };
    n.from(A, ll(9), vec![req(p6(1), rid(1), before.wrapping_add(1), 10)]);
    assert_eq!(n.m.seqno(), before.wrapping_add(1));
    let ups = n.updates_on(A);
    assert!(ups.iter().any(|u| u.prefix == Some(p6(1)) && u.seqno == n.m.seqno()), "{ups:?}");

    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    n.take_sent();
    n.from(B, ll(8), vec![req(p6(7), rid(7), 4, 10)]);
    let sent = n.take_sent();
    let fwd: Vec<_> = sent
        .iter()
        .filter_map(|(i, to, p)| {
            p.tlvs.iter().find_map(|t| {
                if let Tlv::SeqnoRequest(r) = t {
                    Some((*i, *to, r.clone()))
                } else {
                    None
                }
            })
        })
        .collect();
    assert_eq!(fwd.len(), 1, "{fwd:?}");
    assert_eq!(fwd[0].0, A);
    assert_eq!(fwd[0].1, SendTo::Unicast(ll(9)));
    assert_eq!((fwd[0].2.seqno, fwd[0].2.hop_count), (4, 9));
    // A duplicate within the hold time is not forwarded again.
    n.from(B, ll(8), vec![req(p6(7), rid(7), 4, 10)]);
    assert!(n.take_sent().iter().all(|(_, _, p)| !p.tlvs.iter().any(|t| matches!(t, Tlv::SeqnoRequest(_)))));
    // A request we can satisfy is answered with an update.
    n.from(B, ll(8), vec![req(p6(7), rid(7), 3, 10)]);
    assert!(n.updates_on(B).iter().any(|u| u.prefix == Some(p6(7)) && u.seqno == 3));
}

// RFC 8966 §3.8.1.2: a node with nothing selected forwards a seqno request to the next hop
// of an unfeasible route (SHOULD; babeld does). The case of the simulator: the originator
// restarts with seqno 0, our route through it is lost (its link restarts) and comes back
// unfeasible; our own request to it, sent at once, is refused (it does not know us yet) and
// is not resent. A starving node's request is then the one that must reach the originator:
// dropped here, the originator was only asked again when its periodic update (16 s) came.
#[test]
fn a_starving_node_forwards_seqno_requests_along_an_unfeasible_route() {
    let mut n = Node::default();
    n.peer(A, ll(9), vec![]);
    n.peer(B, ll(8), vec![]);
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    // Advertised on B: the feasibility distance is (3, 196).
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, INFINITY, None)]);
    assert_eq!(n.m.selected().count(), 0);
    let requests = |sent: &[(u32, SendTo, Packet)]| -> Vec<(u32, SendTo, SeqnoRequest)> {
        sent.iter()
            .flat_map(|(i, to, p)| p.tlvs.iter().map(move |t| (*i, *to, t)))
            .filter_map(
                |(i, to, t)| if let Tlv::SeqnoRequest(r) = t { Some((i, to, r.clone())) } else { None },
            )
            .collect()
    };
    // The originator is back with seqno 0: unfeasible, and we ask it once (that request is
    // lost).
    n.take_sent();
    n.from(A, ll(9), vec![update(p6(7), rid(7), 0, 0, vector(10, 4))]);
    let ours = requests(&n.take_sent());
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!((ours[0].0, ours[0].1), (A, SendTo::Unicast(ll(9))));
    assert_eq!(n.m.selected().count(), 0, "the route is unfeasible");
    // A starving node on B asks for the seqno after our feasibility distance's.
    let req = || {
        Tlv::SeqnoRequest(SeqnoRequest {
            prefix: p6(7),
            seqno: 4,
            hop_count: 10,
            router_id: rid(7),
            unknown: vec![],
        })
    };
    n.from(B, ll(8), vec![req()]);
    let fwd = requests(&n.take_sent());
    assert_eq!(fwd.len(), 1, "forwarded toward the originator: {fwd:?}");
    assert_eq!((fwd[0].0, fwd[0].1), (A, SendTo::Unicast(ll(9))));
    assert_eq!((fwd[0].2.seqno, fwd[0].2.hop_count), (4, 9));
    // Never back to the requester, and not along a retracted route: once the originator's
    // route is retracted and only the requester's (unfeasible) one is left, a request after
    // the hold time (not a duplicate) goes nowhere.
    n.from(B, ll(8), vec![update(p6(7), rid(7), 3, 300, vector(10, 4))]);
    n.from(A, ll(9), vec![update(p6(7), rid(7), 0, INFINITY, None)]);
    n.live_until(n.now + REQUEST_HOLD_MS + 100);
    n.take_sent();
    n.from(B, ll(8), vec![req()]);
    assert!(requests(&n.take_sent()).is_empty());
}

// RFC 8966 §3.5.4 and §3.7: a retraction unselects the route, the kernel route goes and we
// retract in turn; a wildcard retraction (§4.6.9, AE 0) retracts everything from a neighbour.
#[test]
fn retractions_and_wildcard_retractions() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4)), update(p6(6), rid(6), 1, 50, None)]);
    assert_eq!(n.m.selected().count(), 2);
    n.routes.clear();
    n.take_sent();
    n.from(
        A,
        ll(9),
        vec![Tlv::Update(Update {
            prefix: None,
            v4_via_v6: false,
            interval_cs: 0,
            seqno: 0,
            metric: INFINITY,
            router_id: rid(9),
            next_hop: None,
            vector: None,
            unknown: vec![],
        })],
    );
    assert_eq!(n.m.selected().count(), 0);
    assert_eq!(n.routes.len(), 2);
    assert!(n.routes.iter().all(|r| r.via.is_none()));
    let out = n.updates_on(B);
    assert_eq!(out.iter().filter(|u| u.metric == INFINITY).count(), 2, "{out:?}");
}

// RFC 8966 §3.5.4 (route expiry): with no update for 3.5 × its interval, a route is gone.
#[test]
fn routes_expire_after_three_and_a_half_intervals() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    n.routes.clear();
    // Keep the neighbour alive with Hellos and IHUs, but send no more updates.
    let mut seq = 2;
    while n.now < 13_000 {
        let t = n.now + 1_000;
        n.run_until(t);
        n.from(A, ll(9), vec![hello(seq), ihu(ll(1), 96)]);
        seq += 1;
        if n.now < 14_000 {
            assert!(n.routes.is_empty() || n.now >= 14_000, "expired early at {}", n.now);
        }
    }
    n.run_until(14_100);
    assert_eq!(n.routes, vec![RouteChange { prefix: p6(7), via: None, price_per_byte: None }]);
    assert_eq!(n.m.route_entries(), 0);
}

// RFC 8966 Appendix A.2.1 with our miss rule (a Hello counts as missed 1.25 intervals after
// the previous): two missed Hellos make the link unusable, and the other neighbour's route
// takes over without waiting for expiry.
#[test]
fn lost_hellos_fail_over_to_the_other_neighbour() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 4))]);
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 100, vector(20, 4))]);
    let via = |n: &Node| n.m.selected().next().map(|(_, r)| r.ifindex);
    // Both feasible (B has a newer seqno); A is cheaper.
    let first = via(&n);
    assert_eq!(first, Some(A));
    // Only B keeps saying Hello.
    let start = n.now;
    let mut seq = 2;
    loop {
        let t = n.now + 500;
        n.run_until(t);
        if n.now.is_multiple_of(1_000) {
            n.from(B, ll(8), vec![hello(seq), ihu(ll(2), 96)]);
            seq += 1;
        }
        if via(&n) == Some(B) {
            break;
        }
        assert!(n.now - start <= 3_000, "no failover after {} ms", n.now - start);
    }
    assert!(n.now - start <= 2_500);
}

// Selection by score among feasible routes, with hysteresis (our extension of §3.6).
#[test]
fn the_best_score_wins_but_only_by_more_than_the_hysteresis() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(100, 10))]);
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 900, vector(95, 10))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, A, "5% cheaper is within the hysteresis");
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 900, vector(50, 10))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, B, "half the price wins, whatever the metric");
    assert_eq!(n.routes.last().unwrap().price_per_byte, Some(50));
}

// Unpriced routes (no vector) are a last resort under the default policy, and usable alone.
#[test]
fn unpriced_routes_are_avoided_unless_alone() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 10, None)]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, A, "alone, it is used");
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 900, vector(1_000_000, 500))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, B, "any priced route is preferred");
    // A node that assumes a price for unpriced routes compares them.
    let mut c = BabelConfig::new(rid(1));
    c.unpriced =
        UnpricedPolicy::Assume(RouteVector { price_per_byte: 1, rtt_us: 1_000, loss_micro_nepers: 0 });
    let mut n = Node::new(c);
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 10, None)]);
    n.from(B, ll(8), vec![update(p6(7), rid(7), 4, 900, vector(1_000_000, 500))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, A);
}

// RFC 8966 §3.8.1.1: a wildcard Route Request gets a full dump, a specific one that prefix
// (a retraction if unknown).
#[test]
fn route_requests_are_answered() {
    let mut n = Node::default();
    n.input(RoutingInput::Originate(p6(1)));
    n.input(RoutingInput::Originate(p6(2)));
    n.acquire(A, ll(9));
    n.take_sent();
    n.from(A, ll(9), vec![Tlv::RouteRequest(RouteRequest { prefix: None, unknown: vec![] })]);
    let ups = n.updates_on(A);
    assert_eq!(ups.iter().filter(|u| u.metric == 0).count(), 2, "{ups:?}");
    n.from(A, ll(9), vec![Tlv::RouteRequest(RouteRequest { prefix: Some(p6(55)), unknown: vec![] })]);
    let ups = n.updates_on(A);
    assert_eq!(ups.len(), 1);
    assert_eq!((ups[0].prefix, ups[0].metric), (Some(p6(55)), INFINITY));
}

// RFC 8966 §3.3 and §4.6.3: an Ack Request is answered by a unicast Ack with its opaque value.
// Only a neighbour's: a stranger's is ignored (an Ack to a new address costs a neighbour
// discovery exchange too, see `limits`).
#[test]
fn ack_requests_are_acknowledged() {
    let mut n = Node::default();
    n.take_sent();
    n.from(A, ll(7), vec![Tlv::AckRequest { opaque: 0xbeef, interval_cs: 100 }]);
    assert!(n.take_sent().is_empty(), "a stranger's Ack Request is not answered");
    assert_eq!(n.m.stats.refused.stranger_tlvs, 1);
    n.acquire(A, ll(9));
    n.take_sent();
    n.from(A, ll(9), vec![Tlv::AckRequest { opaque: 0xbeef, interval_cs: 100 }]);
    let sent = n.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, SendTo::Unicast(ll(9)));
    assert_eq!(sent[0].2.tlvs, vec![Tlv::Ack { opaque: 0xbeef }]);
}

// RFC 9616 §3: RTT = (receipt − origin) − (neighbour's transmit − neighbour's receipt).
#[test]
fn link_rtt_comes_from_timestamps() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    // Our Hello at t = 1 s carries timestamp 1,000,000 µs.
    n.run_until(1_000);
    n.take_sent();
    // The neighbour received it at its 5,000,000 and answers at its 5,002,000; we get it at
    // 1.010 s: RTT = 10 ms − 2 ms = 8 ms.
    n.now = 1_010;
    let h = Tlv::Hello(Hello {
        unicast: false,
        seqno: 2,
        interval_cs: 100,
        timestamp_us: Some(5_002_000),
        unknown: vec![],
    });
    let i = Tlv::Ihu(Ihu {
        rxcost: 96,
        interval_cs: 100,
        address: Some(IpAddr::V6(ll(1))),
        timestamps_us: Some((1_000_000, 5_000_000)),
        unknown: vec![],
    });
    n.from(A, ll(9), vec![h, i]);
    assert_eq!(n.m.neighbours()[0].3, Some(8_000));
    // And we echo its timestamp in our next IHU.
    n.run_until(2_000);
    let echoed = n.take_sent().into_iter().flat_map(|(_, _, p)| p.tlvs).find_map(|t| match t {
        Tlv::Ihu(i) => i.timestamps_us,
        _ => None,
    });
    assert_eq!(echoed, Some((5_002_000, 1_010_000)));
}

// Verifiable metrics: a neighbour whose advertised RTT is consistently far better than the
// probes show loses trust after the streak, the evidence is recorded, and the route moves.
#[test]
fn a_neighbour_that_lies_about_rtt_loses_trust_and_the_route() {
    let mut n = Node::default();
    n.peer(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 1))]);
    n.peer(B, ll(8), vec![update(p6(7), rid(7), 4, 100, vector(10, 30))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, A);
    n.input(RoutingInput::InUse(vec![p6(7)]));
    let mut events = Vec::new();
    for _round in 0..12 {
        n.live_until(n.now + 30_000);
        assert!(n.probes.contains(&p6(7)), "destinations in use are probed");
        n.probes.clear();
        // Reality: 40 ms, whatever A says.
        n.m.handle(
            at(n.now),
            RoutingInput::Probed(ProbeReport { prefix: p6(7), sent: 20, received: 20, rtt_us: 40_000 }),
        );
        while let Some(e) = n.m.poll_event() {
            events.push(e);
        }
        n.drain();
        if n.m.selected().next().unwrap().1.ifindex == B {
            break;
        }
    }
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, B, "the liar lost the route");
    assert!(events.len() >= 3);
    assert!(events.iter().all(|RoutingEvent::TrustEvidence(e)| e.worse && e.neighbour == ll(9).octets()));
    // The durable trust is the fold of the events.
    let mut folded = TrustLedger::default();
    for e in &events {
        folded.apply(e);
    }
    assert_eq!(&folded, n.m.trust());
    assert!(n.m.trust().trust_of(Some((A, ll(9)))) < 1000);
}

// Our extension of RFC 8966 §3.7.2: a change of the path vector below the threshold (25% by
// default) waits for the periodic update; a larger one, or any price change, is triggered.
#[test]
fn small_vector_changes_wait_for_the_periodic_update() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 40))]);
    n.take_sent();
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 44))]);
    assert!(n.updates_on(B).is_empty(), "10% more RTT: no triggered update");
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 80))]);
    let ups = n.updates_on(B);
    assert_eq!(ups.len(), 1, "twice the RTT is announced at once");
    assert_eq!(ups[0].vector.unwrap().rtt_us, 80_000);
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(11, 80))]);
    assert_eq!(n.updates_on(B)[0].vector.unwrap().price_per_byte, 16, "any price change is announced");
}

// RFC 8966 §3.5.3: after a restart our seqno starts again from 0; a neighbour's seqno
// request for the seqno it still holds makes us jump to it, so our routes are feasible again
// at once instead of after the sources expire.
#[test]
fn a_restarted_source_jumps_to_the_requested_seqno() {
    let mut n = Node::default();
    n.input(RoutingInput::Originate(p6(1)));
    n.acquire(A, ll(9));
    n.take_sent();
    assert_eq!(n.m.seqno(), 0);
    let req = Tlv::SeqnoRequest(SeqnoRequest {
        prefix: p6(1),
        seqno: 5_000,
        hop_count: 3,
        router_id: rid(1),
        unknown: vec![],
    });
    n.from(A, ll(9), vec![req]);
    assert_eq!(n.m.seqno(), 5_000);
    assert!(n.updates_on(A).iter().any(|u| u.prefix == Some(p6(1)) && u.seqno == 5_000 && u.metric == 0));
}

// RFC 9616 RTTs in the score: a link's RTT is part of the rank of every route through it,
// so selection is redone when it is first measured and when it moves beyond the vector
// threshold (the rule of triggered updates), not only when an Update arrives.
#[test]
fn a_link_rtt_measured_or_moved_redoes_selection() {
    let mut n = Node::default();
    n.acquire(A, ll(9));
    n.acquire(B, ll(8));
    n.from(A, ll(9), vec![update(p6(7), rid(7), 3, 100, vector(10, 1))]);
    n.from(B, ll(8), vec![update(p6(7), rid(7), 3, 100, vector(10, 1))]);
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, A, "a tie: the first stays");
    // Our Hello at 1 s carries 1,000,000 µs; A answers it 40 ms later (no hold).
    n.run_until(1_000);
    let answer = |transmit: u32, origin: u32, receive: u32| {
        vec![
            Tlv::Hello(Hello {
                unicast: false,
                seqno: 2,
                interval_cs: 100,
                timestamp_us: Some(transmit),
                unknown: vec![],
            }),
            Tlv::Ihu(Ihu {
                rxcost: 96,
                interval_cs: 100,
                address: Some(IpAddr::V6(ll(1))),
                timestamps_us: Some((origin, receive)),
                unknown: vec![],
            }),
        ]
    };
    n.now = 1_040;
    n.from(A, ll(9), answer(5_000_000, 1_000_000, 5_000_000));
    assert_eq!(n.m.neighbours().iter().find(|x| x.1 == ll(9)).unwrap().3, Some(40_000));
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, B, "40 ms more through A: B wins at once");
    // B's link measured at 1 ms: a first measurement, selection redone, B stays.
    n.now = 1_041;
    n.from(B, ll(8), answer(7_000_000, 1_000_000, 7_000_000));
    assert_eq!(n.m.selected().next().unwrap().1.ifindex, B);
}

// Our shutdown (RFC 8966 §3.5.5 wildcard retraction, as babeld and BIRD do on exit): every
// interface hears one wildcard retraction with our router-id, every route reported is
// reported gone (the kernel routes are removed), and nothing more happens afterwards.
#[test]
fn shutdown_retracts_everything_on_every_interface_and_reports_every_route_gone() {
    let mut n = Node::default();
    n.input(RoutingInput::Originate(p6(1)));
    n.peer(A, ll(9), vec![update(p6(7), rid(7), 1, 100, vector(10, 1))]);
    n.peer(B, ll(8), vec![update(p6(8), rid(8), 1, 100, vector(10, 1)), update(p6(9), rid(9), 1, 100, None)]);
    n.live_until(5_000);
    let reachable: BTreeSet<Prefix> = n.m.selected().map(|(p, _)| p).collect();
    assert_eq!(reachable, [p6(7), p6(8), p6(9)].into_iter().collect());
    n.take_sent();
    n.routes.clear();
    n.input(RoutingInput::Shutdown);
    let sent = n.take_sent();
    for ifindex in [A, B] {
        let on: Vec<&Packet> = sent.iter().filter(|(i, _, _)| *i == ifindex).map(|(_, _, p)| p).collect();
        assert_eq!(on.len(), 1, "one packet on interface {ifindex}: {on:?}");
        assert_eq!(
            sent.iter().find(|(i, _, _)| *i == ifindex).map(|(_, to, _)| *to),
            Some(SendTo::Multicast)
        );
        // A wildcard retraction (AE 0, infinite metric; its router-id travels in no TLV) and
        // nothing else.
        assert!(
            matches!(on[0].tlvs.as_slice(), [Tlv::Update(Update { prefix: None, metric: INFINITY, .. })]),
            "{:?}",
            on[0].tlvs
        );
    }
    let mut gone: Vec<RouteChange> = n.routes.clone();
    gone.sort_by_key(|c| c.prefix);
    let want: Vec<RouteChange> = [p6(7), p6(8), p6(9)]
        .into_iter()
        .map(|prefix| RouteChange { prefix, via: None, price_per_byte: None })
        .collect();
    assert_eq!(gone, want, "every reported route is reported gone, once");
    // Afterwards nothing is sent or selected again: not when packets still arrive (no
    // interface is left), nor when the remaining timers fire (neighbours and routes expire).
    n.from(A, ll(9), vec![hello(50), update(p6(7), rid(7), 2, 100, vector(10, 1))]);
    n.run_until(n.now + 300_000);
    assert!(n.take_sent().is_empty());
    assert_eq!(n.routes.len(), 3);
    assert_eq!(n.m.selected().count(), 0);
}

// The probe planner asks only for probes that can be sent and judged: a probe goes to the
// destination's own address (a host route), and its report is judged against a selected
// route that advertised a vector. Other destinations in use are skipped, not probed.
#[test]
fn only_host_routes_with_a_selected_priced_route_are_probed() {
    let mut c = BabelConfig::new(rid(1));
    c.trust.probe_interval_ms = 10_000;
    let mut n = Node::new(c);
    let lan = Prefix::new("fd00:0:0:42::".parse().unwrap(), 64).unwrap();
    n.peer(
        A,
        ll(9),
        vec![
            update(p6(7), rid(7), 1, 100, vector(10, 1)),
            update(lan, rid(7), 1, 100, vector(10, 1)),
            update(p6(8), rid(8), 1, 100, None),
        ],
    );
    n.live_until(3_000);
    // p6(9): in use, but no route to it.
    n.input(RoutingInput::InUse(vec![p6(7), lan, p6(8), p6(9)]));
    n.live_until(14_000);
    assert_eq!(n.probes, vec![p6(7)], "only the priced host route is probed");
    // Once p6(9) is reachable with a vector, it is probed too.
    n.peers[0].repeat.push(update(p6(9), rid(9), 1, 100, vector(10, 1)));
    n.probes.clear();
    n.live_until(25_000);
    assert_eq!(n.probes, vec![p6(7), p6(9)]);
}
