//! A watcher that falls behind a compaction re-lists and converges: its reader
//! ends with exactly the registered nodes, none that were deleted meanwhile.
//!
//! The watcher is made to fall behind for real: its reader stops reading while
//! records are written and deleted, so the watcher pauses its etcd watch at the
//! last revision it delivered; then the history is compacted past that revision.
//! When the reader resumes, the watcher asks etcd to replay from there, etcd
//! cancels the watch with the compaction revision, and the watcher must re-list
//! and emit the difference.

use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{Cache, Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, NodeSet, init_tracing, node_service, watch_until};
use micro_tests::harness::wait_until;

const SERVICE: &str = "churn";
/// Records written while the reader sleeps, each `PAD` bytes large.
const RECORDS: usize = 600;
const PAD: usize = 16 * 1024;

fn key(i: usize) -> String {
    format!("/micro/registry/{SERVICE}/{SERVICE}-{i}")
}

fn record(i: usize) -> Vec<u8> {
    let mut svc = node_service(SERVICE, "1", &format!("{SERVICE}-{i}"), "127.0.0.1:1");
    svc.metadata.insert("pad".into(), "x".repeat(PAD));
    serde_json::to_vec(&svc).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_compaction() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .watch_buffer(1)
        .build()
        .expect("registry");
    let mut c = etcd.client().await.expect("client");
    // Two nodes before the watch starts; one of them is deleted while it lags.
    for i in [0, 1] {
        c.put(key(i), record(i), None).await.expect("put");
    }
    let mut w = reg
        .watch(&WatchOptions::service(SERVICE))
        .await
        .expect("watch");
    let mut set = NodeSet::default();
    for i in [0, 1] {
        set.nodes
            .insert(format!("{SERVICE}-{i}"), Default::default());
    }

    // The reader sleeps: create many large records, delete most of them again.
    for i in 2..RECORDS {
        c.put(key(i), record(i), None).await.expect("put");
    }
    for i in 1..RECORDS {
        if i % 100 != 0 {
            c.delete(key(i), None).await.expect("delete");
        }
    }
    // The stalled reader does not stall the registry's connection.
    let t = std::time::Instant::now();
    let listed = reg.list_services().await;
    assert!(
        listed.is_ok(),
        "registry blocked by a stalled watcher: {listed:?} after {:?}",
        t.elapsed()
    );
    let rev = c
        .get("/", None)
        .await
        .expect("get")
        .header()
        .map(|h| h.revision())
        .expect("revision");
    c.compact(rev, None).await.expect("compact");

    // The reader resumes and must end with exactly what etcd holds.
    let want: Vec<String> = (0..RECORDS)
        .filter(|i| *i == 0 || i % 100 == 0)
        .map(|i| format!("{SERVICE}-{i}"))
        .collect();
    let (ok, evs) = watch_until(w.as_mut(), &mut set, Duration::from_secs(30), |s| {
        s.ids() == want
    })
    .await;
    assert!(
        ok,
        "reader ended with {:?} after {} events",
        set.ids(),
        evs.len()
    );
    assert!(
        reg.stats().watch_resyncs >= 1,
        "the watcher did not re-list (etcd never parked it?): {:?}",
        reg.stats()
    );
    // Nothing stale arrives afterwards either.
    let (_, more) = watch_until(w.as_mut(), &mut set, Duration::from_millis(500), |_| false).await;
    assert_eq!(set.ids(), want, "late events {more:?}");

    // A cache on top of the same registry agrees.
    let cache = Cache::new(std::sync::Arc::new(reg.clone()));
    let snap = cache.get(SERVICE).await.expect("cache");
    let mut ids: Vec<String> = snap.nodes().map(|(_, n)| n.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, want);
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_converges_under_churn_and_compaction() {
    // Convergence through the registry cache, with churn and compactions racing
    // the cache's live watch.
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let mut c = etcd.client().await.expect("client");
    c.put(key(0), record(0), None).await.expect("put");
    let cache = Cache::new(std::sync::Arc::new(reg.clone()));
    assert_eq!(cache.get(SERVICE).await.expect("cache").node_count(), 1);
    // The cache watches only from when its watch task has listed; a probe record
    // rewritten until the cache shows it proves the watch is live.
    let probe = "/micro/registry/churn/churn-probe";
    let mut attempt = 0u16;
    let live = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        attempt += 1;
        // An address no other record has.
        let address = format!("10.0.0.1:{attempt}");
        let value =
            serde_json::to_vec(&node_service(SERVICE, "1", "churn-probe", &address)).expect("json");
        let (mut c, cache) = (c.clone(), cache.clone());
        async move {
            c.put(probe, value, None).await.expect("put probe");
            tokio::time::sleep(Duration::from_millis(50)).await;
            cache.get(SERVICE).await.is_ok_and(|s| {
                s.nodes()
                    .any(|(_, n)| n.id == "churn-probe" && n.address == address)
            })
        }
    })
    .await;
    assert!(live, "cache watch not live");
    c.delete(probe, None).await.expect("delete probe");
    for round in 0..20 {
        let i = round + 1;
        c.put(key(i), record(i), None).await.expect("put");
        if round % 2 == 0 {
            c.delete(key(i), None).await.expect("delete");
        }
        let rev = c
            .get("/", None)
            .await
            .expect("get")
            .header()
            .map(|h| h.revision())
            .expect("rev");
        c.compact(rev, None).await.expect("compact");
    }
    let want: Vec<String> = std::iter::once(0)
        .chain((1..=20).filter(|i| (i - 1) % 2 == 1))
        .map(|i| format!("{SERVICE}-{i}"))
        .collect();
    let mut want = want;
    want.sort();
    let converged = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let mut ids: Vec<String> = match cache.get(SERVICE).await {
                Ok(s) => s.nodes().map(|(_, n)| n.id.clone()).collect(),
                Err(_) => Vec::new(),
            };
            ids.sort();
            ids == want
        },
    )
    .await;
    let held: Vec<String> = cache
        .get(SERVICE)
        .await
        .map(|s| s.nodes().map(|(_, n)| n.id.clone()).collect())
        .unwrap_or_default();
    assert!(converged, "cache holds {held:?}, want {want:?}");
    cache.stop().await;
}
