//! One process of the scale benchmark's simulated mesh: holds many registrations
//! (nodes `start .. start + count` of [`micro_tests::harness::scale`]) in etcd or
//! Consul through one registry client and the public `Registry` API, each renewed
//! on its own timer as a server does.
//!
//! `micro`'s re-registration loop is private to its server, so this drives
//! `Registry::register` with the same options on the same schedule: a first
//! registration, then one every interval (missed ticks delayed), each with up to
//! three attempts and go-micro's backoff (100 ms, 600 ms) between them, a
//! registration TTL, and no deregistration while the process runs. Each node's
//! timer starts at a random point of the interval, as servers started at
//! different times do.
//!
//! With Consul, each address is an agent of its own (a host of the mesh, see
//! the bench's layout) and node `i` registers on agent `i mod k`; with etcd the
//! addresses are the cluster's members, used by one client.
//!
//! Prints `READY {"nodes":M,"failed":F}` once every node had its first
//! registration. `SIGUSR1` starts churn: every second, the nodes taken down a
//! second earlier register again and `--churn` (a fraction, default 0.01) of the
//! process's nodes deregister; `SIGUSR2` stops it (the nodes down come back) and
//! prints `CHURN {"down":D,"up":U}`. `SIGTERM` or `SIGINT` prints
//! `STATS {...}` (the etcd registry's counters) and exits at once, without
//! deregistering: the bench throws the registry server away.
//!
//! ```text
//! scale-registrant --registry etcd|consul --address A[,B...] --start I --count M
//!     [--ttl-ms 9000] [--interval-ms 3000] [--churn 0.01]
//! ```

#![allow(clippy::print_stdout)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use micro::client::backoff;
use micro_consul::ConsulOptions;
use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::scale;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

/// Registrations in flight at once while the process starts.
const START_CONCURRENCY: usize = 64;
/// Attempts per registration, as the server makes.
const ATTEMPTS: u32 = 3;

struct Args {
    registry: String,
    address: String,
    start: usize,
    count: usize,
    ttl: Duration,
    interval: Duration,
    churn: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        registry: "etcd".into(),
        address: String::new(),
        start: 0,
        count: 0,
        ttl: scale::TTL,
        interval: scale::INTERVAL,
        churn: 0.01,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--registry" => a.registry = v,
            "--address" => a.address = v,
            "--start" => a.start = num(&v)? as usize,
            "--count" => a.count = num(&v)? as usize,
            "--ttl-ms" => a.ttl = Duration::from_millis(num(&v)?),
            "--interval-ms" => a.interval = Duration::from_millis(num(&v)?),
            "--churn" => a.churn = v.parse().map_err(|e| format!("{flag}: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.address.is_empty() || a.count == 0 {
        return Err("--address and --count are required".into());
    }
    Ok(a)
}

/// One simulated server: its record and whether it is registered (the lock also
/// keeps its timer and the churn from overlapping).
struct Sim {
    svc: ServiceRecord,
    reg: Arc<dyn Registry>,
    up: Mutex<bool>,
}

/// `register` with the server's retries; true when it succeeded.
async fn register(reg: &dyn Registry, svc: &ServiceRecord, opts: &RegisterOptions) -> bool {
    for attempt in 1..=ATTEMPTS {
        match reg.register(svc, opts).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::debug!(node = %svc.nodes[0].id, attempt, error = %e, "register failed");
                if attempt < ATTEMPTS {
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }
    false
}

fn line(tag: &str, v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{tag} {v}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("scale-registrant: {e}");
            return ExitCode::from(2);
        }
    };
    let mut etcd = None;
    let mut registries: Vec<Arc<dyn Registry>> = Vec::new();
    match args.registry.as_str() {
        "etcd" => match EtcdRegistry::builder()
            .endpoints(args.address.split(','))
            .build()
        {
            Ok(r) => {
                etcd = Some(r.clone());
                registries.push(Arc::new(r));
            }
            Err(e) => {
                tracing::error!(error = %e, "bad etcd options");
                return ExitCode::from(2);
            }
        },
        "consul" => {
            for a in args.address.split(',') {
                match ConsulOptions::new().address(a).build() {
                    Ok(r) => registries.push(Arc::new(r)),
                    Err(e) => {
                        tracing::error!(error = %e, "bad consul options");
                        return ExitCode::from(2);
                    }
                }
            }
        }
        other => {
            tracing::error!("unknown registry {other:?}");
            return ExitCode::from(2);
        }
    }
    let (Ok(mut term), Ok(mut int), Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::from(2);
    };
    let opts = RegisterOptions::ttl(args.ttl);
    let sims: Vec<Arc<Sim>> = (args.start..args.start + args.count)
        .map(|i| {
            let reg = registries[i % registries.len()].clone();
            Arc::new(Sim {
                svc: scale::record(i, reg.name()),
                reg,
                up: Mutex::new(true),
            })
        })
        .collect();

    // First registrations, a bounded number at a time.
    let failed = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(START_CONCURRENCY));
    let mut first = JoinSet::new();
    for s in &sims {
        let (s, opts, gate, failed) = (s.clone(), opts.clone(), gate.clone(), failed.clone());
        first.spawn(async move {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            if !register(s.reg.as_ref(), &s.svc, &opts).await {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while first.join_next().await.is_some() {}
    line(
        "READY",
        serde_json::json!({"nodes": args.count, "failed": failed.load(Ordering::Relaxed)}),
    );

    // Each node's re-registration timer, started at a random point of the interval.
    let mut timers = JoinSet::new();
    for s in &sims {
        let (s, opts, every) = (s.clone(), opts.clone(), args.interval);
        timers.spawn(async move {
            let offset = every.mul_f64(fastrand::f64());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let up = s.up.lock().await;
                if *up {
                    register(s.reg.as_ref(), &s.svc, &opts).await;
                }
            }
        });
    }

    let churning = Arc::new(AtomicBool::new(false));
    let (downs, ups) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let churn_task = {
        let (sims, opts, churning) = (sims.clone(), opts.clone(), churning.clone());
        let (downs, ups, rate) = (downs.clone(), ups.clone(), args.churn);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut down: Vec<Arc<Sim>> = Vec::new();
            let mut owed = 0.0_f64;
            loop {
                tick.tick().await;
                for s in down.drain(..) {
                    let mut up = s.up.lock().await;
                    if register(s.reg.as_ref(), &s.svc, &opts).await {
                        ups.fetch_add(1, Ordering::Relaxed);
                    }
                    *up = true;
                }
                if !churning.load(Ordering::Relaxed) {
                    owed = 0.0;
                    continue;
                }
                owed += rate * sims.len() as f64;
                let take = owed.floor() as usize;
                owed -= take as f64;
                for _ in 0..take.min(sims.len()) {
                    let s = sims[fastrand::usize(..sims.len())].clone();
                    let mut up = s.up.lock().await;
                    if !*up {
                        continue;
                    }
                    if s.reg.deregister(&s.svc).await.is_ok() {
                        downs.fetch_add(1, Ordering::Relaxed);
                    }
                    *up = false;
                    drop(up);
                    down.push(s);
                }
            }
        })
    };

    loop {
        tokio::select! {
            _ = usr1.recv() => churning.store(true, Ordering::Relaxed),
            _ = usr2.recv() => {
                churning.store(false, Ordering::Relaxed);
                line("CHURN", serde_json::json!({
                    "down": downs.load(Ordering::Relaxed),
                    "up": ups.load(Ordering::Relaxed),
                }));
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    churn_task.abort();
    timers.abort_all();
    let stats = etcd.map(|r| {
        let s = r.stats();
        serde_json::json!({
            "keepalive_streams": s.keepalive_streams,
            "keepalive_streams_opened": s.keepalive_streams_opened,
            "leases_granted": s.leases_granted,
        })
    });
    line("STATS", stats.unwrap_or(serde_json::Value::Null));
    ExitCode::SUCCESS
}
