//! A registrant killed with `kill -9` leaves its record behind only until its
//! lease runs out: a watcher sees the node gone within TTL + 1 s.

use std::path::Path;
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::{Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, NodeSet, Registrant, init_tracing, watch_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_registrant_expires_within_ttl() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let ttl = Duration::from_secs(3);
    let spec = Registrant {
        endpoints: etcd.endpoint(),
        service: "crashy".into(),
        node_id: "crashy-1".into(),
        ttl,
        interval: Duration::from_secs(1),
    };
    let mut proc = spec
        .spawn(Path::new(env!("CARGO_BIN_EXE_etcd-registrant")))
        .await
        .expect("registrant");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let mut w = reg
        .watch(&WatchOptions::service("crashy"))
        .await
        .expect("watch");
    assert_eq!(
        reg.get_service("crashy").await.expect("get")[0].nodes.len(),
        1
    );

    // Seed the consumer's view with what is registered now.
    let mut set = NodeSet::default();
    set.nodes
        .insert("crashy-1".into(), ("latest".into(), "127.0.0.1:1".into()));

    // Let the keepalive run a while: the lease must not expire while it lives.
    tokio::time::sleep(ttl * 2).await;
    assert!(
        reg.get_service("crashy").await.is_ok(),
        "the keepalive kept the node alive past its TTL"
    );

    let killed = Instant::now();
    proc.kill9().await;
    let (gone, _) = watch_until(w.as_mut(), &mut set, ttl + Duration::from_secs(1), |s| {
        s.nodes.is_empty()
    })
    .await;
    let took = killed.elapsed();
    assert!(gone, "node still registered {took:?} after kill -9");
    assert!(reg.get_service("crashy").await.is_err());
}
