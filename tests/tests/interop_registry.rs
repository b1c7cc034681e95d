//! Each side reads the other side's registration (go-micro v4.11 and v5.30, etcd
//! and Consul): our registry's `get_service` and `list_services` see a Go server
//! with its version, node metadata and every endpoint (handlers, streams, a
//! subscriber) exactly as go-micro itself reads them, and a Go client's `get` and
//! `list` see our server exactly as we registered it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use micro::registry::{Registry, ServiceRecord};
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, GoProc, InteropHelloworld, Recorder, Registries, RegistryKind, for_each_combo,
    our_server, poll, run, subscriber,
};
use serde_json::{Value, json};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_reads_the_others_registration() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("registry records", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let registry = registries.registry(combo.registry);
    let base = registries.go_args(combo.registry);
    let go_name = format!("go-reg-{}", combo.slug());
    let go_topic = format!("interop.{}.go-reg", combo.slug());
    let mut args = base.clone();
    args.extend(
        [
            "--name",
            &go_name,
            "--version",
            "1.2.3",
            "--server_metadata",
            "team=go",
            "--server_metadata",
            "zone=a",
            "--subscribe",
            &go_topic,
        ]
        .map(String::from),
    );
    let mut server = GoProc::spawn(combo.go, "server", &args);
    let ready = server.ready(LIMIT).await;

    let rust_name = format!("rust-reg-{}", combo.slug());
    let rust_topic = format!("interop.{}.rust-reg", combo.slug());
    let service = our_server(&rust_name, registry.clone())
        .version("2.0.0")
        .metadata("team", "rust")
        .metadata("zone", "b")
        .handle(InteropHelloworld::new(Recorder::new()))
        .subscribe(subscriber(&rust_topic, None, Recorder::new()))
        .build()
        .expect("build");
    service.start().await.expect("start");

    // Our view of the Go server, field by field, then as go-micro sees it.
    let ours = get_one(&*registry, &go_name).await;
    assert_eq!(ours.version, "1.2.3");
    assert_eq!(ours.nodes.len(), 1, "{ours:?}");
    assert_eq!(ours.nodes[0].id, ready.node_id);
    assert_eq!(ours.nodes[0].address, ready.address);
    assert_eq!(
        ours.nodes[0].metadata,
        node_metadata(combo.registry, &[("team", "go"), ("zone", "a")])
    );
    check_endpoints(&ours, &go_topic, &go_endpoint_shapes(&go_topic));
    let go_view = go_get(&registries, combo, &go_name).await;
    assert_eq!(
        serde_json::to_value(&ours).expect("json"),
        go_view,
        "our record of the Go server differs from go-micro's"
    );

    // The Go client's view of our server equals what we registered.
    let ours = get_one(&*registry, &rust_name).await;
    assert_eq!(ours.version, "2.0.0");
    assert_eq!(ours.nodes.len(), 1, "{ours:?}");
    assert_eq!(ours.nodes[0].id, service.server().node_id());
    assert_eq!(
        Some(ours.nodes[0].address.clone()),
        service.server().address()
    );
    assert_eq!(
        ours.nodes[0].metadata,
        node_metadata(combo.registry, &[("team", "rust"), ("zone", "b")])
    );
    check_endpoints(&ours, &rust_topic, &rust_endpoint_shapes(&rust_topic));
    let go_view = go_get(&registries, combo, &rust_name).await;
    assert_eq!(
        go_view,
        serde_json::to_value(&ours).expect("json"),
        "go-micro reads our record differently"
    );

    // Listing: each side lists the other.
    let listed = registry.list_services().await.expect("list_services");
    let go_entry = listed
        .iter()
        .find(|s| s.name == go_name)
        .unwrap_or_else(|| {
            panic!(
                "{go_name} not in {:?}",
                listed.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    if combo.registry == RegistryKind::Etcd {
        assert_eq!(go_entry.version, "1.2.3", "{go_entry:?}");
        assert_eq!(go_entry.nodes.len(), 1, "{go_entry:?}");
        assert_eq!(go_entry.nodes[0].id, ready.node_id, "{go_entry:?}");
    }
    let mut list_args = vec!["list".to_owned()];
    list_args.extend(base);
    let out = run(combo.go, "client", &list_args, LIMIT).await;
    let lines = out.expect_code(0);
    let go_listed = lines[0]["services"].as_array().expect("services");
    let entry = go_listed
        .iter()
        .find(|s| s["name"] == json!(rust_name))
        .unwrap_or_else(|| panic!("{rust_name} not in the Go client's list: {lines:?}"));
    if combo.registry == RegistryKind::Etcd {
        // go-micro's etcd registry lists whole records, Consul's names only.
        assert_eq!(entry, &serde_json::to_value(&ours).expect("json"));
    } else {
        let names_only = json!({"name": rust_name, "version": "", "metadata": null,
            "endpoints": null, "nodes": null});
        assert_eq!(entry, &names_only);
    }

    service.stop().await.expect("stop");
    let (by_itself, out) = server.terminate(LIMIT).await;
    assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
}

/// The one record of `name`, once the registry has it.
async fn get_one(registry: &dyn Registry, name: &str) -> ServiceRecord {
    let found = poll(LIMIT, || async {
        registry
            .get_service(name)
            .await
            .ok()
            .filter(|s| s.len() == 1 && !s[0].nodes.is_empty())
    })
    .await;
    let (mut services, _) = found.unwrap_or_else(|| panic!("{name} never registered"));
    services.remove(0)
}

/// The record of `name` as the Go client reads it (`client get`).
async fn go_get(registries: &Registries, combo: Combo, name: &str) -> Value {
    let mut args = vec!["get".to_owned()];
    args.extend(registries.go_args(combo.registry));
    args.extend(["--service".to_owned(), name.to_owned()]);
    let out = run(combo.go, "client", &args, LIMIT).await;
    let lines = out.expect_code(0);
    let services = lines[0]["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{}", out.context());
    services[0].clone()
}

/// A server node's metadata: the user's pairs and go-micro's own keys.
fn node_metadata(kind: RegistryKind, user: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("broker", "http"),
        ("protocol", "mucp"),
        ("registry", kind.name()),
        ("server", "mucp"),
        ("transport", "http"),
    ]
    .iter()
    .chain(user)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    m.retain(|_, v| !v.is_empty());
    m
}

/// Checks every endpoint of `svc` against `shapes` (name -> JSON of the
/// endpoint), in any order.
fn check_endpoints(svc: &ServiceRecord, topic: &str, shapes: &BTreeMap<&str, Value>) {
    let got: BTreeMap<&str, Value> = svc
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), serde_json::to_value(e).expect("json")))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        shapes.keys().collect::<Vec<_>>(),
        "endpoint names of {} (topic {topic})",
        svc.name
    );
    for (name, want) in shapes {
        assert_eq!(&got[name], want, "endpoint {name} of {}", svc.name);
    }
}

fn value(name: &str, fields: &[(&str, &str)]) -> Value {
    let values: Vec<Value> = fields
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t, "values": null}))
        .collect();
    json!({"name": name, "type": name, "values": if values.is_empty() { Value::Null } else { json!(values) }})
}

fn endpoint(name: &str, request: Value, response: Value, metadata: Value) -> Value {
    json!({"name": name, "request": request, "response": response, "metadata": metadata})
}

fn subscriber_endpoint(topic: &str, event: &str, types: [&str; 3]) -> Value {
    endpoint(
        "Func",
        value(
            event,
            &[
                ("id", types[0]),
                ("timestamp", types[1]),
                ("message", types[2]),
            ],
        ),
        Value::Null,
        json!({"subscriber": "true", "topic": topic}),
    )
}

/// The endpoints go-micro's reflection registers for the Go peer server.
fn go_endpoint_shapes(topic: &str) -> BTreeMap<&'static str, Value> {
    let stream = |name| {
        endpoint(
            name,
            value("Context", &[]),
            value("Stream", &[]),
            json!({"stream": "true"}),
        )
    };
    BTreeMap::from([
        ("Helloworld.BidiStream", stream("Helloworld.BidiStream")),
        (
            "Helloworld.Call",
            endpoint(
                "Helloworld.Call",
                value("CallRequest", &[("name", "string")]),
                value("CallResponse", &[("msg", "string")]),
                json!({}),
            ),
        ),
        ("Helloworld.ClientStream", stream("Helloworld.ClientStream")),
        (
            "Helloworld.Echo",
            endpoint("Helloworld.Echo", go_payload(), go_payload(), json!({})),
        ),
        (
            "Helloworld.Fail",
            endpoint(
                "Helloworld.Fail",
                value("FailRequest", &[("code", "int32"), ("detail", "string")]),
                value("FailResponse", &[]),
                json!({}),
            ),
        ),
        (
            "Helloworld.Meta",
            endpoint(
                "Helloworld.Meta",
                value("MetaRequest", &[]),
                value("MetaResponse", &[("metadata", "")]),
                json!({}),
            ),
        ),
        ("Helloworld.ServerStream", stream("Helloworld.ServerStream")),
        (
            "Func",
            subscriber_endpoint(topic, "Event", ["string", "int64", "string"]),
        ),
    ])
}

/// go-micro's reflection of the peers' `Payload`: it descends two levels, names a
/// slice `[]` plus its element type, leaves a map's type empty and a pointer's
/// type its element's name.
fn go_payload() -> Value {
    let field = |n: &str, t: &str| json!({"name": n, "type": t, "values": null});
    json!({"name": "Payload", "type": "Payload", "values": [
        field("f64", "float64"),
        field("f64s", "[]float64"),
        field("f32", "float32"),
        field("i64", "int64"),
        field("u64", "uint64"),
        field("text", "string"),
        field("bytes", "[]uint8"),
        field("list", "[]string"),
        field("map", ""),
        {"name": "inner", "type": "Inner", "values": [
            field("name", "string"),
            field("values", "[]float64"),
            field("tags", ""),
        ]},
        field("inners", "[]Inner"),
    ]})
}

/// Our description of the same `Payload`: the same tree, with Go's spelling of
/// the map types go-micro leaves empty and of `[]byte` (go-micro's reflection
/// says `[]uint8`, the same type).
fn rust_payload() -> Value {
    let field = |n: &str, t: &str| json!({"name": n, "type": t, "values": null});
    json!({"name": "Payload", "type": "Payload", "values": [
        field("f64", "float64"),
        field("f64s", "[]float64"),
        field("f32", "float32"),
        field("i64", "int64"),
        field("u64", "uint64"),
        field("text", "string"),
        field("bytes", "[]byte"),
        field("list", "[]string"),
        field("map", "map[string]float64"),
        {"name": "inner", "type": "Inner", "values": [
            field("name", "string"),
            field("values", "[]float64"),
            field("tags", "map[string]string"),
        ]},
        field("inners", "[]Inner"),
    ]})
}

/// The endpoints our server registers for [`InteropHelloworld`] and a subscriber
/// of `ExampleEvent`.
fn rust_endpoint_shapes(topic: &str) -> BTreeMap<&'static str, Value> {
    let stream = |name, req: Value, rsp: Value| endpoint(name, req, rsp, json!({"stream": "true"}));
    let stroke = || value("StrokeMessage", &[("stroke", "int64")]);
    let count = || value("CountMessage", &[("count", "int64")]);
    BTreeMap::from([
        (
            "Helloworld.BidiStream",
            stream("Helloworld.BidiStream", stroke(), stroke()),
        ),
        (
            "Helloworld.Call",
            endpoint(
                "Helloworld.Call",
                value("CallRequest", &[("name", "string")]),
                value("CallResponse", &[("msg", "string")]),
                json!({}),
            ),
        ),
        (
            "Helloworld.ClientStream",
            stream("Helloworld.ClientStream", stroke(), count()),
        ),
        (
            "Helloworld.Echo",
            endpoint("Helloworld.Echo", rust_payload(), rust_payload(), json!({})),
        ),
        (
            "Helloworld.Fail",
            endpoint(
                "Helloworld.Fail",
                value("FailRequest", &[("code", "int32"), ("detail", "string")]),
                value("FailResponse", &[]),
                json!({}),
            ),
        ),
        (
            "Helloworld.Meta",
            endpoint(
                "Helloworld.Meta",
                value("MetaRequest", &[]),
                // go-micro leaves an unnamed type's name empty; ours spells it.
                value("MetaResponse", &[("metadata", "map[string]string")]),
                json!({}),
            ),
        ),
        (
            "Helloworld.ServerStream",
            stream("Helloworld.ServerStream", count(), count()),
        ),
        (
            "Func",
            subscriber_endpoint(topic, "ExampleEvent", ["string", "int64", "string"]),
        ),
    ])
}
