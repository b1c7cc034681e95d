//! SIGTERM to one of two `helloworld` servers while clients call in a loop,
//! through real etcd and a real Consul agent: the server deregisters first, keeps
//! serving while caches converge, drains and exits 0; no call fails.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{
    Backend, CallLoop, HelloServer, TestClient, Timing, registered, sorted,
};

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let mut leaving = HelloServer::start(SERVER, &backend, timing).await;
    let staying = HelloServer::start(SERVER, &backend, timing).await;
    let both = sorted(&[leaving.node_id(), staying.node_id()]);
    let observer = backend.registry();

    let client = TestClient::new(backend.registry(), |o| o);
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| n == both)
        .await
        .expect("the client sees both servers");
    let calls = CallLoop::start(&client, "helloworld", 3, Duration::from_millis(2));
    assert!(
        calls.wait_more_ok(100, Duration::from_secs(30)).await,
        "{name}: calls flow before SIGTERM: {:?}",
        calls.log()
    );
    let before = client.attempts();
    assert!(
        before.get(leaving.node_id()).is_some_and(|a| a.ok > 0),
        "{name}: both servers answered before SIGTERM: {before:?}"
    );

    let signalled = Instant::now();
    let stopping = async {
        let status = leaving.terminate().await;
        (status, signalled.elapsed())
    };
    let watching = async {
        // Deregistration comes first: the node leaves the registry and the
        // client's selector while the process still serves.
        let in_registry = micro_tests::harness::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { registered(observer.as_ref(), "helloworld").await == [staying.node_id()] },
        )
        .await
        .then(|| signalled.elapsed());
        let in_selector = client
            .wait_nodes("helloworld", Duration::from_secs(10), |n| {
                n == [staying.node_id()]
            })
            .await
            .map(|_| signalled.elapsed());
        (in_registry, in_selector)
    };
    let ((status, exited), (deregistered, left_selector)) = tokio::join!(stopping, watching);
    assert!(
        calls.wait_more_ok(100, Duration::from_secs(30)).await,
        "{name}: calls flow after the server exited: {:?}",
        calls.log()
    );
    let log = calls.stop().await;
    let attempts = client.attempts();
    client.close().await;
    backend.stop().await;

    println!(
        "{name}: after SIGTERM the node left the registry in {deregistered:?}, the client's \
         selector in {left_selector:?}, the process exited after {exited:?} ({status:?}); \
         {} calls, {} failed, slowest {:?}; attempts on the stopped node {:?}, on the other {:?}",
        log.total(),
        log.failed.len(),
        log.slowest,
        attempts.get(leaving.node_id()),
        attempts.get(staying.node_id()),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "{name}: exit after SIGTERM: {status:?}"
    );
    assert!(
        deregistered.is_some_and(|t| t <= exited),
        "{name}: the node left the registry ({deregistered:?}) before the process exited \
         ({exited:?})"
    );
    assert!(
        left_selector.is_some(),
        "{name}: the node never left the client's selector"
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
