//! The client: go-micro's client tests in spirit, plus retries on other nodes, fast
//! failures, timeouts and concurrency over the HTTP transport.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CallRequest, CallResponse, Empty, FailRequest, SlowRequest};
use micro::RpcError;
use micro::client::{ClientOptions, ClientRequest, RpcClient};
use micro::registry::Registry;
use micro::server::Server;
use parking_lot::Mutex;

/// (service, endpoint, address) of each attempt.
type Attempts = Arc<Mutex<Vec<(String, String, String)>>>;

/// An attempt layer that records every attempt's target.
fn recorder() -> (
    tower::util::MapRequestLayer<impl Fn(ClientRequest) -> ClientRequest + Clone + Send + Sync>,
    Attempts,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: ClientRequest| {
        let target = req.target().map(|t| t.address.clone()).unwrap_or_default();
        log.lock()
            .push((req.service().to_owned(), req.endpoint().to_owned(), target));
        req
    });
    (layer, seen)
}

/// A node that is registered but whose process is gone: its port refuses.
async fn dead_node(registry: &Arc<dyn Registry>, service: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    common::register(registry, service, "dead", &addr).await;
    addr
}

#[tokio::test]
async fn with_address_bypasses_discovery_and_wrappers_see_the_target() {
    // go-micro TestCallAddress.
    let (server, _) = common::start(common::options(common::memory()), "s1").await;
    let addr = server.address().unwrap();
    let (w, seen) = recorder();
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(common::memory())
            .attempt_layer(w),
    );
    let rsp: CallResponse = client
        .request("test", "Test.Call")
        .address(addr.clone())
        .call(&CallRequest { name: "A".into() })
        .await
        .unwrap();
    assert_eq!(rsp.msg, "Hello A from s1");
    assert_eq!(
        *seen.lock(),
        [("test".to_owned(), "Test.Call".to_owned(), addr)]
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrapper_sees_the_node_chosen_from_the_registry() {
    // go-micro TestCallWrapper.
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let (w, seen) = recorder();
    let client = RpcClient::new(ClientOptions::new().registry(registry).attempt_layer(w));
    let _: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest::default())
        .await
        .unwrap();
    assert_eq!(seen.lock()[0].2, server.address().unwrap());
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_retries_onto_another_node_when_its_node_is_dead() {
    // go-micro TestCallRetry, and field notes: a retry goes to a different node.
    let registry = common::memory();
    let (server, handler) = common::start(common::options(registry.clone()), "live").await;
    let dead = dead_node(&registry, "test").await;
    let (w, seen) = recorder();
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .attempt_layer(w)
            .retries(1),
    );
    for i in 0..50 {
        let rsp: CallResponse = client
            .request("test", "Test.Call")
            .call(&CallRequest {
                name: i.to_string(),
            })
            .await
            .unwrap();
        assert!(rsp.msg.ends_with("from live"));
    }
    assert_eq!(handler.served.load(std::sync::atomic::Ordering::SeqCst), 50);
    let attempts = seen.lock().clone();
    let to_dead = attempts.iter().filter(|a| a.2 == dead).count();
    // The dead node is tried at most once per call, and after its first failure the
    // selector tries it last, so almost every call goes straight to the live node.
    assert!(
        (1..=3).contains(&to_dead),
        "{to_dead} attempts on the dead node"
    );
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn when_every_node_is_dead_the_call_fails_fast() {
    let registry = common::memory();
    dead_node(&registry, "gone").await;
    let client = RpcClient::new(ClientOptions::new().registry(registry).retries(5));
    let start = Instant::now();
    let err = client
        .request("gone", "Test.Call")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.id(), "go.micro.client.transport", "{err}");
    assert!(err.detail().contains("connection error"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    client.close().await;
}

#[tokio::test]
async fn a_refused_connection_says_why() {
    // The wire error has no source chain: the cause must be in its detail, as in
    // go-micro's "connection error: dial tcp ...: connect: connection refused".
    let registry = common::memory();
    let addr = dead_node(&registry, "refusing").await;
    let client = RpcClient::new(ClientOptions::new().registry(registry).retries(0));
    let err = client
        .request("refusing", "Test.Call")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.id(), "go.micro.client.transport", "{err}");
    assert!(
        err.detail()
            .starts_with(&format!("connection error: connect to {addr} failed: ")),
        "{err}"
    );
    assert!(err.detail().to_lowercase().contains("refused"), "{err}");
    let stream = client
        .request("refusing", "Test.Stream")
        .stream::<CallRequest, CallResponse>()
        .await;
    let Err(err) = stream else {
        panic!("a stream opened to a refusing node");
    };
    assert!(err.detail().to_lowercase().contains("refused"), "{err}");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_registry_does_not_hold_a_call_past_its_timeout() {
    // The first lookup of a service waits for the registry; a registry that hangs
    // (a network partition) must not keep the call beyond its own timeout.
    let memory = Arc::new(micro::registry::MemoryRegistry::new());
    let faulty = Arc::new(micro::registry::testing::Faulty::new(memory.clone()));
    dead_node(&(memory as Arc<dyn Registry>), "hung").await;
    faulty.set_delay(Duration::from_secs(60));
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(faulty)
            .request_timeout(Duration::from_millis(300)),
    );
    let start = tokio::time::Instant::now();
    let err = client
        .request("hung", "Test.Call")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), 408, "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    client.close().await;
}

#[tokio::test]
async fn an_unknown_service_fails_fast_with_not_found() {
    let client = common::client(common::memory());
    let start = Instant::now();
    let err = client
        .request("nobody", "X.Y")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!((err.id(), err.code()), ("go.micro.client", 500));
    assert_eq!(err.detail(), "service nobody: not found");
    assert!(start.elapsed() < Duration::from_millis(500));
    client.close().await;
}

#[tokio::test]
async fn the_call_timeout_ends_a_slow_call_with_408() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = RpcClient::new(ClientOptions::new().registry(registry).retries(0));
    let start = Instant::now();
    let err = client
        .request("test", "Test.Slow")
        .timeout(Duration::from_millis(100))
        .call::<_, Empty>(&SlowRequest { millis: 3000 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), 408, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn handler_errors_are_returned_as_they_are_and_not_retried() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let (w, seen) = recorder();
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .attempt_layer(w)
            .retries(3),
    );
    let err = client
        .request("test", "Test.Fail")
        .call::<_, Empty>(&FailRequest {
            code: 500,
            detail: "broken".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::new("test", "broken", 500));
    assert_eq!(seen.lock().len(), 1, "an application error is not retried");
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metadata_is_sent_as_headers() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = common::client(registry);
    let meta: common::MetaResponse = client
        .request("test", "Test.Meta")
        .metadata("X-User", "alice")
        .metadata("trace-id", "abc")
        .call(&Empty {})
        .await
        .unwrap();
    assert_eq!(
        meta.metadata.get("X-User").map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        meta.metadata.get("Trace-Id").map(String::as_str),
        Some("abc")
    );
    assert!(
        meta.metadata.contains_key("Timeout"),
        "the deadline travels in Timeout"
    );
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_callers_over_http() {
    let registry = common::memory();
    let (s1, h1) = common::start(common::options(registry.clone()), "s1").await;
    let (s2, h2) = common::start(common::options(registry.clone()), "s2").await;
    let client = Arc::new(common::client(registry));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let name = format!("{t}-{i}");
                let rsp: CallResponse = client
                    .request("test", "Test.Call")
                    .call(&CallRequest { name: name.clone() })
                    .await
                    .unwrap();
                assert!(rsp.msg.starts_with(&format!("Hello {name} from s")));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (a, b) = (
        h1.served.load(std::sync::atomic::Ordering::SeqCst),
        h2.served.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert_eq!(a + b, 3200);
    assert!(
        a > 800 && b > 800,
        "random selection spreads calls: {a} / {b}"
    );
    assert!(
        client.pool().idle_total() <= 32,
        "idle connections are bounded"
    );
    client.close().await;
    s1.stop().await.unwrap();
    s2.stop().await.unwrap();
}

/// A node that accepts connections and reads requests but never answers (as a
/// server that lost the request would look). Returns its address; the listener
/// lives as long as the returned task.
async fn black_hole(
    registry: &Arc<dyn Registry>,
    service: &str,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                use tokio::io::AsyncReadExt;
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    common::register(registry, service, "hole", &addr).await;
    (addr, task)
}

#[tokio::test]
async fn an_attempt_timeout_retries_a_lost_request_on_another_node() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "live").await;
    let (hole, task) = black_hole(&registry, "test").await;
    let (w, seen) = recorder();
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .attempt_layer(w)
            .retries(1)
            .attempt_timeout(Duration::from_millis(300)),
    );
    for i in 0..20 {
        let rsp: CallResponse = client
            .request("test", "Test.Call")
            .call(&CallRequest {
                name: i.to_string(),
            })
            .await
            .unwrap();
        assert!(rsp.msg.ends_with("from live"));
    }
    // Calls that went to the silent node first timed out there and went on to the
    // live node; none waited for the whole call timeout.
    let attempts = seen.lock().clone();
    let to_hole = attempts.iter().filter(|a| a.2 == hole).count();
    assert!(
        to_hole > 0,
        "random selection sends some calls to the silent node first"
    );
    assert_eq!(
        attempts.len(),
        20 + to_hole,
        "one extra attempt per lost request"
    );
    client.close().await;
    server.stop().await.unwrap();
    task.abort();
}

#[tokio::test]
async fn with_only_a_silent_node_the_attempt_timeout_bounds_each_try() {
    let registry = common::memory();
    let (_hole, task) = black_hole(&registry, "quiet").await;
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .retries(1)
            .attempt_timeout(Duration::from_millis(200)),
    );
    let start = Instant::now();
    let err = client
        .request("quiet", "Test.Call")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), 408, "{err}");
    // Two attempts of 200 ms and go-micro's 100 ms backoff, not the 5 s call timeout.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    client.close().await;
    task.abort();
}
