//! The check options on a real agent: no TTL means no check (and a lost node is
//! registered again), TCP and HTTP checks probe each node, go-micro's order.

use std::time::Duration;

use micro_registry::{Error, Node, RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::consul::ConsulAgent;
use micro_tests::harness::{free_port, wait_until};
use serde_json::Value as Json;

fn node(id: &str, addr: &str) -> Node {
    let mut n = Node::new(id, addr);
    n.metadata.insert("protocol".into(), "mucp".into());
    n.metadata.insert("registry".into(), "consul".into());
    n
}

fn greeter(version: &str, nodes: Vec<Node>) -> ServiceRecord {
    ServiceRecord {
        name: "greeter".into(),
        version: version.into(),
        nodes,
        ..Default::default()
    }
}

async fn agent_json(agent: &ConsulAgent, path: &str) -> Json {
    let (status, body) = agent.api("GET", path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("agent json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ttl_there_is_no_check_and_a_lost_node_comes_back() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    let svc = greeter("1", vec![node("plain-1", "127.0.0.1:9100")]);
    reg.register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
    let checks = agent_json(&agent, "/v1/agent/checks").await;
    assert!(checks.get("service:plain-1").is_none(), "{checks}");
    assert_eq!(reg.heartbeats(), 0);
    assert_eq!(reg.get_service("greeter").await.unwrap()[0].nodes.len(), 1);

    // The agent loses it behind our back; the next (unchanged) registration
    // notices and registers it again.
    let (status, _) = agent
        .api("PUT", "/v1/agent/service/deregister/plain-1", None)
        .await;
    assert_eq!(status, 200);
    assert!(matches!(
        reg.get_service("greeter").await,
        Err(Error::NotFound)
    ));
    reg.register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(reg.get_service("greeter").await.unwrap()[0].nodes.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_option_probes_the_node_address() {
    let agent = ConsulAgent::start().await;
    let reg = agent
        .options()
        .tcp_check(Duration::from_millis(300))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap().to_string();
    let down = format!("127.0.0.1:{}", free_port());
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    reg.register(&greeter("1", vec![node("tcp-up", &up)]), &ttl)
        .await
        .unwrap();
    reg.register(&greeter("1", vec![node("tcp-down", &down)]), &ttl)
        .await
        .unwrap();
    // The TCP check takes precedence over the TTL: no heartbeat task.
    assert_eq!(reg.heartbeats(), 0);
    let checks = agent_json(&agent, "/v1/agent/checks").await;
    assert_eq!(checks["service:tcp-up"]["Type"], "tcp");

    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            match reg.get_service("greeter").await {
                Ok(s) => {
                    let ids: Vec<String> = s[0].nodes.iter().map(|n| n.id.clone()).collect();
                    ids == ["tcp-up"]
                }
                Err(_) => false,
            }
        },
    )
    .await;
    assert!(ok, "only the node whose port answers is healthy");
    drop(listener);
}

/// Serves `HTTP/1.1 200 OK` to every connection (a node's health endpoint).
async fn health_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_option_probes_each_node() {
    let agent = ConsulAgent::start().await;
    let reg = agent
        .options()
        .http_check(micro_consul::HttpCheck {
            url: "http://{host}:{port}/health".into(),
            interval: Duration::from_millis(300),
            timeout: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    let (up, server) = health_server().await;
    let down = format!("127.0.0.1:{}", free_port());
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));
    reg.register(&greeter("1", vec![node("http-up", &up)]), &ttl)
        .await
        .unwrap();
    reg.register(&greeter("1", vec![node("http-down", &down)]), &ttl)
        .await
        .unwrap();
    assert_eq!(reg.heartbeats(), 0);
    let checks = agent_json(&agent, "/v1/agent/checks").await;
    assert_eq!(checks["service:http-up"]["Type"], "http");

    let ok = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            match reg.get_service("greeter").await {
                Ok(s) => {
                    s[0].nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>() == ["http-up"]
                }
                Err(_) => false,
            }
        },
    )
    .await;
    assert!(ok, "only the node whose health endpoint answers is healthy");
    server.abort();
}
