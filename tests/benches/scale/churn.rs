//! Churn: while 1 % of the nodes per second deregister and come back, how long a
//! change takes to reach a selector, and what a watch of one service and a
//! watch of everything receive.
//!
//! The delay: the bench's own client registers (deregisters) a node of the
//! service `scale.probe` and a selector on another client is polled until it
//! returns (stops returning) it, from just before the call, as
//! `tests/benches/etcd_discovery.rs` does. The traffic: each watch runs on a
//! client of its own whose connection goes through a byte-counting TCP proxy,
//! so bytes are what arrives on the wire (etcd: gRPC frames; Consul: HTTP).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro_registry::{RegisterOptions, WatchOptions};
use micro_selector::{RegistrySelector, SelectOptions, Selector};
use micro_tests::harness::scale;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::backend::Backend;
use crate::fleet::Fleet;
use crate::{Res, quantile};

/// Longest wait for one change to reach the selector.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

/// Churn figures of one (registry, N).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Churn {
    /// Node changes (down plus up) the fleet made per second.
    pub(crate) changes_per_sec: f64,
    /// Change to selector, p50 and p99.
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Changes measured.
    pub(crate) rounds: usize,
    /// Watch of one service: events and bytes per second.
    pub(crate) one_events: f64,
    pub(crate) one_bytes: f64,
    /// Watch of everything: events and bytes per second.
    pub(crate) all_events: f64,
    pub(crate) all_bytes: f64,
}

pub(crate) async fn measure(backend: &Backend, fleet: &mut Fleet, window: Duration) -> Res<Churn> {
    let target = backend.first_host_port();
    let (proxy_one, proxy_all) = (Proxy::start(&target).await?, Proxy::start(&target).await?);
    let reg_one = backend.client(Some(&proxy_one.addr))?;
    let reg_all = backend.client(Some(&proxy_all.addr))?;
    let w_one = reg_one
        .watch(&WatchOptions::service(scale::service_name(0)))
        .await?;
    let w_all = reg_all.watch(&WatchOptions::all()).await?;

    let server = backend.client(None)?;
    let selector = RegistrySelector::new(backend.client(None)?);
    let ttl = RegisterOptions::ttl(scale::TTL);
    let anchor = scale::record_of("scale.probe", "probe-anchor", 0, "bench");
    server.register(&anchor, &ttl).await?;
    selector
        .select("scale.probe", &SelectOptions::new())
        .await?;
    // The cache's watch starts after the lookup (up to 100 ms of jitter).
    tokio::time::sleep(Duration::from_millis(500)).await;

    fleet.signal(Signal::SIGUSR1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let churn_started = Instant::now();
    // First half: the watches' traffic, with nothing but the fleet's churn.
    let half = window / 2;
    let counted = Instant::now() + half;
    let events_one = Arc::new(AtomicU64::new(0));
    let events_all = Arc::new(AtomicU64::new(0));
    let (b_one, b_all) = (proxy_one.bytes(), proxy_all.bytes());
    let mut counters = JoinSet::new();
    for (mut w, n) in [(w_one, events_one.clone()), (w_all, events_all.clone())] {
        counters.spawn(async move {
            let until = tokio::time::Instant::from_std(counted);
            while let Ok(Ok(_)) = tokio::time::timeout_at(until, w.next()).await {
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    while counters.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let bytes_one = (proxy_one.bytes() - b_one) as f64 / secs;
    let bytes_all = (proxy_all.bytes() - b_all) as f64 / secs;
    drop((proxy_one, proxy_all, reg_one, reg_all));

    // Second half: changes of the probe service, timed to the selector.
    let until = Instant::now() + half;
    let mut delays = Vec::new();
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        let id = format!("probe-{round}");
        let svc = scale::record_of("scale.probe", &id, round, "bench");
        let t = Instant::now();
        server.register(&svc, &ttl).await?;
        wait_for(&selector, &id, true).await?;
        delays.push(t.elapsed());
        let t = Instant::now();
        server.deregister(&svc).await?;
        wait_for(&selector, &id, false).await?;
        delays.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let churn_secs = churn_started.elapsed().as_secs_f64();
    fleet.signal(Signal::SIGUSR2);
    let churned: f64 = fleet
        .lines("CHURN", Duration::from_secs(10))
        .await?
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["down"].as_f64().unwrap_or(0.0) + v["up"].as_f64().unwrap_or(0.0))
        .sum();
    server.deregister(&anchor).await?;
    selector.stop().await;
    let rounds = delays.len();
    Ok(Churn {
        changes_per_sec: churned / (churn_secs + 1.0),
        p50: quantile(&mut delays, 0.5),
        p99: quantile(&mut delays, 0.99),
        rounds,
        one_events: events_one.load(Ordering::Relaxed) as f64 / secs,
        one_bytes: bytes_one,
        all_events: events_all.load(Ordering::Relaxed) as f64 / secs,
        all_bytes: bytes_all,
    })
}

async fn wait_for(selector: &RegistrySelector, id: &str, present: bool) -> Res<()> {
    let deadline = Instant::now() + ROUND_LIMIT;
    loop {
        let seen = match selector.select("scale.probe", &SelectOptions::new()).await {
            Ok(next) => next.snapshot().nodes().any(|(_, n)| n.id == id),
            Err(_) => false,
        };
        if seen == present {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("probe {id} present={present} not seen within {ROUND_LIMIT:?}").into(),
            );
        }
        tokio::task::yield_now().await;
    }
}

/// A TCP proxy on a free loopback port that counts the bytes going from the
/// server to the client. Its tasks end when it is dropped.
struct Proxy {
    addr: String,
    down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: &str) -> Res<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let down = Arc::new(AtomicU64::new(0));
        let (target, counter) = (target.to_owned(), down.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (target, counter) = (target.clone(), counter.clone());
                conns.spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        pipe(client, server, counter).await;
                    }
                });
            }
        });
        Ok(Proxy { addr, down, task })
    }

    fn bytes(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, down: Arc<AtomicU64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let back = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            down.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        _ = up => {}
        _ = back => {}
    }
}
