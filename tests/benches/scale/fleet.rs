//! The simulated mesh: a few registrant processes (ours or go-micro's) that
//! together hold N nodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::Res;
use crate::backend::Backend;
use crate::procs::{Child, cpu_secs, rss_kib};
use crate::steady::Timers;

/// Which implementation holds the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stack {
    Micro,
    GoMicro,
}

impl Stack {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Stack::Micro => "micro",
            Stack::GoMicro => "go-micro v5",
        }
    }
}

/// The registrant processes of one measurement.
pub(crate) struct Fleet {
    children: Vec<Child>,
}

/// Where the binaries are.
pub(crate) struct Bins {
    pub(crate) registrant: PathBuf,
    pub(crate) go_bench: Option<PathBuf>,
    pub(crate) logs: PathBuf,
}

impl Fleet {
    /// Starts `procs` processes of `stack` holding `n` nodes in `backend` and
    /// waits until each has registered its nodes once.
    pub(crate) async fn start(
        stack: Stack,
        bins: &Bins,
        backend: &Backend,
        n: usize,
        procs: usize,
        timers: Timers,
    ) -> Res<Fleet> {
        let procs = procs.clamp(1, n);
        let mut children = Vec::new();
        let mut start = 0;
        for p in 0..procs {
            let count = n / procs + usize::from(p < n % procs);
            let name = format!(
                "{}-{}-{n}-{p}",
                match stack {
                    Stack::Micro => "registrant",
                    Stack::GoMicro => "go-registrant",
                },
                backend.kind().label()
            );
            let mut cmd = match stack {
                Stack::Micro => rust_cmd(&bins.registrant, backend, start, count, timers),
                Stack::GoMicro => {
                    let bin = bins.go_bench.as_ref().ok_or("no go-micro bench peer")?;
                    go_cmd(bin, backend, start, count, timers)
                }
            };
            children.push(Child::spawn(&name, &bins.logs, &mut cmd)?);
            start += count;
        }
        // Registering takes about a millisecond per node per process.
        let limit = Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
        for c in &mut children {
            let info = c.ready(limit).await?;
            let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
            if v["failed"].as_u64().unwrap_or(0) > 0 {
                eprintln!("scale: some first registrations failed: {info}");
            }
        }
        Ok(Fleet { children })
    }

    /// Sends `sig` to every process.
    pub(crate) fn signal(&self, sig: Signal) {
        for c in &self.children {
            if let Some(pid) = c.pid() {
                let _ = kill(Pid::from_raw(pid as i32), sig);
            }
        }
    }

    /// The next line starting with `tag` from every process (the rest of the
    /// line), waiting at most `limit` for each.
    pub(crate) async fn lines(&mut self, tag: &str, limit: Duration) -> Res<Vec<String>> {
        let mut out = Vec::new();
        for c in &mut self.children {
            loop {
                let l = c.line(limit).await?;
                if let Some(rest) = l.strip_prefix(tag) {
                    out.push(rest.trim().to_owned());
                    break;
                }
            }
        }
        Ok(out)
    }

    /// CPU seconds used so far by all processes.
    pub(crate) fn cpu(&self) -> f64 {
        self.children
            .iter()
            .filter_map(|c| c.pid().and_then(cpu_secs))
            .sum()
    }

    /// Resident memory of all processes, KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.children
            .iter()
            .filter_map(|c| c.pid().and_then(rss_kib))
            .sum()
    }

    /// Stops every process; returns their last lines (`STATS ...`).
    pub(crate) async fn stop(self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.children {
            out.extend(c.stop(Duration::from_secs(5)).await);
        }
        out
    }
}

fn rust_cmd(bin: &Path, backend: &Backend, start: usize, count: usize, t: Timers) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--registry")
        .arg(if backend.kind().is_etcd() {
            "etcd"
        } else {
            "consul"
        })
        .arg("--address")
        .arg(backend.registrant_address())
        .arg("--start")
        .arg(start.to_string())
        .arg("--count")
        .arg(count.to_string())
        .arg("--ttl-ms")
        .arg(t.ttl().as_millis().to_string())
        .arg("--interval-ms")
        .arg(t.interval().as_millis().to_string());
    cmd
}

fn go_cmd(bin: &Path, backend: &Backend, start: usize, count: usize, t: Timers) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("scale")
        .arg("--registry")
        .arg(if backend.kind().is_etcd() {
            "etcd"
        } else {
            "consul"
        })
        .arg("--registry_address")
        .arg(backend.registrant_address().replace("http://", ""))
        .arg("--start")
        .arg(start.to_string())
        .arg("--count")
        .arg(count.to_string())
        .arg("--register_ttl")
        .arg(t.ttl().as_secs().to_string())
        .arg("--register_interval")
        .arg(t.interval().as_secs().to_string());
    cmd
}
