//! The registry's background work on a real agent: idle watches do not spin,
//! stopping a watcher or deregistering a node ends its task, and dropping the
//! registry leaves no task running. Requests are counted by a proxy in front of
//! the agent.

use std::time::Duration;

use micro_registry::{Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::consul::{ConsulAgent, CountingProxy};
use micro_tests::harness::wait_until;

fn svc(id: &str) -> ServiceRecord {
    ServiceRecord {
        name: "tasks".into(),
        version: "1".into(),
        nodes: vec![Node::new(id, "127.0.0.1:7600")],
        ..Default::default()
    }
}

/// Requests through `proxy` during `d`.
async fn requests_during(proxy: &CountingProxy, d: Duration) -> usize {
    let before = proxy.requests();
    tokio::time::sleep(d).await;
    proxy.requests() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watches_do_not_spin() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent
        .options()
        .address(proxy.address())
        .watch_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    reg.register(&svc("idle-1"), &RegisterOptions::default())
        .await
        .unwrap();
    let _one = reg.watch(&WatchOptions::service("tasks")).await.unwrap();
    let _all = reg.watch(&WatchOptions::all()).await.unwrap();
    // Let the agent finish starting up (its own service and checks settle).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let n = requests_during(&proxy, Duration::from_secs(6)).await;
    println!("requests by an idle service watch and an idle all-services watch in 6 s: {n}");
    // Three blocking queries of 2 s each: about 9 requests. A busy loop makes
    // hundreds (the minimum spacing alone would allow 180).
    assert!(n <= 30, "idle watches made {n} requests in 6 s");
    assert!(n >= 3, "the watches should keep asking ({n})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_watcher_ends_its_queries() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent
        .options()
        .address(proxy.address())
        .watch_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut one = reg.watch(&WatchOptions::service("tasks")).await.unwrap();
    let all = reg.watch(&WatchOptions::all()).await.unwrap();
    assert!(requests_during(&proxy, Duration::from_millis(2500)).await >= 2);
    one.stop();
    drop(all);
    // A query in flight when the task was stopped may still be counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = requests_during(&proxy, Duration::from_secs(3)).await;
    assert_eq!(n, 0, "stopped watchers kept querying");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_stops_the_heartbeat() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent.options().address(proxy.address()).build().unwrap();
    // A 600 ms TTL: the heartbeat passes it about every 200 ms.
    reg.register(
        &svc("beat-1"),
        &RegisterOptions::ttl(Duration::from_millis(600)),
    )
    .await
    .unwrap();
    assert_eq!(reg.heartbeats(), 1);
    let n = requests_during(&proxy, Duration::from_millis(1500)).await;
    assert!(n >= 3, "the heartbeat should pass the check ({n} requests)");
    // Kept healthy by the heartbeat alone, well past the TTL.
    assert_eq!(reg.get_service("tasks").await.unwrap()[0].nodes.len(), 1);

    reg.deregister(&svc("beat-1")).await.unwrap();
    assert_eq!(reg.heartbeats(), 0);
    let n = requests_during(&proxy, Duration::from_millis(1500)).await;
    assert_eq!(n, 0, "requests after deregistration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_registry_leaves_no_task() {
    let agent = ConsulAgent::start().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    {
        let reg = agent.registry();
        reg.register(
            &svc("drop-1"),
            &RegisterOptions::ttl(Duration::from_millis(900)),
        )
        .await
        .unwrap();
        reg.register(
            &svc("drop-2"),
            &RegisterOptions::ttl(Duration::from_secs(30)),
        )
        .await
        .unwrap();
        let w1 = reg.watch(&WatchOptions::service("tasks")).await.unwrap();
        let w2 = reg.watch(&WatchOptions::all()).await.unwrap();
        assert_eq!(reg.heartbeats(), 2);
        assert!(metrics.num_alive_tasks() >= baseline + 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(w1);
        drop(w2);
    }
    let settled = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { metrics.num_alive_tasks() == baseline },
    )
    .await;
    assert!(
        settled,
        "{} tasks alive after the registry was dropped, {baseline} before",
        metrics.num_alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_heartbeats_without_deregistering() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    reg.register(
        &svc("close-1"),
        &RegisterOptions::ttl(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert_eq!(reg.heartbeats(), 1);
    reg.close().await;
    assert_eq!(reg.heartbeats(), 0);
    // Still registered, and it turns critical once the TTL runs out.
    let (_, body) = agent.api("GET", "/v1/agent/service/close-1", None).await;
    assert!(body.contains("close-1"), "{body}");
    let dropped = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { reg.get_service("tasks").await.is_err() },
    )
    .await;
    assert!(dropped, "the node should turn critical after its TTL");
}

/// A node its owner registers every third of the TTL (a server's 30 s with a
/// 90 s TTL) costs the agent one check update per registration: the heartbeat
/// stays silent instead of passing the check a second time in between (before:
/// two updates per interval, one from each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_often_keeps_the_heartbeat_silent() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent.options().address(proxy.address()).build().unwrap();
    let ttl = RegisterOptions::ttl(Duration::from_millis(1500));
    reg.register(&svc("often-1"), &ttl).await.unwrap();
    assert_eq!(reg.heartbeats(), 1);
    let before = proxy.requests();
    let rounds = 8;
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(500)).await;
        reg.register(&svc("often-1"), &ttl).await.unwrap();
    }
    let n = proxy.requests() - before;
    assert!(
        n <= rounds + 1,
        "{n} requests for {rounds} registrations: the heartbeat passed the check too"
    );
    // Left alone, the heartbeat keeps the node healthy past the TTL.
    let n = requests_during(&proxy, Duration::from_millis(2500)).await;
    assert!(n >= 2, "the heartbeat should pass the check ({n} requests)");
    assert_eq!(reg.get_service("tasks").await.unwrap()[0].nodes.len(), 1);
    reg.deregister(&svc("often-1")).await.unwrap();
}
