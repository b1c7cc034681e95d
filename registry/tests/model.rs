//! The model reads and writes go-micro's registry JSON field for field.
//!
//! `fixtures/` holds etcd values written by real go-micro v4.11.0 and v5.30.0
//! programs (a server with the template endpoints and a subscriber, and HTTP broker
//! subscriptions, broadcast and queue), captured verbatim.

use micro_registry::{Endpoint, Node, ServiceRecord, Value};
use serde_json::json;

/// The server record of the reference (§1.6), in v4.11/v5 field order.
const SERVER_RECORD: &str = concat!(
    r#"{"name":"helloworld","version":"latest","metadata":null,"#,
    r#""endpoints":[{"#,
    r#""request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string","values":null}]},"#,
    r#""response":{"name":"Response","type":"Response","values":[{"name":"msg","type":"string","values":null}]},"#,
    r#""metadata":{},"name":"Greeter.Hello"}],"#,
    r#""nodes":[{"metadata":{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"},"#,
    r#""id":"helloworld-2f1c6c1e-3c0a-4a5e-9d0e-6b1d1f5b7e11","address":"10.0.0.5:38211"}]}"#
);

/// An HTTP broker subscription record (reference §7.3): no metadata, no endpoints.
const BROKER_RECORD: &str = concat!(
    r#"{"name":"micro.http.broker","version":"ff.http.broadcast","metadata":null,"endpoints":null,"#,
    r#""nodes":[{"metadata":{"broker":"http","secure":"false","topic":"events.user"},"#,
    r#""id":"events.user-6a9e0c1d-7e4b-4c4f-9a57-0e1f2a3b4c5d","address":"127.0.0.1:41234"}]}"#
);

/// A subscriber endpoint and a three-level value tree (root, fields, sub-fields).
const NESTED_RECORD: &str = concat!(
    r#"{"name":"orders","version":"1.2.0","metadata":{"team":"payments"},"#,
    r#""endpoints":[{"#,
    r#""request":{"name":"CreateRequest","type":"CreateRequest","values":["#,
    r#"{"name":"order","type":"Order","values":[{"name":"id","type":"string","values":null},"#,
    r#"{"name":"items","type":"[]Item","values":null}]},"#,
    r#"{"name":"tags","type":"[]string","values":null}]},"#,
    r#""response":{"name":"CreateResponse","type":"CreateResponse","values":null},"#,
    r#""metadata":{"stream":"false"},"name":"Orders.Create"},"#,
    r#"{"request":{"name":"Event","type":"Event","values":null},"response":null,"#,
    r#""metadata":{"subscriber":"true","topic":"orders.created"},"name":"Func"}],"#,
    r#""nodes":[{"metadata":{"protocol":"mucp"},"id":"orders-1","address":"[::1]:9090"},"#,
    r#"{"metadata":{},"id":"orders-2","address":"127.0.0.1:9091"}]}"#
);

#[test]
fn server_broker_and_nested_records_round_trip_byte_for_byte() {
    for record in [SERVER_RECORD, BROKER_RECORD, NESTED_RECORD] {
        let svc: ServiceRecord = serde_json::from_str(record).expect("decode");
        let written = serde_json::to_string(&svc).expect("encode");
        assert_eq!(written, record);
    }
}

const CAPTURED: &[(&str, &str)] = &[
    ("v4-server", include_str!("fixtures/v4-server.json")),
    ("v5-server", include_str!("fixtures/v5-server.json")),
    (
        "v4-broker-broadcast",
        include_str!("fixtures/v4-broker-broadcast.json"),
    ),
    (
        "v5-broker-broadcast",
        include_str!("fixtures/v5-broker-broadcast.json"),
    ),
    (
        "v4-broker-queued",
        include_str!("fixtures/v4-broker-queued.json"),
    ),
    (
        "v5-broker-queued",
        include_str!("fixtures/v5-broker-queued.json"),
    ),
    (
        "v4-broker-events",
        include_str!("fixtures/v4-broker-events.json"),
    ),
    (
        "v5-broker-events",
        include_str!("fixtures/v5-broker-events.json"),
    ),
];

#[test]
fn records_written_by_go_micro_round_trip_byte_for_byte() {
    for (name, record) in CAPTURED {
        let svc: ServiceRecord = serde_json::from_str(record).expect(name);
        assert_eq!(serde_json::to_string(&svc).unwrap(), *record, "{name}");
    }
}

#[test]
fn captured_records_read_as_go_micro_meant_them() {
    let server: ServiceRecord = serde_json::from_str(CAPTURED[0].1).unwrap();
    let names: Vec<&str> = server.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Helloworld.BidiStream",
            "Helloworld.Call",
            "Helloworld.ClientStream",
            "Helloworld.Fail",
            "Helloworld.Meta",
            "Helloworld.ServerStream",
            "Func"
        ]
    );
    let func = &server.endpoints[6];
    assert_eq!(func.metadata["subscriber"], "true");
    assert_eq!(func.metadata["topic"], "example.events");
    assert!(func.response.is_none());
    assert_eq!(server.endpoints[0].metadata["stream"], "true");
    assert_eq!(server.nodes[0].metadata["protocol"], "mucp");

    let queued: ServiceRecord = serde_json::from_str(CAPTURED[4].1).unwrap();
    assert_eq!(
        (queued.name.as_str(), queued.version.as_str()),
        ("micro.http.broker", "workers")
    );
    assert!(queued.endpoints.is_empty() && queued.metadata.is_empty());
    assert_eq!(queued.nodes[0].metadata["topic"], "example.queued");
    assert!(queued.nodes[0].id.starts_with("example.queued-"));
    let broadcast: ServiceRecord = serde_json::from_str(CAPTURED[2].1).unwrap();
    assert_eq!(broadcast.version, "ff.http.broadcast");
}

#[test]
fn server_record_fields_are_read() {
    let svc: ServiceRecord = serde_json::from_str(SERVER_RECORD).unwrap();
    assert_eq!(svc.name, "helloworld");
    assert_eq!(svc.version, "latest");
    assert!(svc.metadata.is_empty());
    assert_eq!(svc.endpoints.len(), 1);
    let ep = &svc.endpoints[0];
    assert_eq!(ep.name, "Greeter.Hello");
    let req = ep.request.as_ref().unwrap();
    assert_eq!(
        (req.name.as_str(), req.type_name.as_str()),
        ("Request", "Request")
    );
    assert_eq!(req.values[0].name, "name");
    assert_eq!(req.values[0].type_name, "string");
    assert!(ep.metadata.is_empty());
    let node = &svc.nodes[0];
    assert_eq!(node.address, "10.0.0.5:38211");
    for (k, v) in [
        ("broker", "http"),
        ("protocol", "mucp"),
        ("registry", "etcd"),
        ("server", "mucp"),
        ("transport", "http"),
    ] {
        assert_eq!(node.metadata.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[test]
fn nested_values_and_subscriber_endpoint_are_read() {
    let svc: ServiceRecord = serde_json::from_str(NESTED_RECORD).unwrap();
    let req = svc.endpoints[0].request.as_ref().unwrap();
    assert_eq!(req.values[0].values[1].type_name, "[]Item");
    let sub = &svc.endpoints[1];
    assert!(sub.response.is_none());
    assert_eq!(sub.metadata["subscriber"], "true");
    assert_eq!(svc.nodes[0].address, "[::1]:9090");
}

#[test]
fn v4_9_field_order_is_read() {
    // go-micro v4.9 and older write Node as (id, address, metadata) and Endpoint as
    // (name, request, response, metadata).
    let old = r#"{"name":"helloworld","version":"latest","metadata":null,
        "endpoints":[{"name":"Helloworld.Call","request":null,"response":null,"metadata":{}}],
        "nodes":[{"id":"helloworld-1","address":"127.0.0.1:1","metadata":{"protocol":"mucp"}}]}"#;
    let svc: ServiceRecord = serde_json::from_str(old).unwrap();
    assert_eq!(svc.endpoints[0].name, "Helloworld.Call");
    assert_eq!(svc.nodes[0].id, "helloworld-1");
    assert_eq!(svc.nodes[0].metadata["protocol"], "mucp");
}

#[test]
fn field_names_match_case_insensitively() {
    let svc: ServiceRecord = serde_json::from_str(
        r#"{"NAME":"a","Version":"v","METADATA":{"K":"V"},
            "Nodes":[{"ID":"n","ADDRESS":"h:1","Metadata":{"x":"y"}}],
            "endPoints":[{"NAME":"E.M","Request":{"NAME":"R","TYPE":"R","VALUES":[]}}]}"#,
    )
    .unwrap();
    assert_eq!(svc.name, "a");
    assert_eq!(svc.version, "v");
    assert_eq!(svc.metadata["K"], "V");
    assert_eq!(svc.nodes[0].id, "n");
    assert_eq!(svc.nodes[0].address, "h:1");
    assert_eq!(svc.nodes[0].metadata["x"], "y");
    assert_eq!(svc.endpoints[0].request.as_ref().unwrap().type_name, "R");
}

#[test]
fn nulls_are_accepted_everywhere() {
    let svc: ServiceRecord = serde_json::from_str(
        r#"{"name":null,"version":null,"metadata":null,"endpoints":null,
            "nodes":[null,{"id":null,"address":"h:1","metadata":{"k":null}}]}"#,
    )
    .unwrap();
    assert_eq!(svc.name, "");
    assert_eq!(svc.nodes.len(), 1, "a null list element is skipped");
    assert_eq!(svc.nodes[0].id, "");
    assert_eq!(svc.nodes[0].metadata["k"], "");
    let empty: ServiceRecord = serde_json::from_str("null").unwrap();
    assert_eq!(empty, ServiceRecord::default());
    let ep: Endpoint = serde_json::from_str(r#"{"name":"A.B","metadata":null}"#).unwrap();
    assert!(ep.metadata.is_empty() && ep.request.is_none());
}

#[test]
fn unknown_fields_are_ignored_and_missing_fields_default() {
    let svc: ServiceRecord = serde_json::from_str(
        r#"{"name":"a","extra":{"deep":[1,2,{"x":null}]},"nodes":[{"id":"n","weight":3}]}"#,
    )
    .unwrap();
    assert_eq!(svc.name, "a");
    assert_eq!(svc.version, "");
    assert_eq!(svc.nodes[0], Node::new("n", ""));
}

#[test]
fn every_field_is_written_even_when_empty() {
    let written = serde_json::to_value(ServiceRecord {
        name: "s".into(),
        nodes: vec![Node::new("n", "h:1")],
        endpoints: vec![Endpoint {
            name: "A.B".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        written,
        json!({
            "name": "s", "version": "", "metadata": null,
            "endpoints": [{"request": null, "response": null, "metadata": {}, "name": "A.B"}],
            "nodes": [{"metadata": {}, "id": "n", "address": "h:1"}]
        })
    );
    let v = serde_json::to_value(Value {
        name: "x".into(),
        type_name: "int64".into(),
        values: vec![],
    })
    .unwrap();
    assert_eq!(v, json!({"name": "x", "type": "int64", "values": null}));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        "",
        "[]",
        "42",
        r#"{"name": 5}"#,
        r#"{"nodes": {"id": "x"}}"#,
        r#"{"nodes": [{"metadata": {"k": 1}}]}"#,
        r#"{"endpoints": [{"request": "x"}]}"#,
        "{\"name\": \"unterminated",
    ] {
        assert!(
            serde_json::from_str::<ServiceRecord>(bad).is_err(),
            "{bad:?} must be rejected"
        );
    }
    // A value tree nested far beyond any real record hits the decoder's depth limit
    // (the same tree, shallow, is fine).
    let shallow = format!(
        "{{\"endpoints\":[{{\"request\":{}{{}}{}}}]}}",
        r#"{"values":["#.repeat(3),
        "]}".repeat(3)
    );
    assert!(serde_json::from_str::<ServiceRecord>(&shallow).is_ok());
    let deep = format!(
        "{{\"endpoints\":[{{\"request\":{}{{}}{}}}]}}",
        r#"{"values":["#.repeat(200),
        "]}".repeat(200)
    );
    assert!(serde_json::from_str::<ServiceRecord>(&deep).is_err());
}
