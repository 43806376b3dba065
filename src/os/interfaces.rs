//! Network interfaces as the routing shell needs them: index, whether the link is up and
//! running (administratively up with a carrier), its link-local IPv6 address and its MAC.
//!
//! Read with `if_nametoindex` and `getifaddrs` (which the C library answers over netlink), so
//! the answer is about the network namespace of the calling thread. Polled: the shell asks
//! again every second or so and turns changes into `InterfaceUp`/`InterfaceDown` inputs.

use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv6Addr;

/// One interface, as seen now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub ifindex: u32,
    /// `IFF_UP` and `IFF_RUNNING`: administratively up and with a carrier (a veth whose peer
    /// is down is not running).
    pub running: bool,
    /// The first link-local (fe80::/10) address, if it has one.
    pub link_local: Option<Ipv6Addr>,
    /// The hardware address, for interfaces that have a 6-byte non-zero one (not tunnels, not
    /// loopback).
    pub mac: Option<[u8; 6]>,
}

/// The state of interface `name`; `Ok(None)` if there is no such interface.
pub fn link_state(name: &str) -> io::Result<Option<LinkState>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    let mut state = LinkState { ifindex, running: false, link_local: None, mac: None };
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut seen = false;
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive until freeifaddrs;
        // ifa_name is a NUL-terminated string, and ifa_addr, when not null, points at a
        // sockaddr whose family says which larger struct it is.
        unsafe {
            let ifa = &*at;
            at = ifa.ifa_next;
            if ifa.ifa_name.is_null() || CStr::from_ptr(ifa.ifa_name) != cname.as_c_str() {
                continue;
            }
            seen = true;
            let flags = ifa.ifa_flags;
            state.running = flags & (libc::IFF_UP as u32) != 0 && flags & (libc::IFF_RUNNING as u32) != 0;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    if addr.is_unicast_link_local() && state.link_local.is_none() {
                        state.link_local = Some(addr);
                    }
                }
                libc::AF_PACKET => {
                    let ll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&ll.sll_addr[..6]);
                    // Loopback reports a 6-byte address of zeros: no hardware address.
                    if ll.sll_halen == 6 && mac != [0; 6] {
                        state.mac = Some(mac);
                    }
                }
                _ => {}
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    if !seen {
        // Gone between the two calls, or an interface with no entry at all: not usable.
        state.running = false;
    }
    Ok(Some(state))
}

/// The name of the interface with index `ifindex`, if there is one.
pub fn name_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the name in `buf` is NUL-terminated.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// The modified EUI-64 interface identifier of a MAC address (RFC 4291 Appendix A): what a
/// link-local address derived from it ends with.
pub fn eui64(mac: [u8; 6]) -> [u8; 8] {
    [mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_exists_and_missing_interfaces_are_none() {
        let lo = link_state("lo").expect("getifaddrs").expect("lo exists");
        assert!(lo.ifindex > 0);
        assert_eq!(lo.mac, None, "loopback has no hardware address");
        assert_eq!(link_state("lm-no-such-if").expect("lookup"), None);
        assert!(link_state("a\0b").is_err());
        assert_eq!(name_of(lo.ifindex).as_deref(), Some("lo"));
        assert_eq!(name_of(0), None);
    }

    #[test]
    fn eui64_flips_the_universal_local_bit() {
        assert_eq!(
            eui64([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            [0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]
        );
    }
}
