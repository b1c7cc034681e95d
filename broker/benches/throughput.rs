//! HTTP broker throughput over real loopback HTTP: one publisher, 1 or 8 broadcast
//! subscribers (separate `HttpBroker`s, each with its own server, on a shared
//! memory registry). `publish` returns once every subscriber answered, so an event
//! counted as published has been handled by every subscriber.
//!
//! `cargo bench -p micro-broker --bench throughput [-- EVENTS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro_broker::{Broker, Envelope, HttpBroker, HttpBrokerOptions, SubscribeOptions, handler_fn};
use micro_registry::MemoryRegistry;

const WARMUP: usize = 2_000;

async fn run(subscribers: usize, concurrency: usize, events: usize) -> (f64, u64) {
    let registry = Arc::new(MemoryRegistry::new());
    let opts = || HttpBrokerOptions::new().registry(registry.clone());
    let received = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let b = HttpBroker::with_options(opts());
        let r = received.clone();
        b.subscribe(
            "bench",
            handler_fn(move |_| {
                r.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
        subs.push(b);
    }
    let publisher = HttpBroker::with_options(opts());
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher
        .subscribers("bench")
        .await
        .map(|s| s.len())
        .unwrap_or(0)
        != subscribers
    {
        assert!(Instant::now() < deadline, "subscribers not visible");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body =
        Envelope::new(vec![b'x'; 256]).with_header("Content-Type", "application/octet-stream");
    let publish_all = |n: usize| {
        let tasks: Vec<_> = (0..concurrency)
            .map(|w| {
                let (p, m) = (publisher.clone(), body.clone());
                let share = n / concurrency + usize::from(w < n % concurrency);
                tokio::spawn(async move {
                    for _ in 0..share {
                        p.publish("bench", m.clone()).await.expect("publish");
                    }
                })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.expect("publisher task");
            }
        }
    };
    publish_all(WARMUP).await;
    let before = received.load(Ordering::Relaxed);
    let start = Instant::now();
    publish_all(events).await;
    let secs = start.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed) - before;
    let s = publisher.stats();
    assert_eq!(s.failed_attempts + s.dropped + s.rejected, 0, "{s:?}");
    publisher.disconnect().await.expect("disconnect");
    for b in subs {
        b.disconnect().await.expect("disconnect");
    }
    (secs, delivered)
}

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!(
        "HTTP broker over loopback: {events} events of 256 bytes after {WARMUP} warm-up events"
    );
    eprintln!(
        "{:>11} {:>11} {:>9} {:>12} {:>14}",
        "subscribers", "concurrency", "seconds", "events/s", "deliveries/s"
    );
    for subscribers in [1, 8] {
        for concurrency in [1, 32] {
            let (secs, delivered) = rt.block_on(run(subscribers, concurrency, events));
            assert_eq!(
                delivered,
                (events * subscribers) as u64,
                "every event reached every subscriber"
            );
            eprintln!(
                "{:>11} {:>11} {:>9.2} {:>12.0} {:>14.0}",
                subscribers,
                concurrency,
                secs,
                events as f64 / secs,
                delivered as f64 / secs
            );
        }
    }
}
