//! Selector behaviour: go-micro's selector, strategy and filter tests, plus
//! failure-aware picks, avoidance and the not-found / none-available split.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use micro_registry::testing::Faulty;
use micro_registry::{Endpoint, MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
use micro_selector::{
    Error, Filter, Outcome, Penalty, RegistrySelector, RoundRobin, SelectOptions, Selector, filter,
};

const NO_TTL: RegisterOptions = RegisterOptions { ttl: None };

fn node(id: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = Node::new(id, format!("127.0.0.1:{}", 2000 + id.len()));
    for (k, v) in labels {
        n.metadata.insert((*k).into(), (*v).into());
    }
    n
}

/// Two versions of "foo": 1.0 with nodes a,b (region eu) and endpoint Foo.Bar;
/// 2.0 with nodes c,d (c in us, d in eu) and endpoint Foo.Baz.
async fn two_versions() -> Arc<MemoryRegistry> {
    let r = Arc::new(MemoryRegistry::new());
    let v1 = ServiceRecord {
        name: "foo".into(),
        version: "1.0".into(),
        endpoints: vec![Endpoint {
            name: "Foo.Bar".into(),
            ..Default::default()
        }],
        nodes: vec![
            node("a", &[("region", "eu")]),
            node("b", &[("region", "eu")]),
        ],
        ..Default::default()
    };
    let v2 = ServiceRecord {
        name: "foo".into(),
        version: "2.0".into(),
        endpoints: vec![Endpoint {
            name: "Foo.Baz".into(),
            ..Default::default()
        }],
        nodes: vec![
            node("c", &[("region", "us")]),
            node("d", &[("region", "eu")]),
        ],
        ..Default::default()
    };
    r.register(&v1, &NO_TTL).await.unwrap();
    r.register(&v2, &NO_TTL).await.unwrap();
    r
}

async fn pick_counts(
    s: &dyn Selector,
    opts: &SelectOptions,
    picks: usize,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..picks {
        let mut next = s.select("foo", opts).await.unwrap();
        *counts.entry(next.next().unwrap().id.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_hundred_picks_succeed_over_nodes_of_all_versions() {
    // go-micro TestRegistrySelector and TestStrategies (Random).
    let s = RegistrySelector::new(two_versions().await);
    let counts = pick_counts(&s, &SelectOptions::new(), 1000).await;
    assert_eq!(
        counts.len(),
        4,
        "every node of both versions is picked: {counts:?}"
    );
    // Uniform: each of 4 nodes gets 250 ± a wide margin over 1000 picks.
    assert!(
        counts.values().all(|&c| (150..350).contains(&c)),
        "{counts:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn round_robin_walks_every_node_in_turn() {
    // go-micro TestStrategies (RoundRobin), with the counter kept across selections.
    let s = RegistrySelector::builder(two_versions().await)
        .strategy(RoundRobin::new())
        .build();
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.push(
            s.select("foo", &SelectOptions::new())
                .await
                .unwrap()
                .next()
                .unwrap()
                .id
                .clone(),
        );
    }
    assert_eq!(seen[..4], seen[4..], "a cycle of four repeats: {seen:?}");
    let mut first: Vec<_> = seen[..4].to_vec();
    first.sort();
    assert_eq!(first, ["a", "b", "c", "d"]);
    s.stop().await;
}

#[tokio::test]
async fn filters_keep_the_expected_nodes() {
    // go-micro TestFilterEndpoint, TestFilterLabel, TestFilterVersion.
    let s = RegistrySelector::new(two_versions().await);
    let cases: Vec<(SelectOptions, Vec<&str>)> = vec![
        (
            SelectOptions::new().filter(filter::endpoint("Foo.Bar")),
            vec!["a", "b"],
        ),
        (
            SelectOptions::new().filter(filter::endpoint("Foo.Baz")),
            vec!["c", "d"],
        ),
        (
            SelectOptions::new().filter(filter::label("region", "eu")),
            vec!["a", "b", "d"],
        ),
        (
            SelectOptions::new().filter(filter::version("2.0")),
            vec!["c", "d"],
        ),
        (
            SelectOptions::new()
                .filter(filter::version("2.0"))
                .filter(filter::label("region", "eu")),
            vec!["d"],
        ),
        (
            SelectOptions::new().filter(Filter::new(|_, n| n.id != "a")),
            vec!["b", "c", "d"],
        ),
    ];
    for (opts, want) in cases {
        let mut next = s.select("foo", &opts).await.unwrap();
        assert_eq!(next.len(), want.len());
        let mut got: Vec<String> = (0..want.len())
            .map(|_| next.next().unwrap().id.clone())
            .collect();
        got.sort();
        assert_eq!(got, want);
        assert!(
            matches!(next.next(), Err(Error::NoneAvailable)),
            "each node once"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn not_found_and_none_available_are_distinct() {
    let s = RegistrySelector::new(two_versions().await);
    assert!(matches!(
        s.select("nobody", &SelectOptions::new()).await,
        Err(Error::NotFound)
    ));
    let none = SelectOptions::new().filter(filter::version("9.9"));
    assert!(matches!(
        s.select("foo", &none).await,
        Err(Error::NoneAvailable)
    ));
    let all_avoided = ["a", "b", "c", "d"]
        .iter()
        .fold(SelectOptions::new(), |o, id| o.avoid(*id));
    assert!(matches!(
        s.select("foo", &all_avoided).await,
        Err(Error::NoneAvailable)
    ));
    s.stop().await;
}

#[tokio::test]
async fn avoided_nodes_are_never_picked() {
    let s = RegistrySelector::new(two_versions().await);
    let opts = SelectOptions::new().avoid("a").avoid("c");
    let counts = pick_counts(&s, &opts, 200).await;
    let mut keys: Vec<_> = counts.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["b", "d"]);
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_is_tried_last_until_its_penalty_ends() {
    let r = two_versions().await;
    let s = RegistrySelector::builder(r)
        .penalty(Penalty {
            base: Duration::from_secs(2),
            max: Duration::from_secs(8),
        })
        .build();
    let a = node("a", &[("region", "eu")]);
    s.mark(&a.id, Outcome::Failure);
    // While penalised, "a" is never first, but still yielded last.
    for _ in 0..200 {
        let mut next = s.select("foo", &SelectOptions::new()).await.unwrap();
        let order: Vec<String> = (0..4).map(|_| next.next().unwrap().id.clone()).collect();
        assert_eq!(order[3], "a", "{order:?}");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let counts = pick_counts(&s, &SelectOptions::new(), 400).await;
    assert!(
        counts.get("a").copied().unwrap_or(0) > 40,
        "penalty over: {counts:?}"
    );
    // Repeated failures double the penalty; a success clears it.
    s.mark(&a.id, Outcome::Failure);
    s.mark(&a.id, Outcome::Failure);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let counts = pick_counts(&s, &SelectOptions::new(), 100).await;
    assert_eq!(counts.get("a"), None, "second failure doubles the penalty");
    s.mark(&a.id, Outcome::Success);
    let counts = pick_counts(&s, &SelectOptions::new(), 400).await;
    assert!(
        counts.get("a").copied().unwrap_or(0) > 40,
        "success clears it: {counts:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn when_every_node_failed_they_are_still_offered() {
    let s = RegistrySelector::new(two_versions().await);
    for id in ["a", "b", "c", "d"] {
        s.mark(id, Outcome::Failure);
    }
    let mut next = s.select("foo", &SelectOptions::new()).await.unwrap();
    assert_eq!(next.len(), 4);
    assert!(next.next().is_ok());
    s.stop().await;
}

#[tokio::test]
async fn a_warm_pick_makes_no_registry_call() {
    let memory = two_versions().await;
    let faulty = Arc::new(Faulty::new(memory));
    let s = RegistrySelector::new(faulty.clone());
    s.select("foo", &SelectOptions::new()).await.unwrap();
    // The cache's watch starts and re-reads the service once, in the background.
    for _ in 0..200 {
        if faulty.lookups() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(faulty.lookups(), 2);
    for _ in 0..10_000 {
        let mut next = s.select("foo", &SelectOptions::new()).await.unwrap();
        next.next().unwrap();
    }
    assert_eq!(faulty.lookups(), 2, "warm picks made no registry call");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_picks_from_many_tasks() {
    let s = Arc::new(
        RegistrySelector::builder(two_versions().await)
            .strategy(RoundRobin::new())
            .build(),
    );
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..1000 {
                let mut next = s.select("foo", &SelectOptions::new()).await.unwrap();
                *counts.entry(next.next().unwrap().id.clone()).or_default() += 1;
            }
            counts
        }));
    }
    let mut total: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    // Round robin over 16 000 picks: exactly 4 000 each.
    assert!(total.values().all(|&c| c == 4000), "{total:?}");
    s.stop().await;
}

#[tokio::test]
async fn reset_makes_the_next_selection_read_the_registry() {
    let memory = two_versions().await;
    let faulty = Arc::new(Faulty::new(memory));
    let s = RegistrySelector::builder(faulty.clone())
        .cache_options(micro_registry::CacheOptions::default().watch(false))
        .build();
    s.select("foo", &SelectOptions::new()).await.unwrap();
    s.select("foo", &SelectOptions::new()).await.unwrap();
    assert_eq!(faulty.lookups(), 1);
    s.reset("foo");
    s.select("foo", &SelectOptions::new()).await.unwrap();
    assert_eq!(faulty.lookups(), 2);
    s.stop().await;
}
