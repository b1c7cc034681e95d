//! Real go-micro peers for the interop suites: where the v4 and v5 programs of
//! `tests/interop/` are (built by `scripts/build-go-peers.sh`), the four
//! combinations every scenario runs in (go-micro v4.11 or v5.30, etcd or Consul),
//! one etcd and one Consul agent shared by the combinations of a test, and a runner
//! that plays the combinations concurrently and reports each one.
//!
//! The Go programs run as [`GoProc`]s: owned child processes whose stdout (the
//! `READY …` lines and one JSON object per line, see `tests/interop/README.md`) is
//! read with bounded waits, and whose stderr is kept for failure messages.
//!
//! A peer that cannot be built is a test failure with the build script's message,
//! never a skip.

mod helloworld;
mod proc;

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use micro::client::{CallError, CallErrorKind};
use micro::registry::Registry;
use tokio::time::Instant;

pub use helloworld::{
    FailRequest, FailResponse, Inner, InteropHelloworld, MetaRequest, MetaResponse, Payload,
    Received, Recorder, our_server, subscriber,
};
pub use proc::{GoOutput, GoProc, Ready, run};

use super::consul::ConsulAgent;
use super::etcd::Etcd;
use super::repo_root;

/// A go-micro major version with a peer module in `tests/interop/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GoVersion {
    /// `go-micro.dev/v4 v4.11.0` with the v4 etcd and Consul plugins.
    V4,
    /// `go-micro.dev/v5 v5.30.0`.
    V5,
}

impl GoVersion {
    /// Both versions.
    pub const ALL: [GoVersion; 2] = [GoVersion::V4, GoVersion::V5];

    /// `v4` or `v5`: the module directory and the build script's key.
    pub fn key(self) -> &'static str {
        match self {
            GoVersion::V4 => "v4",
            GoVersion::V5 => "v5",
        }
    }

    /// The exact version, for reports.
    pub fn label(self) -> &'static str {
        match self {
            GoVersion::V4 => "go-micro v4.11.0",
            GoVersion::V5 => "go-micro v5.30.0",
        }
    }

    /// The variable `scripts/test.sh` exports with the binaries' directory.
    pub fn env_var(self) -> &'static str {
        match self {
            GoVersion::V4 => "MICRO_GO_PEERS_V4",
            GoVersion::V5 => "MICRO_GO_PEERS_V5",
        }
    }
}

/// The registry a combination runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegistryKind {
    /// etcd (Debian's etcd-server).
    Etcd,
    /// A Consul dev agent.
    Consul,
}

impl RegistryKind {
    /// `etcd` or `consul`: the `--registry` value and the `registry` node metadata.
    pub fn name(self) -> &'static str {
        match self {
            RegistryKind::Etcd => "etcd",
            RegistryKind::Consul => "consul",
        }
    }
}

/// One of the four combinations a scenario runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Combo {
    /// The go-micro version of the Go side.
    pub go: GoVersion,
    /// The registry both sides share.
    pub registry: RegistryKind,
}

impl Combo {
    /// v4 etcd, v4 consul, v5 etcd, v5 consul.
    pub fn all() -> Vec<Combo> {
        GoVersion::ALL
            .iter()
            .flat_map(|&go| {
                [RegistryKind::Etcd, RegistryKind::Consul].map(|registry| Combo { go, registry })
            })
            .collect()
    }

    /// `v4-etcd`: unique per combination, for service names and topics.
    pub fn slug(&self) -> String {
        format!("{}-{}", self.go.key(), self.registry.name())
    }

    /// `go-micro v4.11.0 / etcd`, for reports.
    pub fn label(&self) -> String {
        format!("{} / {}", self.go.label(), self.registry.name())
    }
}

/// The directory holding the four peer programs of `go`: `$MICRO_GO_PEERS_V4`
/// (or `_V5`) when set, else what `scripts/build-go-peers.sh` prints (it builds
/// them the first time on a machine and reuses the cached build later).
///
/// Panics with the script's message when the peers cannot be built: an interop
/// test never passes without its peer.
pub fn peers_dir(go: GoVersion) -> PathBuf {
    if let Some(dir) = std::env::var_os(go.env_var()).filter(|d| !d.is_empty()) {
        return checked(go, PathBuf::from(dir), go.env_var());
    }
    static BUILT: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    let built = BUILT.get_or_init(build_peers);
    match built {
        Ok((v4, v5)) => {
            let dir = if go == GoVersion::V4 { v4 } else { v5 };
            checked(go, dir.clone(), "scripts/build-go-peers.sh")
        }
        Err(e) => panic!("the go-micro peers cannot be built: {e}"),
    }
}

/// The path of one peer program (`server`, `client`, `publisher`, `subscriber`).
pub fn peer_bin(go: GoVersion, program: &str) -> PathBuf {
    peers_dir(go).join(program)
}

fn checked(go: GoVersion, dir: PathBuf, from: &str) -> PathBuf {
    for p in ["server", "client", "publisher", "subscriber"] {
        assert!(
            dir.join(p).is_file(),
            "{} peer program {p} missing in {} (from {from}); run scripts/build-go-peers.sh",
            go.key(),
            dir.display()
        );
    }
    dir
}

fn build_peers() -> Result<(PathBuf, PathBuf), String> {
    let script = repo_root().join("scripts").join("build-go-peers.sh");
    let started = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); is Go installed and the Go module proxy reachable?",
            script.display(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let find = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|d| PathBuf::from(d.trim()))
            .ok_or_else(|| format!("{} printed no {key}= line", script.display()))
    };
    let dirs = (find("v4")?, find("v5")?);
    eprintln!(
        "go-micro peers ready in {:.1} s: {} {}",
        started.elapsed().as_secs_f64(),
        dirs.0.display(),
        dirs.1.display()
    );
    Ok(dirs)
}

/// One etcd and one Consul agent, shared by the combinations of a test; both
/// are killed when this is dropped.
pub struct Registries {
    etcd: Etcd,
    consul: ConsulAgent,
}

impl Registries {
    /// Starts etcd and a Consul dev agent side by side and waits until both are
    /// ready. Also makes sure the Go peers exist before any clock starts.
    pub async fn start() -> Arc<Registries> {
        let started = Instant::now();
        let peers = tokio::task::spawn_blocking(|| {
            for go in GoVersion::ALL {
                peers_dir(go);
            }
        });
        let (etcd, consul) = tokio::join!(Etcd::start(), ConsulAgent::start());
        let etcd = etcd.expect("start etcd");
        match peers.await {
            Ok(()) => {}
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("looking for the go-micro peers failed: {e}"),
        }
        eprintln!(
            "etcd and consul ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Arc::new(Registries { etcd, consul })
    }

    /// `127.0.0.1:<port>` of the registry, as both sides are given it.
    pub fn address(&self, kind: RegistryKind) -> String {
        match kind {
            RegistryKind::Etcd => self
                .etcd
                .endpoint()
                .trim_start_matches("http://")
                .to_owned(),
            RegistryKind::Consul => self.consul.address(),
        }
    }

    /// `--registry <kind> --registry_address <address>` for a Go peer.
    pub fn go_args(&self, kind: RegistryKind) -> Vec<String> {
        vec![
            "--registry".into(),
            kind.name().into(),
            "--registry_address".into(),
            self.address(kind),
        ]
    }

    /// A new Rust registry client for `kind`.
    pub fn registry(&self, kind: RegistryKind) -> Arc<dyn Registry> {
        match kind {
            RegistryKind::Etcd => Arc::new(
                micro_etcd::EtcdRegistry::builder()
                    .endpoints([self.etcd.endpoint()])
                    .build()
                    .expect("etcd registry"),
            ),
            RegistryKind::Consul => Arc::new(self.consul.registry()),
        }
    }
}

/// Runs `scenario` for every [`Combo`] at once (each in a task of its own), prints
/// how each went and how long it took, and panics after all of them finished if any
/// failed, naming every failed combination and its message.
pub async fn for_each_combo<F, Fut>(what: &str, registries: &Arc<Registries>, scenario: F)
where
    F: Fn(Arc<Registries>, Combo) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = Combo::all()
        .into_iter()
        .map(|combo| {
            let fut = scenario(registries.clone(), combo);
            (
                combo,
                tokio::spawn(async move {
                    let t = Instant::now();
                    fut.await;
                    t.elapsed()
                }),
            )
        })
        .collect();
    let mut failures = Vec::new();
    for (combo, task) in tasks {
        match task.await {
            Ok(took) => eprintln!(
                "PASS {what} [{}] in {:.1} s",
                combo.label(),
                took.as_secs_f64()
            ),
            Err(e) => {
                let msg = if e.is_panic() {
                    panic_message(e.into_panic())
                } else {
                    e.to_string()
                };
                eprintln!("FAIL {what} [{}]: {msg}", combo.label());
                failures.push(format!("[{}] {msg}", combo.label()));
            }
        }
    }
    eprintln!(
        "{what}: {} of 4 combinations passed in {:.1} s",
        4 - failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{what}: {} combination(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "panic with a non-string payload".to_owned(),
        },
    }
}

/// Runs a unary call to a go-micro server, and runs it again (at most twice) when
/// it timed out on our side.
///
/// go-micro servers (v4.11 and v5.30 alike) can lose a unary request that arrives
/// on a kept-alive connection right after the previous reply: all unary requests
/// of a connection share one pseudo-socket (the server looks the request id up as
/// `Micro-ID`, HTTP delivers `Micro-Id`), it is released only after the reply is
/// written, and a request that finds it not yet released is never served. Go
/// clients hit it as well (about one in 1500 back-to-back calls under load on this
/// machine). Every retry is printed, so a run shows how often it happened.
pub async fn retry_lost<T, F, Fut>(what: &str, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt < 2 && e.kind() == CallErrorKind::Timeout => {
                attempt += 1;
                eprintln!("{what}: the go-micro server lost the request ({e}); calling again");
            }
            other => return other,
        }
    }
}

/// Runs `f` every 50 ms until it returns `Some`, for at most `limit`; returns the
/// value and how long it took, or `None` when the time ran out.
pub async fn poll<T, F, Fut>(limit: Duration, mut f: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some((v, started.elapsed()));
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
