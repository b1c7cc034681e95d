//! `discovery --service S --rounds N`: how long after `register` (after
//! `deregister`) on one etcd connection a `RegistrySelector` on another returns
//! (stops returning) the node. The procedure of `tests/benches/etcd_discovery.rs`,
//! printing the same JSON as the Go `bench discovery`:
//! `{"rounds","up_p50_us","up_p99_us","down_p50_us","down_p99_us"}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry};
use micro_selector::{RegistrySelector, SelectOptions, Selector};
use micro_tests::harness::etcd::node_service;
use serde_json::json;

use crate::{Flags, Res, emit};

/// No single wait may take longer than this (the run fails instead of hanging).
const ROUND_LIMIT: Duration = Duration::from_secs(10);

fn etcd() -> Res<EtcdRegistry> {
    let endpoints =
        std::env::var("MICRO_REGISTRY_ADDRESS").map_err(|_| "MICRO_REGISTRY_ADDRESS is not set")?;
    Ok(EtcdRegistry::builder()
        .endpoints(endpoints.split(','))
        .build()?)
}

pub(crate) async fn run(flags: &Flags) -> Res<()> {
    let service = flags.str("service", "bench.discovery");
    let rounds: usize = flags.num("rounds", 100)?;
    let server = etcd()?;
    let client: Arc<dyn Registry> = Arc::new(etcd()?);
    let selector = RegistrySelector::new(client);
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));

    let anchor = node_service(&service, "latest", "anchor", "127.0.0.1:1");
    server.register(&anchor, &ttl).await?;
    selector.select(&service, &SelectOptions::new()).await?;
    // The cache watches the service after its first lookup; a probe rewritten
    // until the selector returns it proves the watch is live.
    let mut live = false;
    for attempt in 0..100u16 {
        let address = format!("127.0.0.1:{}", 1000 + attempt);
        let probe = node_service(&service, "latest", "probe", &address);
        server.register(&probe, &ttl).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = selector.select(&service, &SelectOptions::new()).await?;
        if next
            .snapshot()
            .nodes()
            .any(|(_, n)| n.id == "probe" && n.address == address)
        {
            server.deregister(&probe).await?;
            live = true;
            break;
        }
    }
    if !live {
        return Err("the selector's cache never saw the watch events".into());
    }

    let mut up = Vec::with_capacity(rounds);
    let mut down = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let id = format!("node-{round}");
        let svc = node_service(&service, "latest", &id, "127.0.0.1:2");
        let t = Instant::now();
        server.register(&svc, &ttl).await?;
        wait_for(&selector, &service, &id, true).await?;
        let d_up = t.elapsed();
        let t = Instant::now();
        server.deregister(&svc).await?;
        wait_for(&selector, &service, &id, false).await?;
        let d_down = t.elapsed();
        // Round 0 warms up and is not counted.
        if round > 0 {
            up.push(d_up);
            down.push(d_down);
        }
    }
    server.deregister(&anchor).await?;
    selector.stop().await;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (u50, u99) = percentiles(&mut up);
    let (d50, d99) = percentiles(&mut down);
    emit(&json!({
        "rounds": rounds,
        "up_p50_us": us(u50), "up_p99_us": us(u99),
        "down_p50_us": us(d50), "down_p99_us": us(d99),
    }));
    Ok(())
}

/// Polls the selector until `id` is (or is no longer) among the nodes.
async fn wait_for(selector: &RegistrySelector, service: &str, id: &str, present: bool) -> Res<()> {
    let deadline = Instant::now() + ROUND_LIMIT;
    loop {
        let seen = match selector.select(service, &SelectOptions::new()).await {
            Ok(next) => next.snapshot().nodes().any(|(_, n)| n.id == id),
            Err(_) => false,
        };
        if seen == present {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("node {id} present={present} not seen within {ROUND_LIMIT:?}").into(),
            );
        }
        tokio::task::yield_now().await;
    }
}

/// Nearest-rank p50 and p99.
fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    if v.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}
