//! What a watch of all services costs per change on a real agent, counted on the
//! wire through a proxy: the restart of a node beside others of its service (the
//! commonest change in a go-micro mesh, which the catalog's tag lists do not show)
//! is pinned by the checks query and reads that one service again, not every
//! service of the datacenter. Before, each such change read all of them, so a
//! watch over 1 000 services fell behind at 1 % churn (docs/scale.md).
//!
//! A change neither query pins (here: an instance without checks beside one with
//! the same tags) is still reported, by the full re-read the watch then owes.

use std::time::Duration;

use micro_consul::ConsulRegistry;
use micro_registry::{Action, Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::consul::{ConsulAgent, CountingProxy, expect_event};

const SERVICES: usize = 40;
const ROUNDS: usize = 5;
/// A service read per change, with room for a change seen by two answers.
const READS_PER_CHANGE: usize = 2;

fn svc(name: &str, id: &str, port: u16) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        version: "1".into(),
        nodes: vec![Node {
            id: id.into(),
            address: format!("127.0.0.1:{port}"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn reads(proxy: &CountingProxy) -> usize {
    proxy.requests_to("GET /v1/health/service/")
}

/// An agent, a counting proxy in front of it, and a registry writing to the
/// agent directly that registered `SERVICES` services of one node each, with
/// TTL checks.
async fn datacenter() -> (ConsulAgent, CountingProxy, ConsulRegistry) {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let writer = agent.options().heartbeat(false).build().expect("registry");
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    for i in 0..SERVICES {
        let port = 7500 + i as u16;
        writer
            .register(&svc(&format!("w{i}"), &format!("w{i}-1"), port), &ttl)
            .await
            .expect("register");
    }
    (agent, proxy, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_reads_its_service_not_the_datacenter() {
    let (agent, proxy, writer) = datacenter().await;
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    let (one, two) = (svc("churn", "c-1", 7600), svc("churn", "c-2", 7601));
    writer.register(&one, &ttl).await.unwrap();
    writer.register(&two, &ttl).await.unwrap();

    // No owed full re-read during the rounds: what is read is what was pinned.
    let watcher: ConsulRegistry = agent
        .options()
        .address(proxy.address())
        .heartbeat(false)
        .watch_full_read_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    let mut w = watcher.watch(&WatchOptions::all()).await.unwrap();
    let baseline = reads(&proxy);
    assert!(
        baseline > SERVICES,
        "the baseline reads every service: {baseline} reads"
    );

    for _ in 0..ROUNDS {
        writer.deregister(&two).await.unwrap();
        expect_event(&mut w, Action::Delete, "c-2").await;
        writer.register(&two, &ttl).await.unwrap();
        expect_event(&mut w, Action::Create, "c-2").await;
    }
    let changes = 2 * ROUNDS;
    let spent = reads(&proxy) - baseline;
    println!(
        "{spent} service reads for {changes} node restarts' changes among {} services",
        SERVICES + 1
    );
    assert!(
        spent <= READS_PER_CHANGE * changes,
        "{spent} service reads for {changes} changes (at most {} expected; \
         reading every service per change would be about {})",
        READS_PER_CHANGE * changes,
        changes * (SERVICES + 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_no_answer_pins_is_found_by_the_owed_full_read() {
    let (agent, proxy, writer) = datacenter().await;
    let interval = Duration::from_secs(2);
    let watcher = agent
        .options()
        .address(proxy.address())
        .heartbeat(false)
        .watch_full_read_interval(interval)
        .build()
        .unwrap();
    let mut w = watcher.watch(&WatchOptions::all()).await.unwrap();
    // Let the first interval pass, so the change below waits for no earlier
    // full re-read's interval but its own.
    tokio::time::sleep(interval).await;
    let before = reads(&proxy);

    // Another instance with the same tags and no check: the catalog moves, its
    // tag lists and the checks do not show where.
    writer
        .register(&svc("w0", "w0-2", 7700), &RegisterOptions::default())
        .await
        .unwrap();
    let ev = expect_event(&mut w, Action::Create, "w0-2").await;
    assert_eq!(ev.service.nodes[0].address, "127.0.0.1:7700");
    let spent = reads(&proxy) - before;
    println!("{spent} service reads to find a change no answer pinned");
    assert!(
        spent >= SERVICES,
        "found by a full re-read: {spent} reads of {SERVICES} services"
    );
}
