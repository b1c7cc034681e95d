//! go-micro's tag encoding as read from a real agent: Go's own encodings, the old
//! plain forms, and foreign or garbage tags (ignored, never fatal).

use micro_consul::tags;
use micro_registry::{Endpoint, Error, Registry};
use micro_tests::harness::consul::ConsulAgent;
use serde_json::json;

/// Registers an instance directly through the agent API, the way another tool
/// (or another go-micro version) would.
async fn raw_register(agent: &ConsulAgent, id: &str, tags: &[String]) {
    let body =
        json!({"ID": id, "Name": "tagged", "Address": "127.0.0.1", "Port": 7100, "Tags": tags});
    let (status, text) = agent
        .api("PUT", "/v1/agent/service/register", Some(&body.to_string()))
        .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_micro_vectors_plain_forms_and_garbage() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();

    // Go's zlib output for version 1.0.0 (go-micro's TestEncodingVersion), with
    // foreign tags and garbage carrying valid prefixes around real tags.
    let meta = tags::encode_metadata(&[("protocol".to_owned(), "mucp".to_owned())].into());
    let ep = Endpoint {
        name: "Tagged.Call".into(),
        ..Default::default()
    };
    let mut go_tags = vec![
        "test".to_owned(),
        "t".to_owned(),
        "e".to_owned(),
        "v".to_owned(),
        "traefik.enable=true".to_owned(),
        "t-zz".to_owned(),
        format!("e-{}", hex_of(b"not a zlib stream")),
        format!("t-{}", tags::encode(b"not json")),
        "v-789c32d433d03300040000ffff02ce00ee".to_owned(),
    ];
    go_tags.extend(meta);
    go_tags.extend(tags::encode_endpoints(std::slice::from_ref(&ep)));
    raw_register(&agent, "tagged-go", &go_tags).await;

    // The old plain forms.
    let plain = vec![
        "v=2.0".to_owned(),
        r#"t={"zone":"a"}"#.to_owned(),
        r#"e={"name":"Tagged.Plain","request":null,"response":null,"metadata":{"k":"v"}}"#
            .to_owned(),
    ];
    raw_register(&agent, "tagged-plain", &plain).await;
    // Go's vector for "latest", no other tag.
    raw_register(
        &agent,
        "tagged-latest",
        &["v-789cca492c492d2e01040000ffff08cc028e".to_owned()],
    )
    .await;
    // No tags at all: empty version, no metadata.
    raw_register(&agent, "tagged-none", &[]).await;

    let mut got = reg.get_service("tagged").await.unwrap();
    got.sort_by(|a, b| a.version.cmp(&b.version));
    let versions: Vec<&str> = got.iter().map(|s| s.version.as_str()).collect();
    assert_eq!(versions, ["", "1.0.0", "2.0", "latest"]);

    assert!(got[0].nodes[0].metadata.is_empty());
    let go = &got[1];
    assert_eq!(go.nodes[0].id, "tagged-go");
    assert_eq!(go.nodes[0].address, "127.0.0.1:7100");
    assert_eq!(go.nodes[0].metadata.len(), 1, "{:?}", go.nodes[0].metadata);
    assert_eq!(go.nodes[0].metadata["protocol"], "mucp");
    assert_eq!(go.endpoints, vec![ep]);
    let plain = &got[2];
    assert_eq!(plain.nodes[0].metadata["zone"], "a");
    assert_eq!(plain.endpoints[0].name, "Tagged.Plain");
    assert_eq!(plain.endpoints[0].metadata["k"], "v");
    assert_eq!(got[3].nodes[0].id, "tagged-latest");

    // list_services decodes the versions from the catalog's tags.
    let mut listed: Vec<String> = reg
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.name == "tagged")
        .map(|s| s.version)
        .collect();
    listed.sort();
    assert_eq!(listed, ["1.0.0", "2.0", "latest"]);

    // Only garbage: the instance is still served, with what could be read.
    for id in ["tagged-go", "tagged-plain", "tagged-latest", "tagged-none"] {
        agent
            .api("PUT", &format!("/v1/agent/service/deregister/{id}"), None)
            .await;
    }
    raw_register(
        &agent,
        "tagged-garbage",
        &["t-".to_owned(), "e-zz".to_owned(), "v-00".to_owned()],
    )
    .await;
    let got = reg.get_service("tagged").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].version, "");
    assert!(got[0].endpoints.is_empty());
    agent
        .api("PUT", "/v1/agent/service/deregister/tagged-garbage", None)
        .await;
    assert!(matches!(
        reg.get_service("tagged").await,
        Err(Error::NotFound)
    ));
}

fn hex_of(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
