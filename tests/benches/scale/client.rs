//! Client cost: what a registry cache holds per cached node, lookups cold and
//! warm, `list_services`, and a selector pick in a service of 1 000 nodes.
//!
//! Memory is this process's live heap (counted by the bench's global allocator)
//! after filling a fresh cache minus before: the cache's snapshots, its entries
//! and its watches (tasks, the registry's watch state, connection buffers they
//! hold). Nothing else runs in the process meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_registry::{Cache, MemoryRegistry, RegisterOptions, Registry};
use micro_selector::{RegistrySelector, SelectOptions, Selector};
use micro_tests::harness::{scale, wait_until};

use crate::backend::Backend;
use crate::{ALLOC, Res, quantile};

/// Client figures of one (registry, N).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClientCost {
    /// Services looked up (all of them).
    pub(crate) services: usize,
    /// Nodes the cache then held.
    pub(crate) nodes: usize,
    /// Heap per cached node, bytes.
    pub(crate) bytes_per_node: f64,
    /// Heap of a cache holding one service of 10 nodes, bytes.
    pub(crate) one_service_bytes: f64,
    /// A first lookup through a fresh cache (registry read, watch start), p50.
    pub(crate) cold: Duration,
    /// A lookup of a cached service, p50.
    pub(crate) warm: Duration,
    /// `list_services` of the whole registry, p50 of 5.
    pub(crate) list: Duration,
}

fn live() -> f64 {
    ALLOC.allocated() as f64
}

/// Fills a fresh cache over a fresh client with every service of the mesh.
pub(crate) async fn measure(backend: &Backend, n: usize) -> Res<ClientCost> {
    let services = n.div_ceil(scale::NODES_PER_SERVICE);
    let reg = backend.client(None)?;
    // Connect first, so the connection is not counted.
    reg.get_service(&scale::service_name(0)).await?;

    // The median of five. The heap also counts buffers of about 8 KB that a
    // connection's requests share (on etcd exactly 8 KiB, on the shared watch
    // stream's request path; on Consul the pooled client's): one is allocated
    // now and then as watches are created and cancelled and an older one freed
    // later, whatever the mesh's size, so one cache's window sometimes holds a
    // new one (+8 KB) or sees one freed (-8 KB). On etcd with 100 nodes, 44
    // measurements after a first one (which also opens the shared watch
    // stream, 52 to 61 KB): 19.4 KB in 33, 9.2 or 11.2 KB in 3, 27.6 to
    // 37.4 KB in 8. The least of three, used before, read 11 KB in some cells
    // and 19 KB in others. The median is the cache's own cost; a cost that
    // grew with the mesh would move it.
    let mut one_service = Vec::with_capacity(5);
    for _ in 0..5 {
        let before = live();
        let cache = Cache::new(reg.clone());
        cache.get(&scale::service_name(0)).await?;
        settle(&cache, 1).await;
        one_service.push(live() - before);
        cache.stop().await;
    }
    one_service.sort_by(f64::total_cmp);
    let one_service_bytes = one_service[one_service.len() / 2];

    let before = live();
    let cache = Cache::new(reg.clone());
    let (mut cold, mut nodes) = (Vec::with_capacity(services), 0);
    for s in 0..services {
        let t = Instant::now();
        let snap = cache
            .get(&scale::service_name(s * scale::NODES_PER_SERVICE))
            .await?;
        cold.push(t.elapsed());
        nodes += snap.node_count();
    }
    settle(&cache, services).await;
    let mut warm = Vec::with_capacity(services);
    for s in 0..services {
        let t = Instant::now();
        cache
            .get(&scale::service_name(s * scale::NODES_PER_SERVICE))
            .await?;
        warm.push(t.elapsed());
    }
    let bytes = live() - before;
    cache.stop().await;
    drop(cache);

    let mut list = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let found = reg.list_services().await?;
        list.push(t.elapsed());
        if found.len() < services {
            return Err(format!("list_services found {} of {services}", found.len()).into());
        }
    }
    Ok(ClientCost {
        services,
        nodes,
        bytes_per_node: bytes / nodes.max(1) as f64,
        one_service_bytes,
        cold: quantile(&mut cold, 0.5),
        warm: quantile(&mut warm, 0.5),
        list: quantile(&mut list, 0.5),
    })
}

/// Waits until the cache watches `services` services, then lets the watches
/// list their prefixes and the cache's follow-up reads land.
async fn settle(cache: &Cache, services: usize) {
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { cache.watched() >= services },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Nanoseconds per warm pick (`select` then `next`) in a service of `nodes`
/// nodes, over `picks` picks.
pub(crate) async fn pick_ns(nodes: usize, picks: usize) -> Res<f64> {
    let registry = Arc::new(MemoryRegistry::new());
    for i in 0..nodes {
        let svc = scale::record_of("pick.big", &scale::node_id(i), i, "memory");
        registry.register(&svc, &RegisterOptions::default()).await?;
    }
    let selector = RegistrySelector::new(registry);
    let opts = SelectOptions::new();
    let mut sink = 0usize;
    for _ in 0..1000 {
        sink += selector
            .select("pick.big", &opts)
            .await?
            .next()?
            .address
            .len();
    }
    let t = Instant::now();
    for _ in 0..picks {
        let mut next = selector.select("pick.big", &opts).await?;
        sink += next.next()?.address.len();
    }
    let ns = t.elapsed().as_nanos() as f64 / picks as f64;
    selector.stop().await;
    if sink == 0 {
        return Err("no pick returned a node".into());
    }
    Ok(ns)
}
