//! Health filtering on a real agent: a node with any critical check (its own, a
//! node-level one, maintenance mode) is left out; warning and passing nodes stay.

use std::time::Duration;

use micro_registry::{Error, Node, RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::consul::ConsulAgent;

fn svc(ids: &[&str]) -> ServiceRecord {
    ServiceRecord {
        name: "health".into(),
        version: "1".into(),
        nodes: ids
            .iter()
            .enumerate()
            .map(|(i, id)| Node::new(*id, format!("127.0.0.1:{}", 7200 + i)))
            .collect(),
        ..Default::default()
    }
}

async fn healthy_ids(reg: &impl Registry) -> Result<Vec<String>, Error> {
    let mut ids: Vec<String> = reg
        .get_service("health")
        .await?
        .into_iter()
        .flat_map(|s| s.nodes)
        .map(|n| n.id)
        .collect();
    ids.sort();
    Ok(ids)
}

async fn put(agent: &ConsulAgent, path: &str, body: Option<&str>) {
    let (status, text) = agent.api("PUT", path, body).await;
    assert_eq!(status, 200, "{path}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warning_kept_critical_dropped() {
    let agent = ConsulAgent::start().await;
    // No heartbeat: it would pass the checks this test sets.
    let reg = agent.options().heartbeat(false).build().unwrap();
    let all = svc(&["h-1", "h-2", "h-3"]);
    reg.register(&all, &RegisterOptions::ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["h-1", "h-2", "h-3"]);

    put(&agent, "/v1/agent/check/warn/service:h-2", None).await;
    put(&agent, "/v1/agent/check/fail/service:h-3", None).await;
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["h-1", "h-2"]);

    put(&agent, "/v1/agent/check/fail/service:h-1", None).await;
    put(&agent, "/v1/agent/check/fail/service:h-2", None).await;
    assert!(matches!(healthy_ids(&reg).await, Err(Error::NotFound)));

    // Registering again (unchanged) passes the TTL check: healthy again.
    reg.register(&all, &RegisterOptions::ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["h-1", "h-2", "h-3"]);
}

/// `serfHealth` reflects the agent's own gossip membership, and a single dev
/// agent never sees itself as failed, so it cannot be made critical here. A second
/// node-level check (no service id) shows up in every service entry's checks just
/// like `serfHealth` does, so turning it critical tests the same rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_node_level_check_drops_every_service_of_the_node() {
    let agent = ConsulAgent::start().await;
    let reg = agent.options().heartbeat(false).build().unwrap();
    reg.register(
        &svc(&["n-1", "n-2"]),
        &RegisterOptions::ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    put(
        &agent,
        "/v1/agent/check/register",
        Some(r#"{"ID":"node-alive","Name":"node alive","TTL":"60s","Status":"passing"}"#),
    )
    .await;
    let (_, body) = agent.api("GET", "/v1/health/service/health", None).await;
    assert!(
        body.contains("serfHealth") && body.contains("node-alive"),
        "{body}"
    );
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["n-1", "n-2"]);

    put(&agent, "/v1/agent/check/fail/node-alive", None).await;
    // The services' own checks still pass; the node check alone drops them.
    let (_, checks) = agent.api("GET", "/v1/health/checks/health", None).await;
    assert!(!checks.contains("critical"), "{checks}");
    assert!(matches!(healthy_ids(&reg).await, Err(Error::NotFound)));

    put(&agent, "/v1/agent/check/pass/node-alive", None).await;
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["n-1", "n-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_drops_the_node() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    reg.register(
        &svc(&["m-1", "m-2"]),
        &RegisterOptions::ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    put(
        &agent,
        "/v1/agent/service/maintenance/m-1?enable=true&reason=test",
        None,
    )
    .await;
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["m-2"]);
    put(
        &agent,
        "/v1/agent/service/maintenance/m-1?enable=false",
        None,
    )
    .await;
    assert_eq!(healthy_ids(&reg).await.unwrap(), ["m-1", "m-2"]);
}
