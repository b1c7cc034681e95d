//! `host:port` as Go's `net` package reads and writes it: an IPv6 host in
//! brackets (`[::1]:8080`), an empty host for "every interface" (`:8080`).
//!
//! ```
//! use micro_util::addr::{HostPort, join_host_port};
//!
//! let a = HostPort::parse("[::1]:8080");
//! assert_eq!((a.host, a.port), ("::1", Some("8080")));
//! assert_eq!(HostPort::parse("node-1").port, None);
//! assert_eq!(HostPort::parse("fe80::1").host, "fe80::1"); // a bare IPv6 address
//! assert_eq!(join_host_port("::1", 8080), "[::1]:8080");
//! ```

use std::fmt;

/// An address split into host and port. The port is the text after the last colon
/// (`None` when there is none, or when the colons belong to a bare IPv6 address);
/// it is not checked to be a number, so callers decide what a port may be (a
/// number, a range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host, without brackets; empty for `:port`.
    pub host: &'a str,
    /// The port text, if the address has one.
    pub port: Option<&'a str>,
    /// Whether the host was written in brackets.
    pub bracketed: bool,
}

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrError {
    /// The address.
    pub addr: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address {:?}: {}", self.addr, self.reason)
    }
}

impl std::error::Error for AddrError {}

impl<'a> HostPort<'a> {
    /// Splits leniently: anything parses (a bare host or IPv6 address has no port;
    /// `[v6` without its closing bracket is all host).
    pub fn parse(addr: &'a str) -> Self {
        if let Some(rest) = addr.strip_prefix('[') {
            return match rest.split_once(']') {
                Some((host, after)) => HostPort {
                    host,
                    port: after.strip_prefix(':'),
                    bracketed: true,
                },
                None => HostPort {
                    host: rest,
                    port: None,
                    bracketed: true,
                },
            };
        }
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => HostPort {
                host,
                port: Some(port),
                bracketed: false,
            },
            // no colon, or a bare IPv6 address
            _ => HostPort {
                host: addr,
                port: None,
                bracketed: false,
            },
        }
    }

    /// Splits strictly: the address must have a port, and an IPv6 host must be in
    /// brackets.
    pub fn parse_strict(addr: &'a str) -> Result<Self, AddrError> {
        let invalid = |reason| AddrError {
            addr: addr.to_owned(),
            reason,
        };
        if addr.starts_with('[') && !addr.contains(']') {
            return Err(invalid("unclosed bracket"));
        }
        let hp = Self::parse(addr);
        match hp.port {
            Some(_) => Ok(hp),
            None if !hp.bracketed && hp.host.contains(':') => {
                Err(invalid("an IPv6 host must be in brackets"))
            }
            None => Err(invalid("missing port")),
        }
    }

    /// The port as a number, if it is one.
    pub fn port_number(&self) -> Option<u16> {
        self.port.and_then(|p| p.parse().ok())
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn join_host_port(host: &str, port: impl fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(a: &str) -> (&str, Option<&str>) {
        let p = HostPort::parse(a);
        (p.host, p.port)
    }

    #[test]
    fn forms() {
        assert_eq!(hp("127.0.0.1:80"), ("127.0.0.1", Some("80")));
        assert_eq!(hp("[::1]:80"), ("::1", Some("80")));
        assert_eq!(hp("[::1]"), ("::1", None));
        assert_eq!(hp(":80"), ("", Some("80")));
        assert_eq!(hp("host"), ("host", None));
        assert_eq!(hp("::1"), ("::1", None));
        assert_eq!(hp("host:"), ("host", Some("")));
        assert_eq!(hp("[::1"), ("::1", None));
        assert_eq!(hp("h:8000-8010"), ("h", Some("8000-8010")));
        assert_eq!(hp(""), ("", None));
        assert_eq!(hp("é:ü"), ("é", Some("ü")));
    }

    #[test]
    fn strict() {
        assert!(HostPort::parse_strict("h:1").is_ok());
        let reason = |a| HostPort::parse_strict(a).unwrap_err().reason;
        assert_eq!(reason("h"), "missing port");
        assert_eq!(reason("::1"), "an IPv6 host must be in brackets");
        assert_eq!(reason("[::1"), "unclosed bracket");
        assert_eq!(reason("[::1]"), "missing port");
    }

    #[test]
    fn join() {
        assert_eq!(join_host_port("a", 1), "a:1");
        assert_eq!(join_host_port("::1", "2"), "[::1]:2");
    }
}
