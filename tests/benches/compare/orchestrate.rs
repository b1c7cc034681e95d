//! The orchestrator: finds the programs, starts etcd and the servers, runs the
//! workloads in alternation and prints the tables and target lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use micro_tests::harness::etcd::Etcd;
use micro_tests::harness::repo_root;
use tokio::process::Command;

use crate::procs::{Child, rss_kib};
use crate::report::{Results, Stack};
use crate::{Res, workloads};

/// Settings from the environment (see the crate docs).
pub(crate) struct Settings {
    pub(crate) secs: f64,
    pub(crate) rounds: usize,
    pub(crate) callers: Vec<usize>,
    pub(crate) subscribers: Vec<usize>,
    pub(crate) publishers: usize,
    pub(crate) discovery_rounds: usize,
    only: Vec<String>,
    pub(crate) go: Vec<Stack>,
}

fn env_num<T: std::str::FromStr>(key: &str, default: T) -> Res<T> {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{key}={v:?} is not a number").into()),
        _ => Ok(default),
    }
}

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_nums(key: &str, default: &str) -> Res<Vec<usize>> {
    env_list(key, default)
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| format!("{key}: {s:?} is not a number").into())
        })
        .collect()
}

impl Settings {
    fn from_env() -> Res<Settings> {
        let go = env_list("BENCH_GO", "v5,v4")
            .iter()
            .map(|v| match v.as_str() {
                "v5" => Ok(Stack::GoV5),
                "v4" => Ok(Stack::GoV4),
                other => Err(format!("BENCH_GO: unknown version {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Settings {
            secs: env_num("BENCH_SECS", 3.0)?,
            rounds: env_num("BENCH_ROUNDS", 2usize)?.max(1),
            callers: env_nums("BENCH_CALLERS", "1,16,64")?,
            subscribers: env_nums("BENCH_SUBSCRIBERS", "1,8")?,
            publishers: env_num("BENCH_PUBLISHERS", 32usize)?.max(1),
            discovery_rounds: env_num("BENCH_DISCOVERY_ROUNDS", 100usize)?.max(1),
            only: env_list("BENCH_ONLY", "unary,bidi,broker,discovery,tls,stack"),
            go,
        })
    }

    pub(crate) fn runs(&self, workload: &str) -> bool {
        self.only.iter().any(|w| w == workload)
    }

    /// Our stack, then the go-micro versions asked for.
    pub(crate) fn stacks(&self) -> Vec<Stack> {
        let mut v = vec![Stack::Micro];
        v.extend(self.go.iter().copied());
        v
    }
}

/// Where every program is, and the shared etcd.
pub(crate) struct Env {
    pub(crate) settings: Settings,
    /// This binary: the Rust-side roles.
    pub(crate) exe: PathBuf,
    pub(crate) helloworld: PathBuf,
    /// Our server built with the `tls` feature (the TLS workload's).
    pub(crate) helloworld_tls: PathBuf,
    pub(crate) go_dirs: BTreeMap<Stack, PathBuf>,
    /// etcd's `host:port`.
    pub(crate) etcd: String,
    pub(crate) logs: PathBuf,
    /// The TLS workload's CA and server certificate.
    pub(crate) tls: TlsFiles,
}

/// PEM files of a CA made for the run and of a server certificate it signed
/// (for 127.0.0.1), used by both stacks' TLS servers and clients.
pub(crate) struct TlsFiles {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    fn new(dir: &std::path::Path) -> Res<TlsFiles> {
        let ca = micro_tls::testing::TestCa::new("bench");
        let (cert, key) = ca
            .issue("bench", &["127.0.0.1", "localhost"])
            .write(dir, "server")?;
        Ok(TlsFiles {
            ca: ca.write(dir, "ca")?,
            cert,
            key,
        })
    }

    /// The Go peers' flags: the CA to verify with, the server's certificate.
    pub(crate) fn go_args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls-ca".into(),
            p(&self.ca),
            "--tls-cert".into(),
            p(&self.cert),
            "--tls-key".into(),
            p(&self.key),
        ]
    }
}

impl Env {
    /// A command for a Go program (and subcommand) with the etcd flags set.
    pub(crate) fn go_cmd(&self, s: Stack, program: &str, sub: Option<&str>) -> Res<Command> {
        let dir = self.go_dirs.get(&s).ok_or("no go-micro peers")?;
        let mut cmd = Command::new(dir.join(program));
        cmd.args(sub);
        cmd.args(["--registry", "etcd", "--registry_address", &self.etcd]);
        Ok(cmd)
    }

    /// A command for a Rust role of this binary, configured for etcd.
    pub(crate) fn rust_cmd(&self, role: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(role)
            .env("MICRO_REGISTRY", "etcd")
            .env("MICRO_REGISTRY_ADDRESS", &self.etcd)
            .env("MICRO_BROKER_ADDRESS", "127.0.0.1:0");
        cmd
    }
}

fn helloworld_binary(exe: &std::path::Path) -> Res<PathBuf> {
    if let Some(p) = std::env::var_os("MICRO_BENCH_HELLOWORLD") {
        return Ok(PathBuf::from(p));
    }
    // target/release/deps/compare-<hash> -> target/dist/helloworld (the profile
    // scripts/bench.sh builds), else target/release/helloworld.
    let release = exe.parent().and_then(|deps| deps.parent());
    let candidates = [
        release
            .and_then(|r| r.parent())
            .map(|t| t.join("dist").join("helloworld")),
        release.map(|r| r.join("helloworld")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .ok_or_else(|| {
            "the helloworld example is not built: run `bash scripts/bench.sh`, or \
             `cargo build --profile dist -p examples --features etcd,consul --bin helloworld` first (or set \
             MICRO_BENCH_HELLOWORLD)"
                .into()
        })
}

/// `MICRO_GO_PEERS_V5` / `_V4`, else `scripts/build-go-peers.sh`.
fn go_dirs(stacks: &[Stack]) -> Res<BTreeMap<Stack, PathBuf>> {
    let mut dirs = BTreeMap::new();
    let mut missing = Vec::new();
    for &s in stacks {
        let v = s.go().ok_or("not a Go stack")?;
        match std::env::var_os(format!("MICRO_GO_PEERS_{}", v.to_uppercase())) {
            Some(d) => {
                dirs.insert(s, PathBuf::from(d));
            }
            None => missing.push((s, v)),
        }
    }
    if !missing.is_empty() {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/build-go-peers.sh"))
            .args(missing.iter().map(|(_, v)| *v))
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err("scripts/build-go-peers.sh failed".into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        for (s, v) in missing {
            let dir = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{v}=")))
                .ok_or_else(|| format!("build-go-peers.sh printed no {v}= line"))?;
            dirs.insert(s, PathBuf::from(dir));
        }
    }
    for (s, d) in &dirs {
        if !d.join("bench").exists() {
            return Err(format!(
                "{} has no bench program: rebuild the peers with scripts/build-go-peers.sh",
                s.label()
            )
            .into());
        }
    }
    Ok(dirs)
}

/// Links (or copies) the Go programs the run uses into `into`: a concurrent
/// `build-go-peers.sh` after a source change removes the cached directory.
fn pin_programs(
    dirs: BTreeMap<Stack, PathBuf>,
    into: &std::path::Path,
) -> Res<BTreeMap<Stack, PathBuf>> {
    let mut pinned = BTreeMap::new();
    for (s, dir) in dirs {
        let to = into.join(format!("go-{}", s.slug()));
        std::fs::create_dir_all(&to)?;
        for program in ["server", "bench"] {
            let (from, dest) = (dir.join(program), to.join(program));
            if std::fs::hard_link(&from, &dest).is_err() {
                std::fs::copy(&from, &dest)
                    .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
            }
        }
        pinned.insert(s, to);
    }
    Ok(pinned)
}

/// A running server under test.
pub(crate) struct Server {
    pub(crate) child: Child,
    /// The service name to call (or, for hyper, its address).
    pub(crate) target: String,
}

/// Starts the server of stack `s`, serving TLS when `tls` (ours from
/// `MICRO_TLS_CERT`/`_KEY`, go-micro's with a `Secure` transport and TLS config).
pub(crate) async fn start_server(env: &Env, s: Stack, tls: bool) -> Res<Server> {
    let name = format!("bench.{}{}", s.slug(), if tls { "-tls" } else { "" });
    let mut cmd = match s {
        Stack::Micro => {
            let mut cmd = micro_cmd(
                env,
                if tls {
                    &env.helloworld_tls
                } else {
                    &env.helloworld
                },
                &name,
            );
            if tls {
                cmd.env("MICRO_TLS_CERT", &env.tls.cert)
                    .env("MICRO_TLS_KEY", &env.tls.key);
            }
            cmd
        }
        Stack::GoV5 | Stack::GoV4 => {
            let mut cmd = env.go_cmd(s, "server", None)?;
            cmd.args(["--name", &name, "--server_address", "127.0.0.1:0"]);
            if tls {
                cmd.args(env.tls.go_args());
            }
            cmd
        }
        Stack::Hyper => {
            let mut cmd = Command::new(&env.exe);
            cmd.arg("hyper-echo");
            cmd
        }
    };
    let label = format!("server-{}{}", s.slug(), if tls { "-tls" } else { "" });
    let mut child = Child::spawn(&label, &env.logs, &mut cmd)?;
    let ready = child.ready(Duration::from_secs(30)).await?;
    let target = match s {
        Stack::Hyper => ready,
        _ => name,
    };
    Ok(Server { child, target })
}

/// Our helloworld server named `name`, on etcd and loopback.
fn micro_cmd(env: &Env, program: &std::path::Path, name: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("MICRO_REGISTRY", "etcd")
        .env("MICRO_REGISTRY_ADDRESS", &env.etcd)
        .env("MICRO_SERVER_NAME", name)
        .env("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
        .env("MICRO_BROKER_ADDRESS", "127.0.0.1:0");
    cmd
}

/// Starts our (plain) server as `bench.<slug>`, its command adjusted by `adjust`.
pub(crate) async fn start_micro_server(
    env: &Env,
    slug: &str,
    adjust: impl FnOnce(&mut Command),
) -> Res<Server> {
    let name = format!("bench.{slug}");
    let mut cmd = micro_cmd(env, &env.helloworld, &name);
    adjust(&mut cmd);
    let mut child = Child::spawn(&format!("server-{slug}"), &env.logs, &mut cmd)?;
    child.ready(Duration::from_secs(30)).await?;
    Ok(Server {
        child,
        target: name,
    })
}

pub(crate) async fn run() -> Res<()> {
    let settings = Settings::from_env()?;
    let exe = std::env::current_exe()?;
    let helloworld = helloworld_binary(&exe)?;
    let helloworld_tls = std::env::var_os("MICRO_BENCH_HELLOWORLD_TLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| helloworld.with_file_name("helloworld-tls"));
    let logs = tempfile::Builder::new().prefix("micro-bench-").tempdir()?;
    let go_dirs = pin_programs(go_dirs(&settings.go)?, logs.path())?;
    eprintln!(
        "[bench] {} s per run, {} round(s); child logs in {}",
        settings.secs,
        settings.rounds,
        logs.path().display()
    );
    let etcd_server = Etcd::start().await?;
    let etcd = etcd_server
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let env = Env {
        settings,
        exe,
        helloworld,
        helloworld_tls,
        go_dirs,
        etcd,
        tls: TlsFiles::new(logs.path())?,
        logs: logs.path().to_owned(),
    };
    let mut results = Results {
        rounds: env.settings.rounds,
        ..Results::default()
    };

    // Servers: ours, the go-micro ones, and the hyper echo, all idle until measured.
    let mut servers = BTreeMap::new();
    let mut all = env.settings.stacks();
    all.push(Stack::Hyper);
    for s in all {
        servers.insert(s, start_server(&env, s, false).await?);
    }
    let mut tls_servers = if env.settings.runs("tls") {
        crate::tls::servers(&env).await?
    } else {
        BTreeMap::new()
    };
    let mut stack_servers = if env.settings.runs("stack") {
        crate::stack::servers(&env).await?
    } else {
        BTreeMap::new()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (s, srv) in &servers {
        results.rss.entry(*s).or_default().idle = srv.child.pid().and_then(rss_kib);
    }

    let outcome =
        workloads::run_all(&env, &servers, &tls_servers, &stack_servers, &mut results).await;
    for (s, srv) in &servers {
        results.rss.entry(*s).or_default().after = srv.child.pid().and_then(rss_kib);
    }
    for (_, srv) in std::mem::take(&mut servers)
        .into_iter()
        .chain(std::mem::take(&mut tls_servers))
        .chain(
            std::mem::take(&mut stack_servers)
                .into_values()
                .map(|srv| (Stack::Micro, srv)),
        )
    {
        srv.child.stop(Duration::from_secs(10)).await;
    }
    drop(etcd_server);
    outcome?;

    print!("{}", results.tables());
    println!("\n== machine ==\n{}", machine());
    println!();
    print!("{}", results.targets());
    drop(logs);
    Ok(())
}

/// nproc, CPU model and memory.
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| format!("{:.1} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "nproc {cpus}, CPU {model}, memory {mem}, load average at the end {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
