//! Subscribers and publishing through a service: typed events over the HTTP broker,
//! queue groups, metadata, go-micro's subscriber endpoints, and events delivered
//! over the RPC transport.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use micro::broker::{HttpBroker, HttpBrokerOptions};
use micro::registry::{MemoryRegistry, Registry};
use micro::server::Subscriber;
use micro::{Context, RpcError, Service};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    id: String,
    timestamp: i64,
    message: String,
}

type Seen = Arc<Mutex<Vec<(String, Event, BTreeMap<String, String>)>>>;

/// A subscriber recording what it got, tagged `who`.
fn recorder(topic: &str, who: &str, seen: &Seen) -> Subscriber {
    let (seen, who) = (seen.clone(), who.to_owned());
    Subscriber::new(topic, move |ctx: Context, ev: Event| {
        let (seen, who) = (seen.clone(), who.clone());
        async move {
            let md = ctx
                .metadata()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            seen.lock().push((who, ev, md));
            Ok::<(), RpcError>(())
        }
    })
}

/// A service on the shared registry with its own HTTP broker on loopback.
fn service(name: &str, registry: &Arc<dyn Registry>, subs: Vec<Subscriber>) -> Service {
    let broker = HttpBroker::with_options(
        HttpBrokerOptions::new()
            .registry(registry.clone())
            .address("127.0.0.1:0".to_owned()),
    );
    let mut b = Service::builder(name)
        .registry(registry.clone())
        .broker(Arc::new(broker))
        .address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(10));
    for s in subs {
        b = b.subscribe(s);
    }
    b.build().unwrap()
}

async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

fn event(i: usize) -> Event {
    Event {
        id: format!("e{i}"),
        timestamp: i as i64,
        message: format!("hello {i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_reach_every_broadcast_subscriber_with_metadata() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let a = service(
        "sub-a",
        &registry,
        vec![recorder("example.events", "a", &seen)],
    );
    let b = service(
        "sub-b",
        &registry,
        vec![recorder("example.events", "b", &seen)],
    );
    let publisher = service("pub", &registry, vec![]);
    a.start().await.unwrap();
    b.start().await.unwrap();
    for i in 0..5 {
        publisher
            .client()
            .message("example.events")
            .metadata("X-Trace", "t-1")
            .publish(&event(i))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || seen.lock().len() == 10).await,
        "{:?}",
        seen.lock().len()
    );
    let seen = seen.lock().clone();
    for who in ["a", "b"] {
        let mut got: Vec<_> = seen
            .iter()
            .filter(|s| s.0 == who)
            .map(|s| s.1.clone())
            .collect();
        got.sort_by_key(|e| e.timestamp);
        assert_eq!(got, (0..5).map(event).collect::<Vec<_>>(), "{who}");
    }
    let md = &seen[0].2;
    assert_eq!(md.get("X-Trace").map(String::as_str), Some("t-1"));
    assert_eq!(
        md.get("Micro-Topic").map(String::as_str),
        Some("example.events")
    );
    assert_eq!(
        md.get("Content-Type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        md.get("Micro-Id").map(|v| v.len()),
        Some(36),
        "a UUID event id"
    );
    for s in [a, b, publisher] {
        s.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_of_a_queue_group_gets_each_event() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let workers: Vec<Service> = (0..3)
        .map(|i| {
            let who = format!("w{i}");
            service(
                &who,
                &registry,
                vec![recorder("jobs", &who, &seen).queue("workers")],
            )
        })
        .collect();
    for w in &workers {
        w.start().await.unwrap();
    }
    let publisher = service("pub", &registry, vec![]);
    for i in 0..30 {
        publisher
            .client()
            .publish_event("jobs", &event(i))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(10), || seen.lock().len() >= 30).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 30, "each event exactly once in the group");
    let mut ids: Vec<_> = seen.iter().map(|s| s.1.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    for w in workers {
        w.stop().await.unwrap();
    }
    publisher.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_sharing_a_topic_each_run_once_per_event() {
    // go-micro TestSubscriberNoDuplicates: three subscribers of one service on one
    // topic each run exactly once per message. go-micro lets them name queues A, B
    // and C and silently uses A for all three; here they must share the queue.
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let mixed = Service::builder("mixed")
        .registry(registry.clone())
        .subscribe(recorder("topic", "A", &seen).queue("A"))
        .subscribe(recorder("topic", "B", &seen).queue("B"))
        .build();
    match mixed {
        Err(micro::Error::Config(why)) => assert!(why.contains("different queues"), "{why}"),
        _ => panic!("subscribers of one topic in different queues were accepted"),
    }
    let svc = service(
        "multi",
        &registry,
        vec![
            recorder("topic", "A", &seen).queue("Q"),
            recorder("topic", "B", &seen).queue("Q"),
            recorder("topic", "C", &seen).queue("Q"),
            recorder("other", "O", &seen),
        ],
    );
    svc.start().await.unwrap();
    let publisher = service("pub", &registry, vec![]);
    for i in 0..4 {
        publisher
            .client()
            .publish_event("topic", &event(i))
            .await
            .unwrap();
    }
    publisher
        .client()
        .publish_event("other", &event(99))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || seen.lock().len() >= 13).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().clone();
    for who in ["A", "B", "C"] {
        assert_eq!(seen.iter().filter(|s| s.0 == who).count(), 4, "{who}");
    }
    // go-micro TestSubscriberMultipleTopics: the other topic's subscriber got its own.
    assert_eq!(
        seen.iter()
            .filter(|s| s.0 == "O")
            .map(|s| s.1.id.as_str())
            .collect::<Vec<_>>(),
        ["e99"]
    );
    svc.stop().await.unwrap();
    publisher.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_registered_as_go_micro_endpoints_and_removed_on_stop() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let svc = service(
        "subs",
        &registry,
        vec![
            recorder("zeta", "z", &seen),
            recorder("alpha", "a", &seen).queue("q"),
        ],
    );
    svc.start().await.unwrap();
    let record = &registry.get_service("subs").await.unwrap()[0];
    let subs: Vec<_> = record
        .endpoints
        .iter()
        .filter(|e| e.metadata.contains_key("subscriber"))
        .collect();
    // By topic descending, as go-micro lists them; named Func; request = the event.
    assert_eq!(
        subs.iter()
            .map(|e| e.metadata["topic"].as_str())
            .collect::<Vec<_>>(),
        ["zeta", "alpha"]
    );
    for e in &subs {
        assert_eq!(e.name, "Func");
        assert!(e.response.is_none());
        assert_eq!(e.request.as_ref().unwrap().name, "Event");
    }
    // The broker registered one node per topic under micro.http.broker.
    let broker = registry.get_service("micro.http.broker").await.unwrap();
    let mut topics: Vec<_> = broker
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.metadata["topic"].clone()))
        .collect();
    topics.sort();
    assert_eq!(topics, ["alpha", "zeta"]);
    assert!(
        broker.iter().any(|s| s.version == "q")
            && broker.iter().any(|s| s.version == "ff.http.broadcast")
    );
    svc.stop().await.unwrap();
    assert!(
        registry.get_service("micro.http.broker").await.is_err(),
        "unsubscribed on stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_topic_nobody_subscribes_to_is_a_clear_error() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let publisher = service("pub", &registry, vec![]);
    let err = publisher
        .client()
        .publish_event("nobody.listens", &event(0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 404, "{err}");
    assert!(err.detail().contains("no subscribers"), "{err}");
    publisher.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_reported_and_the_subscriber_keeps_working() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let svc = service("sub", &registry, vec![recorder("t", "s", &seen)]);
    svc.start().await.unwrap();
    let publisher = service("pub", &registry, vec![]);
    // Raw broker message whose body is no Event: decode error at the subscriber.
    let raw = micro::broker::Envelope::new(&b"{\"id\": 5}"[..])
        .with_header("Content-Type", "application/json");
    publisher.broker().publish("t", raw).await.unwrap();
    publisher
        .client()
        .publish_event("t", &event(1))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || seen.lock().len() == 1).await);
    assert_eq!(seen.lock()[0].1, event(1));
    svc.stop().await.unwrap();
    publisher.stop().await.unwrap();
}

#[tokio::test]
async fn events_sent_over_the_rpc_transport_reach_subscribers() {
    // go-micro servers also accept events as transport messages with Micro-Topic.
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen: Seen = Arc::default();
    let server = micro::server::RpcServer::new(common::options(registry.clone()));
    micro::server::Server::subscribe(&server, recorder("over.rpc", "r", &seen)).unwrap();
    micro::server::Server::start(&server).await.unwrap();
    let addr = micro::server::Server::address(&server).unwrap();
    let body = serde_json::to_vec(&event(7)).unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Type: application/json\r\nMicro-Topic: over.rpc\r\nX-Custom: 1\r\n\r\n",
        body.len()
    );
    let mut conn = common::RawConn::connect(&addr).await;
    conn.send(&[req.as_bytes(), &body].concat()).await;
    let rsp = conn.read().await.unwrap();
    assert!(
        rsp.header("Micro-Error").is_none(),
        "{:?}",
        rsp.header("Micro-Error")
    );
    assert_eq!(seen.lock()[0].1, event(7));
    assert_eq!(
        seen.lock()[0].2.get("X-Custom").map(String::as_str),
        Some("1")
    );
    // An event for a topic nobody subscribes to gets a clear error.
    let req = req.replace("over.rpc", "elsewhere");
    conn.send(&[req.as_bytes(), &body].concat()).await;
    let err = RpcError::parse(conn.read().await.unwrap().header("Micro-Error").unwrap());
    assert!(
        err.detail.contains("no subscriber for topic elsewhere"),
        "{err}"
    );
    micro::server::Server::stop(&server).await.unwrap();
}

#[tokio::test]
async fn a_panicking_subscriber_over_the_rpc_transport_is_a_500_and_the_connection_goes_on() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let server = micro::server::RpcServer::new(common::options(registry.clone()));
    let sub = micro::server::Subscriber::new("boom", |_: micro::Context, e: Event| async move {
        if e.id == "panic" {
            panic!("the subscriber blew up");
        }
        Ok::<(), RpcError>(())
    });
    micro::server::Server::subscribe(&server, sub).unwrap();
    micro::server::Server::start(&server).await.unwrap();
    let addr = micro::server::Server::address(&server).unwrap();
    let mut conn = common::RawConn::connect(&addr).await;
    for (id, ok) in [("panic", false), ("fine", true)] {
        let mut ev = event(1);
        ev.id = id.into();
        let body = serde_json::to_vec(&ev).unwrap();
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Type: application/json\r\nMicro-Topic: boom\r\n\r\n",
            body.len()
        );
        conn.send(&[req.as_bytes(), &body].concat()).await;
        let rsp = conn.read().await.expect("an answer on the same connection");
        match rsp.header("Micro-Error") {
            None => assert!(ok),
            Some(e) => {
                assert!(!ok, "{e}");
                let err = RpcError::parse(e);
                assert_eq!(err.code, 500);
                assert!(err.detail.contains("the subscriber blew up"), "{err}");
            }
        }
    }
    micro::server::Server::stop(&server).await.unwrap();
}

/// A handler whose subscriber methods are declared like its endpoints.
#[derive(Default)]
struct Orders {
    /// The ids of the events seen (with their metadata).
    created: Mutex<Vec<String>>,
}

impl Orders {
    async fn count(&self, _: Context, _: Event) -> Result<Event, RpcError> {
        Ok(event(self.created.lock().len()))
    }

    async fn on_created(&self, ctx: Context, ev: Event) -> Result<(), RpcError> {
        if ctx.get("X-Origin") != Some("shop") {
            return Err(RpcError::bad_request(
                "orders",
                "the event's metadata is missing",
            ));
        }
        self.created.lock().push(ev.id);
        Ok(())
    }
}

impl micro::server::Handler for Orders {
    const NAME: &'static str = "Orders";
    fn routes(r: &mut micro::server::Routes<Self>) {
        r.unary("Count", Self::count).subscribe_queue(
            "Created",
            "orders.created",
            "billing",
            Self::on_created,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_methods_are_declared_with_the_handler_and_share_its_state() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let broker = HttpBroker::with_options(
        HttpBrokerOptions::new()
            .registry(registry.clone())
            .address("127.0.0.1:0".to_owned()),
    );
    let svc = Service::builder("orders")
        .registry(registry.clone())
        .broker(Arc::new(broker))
        .address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(10))
        .handle(Orders::default())
        .build()
        .unwrap();
    svc.start().await.unwrap();
    let publisher = service("pub-orders", &registry, vec![]);
    for i in 0..3 {
        publisher
            .client()
            .message("orders.created")
            .metadata("X-Origin", "shop")
            .publish(&event(i))
            .await
            .unwrap();
    }
    let counted = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n: Event = publisher
                .client()
                .request("orders", "Orders.Count")
                .call(&event(0))
                .await
                .unwrap();
            if n.id == "e3" || tokio::time::Instant::now() > deadline {
                return n.id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(
        counted.await,
        "e3",
        "the unary method sees what the subscriber stored"
    );

    let services = registry.get_service("orders").await.unwrap();
    let ep = services[0]
        .endpoints
        .iter()
        .find(|e| e.name == "Orders.Created")
        .expect("the subscriber method is registered as Orders.Created");
    assert_eq!(
        ep.metadata.get("topic").map(String::as_str),
        Some("orders.created")
    );
    assert_eq!(
        ep.metadata.get("subscriber").map(String::as_str),
        Some("true")
    );
    assert!(ep.response.is_none());
    svc.stop().await.unwrap();
    publisher.stop().await.unwrap();
}
