//! Configuration from the environment, with go-micro's variable names.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MICRO_REGISTRY` | `memory`, `etcd`, `consul` | `memory` |
//! | `MICRO_REGISTRY_ADDRESS` | registry address(es), comma-separated | the registry's |
//! | `MICRO_SERVER_NAME` | service name | the name given in code |
//! | `MICRO_SERVER_VERSION` | version | `latest` |
//! | `MICRO_SERVER_ID` | server id (node id = `<name>-<id>`) | a random UUID |
//! | `MICRO_SERVER_ADDRESS` | listen address | `0.0.0.0:0` |
//! | `MICRO_SERVER_ADVERTISE` | address to register | the bound address |
//! | `MICRO_SERVER_METADATA` | `k=v` pairs, comma-separated | none |
//! | `MICRO_REGISTER_TTL` | registration TTL, seconds | 90 |
//! | `MICRO_REGISTER_INTERVAL` | re-registration interval, seconds | 30 |
//! | `MICRO_TRANSPORT` | `http`, `memory` | `http` |
//! | `MICRO_BROKER` | `http`, `memory` | `http` |
//! | `MICRO_BROKER_ADDRESS` | HTTP broker listen address | `127.0.0.1:0` |
//! | `MICRO_CLIENT_RETRIES` | retries per call | 2 |
//! | `MICRO_CLIENT_REQUEST_TIMEOUT` | a call's timeout, retries included: Go duration (`5s`, `250ms`) or seconds | `5s` |
//! | `MICRO_CLIENT_CONNECTION_TIMEOUT` | one attempt's timeout (go-micro v5's `ConnectionTimeout`; go-micro has no variable for it) | the request timeout / (retries + 1) |
//! | `MICRO_CLIENT_DIAL_TIMEOUT` | how long connecting may take (no go-micro variable) | `5s` |
//! | `MICRO_CLIENT_POOL_SIZE` | idle connections kept per address | 100 |
//! | `MICRO_CLIENT_POOL_TTL` | Go duration or seconds | `1m` |
//! | `MICRO_TLS_CERT`, `MICRO_TLS_KEY` | PEM files: this service's certificate and key; the server (transport and HTTP broker) serves TLS with them, the client presents them for mutual TLS (feature `tls`) | none: plain |
//! | `MICRO_TLS_CA` | PEM file: the CA servers' certificates are verified against (feature `tls`) | the system's roots |
//! | `MICRO_TLS_CLIENT_CA` | PEM file: require client certificates from this CA, mutual TLS (feature `tls`) | none |
//! | `MICRO_TLS_INSECURE` | `true`: do not verify servers' certificates, logged as a warning (feature `tls`; go-micro v6's name) | `false` |
//! | `MICRO_TLS_SELF_SIGNED` | `true`: serve a self-signed certificate made at start, for development (feature `tls`) | `false` |
//! | `MICRO_TLS_SERVER_NAME` | name servers' certificates are verified against (feature `tls`) | the dialled host |
//! | `MICRO_TLS_DIAL_ALL` | `true`: dial every node with TLS, not only those registered `secure=true` (feature `tls`) | `false` |
//! | `MICRO_TLS_RELOAD_INTERVAL` | seconds between checks of the certificate files (feature `tls`) | 5 |
//!
//! Values that do not parse are errors, never silently ignored.

use std::time::Duration;

use crate::Error;

/// Settings read from the environment; `None` means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `MICRO_REGISTRY`.
    pub registry: Option<String>,
    /// `MICRO_REGISTRY_ADDRESS`, split on commas.
    pub registry_address: Vec<String>,
    /// `MICRO_SERVER_NAME`.
    pub server_name: Option<String>,
    /// `MICRO_SERVER_VERSION`.
    pub server_version: Option<String>,
    /// `MICRO_SERVER_ID`.
    pub server_id: Option<String>,
    /// `MICRO_SERVER_ADDRESS`.
    pub server_address: Option<String>,
    /// `MICRO_SERVER_ADVERTISE`.
    pub server_advertise: Option<String>,
    /// `MICRO_SERVER_METADATA`.
    pub server_metadata: Vec<(String, String)>,
    /// `MICRO_REGISTER_TTL`.
    pub register_ttl: Option<Duration>,
    /// `MICRO_REGISTER_INTERVAL`.
    pub register_interval: Option<Duration>,
    /// `MICRO_TRANSPORT`.
    pub transport: Option<String>,
    /// `MICRO_BROKER`.
    pub broker: Option<String>,
    /// `MICRO_BROKER_ADDRESS`.
    pub broker_address: Option<String>,
    /// `MICRO_CLIENT_RETRIES`.
    pub client_retries: Option<u32>,
    /// `MICRO_CLIENT_REQUEST_TIMEOUT`.
    pub client_request_timeout: Option<Duration>,
    /// `MICRO_CLIENT_CONNECTION_TIMEOUT`.
    pub client_connection_timeout: Option<Duration>,
    /// `MICRO_CLIENT_DIAL_TIMEOUT`.
    pub client_dial_timeout: Option<Duration>,
    /// `MICRO_CLIENT_POOL_SIZE`.
    pub client_pool_size: Option<usize>,
    /// `MICRO_CLIENT_POOL_TTL`.
    pub client_pool_ttl: Option<Duration>,
    /// `MICRO_TLS_*` (see [`micro_tls::TlsOptions::from_env`]); `None` when none is set.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<micro_tls::TlsOptions>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (for tests and embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let s = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let list = |k: &str| -> Vec<String> {
            s(k).map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
        };
        let metadata = list("MICRO_SERVER_METADATA")
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => Err(Error::Config(format!(
                    "MICRO_SERVER_METADATA: {kv:?} is not key=value"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            registry: s("MICRO_REGISTRY").map(|v| v.to_ascii_lowercase()),
            registry_address: list("MICRO_REGISTRY_ADDRESS"),
            server_name: s("MICRO_SERVER_NAME"),
            server_version: s("MICRO_SERVER_VERSION"),
            server_id: s("MICRO_SERVER_ID"),
            server_address: s("MICRO_SERVER_ADDRESS"),
            server_advertise: s("MICRO_SERVER_ADVERTISE"),
            server_metadata: metadata,
            register_ttl: s("MICRO_REGISTER_TTL")
                .map(|v| seconds("MICRO_REGISTER_TTL", &v))
                .transpose()?,
            register_interval: s("MICRO_REGISTER_INTERVAL")
                .map(|v| seconds("MICRO_REGISTER_INTERVAL", &v))
                .transpose()?,
            transport: s("MICRO_TRANSPORT").map(|v| v.to_ascii_lowercase()),
            broker: s("MICRO_BROKER").map(|v| v.to_ascii_lowercase()),
            broker_address: s("MICRO_BROKER_ADDRESS"),
            client_retries: s("MICRO_CLIENT_RETRIES")
                .map(|v| number("MICRO_CLIENT_RETRIES", &v))
                .transpose()?,
            client_request_timeout: s("MICRO_CLIENT_REQUEST_TIMEOUT")
                .map(|v| duration("MICRO_CLIENT_REQUEST_TIMEOUT", &v))
                .transpose()?,
            client_connection_timeout: s("MICRO_CLIENT_CONNECTION_TIMEOUT")
                .map(|v| duration("MICRO_CLIENT_CONNECTION_TIMEOUT", &v))
                .transpose()?,
            client_dial_timeout: s("MICRO_CLIENT_DIAL_TIMEOUT")
                .map(|v| duration("MICRO_CLIENT_DIAL_TIMEOUT", &v))
                .transpose()?,
            client_pool_size: s("MICRO_CLIENT_POOL_SIZE")
                .map(|v| number("MICRO_CLIENT_POOL_SIZE", &v))
                .transpose()?,
            client_pool_ttl: s("MICRO_CLIENT_POOL_TTL")
                .map(|v| duration("MICRO_CLIENT_POOL_TTL", &v))
                .transpose()?,
            #[cfg(feature = "tls")]
            tls: micro_tls::TlsOptions::from_vars(&get)
                .map_err(|e| Error::Config(e.to_string()))?,
        })
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::Config(format!("{key}: {v:?} is not a whole number")))
}

/// Whole seconds (go-micro's `--register_ttl` and `--register_interval`).
fn seconds(key: &str, v: &str) -> Result<Duration, Error> {
    number::<u64>(key, v).map(Duration::from_secs)
}

/// A Go duration (`1h2m3.5s`, `250ms`, `10us`) or a plain number of seconds.
fn duration(key: &str, v: &str) -> Result<Duration, Error> {
    parse_go_duration(v).ok_or_else(|| Error::Config(format!("{key}: {v:?} is not a duration")))
}

/// Parses Go's duration syntax (`300ms`, `1.5h`, `2h45m`, `10s`, `1µs`); a bare
/// number is seconds. Negative durations, and durations longer than a
/// [`Duration`] holds, are rejected.
///
/// Decimal numbers are read exactly, in whole nanoseconds: what Go's
/// `time.Duration.String` writes reads back to the same duration, and a fraction
/// of a nanosecond is dropped, as Go's `time.ParseDuration` drops it (`1.5ns` is
/// 1 ns). Fraction digits past the 18th are ignored. A bare number with an
/// exponent (`1e3`) is read as a floating-point number of seconds.
pub(crate) fn parse_go_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let unsigned = v.strip_prefix('+').unwrap_or(v);
    if unsigned.is_empty() {
        return None;
    }
    if unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return to_duration(decimal_nanos(unsigned, NANOS_PER_SEC)?);
    }
    if let Ok(secs) = v.parse::<f64>() {
        // try_from: a value beyond what a Duration holds (`1e20`) is refused, not a panic
        return (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).ok())?;
    }
    let mut total: u128 = 0;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            _ => return None,
        };
        total = total.checked_add(decimal_nanos(num, scale)?)?;
        rest = after;
    }
    to_duration(total)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `num` (ASCII digits with at most one `.`, and at least one digit) units of
/// `scale` nanoseconds, the fraction of a nanosecond dropped; `None` when
/// malformed or beyond `u128`.
fn decimal_nanos(num: &str, scale: u128) -> Option<u128> {
    const MAX_FRACTION_DIGITS: usize = 18;
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let digits = |s: &str| {
        s.bytes().try_fold(0u128, |n, d| {
            n.checked_mul(10)?
                .checked_add(u128::from(d.checked_sub(b'0')?))
        })
    };
    let frac = &frac[..frac.len().min(MAX_FRACTION_DIGITS)];
    // at most 18 digits times at most 3.6e12: far inside u128
    let part = digits(frac)? * scale / 10u128.pow(frac.len() as u32);
    digits(int)?.checked_mul(scale)?.checked_add(part)
}

/// Whole nanoseconds as a [`Duration`], if it holds them.
fn to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn go_durations_parse() {
        let ms = |v: &str| parse_go_duration(v).map(|d| d.as_millis());
        assert_eq!(ms("5s"), Some(5000));
        assert_eq!(ms("250ms"), Some(250));
        assert_eq!(ms("1m30s"), Some(90_000));
        assert_eq!(ms("1.5h"), Some(5_400_000));
        assert_eq!(ms("2"), Some(2000));
        assert_eq!(parse_go_duration("10us"), Some(Duration::from_micros(10)));
        for bad in [
            "", "-1s", "s", "5x", "1h-2m", "abc", "1e20", "inf", "NaN", "1e300h", "+", ".", ".s",
            "1.2.3s", "1s2",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_durations_parse_exactly() {
        // Found by the property tests: summed as floating point, these were a
        // nanosecond off (Go writes the first; the second is a bare number), and a
        // fraction of a nanosecond was rounded up where Go drops it.
        let d = |s, n| Some(Duration::new(s, n));
        assert_eq!(
            parse_go_duration("2330h10m8.423635145s"),
            d(8_388_608, 423_635_145)
        );
        assert_eq!(
            parse_go_duration("17000000.422"),
            d(17_000_000, 422_000_000)
        );
        assert_eq!(parse_go_duration(".5ns"), d(0, 0));
        assert_eq!(parse_go_duration("1.9ns"), d(0, 1));
        // Go's longest duration, and the longest a Duration holds
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s"),
            d(9_223_372_036, 854_775_807)
        );
        let max = "5124095576030431h0m15.999999999s";
        assert_eq!(parse_go_duration(max), Some(Duration::MAX));
        // huge values are refused, not a panic
        for huge in [
            "5124095576030431h0m16s",
            "18446744073709551616s",
            "999999999999999999999999999999999999999999h",
            "1e400",
        ] {
            assert_eq!(parse_go_duration(huge), None, "{huge}");
        }
    }

    #[test]
    fn the_environment_is_read_with_go_micros_names() {
        let env: HashMap<&str, &str> = [
            ("MICRO_REGISTRY", "Etcd"),
            ("MICRO_REGISTRY_ADDRESS", "127.0.0.1:2379, 127.0.0.1:2380"),
            ("MICRO_SERVER_NAME", "greeter"),
            ("MICRO_SERVER_METADATA", "a=1,b=2"),
            ("MICRO_REGISTER_TTL", "15"),
            ("MICRO_REGISTER_INTERVAL", "5"),
            ("MICRO_CLIENT_REQUEST_TIMEOUT", "750ms"),
            ("MICRO_CLIENT_RETRIES", "3"),
        ]
        .into_iter()
        .collect();
        let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(c.registry.as_deref(), Some("etcd"));
        assert_eq!(c.registry_address, ["127.0.0.1:2379", "127.0.0.1:2380"]);
        assert_eq!(c.server_name.as_deref(), Some("greeter"));
        assert_eq!(
            c.server_metadata,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(c.register_ttl, Some(Duration::from_secs(15)));
        assert_eq!(c.register_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.client_request_timeout, Some(Duration::from_millis(750)));
        assert_eq!(c.client_retries, Some(3));
        assert_eq!(c.server_address, None);
    }

    #[test]
    fn bad_values_are_errors() {
        for (k, v) in [
            ("MICRO_REGISTER_TTL", "ten"),
            ("MICRO_CLIENT_RETRIES", "-1"),
            ("MICRO_CLIENT_REQUEST_TIMEOUT", "soon"),
            ("MICRO_SERVER_METADATA", "novalue"),
        ] {
            let r = Config::from_lookup(|key| (key == k).then(|| v.to_owned()));
            let err = r.unwrap_err().to_string();
            assert!(err.contains(k), "{err}");
        }
    }
}

#[cfg(test)]
#[path = "config_proptests.rs"]
mod proptests;
