//! The registry cache: go-micro v5's cache tests (single flight, stale on error,
//! throttling) plus watch-driven updates, empty-result protection and fast
//! not-found.

use std::sync::Arc;
use std::time::Duration;

use micro_registry::testing::{Fault, Faulty};
use micro_registry::{
    Cache, CacheOptions, Error, MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord,
};

fn svc(name: &str, nodes: &[&str]) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        version: "latest".into(),
        nodes: nodes
            .iter()
            .map(|id| Node::new(*id, format!("127.0.0.1:{}", 1000 + id.len())))
            .collect(),
        ..Default::default()
    }
}

const NO_TTL: RegisterOptions = RegisterOptions { ttl: None };

struct Fixture {
    memory: Arc<MemoryRegistry>,
    faulty: Arc<Faulty>,
    cache: Cache,
}

fn fixture(opts: CacheOptions) -> Fixture {
    let memory = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(Faulty::new(memory.clone()));
    let cache = Cache::with_options(faulty.clone(), opts);
    Fixture {
        memory,
        faulty,
        cache,
    }
}

fn ids(snapshot: &micro_registry::Snapshot) -> Vec<String> {
    let mut v: Vec<String> = snapshot.nodes().map(|(_, n)| n.id.clone()).collect();
    v.sort();
    v
}

/// Lets a background refresh the last lookup started run (time is paused in most
/// tests, so this costs nothing).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Polls `check` every 10 ms until it holds, for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_registry_call() {
    // go-micro TestSingleflightPreventsStampede, with 100 callers. (No watch: its
    // background re-read would be one more lookup.)
    let f = fixture(CacheOptions::default().watch(false));
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.faulty.set_delay(Duration::from_millis(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let cache = f.cache.clone();
        tasks.push(tokio::spawn(async move { cache.get("foo").await }));
    }
    for t in tasks {
        assert_eq!(ids(&t.await.unwrap().unwrap()), ["a"]);
    }
    assert_eq!(f.faulty.lookups(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_error() {
    // go-micro TestSingleflightWithError.
    let f = fixture(CacheOptions::default());
    f.faulty.set_fault(Fault::Fail);
    f.faulty.set_delay(Duration::from_millis(100));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let cache = f.cache.clone();
        tasks.push(tokio::spawn(async move { cache.get("foo").await }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
    }
    assert_eq!(f.faulty.lookups(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expired_entry_is_served_stale_while_the_registry_fails() {
    // go-micro TestStaleCacheOnError.
    let f = fixture(
        CacheOptions::default()
            .ttl(Duration::from_secs(1))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a", "b"]), &NO_TTL)
        .await
        .unwrap();
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
    f.faulty.set_fault(Fault::Fail);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
    settle().await;
    assert_eq!(f.faulty.lookups(), 2);
    // The failed refresh left the entry stale, not empty.
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn an_expired_entry_is_served_at_once_while_a_hung_registry_is_read() {
    // A registry that hangs (a network partition) must not hold callers up when
    // the cache has nodes: they are served at once and one read runs behind.
    let f = fixture(
        CacheOptions::default()
            .ttl(Duration::from_secs(1))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a", "b"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.faulty.set_delay(Duration::from_secs(30));
    f.memory
        .register(&svc("foo", &["c"]), &NO_TTL)
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
        settle().await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "callers waited for the registry: {:?}",
        start.elapsed()
    );
    assert_eq!(
        f.faulty.lookups(),
        2,
        "one background read, not one per caller"
    );
    // Once the registry answers, the entry has the new node set.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b", "c"]);
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_ends_a_background_refresh_and_later_lookups_read_the_registry() {
    let f = fixture(
        CacheOptions::default()
            .ttl(Duration::from_secs(1))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.faulty.set_delay(Duration::from_secs(60));
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    settle().await;
    let start = tokio::time::Instant::now();
    f.cache.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stop waited for the hung read: {:?}",
        start.elapsed()
    );
    // Stopped: an expired entry is read before it is served.
    f.faulty.set_delay(Duration::ZERO);
    f.memory
        .register(&svc("foo", &["b"]), &NO_TTL)
        .await
        .unwrap();
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_slow_registry_is_asked_at_most_once_per_retry_interval() {
    // go-micro TestCachePenetrationPrevention and
    // TestThrottlingMultipleConcurrentRequests.
    let f = fixture(
        CacheOptions::default()
            .ttl(Duration::from_secs(1))
            .min_retry_interval(Duration::from_secs(5))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.faulty.set_fault(Fault::Fail);
    f.faulty.set_delay(Duration::from_millis(200));
    for _ in 0..5 {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = f.cache.clone();
            tasks.push(tokio::spawn(async move { cache.get("foo").await }));
        }
        for t in tasks {
            assert_eq!(ids(&t.await.unwrap().unwrap()), ["a"], "stale data served");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One lookup to fill, one failed refresh; the other 249 callers in 2.5 s made none.
    assert_eq!(f.faulty.lookups(), 2);
    tokio::time::sleep(Duration::from_secs(5)).await;
    f.cache.get("foo").await.unwrap();
    settle().await;
    assert_eq!(f.faulty.lookups(), 3, "asked again after the interval");
}

#[tokio::test(start_paused = true)]
async fn a_failed_miss_is_not_retried_inside_the_interval() {
    // go-micro TestThrottlingWithoutStaleCache and TestThrottlingClearedOnSuccess.
    let f = fixture(
        CacheOptions::default()
            .min_retry_interval(Duration::from_secs(5))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.faulty.set_fault(Fault::Fail);
    assert!(f.cache.get("foo").await.is_err());
    assert!(f.cache.get("foo").await.is_err());
    assert_eq!(
        f.faulty.lookups(),
        1,
        "second miss inside the interval made a call"
    );
    f.faulty.set_fault(Fault::None);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    assert_eq!(f.faulty.lookups(), 2);
    // Success cleared the throttle: hits are served, and a later failure is served stale.
    assert!(f.cache.get("foo").await.is_ok());
    assert_eq!(f.faulty.lookups(), 2);
}

#[tokio::test(start_paused = true)]
async fn cached_hits_make_no_registry_call() {
    // go-micro TestThrottlingDoesNotAffectSuccessfulLookups.
    let f = fixture(CacheOptions::default());
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    // The watch starts and re-reads the service once, in the background.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.faulty.lookups(), 2);
    for _ in 0..1000 {
        f.cache.get("foo").await.unwrap();
    }
    assert_eq!(f.faulty.lookups(), 2);
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_service_fails_fast_and_the_answer_is_remembered_briefly() {
    let f = fixture(CacheOptions::default().not_found_ttl(Duration::from_secs(1)));
    let start = tokio::time::Instant::now();
    assert!(matches!(f.cache.get("nobody").await, Err(Error::NotFound)));
    assert!(matches!(f.cache.get("nobody").await, Err(Error::NotFound)));
    assert_eq!(start.elapsed(), Duration::ZERO, "not found must not wait");
    assert_eq!(f.faulty.lookups(), 1);
    // Once registered, the name resolves after the short not-found memory.
    f.memory
        .register(&svc("nobody", &["n"]), &NO_TTL)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ids(&f.cache.get("nobody").await.unwrap()), ["n"]);
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_empty_answer_keeps_the_last_good_nodes_for_the_grace() {
    let f = fixture(
        CacheOptions::default()
            .ttl(Duration::from_secs(1))
            .empty_grace(Duration::from_secs(10))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a", "b"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    for fault in [Fault::Empty, Fault::NotFound] {
        f.faulty.set_fault(fault);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            ids(&f.cache.get("foo").await.unwrap()),
            ["a", "b"],
            "{fault:?}"
        );
    }
    // A real answer ends the grace at once.
    f.faulty.set_fault(Fault::None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b"]);
    // An empty answer that lasts longer than the grace is believed.
    f.faulty.set_fault(Fault::Empty);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = f.cache.get("foo").await;
    }
    assert!(matches!(f.cache.get("foo").await, Err(Error::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_update_the_cache_without_waiting_for_the_ttl() {
    let f = fixture(CacheOptions::default().empty_grace(Duration::from_millis(300)));
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    // The watch is set up asynchronously and re-reads the service once it runs.
    assert!(eventually(Duration::from_secs(2), async || f.faulty.lookups() == 2).await);
    let lookups = f.faulty.lookups();
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(5), async || {
            n += 1;
            f.memory
                .register(&svc("foo", &[&format!("b{n}")]), &NO_TTL)
                .await
                .unwrap();
            f.cache.get("foo").await.unwrap().node_count() > 1
        })
        .await,
        "a new node never showed up"
    );
    assert_eq!(
        f.faulty.lookups(),
        lookups,
        "events, not lookups, brought the node"
    );
    // Deregistering a node removes it from the set.
    f.memory.deregister(&svc("foo", &["a"])).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || {
            !ids(&f.cache.get("foo").await.unwrap()).contains(&"a".to_owned())
        })
        .await
    );
    f.cache.stop().await;
    assert_eq!(f.cache.watched(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_node_leaves_the_cache_through_the_watch() {
    let f = fixture(CacheOptions::default().empty_grace(Duration::ZERO));
    f.memory
        .register(&svc("foo", &["keep"]), &NO_TTL)
        .await
        .unwrap();
    f.memory
        .register(
            &svc("foo", &["short"]),
            &RegisterOptions::ttl(Duration::from_millis(400)),
        )
        .await
        .unwrap();
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["keep", "short"]);
    assert!(
        eventually(Duration::from_secs(5), async || {
            ids(&f.cache.get("foo").await.unwrap()) == ["keep"]
        })
        .await
    );
    assert_eq!(
        f.faulty.lookups(),
        2,
        "the delete event did it: a lookup, a re-read at watch start"
    );
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deleting_the_last_node_keeps_it_for_the_grace_then_forgets_it() {
    let f = fixture(CacheOptions::default().empty_grace(Duration::from_secs(5)));
    let s = svc("foo", &["a"]);
    f.memory.register(&s, &NO_TTL).await.unwrap();
    f.cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the watch starts
    f.memory.deregister(&s).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ids(&f.cache.get("foo").await.unwrap()),
        ["a"],
        "kept during the grace"
    );
    // A new node ends the grace with the real set.
    f.memory
        .register(&svc("foo", &["b"]), &NO_TTL)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["b"]);
    f.memory.deregister(&svc("foo", &["b"])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(matches!(f.cache.get("foo").await, Err(Error::NotFound)));
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lagging_watch_makes_the_next_lookup_read_the_registry() {
    let memory = Arc::new(MemoryRegistry::with_watch_buffer(2));
    let faulty = Arc::new(Faulty::new(memory.clone()));
    let cache = Cache::new(faulty.clone());
    memory.register(&svc("foo", &["a"]), &NO_TTL).await.unwrap();
    cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the watch starts
    // Without yielding, the watch task cannot keep up: it lags.
    for i in 0..10 {
        memory
            .register(&svc("foo", &[&format!("n{i}")]), &NO_TTL)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cache.get("foo").await.unwrap().node_count(), 11);
    // The first lookup, the re-read at watch start, and the one the lag forced.
    assert_eq!(faulty.lookups(), 3, "the lag forced one re-read");
    cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_watch_is_retried_with_backoff_and_stale_data_is_served() {
    let f = fixture(CacheOptions::default());
    f.faulty.set_watch_fails(true);
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let attempts = f.faulty.watches();
    // Backoff doubles from 100 ms to 10 s: about 8 attempts in 10 s, never a busy loop.
    assert!(
        (3..=12).contains(&attempts),
        "{attempts} watch attempts in 10 s"
    );
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    f.faulty.set_watch_fails(false);
    // A node registered while the watch was down...
    f.memory
        .register(&svc("foo", &["c"]), &NO_TTL)
        .await
        .unwrap();
    let before = f.faulty.lookups();
    tokio::time::sleep(Duration::from_secs(11)).await;
    // ...is read once the watch is back (events were missed meanwhile).
    assert_eq!(
        f.faulty.lookups(),
        before + 1,
        "one re-read when the watch came back"
    );
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "c"]);
    // The restarted watch works: a new node arrives by event, without a lookup.
    f.memory
        .register(&svc("foo", &["b"]), &NO_TTL)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a", "b", "c"]);
    assert_eq!(f.faulty.lookups(), before + 1);
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_right_after_the_first_lookup_is_not_missed() {
    // The watch starts a moment after the first lookup; a change in between produced
    // no event it could see. The re-read at watch start catches it.
    let f = fixture(CacheOptions::default());
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    f.memory
        .register(&svc("foo", &["b"]), &NO_TTL)
        .await
        .unwrap();
    f.memory.deregister(&svc("foo", &["a"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["b"]);
    f.cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_watch_tasks() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let f = fixture(CacheOptions::default());
    for name in ["a", "b", "c"] {
        f.memory
            .register(&svc(name, &["n"]), &NO_TTL)
            .await
            .unwrap();
        f.cache.get(name).await.unwrap();
    }
    assert_eq!(f.cache.watched(), 3);
    // three watches and the idle sweep
    assert_eq!(metrics.num_alive_tasks(), base + 4);
    f.cache.stop().await;
    // A finished task leaves the runtime's count a moment after its handle
    // completes: wait for that, briefly.
    assert!(
        eventually(Duration::from_secs(2), async || metrics.num_alive_tasks()
            == base)
        .await,
        "{} tasks left",
        metrics.num_alive_tasks() - base
    );
    // Lookups still work, without watches.
    assert!(f.cache.get("a").await.is_ok());
    assert_eq!(f.cache.watched(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_name_idle_past_the_idle_timeout_is_forgotten_and_its_watch_stopped() {
    // (A TTL longer than the test: every registry read below is the eviction's.)
    let f = fixture(
        CacheOptions::default()
            .idle_timeout(Duration::from_secs(60))
            .ttl(Duration::from_secs(3600)),
    );
    for name in ["busy", "idle"] {
        f.memory
            .register(&svc(name, &["a"]), &NO_TTL)
            .await
            .unwrap();
        f.cache.get(name).await.unwrap();
    }
    // Names the registry does not know are remembered too (as not found).
    assert!(f.cache.get("nobody").await.unwrap_err().is_not_found());
    tokio::time::sleep(Duration::from_millis(200)).await; // the watches start
    assert_eq!((f.cache.len(), f.cache.watched()), (3, 2));
    assert_eq!(f.faulty.open_watches(), 2);
    // "busy" is looked up every 10 s for 3 minutes, "idle" and "nobody" never again.
    for _ in 0..18 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(ids(&f.cache.get("busy").await.unwrap()), ["a"]);
    }
    assert_eq!(f.cache.len(), 1, "only the name in use is kept");
    assert_eq!(f.cache.watched(), 1);
    assert_eq!(
        f.faulty.open_watches(),
        1,
        "the idle name's watch was stopped"
    );
    // The kept name is still served from memory and kept current by its watch.
    let lookups = f.faulty.lookups();
    f.memory
        .register(&svc("busy", &["b"]), &NO_TTL)
        .await
        .unwrap();
    settle().await;
    assert_eq!(ids(&f.cache.get("busy").await.unwrap()), ["a", "b"]);
    assert_eq!(
        f.faulty.lookups(),
        lookups,
        "no registry read for the kept name"
    );
    // A forgotten name is read again on its next lookup, and watched again.
    assert_eq!(ids(&f.cache.get("idle").await.unwrap()), ["a"]);
    assert_eq!(f.faulty.lookups(), lookups + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.faulty.open_watches(), 2);
    f.cache.stop().await;
    assert_eq!(f.faulty.open_watches(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_name_in_use_keeps_its_stale_nodes_through_a_registry_outage() {
    // Eviction goes by lookups, not by registry answers: an outage longer than
    // the idle timeout leaves a name in use served from its last good nodes.
    let f = fixture(
        CacheOptions::default()
            .idle_timeout(Duration::from_secs(60))
            .ttl(Duration::from_secs(5))
            .watch(false),
    );
    f.memory
        .register(&svc("foo", &["a"]), &NO_TTL)
        .await
        .unwrap();
    f.cache.get("foo").await.unwrap();
    f.faulty.set_fault(Fault::Fail);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    }
    // Empty answers (a wiped registry) do not evict it either, within the grace.
    f.faulty.set_fault(Fault::Empty);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ids(&f.cache.get("foo").await.unwrap()), ["a"]);
    assert_eq!(f.cache.len(), 1);
    f.cache.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_cache_stops_the_idle_sweep() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let f = fixture(CacheOptions::default().watch(false));
    assert!(f.cache.get("nobody").await.is_err());
    assert_eq!(metrics.num_alive_tasks(), 1, "the sweep runs");
    drop(f);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), 0, "no task outlives the cache");
}
