//! Real etcd servers for tests: one member or a three-member cluster on free
//! loopback ports with temporary data directories, stopped, restarted (keeping or
//! wiping the data) and killed by PID.
//!
//! etcd is Debian's `etcd-server` (`/usr/bin/etcd`); it is installed through the
//! project's `scripts/lib.sh` when missing and the tests run as root.
//! `MICRO_ETCD_BIN` points at another binary.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use micro_registry::{MetadataMap, Node, ServiceRecord};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Proc, free_port, repo_root, wait_until};

/// How long a member may take to report healthy.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The etcd binary, installing Debian's `etcd-server` first if it is missing.
pub fn etcd_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("MICRO_ETCD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let bin = PathBuf::from("/usr/bin/etcd");
    if bin.exists() {
        return Ok(bin);
    }
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(". scripts/lib.sh && apt_install etcd-server")
        .current_dir(repo_root())
        .status()?;
    if status.success() && bin.exists() {
        Ok(bin)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "etcd is not installed (apt-get install etcd-server, or set MICRO_ETCD_BIN)",
        ))
    }
}

/// Server TLS for the client port.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// PEM certificate file.
    pub cert: PathBuf,
    /// PEM key file.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// One etcd member.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    proc: Option<Proc>,
}

/// A running etcd (one member or a cluster); every member is killed on drop.
pub struct Etcd {
    root: tempfile::TempDir,
    members: Vec<Member>,
    tls: Option<ServerTls>,
    /// Bumped on every wipe so data directories are fresh.
    generation: u32,
}

impl Etcd {
    /// A single member on free ports.
    pub async fn start() -> io::Result<Etcd> {
        Self::start_with(1, None).await
    }

    /// A cluster of `n` members on free ports.
    pub async fn cluster(n: usize) -> io::Result<Etcd> {
        Self::start_with(n, None).await
    }

    /// A single member serving clients over TLS.
    pub async fn start_tls(tls: ServerTls) -> io::Result<Etcd> {
        Self::start_with(1, Some(tls)).await
    }

    async fn start_with(n: usize, tls: Option<ServerTls>) -> io::Result<Etcd> {
        let root = tempfile::Builder::new().prefix("micro-etcd-").tempdir()?;
        let members = (0..n.max(1))
            .map(|i| {
                let name = format!("m{i}");
                Member {
                    data_dir: root.path().join(format!("{name}-0")),
                    name,
                    client_port: free_port(),
                    peer_port: free_port(),
                    proc: None,
                }
            })
            .collect();
        let mut etcd = Etcd {
            root,
            members,
            tls,
            generation: 0,
        };
        etcd.start_all().await?;
        Ok(etcd)
    }

    /// Client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.member_endpoint(i))
            .collect()
    }

    /// The first member's client URL.
    pub fn endpoint(&self) -> String {
        self.member_endpoint(0)
    }

    /// Member `i`'s client URL.
    pub fn member_endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Where the members' logs are written.
    pub fn log_dir(&self) -> &Path {
        self.root.path()
    }

    /// Stops every member (SIGTERM, SIGKILL after 5 s), keeping the data.
    pub async fn stop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                p.terminate(Duration::from_secs(5)).await;
            }
        }
    }

    /// `kill -9` of member `i`.
    pub async fn kill_member(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc.take() {
            p.kill9().await;
        }
    }

    /// Member `i`'s process id while it runs.
    pub fn member_pid(&self, i: usize) -> Option<u32> {
        self.members[i].proc.as_ref().and_then(Proc::pid)
    }

    /// Starts the stopped members again on the same ports with their data.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.start_all().await
    }

    /// Stops every member, throws the data away and starts a new, empty cluster on
    /// the same ports.
    pub async fn restart_wiped(&mut self) -> io::Result<()> {
        self.stop().await;
        self.generation += 1;
        for m in &mut self.members {
            let _ = std::fs::remove_dir_all(&m.data_dir);
            m.data_dir = self
                .root
                .path()
                .join(format!("{}-{}", m.name, self.generation));
        }
        self.start_all().await
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn start_all(&mut self) -> io::Result<()> {
        let bin = etcd_binary()?;
        let cluster = self.initial_cluster();
        let token = format!("micro-{}-{}", std::process::id(), self.generation);
        for i in 0..self.members.len() {
            if self.members[i].proc.is_some() {
                continue;
            }
            let client_url = self.member_endpoint(i);
            let m = &mut self.members[i];
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.root.path().join(format!("{}.log", m.name)))?;
            let peer_url = format!("http://127.0.0.1:{}", m.peer_port);
            let mut cmd = Command::new(&bin);
            cmd.arg("--name")
                .arg(&m.name)
                .arg("--data-dir")
                .arg(&m.data_dir)
                .arg("--listen-client-urls")
                .arg(&client_url)
                .arg("--advertise-client-urls")
                .arg(&client_url)
                .arg("--listen-peer-urls")
                .arg(&peer_url)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer_url)
                .arg("--initial-cluster")
                .arg(&cluster)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--auto-compaction-retention")
                .arg("0")
                .arg("--logger")
                .arg("zap")
                .arg("--log-outputs")
                .arg("stderr")
                .arg("--log-level")
                .arg("warn")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log));
            if let Some(tls) = &self.tls {
                cmd.arg("--cert-file")
                    .arg(&tls.cert)
                    .arg("--key-file")
                    .arg(&tls.key);
                if let Some(ca) = &tls.client_ca {
                    cmd.arg("--client-cert-auth")
                        .arg("--trusted-ca-file")
                        .arg(ca);
                }
            }
            m.proc = Some(Proc::spawn(format!("etcd-{}", m.name), &mut cmd)?);
        }
        for i in 0..self.members.len() {
            let port = self.members[i].client_port;
            let tls = self.tls.is_some();
            let ok = wait_until(START_LIMIT, Duration::from_millis(100), || async move {
                if tls {
                    super::port_open(([127, 0, 0, 1], port).into()).await
                } else {
                    healthy(port).await
                }
            })
            .await;
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd member {} not healthy within {START_LIMIT:?}; logs in {}",
                        self.members[i].name,
                        self.root.path().display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `GET /health` on the member's client port answers `"health":"true"`.
pub async fn healthy(port: u16) -> bool {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        Some(text.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), fut).await,
        Ok(Some(true))
    )
}

impl Etcd {
    /// An etcd-client connected to every member, for tests that change etcd behind
    /// the registry's back (delete keys, revoke leases, compact).
    pub async fn client(&self) -> Result<etcd_client::Client, etcd_client::Error> {
        etcd_client::Client::connect(self.endpoints(), None).await
    }
}

/// A single-node service as a server registers it, with go-micro's metadata
/// (`protocol=mucp`, `registry=etcd`).
pub fn node_service(name: &str, version: &str, node_id: &str, address: &str) -> ServiceRecord {
    let mut metadata = MetadataMap::new();
    metadata.insert("protocol".into(), "mucp".into());
    metadata.insert("registry".into(), "etcd".into());
    ServiceRecord {
        name: name.into(),
        version: version.into(),
        nodes: vec![Node {
            id: node_id.into(),
            address: address.into(),
            metadata,
        }],
        ..Default::default()
    }
}

/// What an `etcd-registrant` process registers.
#[derive(Clone, Debug)]
pub struct Registrant {
    /// Comma-separated etcd endpoints.
    pub endpoints: String,
    /// ServiceRecord name.
    pub service: String,
    /// Node id.
    pub node_id: String,
    /// Registration TTL.
    pub ttl: Duration,
    /// Re-registration interval.
    pub interval: Duration,
}

impl Registrant {
    /// Starts the `etcd-registrant` binary at `bin` (tests pass
    /// `env!("CARGO_BIN_EXE_etcd-registrant")`) and waits until it printed `READY`.
    pub async fn spawn(&self, bin: &Path) -> io::Result<Proc> {
        let mut cmd = Command::new(bin);
        cmd.arg("--endpoints")
            .arg(&self.endpoints)
            .arg("--service")
            .arg(&self.service)
            .arg("--node-id")
            .arg(&self.node_id)
            .arg("--address")
            .arg("127.0.0.1:1")
            .arg("--ttl-ms")
            .arg(self.ttl.as_millis().to_string())
            .arg("--interval-ms")
            .arg(self.interval.as_millis().to_string())
            .stdout(Stdio::piped());
        // Its logs (warnings while etcd is down, say) only with MICRO_TEST_VERBOSE.
        if std::env::var_os("MICRO_TEST_VERBOSE").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null());
        }
        let mut proc = Proc::spawn(format!("registrant-{}", self.node_id), &mut cmd)?;
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .ok_or_else(|| io::Error::other("registrant has no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "READY" {
                    return true;
                }
            }
            false
        })
        .await;
        match ready {
            Ok(true) => Ok(proc),
            _ => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("registrant {} did not get ready", self.node_id),
            )),
        }
    }
}

/// Installs a `tracing` subscriber that prints to the test's output (once per
/// process; later calls do nothing). `RUST_LOG` filters, default `warn`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// What a watch consumer believes is registered: node id -> (version, node
/// address), built by applying events the way the registry cache does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSet {
    /// node id -> (service version, address)
    pub nodes: std::collections::BTreeMap<String, (String, String)>,
}

impl NodeSet {
    /// Applies one event.
    pub fn apply(&mut self, ev: &micro_registry::WatchEvent) {
        for n in &ev.service.nodes {
            match ev.action {
                micro_registry::Action::Create | micro_registry::Action::Update => {
                    self.nodes.insert(
                        n.id.clone(),
                        (ev.service.version.clone(), n.address.clone()),
                    );
                }
                micro_registry::Action::Delete => {
                    self.nodes.remove(&n.id);
                }
            }
        }
    }

    /// The node ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}

/// Reads events from `watcher` into `set` until `done(set)` holds or `limit`
/// passes; returns whether it held, and every event read.
pub async fn watch_until(
    watcher: &mut dyn micro_registry::Watcher,
    set: &mut NodeSet,
    limit: Duration,
    mut done: impl FnMut(&NodeSet) -> bool,
) -> (bool, Vec<micro_registry::WatchEvent>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while !done(set) {
        match tokio::time::timeout_at(deadline, watcher.next()).await {
            Ok(Ok(ev)) => {
                set.apply(&ev);
                seen.push(ev);
            }
            Ok(Err(micro_registry::Error::Lagged { .. })) => {}
            Ok(Err(_)) | Err(_) => return (false, seen),
        }
    }
    (true, seen)
}
