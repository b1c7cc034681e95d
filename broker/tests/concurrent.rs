//! go-micro's `TestConcurrentSubBroker` (10 broadcast subscriptions all get one
//! publish) and `TestConcurrentPubBroker` (10 concurrent publishes all arrive).

mod common;

use std::sync::Arc;

use common::{Collector, broker, wait_for};
use micro_broker::{Broker, Envelope, SubscribeOptions};
use micro_registry::MemoryRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_subscribers_get_one_publish() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    b.connect().await.expect("connect");
    let collectors: Vec<Collector> = (0..10).map(|_| Collector::new()).collect();
    let mut subs = Vec::new();
    for c in &collectors {
        subs.push(
            b.subscribe("test", c.handler(), SubscribeOptions::default())
                .await
                .expect("subscribe"),
        );
    }
    b.publish("test", Envelope::new("hello"))
        .await
        .expect("publish");
    wait_for("every subscriber", || {
        collectors.iter().all(|c| c.count() == 1)
    })
    .await;
    for c in &collectors {
        assert_eq!(c.bodies(), ["hello"]);
    }
    // One node for the ten subscriptions: one delivery.
    assert_eq!(b.stats().deliveries, 1);
    for s in subs {
        s.unsubscribe().await.expect("unsubscribe");
    }
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_publishes_reach_one_subscriber() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    b.connect().await.expect("connect");
    let got = Collector::new();
    let sub = b
        .subscribe("test", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.publish("test", Envelope::new(format!("msg-{i}"))).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("publish");
    }
    wait_for("ten events", || got.count() == 10).await;
    let mut bodies = got.bodies();
    bodies.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("msg-{i}")).collect();
    want.sort();
    assert_eq!(bodies, want);
    sub.unsubscribe().await.expect("unsubscribe");
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_publishes_arrive_in_order() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let subscriber = broker(&registry);
    let got = Collector::new();
    let _sub = subscriber
        .subscribe("ordered", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    common::wait_subscribers(&publisher, "ordered", 1).await;
    for i in 0..200 {
        publisher
            .publish("ordered", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    wait_for("200 events", || got.count() == 200).await;
    let want: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(got.bodies(), want);
    publisher.disconnect().await.expect("disconnect");
    subscriber.disconnect().await.expect("disconnect");
}
