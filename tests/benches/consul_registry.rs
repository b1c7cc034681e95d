//! Consul registry latency through blocking-query watches, on a real dev agent.
//!
//! Each round registers a new node of a service and measures how long until a
//! `micro_registry::Cache` (what selectors and the HTTP broker read through) serves
//! it, then deregisters it and measures how long until the cache stops serving it.
//! The cache's TTL is 10 minutes, so only its watch can make a change visible; an
//! anchor node keeps the service non-empty so the cache's empty-answer grace never
//! applies. A plain watcher on the same service measures the event latency too.
//!
//! Run: `cargo bench -p micro-tests --bench consul_registry`
//! (`MICRO_BENCH_ROUNDS` changes the number of rounds, default 50).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_registry::{Action, Cache, CacheOptions, Node, RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::consul::ConsulAgent;
use tokio::sync::mpsc;

const SERVICE: &str = "bench-greeter";

fn service(id: &str, port: u16) -> ServiceRecord {
    ServiceRecord {
        name: SERVICE.into(),
        version: "latest".into(),
        nodes: vec![Node::new(id, format!("127.0.0.1:{port}"))],
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1e3)
}

fn report(out: &mut impl Write, what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p99 = percentile(&samples, 99.0);
    let _ = writeln!(
        out,
        "{what:<34} n={:<3} p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(p99),
        ms(samples.last().copied().unwrap_or_default()),
    );
    p99
}

/// Polls the cache until `pred` holds (1 ms apart, at most 10 s); returns the time
/// since `t0`, or `None` on timeout.
async fn until(
    cache: &Cache,
    t0: Instant,
    pred: impl Fn(usize, bool) -> bool,
    id: &str,
) -> Option<Duration> {
    let deadline = t0 + Duration::from_secs(10);
    loop {
        let (count, present) = match cache.get(SERVICE).await {
            Ok(s) => (
                s.node_count(),
                s.to_vec()
                    .iter()
                    .any(|v| v.nodes.iter().any(|n| n.id == id)),
            ),
            Err(_) => (0, false),
        };
        if pred(count, present) {
            return Some(t0.elapsed());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("MICRO_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut out = std::io::stdout();
    let agent = ConsulAgent::start().await;
    let registry = Arc::new(
        micro_consul::ConsulOptions::new()
            .address(agent.address())
            .build()
            .expect("registry"),
    );
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    let anchor = service("bench-anchor", 1);
    registry
        .register(&anchor, &ttl)
        .await
        .expect("register anchor");

    let cache = Cache::with_options(
        registry.clone(),
        CacheOptions::default().ttl(Duration::from_secs(600)),
    );
    cache.get(SERVICE).await.expect("warm cache");
    // Let the cache's watch start (it sleeps up to 100 ms first).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut watcher = registry
        .watch(&micro_registry::WatchOptions::service(SERVICE))
        .await
        .expect("watch");
    let (tx, mut events) = mpsc::unbounded_channel();
    let consumer = tokio::spawn(async move {
        while let Ok(ev) = watcher.next().await {
            let id = ev
                .service
                .nodes
                .first()
                .map(|n| n.id.clone())
                .unwrap_or_default();
            if tx.send((ev.action, id, Instant::now())).is_err() {
                return;
            }
        }
    });
    let mut event_at = async |action: Action, id: &str, t0: Instant| -> Option<Duration> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (a, got, at) = tokio::time::timeout_at(deadline, events.recv())
                .await
                .ok()??;
            if a == action && got == id {
                return Some(at.saturating_duration_since(t0));
            }
        }
    };

    let (mut reg_cache, mut dereg_cache, mut reg_event, mut dereg_event, mut reg_call) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut misses = 0;
    for i in 0..rounds {
        let id = format!("bench-node-{i}");
        let svc = service(&id, 2 + i as u16);
        // Stay clear of the watches' 100 ms minimum spacing between queries.
        tokio::time::sleep(Duration::from_millis(150 + fastrand_ms())).await;
        let t0 = Instant::now();
        registry.register(&svc, &ttl).await.expect("register");
        reg_call.push(t0.elapsed());
        match until(&cache, t0, |_, present| present, &id).await {
            Some(d) => reg_cache.push(d),
            None => misses += 1,
        }
        match event_at(Action::Create, &id, t0).await {
            Some(d) => reg_event.push(d),
            None => misses += 1,
        }
        tokio::time::sleep(Duration::from_millis(150 + fastrand_ms())).await;
        let t1 = Instant::now();
        registry.deregister(&svc).await.expect("deregister");
        match until(&cache, t1, |count, present| !present && count > 0, &id).await {
            Some(d) => dereg_cache.push(d),
            None => misses += 1,
        }
        match event_at(Action::Delete, &id, t1).await {
            Some(d) => dereg_event.push(d),
            None => misses += 1,
        }
    }
    consumer.abort();
    let _ = consumer.await;
    cache.stop().await;
    let _ = registry.deregister(&anchor).await;

    let _ = writeln!(
        out,
        "consul registry bench: {rounds} rounds on a local dev agent, default watch options"
    );
    report(&mut out, "register call", reg_call);
    let reg_p99 = report(&mut out, "register -> watch event", reg_event);
    report(&mut out, "deregister -> watch event", dereg_event);
    let vis_p99 = report(&mut out, "register -> visible in cache", reg_cache);
    let gone_p99 = report(&mut out, "deregister -> gone from cache", dereg_cache);
    let _ = writeln!(out, "missed (10 s timeout): {misses}");
    let _ = writeln!(
        out,
        "target consul_register_event_p99 measured {} goal none",
        ms(reg_p99)
    );
    let _ = writeln!(
        out,
        "target consul_register_visible_p99 measured {} goal none",
        ms(vis_p99)
    );
    let _ = writeln!(
        out,
        "target consul_deregister_gone_p99 measured {} goal none",
        ms(gone_p99)
    );
}

/// 0 to 99 ms, so rounds do not fall into step with anything periodic.
fn fastrand_ms() -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            % 100,
    )
}
