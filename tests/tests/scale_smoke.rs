//! The short form of the scale benchmark (`scripts/scale.sh`, `docs/scale.md`)
//! in the test suite: the same harness (registrant processes, etcd's counters,
//! the client cost) at N = 10 and N = 100 on one real etcd member, and at N =
//! 100 on Consul (a server agent and a client agent joined to it, where the
//! registrants register), checked for sane, non-zero figures. Nothing here is
//! timed against a goal.

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[allow(dead_code)]
#[path = "../benches/scale/backend.rs"]
mod backend;
#[allow(dead_code)]
#[path = "../benches/scale/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../benches/scale/fleet.rs"]
mod fleet;
#[allow(dead_code)]
#[path = "../benches/compare/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../benches/scale/steady.rs"]
mod steady;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backend::{Backend, Kind, SETTLE};
use fleet::{Bins, Fleet, Stack};
use micro_tests::harness::etcd::init_tracing;
use steady::Timers;

/// Counts the heap, as the bench does (client cost).
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

type Error = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, Error>;

/// The heap counter is the process's: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn quantile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// The registrant binary, no go-micro peer, logs in `logs`.
fn bins(logs: &Path) -> Bins {
    Bins {
        registrant: PathBuf::from(env!("CARGO_BIN_EXE_scale-registrant")),
        go_bench: None,
        logs: logs.to_path_buf(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_harness_gives_sane_figures_at_10_and_100_nodes() {
    let _one = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let logs = tempfile::tempdir().expect("temp dir");
    let bins = bins(logs.path());
    for n in [10, 100] {
        let backend = Backend::start(Kind::Etcd1, n).await.expect("etcd");
        tokio::time::sleep(SETTLE).await;
        let timers = Timers::of(Kind::Etcd1, n);
        let fleet = Fleet::start(Stack::Micro, &bins, &backend, n, 2, timers)
            .await
            .expect("registrants");
        let s = steady::measure(&backend, &fleet, Duration::from_secs(4), timers)
            .await
            .expect("steady state");
        let d = s.delta;
        println!("N={n}: {s:?}");
        // Each registrant process keeps one lease for all its nodes, renewed about
        // every 3 s (2 per lease per minute at go-micro's timings; one or two
        // renewals fall in the window); nothing is written while nothing changes.
        let per_lease = s.per_node_min(d.keepalives, n) * n as f64 / 2.0;
        assert!(
            (0.5..5.0).contains(&per_lease),
            "N={n}: {per_lease} keepalives/lease/min"
        );
        assert_eq!(d.puts, 0.0, "N={n}: puts in steady state");
        assert_eq!(d.grants, 0.0, "N={n}: lease grants in steady state");
        assert!(s.server_rss_kib > 1024 && s.server_cpu_pct >= 0.0, "{s:?}");
        assert!(s.fleet_rss_kib > 0, "{s:?}");

        let c = client::measure(&backend, n).await.expect("client cost");
        println!("N={n}: {c:?}");
        assert_eq!(c.nodes, n, "every node in the cache");
        assert_eq!(c.services, n / 10);
        assert!(
            (100.0..100_000.0).contains(&c.bytes_per_node),
            "N={n}: {} B per cached node",
            c.bytes_per_node
        );
        assert!(c.one_service_bytes > 0.0 && !c.cold.is_zero() && !c.list.is_zero());

        let stats = fleet.stop().await;
        assert!(
            stats.iter().filter(|l| l.starts_with("STATS ")).count() == 2,
            "{stats:?}"
        );
        backend.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_layout_registers_through_client_agents() {
    let _one = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let logs = tempfile::tempdir().expect("temp dir");
    let bins = bins(logs.path());
    let n = 100;
    let backend = Backend::start(Kind::Consul, n).await.expect("consul");
    assert_eq!(
        backend.registrant_address().split(',').count(),
        1,
        "one client agent for 100 nodes"
    );
    assert_ne!(backend.registrant_address(), backend.address());
    assert_eq!(backend.pids().len(), 1, "the server agent");
    assert_eq!(backend.agent_pids().len(), 1, "one client agent");
    tokio::time::sleep(SETTLE).await;
    let timers = Timers::of(Kind::Consul, n);
    assert_eq!(timers, Timers::default(), "10x at N = 100");
    assert!(Timers::of(Kind::Consul, 10_000).scale < timers.scale);
    let fleet = Fleet::start(Stack::Micro, &bins, &backend, n, 2, timers)
        .await
        .expect("registrants");
    let s = steady::measure(&backend, &fleet, Duration::from_secs(4), timers)
        .await
        .expect("steady state");
    println!("consul N={n}: {s:?}");
    assert!(s.server_rss_kib > 1024 && s.agents_rss_kib > 1024, "{s:?}");
    // One TTL pass per node per interval: 2 per node per minute at go-micro's
    // timings, counted by the client agent that answered them.
    let per_node = s.per_node_min(s.delta.keepalives, n);
    assert!(
        (1.0..4.0).contains(&per_node),
        "{per_node} check updates per node per minute"
    );
    // What the registrants gave their client agent reached the server's catalog.
    let c = client::measure(&backend, n).await.expect("client cost");
    assert_eq!(c.nodes, n, "every node read from the server agent");
    fleet.stop().await;
    backend.stop().await;
}
