//! The registry goes away while two `helloworld` servers serve and a client calls
//! them in a loop, then comes back: etcd stopped and restarted with its data, then
//! restarted with its data wiped; a Consul dev agent stopped and started again
//! (which forgets every registration); and each frozen (SIGSTOP) for a while, as
//! in a network partition. Meanwhile the client keeps calling from its cache
//! without a single failed call, and once the registry is back every server is
//! registered again within one register interval.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::registry::{CacheOptions, Registry};
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{
    Backend, CallLoop, HelloServer, TestClient, Timing, registered, sorted,
};
use micro_tests::harness::wait_until;

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

/// How long the registry stays down.
const OUTAGE: Duration = Duration::from_secs(6);
/// How long the registry hangs.
const FREEZE: Duration = Duration::from_secs(8);
/// The client's cache TTL, well below the outage.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// Added to the register interval for a busy machine.
const SLACK: Duration = Duration::from_secs(6);

/// Waits until `registry` lists exactly `nodes` again; returns how long it took.
async fn back_in_registry(registry: &Arc<dyn Registry>, nodes: &[String]) -> Option<Duration> {
    let start = Instant::now();
    wait_until(
        Timing::SHORT.interval + SLACK,
        Duration::from_millis(50),
        || async { registered(registry.as_ref(), "helloworld").await == nodes },
    )
    .await
    .then(|| start.elapsed())
}

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let a = HelloServer::start(SERVER, &backend, timing).await;
    let b = HelloServer::start(SERVER, &backend, timing).await;
    let both = sorted(&[a.node_id(), b.node_id()]);
    let observer = backend.registry();

    // A user who wants changes picked up quickly shortens the cache TTL and, so
    // that an outage or a wiped registry does not empty the node set that soon,
    // keeps a long empty grace. The TTL is well below the outage, so entries
    // expire while the registry is down and lookups must serve stale nodes.
    let cache = CacheOptions::default()
        .ttl(CACHE_TTL)
        .empty_grace(Duration::from_secs(60));
    let client = TestClient::with_cache(backend.registry(), cache, |o| o);
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| n == both)
        .await
        .expect("the client sees both servers");
    let calls = CallLoop::start(&client, "helloworld", 1, Duration::from_millis(10));
    assert!(
        calls.wait_more_ok(50, Duration::from_secs(30)).await,
        "{name}: calls flow: {:?}",
        calls.log()
    );

    // Down: lookups are served from the cache, calls keep succeeding.
    println!("{name}: stopping the registry at {:?}", calls.elapsed());
    backend.stop().await;
    let down = Instant::now();
    let ok_before = calls.log().ok;
    tokio::time::sleep(OUTAGE).await;
    let during = calls.log().ok - ok_before;
    let cached = client.nodes("helloworld").await;
    println!(
        "{name}: registry down for {:?} (client cache TTL {CACHE_TTL:?}): {during} calls \
         succeeded meanwhile, {} failed so far; the selector still offers {cached:?}",
        down.elapsed(),
        calls.log().failed.len()
    );
    assert!(
        during >= 50,
        "{name}: calls kept going while the registry was down ({during})"
    );
    assert_eq!(cached, both, "{name}: cached lookups work while it is down");

    // Back (etcd with its data; a Consul dev agent empty).
    let starting = Instant::now();
    println!("{name}: starting the registry at {:?}", calls.elapsed());
    backend.start_again().await;
    let ready = starting.elapsed();
    let back = back_in_registry(&observer, &both).await;
    println!(
        "{name}: registry back after {:?} down (ready {ready:?} after its start); every server \
         registered again {back:?} after it was ready (register interval {:?})",
        down.elapsed(),
        timing.interval
    );
    assert!(
        back.is_some(),
        "{name}: servers not registered again within {:?}: {:?}",
        timing.interval + SLACK,
        registered(observer.as_ref(), "helloworld").await
    );
    let seen = client
        .wait_nodes("helloworld", Duration::from_secs(15), |n| n == both)
        .await;
    println!("{name}: the client's selector has both nodes {seen:?} later");
    assert!(seen.is_some(), "{name}: the client sees both servers again");

    // Hung: the registry process is frozen, as in a network partition: its
    // connections stay open and nothing answers. Lookups must not wait for it.
    // Registrations may run out meanwhile (leases, TTL checks); once it answers
    // again every server must be back.
    let before = calls.log();
    println!("{name}: freezing the registry at {:?}", calls.elapsed());
    backend.freeze();
    let frozen = Instant::now();
    tokio::time::sleep(FREEZE).await;
    let during = calls.log();
    backend.thaw();
    println!(
        "{name}: registry frozen for {:?}: {} calls succeeded meanwhile, {} failed; slow calls \
         (start, took): {:?}",
        frozen.elapsed(),
        during.ok - before.ok,
        during.failed.len() - before.failed.len(),
        &during.slow[before.slow.len()..]
    );
    assert!(
        during.failed.len() == before.failed.len(),
        "{name}: calls failed while the registry hung: {:?}",
        &during.failed[before.failed.len()..]
    );
    assert!(
        during.ok - before.ok >= 50,
        "{name}: calls kept going while the registry hung ({})",
        during.ok - before.ok
    );
    let back = back_in_registry(&observer, &both).await;
    println!("{name}: after the thaw every server is registered {back:?} later");
    assert!(
        back.is_some(),
        "{name}: servers not registered after the thaw within {:?}: {:?}",
        timing.interval + SLACK,
        registered(observer.as_ref(), "helloworld").await
    );

    if let Backend::Etcd(_) = backend {
        // Wiped: every record and lease is gone; the servers must notice and
        // register again.
        let starting = Instant::now();
        println!("{name}: wiping the registry at {:?}", calls.elapsed());
        backend.restart_wiped().await;
        let ready = starting.elapsed();
        let back = back_in_registry(&observer, &both).await;
        println!(
            "{name}: restarted with its data wiped (stop and start took {ready:?}); every server \
             registered again {back:?} after it was ready"
        );
        assert!(
            back.is_some(),
            "{name}: servers not registered again after the wipe within {:?}: {:?}",
            timing.interval + SLACK,
            registered(observer.as_ref(), "helloworld").await
        );
        let seen = client
            .wait_nodes("helloworld", Duration::from_secs(15), |n| n == both)
            .await;
        println!("{name}: the client's selector has both nodes {seen:?} later");
        assert!(seen.is_some(), "{name}: the client sees both servers again");
    }

    assert!(
        calls.wait_more_ok(50, Duration::from_secs(30)).await,
        "{name}: calls flow at the end: {:?}",
        calls.log()
    );
    let log = calls.stop().await;
    let attempts = client.attempts();
    client.close().await;
    backend.stop().await;
    println!(
        "{name}: {} calls in all, {} failed, slowest {:?}, slow calls (start, took): {:?}; \
         attempts {attempts:?}",
        log.total(),
        log.failed.len(),
        log.slowest,
        log.slow
    );
    assert!(
        log.failed.is_empty(),
        "{name}: failed calls: {:?}",
        log.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    scenario(Backend::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul() {
    scenario(Backend::consul().await).await;
}
