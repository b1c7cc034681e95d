//! Consul for tests: a dev agent (`consul agent -dev`) on free loopback ports,
//! optionally with ACLs (default deny, a known management token) or with an HTTPS
//! port (certificates made by `consul tls`), plus a tiny HTTP client for the
//! agent API and a request-counting proxy.
//!
//! The binary comes from `MICRO_CONSUL_BIN`, else from `scripts/build-consul.sh`
//! (built once per machine, then cached).

mod events;
mod net;
mod registrant;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

use super::{Proc, free_port, repo_root, wait_until};

pub use events::{expect_event, next_event};
pub use net::{CountingProxy, http};
pub use registrant::Registrant;

/// How long an agent may take to elect itself leader.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// The Consul binary: `$MICRO_CONSUL_BIN`, else what `scripts/build-consul.sh`
/// prints (it builds Consul the first time on a machine, which takes minutes).
pub fn consul_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MICRO_CONSUL_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let script = repo_root().join("scripts").join("build-consul.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {:?}",
            script.display(),
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout.lines().last().unwrap_or_default().trim();
        assert!(!path.is_empty(), "{} printed no path", script.display());
        PathBuf::from(path)
    })
    .clone()
}

/// How to start an agent.
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    acl_token: Option<String>,
    tls: bool,
    verify_clients: bool,
    prometheus: bool,
    /// A client agent joining the server agent whose Serf LAN port this is.
    join: Option<u16>,
}

impl AgentOptions {
    /// A plain dev agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// ACLs on, default policy deny, `token` as the initial management (and
    /// agent) token.
    pub fn acl(mut self, token: impl Into<String>) -> Self {
        self.acl_token = Some(token.into());
        self
    }

    /// Also serve HTTPS, with a certificate from a CA made for this agent.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Keep metrics for Prometheus (`/v1/agent/metrics?format=prometheus`), so
    /// that counters are totals since the start rather than per 10 s interval,
    /// and lift the limit of 200 HTTP connections per client address (every
    /// process of a benchmark's mesh connects from 127.0.0.1).
    pub fn prometheus(mut self) -> Self {
        self.prometheus = true;
        self
    }

    /// A client agent (not `-dev`, no server) that joins `server`'s
    /// datacenter: what each host of a mesh runs. Its registrations reach the
    /// server's catalog through its anti-entropy sync.
    pub fn join(mut self, server: &ConsulAgent) -> Self {
        self.join = Some(server.ports.serf_lan);
        self
    }

    /// With [`tls`](Self::tls): the HTTPS port demands a client certificate signed
    /// by the agent's CA.
    pub fn verify_clients(mut self) -> Self {
        self.verify_clients = true;
        self
    }
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    http: u16,
    https: u16,
    server: u16,
    serf_lan: u16,
    serf_wan: u16,
}

/// A running dev agent, killed when dropped.
pub struct ConsulAgent {
    proc: Option<Proc>,
    ports: Ports,
    opts: AgentOptions,
    dir: tempfile::TempDir,
    starts: u32,
}

impl ConsulAgent {
    /// A plain dev agent, ready (it has a leader).
    pub async fn start() -> ConsulAgent {
        Self::start_with(AgentOptions::new()).await
    }

    /// An agent started with `opts`, ready.
    pub async fn start_with(opts: AgentOptions) -> ConsulAgent {
        let ports = Ports {
            http: free_port(),
            https: free_port(),
            server: free_port(),
            serf_lan: free_port(),
            serf_wan: free_port(),
        };
        let dir = tempfile::Builder::new()
            .prefix("micro-consul-")
            .tempdir()
            .expect("temp dir");
        if opts.tls {
            make_certs(dir.path()).await;
        }
        let mut agent = ConsulAgent {
            proc: None,
            ports,
            opts,
            dir,
            starts: 0,
        };
        agent.spawn().await;
        agent
    }

    /// `127.0.0.1:<http port>`.
    pub fn address(&self) -> String {
        self.http_addr().to_string()
    }

    /// The HTTP API's socket address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.http))
    }

    /// `https://127.0.0.1:<https port>` when started with TLS.
    pub fn https_address(&self) -> Option<String> {
        self.opts
            .tls
            .then(|| format!("https://127.0.0.1:{}", self.ports.https))
    }

    /// The CA certificate (PEM) that signed the agent's certificate, with TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.opts
            .tls
            .then(|| self.dir.path().join("consul-agent-ca.pem"))
    }

    /// A client certificate and key (PEM) signed by the agent's CA, with TLS.
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.opts.tls.then(|| {
            (
                self.dir.path().join("dc1-client-consul-0.pem"),
                self.dir.path().join("dc1-client-consul-0-key.pem"),
            )
        })
    }

    /// The management token, with ACLs.
    pub fn token(&self) -> Option<&str> {
        self.opts.acl_token.as_deref()
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    /// Stops the agent (SIGTERM, SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(10)).await;
        }
    }

    /// `kill -9` the agent.
    pub async fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9().await;
        }
    }

    /// Stops the agent and starts it again on the same ports. A dev agent keeps
    /// nothing: every registration is gone.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Starts the agent process (after a stop) and waits until it is ready.
    pub async fn spawn(&mut self) {
        assert!(self.proc.is_none(), "consul agent already running");
        self.starts += 1;
        let log_path = self.dir.path().join(format!("consul-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("consul log file");
        let mut cmd = Command::new(consul_bin());
        cmd.arg("agent");
        match self.opts.join {
            None => cmd.arg("-dev").arg("-node=micro-test"),
            Some(serf) => cmd
                .arg(format!("-node=micro-client-{}", self.ports.http))
                .arg(format!(
                    "-data-dir={}",
                    self.dir.path().join("data").display()
                ))
                .arg(format!("-retry-join=127.0.0.1:{serf}"))
                .arg("-disable-host-node-id"),
        };
        cmd.arg("-bind=127.0.0.1")
            .arg("-client=127.0.0.1")
            .arg(format!("-http-port={}", self.ports.http))
            .arg("-dns-port=-1")
            .arg("-grpc-port=-1")
            .arg("-grpc-tls-port=-1")
            .arg(format!("-server-port={}", self.ports.server))
            .arg(format!("-serf-lan-port={}", self.ports.serf_lan))
            .arg(format!("-serf-wan-port={}", self.ports.serf_wan))
            .arg("-log-level=warn");
        for hcl in self.hcl() {
            cmd.arg("-hcl").arg(hcl);
        }
        cmd.stdout(log.try_clone().expect("log fd")).stderr(log);
        let proc = Proc::spawn("consul", &mut cmd).expect("start consul");
        self.proc = Some(proc);
        if !self.wait_ready().await {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            panic!("consul agent not ready within {READY_LIMIT:?}; log:\n{tail}");
        }
    }

    fn hcl(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.opts.acl_token {
            out.push(format!(
                r#"acl {{ enabled = true default_policy = "deny" enable_token_persistence = false tokens {{ initial_management = "{t}" agent = "{t}" }} }}"#
            ));
        }
        if self.opts.prometheus {
            out.push(
                r#"telemetry { prometheus_retention_time = "1h" disable_hostname = true }"#.into(),
            );
            // Many clients on one address (a benchmark's): no 429 after 200.
            out.push("limits { http_max_conns_per_client = 10000 }".into());
        }
        if self.opts.tls {
            let d = self.dir.path().display();
            out.push(format!("ports {{ https = {} }}", self.ports.https));
            out.push(format!(
                r#"tls {{ defaults {{ ca_file = "{d}/consul-agent-ca.pem" cert_file = "{d}/dc1-server-consul-0.pem" key_file = "{d}/dc1-server-consul-0-key.pem" verify_incoming = false verify_outgoing = false }} https {{ verify_incoming = {} }} }}"#,
                self.opts.verify_clients
            ));
        }
        out
    }

    /// Whether the agent has a leader (and, with ACLs, accepts the token) within
    /// the limit.
    async fn wait_ready(&mut self) -> bool {
        let addr = self.http_addr();
        let token = self.opts.acl_token.clone();
        let proc = &mut self.proc;
        wait_until(READY_LIMIT, Duration::from_millis(100), || {
            let token = token.clone();
            let exited = proc.as_mut().is_none_or(Proc::has_exited);
            async move {
                if exited {
                    return true;
                }
                let leader = matches!(
                    http(addr, "GET", "/v1/status/leader", None, None).await,
                    Ok((200, body)) if body.trim().len() > 2
                );
                if !leader {
                    return false;
                }
                match token {
                    None => true,
                    Some(t) => matches!(
                        http(addr, "GET", "/v1/acl/token/self", Some(&t), None).await,
                        Ok((200, _))
                    ),
                }
            }
        })
        .await
            && self.proc.as_mut().is_some_and(|p| !p.has_exited())
    }

    /// Registry options for this agent over plain HTTP: its address, its
    /// management token when ACLs are on, and a short watch wait (2 s) so that
    /// tests see idle watches cycle.
    pub fn options(&self) -> micro_consul::ConsulOptions {
        let mut o = micro_consul::ConsulOptions::new()
            .address(self.address())
            .watch_wait(Duration::from_secs(2));
        if let Some(t) = self.token() {
            o = o.token(t);
        }
        o
    }

    /// A registry on this agent with [`options`](Self::options).
    pub fn registry(&self) -> micro_consul::ConsulRegistry {
        self.options().build().expect("consul registry")
    }

    /// One request to the agent's HTTP API, with the management token when ACLs
    /// are on. Returns the status and the body.
    pub async fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(self.http_addr(), method, path, self.token(), body)
            .await
            .unwrap_or_else(|e| panic!("consul api {method} {path}: {e}"))
    }
}

/// Makes a CA, a server certificate (valid for 127.0.0.1 and localhost) and a
/// client certificate in `dir` with `consul tls`.
async fn make_certs(dir: &Path) {
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "-server", "-dc", "dc1"][..],
        &["tls", "cert", "create", "-client", "-dc", "dc1"][..],
    ] {
        let out = Command::new(consul_bin())
            .args(args)
            .current_dir(dir)
            .output()
            .await
            .expect("run consul tls");
        assert!(
            out.status.success(),
            "consul {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
