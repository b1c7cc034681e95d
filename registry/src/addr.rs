//! The address a node registers: what servers and brokers advertise.
//!
//! A process bound to every interface (`0.0.0.0:port`, `[::]:port`, `:port`)
//! cannot register that address; it registers an address of this machine instead,
//! chosen as go-micro does, most reachable first: a private IPv4 address, then a
//! private (unique local) IPv6 one, then a public IPv4, a public IPv6, and loopback
//! last. Link-local addresses are never chosen.

use std::net::{IpAddr, Ipv4Addr};

/// The address to register for a listener bound to `bound` (`host:port`), or for
/// `advertise` when it is set. An `advertise` without a port takes the bound
/// port; an unspecified or empty host becomes [`local_ip`]; IPv6 hosts are
/// bracketed. A host name is kept as it is.
///
/// ```
/// use micro_registry::addr::advertise_address;
///
/// assert_eq!(advertise_address("127.0.0.1:8080", None), "127.0.0.1:8080");
/// assert_eq!(advertise_address("127.0.0.1:8080", Some("10.0.0.5")), "10.0.0.5:8080");
/// assert_eq!(advertise_address("[::1]:9", None), "[::1]:9");
/// assert!(!advertise_address("0.0.0.0:8080", None).starts_with("0.0.0.0"));
/// ```
pub fn advertise_address(bound: &str, advertise: Option<&str>) -> String {
    let (_, bound_port) = host_and_port(bound);
    let addr = advertise
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or(bound);
    let (host, port) = host_and_port(addr);
    let port = port.or(bound_port);
    let unspecified = host.is_empty() || host == "0.0.0.0" || host == "::";
    let host = if unspecified {
        local_ip().to_string()
    } else {
        host.to_owned()
    };
    match port {
        Some(p) => join_host_port(&host, p),
        None => host,
    }
}

pub use micro_util::addr::join_host_port;

/// The host and numeric port of `addr`; an address whose port is not a number is
/// all host.
fn host_and_port(addr: &str) -> (&str, Option<&str>) {
    let hp = micro_util::addr::HostPort::parse(addr);
    match hp.port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (hp.host, Some(p)),
        Some(_) => (addr, None),
        None => (hp.host, None),
    }
}

/// An address of this machine, most reachable first (see the module docs);
/// `127.0.0.1` when the interfaces cannot be listed.
pub fn local_ip() -> IpAddr {
    let addrs = match if_addrs::get_if_addrs() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list interface addresses; advertising 127.0.0.1");
            return IpAddr::V4(Ipv4Addr::LOCALHOST);
        }
    };
    addrs
        .iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_unspecified() && !is_link_local(ip))
        .min_by_key(rank)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn rank(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => 4,
        IpAddr::V6(v6) if v6.is_loopback() => 5,
        IpAddr::V4(v4) if v4.is_private() => 0,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => 1,
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 3,
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_hosts_are_kept_and_ipv6_is_bracketed() {
        assert_eq!(advertise_address("127.0.0.1:8080", None), "127.0.0.1:8080");
        assert_eq!(
            advertise_address("127.0.0.1:8080", Some("10.1.2.3:9")),
            "10.1.2.3:9"
        );
        assert_eq!(
            advertise_address("127.0.0.1:8080", Some("[fd00::1]")),
            "[fd00::1]:8080"
        );
        assert_eq!(advertise_address("[::1]:8080", None), "[::1]:8080");
        assert_eq!(
            advertise_address("127.0.0.1:1", Some("svc.internal")),
            "svc.internal:1"
        );
    }

    #[test]
    fn unspecified_hosts_become_an_address_of_this_machine() {
        for bound in ["0.0.0.0:8080", ":8080", "[::]:8080"] {
            let a = advertise_address(bound, None);
            assert!(a.ends_with(":8080"), "{a}");
            let host = a
                .trim_end_matches(":8080")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let ip: IpAddr = host.parse().expect("an IP");
            assert!(!ip.is_unspecified(), "{a}");
        }
    }

    #[test]
    fn private_addresses_rank_first_and_loopback_last() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(rank(&ip("10.1.2.3")) < rank(&ip("fd00::1")));
        assert!(rank(&ip("fd00::1")) < rank(&ip("8.8.8.8")));
        assert!(rank(&ip("8.8.8.8")) < rank(&ip("2001:db8::1")));
        assert!(rank(&ip("2001:db8::1")) < rank(&ip("127.0.0.1")));
        assert!(is_link_local(&ip("fe80::1")) && is_link_local(&ip("169.254.0.1")));
    }
}
