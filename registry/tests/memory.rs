//! MemoryRegistry: go-micro's memory registry tests, plus per-node events, TTL
//! expiry that tells watchers, the lag policy and task ownership.

use std::sync::Arc;
use std::time::Duration;

use micro_registry::{
    Action, Endpoint, Error, MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord,
    WatchOptions,
};
use tokio::time::timeout;

fn svc(name: &str, version: &str, nodes: &[&str]) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        version: version.into(),
        nodes: nodes
            .iter()
            .map(|id| Node::new(*id, format!("127.0.0.1:{}", id.len())))
            .collect(),
        ..Default::default()
    }
}

const NO_TTL: RegisterOptions = RegisterOptions { ttl: None };

#[tokio::test]
async fn versions_are_grouped_and_deregistration_removes_them() {
    // go-micro TestMemoryRegistry: 5 versions of "foo" and 2 of "bar".
    let r = MemoryRegistry::new();
    let mut all = Vec::new();
    for (i, v) in ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"]
        .iter()
        .enumerate()
    {
        all.push(svc("foo", v, &[&format!("foo-{i}")]));
    }
    all.push(svc("bar", "2.0.0", &["bar-0"]));
    all.push(svc("bar", "2.0.1", &["bar-1"]));
    for (i, s) in all.iter().enumerate() {
        r.register(s, &NO_TTL).await.unwrap();
        let got = r.get_service(&s.name).await.unwrap();
        let expected = all[..=i].iter().filter(|x| x.name == s.name).count();
        assert_eq!(got.len(), expected, "one entry per version of {}", s.name);
    }
    let listed = r.list_services().await.unwrap();
    assert_eq!(listed.len(), 7);
    assert!(
        listed
            .windows(2)
            .all(|w| (&w[0].name, &w[0].version) <= (&w[1].name, &w[1].version))
    );
    for s in &all {
        r.deregister(s).await.unwrap();
    }
    for name in ["foo", "bar"] {
        assert!(matches!(r.get_service(name).await, Err(Error::NotFound)));
    }
    assert!(r.list_services().await.unwrap().is_empty());
    // Deregistering what is not there is not an error.
    r.deregister(&all[0]).await.unwrap();
}

#[tokio::test]
async fn a_service_without_nodes_is_rejected() {
    let r = MemoryRegistry::new();
    let err = r
        .register(&svc("foo", "1", &[]), &NO_TTL)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

#[tokio::test]
async fn events_are_per_node_create_update_delete() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::all()).await.unwrap();
    let mut s = svc("foo", "1", &["a", "b"]);
    r.register(&s, &NO_TTL).await.unwrap();
    for id in ["a", "b"] {
        let ev = w.next().await.unwrap();
        assert_eq!(ev.action, Action::Create);
        assert_eq!(ev.service.nodes.len(), 1);
        assert_eq!(ev.service.nodes[0].id, id);
        assert_eq!(ev.service.version, "1");
    }
    // Renewal with nothing changed: no event.
    r.register(&s, &NO_TTL).await.unwrap();
    // A node's metadata changes: one update, for that node.
    s.nodes[1].metadata.insert("k".into(), "v".into());
    r.register(&s, &NO_TTL).await.unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(
        (ev.action, ev.service.nodes[0].id.as_str()),
        (Action::Update, "b")
    );
    // The endpoints change: an update for every node registered in the call.
    s.endpoints.push(Endpoint {
        name: "Foo.Bar".into(),
        ..Default::default()
    });
    r.register(&s, &NO_TTL).await.unwrap();
    for _ in 0..2 {
        let ev = w.next().await.unwrap();
        assert_eq!(ev.action, Action::Update);
        assert_eq!(ev.service.endpoints[0].name, "Foo.Bar");
    }
    r.deregister(&svc("foo", "1", &["a"])).await.unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(
        (ev.action, ev.service.nodes[0].id.as_str()),
        (Action::Delete, "a")
    );
    assert_eq!(r.get_service("foo").await.unwrap()[0].nodes.len(), 1);
    // Nothing else is queued.
    assert!(timeout(Duration::from_millis(50), w.next()).await.is_err());
}

#[tokio::test]
async fn a_service_watch_sees_only_its_service() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::service("bar")).await.unwrap();
    r.register(&svc("foo", "1", &["f"]), &NO_TTL).await.unwrap();
    r.register(&svc("bar", "1", &["b"]), &NO_TTL).await.unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!(ev.service.name, "bar");
    assert!(timeout(Duration::from_millis(50), w.next()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_deletes_the_node_and_tells_watchers() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::service("foo")).await.unwrap();
    let start = tokio::time::Instant::now();
    r.register(
        &svc("foo", "1", &["a"]),
        &RegisterOptions::ttl(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    assert_eq!(w.next().await.unwrap().action, Action::Create);
    let ev = w.next().await.unwrap();
    assert_eq!(ev.action, Action::Delete);
    assert_eq!(ev.service.nodes[0].id, "a");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "expired early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(400),
        "expired late: {elapsed:?}"
    );
    // go-micro keeps an empty version around; ours forgets the service.
    assert!(matches!(r.get_service("foo").await, Err(Error::NotFound)));
}

#[tokio::test(start_paused = true)]
async fn renewing_before_the_ttl_keeps_the_node_without_events() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::all()).await.unwrap();
    let s = svc("foo", "1", &["a"]);
    let ttl = RegisterOptions::ttl(Duration::from_millis(100));
    for _ in 0..10 {
        r.register(&s, &ttl).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(w.next().await.unwrap().action, Action::Create);
    assert_eq!(r.get_service("foo").await.unwrap()[0].nodes.len(), 1);
    // Stop renewing: exactly one delete follows.
    let ev = w.next().await.unwrap();
    assert_eq!(ev.action, Action::Delete);
    assert!(matches!(r.get_service("foo").await, Err(Error::NotFound)));
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_wakes_the_expiry_task() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::service("short")).await.unwrap();
    r.register(
        &svc("long", "1", &["l"]),
        &RegisterOptions::ttl(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let start = tokio::time::Instant::now();
    r.register(
        &svc("short", "1", &["s"]),
        &RegisterOptions::ttl(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    assert_eq!(w.next().await.unwrap().action, Action::Create);
    assert_eq!(w.next().await.unwrap().action, Action::Delete);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(r.get_service("long").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_under_a_thousand_concurrent_readers() {
    // go-micro TestMemoryRegistryTTLConcurrent, with real time and threads.
    let r = Arc::new(MemoryRegistry::new());
    for i in 0..5 {
        r.register(
            &svc("foo", &format!("1.0.{i}"), &[&format!("foo-{i}")]),
            &RegisterOptions::ttl(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    }
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let r = r.clone();
        readers.push(tokio::spawn(async move {
            // Read until the nodes are gone, for at most 5 s.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                match r.get_service("foo").await {
                    Err(Error::NotFound) => return true,
                    Ok(list) => assert!(list.iter().all(|s| !s.nodes.is_empty())),
                    Err(e) => panic!("unexpected {e}"),
                }
                if tokio::time::Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for reader in readers {
        assert!(reader.await.unwrap(), "a reader still saw nodes after 5 s");
    }
}

#[tokio::test]
async fn a_slow_watcher_lags_instead_of_stalling_the_registry() {
    let r = MemoryRegistry::with_watch_buffer(4);
    let mut slow = r.watch(&WatchOptions::all()).await.unwrap();
    // 100 registrations complete although nobody reads the watcher.
    timeout(Duration::from_secs(5), async {
        for i in 0..100 {
            r.register(&svc(&format!("s{i}"), "1", &["n"]), &NO_TTL)
                .await
                .unwrap();
        }
    })
    .await
    .expect("registry stalled by a watcher");
    match slow.next().await {
        Err(Error::Lagged { missed }) => assert_eq!(missed, 96),
        other => panic!("expected lag, got {other:?}"),
    }
    // It goes on with the newest events still buffered.
    let ev = slow.next().await.unwrap();
    assert_eq!(ev.service.name, "s96");
}

#[tokio::test]
async fn a_stopped_watcher_says_so() {
    let r = MemoryRegistry::new();
    let mut w = r.watch(&WatchOptions::all()).await.unwrap();
    w.stop();
    assert!(matches!(w.next().await, Err(Error::WatcherStopped)));
    // Dropping the registry ends every watcher.
    let mut w2 = r.watch(&WatchOptions::all()).await.unwrap();
    drop(r);
    assert!(matches!(w2.next().await, Err(Error::WatcherStopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_is_left_after_shutdown_or_drop() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let r = MemoryRegistry::new();
    r.register(
        &svc("foo", "1", &["a"]),
        &RegisterOptions::ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(metrics.num_alive_tasks(), base + 1, "the expiry task runs");
    r.shutdown().await;
    // A finished task leaves the runtime's count a moment after its handle
    // completes: wait for that, briefly.
    for _ in 0..100 {
        if metrics.num_alive_tasks() == base {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), base);
    assert!(r.get_service("foo").await.is_ok(), "data survives shutdown");

    r.register(
        &svc("foo", "1", &["b"]),
        &RegisterOptions::ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(
        metrics.num_alive_tasks(),
        base + 1,
        "a TTL registration restarts it"
    );
    drop(r);
    // Abort is asynchronous: wait (bounded) for the runtime to reap it.
    for _ in 0..100 {
        if metrics.num_alive_tasks() == base {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        base,
        "the expiry task outlived the registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_and_watchers_agree() {
    let r = Arc::new(MemoryRegistry::new());
    let mut w = r.watch(&WatchOptions::service("foo")).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let s = svc("foo", "1", &[&format!("n{t}-{i}")]);
                r.register(&s, &NO_TTL).await.unwrap();
                if i % 2 == 0 {
                    r.deregister(&s).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let nodes = r.get_service("foo").await.unwrap()[0].nodes.len();
    assert_eq!(nodes, 8 * 25);
    let (mut creates, mut deletes) = (0, 0);
    while let Ok(Ok(ev)) = timeout(Duration::from_millis(100), w.next()).await {
        match ev.action {
            Action::Create => creates += 1,
            Action::Delete => deletes += 1,
            Action::Update => panic!("no update expected"),
        }
    }
    assert_eq!((creates, deletes), (400, 200));
}
