//! The SSRF guard of webhook deliveries (docs/webhooks.md): an endpoint's URL is an admin's,
//! but orgsync must not be made to call what only it can reach. Link-local addresses (cloud
//! metadata services live there), unspecified, multicast and broadcast addresses are always
//! refused; loopback and private ranges only unless configuration allows them. Checked on
//! the addresses a name resolves to, at every delivery, so a name that changes its answer
//! cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address may not be called, if it may not.
pub fn refused(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_private),
        IpAddr::V6(v6) => refused_v6(v6, allow_private),
    }
}

fn refused_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    if ip.is_link_local() {
        return Some("a link-local address (cloud metadata services live there)");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.octets()[0] == 0 {
        return Some("not an address a webhook can be sent to");
    }
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64;
    if !allow_private && (ip.is_loopback() || ip.is_private() || shared) {
        return Some(
            "a loopback or private address: allowed only when webhooks.allow_private_targets is set",
        );
    }
    None
}

fn refused_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let first = ip.segments()[0];
    if (first & 0xffc0) == 0xfe80 {
        return Some("a link-local address (cloud metadata services live there)");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not an address a webhook can be sent to");
    }
    let unique_local = (first & 0xfe00) == 0xfc00;
    if !allow_private && (ip.is_loopback() || unique_local) {
        return Some(
            "a loopback or private address: allowed only when webhooks.allow_private_targets is set",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for s in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(ip(s), true).is_some(), "{s}");
        }
    }

    #[test]
    fn private_ranges_only_when_allowed() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refused(ip(s), false).is_some(), "{s}");
            assert_eq!(refused(ip(s), true), None, "{s}");
        }
        for s in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert_eq!(refused(ip(s), false), None, "{s}");
        }
    }
}
