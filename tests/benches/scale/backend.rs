//! The registry servers: etcd (one member, three members) and Consul (a dev server
//! agent and one client agent per 1 000 nodes joined to it),
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
    /// A Consul dev server agent and client agents joined to it.
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

/// Nodes per Consul client agent (see [`Backend::start`]).
pub(crate) const NODES_PER_AGENT: usize = 1000;

/// A running registry server.
pub(crate) enum Backend {
    Etcd(Kind, Etcd),
    /// The server agent (dev mode, where the bench's clients read) and the
    /// client agents the registrants register on.
    Consul(ConsulAgent, Vec<ConsulAgent>),
}

impl Backend {
    /// The registry for a mesh of `n` nodes. Consul: a server agent and one
    /// client agent joined to it per [`NODES_PER_AGENT`] nodes. In a mesh every
    /// host runs its agent and registers its few services there; a Consul agent's
    /// cost per registration and per check update grows with the services it
    /// holds (measured here: 0.2 ms of agent CPU per TTL pass with 500, 1.45 ms
    /// with 5 000; registering the 10 000th service takes 16 times longer than
    /// the 1 000th), so one agent holding all of a large mesh measures that
    /// agent, not the mesh.
    pub(crate) async fn start(kind: Kind, n: usize) -> Res<Backend> {
        Ok(match kind {
            Kind::Etcd1 => Backend::Etcd(kind, Etcd::start().await?),
            Kind::Etcd3 => Backend::Etcd(kind, Etcd::cluster(3).await?),
            Kind::Consul => {
                let server = ConsulAgent::start_with(AgentOptions::new().prometheus()).await;
                let mut clients = Vec::new();
                for _ in 0..n.div_ceil(NODES_PER_AGENT).max(1) {
                    let opts = AgentOptions::new().prometheus().join(&server);
                    clients.push(ConsulAgent::start_with(opts).await);
                }
                Backend::Consul(server, clients)
            }
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Backend::Etcd(k, _) => *k,
            Backend::Consul(..) => Kind::Consul,
        }
    }

    /// Where the bench's own clients go: etcd client URLs (comma list) or the
    /// server agent's `host:port`.
    pub(crate) fn address(&self) -> String {
        match self {
            Backend::Etcd(_, e) => e.endpoints().join(","),
            Backend::Consul(server, _) => server.address(),
        }
    }

    /// What a registrant's `--address` gets: etcd client URLs, or every client
    /// agent's `host:port` (the registrant spreads its nodes over them).
    pub(crate) fn registrant_address(&self) -> String {
        match self {
            Backend::Etcd(..) => self.address(),
            Backend::Consul(_, clients) => clients
                .iter()
                .map(ConsulAgent::address)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn agents(&self) -> Vec<&ConsulAgent> {
        match self {
            Backend::Etcd(..) => Vec::new(),
            Backend::Consul(server, clients) => std::iter::once(server).chain(clients).collect(),
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
            Backend::Consul(server, _) => {
                let addr = only.map_or_else(|| server.address(), str::to_owned);
                Arc::new(ConsulOptions::new().address(addr).build()?)
            }
        })
    }

    /// The server processes (Consul: the server agent).
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            Backend::Etcd(k, e) => {
                let n = if *k == Kind::Etcd3 { 3 } else { 1 };
                (0..n).filter_map(|i| e.member_pid(i)).collect()
            }
            Backend::Consul(server, _) => server.pid().into_iter().collect(),
        }
    }

    /// The Consul client agents' processes (none for etcd): the hosts' agents
    /// of the simulated mesh, reported apart from the server.
    pub(crate) fn agent_pids(&self) -> Vec<u32> {
        match self {
            Backend::Etcd(..) => Vec::new(),
            Backend::Consul(_, clients) => clients.iter().filter_map(ConsulAgent::pid).collect(),
        }
    }

    /// CPU seconds used so far by the server processes, and by the client
    /// agents.
    pub(crate) fn cpu(&self) -> (f64, f64) {
        let sum = |pids: Vec<u32>| pids.into_iter().filter_map(cpu_secs).sum();
        (sum(self.pids()), sum(self.agent_pids()))
    }

    /// Resident memory of the server processes, and of the client agents, KiB.
    pub(crate) fn rss_kib(&self) -> (u64, u64) {
        let sum = |pids: Vec<u32>| pids.into_iter().filter_map(rss_kib).sum();
        (sum(self.pids()), sum(self.agent_pids()))
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
            Backend::Consul(..) => {
                // Every agent counts the requests it answered; the server
                // alone counts raft applies.
                let mut all = Samples::new();
                for a in self.agents() {
                    let path = "/v1/agent/metrics?format=prometheus";
                    let (status, body) = http(a.http_addr(), "GET", path, None, None).await?;
                    if status != 200 {
                        return Err(format!("consul metrics: status {status}").into());
                    }
                    for (k, v) in parse_prometheus(&body) {
                        *all.entry(k).or_default() += v;
                    }
                }
                Ok(Counters::consul(&all))
            }
        }
    }

    /// Stops every server process.
    pub(crate) async fn stop(self) {
        match self {
            Backend::Etcd(_, mut e) => e.stop().await,
            Backend::Consul(mut server, clients) => {
                for mut c in clients {
                    c.stop().await;
                }
                server.stop().await;
            }
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
