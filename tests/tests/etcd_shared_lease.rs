//! One lease per TTL for all of a registry's keys: one grant and one keepalive
//! stream for many nodes, re-registration of unchanged records without writes
//! (one key check per lease), a lost lease bringing every key back on a new one,
//! and a deregistration that failed during an outage finished by the keeper.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{GetOptions, LeaseTimeToLiveOptions};
use micro_etcd::EtcdRegistry;
use micro_registry::{RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::etcd::{Etcd, init_tracing, node_service};
use micro_tests::harness::wait_until;

const NODES: usize = 50;
const PREFIX: &str = "/micro/registry/shared/";

fn nodes() -> Vec<ServiceRecord> {
    (0..NODES)
        .map(|i| node_service("shared", "1", &format!("n{i}"), "127.0.0.1:1"))
        .collect()
}

fn registry(etcd: &Etcd) -> EtcdRegistry {
    EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("registry")
}

/// (key, lease, mod revision) of every record under the prefix.
async fn records(c: &mut etcd_client::Client) -> Vec<(String, i64, i64)> {
    let resp = c
        .get(PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf-8 key").to_owned(),
                kv.lease(),
                kv.mod_revision(),
            )
        })
        .collect()
}

async fn register_all(reg: &EtcdRegistry, svcs: &[ServiceRecord], ttl: Duration) {
    for s in svcs {
        reg.register(s, &RegisterOptions::ttl(ttl))
            .await
            .expect("register");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_nodes_share_one_lease_and_stream() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let svcs = nodes();
    let ttl = Duration::from_secs(3);
    register_all(&reg, &svcs, ttl).await;
    let mut c = etcd.client().await.expect("client");
    let first = records(&mut c).await;
    assert_eq!(first.len(), NODES);
    let leases: BTreeSet<i64> = first.iter().map(|r| r.1).collect();
    assert_eq!(leases.len(), 1, "one lease for every node: {leases:?}");
    let lease = *leases.iter().next().unwrap();
    let attached = c
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("ttl");
    assert_eq!(attached.keys().len(), NODES);

    // Five more rounds of re-registration, spread over 2.5 s: no write at all
    // (every mod revision unchanged), and at most one key check per round.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        register_all(&reg, &svcs, ttl).await;
    }
    assert_eq!(records(&mut c).await, first, "unchanged records rewritten");
    let s = reg.stats();
    println!("stats after 6 rounds of {NODES}: {s:?}");
    assert_eq!(s.leases_granted, 1, "{s:?}");
    assert_eq!(s.keepalive_streams, 1, "{s:?}");
    assert_eq!(s.keepalive_streams_opened, 1, "{s:?}");
    assert!((1..=5).contains(&s.key_checks), "{s:?}");
    assert_eq!(c.leases().await.expect("leases").leases().len(), 1);

    // The lease outlives its TTL several times over with no register call.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(records(&mut c).await, first, "records kept alive");

    // A changed record is written at once, on the same lease.
    let mut changed = svcs[7].clone();
    changed.nodes[0].address = "127.0.0.1:2".into();
    reg.register(&changed, &RegisterOptions::ttl(ttl))
        .await
        .expect("register changed");
    let now = records(&mut c).await;
    let moved: Vec<_> = now.iter().filter(|r| !first.contains(r)).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].1, lease);

    // Deregistering all but one keeps the lease; the last one revokes it.
    for s in &svcs[1..] {
        reg.deregister(s).await.expect("deregister");
    }
    assert_eq!(records(&mut c).await.len(), 1);
    assert_eq!(reg.stats().keepalive_streams, 1);
    reg.deregister(&svcs[0]).await.expect("deregister last");
    assert!(records(&mut c).await.is_empty());
    assert_eq!(reg.stats().keepalive_streams, 0);
    assert!(c.leases().await.expect("leases").leases().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_key_and_revoked_lease_come_back() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let svcs = nodes();
    let ttl = Duration::from_secs(30);
    register_all(&reg, &svcs, ttl).await;
    let mut c = etcd.client().await.expect("client");
    let before = records(&mut c).await;
    let lease = before[0].1;

    // A key deleted by hand comes back with the next round (after the check
    // that serves the previous round has aged out), on the same lease; nothing
    // else is written.
    let gone = format!("{PREFIX}n3");
    c.delete(gone.as_str(), None).await.expect("delete");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    register_all(&reg, &svcs, ttl).await;
    let after = records(&mut c).await;
    assert_eq!(after.len(), NODES);
    let rewritten: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(rewritten.len(), 1, "{rewritten:?}");
    assert_eq!(
        (rewritten[0].0.as_str(), rewritten[0].1),
        (gone.as_str(), lease)
    );

    // The shared lease revoked by hand: every key comes back on a new lease,
    // without a register call (the keeper renews every TTL/3 = 10 s; a lease
    // of 3 s gets noticed within a second).
    let reg3 = registry(&etcd);
    let short: Vec<ServiceRecord> = (0..NODES)
        .map(|i| node_service("short", "1", &format!("s{i}"), "127.0.0.1:1"))
        .collect();
    register_all(&reg3, &short, Duration::from_secs(3)).await;
    let short_lease = c
        .get("/micro/registry/short/s0", None)
        .await
        .expect("get")
        .kvs()[0]
        .lease();
    c.lease_revoke(short_lease).await.expect("revoke");
    let count = || async {
        let mut c = etcd.client().await.expect("client");
        c.get(
            "/micro/registry/short/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("count")
        .count()
    };
    assert_eq!(count().await, 0, "revoking took every key");
    let back = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { count().await == NODES as i64 },
    )
    .await;
    assert!(back, "only {} of {NODES} back", count().await);
    let s = reg3.stats();
    assert_eq!(s.leases_granted, 2, "{s:?}");
    let new_lease = c
        .get("/micro/registry/short/s49", None)
        .await
        .expect("get")
        .kvs()[0]
        .lease();
    assert_ne!(new_lease, short_lease);
    assert!(
        wait_until(
            Duration::from_secs(2),
            Duration::from_millis(10),
            || async { reg3.stats().keepalive_streams == 1 }
        )
        .await,
        "{:?}",
        reg3.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_that_failed_is_finished_after_the_outage() {
    init_tracing();
    let mut etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let svcs = nodes();
    // A TTL the outage does not reach: the lease survives it.
    register_all(&reg, &svcs[..2], Duration::from_secs(30)).await;
    etcd.stop().await;
    assert!(reg.deregister(&svcs[0]).await.is_err(), "etcd is down");
    etcd.restart().await.expect("restart");
    // n0 sits on the lease n1 keeps alive: the keeper deletes it once a renewal
    // goes through (its stream reopens within 2 s; renewals every 10 s).
    let mut c = etcd.client().await.expect("client");
    let gone = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let mut c = etcd.client().await.expect("client");
            records(&mut c).await.len() == 1
        },
    )
    .await;
    let left = records(&mut c).await;
    assert!(gone, "n0 not deleted: {left:?}");
    assert_eq!(left[0].0, format!("{PREFIX}n1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_after_shutdown_renews_again() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let reg = registry(&etcd);
    let svcs = nodes();
    let ttl = Duration::from_secs(3);
    register_all(&reg, &svcs[..6], ttl).await;
    reg.shutdown().await;
    assert_eq!(reg.stats().keepalive_streams, 0);
    register_all(&reg, &svcs[..6], ttl).await;
    assert!(
        wait_until(
            Duration::from_secs(2),
            Duration::from_millis(10),
            || async { reg.stats().keepalive_streams == 1 }
        )
        .await,
        "{:?}",
        reg.stats()
    );
    let mut c = etcd.client().await.expect("client");
    let before = records(&mut c).await;
    // Two TTLs without a register call: kept alive by the restarted keeper.
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(records(&mut c).await, before);
    assert_eq!(reg.stats().leases_granted, 1);
}
