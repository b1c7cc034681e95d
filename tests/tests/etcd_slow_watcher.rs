//! Watchers whose readers stop reading never stall the registry: its other calls
//! (which share the HTTP/2 connection with the watch streams) keep working while
//! megabytes of changes go by, and once the readers resume they get every event,
//! exactly once and in order, replayed from etcd's history without a re-list.

use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{Action, RegisterOptions, Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, NodeSet, init_tracing, node_service, watch_until};

const RECORDS: usize = 500;
const PAD: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_do_not_stall_the_registry() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .watch_buffer(4)
        .timeout(Duration::from_secs(3))
        .build()
        .expect("registry");
    // Three readers that do not read: unread watch data of three streams is more
    // than an HTTP/2 connection window holds.
    let mut watchers = Vec::new();
    for _ in 0..3 {
        watchers.push(
            reg.watch(&WatchOptions::service("flood"))
                .await
                .expect("watch"),
        );
    }
    let mut c = etcd.client().await.expect("client");
    for i in 0..RECORDS {
        let mut svc = node_service("flood", "1", &format!("flood-{i:03}"), "127.0.0.1:1");
        svc.metadata.insert("pad".into(), "x".repeat(PAD));
        let value = serde_json::to_vec(&svc).expect("json");
        c.put(format!("/micro/registry/flood/flood-{i:03}"), value, None)
            .await
            .expect("put");
    }

    // The registry's own calls go through.
    let listed = reg.list_services().await.expect("list while readers stall");
    assert_eq!(listed[0].nodes.len(), RECORDS);
    let svc = node_service("other", "1", "other-1", "127.0.0.1:2");
    reg.register(&svc, &RegisterOptions::ttl(Duration::from_secs(5)))
        .await
        .expect("register while readers stall");

    // Every reader gets every create, once, in order.
    for w in &mut watchers {
        let mut set = NodeSet::default();
        let (ok, evs) = watch_until(w.as_mut(), &mut set, Duration::from_secs(30), |s| {
            s.nodes.len() == RECORDS
        })
        .await;
        assert!(ok, "reader saw {} of {RECORDS} nodes", set.nodes.len());
        assert_eq!(evs.len(), RECORDS, "each change delivered once");
        assert!(evs.iter().all(|e| e.action == Action::Create));
        let ids: Vec<String> = evs.iter().map(|e| e.service.nodes[0].id.clone()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "in revision order");
    }
    assert_eq!(
        reg.stats().watch_resyncs,
        0,
        "replayed from history, not re-listed"
    );
    reg.deregister(&svc).await.expect("deregister");
}
