//! Undeliverable events: a crashed or unreachable subscriber, the retry queue and
//! its bound, queue-group failover, giving up, and disconnect with pending
//! deliveries. Counters must match the documented policy exactly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, broker, opts, wait_for, wait_subscribers};
use micro_broker::{Broker, Envelope, HttpBroker, SubscribeOptions};
use micro_registry::{MemoryRegistry, MetadataMap, Node, RegisterOptions, Registry, ServiceRecord};

/// A port nothing listens on (bound, then released).
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

/// Registers a broadcast subscriber node of `topic` as go-micro does.
async fn register_node(
    registry: &MemoryRegistry,
    topic: &str,
    id: &str,
    address: &str,
) -> ServiceRecord {
    let mut md = MetadataMap::new();
    md.insert("broker".into(), "http".into());
    md.insert("secure".into(), "false".into());
    md.insert("topic".into(), topic.into());
    let svc = ServiceRecord {
        name: "micro.http.broker".into(),
        version: "ff.http.broadcast".into(),
        nodes: vec![Node {
            id: id.into(),
            address: address.into(),
            metadata: md,
        }],
        ..Default::default()
    };
    registry
        .register(&svc, &RegisterOptions::ttl(Duration::from_secs(60)))
        .await
        .expect("register");
    svc
}

async fn settled(b: &HttpBroker) {
    wait_for("no pending delivery", || b.stats().pending == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_subscriber_is_retried_until_it_leaves_the_registry() {
    let registry = Arc::new(MemoryRegistry::new());
    // Retries never run out by count or age here: only the departure ends them.
    let publisher = HttpBroker::with_options(
        opts(&registry)
            .retry_attempts(10_000)
            .retry_max_age(Duration::from_secs(3600))
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(200)),
    );
    let live = broker(&registry);
    let crashed = broker(&registry);
    let got = Collector::new();
    let lost = Collector::new();
    let _s1 = live
        .subscribe("t", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let _s2 = crashed
        .subscribe("t", lost.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let crashed_record = format!("t-{}", crashed.id());
    wait_subscribers(&publisher, "t", 2).await;
    publisher
        .publish("t", Envelope::new("before"))
        .await
        .expect("publish");
    assert_eq!((got.count(), lost.count()), (1, 1));

    // Crash: the server goes away, the registration stays.
    drop(_s2);
    drop(crashed);
    for i in 0..5 {
        publisher
            .publish("t", Envelope::new(format!("e{i}")))
            .await
            .expect("publish");
    }
    assert_eq!(got.count(), 6, "the live subscriber is not held up");
    wait_for("failed first attempts", || {
        publisher.stats().failed_attempts >= 5
    })
    .await;
    assert_eq!(publisher.stats().pending, 5);

    // Its registration expires (here: removed as the TTL would).
    let svc = registry
        .get_service("micro.http.broker")
        .await
        .expect("lookup");
    let dead = svc[0]
        .nodes
        .iter()
        .find(|n| n.id == crashed_record)
        .expect("crashed node")
        .clone();
    registry
        .deregister(&ServiceRecord {
            nodes: vec![dead],
            ..svc[0].clone()
        })
        .await
        .expect("deregister");
    settled(&publisher).await;
    let s = publisher.stats();
    assert_eq!(s.published, 6);
    assert_eq!(s.deliveries, 12);
    assert_eq!(s.delivered, 7);
    assert_eq!(s.dropped, 5);
    assert_eq!((s.retried, s.rejected, s.overflowed), (0, 0, 0));
    assert_eq!(
        got.count(),
        6,
        "never a duplicate to the target that got it"
    );
    assert_eq!(lost.count(), 1);
    // Nothing is kept once the target is gone: later publishes go to the live one.
    publisher
        .publish("t", Envelope::new("after"))
        .await
        .expect("publish");
    assert_eq!(publisher.stats().deliveries, 13);
    publisher.disconnect().await.expect("disconnect");
    live.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_retry_queue_keeps_the_newest_and_delivers_them_when_the_subscriber_is_back() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = HttpBroker::with_options(
        opts(&registry)
            .retry_queue(4)
            .retry_attempts(10_000)
            .retry_max_age(Duration::from_secs(3600))
            // The first retry comes 0.5-1 s after a failure, long after the
            // publishing below.
            .retry_backoff(Duration::from_secs(1), Duration::from_secs(1)),
    );
    // A subscriber that crashed: its record points at a closed port; it will come
    // back on the same port with the same identity.
    let port = free_port().await;
    let address = format!("127.0.0.1:{port}");
    let back = HttpBroker::with_options(opts(&registry).address(address.clone()));
    register_node(
        &registry,
        "inbox",
        &format!("inbox-{}", back.id()),
        &address,
    )
    .await;
    wait_subscribers(&publisher, "inbox", 1).await;

    for i in 0..10 {
        publisher
            .publish("inbox", Envelope::new(format!("e{i}")))
            .await
            .expect("publish");
    }
    let s = publisher.stats();
    assert_eq!((s.deliveries, s.failed_attempts), (10, 10));
    assert_eq!(s.pending, 4, "the queue holds at most 4 deliveries");
    assert_eq!(
        (s.overflowed, s.dropped),
        (6, 6),
        "the 6 oldest were dropped"
    );

    let got = Collector::new();
    let _sub = back
        .subscribe("inbox", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert_eq!(back.address(), address);
    wait_for("the 4 newest events", || got.count() == 4).await;
    settled(&publisher).await;
    let mut bodies = got.bodies();
    bodies.sort();
    assert_eq!(bodies, ["e6", "e7", "e8", "e9"]);
    let s = publisher.stats();
    assert_eq!(
        (s.delivered, s.retried, s.dropped, s.overflowed, s.pending),
        (4, 4, 6, 6, 0)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.count(), 4, "no duplicates");
    publisher.disconnect().await.expect("disconnect");
    back.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_fails_over_to_a_live_member() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let live = broker(&registry);
    let crashed = broker(&registry);
    let got = Collector::new();
    let _s1 = live
        .subscribe("q", got.handler(), SubscribeOptions::queue("workers"))
        .await
        .expect("subscribe");
    let _s2 = crashed
        .subscribe(
            "q",
            Collector::new().handler(),
            SubscribeOptions::queue("workers"),
        )
        .await
        .expect("subscribe");
    wait_subscribers(&publisher, "q", 2).await;
    drop(_s2);
    drop(crashed);
    for i in 0..20 {
        publisher
            .publish("q", Envelope::new(format!("e{i}")))
            .await
            .expect("publish");
    }
    // Every event reached the live member on its first publish.
    assert_eq!(got.count(), 20);
    let s = publisher.stats();
    assert_eq!(
        (s.deliveries, s.delivered, s.pending, s.dropped),
        (20, 20, 0, 0)
    );
    assert!(
        s.failed_attempts >= 1,
        "the dead member was tried at least once: {s:?}"
    );
    publisher.disconnect().await.expect("disconnect");
    live.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_the_attempts_and_without_retry() {
    let registry = Arc::new(MemoryRegistry::new());
    let address = format!("127.0.0.1:{}", free_port().await);
    register_node(&registry, "dead", "dead-1", &address).await;

    let limited = HttpBroker::with_options(
        opts(&registry)
            .retry_attempts(2)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(20)),
    );
    for _ in 0..3 {
        limited
            .publish("dead", Envelope::new("x"))
            .await
            .expect("publish");
    }
    settled(&limited).await;
    let s = limited.stats();
    assert_eq!(
        (s.deliveries, s.delivered, s.dropped, s.failed_attempts),
        (3, 0, 3, 9)
    );

    let no_retry = HttpBroker::with_options(opts(&registry).retry_queue(0));
    no_retry
        .publish("dead", Envelope::new("x"))
        .await
        .expect("publish");
    let s = no_retry.stats();
    assert_eq!(
        (s.deliveries, s.dropped, s.pending, s.failed_attempts),
        (1, 1, 0, 1)
    );

    let aged = HttpBroker::with_options(
        opts(&registry)
            .retry_attempts(10_000)
            .retry_max_age(Duration::from_millis(300))
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(50)),
    );
    aged.publish("dead", Envelope::new("x"))
        .await
        .expect("publish");
    settled(&aged).await;
    assert_eq!(aged.stats().dropped, 1);
    assert!(aged.stats().failed_attempts >= 2);

    // Pending deliveries are dropped, and counted, at disconnect.
    let pending = HttpBroker::with_options(
        opts(&registry).retry_backoff(Duration::from_secs(60), Duration::from_secs(60)),
    );
    pending
        .publish("dead", Envelope::new("x"))
        .await
        .expect("publish");
    assert_eq!(pending.stats().pending, 1);
    pending.disconnect().await.expect("disconnect");
    let s = pending.stats();
    assert_eq!((s.pending, s.dropped), (0, 1));
    for b in [limited, no_retry, aged] {
        b.disconnect().await.expect("disconnect");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_subscribers_are_dropped_not_retried() {
    let registry = Arc::new(MemoryRegistry::new());
    // Without the tls feature, https subscribers are unsupported too.
    #[cfg(not(feature = "tls"))]
    {
        let svc = register_node(&registry, "tls", "tls-1", "127.0.0.1:1").await;
        let mut secure = svc.clone();
        secure.nodes[0]
            .metadata
            .insert("secure".into(), "true".into());
        registry
            .register(&secure, &RegisterOptions::default())
            .await
            .expect("register");
    }
    let unsupported = if cfg!(feature = "tls") { 1 } else { 2 };
    register_node(&registry, "tls", "bad-address", "127.0.0.1:1/evil?x=").await;
    let b = broker(&registry);
    b.publish("tls", Envelope::new("x")).await.expect("publish");
    let s = b.stats();
    assert_eq!(
        (s.deliveries, s.dropped, s.pending, s.failed_attempts),
        (unsupported, unsupported, 0, 0)
    );
    b.disconnect().await.expect("disconnect");
}
