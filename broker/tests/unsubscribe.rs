//! A subscriber that unsubscribes, or whose record is deregistered, stops
//! receiving; publishing to a topic nobody subscribes to is a clear error and the
//! event is not kept.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, broker, wait_subscribers};
use micro_broker::{Broker, Envelope, Error, SubscribeOptions};
use micro_registry::{MemoryRegistry, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_subscriber_stops_receiving() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let (a, b) = (broker(&registry), broker(&registry));
    let (got_a, got_b) = (Collector::new(), Collector::new());
    let sub_a = a
        .subscribe("u", got_a.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let _sub_b = b
        .subscribe("u", got_b.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    wait_subscribers(&publisher, "u", 2).await;
    common::watch_ready(&publisher, &registry).await;
    publisher
        .publish("u", Envelope::new("1"))
        .await
        .expect("publish");
    assert_eq!((got_a.count(), got_b.count()), (1, 1));

    sub_a.unsubscribe().await.expect("unsubscribe");
    // Whether the publisher has heard of it yet or not, `a` runs no handler.
    for i in 2..=20 {
        publisher
            .publish("u", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    wait_subscribers(&publisher, "u", 1).await;
    assert_eq!(got_a.count(), 1);
    assert_eq!(got_b.count(), 20);
    let s = publisher.stats();
    assert_eq!(s.deliveries, s.delivered + s.rejected, "{s:?}");
    assert_eq!((s.dropped, s.pending), (0, 0));
    for x in [publisher, a, b] {
        x.disconnect().await.expect("disconnect");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistered_subscriber_stops_receiving() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let keeper = broker(&registry);
    let sub = micro_broker::HttpBroker::with_options(
        common::opts(&registry).register_interval(Duration::from_secs(3600)),
    );
    let (got_keep, got) = (Collector::new(), Collector::new());
    let _k = keeper
        .subscribe("d", got_keep.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let _s = sub
        .subscribe("d", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    wait_subscribers(&publisher, "d", 2).await;
    common::watch_ready(&publisher, &registry).await;
    publisher
        .publish("d", Envelope::new("1"))
        .await
        .expect("publish");
    assert_eq!(got.count(), 1);

    // Someone (an operator, a registry wipe, TTL expiry) removes the record.
    let svc = registry
        .get_service("micro.http.broker")
        .await
        .expect("lookup");
    let node = svc[0]
        .nodes
        .iter()
        .find(|n| n.id == format!("d-{}", sub.id()))
        .expect("node")
        .clone();
    registry
        .deregister(&micro_registry::ServiceRecord {
            nodes: vec![node],
            ..svc[0].clone()
        })
        .await
        .expect("deregister");
    wait_subscribers(&publisher, "d", 1).await;
    for _ in 0..5 {
        publisher
            .publish("d", Envelope::new("x"))
            .await
            .expect("publish");
    }
    assert_eq!(got.count(), 1, "a deregistered subscriber gets nothing");
    assert_eq!(got_keep.count(), 6);
    for x in [publisher, keeper, sub] {
        x.disconnect().await.expect("disconnect");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_without_subscribers_fails_and_keeps_nothing() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    // Nobody at all.
    match publisher.publish("nobody", Envelope::new("x")).await {
        Err(Error::NoSubscribers(t)) => assert_eq!(t, "nobody"),
        other => panic!("want NoSubscribers, got {other:?}"),
    }
    // Subscribers of other topics only.
    let other = broker(&registry);
    let got = Collector::new();
    let sub = other
        .subscribe("else", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let err = publisher
        .publish("nobody", Envelope::new("x"))
        .await
        .expect_err("no subscribers");
    assert!(matches!(err, Error::NoSubscribers(_)));
    assert_eq!(err.to_string(), "no subscribers for topic \"nobody\"");
    let s = publisher.stats();
    assert_eq!(
        (s.published, s.deliveries, s.pending, s.dropped),
        (0, 0, 0, 0)
    );
    // The events were not kept: a later subscriber of the topic gets only what is
    // published after it subscribed.
    let late = Collector::new();
    let _late = other
        .subscribe("nobody", late.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    wait_subscribers(&publisher, "nobody", 1).await;
    publisher
        .publish("nobody", Envelope::new("now"))
        .await
        .expect("publish");
    assert_eq!(late.bodies(), ["now"]);
    // The last subscriber leaving makes it an error again at once.
    sub.unsubscribe().await.expect("unsubscribe");
    assert!(matches!(
        other.publish("else", Envelope::new("x")).await,
        Err(Error::NoSubscribers(_))
    ));
    assert!(matches!(
        publisher.publish("", Envelope::new("x")).await,
        Err(Error::Invalid(_))
    ));
    for x in [publisher, other] {
        x.disconnect().await.expect("disconnect");
    }
}
