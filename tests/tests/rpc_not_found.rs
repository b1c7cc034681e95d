//! A call to a service nobody registered fails fast with "not found", through real
//! etcd and a real Consul agent, while the registry holds a `helloworld` server
//! (whose name starts like the ones asked for).

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, HelloServer, TestClient, Timing};

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let server = HelloServer::start(SERVER, &backend, Timing::SHORT).await;
    let client = TestClient::new(backend.registry(), |o| {
        o.request_timeout(REQUEST_TIMEOUT).retries(3)
    });
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| {
            n == [server.node_id()]
        })
        .await
        .expect("the client sees the server");
    client
        .hello("helloworld")
        .await
        .expect("the right name works");

    for wrong in ["helloworld-typo", "hello", "helloworl"] {
        // The first call asks the registry, the next ones may be answered from
        // the cache's memory of "not found".
        for i in 0..3 {
            let start = Instant::now();
            let err = client
                .hello(wrong)
                .await
                .expect_err("a call to an unknown service fails");
            let took = start.elapsed();
            println!("{name}: {wrong} call {i}: {took:?}: {err}");
            assert!(
                err.detail.contains("not found") && err.detail.contains(wrong),
                "{name}: {wrong}: {err:?}"
            );
            assert!(
                took < REQUEST_TIMEOUT / 2,
                "{name}: {wrong}: took {took:?}, request timeout {REQUEST_TIMEOUT:?}"
            );
        }
    }
    let attempts = client.attempts();
    assert_eq!(
        attempts.keys().collect::<Vec<_>>(),
        [server.node_id()],
        "{name}: no attempt went anywhere for an unknown service"
    );
    client.close().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    scenario(Backend::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul() {
    scenario(Backend::consul().await).await;
}
