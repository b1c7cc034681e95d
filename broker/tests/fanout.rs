//! Broadcast and queue-group delivery counts across several brokers, each with
//! its own HTTP server (real HTTP on loopback), sharing one registry.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Collector, broker, wait_for, wait_subscribers};
use micro_broker::{Broker, Envelope, HttpBroker, SubscribeOptions};
use micro_registry::MemoryRegistry;

const N: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_gets_all_each_group_gets_each_once() {
    let registry = Arc::new(MemoryRegistry::new());
    let publisher = broker(&registry);
    let mut brokers: Vec<HttpBroker> = Vec::new();
    let mut broadcast = Vec::new();
    let mut groups: Vec<Vec<Collector>> = vec![Vec::new(), Vec::new()];
    let mut subs = Vec::new();
    for _ in 0..3 {
        let b = broker(&registry);
        let c = Collector::new();
        subs.push(
            b.subscribe("fan", c.handler(), SubscribeOptions::default())
                .await
                .expect("subscribe"),
        );
        broadcast.push(c);
        brokers.push(b);
    }
    for (g, members) in groups.iter_mut().enumerate() {
        for _ in 0..3 {
            let b = broker(&registry);
            let c = Collector::new();
            let sub = b
                .subscribe(
                    "fan",
                    c.handler(),
                    SubscribeOptions::queue(format!("group-{g}")),
                )
                .await
                .expect("subscribe");
            assert_eq!(sub.queue(), Some(format!("group-{g}").as_str()));
            subs.push(sub);
            members.push(c);
            brokers.push(b);
        }
    }
    wait_subscribers(&publisher, "fan", 9).await;

    for i in 0..N {
        publisher
            .publish("fan", Envelope::new(format!("e{i}")))
            .await
            .expect("publish");
    }
    let all: HashSet<String> = (0..N).map(|i| format!("e{i}")).collect();
    for c in &broadcast {
        wait_for("broadcast subscriber", || c.count() == N).await;
        assert_eq!(c.bodies().into_iter().collect::<HashSet<_>>(), all);
    }
    for members in &groups {
        wait_for("queue group", || {
            members.iter().map(Collector::count).sum::<usize>() == N
        })
        .await;
        let got: Vec<String> = members.iter().flat_map(Collector::bodies).collect();
        assert_eq!(got.len(), N, "each event exactly once per group");
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), all);
        // Uniformly random member: with 60 events each of 3 members gets some.
        assert!(
            members.iter().all(|c| c.count() > 0),
            "{:?}",
            members.iter().map(Collector::count).collect::<Vec<_>>()
        );
    }
    let s = publisher.stats();
    assert_eq!(s.published, N as u64);
    assert_eq!(s.deliveries, 5 * N as u64);
    assert_eq!(s.delivered, 5 * N as u64);
    assert_eq!((s.rejected, s.dropped, s.pending), (0, 0, 0));
    // Nothing more arrives afterwards (no duplicates from any inbox).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(broadcast.iter().all(|c| c.count() == N));
    for members in &groups {
        assert_eq!(members.iter().map(Collector::count).sum::<usize>(), N);
    }
    for b in brokers.iter().chain([&publisher]) {
        b.disconnect().await.expect("disconnect");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_members_in_one_broker_share_events() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let (q1, q2, all) = (Collector::new(), Collector::new(), Collector::new());
    let _s1 = b
        .subscribe("mixed", q1.handler(), SubscribeOptions::queue("workers"))
        .await
        .expect("subscribe");
    let _s2 = b
        .subscribe("mixed", q2.handler(), SubscribeOptions::queue("workers"))
        .await
        .expect("subscribe");
    let _s3 = b
        .subscribe("mixed", all.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Two nodes: the broadcast one and the queue group's own node.
    let nodes = b.subscribers("mixed").await.expect("lookup");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let ids: HashSet<&str> = nodes.iter().map(|(_, n)| n.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        2,
        "broadcast and queue records must not share a node id"
    );
    for i in 0..20 {
        b.publish("mixed", Envelope::new(i.to_string()))
            .await
            .expect("publish");
    }
    wait_for("all events", || {
        all.count() == 20 && q1.count() + q2.count() == 20
    })
    .await;
    // Round robin between the two local members of the group.
    assert_eq!((q1.count(), q2.count()), (10, 10));
    b.disconnect().await.expect("disconnect");
}
