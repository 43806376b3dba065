//! End-to-end probes over the mesh: how many of `count` UDP probes to a destination come back,
//! and how long they take. This is what the routing machine compares with the route vector a
//! neighbour advertised (verifiable metrics, `machines::babel::trust`).
//!
//! Every lastmile node runs a [`Responder`] on [`PROBE_PORT`]: it echoes a probe to its
//! sender with the first byte changed, nothing else. A probe is 16 bytes:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | `LMP?`: `LMPQ` query, `LMPR` reply |
//! | 4 | 4 | probe number (big endian) |
//! | 8 | 8 | prober's send time, µs of its monotonic clock (big endian) |
//!
//! The reply is exactly as long as the query, so the responder cannot amplify anything, and it
//! answers only well-formed queries. Probes travel through the data path (the kernel routes
//! and the tunnels), so they measure what users get, not what the control plane claims.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The UDP port of the probe responder.
pub const PROBE_PORT: u16 = 6697;
const LEN: usize = 16;
const QUERY: &[u8; 4] = b"LMPQ";
const REPLY: &[u8; 4] = b"LMPR";

/// How a probe round is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePlan {
    pub count: u32,
    /// Time between two probes.
    pub spacing: Duration,
    /// How long to wait for replies after the last probe.
    pub linger: Duration,
    pub port: u16,
}

impl Default for ProbePlan {
    fn default() -> Self {
        ProbePlan {
            count: 20,
            spacing: Duration::from_millis(50),
            linger: Duration::from_secs(1),
            port: PROBE_PORT,
        }
    }
}

/// What a probe round measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    pub sent: u32,
    pub received: u32,
    /// Mean RTT of the replies (µs); 0 when none came back.
    pub rtt_us: u32,
}

/// The prober times its own probes: an RTT is a measurement taken at the edge, like a byte
/// counter, and it reaches the machine only as a number in a report.
#[allow(clippy::disallowed_methods)]
fn monotonic() -> Instant {
    Instant::now()
}

fn query(n: u32, sent_us: u64) -> [u8; LEN] {
    let mut b = [0; LEN];
    b[..4].copy_from_slice(QUERY);
    b[4..8].copy_from_slice(&n.to_be_bytes());
    b[8..].copy_from_slice(&sent_us.to_be_bytes());
    b
}

/// Sends `plan.count` probes to `destination` and counts the replies. Duplicated and
/// unknown replies are ignored; an unreachable destination is a report with nothing
/// received (the send errors are counted as sent probes that were lost), not an error. Only
/// failing to open a socket is an error.
pub async fn probe(destination: IpAddr, plan: ProbePlan) -> io::Result<Measured> {
    let bind: SocketAddr = match destination {
        IpAddr::V4(_) => (IpAddr::from([0, 0, 0, 0]), 0).into(),
        IpAddr::V6(_) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into(),
    };
    let socket = UdpSocket::bind(bind).await?;
    let to = SocketAddr::new(destination, plan.port);
    let epoch = monotonic();
    let now_us = || epoch.elapsed().as_micros() as u64;
    let mut seen = BTreeSet::new();
    let mut rtt_total: u64 = 0;
    let mut buf = [0u8; 64];
    let mut next_send = monotonic();
    let mut sent = 0u32;
    let end_of_sending = epoch + plan.spacing * plan.count.saturating_sub(1);
    let deadline = end_of_sending + plan.linger;
    loop {
        if sent < plan.count && monotonic() >= next_send {
            // A failed send (no route, for instance) is a lost probe.
            let _ = socket.send_to(&query(sent, now_us()), to).await;
            sent += 1;
            next_send += plan.spacing;
            continue;
        }
        let wake = if sent < plan.count { next_send } else { deadline };
        let now = monotonic();
        if sent >= plan.count && now >= deadline {
            break;
        }
        let wait = wake.saturating_duration_since(now);
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(_)) => continue,
            Ok(Ok((n, from))) => {
                if n != LEN || &buf[..4] != REPLY || from.ip() != destination {
                    continue;
                }
                let number = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes"));
                let sent_us = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
                if number >= sent || !seen.insert(number) {
                    continue;
                }
                rtt_total += now_us().saturating_sub(sent_us);
            }
        }
    }
    let received = seen.len() as u32;
    let rtt_us =
        if received == 0 { 0 } else { (rtt_total / u64::from(received)).min(u64::from(u32::MAX)) as u32 };
    Ok(Measured { sent, received, rtt_us })
}

/// The probe responder: echoes well-formed queries as replies of the same size.
pub struct Responder {
    socket: UdpSocket,
    /// Held before answering (tests emulate a slow path with it).
    delay: Duration,
}

impl Responder {
    /// Binds `[::]:port` (IPv4 too, where the system maps it) for probes.
    pub async fn bind(port: u16) -> io::Result<Responder> {
        let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).await?;
        Ok(Responder { socket, delay: Duration::ZERO })
    }

    pub fn with_delay(self, delay: Duration) -> Responder {
        Responder { delay, ..self }
    }

    pub fn local_port(&self) -> io::Result<u16> {
        Ok(self.socket.local_addr()?.port())
    }

    /// Answers queries until the future is dropped. Each reply is held `delay` after its own
    /// query arrived (the queries do not queue behind each other's delay).
    pub async fn serve(self) -> io::Result<()> {
        let socket = std::sync::Arc::new(self.socket);
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            if n != LEN || &buf[..4] != QUERY {
                continue;
            }
            let mut reply = [0u8; LEN];
            reply.copy_from_slice(&buf[..LEN]);
            reply[..4].copy_from_slice(REPLY);
            // A reply that cannot be sent is a lost probe for the prober, nothing more.
            if self.delay.is_zero() {
                let _ = socket.send_to(&reply, from).await;
            } else {
                let (socket, delay) = (std::sync::Arc::clone(&socket), self.delay);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&reply, from).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn every_probe_comes_back_from_a_responder_on_loopback_with_its_delay() {
        runtime().block_on(async {
            let responder = Responder::bind(0).await.expect("bind").with_delay(Duration::from_millis(20));
            let port = responder.local_port().expect("port");
            let serving = tokio::spawn(responder.serve());
            let plan = ProbePlan {
                count: 10,
                spacing: Duration::from_millis(5),
                linger: Duration::from_millis(300),
                port,
            };
            let m = probe(IpAddr::V6(Ipv6Addr::LOCALHOST), plan).await.expect("probe");
            serving.abort();
            assert_eq!((m.sent, m.received), (10, 10));
            assert!((20_000..200_000).contains(&m.rtt_us), "{m:?}");
        });
    }

    #[test]
    fn nobody_answering_is_a_report_of_total_loss_not_an_error() {
        runtime().block_on(async {
            // A port nobody listens on: the queries are lost (or refused), none come back.
            let idle = std::net::UdpSocket::bind("[::1]:0").expect("bind");
            let port = idle.local_addr().expect("addr").port();
            drop(idle);
            let plan = ProbePlan {
                count: 3,
                spacing: Duration::from_millis(5),
                linger: Duration::from_millis(100),
                port,
            };
            let m = probe(IpAddr::V6(Ipv6Addr::LOCALHOST), plan).await.expect("probe");
            assert_eq!(m, Measured { sent: 3, received: 0, rtt_us: 0 });
        });
    }
}
