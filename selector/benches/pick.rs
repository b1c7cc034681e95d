//! Prints the cost of a warm selector pick and of a registry cache hit.
//!
//! Run: `cargo bench -p micro-selector --bench pick`. Target: a warm pick under 1 µs.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_registry::{Cache, MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
use micro_selector::{RegistrySelector, RoundRobin, SelectOptions, Selector, filter};

const ITERS: u32 = 1_000_000;

fn service(nodes: usize) -> ServiceRecord {
    ServiceRecord {
        name: "bench".into(),
        version: "latest".into(),
        nodes: (0..nodes)
            .map(|i| {
                let mut n = Node::new(format!("bench-{i}"), format!("127.0.0.1:{}", 10000 + i));
                n.metadata.insert("protocol".into(), "mucp".into());
                n
            })
            .collect(),
        ..Default::default()
    }
}

async fn time<F, Fut>(label: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..10_000 {
        f().await;
    }
    let start = Instant::now();
    for _ in 0..ITERS {
        f().await;
    }
    let per = start.elapsed() / ITERS;
    println!("{label:<44} {:>8.1} ns/op", per.as_nanos() as f64);
    per
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let registry = Arc::new(MemoryRegistry::new());
        registry
            .register(&service(8), &RegisterOptions::default())
            .await
            .expect("register");

        let cache = Cache::new(registry.clone());
        cache.get("bench").await.expect("warm");
        time("cache hit (Cache::get, 8 nodes)", || async {
            black_box(cache.get("bench").await.expect("hit"));
        })
        .await;

        let random = RegistrySelector::new(registry.clone());
        let opts = SelectOptions::new();
        let pick = time("warm pick, random (select + next)", || async {
            let mut next = random.select("bench", &opts).await.expect("select");
            black_box(next.next().expect("node"));
        })
        .await;

        let rr = RegistrySelector::builder(registry.clone())
            .strategy(RoundRobin::new())
            .build();
        time("warm pick, round robin (select + next)", || async {
            let mut next = rr.select("bench", &opts).await.expect("select");
            black_box(next.next().expect("node"));
        })
        .await;

        let filtered = SelectOptions::new().filter(filter::label("protocol", "mucp"));
        time("warm pick, random + label filter", || async {
            let mut next = random.select("bench", &filtered).await.expect("select");
            black_box(next.next().expect("node"));
        })
        .await;

        let target = Duration::from_micros(1);
        println!(
            "target warm_pick measured {:.1}ns goal <1000ns {}",
            pick.as_nanos() as f64,
            if pick < target { "met" } else { "missed" }
        );
        random.stop().await;
        rr.stop().await;
        cache.stop().await;
    });
}
