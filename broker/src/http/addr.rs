//! Listen and advertise addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The address to bind for a configured listen address: an empty host (`:8001`)
/// means every IPv4 interface, an empty string the default.
pub(crate) fn listen_addr(configured: &str) -> String {
    let configured = configured.trim();
    if configured.is_empty() {
        return super::options::DEFAULT_ADDRESS.to_owned();
    }
    match configured.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => configured.to_owned(),
    }
}

/// The address subscribers are registered with.
pub(crate) fn advertise(bound: SocketAddr, configured: Option<&str>) -> String {
    if let Some(a) = configured.map(str::trim).filter(|a| !a.is_empty()) {
        return if has_port(a) {
            a.to_owned()
        } else {
            join(
                a.trim_start_matches('[').trim_end_matches(']'),
                bound.port(),
            )
        };
    }
    if bound.ip().is_unspecified() {
        return SocketAddr::new(local_ip(), bound.port()).to_string();
    }
    bound.to_string()
}

fn has_port(a: &str) -> bool {
    if a.parse::<SocketAddr>().is_ok() {
        return true;
    }
    if a.parse::<IpAddr>().is_ok() || a.starts_with('[') && a.ends_with(']') {
        return false;
    }
    a.rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An address of this machine: private IPv4 first, then private IPv6, public IPv4,
/// public IPv6, loopback; `127.0.0.1` when nothing is found.
pub(crate) fn local_ip() -> IpAddr {
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
    fn listen() {
        assert_eq!(listen_addr(":8001"), "0.0.0.0:8001");
        assert_eq!(listen_addr(""), "127.0.0.1:0");
        assert_eq!(listen_addr("[::1]:0"), "[::1]:0");
    }

    #[test]
    fn advertised() {
        let b: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(advertise(b, None), "127.0.0.1:4000");
        assert_eq!(advertise(b, Some("10.0.0.1")), "10.0.0.1:4000");
        assert_eq!(advertise(b, Some("::1")), "[::1]:4000");
        assert_eq!(advertise(b, Some("[::1]")), "[::1]:4000");
        assert_eq!(advertise(b, Some("host.example:9")), "host.example:9");
        assert_eq!(advertise(b, Some("host.example")), "host.example:4000");
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let a = advertise(any, None);
        assert!(a.ends_with(":4000") && !a.starts_with("0.0.0.0"), "{a}");
        assert!(rank(&"10.1.2.3".parse().unwrap()) < rank(&"8.8.8.8".parse().unwrap()));
        assert!(rank(&"8.8.8.8".parse().unwrap()) < rank(&"127.0.0.1".parse().unwrap()));
    }
}
