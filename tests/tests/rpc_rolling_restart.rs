//! A rolling restart under load (issue 13's adversarial suite): a service of
//! three `helloworld` processes, through real etcd and a real Consul agent, while
//! a client with default options calls it from 16 callers without pause. Five
//! rounds; in each, every node in turn is replaced: a new process starts (a new
//! port and node id), and once the client can pick it the old one gets SIGTERM
//! (deregister, drain, exit). Asserted: no call fails, every old process exits
//! cleanly. Printed: calls, failures, retried attempts, the slowest call.

// Figures are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, CallLoop, HelloServer, TestClient, Timing};

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");
const NODES: usize = 3;
const ROUNDS: usize = 5;
const CALLERS: usize = 16;

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(HelloServer::start(SERVER, &backend, timing).await);
    }
    let client = TestClient::new(backend.registry(), |o| o);
    let ids: Vec<String> = nodes.iter().map(|n| n.node_id().to_owned()).collect();
    client
        .wait_nodes("helloworld", Duration::from_secs(15), |n| {
            ids.iter().all(|id| n.contains(id))
        })
        .await
        .expect("the client sees the three nodes");
    let calls = CallLoop::start(&client, "helloworld", CALLERS, Duration::ZERO);
    assert!(
        calls.wait_more_ok(200, Duration::from_secs(30)).await,
        "{name}: calls flow: {:?}",
        calls.log()
    );

    let began = Instant::now();
    let mut restarts = 0;
    for round in 0..ROUNDS {
        for node in &mut nodes {
            let new = HelloServer::start(SERVER, &backend, timing).await;
            let id = new.node_id().to_owned();
            let seen = client
                .wait_nodes("helloworld", Duration::from_secs(15), |n| n.contains(&id))
                .await;
            assert!(
                seen.is_some(),
                "{name}: round {round}: the client never saw {id}"
            );
            let mut old = std::mem::replace(node, new);
            let status = old.terminate().await;
            assert!(
                status.is_some_and(|s| s.success()),
                "{name}: round {round}: {} did not exit cleanly after SIGTERM: {status:?}",
                old.node_id()
            );
            restarts += 1;
        }
        assert!(
            calls.wait_more_ok(100, Duration::from_secs(30)).await,
            "{name}: round {round}: calls flow: {:?}",
            calls.log()
        );
    }
    let took = began.elapsed();
    let log = calls.stop().await;
    let attempts = client.attempts();
    let retried: u64 = attempts.values().map(|a| a.failed).sum();
    client.close().await;
    for mut n in nodes {
        let _ = n.terminate().await;
    }
    backend.stop().await;
    println!(
        "{name}: rolling restart of {NODES} nodes, {ROUNDS} rounds ({restarts} restarts in \
         {took:?}) under {CALLERS} callers: {} calls, {} failed, {retried} failed attempts \
         retried, slowest {:?}, {} over 250 ms",
        log.total(),
        log.failed.len(),
        log.slowest,
        log.slow.len()
    );
    assert!(
        log.failed.is_empty(),
        "{name}: failed calls: {:?}",
        &log.failed[..log.failed.len().min(5)]
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
