//! The Babel transport: one IPv6 UDP socket for every interface (RFC 8966 §4).
//!
//! The socket is bound to `[::]:port` (Babel's port is 6696) and joins the link-local group
//! `ff02::1:6` per interface ([`BabelSocket::join`]). Packets leave with hop limit 1, never loop
//! back to ourselves, and always from the interface's link-local address: every destination is
//! link-scoped and carries the interface as its scope id, so the kernel sends on that interface
//! and, by RFC 6724 source selection (rule 2, matching scope), picks its link-local address even
//! when the interface also has global ones. Received datagrams come with their arrival interface
//! (`IPV6_PKTINFO`); those whose source is not link-local are dropped and counted, as RFC 8966
//! §4 requires.
//!
//! The socket belongs to the network namespace of the thread that bound it.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::mem;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::unix::AsyncFd;

/// Babel's link-local multicast group, ff02::1:6.
pub const MULTICAST_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);

/// Larger than any IPv6 UDP payload without jumbograms, so nothing is ever truncated.
const MAX_DATAGRAM: usize = 65_535;

/// One received Babel datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The sender's link-local address.
    pub source: Ipv6Addr,
    /// Where it was sent: [`MULTICAST_GROUP`] or one of our unicast addresses.
    pub destination: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// The Babel UDP socket. Methods take `&self`: one task may receive while others send.
pub struct BabelSocket {
    fd: AsyncFd<Socket>,
    port: u16,
    dropped_non_link_local: AtomicU64,
}

impl BabelSocket {
    /// Binds `[::]:port` with `SO_REUSEADDR`, IPv6 only, multicast loop off, multicast and
    /// unicast hop limit 1 and arrival-interface reporting on. Must be called inside a tokio
    /// runtime with I/O enabled. Packets are sent to the same `port`.
    pub fn bind(port: u16) -> io::Result<BabelSocket> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.set_multicast_loop_v6(false)?;
        socket.set_multicast_hops_v6(1)?;
        socket.set_unicast_hops_v6(1)?;
        set_recv_pktinfo(socket.as_raw_fd())?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)))?;
        // SAFETY: the socket owns its descriptor, which stays open and the same until the
        // AsyncFd (the socket's only owner) is dropped; nothing here hands out ownership.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(BabelSocket { fd, port, dropped_non_link_local: AtomicU64::new(0) })
    }

    /// Joins ff02::1:6 on interface `ifindex`. Joining twice is not an error. The kernel
    /// forgets the membership when the interface goes away; join again when it comes back.
    pub fn join(&self, ifindex: u32) -> io::Result<()> {
        match self.fd.get_ref().join_multicast_v6(&MULTICAST_GROUP, ifindex) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            other => other,
        }
    }

    /// Leaves ff02::1:6 on interface `ifindex`.
    pub fn leave(&self, ifindex: u32) -> io::Result<()> {
        self.fd.get_ref().leave_multicast_v6(&MULTICAST_GROUP, ifindex)
    }

    /// Sends `bytes` to ff02::1:6 on interface `ifindex`.
    pub async fn send_multicast(&self, ifindex: u32, bytes: &[u8]) -> io::Result<()> {
        self.send_to(SocketAddrV6::new(MULTICAST_GROUP, self.port, 0, ifindex), bytes).await
    }

    /// Sends `bytes` to the neighbour whose link-local address is `dst`, on interface
    /// `ifindex`. A `dst` that is not link-local is refused (`InvalidInput`): the source
    /// would not be link-local either.
    pub async fn send_unicast(&self, ifindex: u32, dst: Ipv6Addr, bytes: &[u8]) -> io::Result<()> {
        if !dst.is_unicast_link_local() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Babel unicast goes to a link-local address, not {dst}"),
            ));
        }
        self.send_to(SocketAddrV6::new(dst, self.port, 0, ifindex), bytes).await
    }

    /// The next datagram from a link-local source. Others are dropped and counted
    /// ([`dropped_non_link_local`](Self::dropped_non_link_local)). Cancel-safe.
    pub async fn recv(&self) -> io::Result<Datagram> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let mut guard = self.fd.readable().await?;
            let Ok(received) = guard.try_io(|s| recv_with_pktinfo(s.as_raw_fd(), &mut buf)) else {
                continue; // Spurious readiness: the guard has cleared it.
            };
            let (n, source, scope_id, pktinfo) = received?;
            if !source.is_unicast_link_local() {
                self.dropped_non_link_local.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // IPV6_RECVPKTINFO is set in `bind`, so the kernel attaches it to every datagram;
            // the source's scope id names the same interface for a link-local source.
            let (ifindex, destination) = pktinfo.unwrap_or((scope_id, Ipv6Addr::UNSPECIFIED));
            return Ok(Datagram { ifindex, source, destination, bytes: buf[..n].to_vec() });
        }
    }

    /// How many datagrams were dropped because their source was not link-local.
    pub fn dropped_non_link_local(&self) -> u64 {
        self.dropped_non_link_local.load(Ordering::Relaxed)
    }

    async fn send_to(&self, dst: SocketAddrV6, bytes: &[u8]) -> io::Result<()> {
        let dst = SockAddr::from(dst);
        loop {
            let mut guard = self.fd.writable().await?;
            if let Ok(sent) = guard.try_io(|s| s.get_ref().send_to(bytes, &dst)) {
                return sent.map(|_| ());
            }
        }
    }
}

fn set_recv_pktinfo(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket; the option value is a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `recvmsg`: payload length, source address and scope id, and the `IPV6_PKTINFO`
/// (arrival ifindex, destination address) if the kernel attached it.
#[allow(clippy::type_complexity)]
fn recv_with_pktinfo(
    fd: RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Ipv6Addr, u32, Option<(u32, Ipv6Addr)>)> {
    // SAFETY: all-zero is a valid sockaddr_in6 and msghdr (plain C structs).
    let mut source: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut source as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points at a live local buffer of the length given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut pktinfo = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled and bounded with
    // msg_controllen; the payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                pktinfo = Some((info.ipi6_ifindex as u32, Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let addr = Ipv6Addr::from(source.sin6_addr.s6_addr);
    Ok((n as usize, addr, source.sin6_scope_id, pktinfo))
}
