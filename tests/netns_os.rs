//! The OS adapters against a real kernel, each test in network namespaces of its own
//! (`tests/support/netns.rs`): kernel routes over rtnetlink, the Babel UDP socket, and a
//! sanity check that two babeld peers converge in the harness the interop tests use.
//!
//! Needs root, iproute2, babeld and nftables (`scripts/setup.sh`); without them every test
//! fails and says what to install.

#[path = "support/netns.rs"]
mod netns;

use lastmile::events::kernel::{KernelRoute, RouteOp};
use lastmile::os::babel_socket::{BabelSocket, Datagram, MULTICAST_GROUP};
use lastmile::os::routes::{self, KernelRoutes, RouteError};
use lastmile::wire::Prefix;
use netns::{
    babeld_routes, enter_netns, in_netns_async, runtime, veth, wait_for, Babeld, BabeldConfig, Netns,
};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

const TOOLS: &[&str] = &["babeld", "ip", "tc", "nft"];

fn dst(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').expect("prefix has a length");
    Prefix::new(addr.parse().expect("address"), len.parse().expect("length")).expect("valid prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// purge_stale removes our leftovers from the main table only; replace is one route per
/// prefix (v6, v4, v4-via-v6); delete leaves other protocols' routes; refusals are values.
#[test]
fn kernel_routes_purge_replace_delete_and_refusals() {
    netns::require_root_and_tools(TOOLS);
    let ns = Netns::new("routes");
    let link = veth(&ns, "r0", &ns, "r1");
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "r0"]);
    // An interface that stays down.
    ns.ip(&["link", "add", "dn0", "type", "veth", "peer", "name", "dn1"]);
    let down = ns.ifindex("dn0");
    let proto = routes::PROTOCOL.to_string();
    let metric = routes::METRIC.to_string();

    // Leftovers of a previous run (ours, main table), ours in another table, and foreign routes
    // (one to a prefix we will also route).
    ns.ip(&["-6", "route", "add", "2001:db8:ff::/48", "via", "fe80::1", "dev", "r0", "proto", &proto]);
    ns.ip(&["route", "add", "203.0.113.0/24", "via", "192.0.2.9", "dev", "r0", "proto", &proto]);
    ns.ip(&["route", "add", "198.51.100.0/24", "via", "inet6", "fe80::1", "dev", "r0", "proto", &proto]);
    ns.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:fe::/48",
        "via",
        "fe80::1",
        "dev",
        "r0",
        "proto",
        &proto,
        "table",
        "100",
    ]);
    ns.ip(&["-6", "route", "add", "2001:db8:ee::/48", "via", "fe80::1", "dev", "r0", "proto", "static"]);
    ns.ip(&["route", "add", "198.51.100.128/25", "via", "192.0.2.8", "dev", "r0", "proto", "static"]);

    let ns_name = ns.name().to_string();
    in_netns_async(&ns_name, || async {
        let kernel = KernelRoutes::connect().expect("netlink socket");
        assert_eq!(kernel.purge_stale().await, Ok(3));
        assert_eq!(kernel.list_ours().await, Ok(vec![]));
        assert_eq!(kernel.purge_stale().await, Ok(0), "nothing left to purge");

        let r0 = link.a_ifindex;
        let v6 = KernelRoute { dst: dst("2001:db8:1::/48"), via: ip("fe80::1"), ifindex: r0 };
        let v4 = KernelRoute { dst: dst("198.51.100.128/25"), via: ip("192.0.2.2"), ifindex: r0 };
        // RFC 9229: an IPv4 prefix through a neighbour's IPv6 link-local address.
        let v4_via_v6 = KernelRoute { dst: dst("203.0.113.0/24"), via: ip("fe80::2"), ifindex: r0 };
        let default_v6 = KernelRoute { dst: dst("::/0"), via: ip("fe80::3"), ifindex: r0 };
        let ops = [
            RouteOp::Replace(v6),
            RouteOp::Replace(v4),
            RouteOp::Replace(v4_via_v6),
            RouteOp::Replace(default_v6),
        ];
        for (op, result) in kernel.apply(&ops).await {
            assert_eq!(result, Ok(()), "{op}");
        }
        let mut listed = kernel.list_ours().await.expect("list");
        listed.sort();
        let mut expected = vec![v6, v4, v4_via_v6, default_v6];
        expected.sort();
        assert_eq!(listed, expected);

        // Replace is in place: one route per prefix, with the new next hop.
        let moved = KernelRoute { via: ip("fe80::9"), ..v6 };
        let moved_v4 = KernelRoute { via: ip("fe80::8"), ..v4 };
        for (op, result) in kernel.apply(&[RouteOp::Replace(moved), RouteOp::Replace(moved_v4)]).await {
            assert_eq!(result, Ok(()), "{op}");
        }
        let listed = kernel.list_ours().await.expect("list");
        assert_eq!(listed.iter().filter(|r| r.dst == v6.dst).collect::<Vec<_>>(), vec![&moved]);
        assert_eq!(listed.iter().filter(|r| r.dst == v4.dst).collect::<Vec<_>>(), vec![&moved_v4]);

        let deletes = [RouteOp::Delete(v6.dst), RouteOp::Delete(v4.dst), RouteOp::Delete(default_v6.dst)];
        for (op, result) in kernel.apply(&deletes).await {
            assert_eq!(result, Ok(()), "{op}");
        }
        assert_eq!(kernel.list_ours().await, Ok(vec![v4_via_v6]));

        // Refusals come back as values, each with the op and the kernel's reason, and do not
        // stop the rest of the batch.
        let on_down = KernelRoute { dst: dst("2001:db8:2::/48"), via: ip("fe80::1"), ifindex: down };
        let v4_on_down = KernelRoute { dst: dst("192.0.2.128/25"), via: ip("fe80::1"), ifindex: down };
        let missing = KernelRoute { dst: dst("2001:db8:3::/48"), via: ip("fe80::1"), ifindex: 999_999 };
        let v6_via_v4 = KernelRoute { dst: dst("2001:db8:4::/48"), via: ip("192.0.2.2"), ifindex: r0 };
        let last = KernelRoute { dst: dst("2001:db8:5::/48"), via: ip("fe80::1"), ifindex: r0 };
        let batch = [
            RouteOp::Replace(on_down),
            RouteOp::Replace(v4_on_down),
            RouteOp::Replace(missing),
            RouteOp::Replace(v6_via_v4),
            RouteOp::Delete(dst("2001:db8:6::/48")),
            RouteOp::Replace(last),
        ];
        let results = kernel.apply(&batch).await;
        let messages: Vec<String> = results
            .iter()
            .map(|(op, r)| match r {
                Err(e) => e.to_string(),
                Ok(()) => format!("{op}: ok"),
            })
            .collect();
        for m in &messages {
            eprintln!("{m}");
        }
        assert_eq!(results.iter().map(|(op, _)| *op).collect::<Vec<_>>(), batch);
        assert_eq!(
            messages[0],
            format!(
                "kernel refused to replace 2001:db8:2::/48 via fe80::1 dev #{down}: the next hop's interface \
                 is down (kernel: Nexthop device is not up) (errno {})",
                libc::ENETDOWN
            )
        );
        assert!(matches!(results[1].1, Err(RouteError::Kernel { errno, .. }) if errno == libc::ENETDOWN));
        assert!(messages[2].contains("no interface with that index"), "{}", messages[2]);
        assert!(matches!(results[2].1, Err(RouteError::Kernel { errno, .. }) if errno == libc::ENODEV));
        assert!(matches!(results[3].1, Err(RouteError::V6ViaV4 { .. })), "{}", messages[3]);
        assert!(results[4].1.as_ref().is_err_and(RouteError::is_not_found), "{}", messages[4]);
        assert_eq!(results[5].1, Ok(()));
    });

    // What the kernel shows: the v4-via-v6 route in iproute2's words, and the foreign routes
    // untouched (also the static one to the prefix we routed and deleted).
    let v4 = ns.ip(&["-4", "route", "show", "proto", &proto]);
    assert_eq!(v4.trim(), format!("203.0.113.0/24 via inet6 fe80::2 dev r0 metric {metric}"));
    assert!(ns.ip(&["-6", "route", "show", "table", "100"]).contains("2001:db8:fe::/48"));
    assert!(ns.ip(&["-6", "route", "show", "proto", "static"]).contains("2001:db8:ee::/48"));
    assert!(ns.ip(&["-4", "route", "show", "proto", "static"]).contains("198.51.100.128/25 via 192.0.2.8"));
}

/// RFC 8966 §4: Babel runs over link-local IPv6 on port 6696, multicast to ff02::1:6; a
/// receiver learns the arrival interface and ignores packets from non-link-local sources.
#[test]
fn babel_socket_multicast_unicast_and_non_link_local_drop() {
    netns::require_root_and_tools(TOOLS);
    let a = Netns::new("sock-a");
    let b = Netns::new("sock-b");
    let link = veth(&a, "to-b", &b, "to-a");
    // Global addresses too, so the kernel has a choice of source: it must pick link-local.
    a.ip(&["-6", "addr", "add", "2001:db8:ab::1/64", "dev", "to-b"]);
    b.ip(&["-6", "addr", "add", "2001:db8:ab::2/64", "dev", "to-a"]);
    let (a_name, b_name) = (a.name().to_string(), b.name().to_string());

    // One thread plays both nodes: each socket is created in its namespace, then both are
    // driven from one runtime (see the harness's module doc).
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = runtime();
            let _guard = rt.enter();
            enter_netns(&a_name);
            let sock_a = BabelSocket::bind(6696).expect("bind in a");
            let stranger = UdpSocket::bind("[2001:db8:ab::1]:0").expect("non-link-local sender in a");
            enter_netns(&b_name);
            let sock_b = BabelSocket::bind(6696).expect("bind in b");
            rt.block_on(async {
                sock_a.join(link.a_ifindex).expect("join a");
                sock_a.join(link.a_ifindex).expect("joining twice is fine");
                sock_b.join(link.b_ifindex).expect("join b");
                sock_a.send_multicast(link.a_ifindex, b"hello from a").await.expect("multicast");
                let got = recv_within("b", &sock_b).await;
                assert_eq!(got.ifindex, link.b_ifindex);
                assert_eq!(got.source, link.a_link_local);
                assert_eq!(got.destination, MULTICAST_GROUP);
                assert_eq!(got.bytes, b"hello from a");
                // Multicast loop is off: a never hears itself.
                let own = tokio::time::timeout(Duration::from_millis(200), sock_a.recv()).await;
                assert!(own.is_err(), "a received its own multicast: {own:?}");

                sock_b
                    .send_unicast(link.b_ifindex, link.a_link_local, b"unicast b->a")
                    .await
                    .expect("unicast");
                let got = recv_within("a", &sock_a).await;
                assert_eq!(
                    (got.ifindex, got.source, got.destination, got.bytes.as_slice()),
                    (link.a_ifindex, link.b_link_local, link.a_link_local, &b"unicast b->a"[..])
                );
                sock_a
                    .send_unicast(link.a_ifindex, link.b_link_local, b"unicast a->b")
                    .await
                    .expect("unicast");
                let got = recv_within("b", &sock_b).await;
                assert_eq!((got.source, got.destination), (link.a_link_local, link.b_link_local));

                let global: Ipv6Addr = "2001:db8:ab::2".parse().expect("address");
                let refused = sock_a.send_unicast(link.a_ifindex, global, b"x").await;
                assert_eq!(refused.map_err(|e| e.kind()), Err(std::io::ErrorKind::InvalidInput));

                // From a global source: to the group and to b's global address. Both dropped,
                // both counted; the link-local packet after them comes through.
                let group = SocketAddrV6::new(MULTICAST_GROUP, 6696, 0, link.a_ifindex);
                stranger.send_to(b"global to group", group).expect("send");
                stranger.send_to(b"global to global", SocketAddrV6::new(global, 6696, 0, 0)).expect("send");
                sock_a.send_multicast(link.a_ifindex, b"after").await.expect("multicast");
                let got = recv_within("b", &sock_b).await;
                assert_eq!(got.bytes, b"after");
                // The unicast one may still wait for neighbour discovery: give it time to be
                // dropped, and check nothing else comes.
                let extra = tokio::time::timeout(Duration::from_millis(500), sock_b.recv()).await;
                assert!(extra.is_err(), "b received {extra:?}");
                assert_eq!(sock_b.dropped_non_link_local(), 2);
                assert_eq!(sock_a.dropped_non_link_local(), 0);

                sock_b.leave(link.b_ifindex).expect("leave");
                sock_a.send_multicast(link.a_ifindex, b"after leave").await.expect("multicast");
                let left = tokio::time::timeout(Duration::from_millis(200), sock_b.recv()).await;
                assert!(left.is_err(), "b received after leaving: {left:?}");
            });
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    });
}

async fn recv_within(who: &str, sock: &BabelSocket) -> Datagram {
    tokio::time::timeout(Duration::from_secs(5), sock.recv())
        .await
        .unwrap_or_else(|_| panic!("{who} received nothing within 5 s"))
        .expect("recv")
}

/// The harness for interop tests: two babeld in two namespaces learn each other's addresses
/// within a few seconds (IPv6, and IPv4 over a link with no IPv4 address: v4-via-v6).
#[test]
fn two_babeld_exchange_routes() {
    netns::require_root_and_tools(TOOLS);
    let a = Netns::new("babeld-a");
    let b = Netns::new("babeld-b");
    veth(&a, "to-b", &b, "to-a");
    a.ip(&["addr", "add", "2001:db8:a::1/128", "dev", "lo"]);
    a.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    b.ip(&["addr", "add", "2001:db8:b::1/128", "dev", "lo"]);
    let config = |iface: &str, prefixes: &[&str]| {
        let mut lines: Vec<String> =
            prefixes.iter().map(|p| format!("redistribute local ip {p} allow")).collect();
        lines.push("redistribute local deny".into());
        BabeldConfig { interfaces: vec![iface.into()], lines, lifetime_s: 60, ..BabeldConfig::default() }
    };
    let babel_a = Babeld::start(&a, config("to-b", &["2001:db8:a::/48", "192.0.2.0/24"]));
    let babel_b = Babeld::start(&b, config("to-a", &["2001:db8:b::/48"]));

    let routes_b = wait_for(Duration::from_secs(10), "b to learn a's routes", || {
        let routes = babeld_routes(&b);
        let learned = routes.iter().any(|r| r.starts_with("2001:db8:a::1 via fe80::"))
            && routes.iter().any(|r| r.starts_with("192.0.2.1 via inet6 fe80::"));
        learned.then_some(routes)
    });
    eprintln!("b: {routes_b:?}");
    wait_for(Duration::from_secs(10), "a to learn b's route", || {
        babeld_routes(&a).iter().any(|r| r.starts_with("2001:db8:b::1 via fe80::")).then_some(())
    });
    let dump = babel_b.dump();
    assert!(dump.iter().any(|l| l.starts_with("add neighbour")), "b's dump has no neighbour: {dump:?}");
    drop(babel_a);
}

/// End-to-end probes through a real kernel: all come back on a clean link; with an nftables
/// rule dropping 30% of the queries at random on the far side, the loss measured is close to
/// 30%; the responder's delay shows up in the RTT.
#[test]
fn probes_measure_loss_and_rtt_through_the_kernel() {
    use lastmile::os::prober::{probe, ProbePlan, Responder};
    netns::require_root_and_tools(TOOLS);
    let a = Netns::new("probe-a");
    let b = Netns::new("probe-b");
    veth(&a, "p0", &b, "p1");
    a.ip(&["-6", "addr", "add", "fd00:9::1/64", "dev", "p0", "nodad"]);
    b.ip(&["-6", "addr", "add", "fd00:9::2/64", "dev", "p1", "nodad"]);
    let far = ip("fd00:9::2");
    std::thread::scope(|s| {
        let b_name = b.name().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        s.spawn(move || {
            in_netns_async(&b_name, || async move {
                let responder = Responder::bind(0).await.expect("bind").with_delay(Duration::from_millis(15));
                tx.send(responder.local_port().expect("port")).expect("send port");
                // Serves until the probing side is done, and never longer than 20 s.
                let _ = tokio::time::timeout(Duration::from_secs(20), async {
                    tokio::select! {
                        _ = responder.serve() => {}
                        _ = stopped => {}
                    }
                })
                .await;
            })
        });
        let port = rx.recv().expect("responder port");
        let plan = ProbePlan {
            count: 200,
            spacing: Duration::from_millis(2),
            linger: Duration::from_millis(500),
            port,
        };
        let clean = in_netns_async(a.name(), || probe(far, plan)).expect("probe");
        assert_eq!((clean.sent, clean.received), (200, 200));
        assert!((15_000..100_000).contains(&clean.rtt_us), "{clean:?}");
        b.run(&["nft", "add", "table", "inet", "lmprobe"]);
        b.run(&["nft", "add", "chain", "inet", "lmprobe", "in", "{ type filter hook input priority 0; }"]);
        b.run(&[
            "nft",
            "add",
            "rule",
            "inet",
            "lmprobe",
            "in",
            "udp",
            "dport",
            &port.to_string(),
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            "30",
            "drop",
        ]);
        let lossy = in_netns_async(a.name(), || probe(far, plan)).expect("probe");
        assert_eq!(lossy.sent, 200);
        // 30% of 200: 60 lost on average, σ ≈ 6.5; ±4σ.
        assert!((114..=166).contains(&lossy.received), "{lossy:?}");
        let _ = stop.send(());
    });
}
