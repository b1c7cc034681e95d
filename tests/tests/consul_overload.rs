//! The registry in front of an agent that stops answering (overloaded, or the
//! network between them drops what it is sent), through a proxy that can hold
//! requests: requests in flight are bounded by `max_requests`, and renewals and
//! heartbeats that get no answer are retried as renewals, not turned into full
//! registrations that would add load to the agent. A renewal the agent refuses
//! (it lost the node) still registers the node in full.

use std::time::Duration;

use micro_consul::ConsulRegistry;
use micro_registry::{Error, Node, RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::consul::{ConsulAgent, CountingProxy, http};
use micro_tests::harness::wait_until;

const REGISTER: &str = "PUT /v1/agent/service/register";
const PASS: &str = "PUT /v1/agent/check/pass/";

fn svc(id: &str) -> ServiceRecord {
    ServiceRecord {
        name: "overload".into(),
        version: "1".into(),
        nodes: vec![Node::new(id, "127.0.0.1:7700")],
        ..Default::default()
    }
}

/// Ids of the services the agent holds.
async fn agent_services(agent: &ConsulAgent) -> Vec<String> {
    let (status, body) = http(agent.http_addr(), "GET", "/v1/agent/services", None, None)
        .await
        .expect("agent answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

type Calls = tokio::task::JoinSet<micro_registry::Result<()>>;

/// `n` registrations at once, of services `<prefix>-<i>`.
fn register_many(reg: &ConsulRegistry, prefix: &str, n: usize) -> Calls {
    let mut calls = Calls::new();
    for i in 0..n {
        let (reg, name) = (reg.clone(), format!("{prefix}-{i}"));
        calls.spawn(async move { reg.register(&svc(&name), &RegisterOptions::default()).await });
    }
    calls
}

/// Waits (at most 20 s) for every call, sampling the connections open through
/// the proxy: their peak and the calls' results. Three in flight can show as
/// four for a moment: a connection the client closed that the proxy has not
/// seen close yet, beside the one that replaced it.
async fn watch_open(
    proxy: &CountingProxy,
    mut calls: Calls,
) -> (usize, Vec<micro_registry::Result<()>>) {
    let mut peak = 0;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !calls.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls did not end in 20 s"
        );
        peak = peak.max(proxy.open());
        match calls.try_join_next() {
            Some(res) => out.push(res.expect("call task")),
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    (peak, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent
        .options()
        .address(proxy.address())
        .timeout(Duration::from_secs(2))
        .max_requests(3)
        .build()
        .unwrap();

    // Twelve registrations at once to an agent that does not answer: three
    // connections, the rest wait for a turn and time out within the timeout.
    proxy.hold(true);
    let (peak, results) = watch_open(&proxy, register_many(&reg, "held", 12)).await;
    for res in results {
        assert!(
            matches!(res, Err(Error::Timeout { .. })),
            "a held registration should time out: {res:?}"
        );
    }
    println!("peak connections, 12 held requests, max_requests(3): {peak}");
    assert!(
        (1..=4).contains(&peak),
        "{peak} connections open at once for 12 held requests with max_requests(3)"
    );

    // Answered again: thirty at once all land, three at a time.
    proxy.hold(false);
    let (peak, results) = watch_open(&proxy, register_many(&reg, "ok", 30)).await;
    for res in results {
        res.expect("registration through an agent that answers");
    }
    let ids = agent_services(&agent).await;
    for i in 0..30 {
        assert!(
            ids.contains(&format!("ok-{i}")),
            "ok-{i} missing from {ids:?}"
        );
    }
    println!("peak connections, 30 answered requests, max_requests(3): {peak}");
    assert!(
        peak <= 4,
        "{peak} connections open at once with max_requests(3)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_renewal_is_not_a_full_registration() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent
        .options()
        .address(proxy.address())
        .timeout(Duration::from_millis(700))
        .heartbeat(false)
        .build()
        .unwrap();
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    reg.register(&svc("renew-1"), &ttl).await.unwrap();
    assert_eq!(proxy.requests_to(REGISTER), 1);

    proxy.hold(true);
    let res = reg.register(&svc("renew-1"), &ttl).await;
    assert!(matches!(res, Err(Error::Timeout { .. })), "{res:?}");
    assert_eq!(
        proxy.requests_to(PASS),
        1,
        "the renewal is a TTL pass: {:?}",
        proxy.request_lines()
    );
    assert_eq!(
        proxy.requests_to(REGISTER),
        1,
        "a renewal that got no answer was followed by a full registration"
    );

    // Answered again: the next renewal is a pass, nothing more.
    proxy.hold(false);
    reg.register(&svc("renew-1"), &ttl).await.unwrap();
    assert_eq!(proxy.requests_to(PASS), 2);
    assert_eq!(proxy.requests_to(REGISTER), 1);

    // The agent lost the node (removed behind the registry's back): it refuses
    // the pass, and the registry registers the node in full.
    let (status, body) = http(
        agent.http_addr(),
        "PUT",
        "/v1/agent/service/deregister/renew-1",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    reg.register(&svc("renew-1"), &ttl).await.unwrap();
    assert_eq!(proxy.requests_to(PASS), 3);
    assert_eq!(proxy.requests_to(REGISTER), 2);
    assert!(agent_services(&agent).await.contains(&"renew-1".to_owned()));
    reg.deregister(&svc("renew-1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_heartbeat_passes_again_and_a_refused_one_registers() {
    let agent = ConsulAgent::start().await;
    let proxy = CountingProxy::start(agent.http_addr()).await;
    let reg = agent
        .options()
        .address(proxy.address())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // A 1 s TTL: the heartbeat passes the check every half second.
    let ttl = RegisterOptions::ttl(Duration::from_secs(1));
    reg.register(&svc("beat-1"), &ttl).await.unwrap();
    assert_eq!(reg.heartbeats(), 1);

    proxy.hold(true);
    let passes = proxy.requests_to(PASS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tried = proxy.requests_to(PASS) - passes;
    assert!(
        tried >= 2,
        "the heartbeat should keep passing ({tried} passes)"
    );
    assert_eq!(
        proxy.requests_to(REGISTER),
        1,
        "a heartbeat that got no answer registered the node in full"
    );

    // Answered again: the agent let the check go critical but still has the
    // node; the heartbeat's next pass makes it healthy again without a
    // registration.
    proxy.hold(false);
    let healthy = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            reg.get_service("overload")
                .await
                .is_ok_and(|s| s.first().is_some_and(|s| s.nodes.len() == 1))
        },
    )
    .await;
    assert!(healthy, "the node should be healthy again");
    assert_eq!(proxy.requests_to(REGISTER), 1);

    // The agent lost the node: the heartbeat's pass is refused and it
    // registers the node again.
    let (status, _) = http(
        agent.http_addr(),
        "PUT",
        "/v1/agent/service/deregister/beat-1",
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let back = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { agent_services(&agent).await.contains(&"beat-1".to_owned()) },
    )
    .await;
    assert!(back, "the heartbeat should register the lost node again");
    assert_eq!(proxy.requests_to(REGISTER), 2);
    reg.deregister(&svc("beat-1")).await.unwrap();
}
