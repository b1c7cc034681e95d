//! Rust-side HTTP broker roles: `publish` and `subscribe`, with the same output as
//! the Go `bench publish` / `bench subscribe`.
//!
//! * `publish --topic T --subscribers N --seconds S --concurrency C`: waits until N
//!   subscriptions of T are visible, publishes from C tasks for S seconds, prints
//!   `{"published","errors","start_ns","end_ns"}`, then stays connected until
//!   SIGTERM/SIGINT.
//! * `subscribe --topic T`: prints `READY <address>` once subscribed, then
//!   `{"received","first_ns","last_ns"}` every 50 ms while the count changes and
//!   once more when SIGTERM/SIGINT stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro_broker::{Broker, Envelope, HttpBroker, HttpBrokerOptions, SubscribeOptions, handler_fn};
use micro_etcd::EtcdRegistry;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{Flags, Res, emit, unix_ns};

/// An HTTP broker on the etcd registry named by `MICRO_REGISTRY_ADDRESS`.
fn broker() -> Res<HttpBroker> {
    let endpoints =
        std::env::var("MICRO_REGISTRY_ADDRESS").map_err(|_| "MICRO_REGISTRY_ADDRESS is not set")?;
    let registry = EtcdRegistry::builder()
        .endpoints(endpoints.split(','))
        .build()?;
    Ok(HttpBroker::with_options(
        HttpBrokerOptions::from_env().registry(Arc::new(registry)),
    ))
}

/// SIGTERM and SIGINT, caught from the role's start.
pub(crate) struct Signals(Signal, Signal);

impl Signals {
    pub(crate) fn new() -> Res<Signals> {
        Ok(Signals(
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    }

    /// Waits for either signal.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.0.recv() => {}
            _ = self.1.recv() => {}
        }
    }
}

pub(crate) async fn publish(flags: &Flags) -> Res<()> {
    let topic = flags.str("topic", "bench.events");
    let want: usize = flags.num("subscribers", 1)?;
    let secs: f64 = flags.num("seconds", 3.0)?;
    let concurrency: usize = flags.num("concurrency", 32)?;
    let max_events: u64 = flags.num("max_events", 1_000_000)?;
    let mut signals = Signals::new()?;
    let broker = broker()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = broker.subscribers(&topic).await.map(|s| s.len());
        if matches!(seen, Ok(n) if n >= want) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{seen:?} of {want} subscriptions visible after 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = serde_json::to_vec(
        &json!({"id": "bench", "timestamp": unix_ns() / 1_000_000_000, "message": "hello"}),
    )?;
    let msg = Envelope::new(body).with_header("Content-Type", "application/json");
    let published = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start_ns = unix_ns();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (b, m, t) = (broker.clone(), msg.clone(), topic.clone());
        let (published, errors) = (published.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                if published.fetch_add(1, Ordering::Relaxed) >= max_events {
                    published.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                if let Err(e) = b.publish(&t, m.clone()).await
                    && errors.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("compare: publish: {e}");
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    emit(&json!({
        "published": published.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "start_ns": start_ns,
        "end_ns": unix_ns(),
    }));
    signals.recv().await;
    broker.disconnect().await?;
    Ok(())
}

pub(crate) async fn subscribe(flags: &Flags) -> Res<()> {
    let topic = flags.str("topic", "bench.events");
    let mut signals = Signals::new()?;
    let broker = broker()?;
    let received = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicI64::new(0));
    let last = Arc::new(AtomicI64::new(0));
    let (r, f, l) = (received.clone(), first.clone(), last.clone());
    let handler = handler_fn(move |_| {
        let now = unix_ns();
        if r.fetch_add(1, Ordering::Relaxed) == 0 {
            f.store(now, Ordering::Relaxed);
        }
        l.store(now, Ordering::Relaxed);
        async { Ok(()) }
    });
    let sub = broker
        .subscribe(&topic, handler, SubscribeOptions::default())
        .await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {}", broker.address())?;
        out.flush()?;
    }
    let report = || {
        emit(&json!({
            "received": received.load(Ordering::Relaxed),
            "first_ns": first.load(Ordering::Relaxed),
            "last_ns": last.load(Ordering::Relaxed),
        }))
    };
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = signals.recv() => {
                report();
                break;
            }
            _ = tick.tick() => {
                let n = received.load(Ordering::Relaxed);
                if n != seen {
                    seen = n;
                    report();
                }
            }
        }
    }
    sub.unsubscribe().await?;
    broker.disconnect().await?;
    Ok(())
}
