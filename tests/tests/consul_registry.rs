//! The Consul registry on a real dev agent: register, get, list, deregister, the
//! go-micro mapping as Consul stores it, renewal and addresses.

use std::time::Duration;

use micro_registry::{Endpoint, Error, Node, RegisterOptions, Registry, ServiceRecord, Value};
use micro_tests::harness::consul::ConsulAgent;
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
        endpoints: vec![Endpoint {
            name: "Greeter.Hello".into(),
            request: Some(Value {
                name: "Request".into(),
                type_name: "Request".into(),
                values: vec![Value {
                    name: "name".into(),
                    type_name: "string".into(),
                    values: vec![],
                }],
            }),
            response: None,
            metadata: [("stream".to_owned(), "false".to_owned())].into(),
        }],
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
async fn register_get_list_deregister() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));

    let mut n1 = node("greeter-1", "127.0.0.1:9001");
    n1.metadata
        .insert("odd.key".into(), "dots are not allowed in Meta".into());
    n1.metadata
        .insert("consul-reserved".into(), "reserved prefix".into());
    let v1 = greeter("1.0", vec![n1.clone(), node("greeter-2", "127.0.0.1:9002")]);
    let v2 = greeter("2.0", vec![node("greeter-3", "127.0.0.1:9003")]);
    reg.register(&v1, &ttl).await.unwrap();
    reg.register(&v2, &ttl).await.unwrap();

    let mut got = reg.get_service("greeter").await.unwrap();
    got.sort_by(|a, b| a.version.cmp(&b.version));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].version, "1.0");
    assert_eq!(got[0].endpoints, v1.endpoints);
    let mut nodes = got[0].nodes.clone();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        nodes, v1.nodes,
        "every node, metadata from tags (odd keys included)"
    );
    assert_eq!(got[1].nodes, v2.nodes);

    // What Consul holds: go-micro's mapping, Meta without the keys Consul refuses.
    let svc = agent_json(&agent, "/v1/agent/service/greeter-1").await;
    assert_eq!(svc["Service"], "greeter");
    assert_eq!(svc["Address"], "127.0.0.1");
    assert_eq!(svc["Port"], 9001);
    let meta = svc["Meta"].as_object().unwrap();
    assert_eq!(meta.get("protocol").and_then(Json::as_str), Some("mucp"));
    assert!(!meta.contains_key("odd.key") && !meta.contains_key("consul-reserved"));
    let tags: Vec<&str> = svc["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(tags.iter().filter(|t| t.starts_with("t-")).count(), 4);
    assert_eq!(tags.iter().filter(|t| t.starts_with("e-")).count(), 1);
    assert_eq!(tags.iter().filter(|t| t.starts_with("v-")).count(), 1);
    let checks = agent_json(&agent, "/v1/agent/checks").await;
    let check = &checks["service:greeter-1"];
    assert_eq!(check["Type"], "ttl");
    assert_eq!(check["Status"], "passing");

    let mut list: Vec<(String, String)> = reg
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.version))
        .collect();
    list.sort();
    assert!(list.contains(&("greeter".into(), "1.0".into())), "{list:?}");
    assert!(list.contains(&("greeter".into(), "2.0".into())), "{list:?}");

    // Unchanged: renewed. Changed metadata: registered again and visible.
    reg.register(&v1, &ttl).await.unwrap();
    let mut changed = v1.clone();
    changed.nodes[1].metadata.insert("zone".into(), "b".into());
    reg.register(&changed, &ttl).await.unwrap();
    let got = reg.get_service("greeter").await.unwrap();
    let n2 = got
        .iter()
        .flat_map(|s| &s.nodes)
        .find(|n| n.id == "greeter-2")
        .unwrap();
    assert_eq!(n2.metadata.get("zone").map(String::as_str), Some("b"));

    // Deregistering one node leaves the rest; the last one makes it NotFound.
    reg.deregister(&greeter("1.0", vec![n1])).await.unwrap();
    let got = reg.get_service("greeter").await.unwrap();
    let ids: Vec<&str> = got
        .iter()
        .flat_map(|s| &s.nodes)
        .map(|n| n.id.as_str())
        .collect();
    assert!(!ids.contains(&"greeter-1") && ids.len() == 2, "{ids:?}");
    reg.deregister(&changed).await.unwrap();
    reg.deregister(&v2).await.unwrap();
    assert!(matches!(
        reg.get_service("greeter").await,
        Err(Error::NotFound)
    ));
    // Deregistering what is not registered is fine.
    reg.deregister(&v2).await.unwrap();
    assert_eq!(reg.heartbeats(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_is_not_found_and_bad_input_is_invalid() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    assert!(matches!(
        reg.get_service("nobody").await,
        Err(Error::NotFound)
    ));
    let empty = ServiceRecord {
        name: "x".into(),
        ..Default::default()
    };
    let ttl = RegisterOptions::default();
    assert!(matches!(
        reg.register(&empty, &ttl).await,
        Err(Error::Invalid(_))
    ));
    let nameless = greeter("1", vec![node("n", "127.0.0.1:1")]);
    let nameless = ServiceRecord {
        name: String::new(),
        ..nameless
    };
    assert!(matches!(
        reg.register(&nameless, &ttl).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_keep_their_brackets() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    let svc = greeter("1", vec![node("v6", "[::1]:8080")]);
    reg.register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
    let svc_json = agent_json(&agent, "/v1/agent/service/v6").await;
    assert_eq!(svc_json["Address"], "::1");
    assert_eq!(svc_json["Port"], 8080);
    assert_eq!(
        reg.get_service("greeter").await.unwrap()[0].nodes[0].address,
        "[::1]:8080"
    );
}
