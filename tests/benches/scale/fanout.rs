//! The HTTP broker's fan-out: events per second one publisher gets through to 1,
//! 10 and 100 broadcast subscribers of one topic, on a real etcd.
//!
//! Every subscriber is an `HttpBroker` of its own (its own HTTP server and
//! registration) in this process; the publisher is another, with its own etcd
//! client. `publish` returns once every subscriber answered, so an event counted
//! has been handled by all of them. A last run has one subscriber and `others`
//! subscription records of other topics in the registry (as a mesh has): the
//! publisher reads them all (go-micro's layout keeps every topic under one
//! service), so this shows what unrelated topics cost a publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use micro_broker::{Broker, Envelope, HttpBroker, HttpBrokerOptions, SubscribeOptions, handler_fn};
use micro_registry::{MetadataMap, Node, RegisterOptions, ServiceRecord};
use micro_tests::harness::wait_until;
use tokio::task::JoinSet;

use crate::Res;
use crate::backend::Backend;

/// Publishers running at once.
const CONCURRENCY: usize = 16;

/// One fan-out run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fanout {
    pub(crate) subscribers: usize,
    /// Subscription records of other topics in the registry.
    pub(crate) others: usize,
    /// Events published (and handled by every subscriber) per second.
    pub(crate) events_per_sec: f64,
    /// Deliveries per second (events times subscribers).
    pub(crate) deliveries_per_sec: f64,
}

pub(crate) async fn measure(
    backend: &Backend,
    subscribers: usize,
    others: usize,
    secs: f64,
) -> Res<Fanout> {
    let topic = format!("scale.fanout.{subscribers}.{others}");
    let reg = backend.client(None)?;
    let other_records: Vec<ServiceRecord> = (0..others).map(|i| other_record(&topic, i)).collect();
    for r in &other_records {
        reg.register(r, &RegisterOptions::ttl(Duration::from_secs(60)))
            .await?;
    }
    let received = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let b = HttpBroker::with_options(HttpBrokerOptions::new().registry(backend.client(None)?));
        let r = received.clone();
        b.subscribe(
            &topic,
            handler_fn(move |_| {
                r.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            }),
            SubscribeOptions::default(),
        )
        .await?;
        subs.push(b);
    }
    let publisher =
        HttpBroker::with_options(HttpBrokerOptions::new().registry(backend.client(None)?));
    let visible = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            publisher
                .subscribers(&topic)
                .await
                .map(|s| s.len())
                .unwrap_or(0)
                == subscribers
        },
    )
    .await;
    if !visible {
        return Err(format!("{subscribers} subscribers of {topic} not visible").into());
    }
    let msg =
        Envelope::new(vec![b'x'; 256]).with_header("Content-Type", "application/octet-stream");
    for _ in 0..100 {
        publisher.publish(&topic, msg.clone()).await?;
    }
    let published = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (p, m, t, n) = (
            publisher.clone(),
            msg.clone(),
            topic.clone(),
            published.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < end {
                if p.publish(&t, m.clone()).await.is_ok() {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let events = published.load(Ordering::Relaxed) as f64;
    publisher.disconnect().await?;
    for b in subs {
        b.disconnect().await?;
    }
    for r in &other_records {
        reg.deregister(r).await?;
    }
    if received.load(Ordering::Relaxed) == 0 {
        return Err("no event reached a subscriber".into());
    }
    Ok(Fanout {
        subscribers,
        others,
        events_per_sec: events / elapsed,
        deliveries_per_sec: events * subscribers as f64 / elapsed,
    })
}

/// A broadcast subscription of another topic, as an HTTP broker registers it.
fn other_record(topic: &str, i: usize) -> ServiceRecord {
    let other = format!("{topic}.other{i}");
    let mut metadata = MetadataMap::new();
    metadata.insert("broker".into(), "http".into());
    metadata.insert("secure".into(), "false".into());
    metadata.insert("topic".into(), other.clone());
    ServiceRecord {
        name: micro_broker::http::SERVICE_NAME.into(),
        version: micro_broker::http::BROADCAST_VERSION.into(),
        nodes: vec![Node {
            id: format!("{other}-{i}"),
            address: "127.0.0.1:9".into(),
            metadata,
        }],
        ..Default::default()
    }
}
