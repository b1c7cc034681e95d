//! The HTTP broker across processes through a real etcd: `broker-subscriber`
//! processes (each an `HttpBroker` on `micro-etcd`) receive what an in-test
//! publisher sends — broadcast and queue-group counts, and what happens to events
//! when a subscriber is killed with `kill -9`.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro_broker::{Broker, Envelope, Error, HttpBroker, HttpBrokerOptions};
use micro_etcd::EtcdRegistry;
use micro_registry::Registry;
use micro_tests::harness::etcd::{Etcd, init_tracing};
use micro_tests::harness::{Proc, wait_until};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(20);

/// A running `broker-subscriber` and the events it printed.
struct Subscriber {
    proc: Proc,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Subscriber {
    async fn spawn(etcd: &Etcd, topic: &str, queue: Option<&str>, ttl_ms: u64) -> Subscriber {
        let mut cmd = Command::new(Path::new(env!("CARGO_BIN_EXE_broker-subscriber")));
        cmd.args(["--endpoints", &etcd.endpoints().join(","), "--topic", topic])
            .args([
                "--ttl-ms",
                &ttl_ms.to_string(),
                "--interval-ms",
                &(ttl_ms / 3).to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("MICRO_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(q) = queue {
            cmd.args(["--queue", q]);
        }
        let mut proc = Proc::spawn(format!("broker-subscriber-{topic}"), &mut cmd).expect("spawn");
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(LIMIT, async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.starts_with("READY ") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "subscriber did not get ready");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        // Ends at EOF, when the process exits.
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                // A line that is not JSON is kept as a string: `bodies` then fails.
                let v = serde_json::from_str(&l).unwrap_or(serde_json::Value::String(l));
                sink.lock().expect("events").push(v);
            }
        });
        Subscriber { proc, events }
    }

    fn count(&self) -> usize {
        self.events.lock().expect("events").len()
    }

    fn bodies(&self) -> Vec<String> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .map(|v| v["body"].as_str().expect("body").to_owned())
            .collect()
    }
}

fn publisher(etcd: &Etcd, opts: HttpBrokerOptions) -> HttpBroker {
    let registry = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    HttpBroker::with_options(opts.registry(Arc::new(registry)))
}

async fn wait_subscribers(p: &HttpBroker, topic: &str, n: usize) {
    let seen = wait_until(LIMIT, Duration::from_millis(50), || async {
        p.subscribers(topic).await.map(|s| s.len()).unwrap_or(0) == n
    })
    .await;
    assert!(seen, "the publisher never saw {n} subscribers of {topic}");
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    assert!(
        wait_until(LIMIT, Duration::from_millis(20), || std::future::ready(f())).await,
        "timed out waiting for {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_queue_counts_across_processes() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let mut broadcast = Vec::new();
    for _ in 0..2 {
        broadcast.push(Subscriber::spawn(&etcd, "orders", None, 60_000).await);
    }
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Subscriber::spawn(&etcd, "orders", Some("workers"), 60_000).await);
    }
    let p = publisher(&etcd, HttpBrokerOptions::new());
    wait_subscribers(&p, "orders", 5).await;

    const N: usize = 30;
    for i in 0..N {
        let msg = Envelope::new(format!("e{i}")).with_header("X-Seq", i.to_string());
        p.publish("orders", msg).await.expect("publish");
    }
    let all: HashSet<String> = (0..N).map(|i| format!("e{i}")).collect();
    for s in &broadcast {
        eventually("broadcast subscriber", || s.count() == N).await;
        assert_eq!(s.bodies().into_iter().collect::<HashSet<_>>(), all);
    }
    eventually("queue group", || {
        workers.iter().map(Subscriber::count).sum::<usize>() == N
    })
    .await;
    let got: Vec<String> = workers.iter().flat_map(Subscriber::bodies).collect();
    assert_eq!(got.len(), N);
    assert_eq!(
        got.into_iter().collect::<HashSet<_>>(),
        all,
        "each event once in the group"
    );
    let first = broadcast[0].events.lock().expect("events")[0].clone();
    assert_eq!(first["topic"], "orders");
    assert_eq!(first["header"]["Micro-Topic"], "orders");
    assert_eq!(first["header"]["X-Seq"], "0");
    let s = p.stats();
    assert_eq!(
        (s.deliveries, s.delivered, s.pending, s.dropped),
        (3 * N as u64, 3 * N as u64, 0, 0)
    );

    // SIGTERM: every subscriber deregisters; publishing then fails cleanly.
    for s in broadcast.iter_mut().chain(workers.iter_mut()) {
        let (exited, status) = s.proc.terminate(Duration::from_secs(10)).await;
        assert!(
            exited && status.is_some_and(|st| st.success()),
            "{status:?}"
        );
    }
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    assert!(
        reg.get_service("micro.http.broker")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let failed = wait_until(LIMIT, Duration::from_millis(50), || async {
        matches!(
            p.publish("orders", Envelope::new("late")).await,
            Err(Error::NoSubscribers(_))
        )
    })
    .await;
    assert!(failed, "publishing after every subscriber left must fail");
    p.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriber_events_are_retried_until_its_lease_expires() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let survivor = Subscriber::spawn(&etcd, "audit", None, 60_000).await;
    let mut victim = Subscriber::spawn(&etcd, "audit", None, 3_000).await;
    let p = publisher(
        &etcd,
        HttpBrokerOptions::new()
            .retry_attempts(100_000)
            .retry_max_age(Duration::from_secs(3600))
            .retry_backoff(Duration::from_millis(100), Duration::from_millis(500)),
    );
    wait_subscribers(&p, "audit", 2).await;
    for i in 0..5 {
        p.publish("audit", Envelope::new(format!("a{i}")))
            .await
            .expect("publish");
    }
    eventually("both got the first 5", || {
        survivor.count() == 5 && victim.count() == 5
    })
    .await;

    victim.proc.kill9().await;
    for i in 5..10 {
        p.publish("audit", Envelope::new(format!("a{i}")))
            .await
            .expect("publish");
    }
    // publish returned after the survivor answered: it has them already.
    eventually("survivor", || survivor.count() == 10).await;
    assert_eq!(p.stats().pending, 5, "{:?}", p.stats());
    // The victim's lease runs out (TTL 3 s): its deliveries are dropped, not kept.
    eventually("pending deliveries to end", || p.stats().pending == 0).await;
    let s = p.stats();
    assert_eq!(s.deliveries, 20);
    assert_eq!(
        (s.delivered, s.dropped, s.retried, s.rejected),
        (15, 5, 0, 0),
        "{s:?}"
    );
    assert!(s.failed_attempts >= 5);
    let want: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    assert_eq!(survivor.bodies(), want, "in order, no duplicate");
    p.publish("audit", Envelope::new("after"))
        .await
        .expect("publish");
    assert_eq!(
        p.stats().deliveries,
        21,
        "only the survivor is a target now"
    );
    p.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_queue_member_loses_no_event() {
    init_tracing();
    let etcd = Etcd::start().await.expect("etcd");
    let mut w1 = Subscriber::spawn(&etcd, "jobs", Some("workers"), 3_000).await;
    let w2 = Subscriber::spawn(&etcd, "jobs", Some("workers"), 60_000).await;
    let p = publisher(&etcd, HttpBrokerOptions::new());
    wait_subscribers(&p, "jobs", 2).await;
    for i in 0..10 {
        p.publish("jobs", Envelope::new(format!("j{i}")))
            .await
            .expect("publish");
    }
    eventually("first 10", || w1.count() + w2.count() == 10).await;
    let before = w2.count();
    w1.proc.kill9().await;
    for i in 10..30 {
        p.publish("jobs", Envelope::new(format!("j{i}")))
            .await
            .expect("publish");
    }
    // Each publish tried the dead member at most once and fell over to the live one.
    eventually("the live member got the rest", || w2.count() == before + 20).await;
    let s = p.stats();
    assert_eq!(
        (s.deliveries, s.delivered, s.pending, s.dropped),
        (30, 30, 0, 0),
        "{s:?}"
    );
    let mut all: Vec<String> = w1.bodies().into_iter().chain(w2.bodies()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30);
    p.disconnect().await.expect("disconnect");
}
