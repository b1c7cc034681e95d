//! Watches over blocking queries on a real agent: per-node events for one service
//! and for all services, and the registry cache kept current by them.

use std::sync::Arc;
use std::time::Duration;

use micro_registry::{
    Action, Cache, CacheOptions, Error, Node, RegisterOptions, Registry, ServiceRecord,
    WatchOptions, Watcher,
};
use micro_tests::harness::consul::{ConsulAgent, expect_event, next_event};
use micro_tests::harness::wait_until;

fn svc(name: &str, version: &str, id: &str, port: u16) -> ServiceRecord {
    let mut node = Node::new(id, format!("127.0.0.1:{port}"));
    node.metadata.insert("protocol".into(), "mucp".into());
    ServiceRecord {
        name: name.into(),
        version: version.into(),
        nodes: vec![node],
        ..Default::default()
    }
}

/// Collects events until every (action, id) in `want` was seen, in any order;
/// anything else fails.
async fn expect_set(w: &mut Box<dyn Watcher>, want: &[(Action, &str)]) {
    let mut left: Vec<(Action, String)> = want.iter().map(|(a, i)| (*a, i.to_string())).collect();
    while !left.is_empty() {
        let ev = next_event(w).await;
        let key = (ev.action, ev.service.nodes[0].id.clone());
        let at = left.iter().position(|k| *k == key);
        assert!(
            at.is_some(),
            "unexpected event {ev:?}, still waiting for {left:?}"
        );
        left.remove(at.unwrap_or_default());
    }
}

async fn put(agent: &ConsulAgent, path: &str, body: Option<&str>) {
    let (status, text) = agent.api("PUT", path, body).await;
    assert_eq!(status, 200, "{path}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_watch_reports_create_update_delete() {
    let agent = ConsulAgent::start().await;
    let reg = agent.options().heartbeat(false).build().unwrap();
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    let mut w = reg.watch(&WatchOptions::service("watched")).await.unwrap();

    let a = svc("watched", "1", "a", 7301);
    reg.register(&a, &ttl).await.unwrap();
    let ev = expect_event(&mut w, Action::Create, "a").await;
    assert_eq!(ev.service.version, "1");
    assert_eq!(ev.service.nodes[0].address, "127.0.0.1:7301");

    let mut a2 = a.clone();
    a2.nodes[0].metadata.insert("zone".into(), "z1".into());
    reg.register(&a2, &ttl).await.unwrap();
    let ev = expect_event(&mut w, Action::Update, "a").await;
    assert_eq!(ev.service.nodes[0].metadata["zone"], "z1");

    let b = svc("watched", "1", "b", 7302);
    reg.register(&b, &ttl).await.unwrap();
    expect_event(&mut w, Action::Create, "b").await;

    // A new version of a node: gone from the old version, new in the other.
    let b2 = svc("watched", "2", "b", 7302);
    reg.register(&b2, &ttl).await.unwrap();
    assert_eq!(
        expect_event(&mut w, Action::Delete, "b")
            .await
            .service
            .version,
        "1"
    );
    assert_eq!(
        expect_event(&mut w, Action::Create, "b")
            .await
            .service
            .version,
        "2"
    );

    // Critical counts as gone; passing again as back.
    put(&agent, "/v1/agent/check/fail/service:a", None).await;
    expect_event(&mut w, Action::Delete, "a").await;
    reg.register(&a2, &ttl).await.unwrap();
    expect_event(&mut w, Action::Create, "a").await;

    // Other services do not show up in this watch.
    reg.register(&svc("other", "1", "o", 7303), &ttl)
        .await
        .unwrap();
    reg.deregister(&b2).await.unwrap();
    expect_event(&mut w, Action::Delete, "b").await;

    w.stop();
    assert!(matches!(w.next().await, Err(Error::WatcherStopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_services_watch_sees_new_services_and_node_checks() {
    let agent = ConsulAgent::start().await;
    let reg = agent.options().heartbeat(false).build().unwrap();
    let ttl = RegisterOptions::ttl(Duration::from_secs(60));
    let mut w = reg.watch(&WatchOptions::all()).await.unwrap();

    reg.register(&svc("x", "1", "x-1", 7401), &ttl)
        .await
        .unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.action, ev.service.name.as_str()), (Action::Create, "x"));
    reg.register(&svc("y", "1", "y-1", 7402), &RegisterOptions::default())
        .await
        .unwrap();
    expect_event(&mut w, Action::Create, "y-1").await;
    // Same tags as y-1 and no check: only the catalog's index moves.
    reg.register(&svc("y", "1", "y-2", 7403), &RegisterOptions::default())
        .await
        .unwrap();
    expect_event(&mut w, Action::Create, "y-2").await;
    // A port change, same tags again.
    reg.register(&svc("y", "1", "y-2", 7404), &RegisterOptions::default())
        .await
        .unwrap();
    let ev = expect_event(&mut w, Action::Update, "y-2").await;
    assert_eq!(ev.service.nodes[0].address, "127.0.0.1:7404");

    // A node-level check turning critical takes every service of the node away.
    put(
        &agent,
        "/v1/agent/check/register",
        Some(r#"{"ID":"node-alive","Name":"node alive","TTL":"60s","Status":"passing"}"#),
    )
    .await;
    put(&agent, "/v1/agent/check/fail/node-alive", None).await;
    expect_set(
        &mut w,
        &[
            (Action::Delete, "x-1"),
            (Action::Delete, "y-1"),
            (Action::Delete, "y-2"),
        ],
    )
    .await;
    put(&agent, "/v1/agent/check/pass/node-alive", None).await;
    expect_set(
        &mut w,
        &[
            (Action::Create, "x-1"),
            (Action::Create, "y-1"),
            (Action::Create, "y-2"),
        ],
    )
    .await;

    // A service check turning critical, and a service going away.
    put(&agent, "/v1/agent/check/fail/service:x-1", None).await;
    expect_event(&mut w, Action::Delete, "x-1").await;
    reg.deregister(&svc("y", "1", "y-1", 7402)).await.unwrap();
    expect_event(&mut w, Action::Delete, "y-1").await;
    reg.deregister(&svc("y", "1", "y-2", 7404)).await.unwrap();
    let ev = expect_event(&mut w, Action::Delete, "y-2").await;
    assert_eq!(ev.service.name, "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_is_kept_current_by_the_watch() {
    let agent = ConsulAgent::start().await;
    let reg = Arc::new(agent.registry());
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    reg.register(&svc("cached", "1", "c-1", 7501), &ttl)
        .await
        .unwrap();
    // A 10 minute TTL: only the watch can make changes visible during the test.
    let cache = Cache::with_options(
        reg.clone(),
        CacheOptions::default().ttl(Duration::from_secs(600)),
    );
    assert_eq!(cache.get("cached").await.unwrap().node_count(), 1);
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            || async { cache.watched() == 1 }
        )
        .await
    );
    // Give the watch time to read its baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;

    reg.register(&svc("cached", "1", "c-2", 7502), &ttl)
        .await
        .unwrap();
    let seen = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            cache
                .get("cached")
                .await
                .map(|s| s.node_count())
                .unwrap_or(0)
                == 2
        },
    )
    .await;
    assert!(seen, "the new node reached the cache through the watch");

    reg.deregister(&svc("cached", "1", "c-1", 7501))
        .await
        .unwrap();
    let gone = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            match cache.get("cached").await {
                Ok(s) => s
                    .to_vec()
                    .iter()
                    .flat_map(|v| &v.nodes)
                    .all(|n| n.id == "c-2"),
                Err(_) => false,
            }
        },
    )
    .await;
    assert!(
        gone,
        "the deregistered node left the cache through the watch"
    );
    cache.stop().await;
}
