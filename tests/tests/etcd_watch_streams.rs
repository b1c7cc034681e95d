//! The watchers of one etcd registry share one gRPC watch stream (as etcd's Go
//! client does), each watch with its own id: many watchers open one stream, each
//! still gets exactly its own service's events, and dropping a watcher cancels
//! its watch on etcd without disturbing the others. Counted from etcd's own
//! `/metrics`.

use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry, WatchOptions};
use micro_tests::harness::consul::http;
use micro_tests::harness::etcd::{Etcd, NodeSet, init_tracing, node_service, watch_until};
use micro_tests::harness::wait_until;

const WATCHERS: usize = 20;
const LIMIT: Duration = Duration::from_secs(10);

/// The sum of etcd's samples named `name` with `label` in their labels.
async fn metric(etcd: &Etcd, name: &str, label: &str) -> f64 {
    let addr = etcd
        .endpoint()
        .replace("http://", "")
        .parse()
        .expect("addr");
    let (_, body) = http(addr, "GET", "/metrics", None, None)
        .await
        .expect("metrics");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| {
            let (n, labels) = k.split_once('{').unwrap_or((k, ""));
            n == name && labels.contains(label)
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_share_one_stream() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let writer = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let streams = || metric(&etcd, "grpc_server_started_total", "grpc_method=\"Watch\"");
    let watchers = || metric(&etcd, "etcd_debugging_mvcc_watcher_total", "");
    let (streams0, watchers0) = (streams().await, watchers().await);

    let mut ws = Vec::new();
    for i in 0..WATCHERS {
        ws.push(
            reg.watch(&WatchOptions::service(format!("svc{i}")))
                .await
                .expect("watch"),
        );
    }
    let all_on_etcd = wait_until(LIMIT, Duration::from_millis(20), || async {
        watchers().await >= watchers0 + WATCHERS as f64
    })
    .await;
    assert!(
        all_on_etcd,
        "{} watches on etcd",
        watchers().await - watchers0
    );
    // Before: one stream per watcher (20).
    assert_eq!(
        streams().await - streams0,
        1.0,
        "one stream for all watchers"
    );

    // Each watcher sees its own service only.
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    for i in [0, 7, WATCHERS - 1] {
        writer
            .register(
                &node_service(&format!("svc{i}"), "1", &format!("n{i}"), "127.0.0.1:1"),
                &ttl,
            )
            .await
            .expect("register");
    }
    for i in [0, 7, WATCHERS - 1] {
        let mut set = NodeSet::default();
        let (ok, seen) =
            watch_until(ws[i].as_mut(), &mut set, LIMIT, |s| !s.nodes.is_empty()).await;
        assert!(ok, "watcher {i} saw no event");
        assert!(
            seen.iter().all(|e| e.service.name == format!("svc{i}")),
            "{seen:?}"
        );
    }

    // Dropping half the watchers cancels their watches; the others keep working.
    let kept: Vec<_> = ws
        .drain(..)
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .collect();
    let cancelled = wait_until(LIMIT, Duration::from_millis(20), || async {
        watchers().await == watchers0 + (WATCHERS / 2) as f64
    })
    .await;
    assert!(
        cancelled,
        "{} watches left on etcd",
        watchers().await - watchers0
    );
    for (i, mut w) in kept.into_iter().filter(|(i, _)| [1, 7].contains(i)) {
        writer
            .register(
                &node_service(&format!("svc{i}"), "1", &format!("m{i}"), "127.0.0.1:2"),
                &ttl,
            )
            .await
            .expect("register");
        let mut set = NodeSet::default();
        let (ok, _) = watch_until(w.as_mut(), &mut set, LIMIT, |s| {
            s.nodes.contains_key(&format!("m{i}"))
        })
        .await;
        assert!(ok, "watcher {i} stopped after others were dropped");
    }
    assert_eq!(streams().await - streams0, 1.0, "still one stream");
}
