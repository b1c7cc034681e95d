//! etcd stopped and started again, once with its data and once wiped: every
//! registrant is back within a register interval of etcd being up, a watcher
//! converges on the registered set, and a registry cache read in a loop keeps
//! returning the nodes throughout (stale data while etcd is down, the last good
//! set while the wiped etcd is still empty).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::{Cache, CacheOptions, Registry, WatchOptions};
use micro_tests::harness::Proc;
use micro_tests::harness::etcd::{Etcd, NodeSet, Registrant, init_tracing, watch_until};
use micro_tests::harness::wait_until;

const SERVICE: &str = "phoenix";
const INTERVAL: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(3);
/// One register interval plus slack for a loaded machine.
const BACK_LIMIT: Duration = Duration::from_secs(4);

async fn registrants(etcd: &Etcd) -> Vec<Proc> {
    let mut out = Vec::new();
    for i in 0..2 {
        let spec = Registrant {
            endpoints: etcd.endpoint(),
            service: SERVICE.into(),
            node_id: format!("{SERVICE}-{i}"),
            ttl: TTL,
            interval: INTERVAL,
        };
        out.push(
            spec.spawn(Path::new(env!("CARGO_BIN_EXE_etcd-registrant")))
                .await
                .expect("registrant"),
        );
    }
    out
}

async fn node_count(reg: &EtcdRegistry) -> usize {
    match reg.get_service(SERVICE).await {
        Ok(s) => s.iter().map(|s| s.nodes.len()).sum(),
        Err(_) => 0,
    }
}

async fn survive_restart(wipe: bool) {
    init_tracing();
    let mut etcd = Etcd::start().await.expect("etcd");
    let _procs = registrants(&etcd).await;
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .timeout(Duration::from_secs(1))
        .build()
        .expect("registry");
    assert_eq!(node_count(&reg).await, 2);

    // A cache read in a loop: it must never come back empty.
    let cache = Cache::with_options(
        Arc::new(reg.clone()),
        CacheOptions::default()
            .ttl(Duration::from_secs(2))
            .min_retry_interval(Duration::from_millis(500))
            .empty_grace(Duration::from_secs(15)),
    );
    assert_eq!(cache.get(SERVICE).await.expect("cache").node_count(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, misses) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (cache, stop, reads, misses) =
            (cache.clone(), stop.clone(), reads.clone(), misses.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match cache.get(SERVICE).await {
                    Ok(s) if s.node_count() > 0 => {}
                    other => {
                        misses.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(?other, "cache miss");
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut w = reg
        .watch(&WatchOptions::service(SERVICE))
        .await
        .expect("watch");

    etcd.stop().await;
    // Down for longer than the TTL.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert!(reg.get_service(SERVICE).await.is_err(), "etcd is down");
    if wipe {
        etcd.restart_wiped().await.expect("restart wiped");
    } else {
        etcd.restart().await.expect("restart");
    }
    let up = Instant::now();
    let back = wait_until(BACK_LIMIT, Duration::from_millis(20), || async {
        node_count(&reg).await == 2
    })
    .await;
    let took = up.elapsed();
    assert!(back, "registrants not back {took:?} after etcd came up");
    tracing::info!(?took, wipe, "registrants back");

    // The watcher converges: both nodes known, and it stays so.
    let mut set = NodeSet::default();
    set.nodes.insert(format!("{SERVICE}-0"), Default::default());
    set.nodes.insert(format!("{SERVICE}-1"), Default::default());
    let (_, evs) = watch_until(w.as_mut(), &mut set, Duration::from_secs(2), |_| false).await;
    assert_eq!(
        set.ids(),
        [format!("{SERVICE}-0"), format!("{SERVICE}-1")],
        "events {evs:?}"
    );
    if wipe {
        assert!(reg.stats().watch_resyncs >= 1);
    }

    stop.store(true, Ordering::Relaxed);
    reader.await.expect("reader");
    assert!(reads.load(Ordering::Relaxed) > 20);
    assert_eq!(
        misses.load(Ordering::Relaxed),
        0,
        "the cache came back empty or failed"
    );
    assert_eq!(cache.get(SERVICE).await.expect("cache").node_count(), 2);
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrants_return_after_restart_with_data() {
    survive_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrants_return_after_restart_without_data() {
    survive_restart(true).await;
}
