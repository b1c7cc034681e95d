//! What a registry cache on etcd holds per cached node, watches included: the
//! live heap of this test binary (a counting allocator) before and after a
//! fresh cache looks up 20 services of 10 nodes each and watches them.
//!
//! Before the watchers shared one etcd stream and kept only a digest and the
//! ids of each record, a watched service of 10 nodes cost about 89 KB (8.9 KB
//! per node); the bound here is 3 KB per node.

use std::sync::Arc;
use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{Cache, RegisterOptions, Registry};
use micro_tests::harness::etcd::{Etcd, init_tracing};
use micro_tests::harness::{scale, wait_until};

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

const SERVICES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_node_costs_under_3_kb() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let writer = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let nodes = SERVICES * scale::NODES_PER_SERVICE;
    for i in 0..nodes {
        writer
            .register(
                &scale::record(i, "etcd"),
                &RegisterOptions::ttl(Duration::from_secs(60)),
            )
            .await
            .expect("register");
    }
    let reg: Arc<dyn Registry> = Arc::new(
        EtcdRegistry::builder()
            .endpoints(etcd.endpoints())
            .build()
            .expect("registry"),
    );
    // Connected, and the shared watch stream open, before the baseline.
    reg.get_service("scale.s0").await.expect("get");
    let warm = Cache::new(reg.clone());
    warm.get("scale.s0").await.expect("get");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = ALLOC.allocated() as f64;
    let cache = Cache::new(reg.clone());
    let mut cached = 0;
    for s in 0..SERVICES {
        cached += cache
            .get(&scale::service_name(s * scale::NODES_PER_SERVICE))
            .await
            .expect("get")
            .node_count();
    }
    let watching = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { cache.watched() == SERVICES },
    )
    .await;
    assert!(
        watching,
        "{} of {SERVICES} services watched",
        cache.watched()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_node = (ALLOC.allocated() as f64 - before) / cached as f64;
    assert_eq!(cached, nodes);
    assert!(
        per_node > 100.0,
        "{per_node:.0} B per node: nothing counted?"
    );
    assert!(per_node < 3000.0, "{per_node:.0} B per cached node");
    cache.stop().await;
    warm.stop().await;
}
