//! Deregistration across languages (go-micro v4.11 and v5.30, etcd and Consul):
//! when our server stops gracefully a Go client sees its node go, through
//! go-micro's cached selector and through its registry; when a Go server gets
//! SIGTERM our selector (cache and watch) and our registry stop returning it.
//!
//! Times are printed, not asserted: the bounds only catch a node that never goes.

use std::sync::Arc;
use std::time::Duration;

use examples::{CallRequest, CallResponse};
use micro::registry::CacheOptions;
use micro::registry::Registry;
use micro::selector::{RegistrySelector, SelectOptions, Selector};
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, GoProc, InteropHelloworld, Recorder, Registries, for_each_combo, our_server, poll,
    retry_lost,
};
use serde_json::Value;

/// Bound of a single step.
const LIMIT: Duration = Duration::from_secs(20);
/// How long a node may take to disappear from a view (a watch normally takes
/// milliseconds; the TTLs are far longer than this, so an expiry cannot pass for
/// a deregistration).
const GONE_LIMIT: Duration = Duration::from_secs(30);
/// Our selector's empty grace in this test.
const EMPTY_GRACE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_is_seen_across_languages() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("deregistration", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    our_stop_seen_by_go(&registries, combo).await;
    go_sigterm_seen_by_us(&registries, combo).await;
}

async fn our_stop_seen_by_go(registries: &Registries, combo: Combo) {
    let name = format!("rust-dereg-{}", combo.slug());
    let service = our_server(&name, registries.registry(combo.registry))
        .handle(InteropHelloworld::new(Recorder::new()))
        // Registered far longer than the test waits: only a deregistration
        // can make the node go in time.
        .register_ttl(Duration::from_secs(120))
        .register_interval(Duration::from_secs(40))
        .build()
        .expect("build");
    service.start().await.expect("start");
    let node = service.server().node_id();

    let mut watchers = Vec::new();
    for via in ["selector", "registry"] {
        let mut args = vec!["wait-gone".to_owned()];
        args.extend(registries.go_args(combo.registry));
        args.extend(
            [
                "--service",
                &name,
                "--node",
                &node,
                "--via",
                via,
                "--seen_first",
                "--seconds",
                &GONE_LIMIT.as_secs().to_string(),
            ]
            .map(String::from),
        );
        let mut p = GoProc::spawn(combo.go, "client", &args);
        p.ready(LIMIT).await;
        watchers.push((via, p));
    }

    let stopped = tokio::time::Instant::now();
    tokio::time::timeout(LIMIT, service.stop())
        .await
        .expect("stop in time")
        .expect("stop");
    eprintln!(
        "[{}] our server stopped in {:.2} s (deregister first, then 200 ms linger)",
        combo.label(),
        stopped.elapsed().as_secs_f64()
    );
    for (via, p) in watchers {
        let out = p.wait(GONE_LIMIT + LIMIT).await;
        assert_eq!(out.code(), Some(0), "via {via}: {}", out.context());
        let lines = out.json();
        assert_eq!(lines.len(), 1, "{}", out.context());
        assert_eq!(lines[0]["gone"], Value::Bool(true), "{}", out.context());
        eprintln!(
            "[{}] Go client ({via}) saw our node go after {} ms",
            combo.label(),
            lines[0]["waited_ms"]
        );
    }
}

async fn go_sigterm_seen_by_us(registries: &Registries, combo: Combo) {
    let name = format!("go-dereg-{}", combo.slug());
    let mut args = registries.go_args(combo.registry);
    args.extend(
        [
            "--name",
            &name,
            "--register_ttl",
            "120",
            "--register_interval",
            "40",
        ]
        .map(String::from),
    );
    let mut first = GoProc::spawn(combo.go, "server", &args);
    let mut second = GoProc::spawn(combo.go, "server", &args);
    let (a, b) = (
        first.ready(LIMIT).await.node_id,
        second.ready(LIMIT).await.node_id,
    );

    let registry: Arc<dyn Registry> = registries.registry(combo.registry);
    // Our cache keeps serving the last node of a service for `empty_grace` after
    // the registry reports none (default: the 60 s TTL), against transient
    // empties; shortened here so that the last node's departure is seen too.
    let selector = Arc::new(
        RegistrySelector::builder(registry.clone())
            .cache_options(CacheOptions::default().empty_grace(EMPTY_GRACE))
            .build(),
    );
    let caller = our_server("rust-dereg-caller", registry.clone())
        .selector(selector.clone())
        .build()
        .expect("build caller");
    let hello = CallRequest { name: "x".into() };
    let call = || {
        retry_lost(&name, || {
            caller
                .client()
                .request(&name, "Helloworld.Call")
                .call::<_, CallResponse>(&hello)
        })
    };
    // The selector holds both nodes (and watches the service) before any goes.
    let held = poll(LIMIT, || async {
        let n = nodes(&*selector, &name).await;
        (n.contains(&a) && n.contains(&b)).then_some(())
    })
    .await;
    assert!(held.is_some(), "our selector never returned {a} and {b}");
    assert_eq!(call().await.expect("call").msg, "Hello x");

    // One of two nodes goes: the watch removes it at once, calls go on.
    let (by_itself, out) = first.terminate(LIMIT).await;
    assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
    assert_eq!(out.code(), Some(0), "{}", out.context());
    let gone = poll(GONE_LIMIT, || async {
        (nodes(&*selector, &name).await == [b.clone()]).then_some(())
    })
    .await;
    let (_, took) = gone.unwrap_or_else(|| panic!("our selector still returns {a}"));
    eprintln!(
        "[{}] our selector dropped the first Go node {:.0} ms after its exit",
        combo.label(),
        took.as_secs_f64() * 1000.0
    );
    for _ in 0..5 {
        assert_eq!(
            call().await.expect("call the remaining node").msg,
            "Hello x"
        );
    }

    // The last node goes: the registry says so at once, the selector after the
    // grace, and then calls fail fast with "not found".
    let (by_itself, out) = second.terminate(LIMIT).await;
    assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
    assert_eq!(out.code(), Some(0), "{}", out.context());
    let gone = poll(GONE_LIMIT, || async {
        match registry.get_service(&name).await {
            Err(e) if e.is_not_found() => Some(()),
            Ok(s) if s.iter().all(|s| s.nodes.is_empty()) => Some(()),
            _ => None,
        }
    })
    .await;
    let (_, took) = gone.unwrap_or_else(|| panic!("the registry still lists {b}"));
    eprintln!(
        "[{}] our registry lost the last Go node {:.0} ms after its exit",
        combo.label(),
        took.as_secs_f64() * 1000.0
    );
    let gone = poll(GONE_LIMIT, || async {
        nodes(&*selector, &name).await.is_empty().then_some(())
    })
    .await;
    let (_, took) = gone.unwrap_or_else(|| panic!("our selector still returns {b}"));
    eprintln!(
        "[{}] our selector dropped the last Go node {:.0} ms after its exit (grace {EMPTY_GRACE:?})",
        combo.label(),
        took.as_secs_f64() * 1000.0
    );
    let err = call().await.expect_err("no node left");
    assert_eq!(err.code(), 500, "{err}");
    assert!(err.detail().contains("not found"), "{err}");

    caller.stop().await.expect("stop caller");
    selector.stop().await;
}

/// The node ids `selector` offers for `service` now (none when it is unknown).
async fn nodes(selector: &dyn Selector, service: &str) -> Vec<String> {
    match selector.select(service, &SelectOptions::new()).await {
        Ok(next) => next.snapshot().nodes().map(|(_, n)| n.id.clone()).collect(),
        Err(_) => Vec::new(),
    }
}
