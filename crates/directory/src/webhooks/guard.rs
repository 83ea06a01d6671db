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
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
        return Some("not an address a webhook can be sent to");
    }
    // Carrier-grade NAT (100.64.0.0/10) and benchmarking networks (198.18.0.0/15) are
    // internal too.
    let shared = a == 100 && (b & 0xc0) == 64;
    let benchmarking = a == 198 && (b & 0xfe) == 18;
    if !allow_private && (ip.is_loopback() || ip.is_private() || shared || benchmarking) {
        return Some(
            "a loopback or private address: allowed only when webhooks_allow_private_targets (ORGSYNC_WEBHOOKS_ALLOW_PRIVATE_TARGETS) is set",
        );
    }
    None
}

fn refused_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let seg = ip.segments();
    let first = seg[0];
    // Addresses that carry an IPv4 address reach it: NAT64 (64:ff9b::/96) and 6to4
    // (2002::/16) are judged by the address they carry.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return refused_v4(v4, allow_private);
    }
    if first == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return refused_v4(v4, allow_private);
    }
    if (first & 0xffc0) == 0xfe80 {
        return Some("a link-local address (cloud metadata services live there)");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not an address a webhook can be sent to");
    }
    let unique_local = (first & 0xfe00) == 0xfc00;
    let site_local = (first & 0xffc0) == 0xfec0;
    if !allow_private && (ip.is_loopback() || unique_local || site_local) {
        return Some(
            "a loopback or private address: allowed only when webhooks_allow_private_targets (ORGSYNC_WEBHOOKS_ALLOW_PRIVATE_TARGETS) is set",
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
        for s in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "100.128.0.1",
            "64:ff9b::5db8:d822",
        ] {
            assert_eq!(refused(ip(s), false), None, "{s}");
        }
    }
}
