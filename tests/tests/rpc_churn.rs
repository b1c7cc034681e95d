//! Servers stopped and started again on new ports in a loop while a client calls
//! (the fault simulator of the gRPC-with-Consul demo), through real etcd and a
//! real Consul agent: a rolling restart of two `helloworld` servers, five times,
//! alternating SIGTERM and `kill -9`. Every call succeeds, retries included.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, CallLoop, HelloServer, TestClient, Timing};

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");

const CYCLES: usize = 5;

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let timing = Timing::SHORT;
    let mut slots = [
        HelloServer::start(SERVER, &backend, timing).await,
        HelloServer::start(SERVER, &backend, timing).await,
    ];

    // Killed nodes stay registered until their TTL runs out, so up to two dead
    // nodes may be offered next to the two live ones: a user expecting this
    // allows enough retries to get past them.
    let client = TestClient::new(backend.registry(), |o| o.retries(3));
    let ids = |s: &[HelloServer; 2]| [s[0].node_id().to_owned(), s[1].node_id().to_owned()];
    let first = ids(&slots);
    client
        .wait_nodes("helloworld", Duration::from_secs(10), |n| {
            first.iter().all(|id| n.contains(id))
        })
        .await
        .expect("the client sees both servers");
    let calls = CallLoop::start(&client, "helloworld", 2, Duration::from_millis(5));
    assert!(
        calls.wait_more_ok(50, Duration::from_secs(30)).await,
        "{name}: calls flow: {:?}",
        calls.log()
    );

    let mut addresses = vec![slots[0].address().to_owned(), slots[1].address().to_owned()];
    for cycle in 0..CYCLES {
        let started = Instant::now();
        let slot = cycle % 2;
        // Start the replacement (a new port, a new node id) and wait until the
        // client can pick it, then stop the old one.
        let new = HelloServer::start(SERVER, &backend, timing).await;
        let id = new.node_id().to_owned();
        let discovered = client
            .wait_nodes("helloworld", Duration::from_secs(15), |n| n.contains(&id))
            .await;
        assert!(
            discovered.is_some(),
            "{name}: cycle {cycle}: the client never saw {id}"
        );
        assert!(
            !addresses.contains(&new.address().to_owned()),
            "{name}: a new server reused an address"
        );
        addresses.push(new.address().to_owned());
        let mut old = std::mem::replace(&mut slots[slot], new);
        let how = if cycle % 2 == 0 {
            let status = old.terminate().await;
            assert!(
                status.is_some_and(|s| s.success()),
                "{name}: cycle {cycle}: exit after SIGTERM: {status:?}"
            );
            "SIGTERM"
        } else {
            old.kill9().await;
            "kill -9"
        };
        assert!(
            calls.wait_more_ok(50, Duration::from_secs(30)).await,
            "{name}: cycle {cycle}: calls flow: {:?}",
            calls.log()
        );
        let log = calls.log();
        println!(
            "{name}: cycle {cycle}: {how} of {} after the client saw its replacement in \
             {discovered:?}; cycle took {:?}; {} calls so far, {} failed",
            old.node_id(),
            started.elapsed(),
            log.total(),
            log.failed.len()
        );
    }
    let log = calls.stop().await;
    let attempts = client.attempts();
    client.close().await;
    backend.stop().await;
    let retried: u64 = attempts.values().map(|a| a.failed).sum();
    println!(
        "{name}: {CYCLES} cycles: {} calls, {} failed, slowest {:?}; {retried} failed attempts \
         retried; {} nodes used",
        log.total(),
        log.failed.len(),
        log.slowest,
        attempts.len()
    );
    assert!(
        log.failed.is_empty(),
        "{name}: failed calls: {:?}",
        log.failed
    );
    assert_eq!(
        attempts.len(),
        2 + CYCLES,
        "{name}: every server was called: {attempts:?}"
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
