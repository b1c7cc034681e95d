//! go-micro's `TestMemoryBroker` and the memory broker's documented policy:
//! broadcast and round-robin queue groups, bounded queues, handler failures,
//! unsubscribe (also from inside a handler), disconnect, no task left.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, alive_tasks, wait_for};
use micro_broker::{
    Broker, Envelope, Error, MemoryBroker, MemoryBrokerOptions, Overflow, SubscribeOptions,
    Subscription, handler_fn,
};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_counts() {
    // go-micro TestMemoryBroker: 10 messages, one subscriber, all arrive.
    let b = MemoryBroker::new();
    assert_eq!((b.name(), b.address()), ("memory", String::new()));
    b.connect().await.expect("connect");
    let got = Collector::new();
    let sub = b
        .subscribe("test", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    for i in 0..10 {
        b.publish(
            "test",
            Envelope::new(format!("m{i}")).with_header("foo", "bar"),
        )
        .await
        .expect("publish");
    }
    wait_for("10 events", || got.count() == 10).await;
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(got.bodies(), want, "in publish order");
    assert_eq!(got.events()[0].message.header["foo"], "bar");
    sub.unsubscribe().await.expect("unsubscribe");
    assert!(matches!(
        b.publish("test", Envelope::new("x")).await,
        Err(Error::NoSubscribers(_))
    ));
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_round_robin_groups() {
    let b = MemoryBroker::new();
    let broadcast: Vec<Collector> = (0..3).map(|_| Collector::new()).collect();
    let groups: Vec<Vec<Collector>> = (0..2)
        .map(|_| (0..3).map(|_| Collector::new()).collect())
        .collect();
    let mut subs = Vec::new();
    for c in &broadcast {
        subs.push(
            b.subscribe("t", c.handler(), SubscribeOptions::default())
                .await
                .expect("subscribe"),
        );
    }
    for (g, members) in groups.iter().enumerate() {
        for c in members {
            subs.push(
                b.subscribe("t", c.handler(), SubscribeOptions::queue(format!("g{g}")))
                    .await
                    .expect("subscribe"),
            );
        }
    }
    for i in 0..30 {
        b.publish("t", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    for c in &broadcast {
        wait_for("broadcast", || c.count() == 30).await;
    }
    for members in &groups {
        wait_for("group", || {
            members.iter().map(Collector::count).sum::<usize>() == 30
        })
        .await;
        // Round robin: exactly a third each.
        assert!(members.iter().all(|c| c.count() == 10));
    }
    let s = b.stats();
    assert_eq!((s.published, s.queued, s.dropped), (30, 150, 0));
    wait_for("handled", || b.stats().handled == 150).await;
    b.disconnect().await.expect("disconnect");
    assert!(matches!(
        b.publish("t", Envelope::new("x")).await,
        Err(Error::NoSubscribers(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_drops_its_own_events_and_blocks_nobody() {
    let b = MemoryBroker::with_options(MemoryBrokerOptions::new().queue_capacity(4));
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let slow = Collector::new();
    let slow_handler = slow.handler();
    let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let e = entered.clone();
    let _slow = b
        .subscribe(
            "t",
            handler_fn(move |ev| {
                let (g, h) = (g.clone(), slow_handler.clone());
                e.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    g.acquire().await.expect("gate").forget();
                    h.handle(ev).await
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let fast = Collector::new();
    let _fast = b
        .subscribe("t", fast.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    for i in 0..20 {
        b.publish("t", Envelope::new(i.to_string()))
            .await
            .expect("publish never waits");
        // Let the fast subscriber keep up so that only the slow one overflows.
        wait_for("fast", || fast.count() == i + 1).await;
        if i == 0 {
            wait_for("slow handler holds the first event", || {
                entered.load(std::sync::atomic::Ordering::SeqCst) == 1
            })
            .await;
        }
    }
    // The slow one holds one event in its handler and 4 in its queue.
    let s = b.stats();
    assert_eq!(s.dropped, 15, "{s:?}");
    gate.add_permits(100);
    wait_for("slow drains", || slow.count() == 5).await;
    assert_eq!(slow.bodies(), ["0", "1", "2", "3", "4"]);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_overflow_loses_nothing() {
    let b = MemoryBroker::with_options(
        MemoryBrokerOptions::new()
            .queue_capacity(1)
            .overflow(Overflow::Wait),
    );
    let got = Collector::new();
    let h = got.handler();
    let _s = b
        .subscribe(
            "t",
            handler_fn(move |ev| {
                let h = h.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    h.handle(ev).await
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    for i in 0..50 {
        b.publish("t", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    wait_for("all", || got.count() == 50).await;
    assert_eq!(b.stats().dropped, 0);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_panics_are_counted_and_delivery_goes_on() {
    let b = MemoryBroker::new();
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    let _s = b
        .subscribe(
            "t",
            handler_fn(move |_| {
                let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    match i % 3 {
                        0 => Err("failed".into()),
                        1 => panic!("handler bug"),
                        _ => Ok(()),
                    }
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    for _ in 0..9 {
        b.publish("t", Envelope::new("x")).await.expect("publish");
    }
    wait_for("all handled", || {
        b.stats().handled + b.stats().handler_errors == 9
    })
    .await;
    assert_eq!((b.stats().handled, b.stats().handler_errors), (3, 6));
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_from_inside_the_handler() {
    let b = MemoryBroker::new();
    let slot: Arc<parking_lot::Mutex<Option<Box<dyn Subscription>>>> = Arc::default();
    let got = Collector::new();
    let (s2, h) = (slot.clone(), got.handler());
    let sub = b
        .subscribe(
            "once",
            handler_fn(move |ev| {
                let (s2, h) = (s2.clone(), h.clone());
                async move {
                    h.handle(ev).await?;
                    let sub = s2.lock().take();
                    if let Some(sub) = sub {
                        sub.unsubscribe().await?;
                    }
                    Ok(())
                }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    *slot.lock() = Some(sub);
    b.publish("once", Envelope::new("first"))
        .await
        .expect("publish");
    wait_for("first", || got.count() == 1).await;
    wait_for("unsubscribed", || slot.lock().is_none()).await;
    // Unsubscribe from inside is done once the handler returns.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while b.publish("once", Envelope::new("second")).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(got.bodies(), ["first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_drop_leave_no_task() {
    let baseline = alive_tasks();
    let b = MemoryBroker::new();
    for q in [None, Some("a"), Some("a"), Some("b")] {
        let opts = SubscribeOptions {
            queue: q.map(str::to_owned),
        };
        b.subscribe("t", Collector::new().handler(), opts)
            .await
            .expect("subscribe");
    }
    assert_eq!(alive_tasks(), baseline + 4);
    b.publish("t", Envelope::new("x")).await.expect("publish");
    b.disconnect().await.expect("disconnect");
    // disconnect waited for the tasks; the runtime's count follows a moment later.
    wait_for("disconnect to end every task", || alive_tasks() == baseline).await;
    let b2 = MemoryBroker::new();
    for _ in 0..3 {
        b2.subscribe("t", Collector::new().handler(), SubscribeOptions::default())
            .await
            .expect("subscribe");
    }
    drop(b2);
    wait_for("aborted tasks", || alive_tasks() == baseline).await;
}
