//! Garbage under the prefix (not JSON, a service without nodes, not UTF-8, a JSON
//! array) is skipped with a warning naming the key; get, list and watch keep
//! working with the good records around it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{Action, RegisterOptions, Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, node_service};

/// Collects log output for the test's own thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

const BAD: [(&str, &[u8]); 4] = [
    ("/micro/registry/mixed/not-json", b"{this is not json"),
    (
        "/micro/registry/mixed/no-nodes",
        br#"{"name":"mixed","version":"1","nodes":[]}"#,
    ),
    (
        "/micro/registry/mixed/not-utf8",
        b"{\"name\":\"mi\xff\xfexed\",\"nodes\":[{\"id\":\"x\"}]}",
    ),
    ("/micro/registry/mixed/array", b"[1,2,3]"),
];

// A current-thread runtime, so every task logs through this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn garbage_is_skipped_with_a_warning() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let etcd = Etcd::start().await.expect("etcd");
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let ttl = RegisterOptions::ttl(Duration::from_secs(10));
    let good = node_service("mixed", "1", "mixed-good", "127.0.0.1:1");
    reg.register(&good, &ttl).await.expect("register");
    let mut w = reg
        .watch(&WatchOptions::service("mixed"))
        .await
        .expect("watch");
    let mut all = reg.watch(&WatchOptions::all()).await.expect("watch all");

    let mut c = etcd.client().await.expect("client");
    for (k, v) in BAD {
        c.put(k, v.to_vec(), None).await.expect("put garbage");
    }
    // A good record after the garbage: the watchers must still deliver it.
    let later = node_service("mixed", "1", "mixed-later", "127.0.0.1:2");
    reg.register(&later, &ttl).await.expect("register");
    for watcher in [&mut w, &mut all] {
        let ev = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .expect("event in time")
            .expect("event");
        assert_eq!(
            (ev.action, ev.service.nodes[0].id.as_str()),
            (Action::Create, "mixed-later")
        );
    }

    let got = reg.get_service("mixed").await.expect("get");
    let ids: Vec<&str> = got
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.id.as_str()))
        .collect();
    assert_eq!(ids, ["mixed-good", "mixed-later"]);
    let list = reg.list_services().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].nodes.len(), 2);

    // Deleting garbage produces no event; deleting a good record does.
    for (k, _) in BAD {
        c.delete(k, None).await.expect("delete garbage");
    }
    reg.deregister(&good).await.expect("deregister");
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("event in time")
        .expect("event");
    assert_eq!(
        (ev.action, ev.service.nodes[0].id.as_str()),
        (Action::Delete, "mixed-good")
    );

    let text = logs.text();
    for (k, _) in BAD {
        assert!(text.contains(k), "no warning names {k}:\n{text}");
    }
    assert!(text.contains("WARN"), "{text}");
}
