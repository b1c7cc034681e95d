//! Our publisher sends events through our HTTP broker to real go-micro
//! subscribers (v4.11 and v5.30, on etcd and on Consul): the Go `subscriber`
//! program (a broker-level subscription, which prints the raw headers) and the Go
//! `server --subscribe` (a typed function subscriber, which decodes the event).
//! One of each listens for every event (broadcast); one of each forms the queue
//! group `workers`, which gets each event once. Payloads and headers
//! (`Micro-Topic`, `Content-Type`, `Micro-ID`, custom metadata) arrive intact, for
//! the typed publish (`message`) and for a raw broker publish.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use examples::ExampleEvent;
use micro::broker::Envelope;
use micro::registry::Registry;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{Combo, GoProc, Registries, for_each_combo, our_server, poll};
use serde_json::{Value, json};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);
/// Typed events published.
const N: usize = 6;
/// Raw broker messages published.
const RAW: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_publisher_to_go_subscribers() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("our publisher -> Go subscribers", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let topic = format!("interop.{}.rust-to-go", combo.slug());
    let base = registries.go_args(combo.registry);
    let with = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let name = |role: &str| format!("go-{role}-{}", combo.slug());
    let mut subscriber = GoProc::spawn(combo.go, "subscriber", with(&["--topic", &topic]));
    let mut server = GoProc::spawn(
        combo.go,
        "server",
        with(&["--name", &name("sub"), "--subscribe", &topic]),
    );
    let mut queued_subscriber = GoProc::spawn(
        combo.go,
        "subscriber",
        with(&["--topic", &topic, "--queue", "workers"]),
    );
    let mut queued_server = GoProc::spawn(
        combo.go,
        "server",
        with(&[
            "--name",
            &name("worker"),
            "--subscribe",
            &topic,
            "--queue",
            "workers",
        ]),
    );
    for p in [
        &mut subscriber,
        &mut server,
        &mut queued_subscriber,
        &mut queued_server,
    ] {
        p.ready(LIMIT).await;
    }

    let registry = registries.registry(combo.registry);
    wait_subscriptions(&*registry, &topic).await;
    let publisher = our_server(&format!("rust-pub-{}", combo.slug()), registry)
        .build()
        .expect("build publisher");
    let client = publisher.client().clone();

    let mut sent = Vec::new();
    for i in 0..N {
        let ev = ExampleEvent {
            id: format!("rust-{i}"),
            timestamp: 1_700_000_000 + i as i64,
            message: format!("from rust {i}"),
        };
        client
            .message(&topic)
            .metadata("X-Trace", "trace-typed")
            .metadata("lower-key", "v")
            .publish(&ev)
            .await
            .expect("publish");
        sent.push(ev);
    }
    for i in 0..RAW {
        let ev = ExampleEvent {
            id: format!("raw-{i}"),
            timestamp: 1_800_000_000 + i as i64,
            message: format!("raw {i}"),
        };
        let body = serde_json::to_vec(&ev).expect("json");
        let msg = Envelope::new(body)
            .with_header("Content-Type", "application/json")
            .with_header("X-Trace", "trace-raw");
        publisher
            .broker()
            .publish(&topic, msg)
            .await
            .expect("raw publish");
        sent.push(ev);
    }
    let total = N + RAW;

    // Broadcast: the subscriber program prints the raw headers and body.
    let lines = subscriber.json_lines(total, LIMIT).await;
    assert_eq!(lines.len(), total, "broadcast subscriber got {lines:?}");
    let mut ids = BTreeSet::new();
    for line in &lines {
        let ev = find(&sent, &line["body"]["id"]);
        check_raw(line, ev, &topic);
        ids.insert(&ev.id);
    }
    assert_eq!(ids.len(), total, "every event once: {lines:?}");
    // Broadcast: the server's function subscriber decoded every event.
    let lines = server.json_lines(total, LIMIT).await;
    assert_eq!(lines.len(), total, "broadcast server got {lines:?}");
    let mut ids = BTreeSet::new();
    for line in &lines {
        let ev = find(&sent, &line["event"]["id"]);
        check_typed(line, ev, &topic);
        ids.insert(&ev.id);
    }
    assert_eq!(ids.len(), total, "every event once: {lines:?}");

    // Queue: each event once, to the subscriber program or to the server.
    let mut raw = Vec::new();
    let mut typed = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while raw.len() + typed.len() < total && tokio::time::Instant::now() < deadline {
        raw.extend(
            queued_subscriber
                .json_lines(total, Duration::from_millis(50))
                .await,
        );
        typed.extend(
            queued_server
                .json_lines(total, Duration::from_millis(50))
                .await,
        );
    }
    let done = raw.len() + typed.len() >= total;
    // Anything sent twice would arrive right behind the rest.
    raw.extend(
        queued_subscriber
            .json_lines(total, Duration::from_millis(300))
            .await,
    );
    typed.extend(
        queued_server
            .json_lines(total, Duration::from_millis(300))
            .await,
    );
    eprintln!(
        "[{}] queue split: subscriber {} / server {}",
        combo.label(),
        raw.len(),
        typed.len()
    );
    assert!(done, "queue group got {raw:?} {typed:?}");
    let mut ids = Vec::new();
    for line in &raw {
        let ev = find(&sent, &line["body"]["id"]);
        check_raw(line, ev, &topic);
        ids.push(ev.id.clone());
    }
    for line in &typed {
        let ev = find(&sent, &line["event"]["id"]);
        check_typed(line, ev, &topic);
        ids.push(ev.id.clone());
    }
    assert_eq!(ids.len(), total, "each event once in the group: {ids:?}");
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), total, "each event once in the group: {ids:?}");

    publisher.stop().await.expect("stop publisher");
    for p in [subscriber, server, queued_subscriber, queued_server] {
        let (by_itself, out) = p.terminate(LIMIT).await;
        assert!(by_itself, "{} ignored SIGTERM: {}", out.name, out.context());
        assert_eq!(out.code(), Some(0), "{}", out.context());
    }
}

/// Waits until the registry lists the four subscriptions of `topic`: two
/// broadcast, two in queue `workers`.
async fn wait_subscriptions(registry: &dyn Registry, topic: &str) {
    let seen = poll(LIMIT, || async {
        let services = registry.get_service("micro.http.broker").await.ok()?;
        let count = |version: &str| {
            services
                .iter()
                .filter(|s| s.version == version)
                .flat_map(|s| &s.nodes)
                .filter(|n| n.metadata.get("topic").map(String::as_str) == Some(topic))
                .count()
        };
        (count("ff.http.broadcast") == 2 && count("workers") == 2).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the Go subscriptions of {topic} never all showed up"
    );
}

fn find<'a>(sent: &'a [ExampleEvent], id: &Value) -> &'a ExampleEvent {
    sent.iter()
        .find(|e| id.as_str() == Some(e.id.as_str()))
        .unwrap_or_else(|| panic!("unknown event id {id}"))
}

fn event_json(ev: &ExampleEvent) -> Value {
    json!({"id": ev.id, "timestamp": ev.timestamp, "message": ev.message})
}

/// A line of the Go subscriber program: exact header keys, as go-micro writes
/// them, and the body.
fn check_raw(line: &Value, ev: &ExampleEvent, topic: &str) {
    assert_eq!(line["body"], event_json(ev), "{line}");
    let h = line["header"].as_object().expect("header map");
    assert_eq!(h.get("Micro-Topic"), Some(&json!(topic)), "{line}");
    assert_eq!(
        h.get("Content-Type"),
        Some(&json!("application/json")),
        "{line}"
    );
    if ev.id.starts_with("raw-") {
        assert_eq!(h.get("X-Trace"), Some(&json!("trace-raw")), "{line}");
        assert_eq!(
            h.len(),
            3,
            "only the publisher's headers and Micro-Topic: {line}"
        );
    } else {
        assert_eq!(h.get("X-Trace"), Some(&json!("trace-typed")), "{line}");
        assert_eq!(h.get("lower-key"), Some(&json!("v")), "{line}");
        let id = h
            .get("Micro-ID")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(id.len(), 36, "Micro-ID is a UUID: {line}");
        assert_eq!(h.len(), 5, "{line}");
    }
}

/// A line of the Go server's function subscriber: the decoded event and the
/// metadata go-micro put in its context.
fn check_typed(line: &Value, ev: &ExampleEvent, topic: &str) {
    assert_eq!(line["kind"], "event", "{line}");
    assert_eq!(line["topic"], topic, "{line}");
    assert_eq!(line["event"], event_json(ev), "{line}");
    let md = line["metadata"].as_object().expect("metadata map");
    assert_eq!(md.get("Micro-Topic"), Some(&json!(topic)), "{line}");
    let trace = if ev.id.starts_with("raw-") {
        "trace-raw"
    } else {
        "trace-typed"
    };
    assert_eq!(md.get("X-Trace"), Some(&json!(trace)), "{line}");
}
