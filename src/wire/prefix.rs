//! Destination prefixes: what a Babel Update announces, what the routing machine selects a
//! route to, and what a kernel route leads to. One type for the wire, the machines and the
//! kernel adapter (`os::routes`).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;

/// An IPv4 or IPv6 prefix whose host bits are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix of `len` bits of `addr` (host bits are cleared); `None` if `len` is longer
    /// than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        };
        Some(Prefix { addr, len })
    }

    /// A host route: /32 or /128.
    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits (a prefix is not a collection: no `is_empty`; see
    /// [`Prefix::is_default`]).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The default route of the prefix's family.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether this prefix lies inside an address range that is never a route's destination
    /// ("martian"), and which. A router refuses such prefixes in received Updates and never
    /// originates them:
    ///
    /// | class | IPv6 | IPv4 |
    /// | --- | --- | --- |
    /// | link-local | fe80::/10 | 169.254.0.0/16 |
    /// | multicast | ff00::/8 | 224.0.0.0/4 |
    /// | loopback | ::1/128 | 127.0.0.0/8 |
    /// | unspecified | ::/128 | 0.0.0.0/32 |
    ///
    /// A prefix is martian when it is as long as the range or longer and falls inside it
    /// (fe80::/64 and fe80::1/128 are; fe00::/7, which merely contains fe80::/10, is not).
    /// The default routes ::/0 and 0.0.0.0/0 are therefore not martian: an exit announces
    /// them. The unspecified address is martian only as a host route (::/128, 0.0.0.0/32).
    pub fn martian(&self) -> Option<Martian> {
        let ranges: &[(Martian, IpAddr, u8)] = match self.addr {
            IpAddr::V6(_) => &[
                (Martian::LinkLocal, IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
                (Martian::Multicast, IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8),
                (Martian::Loopback, IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
                (Martian::Unspecified, IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
            ],
            IpAddr::V4(_) => &[
                (Martian::LinkLocal, IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
                (Martian::Multicast, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4),
                (Martian::Loopback, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                (Martian::Unspecified, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 32),
            ],
        };
        ranges.iter().find(|(_, base, len)| self.within(*base, *len)).map(|(class, _, _)| *class)
    }

    pub fn is_martian(&self) -> bool {
        self.martian().is_some()
    }

    /// This prefix is `base/len` or a more specific prefix inside it (same family).
    fn within(&self, base: IpAddr, len: u8) -> bool {
        self.len >= len && Prefix::new(self.addr, len) == Prefix::new(base, len)
    }
}

/// The classes of martian prefixes ([`Prefix::martian`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Martian {
    LinkLocal,
    Multicast,
    Loopback,
    Unspecified,
}

impl fmt::Display for Martian {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Martian::LinkLocal => "link-local",
            Martian::Multicast => "multicast",
            Martian::Loopback => "loopback",
            Martian::Unspecified => "unspecified",
        })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').expect("PREFIX/LEN");
        Prefix::new(a.parse().expect("address"), l.parse().expect("length")).expect("prefix")
    }

    #[test]
    fn prefixes_clear_host_bits_and_reject_long_lengths() {
        let d = Prefix::new("192.0.2.77".parse().unwrap(), 24).unwrap();
        assert_eq!(d.to_string(), "192.0.2.0/24");
        let d = Prefix::new("2001:db8:1:2::9".parse().unwrap(), 48).unwrap();
        assert_eq!(d.to_string(), "2001:db8:1::/48");
        assert!(Prefix::new("::".parse().unwrap(), 0).unwrap().is_default());
        assert_eq!(Prefix::new("0.0.0.0".parse().unwrap(), 0).unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(Prefix::new("192.0.2.1".parse().unwrap(), 33), None);
        assert_eq!(Prefix::new("2001:db8::".parse().unwrap(), 129), None);
    }

    /// [`Prefix::martian`], one test per class: what is inside each range, what merely
    /// touches it, and the default routes, which an exit announces and which are never martian.
    mod martians {
        use super::*;

        fn class(s: &str) -> Option<Martian> {
            p(s).martian()
        }

        /// Link-local unicast (RFC 4291 §2.5.6, RFC 3927): an Update with AE 3 decodes to such a
        /// prefix, and it was installed as a kernel route.
        #[test]
        fn link_local_prefixes_are_martian() {
            for s in [
                "fe80::/10",
                "fe80::/64",
                "fe80::1/128",
                "febf:ffff::/32",
                "169.254.0.0/16",
                "169.254.7.1/32",
            ] {
                assert_eq!(class(s), Some(Martian::LinkLocal), "{s}");
            }
            // Next to the range, or containing it: not martian.
            for s in ["fec0::/10", "fe00::/7", "fe80::/9", "169.255.0.0/16", "169.254.0.0/15"] {
                assert_eq!(class(s), None, "{s}");
            }
        }

        /// Multicast (RFC 4291 §2.7, RFC 5771): ff02::1/128 was accepted by `--originate`.
        #[test]
        fn multicast_prefixes_are_martian() {
            for s in [
                "ff00::/8",
                "ff02::1/128",
                "ff02::1:6/128",
                "224.0.0.0/4",
                "239.255.255.250/32",
                "224.0.0.6/32",
            ] {
                assert_eq!(class(s), Some(Martian::Multicast), "{s}");
            }
            for s in ["fe00::/8", "fe00::/7", "240.0.0.0/4", "223.255.255.255/32", "192.0.0.0/2"] {
                assert_eq!(class(s), None, "{s}");
            }
        }

        /// Loopback (RFC 4291 §2.5.3, RFC 1122 §3.2.1.3): ::1/128 was accepted by `--originate`.
        #[test]
        fn loopback_prefixes_are_martian() {
            for s in ["::1/128", "127.0.0.0/8", "127.0.0.1/32", "127.1.0.0/16"] {
                assert_eq!(class(s), Some(Martian::Loopback), "{s}");
            }
            // ::1/127 contains the loopback address but is a range of its own; ::2/128 is not it.
            for s in ["::2/128", "::1/127", "126.0.0.0/8", "128.0.0.1/32", "126.0.0.0/7"] {
                assert_eq!(class(s), None, "{s}");
            }
        }

        /// The unspecified address (RFC 4291 §2.5.2) as a host route is martian; the default routes
        /// ::/0 and 0.0.0.0/0, which share its address, are what an exit announces and are not.
        #[test]
        fn unspecified_host_routes_are_martian_but_default_routes_are_not() {
            assert_eq!(class("::/128"), Some(Martian::Unspecified));
            assert_eq!(class("0.0.0.0/32"), Some(Martian::Unspecified));
            for s in ["::/0", "0.0.0.0/0", "::/1", "::/64", "0.0.0.0/1", "0.0.0.0/8"] {
                assert_eq!(class(s), None, "{s}");
                assert!(!p(s).is_martian(), "{s}");
            }
        }

        /// Ordinary destinations of the mesh and of the tests are never martian.
        #[test]
        fn mesh_and_documentation_prefixes_are_not_martian() {
            for s in [
                "fd00::1/128",
                "fd12:3456::/48",
                "2001:db8:1::/64",
                "2001:db8::1/128",
                "192.0.2.0/28",
                "203.0.113.3/32",
                "10.0.0.0/8",
            ] {
                assert_eq!(class(s), None, "{s}");
            }
            assert_eq!(Martian::LinkLocal.to_string(), "link-local");
            assert_eq!(Martian::Unspecified.to_string(), "unspecified");
        }
    }
}
