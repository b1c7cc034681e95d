//! A registrant stopped with SIGTERM deregisters: its node is gone at once, long
//! before its TTL, and it exits 0.

use std::path::Path;
use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{Action, Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, Registrant, init_tracing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_deregisters_at_once() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    // A long TTL: only the deregistration can remove the node in time.
    let ttl = Duration::from_secs(60);
    let spec = Registrant {
        endpoints: etcd.endpoint(),
        service: "polite".into(),
        node_id: "polite-1".into(),
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
        .watch(&WatchOptions::service("polite"))
        .await
        .expect("watch");
    let node = reg.get_service("polite").await.expect("get")[0].nodes[0].clone();
    assert_eq!(
        node.metadata.get("registry").map(String::as_str),
        Some("etcd")
    );
    assert_eq!(
        node.metadata.get("protocol").map(String::as_str),
        Some("mucp")
    );

    let (exited, status) = proc.terminate(Duration::from_secs(10)).await;
    assert!(exited, "registrant did not exit on SIGTERM");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("delete event well before the 60 s TTL")
        .expect("event");
    assert_eq!(ev.action, Action::Delete);
    assert_eq!(ev.service.nodes[0].id, "polite-1");
    assert!(reg.get_service("polite").await.is_err());
    // The lease was revoked, not left to expire.
    let mut c = etcd.client().await.expect("client");
    let leases = c.leases().await.expect("leases");
    assert!(
        leases.leases().is_empty(),
        "lease left behind: {:?}",
        leases.leases().len()
    );
}
