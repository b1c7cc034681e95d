//! Listen and advertise addresses.

use std::net::SocketAddr;

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

/// The address subscribers are registered with: see
/// [`micro_registry::addr::advertise_address`].
pub(crate) fn advertise(bound: SocketAddr, configured: Option<&str>) -> String {
    micro_registry::addr::advertise_address(&bound.to_string(), configured)
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
    }
}
