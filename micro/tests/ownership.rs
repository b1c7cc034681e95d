//! Every task owned, on stop, on drop and on every error path: a dropped server
//! stops serving and re-registering; a service whose start fails half-way undoes
//! what it started; stop always deregisters and reports the deregistration's
//! error; the server accepts before it registers and refuses handlers once
//! started; a dead listener or a panicking registrar surfaces as an error.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{CallRequest, CallResponse, Test};
use micro::registry::testing::Faulty;
use micro::registry::{
    MemoryRegistry, RegisterOptions, Registry, ServiceRecord as Record, WatchOptions, Watcher,
};
use micro::server::{HandlerSet, RpcServer, Server};
use micro::transport::{DialOptions, Listener, MemoryTransport, Socket, Transport};
use micro::{Error, Service};

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
async fn a_dropped_server_stops_serving_and_re_registering() {
    let faulty = Arc::new(Faulty::new(Arc::new(MemoryRegistry::new())));
    let opts = common::options(faulty.clone())
        .register_interval(Duration::from_millis(50))
        .register_ttl(Duration::from_secs(60));
    let (server, _) = common::start(opts, "s1").await;
    let addr = server.address().unwrap();
    assert!(eventually(Duration::from_secs(2), async || faulty.registers() >= 3).await);
    drop(server);
    // The accept loop ended: the port refuses.
    assert!(
        eventually(Duration::from_secs(2), async || {
            tokio::net::TcpStream::connect(&addr).await.is_err()
        })
        .await,
        "a dropped server still accepts"
    );
    // The registrar ended: no more registrations.
    let settled = faulty.registers();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        faulty.registers(),
        settled,
        "a dropped server still re-registers"
    );
}

#[tokio::test]
async fn a_failing_after_start_hook_leaves_nothing_registered() {
    let registry = common::memory();
    let service = Service::builder("hooked")
        .registry(registry.clone())
        .address("127.0.0.1:0")
        .broker_address("127.0.0.1:0")
        .drain_linger(Duration::ZERO)
        .after_start(|| async { Err("the after_start hook fails".into()) })
        .handle(Test::named("h"))
        .build()
        .unwrap();
    let err = service.run().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Hook {
                hook: "after_start",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        registry.get_service("hooked").await.is_err(),
        "the server was deregistered"
    );
    assert!(service.server().address().is_none(), "the server stopped");
}

#[tokio::test]
async fn a_server_that_cannot_start_leaves_the_broker_disconnected() {
    // The port is taken: the server cannot listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let registry = common::memory();
    let service = Service::builder("blocked")
        .registry(registry.clone())
        .address(addr)
        .broker_address("127.0.0.1:0")
        .handle(Test::named("h"))
        .build()
        .unwrap();
    assert!(service.start().await.is_err());
    // The broker was connected first (its address was set); the failed start
    // disconnected it again, so it listens no more.
    assert_eq!(
        service.broker().address(),
        "",
        "the broker was left connected"
    );
    assert!(registry.get_service("blocked").await.is_err());
}

#[tokio::test]
async fn handlers_cannot_be_added_once_started() {
    let (server, _) = common::start(common::options(common::memory()), "s1").await;
    let err = server
        .handle(HandlerSet::new(Test::named("late")))
        .unwrap_err();
    assert!(
        err.to_string().contains("before the server starts"),
        "{err}"
    );
    let sub = micro::server::Subscriber::new("t", |_, _: common::Empty| async { Ok(()) });
    assert!(server.subscribe(sub).is_err());
    server.stop().await.unwrap();
}

/// A registry whose `register` calls the node it registers before answering: it
/// succeeds only when the server accepts before it registers.
struct CallsOnRegister {
    inner: MemoryRegistry,
    answered: AtomicUsize,
}

#[async_trait]
impl Registry for CallsOnRegister {
    async fn register(&self, s: &Record, o: &RegisterOptions) -> micro::registry::Result<()> {
        let addr = s.nodes[0].address.clone();
        let client = micro::client::RpcClient::new(micro::client::ClientOptions::new().retries(0));
        let rsp = client
            .request("test", "Test.Call")
            .address(addr)
            .timeout(Duration::from_secs(2))
            .call::<_, CallResponse>(&CallRequest::default())
            .await;
        if rsp.is_ok() {
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
        client.close().await;
        self.inner.register(s, o).await
    }
    async fn deregister(&self, s: &Record) -> micro::registry::Result<()> {
        self.inner.deregister(s).await
    }
    async fn get_service(&self, name: &str) -> micro::registry::Result<Vec<Record>> {
        self.inner.get_service(name).await
    }
    async fn list_services(&self) -> micro::registry::Result<Vec<Record>> {
        self.inner.list_services().await
    }
    async fn watch(&self, o: &WatchOptions) -> micro::registry::Result<Box<dyn Watcher>> {
        self.inner.watch(o).await
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

#[tokio::test]
async fn the_server_accepts_before_it_registers() {
    let registry = Arc::new(CallsOnRegister {
        inner: MemoryRegistry::new(),
        answered: AtomicUsize::new(0),
    });
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    assert_eq!(
        registry.answered.load(Ordering::SeqCst),
        1,
        "a caller that found the node while it registered was served"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stop_deregisters_a_registration_that_timed_out_but_was_applied() {
    let memory: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(Faulty::new(memory.clone()));
    faulty.set_register_applied_then_fails(true);
    let (server, _) = common::start(
        common::options(faulty.clone()).register_ttl(Duration::ZERO),
        "s1",
    )
    .await;
    assert!(
        !server.is_registered().await,
        "the server believes it failed"
    );
    assert_eq!(memory.get_service("test").await.unwrap()[0].nodes.len(), 1);
    server.stop().await.unwrap();
    assert!(
        memory.get_service("test").await.is_err(),
        "stop removed the record all the same (with no TTL it would stay forever)"
    );
}

#[tokio::test]
async fn stop_returns_the_deregistration_error() {
    let memory: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(Faulty::new(memory.clone()));
    let (server, _) = common::start(common::options(faulty.clone()), "s1").await;
    faulty.set_deregister_fails(true);
    let err = server.stop().await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(server.address().is_none(), "the rest of stop ran");
}

/// A transport whose listeners fail on their first accept, as a listener whose
/// socket died.
struct DeadListeners(MemoryTransport);

struct DeadListener(String);

#[async_trait]
impl Listener for DeadListener {
    fn addr(&self) -> String {
        self.0.clone()
    }
    async fn accept(&self) -> micro::transport::Result<Box<dyn Socket>> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(micro::transport::Error::Io(std::io::Error::other(
            "the socket died",
        )))
    }
}

#[async_trait]
impl Transport for DeadListeners {
    async fn dial(&self, addr: &str, o: &DialOptions) -> micro::transport::Result<Box<dyn Socket>> {
        self.0.dial(addr, o).await
    }
    async fn listen(&self, addr: &str) -> micro::transport::Result<Box<dyn Listener>> {
        Ok(Box::new(DeadListener(addr.to_owned())))
    }
    fn name(&self) -> &'static str {
        "dead"
    }
}

#[tokio::test]
async fn a_dead_listener_stops_the_service_with_an_error() {
    let registry = common::memory();
    let service = Service::builder("doomed")
        .registry(registry.clone())
        .transport(Arc::new(DeadListeners(MemoryTransport::new())))
        .address("doomed:1")
        .broker_address("127.0.0.1:0")
        .drain_linger(Duration::ZERO)
        .handle(Test::named("h"))
        .build()
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), service.run())
        .await
        .expect("run returns when the listener dies")
        .unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    assert!(err.to_string().contains("the socket died"), "{err}");
    assert!(
        registry.get_service("doomed").await.is_err(),
        "deregistered"
    );
}

/// A registry that panics on its second `register` call (a plugin bug).
struct PanicsOnReregister {
    inner: MemoryRegistry,
    calls: AtomicUsize,
}

#[async_trait]
impl Registry for PanicsOnReregister {
    async fn register(&self, s: &Record, o: &RegisterOptions) -> micro::registry::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("the registry plugin blew up");
        }
        self.inner.register(s, o).await
    }
    async fn deregister(&self, s: &Record) -> micro::registry::Result<()> {
        self.inner.deregister(s).await
    }
    async fn get_service(&self, name: &str) -> micro::registry::Result<Vec<Record>> {
        self.inner.get_service(name).await
    }
    async fn list_services(&self) -> micro::registry::Result<Vec<Record>> {
        self.inner.list_services().await
    }
    async fn watch(&self, o: &WatchOptions) -> micro::registry::Result<Box<dyn Watcher>> {
        self.inner.watch(o).await
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

#[tokio::test]
async fn a_panicking_registrar_surfaces_as_a_failure() {
    let registry = Arc::new(PanicsOnReregister {
        inner: MemoryRegistry::new(),
        calls: AtomicUsize::new(0),
    });
    let server = RpcServer::new(
        common::options(registry.clone()).register_interval(Duration::from_millis(50)),
    );
    server.start().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), server.failure())
        .await
        .expect("the failure is reported");
    assert!(
        err.to_string().contains("the registry plugin blew up"),
        "{err}"
    );
    server.stop().await.unwrap();
    assert!(
        registry.get_service("test").await.is_err(),
        "stop still deregistered"
    );
}

#[tokio::test]
async fn streams_over_the_limits_are_refused_with_a_clear_error() {
    let registry = common::memory();
    let opts = common::options(registry)
        .max_streams_per_connection(2)
        .max_streams(3);
    let (server, _) = common::start(opts, "s1").await;
    let addr = server.address().unwrap();
    let open = |id: u32| {
        common::go_request(
            "Test.Echo",
            Some("application/json"),
            &[("Micro-Stream", &id.to_string())],
            b"{}",
        )
    };
    // Two streams on one connection are fine; a third is refused, the connection
    // goes on serving the first two.
    let mut c = common::RawConn::connect(&addr).await;
    for id in 1..=3 {
        c.send(&open(id)).await;
    }
    let refused = c.read().await.expect("an answer to the third stream");
    let err = refused.header("Micro-Error").expect("an error");
    assert!(
        err.contains("\"code\":503") && err.contains("on this connection"),
        "{err}"
    );
    assert_eq!(refused.header("Micro-Stream"), Some("3"));
    // A second connection may open one more (3 on the server), then the server's
    // own limit refuses.
    let mut d = common::RawConn::connect(&addr).await;
    d.send(&open(1)).await;
    d.send(&open(2)).await;
    let refused = d.read().await.expect("an answer to the fourth stream");
    let err = refused.header("Micro-Error").expect("an error");
    assert!(err.contains("on this server"), "{err}");
    drop((c, d));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn durations_too_long_for_the_clock_do_not_panic() {
    // MICRO_REGISTER_TTL and MICRO_REGISTER_INTERVAL take any whole number of
    // seconds; a Timeout header any number of nanoseconds.
    let c = micro::config::Config::from_lookup(|k| match k {
        "MICRO_REGISTER_TTL" | "MICRO_REGISTER_INTERVAL" => Some(u64::MAX.to_string()),
        "MICRO_CLIENT_REQUEST_TIMEOUT" => Some("1e20".into()),
        _ => None,
    });
    assert!(c.is_err(), "a 1e20 s timeout is a clear error");
    let registry = common::memory();
    let opts = common::options(registry.clone())
        .register_ttl(Duration::MAX)
        .register_interval(Duration::from_secs(u64::MAX));
    let (server, _) = common::start(opts, "s1").await;
    assert_eq!(
        registry.get_service("test").await.unwrap()[0].nodes.len(),
        1
    );
    let mut c = common::RawConn::connect(&server.address().unwrap()).await;
    c.send(&common::go_request(
        "Test.Call",
        Some("application/json"),
        &[("Timeout", &u64::MAX.to_string())],
        b"{\"name\":\"x\"}",
    ))
    .await;
    let rsp = c.read().await.expect("an answer");
    assert_eq!(rsp.header("Micro-Error"), None, "{rsp:?}");
    server.stop().await.unwrap();
}
