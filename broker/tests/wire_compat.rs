//! The wire, compared with captures of go-micro v4.11.0 and v5.30.0: the registry
//! record of a subscription, the POST a publisher sends, and a Go publisher's POST
//! delivered to our subscriber.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, Recording, body_of, go_post, raw, status_of};
use micro_broker::{Broker, Envelope, HttpBroker, HttpBrokerOptions, SubscribeOptions};
use micro_registry::{MemoryRegistry, MetadataMap, Node, RegisterOptions, Registry, ServiceRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Records written to etcd by go-micro v4.11.0 (`captures/etcd/v4-t0.decoded.txt`).
const GO_BROADCAST: &str = r#"{"name":"micro.http.broker","version":"ff.http.broadcast","metadata":null,"endpoints":null,"nodes":[{"metadata":{"broker":"http","secure":"false","topic":"example.broadcast"},"id":"example.broadcast-740dce0a-b1a5-42e9-ab83-b661845f7c6c","address":"127.0.0.1:43791"}]}"#;
const GO_QUEUED: &str = r#"{"name":"micro.http.broker","version":"workers","metadata":null,"endpoints":null,"nodes":[{"metadata":{"broker":"http","secure":"false","topic":"example.queued"},"id":"example.queued-2527440d-a871-4422-a90e-68748fb3f5f8","address":"127.0.0.1:33681"}]}"#;

/// The POST bodies of go-micro v5.30.0 (`captures/broker/v5-publish-*.txt`).
const GO_BROKER_PUBLISH: &str = r#"{"Header":{"Content-Type":"application/json","Micro-Topic":"capture.v5","X-Trace":"abc"},"Body":"eyJpZCI6ImV2ZW50LTEzODQ4LTAiLCJ0aW1lc3RhbXAiOjE3OTUyNDAzNDIsIm1lc3NhZ2UiOiJicm9rZXIgcHVibGlzaCAwIn0="}"#;
const GO_CLIENT_PUBLISH: &str = r#"{"Header":{"Content-Type":"application/json","Micro-ID":"5783025c-3d2e-4b42-a124-ad6287c5d8d1","Micro-Topic":"capture.v5","X-Trace":"abc"},"Body":"eyJpZCI6ImV2ZW50LTEzNjQ3LTAiLCJ0aW1lc3RhbXAiOjE3OTUyNDAzNDAsIm1lc3NhZ2UiOiJjbGllbnQgcHVibGlzaCAwIn0K"}"#;
const GO_NODE_ID: &str = "capture.v5-cd7cc73d-c09d-4b1a-90c4-c799af38f0e6";

/// `s` with every occurrence of `from` replaced, the replacement asserted.
fn swap(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from} not in {s}");
    s.replace(from, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_records_match_go_micro() {
    let registry = Recording::new();
    let b = HttpBroker::with_options(
        HttpBrokerOptions::new()
            .registry(registry.clone())
            .register_interval(Duration::from_millis(100)),
    );
    let c = Collector::new();
    let s1 = b
        .subscribe(
            "example.broadcast",
            c.handler(),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let s2 = b
        .subscribe(
            "example.queued",
            c.handler(),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("subscribe");
    let address = b.address();
    let port = address.rsplit_once(':').expect("port").1;

    let calls = registry.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.op == "register" && c.ttl == Some(Duration::from_secs(60)))
    );
    let broadcast_want = swap(
        &swap(GO_BROADCAST, "740dce0a-b1a5-42e9-ab83-b661845f7c6c", b.id()),
        "43791",
        port,
    );
    assert_eq!(calls[0].json, broadcast_want);
    // The queue node has its own uuid: check the shape around it.
    let queued_id: String = {
        let v: serde_json::Value = serde_json::from_str(&calls[1].json).expect("json");
        v["nodes"][0]["id"].as_str().expect("id").to_owned()
    };
    let uuid = queued_id
        .strip_prefix("example.queued-")
        .expect("id is <topic>-<uuid>");
    assert_eq!(uuid.len(), 36);
    assert_ne!(uuid, b.id());
    let queued_want = swap(
        &swap(GO_QUEUED, "2527440d-a871-4422-a90e-68748fb3f5f8", uuid),
        "33681",
        port,
    );
    assert_eq!(calls[1].json, queued_want);

    // The heartbeat registers both again with the TTL.
    common::wait_for("heartbeat", || registry.calls().len() >= 6).await;
    let calls = registry.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.op == "register" && c.ttl == Some(Duration::from_secs(60)))
    );
    assert!(calls.iter().filter(|c| c.json == broadcast_want).count() >= 3);

    // A second broadcast subscription shares the node: unsubscribing one of them
    // deregisters nothing; the last one deregisters the record.
    let s3 = b
        .subscribe(
            "example.broadcast",
            c.handler(),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    s1.unsubscribe().await.expect("unsubscribe");
    assert!(registry.calls().iter().all(|c| c.op == "register"));
    s3.unsubscribe().await.expect("unsubscribe");
    let dereg: Vec<_> = registry
        .calls()
        .into_iter()
        .filter(|c| c.op == "deregister")
        .collect();
    assert_eq!(dereg.len(), 1);
    assert_eq!(dereg[0].json, broadcast_want);
    // Disconnect deregisters the rest.
    drop(s2);
    b.disconnect().await.expect("disconnect");
    let dereg: Vec<_> = registry
        .calls()
        .into_iter()
        .filter(|c| c.op == "deregister")
        .collect();
    assert_eq!(dereg.len(), 2);
    assert_eq!(dereg[1].json, queued_want);
    assert!(
        registry
            .inner
            .get_service("micro.http.broker")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Accepts one connection on `listener`, reads one request (head and body),
/// answers as a Go subscriber does, and returns the request.
async fn capture_one(listener: &TcpListener) -> (String, String) {
    let (mut s, _) = tokio::time::timeout(common::WAIT, listener.accept())
        .await
        .expect("a delivery in time")
        .expect("accept");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = common::find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("Content-Length")
                .parse()
                .expect("length");
            if buf.len() >= end + 4 + len {
                break (
                    head,
                    String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                );
            }
        }
    };
    s.write_all(
        b"HTTP/1.1 200 OK\r\nDate: Sat, 21 Nov 2026 05:52:22 GMT\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .expect("answer");
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sends_go_micros_post() {
    let registry = Arc::new(MemoryRegistry::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // A raw subscriber node, registered as a go-micro broker registers it.
    let mut md = MetadataMap::new();
    md.insert("broker".into(), "http".into());
    md.insert("secure".into(), "false".into());
    md.insert("topic".into(), "capture.v5".into());
    let svc = ServiceRecord {
        name: "micro.http.broker".into(),
        version: "ff.http.broadcast".into(),
        nodes: vec![Node {
            id: GO_NODE_ID.into(),
            address: addr.clone(),
            metadata: md,
        }],
        ..Default::default()
    };
    registry
        .register(&svc, &RegisterOptions::default())
        .await
        .expect("register");
    let b = common::broker(&registry);

    let broker_msg = Envelope::new(
        &br#"{"id":"event-13848-0","timestamp":1795240342,"message":"broker publish 0"}"#[..],
    )
    .with_header("Content-Type", "application/json")
    .with_header("X-Trace", "abc");
    let client_msg = Envelope::new(
        &b"{\"id\":\"event-13647-0\",\"timestamp\":1795240340,\"message\":\"client publish 0\"}\n"
            [..],
    )
    .with_header("Content-Type", "application/json")
    .with_header("Micro-ID", "5783025c-3d2e-4b42-a124-ad6287c5d8d1")
    .with_header("X-Trace", "abc");
    for (msg, want) in [
        (broker_msg, GO_BROKER_PUBLISH),
        (client_msg, GO_CLIENT_PUBLISH),
    ] {
        let (published, (head, body)) =
            tokio::join!(b.publish("capture.v5", msg), capture_one(&listener));
        published.expect("publish");
        assert_eq!(body, want, "the JSON body is byte-for-byte go-micro's");
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some(format!("POST /?id={GO_NODE_ID} HTTP/1.1").as_str())
        );
        let headers: Vec<&str> = lines.collect();
        assert_eq!(headers[0], format!("Host: {addr}"));
        assert!(headers[1].starts_with("User-Agent: "), "{headers:?}");
        assert_eq!(headers[2], format!("Content-Length: {}", want.len()));
        assert_eq!(headers[3], "Content-Type: application/json");
        assert_eq!(headers.len(), 4, "{headers:?}");
    }
    assert_eq!(b.stats().delivered, 2);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_publishers_post_is_delivered() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = common::broker(&registry);
    let got = Collector::new();
    let _sub = b
        .subscribe("capture.v5", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let addr = b.address();
    let path = format!("/?id=capture.v5-{}", b.id());
    for body in [GO_BROKER_PUBLISH, GO_CLIENT_PUBLISH] {
        let resp = raw(&addr, &go_post(&addr, &path, body)).await;
        assert_eq!(status_of(&resp), "HTTP/1.1 200 OK", "{resp}");
        assert!(resp.contains("\r\nContent-Length: 0\r\n"), "{resp}");
        assert!(resp.contains("\r\nDate: "), "{resp}");
        assert_eq!(body_of(&resp), "");
    }
    let events = got.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].topic, "capture.v5");
    assert_eq!(
        &events[0].message.body[..],
        br#"{"id":"event-13848-0","timestamp":1795240342,"message":"broker publish 0"}"#
    );
    assert_eq!(events[0].message.header.len(), 3);
    assert_eq!(events[0].message.header["X-Trace"], "abc");
    assert_eq!(
        events[1].message.header["Micro-ID"],
        "5783025c-3d2e-4b42-a124-ad6287c5d8d1"
    );
    assert!(events[1].message.body.ends_with(b"}\n"));
    b.disconnect().await.expect("disconnect");
}
