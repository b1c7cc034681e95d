//! The scale benchmark: how micro's cost grows with the number of nodes in a mesh,
//! on real registry servers, next to go-micro v5. Run it through
//! `bash scripts/scale.sh`; method and results are in `docs/scale.md`.
//!
//! For each registry (etcd as one member and as three, Consul as a server agent
//! with a client agent per 1 000 nodes, each started fresh for every N) and each N (10, 100, 1 000 and 10 000 nodes in
//! N / 10 services, see `micro_tests::harness::scale`), separate
//! `scale-registrant` processes hold the nodes through the public registry API on
//! a server's schedule with timers ten times faster than go-micro's (interval
//! 3 s, TTL 9 s; per-minute figures are scaled back). The bench then measures:
//!
//! * **steady state** (module `steady`): the registry's own counters (etcd's
//!   `/metrics`, Consul's agent metrics) and the server's CPU and RSS over a
//!   window;
//! * **client cost** (module `client`): heap per cached node (this binary counts
//!   its allocations), `get_service` cold and warm, `list_services`;
//! * **churn** (module `churn`): 1 % of the nodes per second deregister and come
//!   back while a selector's delay and the traffic of a watch on one service and
//!   on everything are measured.
//!
//! Once per run: a selector pick in a service of 1 000 nodes and the HTTP broker's
//! fan-out (module `fanout`). go-micro v5 holds the same nodes on a fresh
//! single-member etcd with its own registry (the bench peer's `scale` and
//! `scalecache` subcommands). The run ends with tables, plots (module `report`)
//! and `target ...` lines.
//!
//! Settings (environment): `SCALE_MAX` (largest N, default 1000; 10000 for the
//! full run), `SCALE_BACKENDS` (default `etcd-1,etcd-3,consul`), `SCALE_PROCS`
//! (registrant processes, default 4), `SCALE_WINDOW_SECS` (steady window, 9),
//! `SCALE_CHURN_SECS` (churn window, 10), `SCALE_GO` (`v5` or `none`),
//! `SCALE_OUT` (where tables, data and plots go, default `target/scale`),
//! `MICRO_GO_PEERS_V5` (the go-micro peers), `SCALE_REGISTRANT` (the
//! `scale-registrant` binary; default: next to this bench's `deps/`).

#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

mod backend;
mod churn;
mod client;
mod fanout;
mod fleet;
#[allow(dead_code)]
#[path = "../compare/procs.rs"]
mod procs;
mod report;
mod run;
mod steady;

use std::process::ExitCode;

/// Counts the heap of this process, so the bench can tell what a cache holds.
#[global_allocator]
pub(crate) static ALLOC: cap::Cap<std::alloc::System> =
    cap::Cap::new(std::alloc::System, usize::MAX);

/// Errors of the bench; they end the run with a message.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// The bench's result type.
pub(crate) type Res<T> = Result<T, Error>;

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: {e}");
            ExitCode::from(1)
        }
    }
}

/// An environment setting, or `default`.
pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A numeric environment setting, or `default`.
pub(crate) fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Res<T> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name}: {v:?} is not a number").into()),
    }
}

/// The p-quantile (nearest rank) of `v`, in the unit of `f`; 0 when empty.
pub(crate) fn quantile(v: &mut [std::time::Duration], p: f64) -> std::time::Duration {
    if v.is_empty() {
        return std::time::Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}
