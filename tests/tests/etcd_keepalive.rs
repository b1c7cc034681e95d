//! Keepalive: one long-lived stream per lease (one lease per TTL) however often
//! `register` is called,
//! the lease kept alive for several TTLs without any `register`, the keeper
//! stopped by `deregister`, and nothing left running when the registry is dropped.

use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry};
use micro_tests::harness::etcd::{Etcd, init_tracing, node_service};
use micro_tests::harness::wait_until;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_per_lease_across_registers() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let ttl = RegisterOptions::ttl(Duration::from_secs(3));
    let a = node_service("keep", "1", "keep-a", "127.0.0.1:1");
    let b = node_service("keep", "1", "keep-b", "127.0.0.1:2");
    for _ in 0..20 {
        reg.register(&a, &ttl).await.expect("register a");
        reg.register(&b, &ttl).await.expect("register b");
    }
    // The keeper opens its stream on its own task: give it a moment.
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || async { reg.stats().keepalive_streams == 1 },
    )
    .await;
    let s = reg.stats();
    assert_eq!(s.leases_granted, 1, "one lease for both nodes: {s:?}");
    assert_eq!(s.keepalive_streams, 1, "one stream per lease: {s:?}");
    assert_eq!(
        s.keepalive_streams_opened, 1,
        "streams are not reopened per register: {s:?}"
    );

    // Another TTL moves the node to another lease, with its own stream.
    reg.register(&a, &RegisterOptions::ttl(Duration::from_secs(4)))
        .await
        .expect("register with new ttl");
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async {
                let s = reg.stats();
                s.keepalive_streams == 2 && s.keepalive_streams_opened == 2
            }
        )
        .await,
        "{:?}",
        reg.stats()
    );
    let mut c = etcd.client().await.expect("client");
    assert_eq!(c.leases().await.expect("leases").leases().len(), 2);
    // Back to the first TTL: the second lease held only `a`, so it is revoked.
    reg.register(&a, &ttl)
        .await
        .expect("register with the first ttl");
    assert_eq!(reg.stats().keepalive_streams, 1, "{:?}", reg.stats());
    assert_eq!(
        c.leases().await.expect("leases").leases().len(),
        1,
        "the emptied lease was revoked"
    );

    reg.deregister(&a).await.expect("deregister");
    assert_eq!(reg.stats().keepalive_streams, 1, "b keeps the lease");
    reg.deregister(&b).await.expect("deregister");
    assert_eq!(reg.stats().keepalive_streams, 0);
    assert!(c.leases().await.expect("leases").leases().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lives_three_ttls_without_register() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let svc = node_service("keep", "1", "keep-a", "127.0.0.1:1");
    let ttl = Duration::from_secs(2);
    reg.register(&svc, &RegisterOptions::ttl(ttl))
        .await
        .expect("register");
    let mut c = etcd.client().await.expect("client");
    let key = "/micro/registry/keep/keep-a";
    let lease = c.get(key, None).await.expect("get").kvs()[0].lease();
    for _ in 0..6 {
        tokio::time::sleep(ttl / 2).await;
        let kvs = c.get(key, None).await.expect("get");
        assert_eq!(
            kvs.kvs().first().map(|kv| kv.lease()),
            Some(lease),
            "record and lease live on"
        );
    }
    assert_eq!(reg.stats().keepalive_streams_opened, 1);
    reg.deregister(&svc).await.expect("deregister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_left_running() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let baseline = alive_tasks();
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let svc = node_service("keep", "1", "keep-a", "127.0.0.1:1");
    reg.register(&svc, &RegisterOptions::ttl(Duration::from_secs(3)))
        .await
        .expect("register");
    let mut w = reg
        .watch(&micro_registry::WatchOptions::all())
        .await
        .expect("watch");
    // The watch's stream opens in the background (a shared stream, and the gRPC
    // client's own tasks): count once the number of tasks has settled.
    let with_keeper_and_watch = settled_tasks().await;
    assert!(with_keeper_and_watch > baseline);

    // Deregister stops the keeper task.
    reg.deregister(&svc).await.expect("deregister");
    assert_eq!(reg.stats().keepalive_streams, 0);
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async { alive_tasks() < with_keeper_and_watch }
        )
        .await,
        "keeper task still alive"
    );
    // Stopping the watcher ends its task.
    let before_stop = alive_tasks();
    w.stop();
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async { alive_tasks() < before_stop }
        )
        .await,
        "watch task still alive"
    );

    // Registered again, then the registry (with its connection) is dropped.
    reg.register(&svc, &RegisterOptions::ttl(Duration::from_secs(3)))
        .await
        .expect("register");
    let w2 = reg
        .watch(&micro_registry::WatchOptions::all())
        .await
        .expect("watch");
    drop(w2);
    drop(reg);
    assert!(
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async { alive_tasks() <= baseline }
        )
        .await,
        "{} tasks alive after drop, {baseline} before the registry",
        alive_tasks()
    );
}

/// The number of live tasks once it stopped changing (the same in three samples
/// 50 ms apart; at most 3 s).
async fn settled_tasks() -> usize {
    let mut last = alive_tasks();
    let mut same = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = alive_tasks();
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same >= 3 {
            break;
        }
    }
    last
}
