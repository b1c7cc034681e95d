//! The etcd registry against a real etcd: go-micro's key layout and values,
//! register / get / list / watch / deregister, every event of a batch delivered.

use std::time::Duration;

use etcd_client::{PutOptions, Txn, TxnOp};
use micro_etcd::EtcdRegistry;
use micro_registry::{Action, Error, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::etcd::{Etcd, NodeSet, init_tracing, node_service, watch_until};
use micro_tests::harness::wait_until;

const LIMIT: Duration = Duration::from_secs(10);

fn registry(etcd: &Etcd) -> EtcdRegistry {
    EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_and_values_are_go_micros() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let mut svc = node_service("go.micro/srv.greeter", "1.0", "greeter/1", "127.0.0.1:9001");
    svc.endpoints.push(micro_registry::Endpoint {
        name: "Greeter.Hello".into(),
        ..Default::default()
    });
    reg.register(&svc, &RegisterOptions::ttl(Duration::from_millis(4500)))
        .await
        .expect("register");

    let mut c = etcd.client().await.expect("client");
    let key = "/micro/registry/go.micro-srv.greeter/greeter-1";
    let resp = c.get(key, None).await.expect("get");
    let kv = resp.kvs().first().expect("the node's key exists");
    let stored: ServiceRecord = serde_json::from_slice(kv.value()).expect("value is a service");
    assert_eq!(stored, svc, "value is the service with its one node");
    let raw: serde_json::Value = serde_json::from_slice(kv.value()).expect("json");
    assert_eq!(
        raw["nodes"][0]["metadata"]["protocol"], "mucp",
        "node metadata is written as is: {raw}"
    );
    assert!(
        raw["metadata"].is_null(),
        "empty service metadata is null as in Go: {raw}"
    );
    // The TTL rounds up to whole seconds.
    let ttl = c
        .lease_time_to_live(kv.lease(), None)
        .await
        .expect("lease ttl");
    assert_eq!(ttl.granted_ttl(), 5);

    // No TTL: no lease.
    let plain = node_service("plain", "latest", "plain-1", "127.0.0.1:9002");
    reg.register(&plain, &RegisterOptions::default())
        .await
        .expect("register");
    let resp = c
        .get("/micro/registry/plain/plain-1", None)
        .await
        .expect("get");
    assert_eq!(resp.kvs().first().map(|kv| kv.lease()), Some(0));
    // The keeper opens its stream on its own task: wait for it, then check
    // that the plain node did not get one.
    wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || async { reg.stats().keepalive_streams >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        reg.stats().keepalive_streams,
        1,
        "only the leased node is kept alive"
    );
    reg.deregister(&plain).await.expect("deregister");
    reg.deregister(&svc).await.expect("deregister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_get_list_deregister() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    assert_eq!(reg.name(), "etcd");
    assert!(matches!(
        reg.get_service("greeter").await,
        Err(Error::NotFound)
    ));
    assert!(reg.list_services().await.expect("list").is_empty());

    let ttl = RegisterOptions::ttl(Duration::from_secs(10));
    let a = node_service("greeter", "1", "greeter-a", "127.0.0.1:1");
    let b = node_service("greeter", "1", "greeter-b", "127.0.0.1:2");
    let c = node_service("greeter", "2", "greeter-c", "127.0.0.1:3");
    // `greeterx` shares a textual prefix but is another service.
    let x = node_service("greeterx", "1", "greeterx-a", "127.0.0.1:4");
    for s in [&a, &b, &c, &x] {
        reg.register(s, &ttl).await.expect("register");
    }
    // Registering an unchanged node again is a no-op.
    reg.register(&a, &ttl).await.expect("register again");

    let mut got = reg.get_service("greeter").await.expect("get");
    got.sort_by(|l, r| l.version.cmp(&r.version));
    assert_eq!(got.len(), 2, "one entry per version: {got:?}");
    let ids: Vec<&str> = got[0].nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["greeter-a", "greeter-b"]);
    assert_eq!(got[1].nodes[0].id, "greeter-c");

    let list = reg.list_services().await.expect("list");
    let names: Vec<(&str, &str, usize)> = list
        .iter()
        .map(|s| (s.name.as_str(), s.version.as_str(), s.nodes.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("greeter", "1", 2),
            ("greeter", "2", 1),
            ("greeterx", "1", 1)
        ]
    );

    reg.deregister(&a).await.expect("deregister");
    let got = reg.get_service("greeter").await.expect("get");
    assert_eq!(got.iter().map(|s| s.nodes.len()).sum::<usize>(), 2);
    for s in [&b, &c, &x] {
        reg.deregister(s).await.expect("deregister");
    }
    assert!(matches!(
        reg.get_service("greeter").await,
        Err(Error::NotFound)
    ));
    assert!(reg.list_services().await.expect("list").is_empty());
    assert_eq!(reg.stats().keepalive_streams, 0);
    // Deregistering what is not registered is fine.
    reg.deregister(&a).await.expect("deregister twice");
    // A service without nodes is refused.
    let empty = ServiceRecord {
        name: "empty".into(),
        ..Default::default()
    };
    assert!(matches!(
        reg.register(&empty, &ttl).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_create_update_delete() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let ttl = RegisterOptions::ttl(Duration::from_secs(10));
    let before = node_service("greeter", "1", "greeter-0", "127.0.0.1:1");
    reg.register(&before, &ttl).await.expect("register");

    let mut one = reg
        .watch(&WatchOptions::service("greeter"))
        .await
        .expect("watch");
    let mut all = reg.watch(&WatchOptions::all()).await.expect("watch all");

    let a = node_service("greeter", "1", "greeter-a", "127.0.0.1:2");
    let other = node_service("greeterx", "1", "greeterx-a", "127.0.0.1:3");
    reg.register(&a, &ttl).await.expect("register");
    reg.register(&other, &ttl).await.expect("register");
    let mut moved = a.clone();
    moved.nodes[0].address = "127.0.0.1:9".into();
    reg.register(&moved, &ttl)
        .await
        .expect("re-register changed");
    reg.deregister(&moved).await.expect("deregister");

    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(LIMIT, one.next())
            .await
            .expect("event in time")
            .expect("event");
        got.push((
            ev.action,
            ev.service.nodes[0].id.clone(),
            ev.service.nodes[0].address.clone(),
        ));
    }
    assert_eq!(
        got,
        [
            (
                Action::Create,
                "greeter-a".to_string(),
                "127.0.0.1:2".to_string()
            ),
            (
                Action::Update,
                "greeter-a".to_string(),
                "127.0.0.1:9".to_string()
            ),
            (
                Action::Delete,
                "greeter-a".to_string(),
                "127.0.0.1:9".to_string()
            ),
        ],
        "the service watch sees only its service, in order"
    );

    let mut set = NodeSet::default();
    let (ok, evs) = watch_until(all.as_mut(), &mut set, Duration::from_secs(2), |_| false).await;
    assert!(!ok);
    // The all-services watcher saw the four events (a: create/update/delete, other: create).
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(set.ids(), ["greeterx-a"]);
    one.stop();
    assert!(matches!(one.next().await, Err(Error::WatcherStopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_batch_is_delivered() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let mut w = reg
        .watch(&WatchOptions::service("batch"))
        .await
        .expect("watch");
    let mut c = etcd.client().await.expect("client");

    // Five nodes written in one transaction arrive in one watch response.
    let ops: Vec<TxnOp> = (0..5)
        .map(|i| {
            let svc = node_service("batch", "1", &format!("batch-{i}"), "127.0.0.1:1");
            TxnOp::put(
                format!("/micro/registry/batch/batch-{i}"),
                serde_json::to_vec(&svc).expect("json"),
                None::<PutOptions>,
            )
        })
        .collect();
    c.txn(Txn::new().and_then(ops)).await.expect("txn");
    // And all five deleted at once.
    c.delete(
        "/micro/registry/batch/",
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .expect("delete");

    let mut set = NodeSet::default();
    let (_, evs) = watch_until(w.as_mut(), &mut set, Duration::from_secs(2), |_| false).await;
    let creates = evs.iter().filter(|e| e.action == Action::Create).count();
    let deletes = evs.iter().filter(|e| e.action == Action::Delete).count();
    assert_eq!((creates, deletes), (5, 5), "{evs:?}");
    assert!(set.nodes.is_empty());
    // Deletes carry the node from the previous value.
    assert!(
        evs.iter()
            .all(|e| e.service.nodes.len() == 1 && e.service.name == "batch")
    );
}
