//! A three-member etcd cluster loses a member (the leader, the hardest case):
//! registrations stay alive, new registrations and lookups keep working, and a
//! watcher keeps delivering.

use std::path::Path;
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry, WatchOptions};
use micro_tests::harness::etcd::{
    Etcd, NodeSet, Registrant, init_tracing, node_service, watch_until,
};
use micro_tests::harness::wait_until;

async fn ids(reg: &EtcdRegistry, name: &str) -> Vec<String> {
    let mut v: Vec<String> = match reg.get_service(name).await {
        Ok(s) => s.into_iter().flat_map(|s| s.nodes).map(|n| n.id).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_losing_a_member() {
    init_tracing();
    let mut etcd = Etcd::cluster(3).await.expect("cluster");
    let endpoints = etcd.endpoints().join(",");
    let ttl = Duration::from_secs(3);
    let mut procs = Vec::new();
    for i in 0..2 {
        let spec = Registrant {
            endpoints: endpoints.clone(),
            service: "trio".into(),
            node_id: format!("trio-{i}"),
            ttl,
            interval: Duration::from_secs(1),
        };
        procs.push(
            spec.spawn(Path::new(env!("CARGO_BIN_EXE_etcd-registrant")))
                .await
                .expect("registrant"),
        );
    }
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("registry");
    assert_eq!(ids(&reg, "trio").await, ["trio-0", "trio-1"]);
    let mut w = reg
        .watch(&WatchOptions::service("trio"))
        .await
        .expect("watch");

    // Find and kill the leader.
    let mut leader = None;
    for i in 0..3 {
        let Ok(mut c) = etcd_client::Client::connect([etcd.member_endpoint(i)], None).await else {
            continue;
        };
        if let Ok(st) = c.status().await {
            if st.header().is_some_and(|h| h.member_id() == st.leader()) {
                leader = Some(i);
            }
        }
    }
    let leader = leader.expect("a leader");
    etcd.kill_member(leader).await;
    let killed = Instant::now();

    // Registrations outlive several TTLs on the surviving members.
    let survivors = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { ids(&reg, "trio").await.len() == 2 },
    )
    .await;
    assert!(survivors);
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(
        ids(&reg, "trio").await,
        ["trio-0", "trio-1"],
        "registrations lapsed"
    );

    // New registrations work and the watcher sees them.
    let svc = node_service("trio", "latest", "trio-new", "127.0.0.1:9");
    let registered = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { reg.register(&svc, &RegisterOptions::ttl(ttl)).await.is_ok() },
    )
    .await;
    assert!(
        registered,
        "cannot register {:?} after the leader died",
        killed.elapsed()
    );
    let mut set = NodeSet::default();
    let (seen, evs) = watch_until(w.as_mut(), &mut set, Duration::from_secs(10), |s| {
        s.nodes.contains_key("trio-new")
    })
    .await;
    assert!(seen, "watcher missed the new node: {evs:?}");
    // Reads are serializable: a lagging member may answer a moment late.
    let listed = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { ids(&reg, "trio").await == ["trio-0", "trio-1", "trio-new"] },
    )
    .await;
    assert!(listed, "lookup shows {:?}", ids(&reg, "trio").await);

    // A registrant dying now is still noticed.
    procs[0].kill9().await;
    let gone = wait_until(
        ttl + Duration::from_secs(3),
        Duration::from_millis(100),
        || async { !ids(&reg, "trio").await.contains(&"trio-0".to_string()) },
    )
    .await;
    assert!(gone, "expiry still works with two members");
    reg.deregister(&svc).await.expect("deregister");
}
