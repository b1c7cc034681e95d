//! The run: every registry and N in turn, go-micro next to ours, then the report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use micro_tests::harness::gomicro::{GoVersion, peers_dir};

use crate::backend::{Backend, Kind, SETTLE};
use crate::churn::{self, Churn};
use crate::client::{self, ClientCost};
use crate::fanout::{self, Fanout};
use crate::fleet::{Bins, Fleet, Stack};
use crate::procs::Child;
use crate::report;
use crate::steady::{self, Steady, Timers};
use crate::{Res, env_num, env_or};

/// Every N the bench knows; `SCALE_MAX` cuts the list.
const NS: [usize; 4] = [10, 100, 1_000, 10_000];

/// What go-micro's registry cache holds, as its bench peer measured.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GoCache {
    pub(crate) bytes_per_node: f64,
    pub(crate) cold_us: f64,
    pub(crate) warm_us: f64,
}

/// The figures of one stack on one registry with N nodes.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    pub(crate) stack: Stack,
    pub(crate) kind: Kind,
    pub(crate) n: usize,
    pub(crate) steady: Steady,
    pub(crate) client: Option<ClientCost>,
    pub(crate) churn: Option<Churn>,
    pub(crate) go_cache: Option<GoCache>,
    /// The registrants' `STATS` lines (etcd: keepalive streams, leases).
    pub(crate) stats: Vec<String>,
}

/// Everything one run measured.
pub(crate) struct Results {
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) cells: Vec<Cell>,
    /// Measurements that failed: stack, registry, N, the error.
    pub(crate) failed: Vec<(Stack, Kind, usize, String)>,
    pub(crate) pick_ns: f64,
    pub(crate) fanout: Vec<Fanout>,
    pub(crate) out: PathBuf,
    pub(crate) elapsed: Duration,
}

pub(crate) async fn run() -> Res<()> {
    let started = Instant::now();
    let max: usize = env_num("SCALE_MAX", 1_000)?;
    let ns: Vec<usize> = NS.into_iter().filter(|&n| n <= max).collect();
    let kinds: Vec<Kind> = env_or("SCALE_BACKENDS", "etcd-1,etcd-3,consul")
        .split(',')
        .map(Kind::parse)
        .collect::<Res<_>>()?;
    let procs: usize = env_num("SCALE_PROCS", 4)?;
    let window = Duration::from_secs_f64(env_num("SCALE_WINDOW_SECS", 9.0)?);
    let churn_window = Duration::from_secs_f64(env_num("SCALE_CHURN_SECS", 10.0)?);
    let go = env_or("SCALE_GO", "v5") != "none";
    let out = PathBuf::from(env_or("SCALE_OUT", "target/scale"));
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let bins = Bins {
        registrant: PathBuf::from(env_or(
            "SCALE_REGISTRANT",
            env!("CARGO_BIN_EXE_scale-registrant"),
        )),
        go_bench: go.then(|| peers_dir(GoVersion::V5).join("bench")),
        logs,
    };
    let settings = vec![
        ("N".to_owned(), format!("{ns:?}")),
        (
            "registries".to_owned(),
            kinds
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("registrant processes".to_owned(), procs.to_string()),
        ("steady window".to_owned(), format!("{window:?}")),
        ("churn window".to_owned(), format!("{churn_window:?}")),
        (
            "go-micro".to_owned(),
            if go {
                "v5.30.0".into()
            } else {
                "skipped".into()
            },
        ),
    ];

    eprintln!("scale: pick in a service of 1000 nodes");
    let pick_ns = client::pick_ns(1_000, 200_000).await?;
    let mut cells = Vec::new();
    let mut failed = Vec::new();
    for &kind in &kinds {
        for &n in &ns {
            eprintln!(
                "scale: micro on {} with {n} nodes ({:.0} s so far)",
                kind.label(),
                started.elapsed().as_secs_f64()
            );
            // A failed measurement is reported and left out; the run goes on.
            match micro_cell(&bins, kind, n, procs, window, churn_window).await {
                Ok(c) => cells.push(c),
                Err(e) => {
                    eprintln!(
                        "scale: micro on {} with {n} nodes failed: {e}",
                        kind.label()
                    );
                    failed.push((Stack::Micro, kind, n, e.to_string()));
                }
            }
            if go && kind == Kind::Etcd1 {
                eprintln!("scale: go-micro v5 on {} with {n} nodes", kind.label());
                match go_cell(&bins, kind, n, procs, window).await {
                    Ok(c) => cells.push(c),
                    Err(e) => {
                        eprintln!(
                            "scale: go-micro on {} with {n} nodes failed: {e}",
                            kind.label()
                        );
                        failed.push((Stack::GoMicro, kind, n, e.to_string()));
                    }
                }
            }
        }
    }
    eprintln!("scale: HTTP broker fan-out");
    let backend = Backend::start(Kind::Etcd1, 1).await?;
    tokio::time::sleep(SETTLE).await;
    let mut fan = Vec::new();
    for subs in [1, 10, 100] {
        fan.push(fanout::measure(&backend, subs, 0, 3.0).await?);
    }
    fan.push(fanout::measure(&backend, 1, max, 3.0).await?);
    backend.stop().await;

    let results = Results {
        settings,
        cells,
        failed,
        pick_ns,
        fanout: fan,
        out,
        elapsed: started.elapsed(),
    };
    report::print(&results)
}

async fn micro_cell(
    bins: &Bins,
    kind: Kind,
    n: usize,
    procs: usize,
    window: Duration,
    churn_window: Duration,
) -> Res<Cell> {
    let backend = Backend::start(kind, n).await?;
    tokio::time::sleep(SETTLE).await;
    let timers = Timers::of(kind, n);
    let mut fleet = Fleet::start(Stack::Micro, bins, &backend, n, procs, timers).await?;
    let steady = steady::measure(&backend, &fleet, window, timers).await?;
    let client = client::measure(&backend, n).await?;
    let churn = churn::measure(&backend, &mut fleet, churn_window).await?;
    let stats = fleet.stop().await;
    backend.stop().await;
    Ok(Cell {
        stack: Stack::Micro,
        kind,
        n,
        steady,
        client: Some(client),
        churn: Some(churn),
        go_cache: None,
        stats: stats
            .into_iter()
            .filter_map(|l| l.strip_prefix("STATS ").map(str::to_owned))
            .collect(),
    })
}

async fn go_cell(bins: &Bins, kind: Kind, n: usize, procs: usize, window: Duration) -> Res<Cell> {
    let backend = Backend::start(kind, n).await?;
    tokio::time::sleep(SETTLE).await;
    let timers = Timers::of(kind, n);
    let fleet = Fleet::start(Stack::GoMicro, bins, &backend, n, procs, timers).await?;
    let steady = steady::measure(&backend, &fleet, window, timers).await?;
    let go_cache = go_cache(bins, &backend, n).await?;
    fleet.stop().await;
    backend.stop().await;
    Ok(Cell {
        stack: Stack::GoMicro,
        kind,
        n,
        steady,
        client: None,
        churn: None,
        go_cache: Some(go_cache),
        stats: Vec::new(),
    })
}

/// Runs the go-micro peer's `scalecache` over every service of the mesh.
async fn go_cache(bins: &Bins, backend: &Backend, n: usize) -> Res<GoCache> {
    let bin = bins.go_bench.as_ref().ok_or("no go-micro bench peer")?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("scalecache")
        .arg("--registry")
        .arg("etcd")
        .arg("--registry_address")
        .arg(backend.host_ports())
        .arg("--services")
        .arg(
            n.div_ceil(micro_tests::harness::scale::NODES_PER_SERVICE)
                .to_string(),
        );
    let mut child = Child::spawn(&format!("go-scalecache-{n}"), &bins.logs, &mut cmd)?;
    let v = child.json(Duration::from_secs(120)).await?;
    child.stop(Duration::from_secs(5)).await;
    Ok(GoCache {
        bytes_per_node: v["bytes_per_node"].as_f64().unwrap_or(0.0),
        cold_us: v["cold_p50_us"].as_f64().unwrap_or(0.0),
        warm_us: v["warm_p50_us"].as_f64().unwrap_or(0.0),
    })
}
