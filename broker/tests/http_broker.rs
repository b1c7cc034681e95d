//! go-micro's `TestBroker`: subscribe, publish one message, body equality,
//! unsubscribe, disconnect — an HTTP broker on a memory registry.

mod common;

use std::sync::Arc;

use common::{Collector, broker, wait_for};
use micro_broker::{Broker, Envelope, SubscribeOptions};
use micro_registry::{MemoryRegistry, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_publish_unsubscribe_disconnect() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    assert_eq!(b.name(), "http");
    assert_eq!(b.address(), "", "no address before connect");
    b.connect().await.expect("connect");
    b.connect().await.expect("connect is idempotent");
    let address = b.address();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let got = Collector::new();
    let sub = b
        .subscribe("test", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    assert_eq!(sub.topic(), "test");
    assert_eq!(sub.queue(), None);

    let msg = Envelope::new(r#"{"message":"Hello World"}"#)
        .with_header("Content-Type", "application/json");
    b.publish("test", msg.clone()).await.expect("publish");
    // publish returns once the subscriber answered: its handler has run.
    assert_eq!(got.count(), 1);
    let ev = &got.events()[0];
    assert_eq!(ev.topic, "test");
    assert_eq!(ev.message.body, msg.body);
    assert_eq!(ev.message.header["Content-Type"], "application/json");
    assert_eq!(ev.message.header["Micro-Topic"], "test");

    sub.unsubscribe().await.expect("unsubscribe");
    sub.unsubscribe().await.expect("unsubscribe twice is fine");
    assert!(
        registry
            .get_service("micro.http.broker")
            .await
            .unwrap_err()
            .is_not_found()
    );

    b.disconnect().await.expect("disconnect");
    b.disconnect().await.expect("disconnect is idempotent");
    assert_eq!(b.address(), "");
    assert!(matches!(
        b.publish("test", Envelope::new("x")).await,
        Err(micro_broker::Error::NotConnected)
    ));
    let stats = b.stats();
    assert_eq!(
        (stats.published, stats.delivered, stats.received),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_connects_and_reconnect_works() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let got = Collector::new();
    // Never connected: subscribe connects it (go-micro's client connects lazily).
    let _sub = b
        .subscribe("lazy", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe connects");
    assert!(!b.address().is_empty());
    b.publish("lazy", Envelope::new("1"))
        .await
        .expect("publish");
    assert_eq!(got.count(), 1);
    b.disconnect().await.expect("disconnect");
    // Disconnected: no silent resurrection.
    assert!(matches!(
        b.subscribe("lazy", got.handler(), SubscribeOptions::default())
            .await,
        Err(micro_broker::Error::NotConnected)
    ));
    // An explicit connect brings it back, on a new address, with no subscription.
    b.connect().await.expect("reconnect");
    assert!(matches!(
        b.publish("lazy", Envelope::new("2")).await,
        Err(micro_broker::Error::NoSubscribers(t)) if t == "lazy"
    ));
    let _sub = b
        .subscribe("lazy", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe again");
    b.publish("lazy", Envelope::new("3"))
        .await
        .expect("publish");
    wait_for("second event", || got.count() == 2).await;
    assert_eq!(got.bodies(), ["1", "3"]);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_and_odd_headers_round_trip() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let got = Collector::new();
    let _sub = b
        .subscribe(
            "odd/topic name&more",
            got.handler(),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let msg = Envelope::default()
        .with_header("x-lower", "<script>&\"\u{2028}")
        .with_header("Micro-Topic", "overridden");
    b.publish("odd/topic name&more", msg)
        .await
        .expect("publish");
    let ev = &got.events()[0];
    assert!(ev.message.body.is_empty());
    assert_eq!(ev.message.header["x-lower"], "<script>&\"\u{2028}");
    assert_eq!(ev.message.header["Micro-Topic"], "odd/topic name&more");
    b.disconnect().await.expect("disconnect");
}
