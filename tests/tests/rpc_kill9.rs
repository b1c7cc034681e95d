//! `kill -9` of one of two `helloworld` servers while a client calls in a loop,
//! through real etcd and a real Consul agent: every call succeeds (an attempt
//! that hits the dead node is retried on the other one), and the dead node leaves
//! the client's selector once its registration TTL runs out.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, CallLoop, HelloServer, TestClient, Timing, sorted};

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let mut dead = HelloServer::start(SERVER, &backend, timing).await;
    let live = HelloServer::start(SERVER, &backend, timing).await;
    let both = sorted(&[dead.node_id(), live.node_id()]);

    // The client as a user leaves it: default retries (1) and timeouts.
    let client = TestClient::new(backend.registry(), |o| o);
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| n == both)
        .await
        .expect("the client sees both servers");
    let calls = CallLoop::start(&client, "helloworld", 2, Duration::from_millis(5));
    assert!(
        calls.wait_more_ok(100, Duration::from_secs(30)).await,
        "{name}: calls flow before the kill: {:?}",
        calls.log()
    );
    let before = client.attempts();
    assert!(
        before.get(dead.node_id()).is_some_and(|a| a.ok > 0),
        "{name}: both servers answered before the kill: {before:?}"
    );

    let killed = Instant::now();
    dead.kill9().await;
    // The registration outlives the process until its TTL runs out; meanwhile
    // attempts that pick the dead node fail and are retried on the live one.
    let slack = Duration::from_secs(6);
    let gone = client
        .wait_nodes("helloworld", timing.ttl + slack, |n| n == [live.node_id()])
        .await;
    let log_at_gone = calls.log();
    assert!(
        calls.wait_more_ok(100, Duration::from_secs(30)).await,
        "{name}: calls flow after the dead node left: {:?}",
        calls.log()
    );
    let log = calls.stop().await;
    let attempts = client.attempts();
    client.close().await;
    backend.stop().await;

    println!(
        "{name}: dead node left the selector {gone:?} after kill -9 (TTL {:?}); \
         {} calls ({} before it left), {} failed, slowest {:?}; attempts on the dead node {:?}, on the live one {:?}",
        timing.ttl,
        log.total(),
        log_at_gone.total(),
        log.failed.len(),
        log.slowest,
        attempts.get(dead.node_id()),
        attempts.get(live.node_id()),
    );
    let took = gone.unwrap_or_else(|| {
        panic!(
            "{name}: the dead node is still in the selector {:?} after kill -9",
            killed.elapsed()
        )
    });
    assert!(took <= timing.ttl + slack, "{name}: {took:?}");
    assert!(
        log.failed.is_empty(),
        "{name}: failed calls: {:?}",
        log.failed
    );
    let on_dead = attempts.get(dead.node_id()).copied().unwrap_or_default();
    assert!(
        on_dead.failed > 0,
        "{name}: no attempt ever hit the dead node, so nothing was retried: {attempts:?}"
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
