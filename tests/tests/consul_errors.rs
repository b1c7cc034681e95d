//! Failures reach the caller as clear registry errors: an unreachable agent (and
//! failover to the next address), an agent that never answers (timeout), an error
//! answer from Consul.

use std::time::Duration;

use micro_consul::ConsulOptions;
use micro_registry::{Error, Node, RegisterOptions, Registry, ServiceRecord};
use micro_tests::harness::consul::ConsulAgent;
use micro_tests::harness::free_port;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_agent_is_a_backend_error_and_the_next_address_is_tried() {
    let agent = ConsulAgent::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let reg = ConsulOptions::new()
        .address(&dead)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = reg.get_service("greeter").await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains(&dead), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    let err = reg
        .register(
            &greeter("1", vec![node("x", "127.0.0.1:1")]),
            &RegisterOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert_eq!(
        reg.heartbeats(),
        0,
        "a failed first registration keeps nothing running"
    );

    let reg = ConsulOptions::new()
        .addresses([dead.as_str(), agent.address().as_str()])
        .build()
        .unwrap();
    let svc = greeter("1", vec![node("failover-1", "127.0.0.1:9200")]);
    reg.register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(reg.get_service("greeter").await.unwrap()[0].nodes.len(), 1);
    assert!(
        reg.agent_url().contains(&agent.address()),
        "{}",
        reg.agent_url()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_is_a_timeout() {
    // Accepts connections and reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let reg = ConsulOptions::new()
        .address(addr.to_string())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = reg.get_service("greeter").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                registry: "consul",
                op: "get_service"
            }
        ),
        "{err:?}"
    );
    let err = reg
        .register(
            &greeter("1", vec![node("t", "127.0.0.1:1")]),
            &RegisterOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { op: "register", .. }),
        "{err:?}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_errors_are_returned() {
    // An unknown datacenter makes Consul answer 500 ("No path to datacenter"),
    // like go-micro's TestConsul_GetService_WithError.
    let agent = ConsulAgent::start().await;
    let reg = agent
        .options()
        .datacenter("nowhere")
        .allow_stale(false)
        .build()
        .unwrap();
    let err = reg.get_service("greeter").await.unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(reg.list_services().await.is_err());
    assert!(
        reg.watch(&micro_registry::WatchOptions::service("greeter"))
            .await
            .is_err()
    );
    // Registration goes to the local agent whatever the datacenter option says.
    let svc = greeter("1", vec![node("dc-1", "127.0.0.1:9300")]);
    reg.register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
    assert_eq!(
        agent.registry().get_service("greeter").await.unwrap()[0]
            .nodes
            .len(),
        1
    );
}
