//! Registrations lost behind the registry's back come back without a restart:
//! a key deleted by hand (the node did not change, so a hash check would miss it)
//! and a lease revoked by hand, both within a register interval.

use std::path::Path;
use std::time::{Duration, Instant};

use micro_etcd::EtcdRegistry;
use micro_registry::Registry;
use micro_tests::harness::etcd::{Etcd, Registrant, init_tracing};
use micro_tests::harness::wait_until;

const INTERVAL: Duration = Duration::from_secs(1);
/// One register interval plus slack for a loaded machine.
const BACK_LIMIT: Duration = Duration::from_secs(3);
const KEY: &str = "/micro/registry/lazarus/lazarus-1";

async fn present(reg: &EtcdRegistry) -> bool {
    reg.get_service("lazarus").await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_key_and_revoked_lease_come_back() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let spec = Registrant {
        endpoints: etcd.endpoint(),
        service: "lazarus".into(),
        node_id: "lazarus-1".into(),
        // A long TTL: the lease outlives the test, so only the registration
        // check can notice the missing key.
        ttl: Duration::from_secs(60),
        interval: INTERVAL,
    };
    let _proc = spec
        .spawn(Path::new(env!("CARGO_BIN_EXE_etcd-registrant")))
        .await
        .expect("registrant");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let mut c = etcd.client().await.expect("client");
    assert!(present(&reg).await);

    // 1. Delete the key by hand: the lease lives on, the node did not change.
    let lease_before = c.get(KEY, None).await.expect("get").kvs()[0].lease();
    let deleted = c.delete(KEY, None).await.expect("delete");
    assert_eq!(deleted.deleted(), 1);
    assert!(!present(&reg).await);
    let t = Instant::now();
    let back = wait_until(BACK_LIMIT, Duration::from_millis(20), || present(&reg)).await;
    assert!(back, "deleted key not re-created after {:?}", t.elapsed());
    let lease_after = c.get(KEY, None).await.expect("get").kvs()[0].lease();
    assert_eq!(lease_after, lease_before, "the live lease is reused");

    // 2. Revoke the lease by hand: the key goes with it.
    c.lease_revoke(lease_after).await.expect("revoke");
    assert!(!present(&reg).await);
    let t = Instant::now();
    let back = wait_until(BACK_LIMIT, Duration::from_millis(20), || present(&reg)).await;
    assert!(
        back,
        "revoked registration not back after {:?}",
        t.elapsed()
    );
    let lease_new = c.get(KEY, None).await.expect("get").kvs()[0].lease();
    assert_ne!(lease_new, lease_after, "a new lease was granted");
    let ttl = c.lease_time_to_live(lease_new, None).await.expect("ttl");
    assert!(ttl.ttl() > 0, "the new lease is alive and kept alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_repairs_a_lost_lease_without_a_register_call() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let svc = micro_tests::harness::etcd::node_service("lazarus", "1", "lazarus-1", "127.0.0.1:1");
    reg.register(
        &svc,
        &micro_registry::RegisterOptions::ttl(Duration::from_secs(3)),
    )
    .await
    .expect("register");
    let mut c = etcd.client().await.expect("client");
    let lease = c.get(KEY, None).await.expect("get").kvs()[0].lease();
    c.lease_revoke(lease).await.expect("revoke");
    // No register call from here on: the keeper notices at its next renewal
    // (every TTL/3 = 1 s) and writes the record on a new lease.
    let back = wait_until(Duration::from_secs(4), Duration::from_millis(20), || {
        present(&reg)
    })
    .await;
    assert!(back, "keeper did not repair the registration");
    assert_eq!(reg.stats().leases_granted, 2);
    // The record is written before the keeper opens the new lease's stream:
    // give it a moment, then there must be exactly one.
    let one_stream = wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        || async { reg.stats().keepalive_streams == 1 },
    )
    .await;
    assert!(one_stream, "stats after repair: {:?}", reg.stats());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(reg.stats().keepalive_streams, 1, "{:?}", reg.stats());
    reg.deregister(&svc).await.expect("deregister");
}
