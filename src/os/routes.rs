//! Kernel routes: the adapter that carries out the route sync's decisions
//! ([`crate::machines::route_sync`]) on the kernel's main table over rtnetlink. Decisions
//! arrive as data ([`RouteOp`]); each one's result comes back as a value, in order, for the
//! shell to feed back ([`answer`] says it in the route sync's words).
//!
//! Our routes are marked with [`PROTOCOL`] and carry [`METRIC`]. The mark is what makes them
//! ours: [`KernelRoutes::purge_stale`] removes every route so marked from the main table at
//! start (what a previous run left behind), deletes match it so another program's route to the
//! same prefix is never removed, and [`KernelRoutes::list_ours`] filters on it.
//!
//! One route per destination prefix: [`RouteOp::Replace`] creates the route or replaces ours
//! (same table, prefix and metric) in place, so a change of next hop never leaves two routes.
//! IPv4 prefixes may have an IPv6 next hop (RFC 9229 v4-via-v6, `ip route add 192.0.2.0/24 via
//! inet6 fe80::1 dev X`): it is sent as `RTA_VIA`, which Linux accepts for IPv4 since 5.2.

use crate::events::kernel::{KernelAnswer, KernelRoute, RouteOp};
use crate::wire::Prefix;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteVia,
};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Our routing protocol number (`rtm_protocol`). 76 is free in iproute2's `rt_protos` (babeld
/// uses 42, bird 12, zebra 11). `ip route show proto 76` lists our routes; an
/// `/etc/iproute2/rt_protos.d/lastmile.conf` line `76 lastmile` makes it `proto lastmile`.
pub const PROTOCOL: u8 = 76;

/// The priority (metric) of every route we install. It differs from the kernel's defaults
/// (0 for IPv4, 256 for connected and 1024 for static IPv6 routes) so that a replace, which
/// matches on prefix and metric, never takes over a route another program installed with a
/// default metric.
pub const METRIC: u32 = 1076;

const MAIN_TABLE: u8 = RouteHeader::RT_TABLE_MAIN;

/// Why a route operation failed. Kernel refusals keep the errno and say what it means here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("cannot open a netlink route socket: {0}")]
    Connect(String),
    #[error("cannot {op}: an IPv6 destination needs an IPv6 next hop")]
    V6ViaV4 { op: String },
    #[error("kernel refused to {op}: {reason} (errno {errno})")]
    Kernel { op: String, errno: i32, reason: String },
    #[error("netlink failure during {op}: {detail}")]
    Netlink { op: String, detail: String },
}

/// What a change's result means to the route sync: done, no such route, or refused with
/// this error's words.
pub fn answer(result: &Result<(), RouteError>) -> KernelAnswer {
    match result {
        Ok(()) => KernelAnswer::Done,
        Err(e) if e.is_not_found() => KernelAnswer::NotFound,
        Err(e) => KernelAnswer::Refused(e.to_string()),
    }
}

impl RouteError {
    /// True when the kernel had no such route to delete.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RouteError::Kernel { errno, .. } if *errno == libc::ESRCH)
    }

    fn from_netlink(op: String, e: rtnetlink::Error) -> RouteError {
        match e {
            rtnetlink::Error::NetlinkError(m) => {
                // The kernel sends negative errnos.
                let errno = m.raw_code().saturating_abs();
                let reason = match extack_message(&m.header) {
                    Some(said) => format!("{} (kernel: {said})", errno_reason(errno)),
                    None => errno_reason(errno),
                };
                RouteError::Kernel { op, errno, reason }
            }
            other => RouteError::Netlink { op, detail: other.to_string() },
        }
    }
}

/// What an errno means for a route request, in the words of this adapter's callers.
fn errno_reason(errno: i32) -> String {
    let text = match errno {
        libc::ENODEV => "no interface with that index",
        libc::ENETDOWN => "the next hop's interface is down",
        libc::ENETUNREACH => "the next hop is not reachable on that interface",
        libc::EHOSTUNREACH => "no route to the next hop",
        libc::ESRCH => "no such route of ours in the main table",
        libc::EEXIST => "a conflicting route exists",
        libc::EPERM | libc::EACCES => "not permitted (needs CAP_NET_ADMIN)",
        libc::EAFNOSUPPORT => "address family not supported (IPv6 disabled on the interface?)",
        _ => return std::io::Error::from_raw_os_error(errno).to_string(),
    };
    text.to_string()
}

/// The kernel's own words for a refusal: the `NLMSGERR_ATTR_MSG` attribute of an extended
/// ack. `payload` is what follows the error code: the echoed request (whole, as
/// `NETLINK_CAP_ACK` is off), then the attributes. `None` if there is none or it is malformed.
fn extack_message(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    const NLA_TYPE_MASK: u16 = 0x3fff;
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    let echoed = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
    let mut at = align4(usize::try_from(echoed).ok()?)?;
    while let Some(h) = payload.get(at..at.checked_add(4)?) {
        let len = usize::from(u16::from_ne_bytes([h[0], h[1]]));
        let kind = u16::from_ne_bytes([h[2], h[3]]) & NLA_TYPE_MASK;
        let value = payload.get(at.checked_add(4)?..at.checked_add(len)?)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next()?;
            return Some(String::from_utf8_lossy(text).into_owned()).filter(|t| !t.is_empty());
        }
        at = at.checked_add(align4(len.max(4))?)?;
    }
    None
}

/// The kernel's main routing table, as far as our routes go.
///
/// Holds one netlink socket; its I/O task runs on the tokio runtime that was current at
/// [`KernelRoutes::connect`] and stops when this value is dropped. The socket belongs to the
/// network namespace of the thread that connected.
pub struct KernelRoutes {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KernelRoutes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KernelRoutes {
    /// Opens the netlink socket. Must be called inside a tokio runtime.
    pub fn connect() -> Result<KernelRoutes, RouteError> {
        let (mut conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| RouteError::Connect(e.to_string()))?;
        // Extended acks carry the kernel's reason in words ("Nexthop device is not up").
        conn.socket_mut().socket_mut().set_ext_ack(true).map_err(|e| RouteError::Connect(e.to_string()))?;
        let task = tokio::spawn(conn);
        Ok(KernelRoutes { handle, task })
    }

    /// Carries out `ops` in order and returns each with its result. A failed operation does
    /// not stop the ones after it.
    pub async fn apply(&self, ops: &[RouteOp]) -> Vec<(RouteOp, Result<(), RouteError>)> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                RouteOp::Replace(route) => self.replace(route).await,
                RouteOp::Delete(dst) => self.delete(*dst).await,
            };
            out.push((*op, result));
        }
        out
    }

    /// Creates the route, or replaces ours to the same destination.
    pub async fn replace(&self, route: &KernelRoute) -> Result<(), RouteError> {
        let op = format!("replace {route}");
        let message = match (route.dst.addr(), route.via) {
            (IpAddr::V6(dst), IpAddr::V6(via)) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dst, route.dst.len())
                .gateway(via)
                .output_interface(route.ifindex)
                .protocol(RouteProtocol::from(PROTOCOL))
                .priority(METRIC)
                .build(),
            (IpAddr::V4(dst), via) => {
                let builder = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(dst, route.dst.len())
                    .output_interface(route.ifindex)
                    .protocol(RouteProtocol::from(PROTOCOL))
                    .priority(METRIC);
                match via {
                    IpAddr::V4(gw) => builder.gateway(gw).build(),
                    IpAddr::V6(gw) => builder.via(gw).build(),
                }
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => return Err(RouteError::V6ViaV4 { op }),
        };
        self.handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| RouteError::from_netlink(op, e))
    }

    /// Deletes our route to `dst`. Routes of other protocols to the same prefix stay.
    pub async fn delete(&self, dst: Prefix) -> Result<(), RouteError> {
        let message = match dst.addr() {
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(a, dst.len())
                .protocol(RouteProtocol::from(PROTOCOL))
                .priority(METRIC)
                .build(),
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(a, dst.len())
                .protocol(RouteProtocol::from(PROTOCOL))
                .priority(METRIC)
                .build(),
        };
        self.handle
            .route()
            .del(message)
            .execute()
            .await
            .map_err(|e| RouteError::from_netlink(format!("delete {dst}"), e))
    }

    /// Deletes every route with our protocol number from the main table, both families, and
    /// returns how many there were. Run at start, before the first [`apply`](Self::apply).
    pub async fn purge_stale(&self) -> Result<usize, RouteError> {
        let stale = self.dump_ours().await?;
        let count = stale.len();
        for message in stale {
            let op = format!("purge {}", describe(&message));
            match self.handle.route().del(message).execute().await {
                Ok(()) => {}
                // Gone meanwhile (an interface went away and took it along): nothing to purge.
                Err(e) => {
                    let e = RouteError::from_netlink(op, e);
                    if !e.is_not_found() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(count)
    }

    /// Our routes in the main table, IPv6 first, in the kernel's order. Routes with our
    /// protocol number that we would never install (no single next hop) are left out.
    pub async fn list_ours(&self) -> Result<Vec<KernelRoute>, RouteError> {
        Ok(self.dump_ours().await?.iter().filter_map(parse).collect())
    }

    async fn dump_ours(&self) -> Result<Vec<RouteMessage>, RouteError> {
        let mut ours = Vec::new();
        for request in
            [RouteMessageBuilder::<Ipv6Addr>::new().build(), RouteMessageBuilder::<Ipv4Addr>::new().build()]
        {
            let mut dump = self.handle.route().get(request).execute();
            // A dump holds every table: keep the main table's routes with our protocol.
            while let Some(m) =
                dump.try_next().await.map_err(|e| RouteError::from_netlink("dump routes".into(), e))?
            {
                if m.header.protocol == RouteProtocol::from(PROTOCOL) && table(&m) == u32::from(MAIN_TABLE) {
                    ours.push(m);
                }
            }
        }
        Ok(ours)
    }
}

fn table(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table))
}

fn parse(m: &RouteMessage) -> Option<KernelRoute> {
    let len = m.header.destination_prefix_length;
    let mut dst = None;
    let mut via = None;
    let mut ifindex = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(x)) => dst = Some(IpAddr::V4(*x)),
            RouteAttribute::Destination(RouteAddress::Inet6(x)) => dst = Some(IpAddr::V6(*x)),
            RouteAttribute::Gateway(RouteAddress::Inet(x)) | RouteAttribute::Via(RouteVia::Inet(x)) => {
                via = Some(IpAddr::V4(*x))
            }
            RouteAttribute::Gateway(RouteAddress::Inet6(x)) | RouteAttribute::Via(RouteVia::Inet6(x)) => {
                via = Some(IpAddr::V6(*x))
            }
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            _ => {}
        }
    }
    // A default route has no destination attribute.
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, rtnetlink::packet_route::AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Some(KernelRoute { dst: Prefix::new(dst, len)?, via: via?, ifindex: ifindex? })
}

fn describe(m: &RouteMessage) -> String {
    match parse(m) {
        Some(r) => r.to_string(),
        None => {
            format!("route of family {:?} /{}", m.header.address_family, m.header.destination_prefix_length)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_refusals_say_what_they_mean() {
        assert_eq!(errno_reason(libc::ENODEV), "no interface with that index");
        assert!(
            RouteError::Kernel { op: "x".into(), errno: libc::ESRCH, reason: String::new() }.is_not_found()
        );
        assert!(errno_reason(libc::E2BIG).contains("Argument list too long"));
    }

    #[test]
    fn results_become_the_route_syncs_answers() {
        let gone = RouteError::Kernel { op: "delete x".into(), errno: libc::ESRCH, reason: "gone".into() };
        let down =
            RouteError::Kernel { op: "replace x".into(), errno: libc::ENETDOWN, reason: "down".into() };
        assert_eq!(answer(&Ok(())), KernelAnswer::Done);
        assert_eq!(answer(&Err(gone)), KernelAnswer::NotFound);
        assert_eq!(
            answer(&Err(down)),
            KernelAnswer::Refused(format!("kernel refused to replace x: down (errno {})", libc::ENETDOWN))
        );
    }

    #[test]
    fn extended_ack_message_is_found_after_the_echoed_request() {
        // A 20-byte echoed request (its length first), then a cookie attribute (type 3) and
        // the message attribute (type 1) with its terminating NUL and padding.
        let mut payload = 20u32.to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        payload.extend_from_slice(&8u16.to_ne_bytes());
        payload.extend_from_slice(&3u16.to_ne_bytes());
        payload.extend_from_slice(&[9; 4]);
        let text = b"Nexthop device is not up\0";
        payload.extend_from_slice(&(4 + text.len() as u16).to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        payload.extend_from_slice(&[0; 3]);
        assert_eq!(extack_message(&payload).as_deref(), Some("Nexthop device is not up"));
        assert_eq!(extack_message(&payload[..20]), None, "no attributes");
        assert_eq!(extack_message(&payload[..30]), None, "truncated attribute");
        assert_eq!(extack_message(&[0xff; 3]), None);
    }
}
