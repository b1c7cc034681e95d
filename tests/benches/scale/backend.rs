//! The registry servers: etcd (one member, three members) and a Consul dev agent,
//! started fresh for each measurement, with their counters, CPU time and RSS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use micro_consul::ConsulOptions;
use micro_etcd::EtcdRegistry;
use micro_registry::Registry;
use micro_tests::harness::consul::{AgentOptions, ConsulAgent, http};
use micro_tests::harness::etcd::Etcd;

use crate::Res;
use crate::procs::{cpu_secs, rss_kib};

/// Which registry server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// One etcd member.
    Etcd1,
    /// Three etcd members.
    Etcd3,
    /// A Consul dev agent (server and agent in one process).
    Consul,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Res<Kind> {
        match s.trim() {
            "etcd-1" => Ok(Kind::Etcd1),
            "etcd-3" => Ok(Kind::Etcd3),
            "consul" => Ok(Kind::Consul),
            other => Err(format!("unknown backend {other:?} (etcd-1, etcd-3, consul)").into()),
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Etcd1 => "etcd-1",
            Kind::Etcd3 => "etcd-3",
            Kind::Consul => "consul",
        }
    }

    pub(crate) fn is_etcd(self) -> bool {
        self != Kind::Consul
    }
}

/// A running registry server.
pub(crate) enum Backend {
    Etcd(Kind, Etcd),
    Consul(ConsulAgent),
}

impl Backend {
    pub(crate) async fn start(kind: Kind) -> Res<Backend> {
        Ok(match kind {
            Kind::Etcd1 => Backend::Etcd(kind, Etcd::start().await?),
            Kind::Etcd3 => Backend::Etcd(kind, Etcd::cluster(3).await?),
            Kind::Consul => {
                Backend::Consul(ConsulAgent::start_with(AgentOptions::new().prometheus()).await)
            }
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Backend::Etcd(k, _) => *k,
            Backend::Consul(_) => Kind::Consul,
        }
    }

    /// What a registrant's `--address` gets: etcd client URLs (comma list) or the
    /// agent's `host:port`.
    pub(crate) fn address(&self) -> String {
        match self {
            Backend::Etcd(_, e) => e.endpoints().join(","),
            Backend::Consul(c) => c.address(),
        }
    }

    /// `host:port` of every member's client port (for the go-micro peer).
    pub(crate) fn host_ports(&self) -> String {
        self.address().replace("http://", "")
    }

    /// The first member's `host:port`.
    pub(crate) fn first_host_port(&self) -> String {
        self.host_ports()
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// A new registry client (its own connection), on every member, or on
    /// `only` (a `host:port`, such as a proxy in front of the first member).
    pub(crate) fn client(&self, only: Option<&str>) -> Res<Arc<dyn Registry>> {
        Ok(match self {
            Backend::Etcd(_, e) => {
                let endpoints = match only {
                    Some(a) => vec![format!("http://{a}")],
                    None => e.endpoints(),
                };
                Arc::new(EtcdRegistry::builder().endpoints(endpoints).build()?)
            }
            Backend::Consul(c) => {
                let addr = only.map_or_else(|| c.address(), str::to_owned);
                Arc::new(ConsulOptions::new().address(addr).build()?)
            }
        })
    }

    /// The server processes.
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            Backend::Etcd(k, e) => {
                let n = if *k == Kind::Etcd3 { 3 } else { 1 };
                (0..n).filter_map(|i| e.member_pid(i)).collect()
            }
            Backend::Consul(c) => c.pid().into_iter().collect(),
        }
    }

    /// CPU seconds used so far by all server processes.
    pub(crate) fn cpu(&self) -> f64 {
        self.pids().into_iter().filter_map(cpu_secs).sum()
    }

    /// Resident memory of all server processes, KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.pids().into_iter().filter_map(rss_kib).sum()
    }

    /// The server's counters now (see [`Counters`]).
    pub(crate) async fn scrape(&self) -> Res<Counters> {
        match self {
            Backend::Etcd(_, e) => {
                let mut members = Vec::new();
                for ep in e.endpoints() {
                    let addr = ep.replace("http://", "").parse()?;
                    let (status, body) = http(addr, "GET", "/metrics", None, None).await?;
                    if status != 200 {
                        return Err(format!("etcd /metrics: status {status}").into());
                    }
                    members.push(parse_prometheus(&body));
                }
                Ok(Counters::etcd(&members))
            }
            Backend::Consul(c) => {
                let path = "/v1/agent/metrics?format=prometheus";
                let (status, body) = http(c.http_addr(), "GET", path, None, None).await?;
                if status != 200 {
                    return Err(format!("consul metrics: status {status}").into());
                }
                Ok(Counters::consul(&parse_prometheus(&body)))
            }
        }
    }

    /// Stops every server process.
    pub(crate) async fn stop(self) {
        match self {
            Backend::Etcd(_, mut e) => e.stop().await,
            Backend::Consul(mut c) => c.stop().await,
        }
    }
}

/// Prometheus text: `name{labels}` to value (samples with the same name and
/// labels summed).
type Samples = BTreeMap<String, f64>;

fn parse_prometheus(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(key.to_owned()).or_default() += v;
        }
    }
    out
}

/// Sum of the samples named `name` whose labels contain every one of `labels`.
fn sum(s: &Samples, name: &str, labels: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            let (n, l) = k.split_once('{').unwrap_or((k, ""));
            n == name && labels.iter().all(|want| l.contains(want))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// What a registry server counted. For etcd: requests summed over members (each
/// client request reaches one member); applied puts and committed proposals from
/// the member that counted most (every member applies every write). For Consul:
/// the agent's HTTP API counts and the catalog writes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    /// Requests that write: etcd puts, deletes, lease grants, revokes and
    /// keepalive messages; Consul service registrations, deregistrations and
    /// check updates.
    pub(crate) writes: f64,
    /// etcd `Put` requests; Consul service registrations.
    pub(crate) puts: f64,
    /// etcd `LeaseGrant` requests.
    pub(crate) grants: f64,
    /// etcd keepalive messages received on `LeaseKeepAlive` streams; Consul TTL
    /// check updates (`/v1/agent/check/pass`).
    pub(crate) keepalives: f64,
    /// etcd `Range` and `LeaseTimeToLive` requests; Consul reads of the agent's
    /// API.
    pub(crate) reads: f64,
    /// etcd: raft proposals committed; Consul: raft applies.
    pub(crate) consensus: f64,
    /// etcd: bytes sent to clients over gRPC.
    pub(crate) sent_bytes: f64,
}

impl Counters {
    fn etcd(members: &[Samples]) -> Counters {
        let total = |name: &str, labels: &[&str]| -> f64 {
            members.iter().map(|m| sum(m, name, labels)).sum()
        };
        let most = |name: &str| -> f64 {
            members
                .iter()
                .map(|m| sum(m, name, &[]))
                .fold(0.0, f64::max)
        };
        let handled = |method: &str| {
            total(
                "grpc_server_handled_total",
                &[&format!("grpc_method=\"{method}\"")],
            )
        };
        let puts = handled("Put");
        let grants = handled("LeaseGrant");
        let keepalives = total(
            "grpc_server_msg_received_total",
            &["grpc_method=\"LeaseKeepAlive\""],
        );
        Counters {
            writes: puts
                + grants
                + keepalives
                + handled("DeleteRange")
                + handled("LeaseRevoke")
                + handled("Txn"),
            puts,
            grants,
            keepalives,
            // A key check of a shared lease is a read of its key list.
            reads: handled("Range") + handled("LeaseTimeToLive"),
            consensus: most("etcd_server_proposals_committed_total"),
            sent_bytes: total("etcd_network_client_grpc_sent_bytes_total", &[]),
        }
    }

    fn consul(s: &Samples) -> Counters {
        let api = |method: &str, path: &str| {
            sum(
                s,
                "consul_api_http_count",
                &[&format!("method=\"{method}\""), &format!("path=\"{path}\"")],
            )
        };
        let puts = api("PUT", "v1_agent_service_register");
        let passes = api("PUT", "v1_agent_check_pass_");
        let all_get = sum(s, "consul_api_http_count", &["method=\"GET\""]);
        Counters {
            writes: puts + passes + api("PUT", "v1_agent_service_deregister_"),
            puts,
            grants: 0.0,
            keepalives: passes,
            reads: all_get,
            consensus: sum(s, "consul_raft_apply", &[]),
            sent_bytes: 0.0,
        }
    }

    /// `self - earlier`, field by field.
    pub(crate) fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            writes: self.writes - earlier.writes,
            puts: self.puts - earlier.puts,
            grants: self.grants - earlier.grants,
            keepalives: self.keepalives - earlier.keepalives,
            reads: self.reads - earlier.reads,
            consensus: self.consensus - earlier.consensus,
            sent_bytes: self.sent_bytes - earlier.sent_bytes,
        }
    }
}

/// How long a fresh server gets before it is used.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
