//! Discovery latency over etcd: how long after a server starts `register` (and
//! after it starts a graceful `deregister`) a client's `RegistrySelector` returns
//! (stops returning) the node.
//!
//! One local etcd member started by the harness; the server and the client use
//! separate `EtcdRegistry` instances (separate connections), as two processes
//! would. The service keeps an anchor node so the selector's cache holds it and
//! watches it; each round registers a new node and then deregisters it. The
//! client side polls `select` in a tight loop with a yield between polls: that is
//! what a caller sees, and polling costs at most one scheduler turn of latency.
//! Times are from just before the server's call until the selector reflects the
//! change; they include the etcd round trips of the call itself.
//!
//! Prints p50/p99 per direction and a final `target` line (goal: p99 < 50 ms).

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry};
use micro_selector::{RegistrySelector, SelectOptions, Selector};
use micro_tests::harness::etcd::{Etcd, node_service};

const ROUNDS: usize = 100;
const SERVICE: &str = "bench.discovery";
/// No single round may take longer than this (the bench fails instead of hanging).
const ROUND_LIMIT: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let etcd = Etcd::start().await?;
    let server = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()?;
    let client: Arc<dyn Registry> = Arc::new(
        EtcdRegistry::builder()
            .endpoints(etcd.endpoints())
            .build()?,
    );
    let selector = RegistrySelector::new(client);
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));

    let anchor = node_service(SERVICE, "latest", "anchor", "127.0.0.1:1");
    server.register(&anchor, &ttl).await?;
    selector.select(SERVICE, &SelectOptions::new()).await?;

    // The cache's watch starts after its first lookup; until it has listed,
    // changes reach the cache only when its entry expires. A probe rewritten until
    // the selector returns it proves the watch is live.
    let mut live = false;
    for attempt in 0..100u16 {
        let address = format!("127.0.0.1:{}", 1000 + attempt);
        let probe = node_service(SERVICE, "latest", "probe", &address);
        server.register(&probe, &ttl).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = selector.select(SERVICE, &SelectOptions::new()).await?;
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

    // Round 0 warms up and is not counted.
    let mut up = Vec::with_capacity(ROUNDS);
    let mut down = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let id = format!("node-{round}");
        let svc = node_service(SERVICE, "latest", &id, "127.0.0.1:2");

        let t = Instant::now();
        server.register(&svc, &ttl).await?;
        wait_for(&selector, &id, true).await?;
        let d_up = t.elapsed();

        let t = Instant::now();
        server.deregister(&svc).await?;
        wait_for(&selector, &id, false).await?;
        let d_down = t.elapsed();

        if round > 0 {
            up.push(d_up);
            down.push(d_down);
        }
    }
    server.deregister(&anchor).await?;
    selector.stop().await;

    let (up50, up99) = percentiles(&mut up);
    let (down50, down99) = percentiles(&mut down);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(
        out,
        "etcd discovery over {ROUNDS} rounds (local single-member etcd)"
    )?;
    writeln!(
        out,
        "register   -> selector sees node:  p50 {:.2} ms  p99 {:.2} ms",
        ms(up50),
        ms(up99)
    )?;
    writeln!(
        out,
        "deregister -> selector drops node: p50 {:.2} ms  p99 {:.2} ms",
        ms(down50),
        ms(down99)
    )?;
    let worst = ms(up99.max(down99));
    let verdict = if worst < 50.0 { "met" } else { "missed" };
    writeln!(
        out,
        "target etcd_discovery_p99 measured {worst:.2}ms goal <50ms {verdict}"
    )?;
    Ok(())
}

/// Polls the selector until `id` is (or is no longer) among the nodes.
async fn wait_for(selector: &RegistrySelector, id: &str, present: bool) -> Result<(), String> {
    let deadline = Instant::now() + ROUND_LIMIT;
    loop {
        let seen = match selector.select(SERVICE, &SelectOptions::new()).await {
            Ok(mut next) => {
                let mut found = false;
                while let Ok(n) = next.next() {
                    if n.node().id == id {
                        found = true;
                        break;
                    }
                }
                found
            }
            Err(_) => false,
        };
        if seen == present {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "node {id} present={present} not seen within {ROUND_LIMIT:?}"
            ));
        }
        tokio::task::yield_now().await;
    }
}

fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}
