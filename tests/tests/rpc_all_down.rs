//! Every node of a service down (`kill -9` of both `helloworld` servers), through
//! real etcd and a real Consul agent: a call fails fast, well within the client's
//! request timeout, with an error that says what went wrong, both while the dead
//! nodes are still registered and after their registrations expired. No call
//! hangs.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro::RpcError;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, HelloServer, TestClient, Timing, registered, sorted};
use micro_tests::harness::wait_until;

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

/// The client's request timeout; every failure must come well before it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes `n` calls that must all fail fast with a clear error; returns the slowest.
async fn failing_calls(name: &str, stage: &str, client: &TestClient, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let start = Instant::now();
        let res: Result<(), RpcError> = client.hello("helloworld").await;
        let took = start.elapsed();
        slowest = slowest.max(took);
        let err = res.expect_err("a call with every node down failed");
        println!("{name}: {stage}: call {i} failed in {took:?}: {err}");
        assert!(
            took < REQUEST_TIMEOUT / 2,
            "{name}: {stage}: the call took {took:?}, the request timeout is {REQUEST_TIMEOUT:?}"
        );
        let clear = ["refused", "none available", "not found"]
            .iter()
            .any(|w| err.detail.contains(w));
        assert!(clear, "{name}: {stage}: unclear error {err:?}");
        assert_ne!(
            err.code, 408,
            "{name}: {stage}: a timeout is not fast: {err:?}"
        );
    }
    slowest
}

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let mut a = HelloServer::start(SERVER, &backend, timing).await;
    let mut b = HelloServer::start(SERVER, &backend, timing).await;
    let both = sorted(&[a.node_id(), b.node_id()]);
    let observer = backend.registry();

    let client = TestClient::new(backend.registry(), |o| {
        o.request_timeout(REQUEST_TIMEOUT).retries(3)
    });
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| n == both)
        .await
        .expect("the client sees both servers");
    for _ in 0..20 {
        client
            .hello("helloworld")
            .await
            .expect("a call while both run");
    }

    a.kill9().await;
    b.kill9().await;
    let killed = Instant::now();
    // Both nodes are still registered (and cached): every attempt is refused.
    let stale = failing_calls(name, "nodes still registered", &client, 5).await;

    // Once the registrations expired the calls still fail fast.
    let expired = wait_until(
        timing.ttl + Duration::from_secs(10),
        Duration::from_millis(100),
        || async { registered(observer.as_ref(), "helloworld").await.is_empty() },
    )
    .await;
    assert!(expired, "{name}: the dead nodes' registrations expired");
    println!(
        "{name}: registrations gone {:?} after kill -9",
        killed.elapsed()
    );
    let gone = failing_calls(name, "registrations expired", &client, 5).await;
    let attempts = client.attempts();
    client.close().await;
    backend.stop().await;
    println!(
        "{name}: slowest failing call {stale:?} while registered, {gone:?} after expiry \
         (request timeout {REQUEST_TIMEOUT:?}); attempts {attempts:?}"
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
