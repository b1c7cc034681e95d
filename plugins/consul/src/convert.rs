//! Mapping from the registry model to Consul: registrations, addresses and
//! Go-style durations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use micro_registry::{Node, ServiceRecord};

use crate::api::{Check, Registration};
use crate::{HttpCheck, tags};

/// Consul's smallest `DeregisterCriticalServiceAfter`.
const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// Most pairs Consul accepts in a service's `Meta`.
const MAX_META_PAIRS: usize = 64;
/// Longest `Meta` key Consul accepts.
const MAX_META_KEY_LEN: usize = 128;
/// Longest `Meta` value Consul accepts.
const MAX_META_VALUE_LEN: usize = 512;

/// Which check a node is registered with (go-micro's order: TCP, HTTP, TTL, none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CheckPlan {
    None,
    Ttl(Duration),
    Tcp(Duration),
    Http(HttpCheck),
}

impl CheckPlan {
    pub(crate) fn choose(
        tcp: Option<Duration>,
        http: Option<&HttpCheck>,
        ttl: Option<Duration>,
    ) -> CheckPlan {
        if let Some(i) = tcp {
            CheckPlan::Tcp(i)
        } else if let Some(h) = http {
            CheckPlan::Http(h.clone())
        } else {
            match ttl {
                Some(t) if !t.is_zero() => CheckPlan::Ttl(t),
                _ => CheckPlan::None,
            }
        }
    }
}

/// How long Consul keeps a node whose check is critical: the check's period, at
/// least Consul's one-minute minimum, plus 5 s (go-micro's `getDeregisterTTL`).
pub(crate) fn deregister_after(period: Duration) -> Duration {
    period.max(MIN_DEREGISTER_AFTER) + Duration::from_secs(5)
}

/// The agent registration of `node` of `service` (go-micro's mapping).
pub(crate) fn registration(service: &ServiceRecord, node: &Node, plan: &CheckPlan) -> Registration {
    let (host, port) = split_host_port(&node.address);
    let check = match plan {
        CheckPlan::None => None,
        CheckPlan::Ttl(ttl) => Some(Check {
            ttl: Some(go_duration(*ttl)),
            // Healthy from the start: the registration itself is the first beat.
            status: Some("passing".into()),
            deregister_critical_service_after: go_duration(deregister_after(*ttl)),
            ..Check::default()
        }),
        CheckPlan::Tcp(interval) => Some(Check {
            tcp: Some(node.address.clone()),
            interval: Some(go_duration(*interval)),
            deregister_critical_service_after: go_duration(deregister_after(*interval)),
            ..Check::default()
        }),
        CheckPlan::Http(h) => {
            let url_host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            Some(Check {
                http: Some(
                    h.url
                        .replace("{host}", &url_host)
                        .replace("{port}", &port.to_string()),
                ),
                interval: Some(go_duration(h.interval)),
                timeout: Some(go_duration(h.timeout)),
                deregister_critical_service_after: go_duration(deregister_after(h.interval)),
                ..Check::default()
            })
        }
    };
    Registration {
        id: node.id.clone(),
        name: service.name.clone(),
        tags: tags::encode_tags(service, node),
        address: host,
        port,
        meta: consul_meta(&node.id, &node.metadata),
        check,
    }
}

/// The node metadata Consul accepts as service `Meta`: keys of 1 to 128 characters
/// from `[A-Za-z0-9_-]` not starting with `consul-`, values of at most 512 bytes, at
/// most 64 pairs. Other pairs are left out of `Meta` (they still travel in the `t-`
/// tags, which is where readers take metadata from).
fn consul_meta(id: &str, md: &micro_registry::MetadataMap) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    for (k, v) in md {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_META_KEY_LEN
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !k.starts_with("consul-");
        if key_ok && v.len() <= MAX_META_VALUE_LEN && meta.len() < MAX_META_PAIRS {
            meta.insert(k.clone(), v.clone());
        } else {
            tracing::debug!(node = id, key = %k, "consul: metadata pair left out of Meta (kept in tags)");
        }
    }
    meta
}

/// Go's `net.SplitHostPort` as go-micro uses it: the whole address is the host when
/// it cannot be split or the host part is empty; an unreadable port is 0.
pub(crate) fn split_host_port(addr: &str) -> (String, u16) {
    let hp = micro_util::addr::HostPort::parse(addr);
    match hp.port {
        Some(port) => {
            let host = if hp.host.is_empty() { addr } else { hp.host };
            (host.to_owned(), port.parse().unwrap_or(0))
        }
        None => (addr.to_owned(), 0),
    }
}

/// go-micro's `HostPort`: IPv6 hosts in brackets; with port 0 a host that is not
/// an IP address stands alone (a queue name).
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if port == 0 && (host.contains(':') || host.parse::<std::net::IpAddr>().is_err()) {
        return if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
    }
    micro_util::addr::join_host_port(host, port)
}

/// A duration in Go's `time.Duration.String` format (`1m35s`, `500ms`, `1h0m0s`),
/// which Consul parses.
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(ns, div));
    }
    let secs = ns / 1_000_000_000;
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let s_ns = ns - (h * 3600 + m * 60) * 1_000_000_000;
    let _ = write!(out, "{}s", decimal(s_ns, 1_000_000_000));
    out
}

/// `v / div` with the fraction's trailing zeros trimmed (`div` a power of ten).
fn decimal(v: u128, div: u128) -> String {
    let (int, rem) = (v / div, v % div);
    if rem == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(65), "1m5s"),
            (Duration::from_secs(95), "1m35s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_millis(60_250), "1m0.25s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn deregister_after_has_a_minimum() {
        assert_eq!(
            go_duration(deregister_after(Duration::from_secs(90))),
            "1m35s"
        );
        assert_eq!(
            go_duration(deregister_after(Duration::from_secs(1))),
            "1m5s"
        );
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("10.0.0.1:8080"), ("10.0.0.1".into(), 8080));
        assert_eq!(split_host_port("[::1]:8080"), ("::1".into(), 8080));
        assert_eq!(split_host_port("queue"), ("queue".into(), 0));
        assert_eq!(split_host_port("::1"), ("::1".into(), 0));
        assert_eq!(split_host_port(":8080"), (":8080".into(), 8080));
        assert_eq!(split_host_port("h:notaport"), ("h".into(), 0));
        assert_eq!(join_host_port("10.0.0.1", 8080), "10.0.0.1:8080");
        assert_eq!(join_host_port("::1", 8080), "[::1]:8080");
        assert_eq!(join_host_port("queue", 0), "queue");
        assert_eq!(join_host_port("10.0.0.1", 0), "10.0.0.1:0");
        assert_eq!(join_host_port("::1", 0), "[::1]");
    }

    #[test]
    fn check_choice_follows_go_micro() {
        let h = HttpCheck {
            url: "http://{host}:{port}/health".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        };
        let ttl = Some(Duration::from_secs(30));
        assert_eq!(
            CheckPlan::choose(Some(Duration::from_secs(3)), Some(&h), ttl),
            CheckPlan::Tcp(Duration::from_secs(3))
        );
        assert_eq!(
            CheckPlan::choose(None, Some(&h), ttl),
            CheckPlan::Http(h.clone())
        );
        assert_eq!(
            CheckPlan::choose(None, None, ttl),
            CheckPlan::Ttl(Duration::from_secs(30))
        );
        assert_eq!(
            CheckPlan::choose(None, None, Some(Duration::ZERO)),
            CheckPlan::None
        );
        let node = Node::new("n1", "[::1]:9000");
        let reg = registration(&ServiceRecord::default(), &node, &CheckPlan::Http(h));
        let check = reg.check.unwrap();
        assert_eq!(check.http.as_deref(), Some("http://[::1]:9000/health"));
        assert_eq!(check.deregister_critical_service_after, "1m5s");
    }

    #[test]
    fn registration_maps_like_go_micro() {
        let mut node = Node::new("greeter-1", "10.0.0.5:38211");
        node.metadata.insert("protocol".into(), "mucp".into());
        node.metadata.insert("bad.key".into(), "x".into());
        node.metadata.insert("consul-reserved".into(), "x".into());
        let svc = ServiceRecord {
            name: "greeter".into(),
            version: "latest".into(),
            ..Default::default()
        };
        let reg = registration(&svc, &node, &CheckPlan::Ttl(Duration::from_secs(90)));
        let json = serde_json::to_value(&reg).unwrap();
        assert_eq!(json["ID"], "greeter-1");
        assert_eq!(json["Name"], "greeter");
        assert_eq!(json["Address"], "10.0.0.5");
        assert_eq!(json["Port"], 38211);
        assert_eq!(json["Meta"], serde_json::json!({"protocol": "mucp"}));
        assert_eq!(json["Check"]["TTL"], "1m30s");
        assert_eq!(json["Check"]["DeregisterCriticalServiceAfter"], "1m35s");
        // Three metadata tags (the dropped Meta keys included) and the version tag.
        let tags = json["Tags"].as_array().unwrap();
        assert_eq!(tags.len(), 4);
        let md = tags::decode_metadata(&reg.tags);
        assert_eq!(md.len(), 3);
        assert!(reg.tags.last().unwrap().starts_with("v-"));
    }

    #[test]
    fn too_many_meta_pairs_are_capped() {
        let mut node = Node::new("n", "h:1");
        for i in 0..100 {
            node.metadata.insert(format!("k{i:03}"), "v".into());
        }
        node.metadata.insert("long".into(), "x".repeat(600));
        let reg = registration(&ServiceRecord::default(), &node, &CheckPlan::None);
        assert_eq!(reg.meta.len(), MAX_META_PAIRS);
        assert!(!reg.meta.contains_key("long"));
        assert!(reg.check.is_none());
        assert_eq!(tags::decode_metadata(&reg.tags).len(), 101);
    }
}
