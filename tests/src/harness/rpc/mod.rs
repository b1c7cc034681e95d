//! End-to-end RPC fixtures: a registry backend (real etcd or a real Consul dev
//! agent) that can be stopped and restarted, `helloworld` servers (the examples'
//! program) in processes of their own, and a client that calls them in a loop and
//! records every call and every attempt.
//!
//! Servers bind and advertise 127.0.0.1 on free ports (`MICRO_SERVER_ADDRESS` and
//! `MICRO_BROKER_ADDRESS` are `127.0.0.1:0`) and register with a short TTL and
//! interval. Their logs go to stderr only with `MICRO_TEST_VERBOSE` set.

mod client;

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use micro::registry::Registry;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use super::Proc;
use super::consul::ConsulAgent;
use super::etcd::Etcd;

pub use client::{Attempts, CallLog, CallLoop, Failure, SLOW, TestClient};

/// How long a server may take to print `READY`.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// The `MICRO_*` variables a server or client program reads; cleared before a
/// child starts so that the test's own environment cannot leak in.
const MICRO_VARS: &[&str] = &[
    "MICRO_REGISTRY",
    "MICRO_REGISTRY_ADDRESS",
    "MICRO_SERVER_NAME",
    "MICRO_SERVER_VERSION",
    "MICRO_SERVER_ID",
    "MICRO_SERVER_ADDRESS",
    "MICRO_SERVER_ADVERTISE",
    "MICRO_SERVER_METADATA",
    "MICRO_REGISTER_TTL",
    "MICRO_REGISTER_INTERVAL",
    "MICRO_TRANSPORT",
    "MICRO_BROKER",
    "MICRO_BROKER_ADDRESS",
    "MICRO_CLIENT_RETRIES",
    "MICRO_CLIENT_REQUEST_TIMEOUT",
    "MICRO_CLIENT_POOL_SIZE",
    "MICRO_CLIENT_POOL_TTL",
];

/// A registry server the RPC scenarios run against.
pub enum Backend {
    /// One etcd member.
    Etcd(Etcd),
    /// One Consul dev agent.
    Consul(ConsulAgent),
}

impl Backend {
    /// A single etcd member on free ports.
    pub async fn etcd() -> Backend {
        Backend::Etcd(Etcd::start().await.expect("start etcd"))
    }

    /// A Consul dev agent on free ports.
    pub async fn consul() -> Backend {
        Backend::Consul(ConsulAgent::start().await)
    }

    /// `etcd` or `consul`: the `MICRO_REGISTRY` value.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Etcd(_) => "etcd",
            Backend::Consul(_) => "consul",
        }
    }

    /// The `MICRO_REGISTRY_ADDRESS` value: `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        match self {
            Backend::Etcd(e) => e.endpoint().trim_start_matches("http://").to_owned(),
            Backend::Consul(c) => c.address(),
        }
    }

    /// A new registry client for this server, with the plugin's defaults (what a
    /// user configuring only the address gets).
    pub fn registry(&self) -> Arc<dyn Registry> {
        match self {
            Backend::Etcd(_) => Arc::new(
                micro_etcd::EtcdRegistry::builder()
                    .endpoints([self.address()])
                    .build()
                    .expect("etcd registry"),
            ),
            Backend::Consul(_) => Arc::new(
                micro_consul::ConsulOptions::new()
                    .address(self.address())
                    .build()
                    .expect("consul registry"),
            ),
        }
    }

    /// Stops the server (etcd keeps its data; a Consul dev agent keeps nothing).
    pub async fn stop(&mut self) {
        match self {
            Backend::Etcd(e) => e.stop().await,
            Backend::Consul(c) => c.stop().await,
        }
    }

    /// Starts the stopped server again on the same ports and waits until it is
    /// ready: etcd with its data, Consul empty (dev mode).
    pub async fn start_again(&mut self) {
        match self {
            Backend::Etcd(e) => e.restart().await.expect("restart etcd"),
            Backend::Consul(c) => c.spawn().await,
        }
    }

    /// Freezes the server process (SIGSTOP): its connections stay open and its
    /// port accepts, but nothing answers, as in a network partition.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, sig: Signal) {
        let pid = match self {
            Backend::Etcd(e) => e.member_pid(0),
            Backend::Consul(c) => c.pid(),
        }
        .expect("the registry server runs");
        kill(Pid::from_raw(pid as i32), sig).expect("signal the registry server");
    }

    /// etcd only: stops it, throws its data away and starts it empty on the same
    /// ports.
    pub async fn restart_wiped(&mut self) {
        match self {
            Backend::Etcd(e) => e.restart_wiped().await.expect("restart etcd wiped"),
            Backend::Consul(c) => c.restart().await,
        }
    }
}

/// Registration timing of a server, in whole seconds (`MICRO_REGISTER_TTL`,
/// `MICRO_REGISTER_INTERVAL`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Registration TTL.
    pub ttl: Duration,
    /// Re-registration interval.
    pub interval: Duration,
}

impl Timing {
    /// TTL 4 s, interval 2 s: short enough for tests, long enough that a busy
    /// machine does not let healthy registrations expire.
    pub const SHORT: Timing = Timing {
        ttl: Duration::from_secs(4),
        interval: Duration::from_secs(2),
    };
}

/// Sets the environment of a `helloworld` or `helloworld-client` program for
/// `backend`: its registry and address, loopback-only server and broker
/// addresses, `timing`, and logging.
pub fn program_env(cmd: &mut Command, backend: &Backend, timing: Timing) {
    for v in MICRO_VARS {
        cmd.env_remove(v);
    }
    cmd.env("MICRO_REGISTRY", backend.name())
        .env("MICRO_REGISTRY_ADDRESS", backend.address())
        .env("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
        .env("MICRO_BROKER_ADDRESS", "127.0.0.1:0")
        .env("MICRO_REGISTER_TTL", timing.ttl.as_secs().to_string())
        .env(
            "MICRO_REGISTER_INTERVAL",
            timing.interval.as_secs().to_string(),
        );
    if std::env::var_os("MICRO_TEST_VERBOSE").is_some() {
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stderr(Stdio::inherit());
    } else {
        cmd.env("RUST_LOG", "warn").stderr(Stdio::null());
    }
}

/// A `helloworld` server process.
pub struct HelloServer {
    proc: Proc,
    node_id: String,
    address: String,
    // Kept open so the program never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl HelloServer {
    /// Starts the program at `bin` (pass `env!("CARGO_BIN_EXE_example-helloworld")`)
    /// on `backend` and waits for its `READY <node id> <address>`.
    pub async fn start(bin: &str, backend: &Backend, timing: Timing) -> HelloServer {
        let mut cmd = Command::new(bin);
        program_env(&mut cmd, backend, timing);
        cmd.stdout(Stdio::piped());
        let mut proc = Proc::spawn("helloworld", &mut cmd).expect("start helloworld");
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .expect("helloworld stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_LIMIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut words = line.split_whitespace();
                if words.next() == Some("READY") {
                    if let (Some(id), Some(addr)) = (words.next(), words.next()) {
                        return Some((id.to_owned(), addr.to_owned()));
                    }
                }
            }
            None
        })
        .await;
        let Ok(Some((node_id, address))) = ready else {
            panic!("helloworld did not print READY within {READY_LIMIT:?}");
        };
        assert!(
            address.starts_with("127.0.0.1:"),
            "helloworld advertises {address}, not loopback"
        );
        HelloServer {
            proc,
            node_id,
            address,
            _stdout: lines,
        }
    }

    /// The node id it registered.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The address it registered.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `kill -9`: no deregistration, no drain.
    pub async fn kill9(&mut self) {
        self.proc.kill9().await;
    }

    /// SIGTERM, then its exit status once it exited by itself (within 20 s;
    /// `None` if it had to be killed).
    pub async fn terminate(&mut self) -> Option<ExitStatus> {
        match self.proc.terminate(Duration::from_secs(20)).await {
            (true, status) => status,
            (false, _) => None,
        }
    }
}

/// The node ids of `service` in `registry` right now (sorted; empty on error).
pub async fn registered(registry: &dyn Registry, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = match registry.get_service(service).await {
        Ok(list) => list
            .into_iter()
            .flat_map(|s| s.nodes.into_iter().map(|n| n.id))
            .collect(),
        Err(_) => Vec::new(),
    };
    ids.sort();
    ids
}

/// Sorted copies of `ids`.
pub fn sorted<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}
