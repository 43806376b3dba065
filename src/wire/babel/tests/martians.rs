//! [`Prefix::martian`], one test per class: what is inside each range, what merely touches
//! it, and the default routes, which an exit announces and which are never martian.

use super::*;

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').expect("PREFIX/LEN");
    Prefix::new(a.parse().expect("address"), l.parse().expect("length")).expect("prefix")
}

fn class(s: &str) -> Option<Martian> {
    p(s).martian()
}

/// Link-local unicast (RFC 4291 §2.5.6, RFC 3927): an Update with AE 3 decodes to such a
/// prefix, and it was installed as a kernel route.
#[test]
fn link_local_prefixes_are_martian() {
    for s in ["fe80::/10", "fe80::/64", "fe80::1/128", "febf:ffff::/32", "169.254.0.0/16", "169.254.7.1/32"] {
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
    for s in ["ff00::/8", "ff02::1/128", "ff02::1:6/128", "224.0.0.0/4", "239.255.255.250/32", "224.0.0.6/32"]
    {
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
