//! A migration under load, through etcd: three go-micro nodes of a service are
//! replaced one by one by micro nodes, then the micro nodes one by one by go-micro
//! nodes again, while a go-micro client (its own defaults, 8 callers) and a micro
//! client (default options, 8 callers) call it without pause. Each of v4.11 and
//! v5.30 plays the Go side.
//!
//! Asserted: the micro client with default options fails no call in the whole run
//! (go-micro servers that stop, or that lose a request on a kept-alive connection,
//! cost it retries, not calls), and stopping micro nodes fails no call of either
//! client: no call fails on a micro node while it closes its connections or just
//! after. (About one go-micro client call in 40,000 fails with a broken pipe on a
//! kept-alive connection to a micro node that is not stopping; those are printed
//! with go-micro's other losses. Their cause is not known yet.) Printed: every client's failures per phase (the go-micro client's losses
//! when go-micro nodes stop are go-micro's own and only reported), and the
//! slowest successful call, which is what the default attempt timeout must stay
//! above.

// Figures are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use micro::Service;
use micro::registry::Registry;
use micro_tests::harness::etcd::{Etcd, init_tracing};
use micro_tests::harness::gomicro::{GoProc, GoVersion, InteropHelloworld, Recorder, our_server};
use micro_tests::harness::rpc::{CallLog, CallLoop, TestClient};
use serde_json::Value;

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(30);
/// Nodes of the service at any time.
const NODES: usize = 3;
/// Callers of each client.
const CALLERS: usize = 8;
/// Seconds of go-micro client load per phase (each phase takes about 12 s).
const PHASE_SECS: &str = "15";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_micro_nodes_replaced_by_micro_nodes_and_back_under_load() {
    init_tracing();
    let mut report = Vec::new();
    for go in GoVersion::ALL {
        report.push(migrate(go).await);
    }
    for line in &report {
        println!("{line}");
    }
}

/// The Go node's name and registry arguments.
fn go_args(etcd: &Etcd, service: &str) -> Vec<String> {
    vec![
        "--registry".into(),
        "etcd".into(),
        "--registry_address".into(),
        etcd.endpoint().trim_start_matches("http://").to_owned(),
        "--name".into(),
        service.into(),
    ]
}

async fn go_node(go: GoVersion, etcd: &Etcd, service: &str) -> GoProc {
    let mut p = GoProc::spawn(go, "server", go_args(etcd, service));
    p.ready(LIMIT).await;
    p
}

async fn micro_node(registry: Arc<dyn Registry>, service: &str) -> Service {
    // The default drain linger, not the short one of the other suites.
    let s = our_server(service, registry)
        .drain_linger(micro::server::DEFAULT_DRAIN_LINGER)
        .handle(InteropHelloworld::new(Recorder::new()))
        .build()
        .expect("build");
    s.start().await.expect("start micro node");
    s
}

/// The go-micro client's load for one phase: `bench call` for PHASE_SECS.
fn go_load(go: GoVersion, etcd: &Etcd, service: &str) -> GoProc {
    let mut args = go_args(etcd, service);
    args.truncate(4); // registry flags only
    args.extend(
        [
            "--service",
            service,
            "--callers",
            &CALLERS.to_string(),
            "--seconds",
            PHASE_SECS,
            "--warmup",
            "0s",
        ]
        .map(str::to_owned),
    );
    let mut cmd = vec!["call".to_owned()];
    cmd.extend(args);
    GoProc::spawn(go, "bench", cmd)
}

/// What a finished `bench call` printed: calls, errors, and each error it
/// described (`bench: at HH:MM:SS.mmm: <error>` on stderr, the first ten of each
/// caller) as (milliseconds of the day when the call started, the error).
async fn go_result(load: GoProc) -> (u64, u64, Vec<(u64, String)>) {
    let out = load.wait(LIMIT + LIMIT).await;
    let v: Vec<Value> = out.json();
    let line = v
        .last()
        .unwrap_or_else(|| panic!("bench printed nothing: {}", out.context()));
    let n = |k: &str| {
        line[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    let errors = out
        .context()
        .lines()
        .filter_map(|l| l.strip_prefix("bench: at "))
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(t, e)| Some((day_ms(t)?, e.to_owned())))
        .collect();
    (n("calls"), n("errors"), errors)
}

/// `HH:MM:SS.mmm` as milliseconds of the day.
fn day_ms(t: &str) -> Option<u64> {
    let (hms, ms) = t.split_once('.')?;
    let mut p = hms.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, s) = (p.next()??, p.next()??, p.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
}

fn now_day_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    ms % (24 * 3600 * 1000)
}

/// Wall-clock time as `HH:MM:SS.mmm` (UTC), as the Go load prints its errors.
fn stamp() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

async fn migrate(go: GoVersion) -> String {
    let etcd = Etcd::start().await.expect("etcd");
    let registry = || -> Arc<dyn Registry> {
        Arc::new(
            micro_etcd::EtcdRegistry::builder()
                .endpoints(etcd.endpoints())
                .build()
                .expect("etcd registry"),
        )
    };
    let service = format!("migrate-{}", go.key());
    let mut go_nodes = Vec::new();
    for _ in 0..NODES {
        go_nodes.push(go_node(go, &etcd, &service).await);
    }

    let client = TestClient::new(registry(), |o| o);
    let calls = CallLoop::start(&client, &service, CALLERS, Duration::ZERO);
    assert!(
        calls.wait_more_ok(100, LIMIT).await,
        "{}: calls flow before the migration: {:?}",
        go.label(),
        calls.log()
    );

    // Phase A: each go-micro node replaced by a micro node.
    let load = go_load(go, &etcd, &service);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut micro_nodes = Vec::new();
    for old in go_nodes.drain(..) {
        micro_nodes.push(micro_node(registry(), &service).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (by_itself, out) = old.terminate(LIMIT).await;
        assert!(
            by_itself,
            "go-micro node ignored SIGTERM: {}",
            out.context()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rust_a = calls.log();
    let (go_calls_a, go_errors_a, _) = go_result(load).await;

    // Phase B: each micro node replaced by a go-micro node again.
    let load = go_load(go, &etcd, &service);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // (address, stop began, stop ended), in milliseconds of the day
    let mut stops: Vec<(String, u64, u64)> = Vec::new();
    for old in micro_nodes.drain(..) {
        go_nodes.push(go_node(go, &etcd, &service).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let addr = old.server().address().unwrap_or_default();
        println!("{} stopping the micro node at {addr}", stamp());
        let began = now_day_ms();
        tokio::time::timeout(LIMIT, old.stop())
            .await
            .expect("micro node stops in time")
            .expect("micro node stops");
        println!("{} the micro node at {addr} stopped", stamp());
        stops.push((addr, began, now_day_ms()));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (go_calls_b, go_errors_b, described) = go_result(load).await;
    // A go-micro client call is failed by a stopping micro node when it names
    // that node and started once the node began to close its connections (the
    // drain linger over; until then a stopping node serves exactly as a live one,
    // only deregistered) or within a second after the stop ended (a caller whose
    // cache still held the node). Failures naming a micro node outside those
    // windows happened on a live node: they are reported, with the others.
    let linger = micro::server::DEFAULT_DRAIN_LINGER.as_millis() as u64;
    let by_stop: Vec<&(u64, String)> = described
        .iter()
        .filter(|(at, e)| {
            stops.iter().any(|(addr, began, ended)| {
                e.contains(addr.as_str()) && *at >= began + linger && *at <= ended + 1000
            })
        })
        .collect();
    let elsewhere = described.len() - by_stop.len();
    let rust = calls.stop().await;
    client.close().await;
    for n in go_nodes {
        let _ = n.terminate(LIMIT).await;
    }

    let rust_b = CallLog {
        ok: rust.ok - rust_a.ok,
        failed: rust.failed[rust_a.failed.len()..].to_vec(),
        ..CallLog::default()
    };
    let line = format!(
        "{}: micro client (defaults) {} calls, {} failed (go-micro nodes stopping: {} of {}; \
         micro nodes stopping: {} of {}), slowest {:?}, {} over 250 ms; \
         go-micro client: go-micro nodes stopping {go_errors_a} failed of {}, \
         micro nodes stopping {} failed of {} ({go_errors_b} failures in that phase, \
         {elsewhere} of them described and not during a stop: {:?})",
        go.label(),
        rust.total(),
        rust.failed.len(),
        rust_a.failed.len(),
        rust_a.total(),
        rust_b.failed.len(),
        rust_b.total(),
        rust.slowest,
        rust.slow.len(),
        go_calls_a + go_errors_a,
        by_stop.len(),
        go_calls_b + go_errors_b,
        described
            .iter()
            .filter(|d| !by_stop.contains(d))
            .collect::<Vec<_>>(),
    );
    println!("{line}");
    assert!(
        rust.failed.is_empty(),
        "{}: the micro client with default options failed calls: {:?}",
        go.label(),
        &rust.failed[..rust.failed.len().min(5)]
    );
    assert!(
        by_stop.is_empty(),
        "{}: stopping micro nodes failed go-micro client calls: {by_stop:?}",
        go.label()
    );
    assert!(go_calls_a > 0 && go_calls_b > 0, "{line}");
    line
}
