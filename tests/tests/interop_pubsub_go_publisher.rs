//! A real go-micro publisher (v4.11 and v5.30, on etcd and on Consul) sends events
//! through its HTTP broker to our subscribers (`micro::server::Subscriber` in our
//! services): two broadcast subscribers each get every event, a queue group of two
//! gets each event once; payloads and headers (`Micro-Topic`, `Content-Type`,
//! `Micro-ID`, custom metadata) arrive intact. Both ways a Go program publishes
//! are covered: `micro.NewEvent(...).Publish` (client mode) and a raw
//! `broker.Publish` (broker mode).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use micro::Service;
use micro::registry::Registry;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, Received, Recorder, Registries, for_each_combo, our_server, poll, run, subscriber,
};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);
/// Events per publisher run.
const N: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_publisher_to_our_subscribers() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("Go publisher -> our subscribers", &registries, scenario).await;
}

/// One of our services with one subscriber.
struct Sub {
    service: Service,
    got: Recorder<Received>,
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let topic = format!("interop.{}.go-to-rust", combo.slug());
    let registry = registries.registry(combo.registry);
    let mut subs = Vec::new();
    for (i, queue) in [None, None, Some("workers"), Some("workers")]
        .into_iter()
        .enumerate()
    {
        let got = Recorder::new();
        let service = our_server(&format!("rust-sub-{i}-{}", combo.slug()), registry.clone())
            .subscribe(subscriber(&topic, queue, got.clone()))
            .build()
            .expect("build");
        service.start().await.expect("start subscriber service");
        subs.push(Sub { service, got });
    }
    wait_subscriptions(&*registry, &topic, 2, 2).await;

    let mut base = registries.go_args(combo.registry);
    base.extend([
        "--topic".into(),
        topic.clone(),
        "--count".into(),
        N.to_string(),
    ]);

    // Client mode: go-micro adds Content-Type, Micro-ID and Micro-Topic.
    let ids = publish(&combo, &base, "client", "trace-client").await;
    check_deliveries(&combo, &subs, &ids, N).await;
    for s in &subs {
        for r in s.got.items() {
            check_event(&r, &topic, "trace-client");
            let id = header(&r.metadata, "Micro-ID").expect("Micro-ID header");
            assert_eq!(id.len(), 36, "a UUID: {id}");
        }
    }
    let micro_ids: BTreeSet<String> = subs[0]
        .got
        .items()
        .iter()
        .filter_map(|r| header(&r.metadata, "Micro-ID"))
        .collect();
    assert_eq!(micro_ids.len(), N, "a fresh Micro-ID per event");

    // Broker mode: only the publisher's headers plus Micro-Topic.
    let raw_ids = publish(&combo, &base, "broker", "trace-broker").await;
    check_deliveries(&combo, &subs, &raw_ids, 2 * N).await;
    for s in &subs {
        for r in s
            .got
            .items()
            .iter()
            .filter(|r| raw_ids.contains(&r.event.id))
        {
            check_event(r, &topic, "trace-broker");
            assert_eq!(header(&r.metadata, "Micro-ID"), None, "{:?}", r.metadata);
        }
    }

    for s in subs {
        tokio::time::timeout(LIMIT, s.service.stop())
            .await
            .expect("stop in time")
            .expect("stop");
    }
}

/// Waits until the registry lists `broadcast` broadcast subscribers and `queued`
/// members of queue `workers` on `topic`.
async fn wait_subscriptions(registry: &dyn Registry, topic: &str, broadcast: usize, queued: usize) {
    let seen = poll(LIMIT, || async {
        let services = registry.get_service("micro.http.broker").await.ok()?;
        let count = |version: &str| {
            services
                .iter()
                .filter(|s| s.version == version)
                .flat_map(|s| &s.nodes)
                .filter(|n| n.metadata.get("topic").map(String::as_str) == Some(topic))
                .count()
        };
        (count("ff.http.broadcast") == broadcast && count("workers") == queued).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "subscriptions of {topic} never all registered"
    );
}

/// Runs the Go publisher in `mode`; returns the ids of the events it published.
async fn publish(combo: &Combo, base: &[String], mode: &str, trace: &str) -> BTreeSet<String> {
    let mut args = base.to_vec();
    args.extend(
        [
            "--mode",
            mode,
            "--message",
            "from go",
            "--metadata",
            &format!("X-Trace={trace}"),
            "--metadata",
            "lower-key=v",
        ]
        .map(String::from),
    );
    let out = run(combo.go, "publisher", &args, LIMIT).await;
    let lines = out.expect_code(0);
    assert_eq!(lines.len(), N, "{}", out.context());
    lines
        .iter()
        .map(|l| l["id"].as_str().expect("published id").to_owned())
        .collect()
}

/// Waits until the broadcast subscribers hold `total` events each and the queue
/// members `total` between them; checks the newest events are exactly `ids`, once
/// per broadcast subscriber and once in the group.
async fn check_deliveries(combo: &Combo, subs: &[Sub], ids: &BTreeSet<String>, total: usize) {
    for s in &subs[..2] {
        let got = s.got.wait_for(LIMIT, |g| g.len() >= total).await;
        let seen: Vec<&String> = got
            .iter()
            .map(|r| &r.event.id)
            .filter(|id| ids.contains(*id))
            .collect();
        assert_eq!(got.len(), total, "broadcast subscriber got {seen:?}");
        assert_eq!(seen.len(), ids.len(), "every event once: {seen:?}");
        assert_eq!(seen.into_iter().cloned().collect::<BTreeSet<_>>(), *ids);
    }
    let group = poll(LIMIT, || {
        let n = subs[2].got.len() + subs[3].got.len();
        std::future::ready((n >= total).then_some(n))
    })
    .await;
    let in_group: Vec<String> = subs[2..]
        .iter()
        .flat_map(|s| s.got.items())
        .map(|r| r.event.id)
        .filter(|id| ids.contains(id))
        .collect();
    assert!(group.is_some(), "queue group got only {in_group:?}");
    assert_eq!(
        in_group.len(),
        ids.len(),
        "each event once in the group: {in_group:?}"
    );
    assert_eq!(in_group.into_iter().collect::<BTreeSet<_>>(), *ids);
    eprintln!(
        "[{}] queue split: {} / {}",
        combo.label(),
        subs[2].got.len(),
        subs[3].got.len()
    );
}

fn check_event(r: &Received, topic: &str, trace: &str) {
    let md = &r.metadata;
    assert!(r.event.message.starts_with("from go "), "{r:?}");
    assert!(r.event.timestamp > 0, "{r:?}");
    assert_eq!(header(md, "Micro-Topic").as_deref(), Some(topic), "{md:?}");
    assert_eq!(
        header(md, "Content-Type").as_deref(),
        Some("application/json"),
        "{md:?}"
    );
    assert_eq!(header(md, "X-Trace").as_deref(), Some(trace), "{md:?}");
    assert_eq!(header(md, "lower-key").as_deref(), Some("v"), "{md:?}");
}

/// A metadata value by case-insensitive name (our context canonicalises names).
fn header(md: &BTreeMap<String, String>, key: &str) -> Option<String> {
    md.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.clone())
}
