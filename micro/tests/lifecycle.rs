//! The registration lifecycle: the record, re-registration with a TTL, the register
//! check, registry outages at start, graceful stop that deregisters then drains, and
//! no task left behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{CallRequest, CallResponse, Empty, SlowRequest};
use micro::registry::testing::Faulty;
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{RegisterCheck, Server};

async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn start_registers_go_micros_record() {
    let registry = common::memory();
    let (server, _) = common::start(
        common::options(registry.clone()).metadata("zone", "a"),
        "s1",
    )
    .await;
    let svc = &registry.get_service("test").await.unwrap()[0];
    assert_eq!(svc.version, "latest");
    let node = &svc.nodes[0];
    assert_eq!(node.id, server.node_id());
    assert!(
        node.id.starts_with("test-") && node.id.len() == "test-".len() + 36,
        "{}",
        node.id
    );
    assert_eq!(node.address, server.address().unwrap());
    for (k, v) in [
        ("protocol", "mucp"),
        ("server", "mucp"),
        ("transport", "http"),
        ("broker", "http"),
        ("registry", "memory"),
        ("zone", "a"),
    ] {
        assert_eq!(node.metadata.get(k).map(String::as_str), Some(v), "{k}");
    }
    let names: Vec<&str> = svc.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Test.Call",
            "Test.Count",
            "Test.Echo",
            "Test.Fail",
            "Test.Meta",
            "Test.Panic",
            "Test.Slow",
            "Test.Sum",
            "Test.Unencodable"
        ]
    );
    let call = &svc.endpoints[0];
    let req = call.request.as_ref().unwrap();
    assert_eq!(
        (
            req.name.as_str(),
            req.values[0].name.as_str(),
            req.values[0].type_name.as_str()
        ),
        ("CallRequest", "name", "string")
    );
    assert_eq!(call.response.as_ref().unwrap().values[0].name, "msg");
    assert!(call.metadata.is_empty());
    assert_eq!(
        svc.endpoints[1].metadata.get("stream").map(String::as_str),
        Some("true")
    );
    server.stop().await.unwrap();
    assert!(
        registry
            .get_service("test")
            .await
            .unwrap_err()
            .is_not_found(),
        "stop deregisters"
    );
}

#[tokio::test]
async fn the_registration_is_renewed_every_interval_and_lapses_without() {
    let registry = common::memory();
    let opts = common::options(registry.clone())
        .register_ttl(Duration::from_millis(400))
        .register_interval(Duration::from_millis(100));
    let (server, _) = common::start(opts, "s1").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        registry.get_service("test").await.is_ok(),
        "renewed past three TTLs"
    );
    server.stop().await.unwrap();

    let opts = common::options(registry.clone())
        .register_ttl(Duration::from_millis(300))
        .register_interval(Duration::ZERO);
    let (server, _) = common::start(opts, "s2").await;
    assert!(registry.get_service("test").await.is_ok());
    assert!(
        eventually(Duration::from_secs(3), async || registry
            .get_service("test")
            .await
            .is_err())
        .await,
        "no renewal: the TTL runs out"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_register_check_deregisters_until_it_passes() {
    let registry = common::memory();
    let healthy = Arc::new(AtomicBool::new(true));
    let h = healthy.clone();
    let check: RegisterCheck = Arc::new(move || {
        let ok = h.load(Ordering::SeqCst);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err("database down".into())
            }
        })
    });
    let opts = common::options(registry.clone())
        .register_interval(Duration::from_millis(100))
        .register_check(check);
    let (server, _) = common::start(opts, "s1").await;
    assert!(registry.get_service("test").await.is_ok());
    healthy.store(false, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), async || registry
            .get_service("test")
            .await
            .is_err())
        .await
    );
    healthy.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), async || registry
            .get_service("test")
            .await
            .is_ok())
        .await
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_registry_outage_at_start_is_retried_until_it_ends() {
    let memory = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(Faulty::new(memory.clone()));
    faulty.set_register_fails(true);
    let opts = common::options(faulty.clone()).register_interval(Duration::from_millis(200));
    let (server, _) = common::start(opts, "s1").await;
    assert_eq!(
        faulty.registers(),
        3,
        "three attempts at start, as go-micro"
    );
    assert!(memory.get_service("test").await.is_err());
    faulty.set_register_fails(false);
    assert!(
        eventually(Duration::from_secs(5), async || memory
            .get_service("test")
            .await
            .is_ok())
        .await
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stop_deregisters_first_then_drains_in_flight_calls() {
    let registry = common::memory();
    let opts = common::options(registry.clone()).drain_linger(Duration::from_millis(200));
    let (server, handler) = common::start(opts, "s1").await;
    let client = Arc::new(common::client(registry.clone()));
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request("test", "Test.Slow")
                .call::<_, Empty>(&SlowRequest { millis: 600 })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = {
        let server = server.clone();
        tokio::spawn(async move { server.stop().await })
    };
    // Deregistered at once, while the slow call is still running.
    assert!(
        eventually(Duration::from_millis(150), async || registry
            .get_service("test")
            .await
            .is_err())
        .await
    );
    assert!(!stopping.is_finished());
    slow.await.unwrap().expect("the in-flight call completes");
    stopping.await.unwrap().unwrap();
    assert_eq!(handler.served.load(Ordering::SeqCst), 1);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_looping_through_the_stop_of_one_of_two_nodes_sees_no_failure() {
    let registry = common::memory();
    let (s1, _) = common::start(common::options(registry.clone()), "s1").await;
    let (s2, _) = common::start(common::options(registry.clone()), "s2").await;
    let client = Arc::new(common::client(registry.clone()));
    let caller = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..400 {
                let rsp: Result<CallResponse, _> = client
                    .request("test", "Test.Call")
                    .call(&CallRequest {
                        name: i.to_string(),
                    })
                    .await;
                rsp.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
                ok += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ok
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    s1.stop().await.unwrap();
    assert_eq!(caller.await.unwrap(), 400);
    client.close().await;
    s2.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_running_after_stop() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let opts = common::options(registry.clone()).register_ttl(Duration::from_secs(60));
    let (server, _) = common::start(opts, "s1").await;
    let client = common::client(registry.clone());
    let s = client
        .request("test", "Test.Echo")
        .stream::<common::Num, common::Num>()
        .await
        .unwrap();
    s.send(&common::Num { n: 1 }).await.unwrap();
    assert!(s.recv().await.unwrap().is_some());
    let _: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest::default())
        .await
        .unwrap();
    s.close().await;
    server.stop().await.unwrap();
    client.close().await;
    // The memory registry's expiry task lives as long as the registry; everyone
    // holding it is gone now.
    drop((server, client, registry));
    assert!(
        eventually(Duration::from_secs(2), async || metrics.num_alive_tasks()
            == base)
        .await,
        "{} tasks left",
        metrics.num_alive_tasks() - base
    );
}

#[tokio::test]
async fn a_second_start_is_refused_and_stop_is_idempotent() {
    let (server, _) = common::start(common::options(common::memory()), "s1").await;
    assert!(matches!(
        server.start().await,
        Err(micro::Error::AlreadyStarted)
    ));
    server.stop().await.unwrap();
    server.stop().await.unwrap();
}
