//! Lifecycle: disconnect and drop leave no task running; the heartbeat re-creates
//! a record removed from the registry; disconnect drains requests in progress.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, alive_tasks, broker, wait_for, wait_subscribers};
use micro_broker::{Broker, Envelope, HttpBroker, SubscribeOptions, handler_fn};
use micro_registry::{MemoryRegistry, Registry};

async fn exercise(registry: &Arc<MemoryRegistry>) -> Vec<HttpBroker> {
    let publisher = broker(registry);
    let subs: Vec<HttpBroker> = (0..3).map(|_| broker(registry)).collect();
    for (i, b) in subs.iter().enumerate() {
        let opts = if i == 0 {
            SubscribeOptions::default()
        } else {
            SubscribeOptions::queue("q")
        };
        // Subscriptions are deliberately not unsubscribed: disconnect removes them.
        b.subscribe("life", Collector::new().handler(), opts)
            .await
            .expect("subscribe");
    }
    // A subscriber that crashes: deliveries to it sit in the retry queue at
    // disconnect.
    let dead = broker(registry);
    dead.subscribe(
        "life",
        Collector::new().handler(),
        SubscribeOptions::default(),
    )
    .await
    .expect("subscribe");
    wait_subscribers(&publisher, "life", 4).await;
    drop(dead);
    for i in 0..20 {
        publisher
            .publish("life", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    assert!(publisher.stats().pending > 0);
    let mut all = subs;
    all.push(publisher);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_leaves_no_task() {
    let registry = Arc::new(MemoryRegistry::new());
    let baseline = alive_tasks();
    let brokers = exercise(&registry).await;
    assert!(alive_tasks() > baseline);
    for b in &brokers {
        b.disconnect().await.expect("disconnect");
    }
    drop(brokers);
    registry.shutdown().await;
    wait_for("every task to end", || alive_tasks() == baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_leaves_no_task() {
    let registry = Arc::new(MemoryRegistry::new());
    let baseline = alive_tasks();
    let brokers = exercise(&registry).await;
    drop(brokers);
    registry.shutdown().await;
    wait_for("every task to end", || alive_tasks() == baseline).await;
    // Dropping does not deregister: the records stay until their TTL.
    assert!(registry.get_service("micro.http.broker").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_recreates_a_removed_record() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = HttpBroker::with_options(
        common::opts(&registry).register_interval(Duration::from_millis(100)),
    );
    let _s = b
        .subscribe(
            "hb",
            Collector::new().handler(),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let svc = registry
        .get_service("micro.http.broker")
        .await
        .expect("registered");
    registry.deregister(&svc[0]).await.expect("deregister");
    assert!(registry.get_service("micro.http.broker").await.is_err());
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while registry.get_service("micro.http.broker").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never re-registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        registry
            .get_service("micro.http.broker")
            .await
            .expect("back"),
        svc
    );
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_deregisters_first_and_lets_handlers_finish() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let sub = broker(&registry);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = finished.clone();
    let _s = sub
        .subscribe(
            "slow",
            handler_fn(move |_| {
                let (tx, f) = (started_tx.clone(), f.clone());
                async move {
                    tx.send(()).ok();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    f.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    wait_subscribers(&publisher, "slow", 1).await;
    let p = publisher.clone();
    let publish = tokio::spawn(async move { p.publish("slow", Envelope::new("x")).await });
    started.recv().await.expect("handler started");
    sub.disconnect().await.expect("disconnect");
    assert!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        "the handler in progress finished"
    );
    assert!(
        registry.get_service("micro.http.broker").await.is_err(),
        "deregistered"
    );
    publish.await.expect("task").expect("publish");
    assert_eq!(
        publisher.stats().delivered,
        1,
        "the answer came before the server closed"
    );
    publisher.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_during_a_registry_outage_costs_one_timeout_not_one_per_subscription() {
    // Five subscriptions, a registry that takes 1 s per write (as one that is down
    // takes its timeout), and a heartbeat round in progress: disconnect neither
    // waits for the round to finish nor deregisters one subscription after the
    // other (which would take at least 5 s).
    use micro_registry::testing::Faulty;
    let memory: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(Faulty::new(memory));
    let b = HttpBroker::with_options(
        micro_broker::HttpBrokerOptions::new()
            .registry(faulty.clone())
            .address("127.0.0.1:0")
            .register_interval(Duration::from_millis(100)),
    );
    for i in 0..5 {
        b.subscribe(
            &format!("t{i}"),
            Collector::new().handler(),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    }
    faulty.set_write_delay(Duration::from_secs(1));
    // let a heartbeat round start and hold the subscriptions' lock
    let before = faulty.registers();
    wait_for("a heartbeat round", || faulty.registers() > before).await;
    let started = tokio::time::Instant::now();
    b.disconnect().await.expect("disconnect");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "disconnect took {took:?}: it waited behind the heartbeat or deregistered one by one"
    );
}
