//! Middleware: the server's and the client's tower stacks, with user layers, tower's
//! own layers and the built-in ones, acting on calls, streams, events and
//! publishes of real services.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{CallRequest, CallResponse, Empty, FailRequest, MetaResponse, Num, SlowRequest, Test};
use micro::broker::MemoryBroker;
use micro::client::{BoxClientService, CallErrorKind, CallKind, ClientRequest};
use micro::middleware::{
    BREAKER_ID, BreakerLayer, EndpointTimeoutLayer, Next, RATE_LIMIT_ID, RateLimitLayer, from_fn,
};
use micro::registry::Registry;
use micro::server::{BoxServerService, ServerKind, ServerRequest, Subscriber};
use micro::{Context, RpcError, Service, ServiceBuilder};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ping {
    n: i64,
}

/// A service named `test` with the `Test` handler on loopback, a memory registry
/// and broker.
fn builder(registry: &Arc<dyn Registry>) -> ServiceBuilder {
    Service::builder("test")
        .registry(registry.clone())
        .broker(Arc::new(MemoryBroker::new()))
        .address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(10))
        .handle(Test::named("s1"))
}

async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test]
async fn a_server_layer_sees_calls_stream_openings_and_events_and_can_change_the_context() {
    let registry = common::memory();
    let seen: Arc<Mutex<Vec<(ServerKind, String)>>> = Arc::default();
    let log = seen.clone();
    let layer = from_fn(
        move |mut req: ServerRequest, next: Next<BoxServerService>| {
            log.lock().push((req.kind(), req.endpoint().to_owned()));
            req.context_mut()
                .metadata_mut()
                .insert("X-Layer", "was here");
            req.context_mut().extensions_mut().insert(7u32);
            next.run(req)
        },
    );
    let events = Arc::new(AtomicUsize::new(0));
    let got = events.clone();
    let sub = Subscriber::new("mw.events", move |ctx: Context, _: Ping| {
        let got = got.clone();
        async move {
            assert_eq!(ctx.get("X-Layer"), Some("was here"));
            assert_eq!(ctx.extensions().get::<u32>(), Some(&7));
            got.fetch_add(1, Ordering::SeqCst);
            Ok::<(), RpcError>(())
        }
    });
    let service = builder(&registry)
        .layer(layer)
        .subscribe(sub)
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();

    let rsp: MetaResponse = client
        .request("test", "Test.Meta")
        .call(&Empty {})
        .await
        .unwrap();
    assert_eq!(
        rsp.metadata.get("X-Layer").map(String::as_str),
        Some("was here"),
        "the handler sees what the layer set: {rsp:?}"
    );
    let s = client
        .request("test", "Test.Count")
        .server_stream::<Num, Num>(&Num { n: 3 })
        .await
        .unwrap();
    let mut n = 0;
    while s.recv().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    s.close().await;
    client
        .publish_event("mw.events", &Ping { n: 1 })
        .await
        .unwrap();
    assert!(eventually(|| events.load(Ordering::SeqCst) == 1).await);

    let seen = seen.lock().clone();
    assert_eq!(
        seen,
        [
            (ServerKind::Call, "Test.Meta".to_owned()),
            (ServerKind::Stream, "Test.Count".to_owned()),
            (ServerKind::Event, "mw.events".to_owned()),
        ]
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn client_layers_see_calls_streams_and_publishes_once_and_attempts_each_time() {
    let registry = common::memory();
    let calls: Arc<Mutex<Vec<(CallKind, String)>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let (log, count) = (calls.clone(), attempts.clone());
    let sub = Subscriber::new("mw.pings", |_: Context, _: Ping| async {
        Ok::<(), RpcError>(())
    });
    let service = builder(&registry)
        .subscribe(sub)
        .client_options(move |o| {
            o.retries(2)
                .layer(from_fn(
                    move |req: ClientRequest, next: Next<BoxClientService>| {
                        log.lock().push((req.kind(), req.endpoint().to_owned()));
                        next.run(req)
                    },
                ))
                .attempt_layer(from_fn(
                    move |req: ClientRequest, next: Next<BoxClientService>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        assert!(req.target().is_some(), "an attempt knows its node");
                        next.run(req)
                    },
                ))
        })
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let _: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest { name: "a".into() })
        .await
        .unwrap();
    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    s.send(&Num { n: 1 }).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), Some(Num { n: 1 }));
    s.close().await;
    client
        .publish_event("mw.pings", &Ping { n: 2 })
        .await
        .unwrap();
    assert_eq!(
        calls.lock().clone(),
        [
            (CallKind::Call, "Test.Call".to_owned()),
            (CallKind::Stream, "Test.Echo".to_owned()),
            (CallKind::Publish, "mw.pings".to_owned()),
        ]
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "one attempt per call and stream"
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn towers_timeout_on_the_server_answers_408_and_the_call_is_not_rerun() {
    let registry = common::memory();
    let service = builder(&registry)
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            100,
        )))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let e = client
        .request("test", "Test.Slow")
        .call::<_, Empty>(&SlowRequest { millis: 2_000 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), 408, "{e}");
    assert_eq!(e.kind(), CallErrorKind::Remote, "{e}");
    let _: Empty = client
        .request("test", "Test.Slow")
        .call(&SlowRequest { millis: 1 })
        .await
        .unwrap();
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_endpoint_timeout_layer_applies_per_endpoint_limits() {
    let registry = common::memory();
    let layer = EndpointTimeoutLayer::new(Some(Duration::from_millis(50)))
        .endpoint("Test.Slow", Duration::from_secs(5));
    let service = builder(&registry).layer(layer).build().unwrap();
    service.start().await.unwrap();
    let client = service.client();
    // Test.Slow has its own 5 s: 300 ms is fine.
    let _: Empty = client
        .request("test", "Test.Slow")
        .call(&SlowRequest { millis: 300 })
        .await
        .unwrap();
    // A stream gets the 50 ms default for its whole life.
    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    s.send(&Num { n: 1 }).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), Some(Num { n: 1 }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = match s.send(&Num { n: 2 }).await {
        Err(e) => e,
        Ok(()) => s.recv().await.unwrap_err(),
    };
    assert_eq!(e.code(), 408, "{e}");
    s.close().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn load_shedding_over_a_concurrency_limit_answers_503_at_once() {
    let registry = common::memory();
    let service = builder(&registry)
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .client_options(|o| o.retries(0))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client().clone();
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .request("test", "Test.Slow")
                .call::<_, Empty>(&SlowRequest { millis: 500 })
                .await
        }
    });
    // Wait until the slow call holds the only permit.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = tokio::time::Instant::now();
    let e = client
        .request("test", "Test.Call")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), 503, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "shed, not queued"
    );
    slow.await.unwrap().unwrap();
    let _: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest::default())
        .await
        .unwrap();
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_rate_limiter_refuses_what_exceeds_the_bucket_with_429() {
    let registry = common::memory();
    let service = builder(&registry)
        .layer(RateLimitLayer::new(1.0, 3))
        .client_options(|o| o.retries(0))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let mut ok = 0;
    let mut refused = Vec::new();
    for _ in 0..6 {
        match client
            .request("test", "Test.Call")
            .call::<_, CallResponse>(&CallRequest::default())
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => refused.push((e.code(), e.id().to_owned())),
        }
    }
    assert!((3..=4).contains(&ok), "{ok} let through");
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|(c, id)| *c == 429 && id == RATE_LIMIT_ID),
        "{refused:?}"
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_node_and_closes_when_it_recovers() {
    let registry = common::memory();
    let failing = Arc::new(AtomicBool::new(true));
    let flag = failing.clone();
    // The server fails every call with a 500 while `failing` is set.
    let outage = from_fn(move |req: ServerRequest, next: Next<BoxServerService>| {
        let fail = flag.load(Ordering::SeqCst);
        async move {
            if fail {
                return Err(RpcError::internal("test", "outage"));
            }
            next.run(req).await
        }
    });
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    let breaker = BreakerLayer::with(1.5, 20, Duration::from_secs(2));
    let probe = breaker.clone();
    let service = builder(&registry)
        .layer(from_fn(
            move |req: ServerRequest, next: Next<BoxServerService>| {
                count.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ))
        .layer(outage)
        .client_options(move |o| o.retries(0).attempt_layer(breaker))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let node = service.server().node_id().to_owned();

    let (mut refused, mut failed) = (0, 0);
    for _ in 0..200 {
        let e = client
            .request("test", "Test.Call")
            .call::<_, CallResponse>(&CallRequest::default())
            .await
            .unwrap_err();
        if e.id() == BREAKER_ID {
            assert_eq!(e.code(), 503);
            refused += 1;
        } else {
            assert_eq!(e.code(), 500, "{e}");
            failed += 1;
        }
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        failed,
        "refused calls never leave"
    );
    assert!(
        refused > 100,
        "{refused} refused, {failed} reached the node"
    );
    assert!(probe.probability(&node, "Test.Call") > 0.5);

    failing.store(false, Ordering::SeqCst);
    let mut streak = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while streak < 50 && tokio::time::Instant::now() < deadline {
        match client
            .request("test", "Test.Call")
            .call::<_, CallResponse>(&CallRequest::default())
            .await
        {
            Ok(_) => streak += 1,
            Err(e) => {
                assert_eq!(e.id(), BREAKER_ID, "{e}");
                streak = 0;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert_eq!(streak, 50, "the breaker closed once the node recovered");
    assert!(probe.probability(&node, "Test.Call") < 0.1);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_breaker_counts_server_errors_per_endpoint_not_the_callers_mistakes() {
    let registry = common::memory();
    let service = builder(&registry)
        .client_options(|o| o.retries(0).attempt_layer(BreakerLayer::new()))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let fail = |code: i32| FailRequest {
        code,
        detail: "no".into(),
    };
    // A 4xx is the caller's fault, not the node's: it never trips the breaker.
    for _ in 0..100 {
        let e = client
            .request("test", "Test.Fail")
            .call::<_, Empty>(&fail(400))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 400, "{e}");
    }
    // The 400s above count as accepted in the window, so refusals start only once
    // the 500s outnumber them 1.5 to 1; 200 of them make refusals certain.
    let mut codes = Vec::new();
    for _ in 0..200 {
        let e = client
            .request("test", "Test.Fail")
            .call::<_, Empty>(&fail(500))
            .await
            .unwrap_err();
        codes.push(e.code());
    }
    assert!(codes.contains(&503), "5xx trip the breaker: {codes:?}");
    // Another endpoint of the same node is not affected.
    for _ in 0..50 {
        let _: CallResponse = client
            .request("test", "Test.Call")
            .call(&CallRequest::default())
            .await
            .unwrap();
    }
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_answers_500_through_the_default_stack() {
    let registry = common::memory();
    let service = builder(&registry).build().unwrap();
    service.start().await.unwrap();
    let client = service.client();
    let e = client
        .request("test", "Test.Panic")
        .call::<_, Empty>(&Empty {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), 500, "{e}");
    assert!(e.detail().contains("panic"), "{e}");
    let _: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest::default())
        .await
        .unwrap();
    service.stop().await.unwrap();
}

/// Counts runs in flight and remembers the most seen at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    /// Counts a run until the guard drops (a run the timeout cancels included).
    fn enter(self: &Arc<Self>) -> Leave {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        Leave(self.clone())
    }
}

struct Leave(Arc<InFlight>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

type Outcomes<K> = Arc<Mutex<Vec<(K, String, i32)>>>;

#[tokio::test]
async fn a_user_layer_with_towers_timeout_and_concurrency_limit_acts_on_every_kind_of_server_work()
{
    let registry = common::memory();
    // Outermost: a user layer recording each request's kind and outcome (0 = ok).
    let outcomes: Outcomes<ServerKind> = Arc::default();
    let log = outcomes.clone();
    let user = from_fn(move |req: ServerRequest, next: Next<BoxServerService>| {
        let (log, kind, endpoint) = (log.clone(), req.kind(), req.endpoint().to_owned());
        async move {
            let r = next.run(req).await;
            let code = r.as_ref().map_or_else(|e| e.code, |_| 0);
            log.lock().push((kind, endpoint, code));
            r
        }
    });
    // Innermost: what runs below the concurrency limit.
    let inside = Arc::new(InFlight::default());
    let probe = inside.clone();
    let below = from_fn(move |req: ServerRequest, next: Next<BoxServerService>| {
        let probe = probe.clone();
        async move {
            let _in = probe.enter();
            next.run(req).await
        }
    });
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let sub = Subscriber::new("mw.slow", move |_: Context, p: Ping| {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(p.n as u64)).await;
            Ok::<(), RpcError>(())
        }
    });
    let service = builder(&registry)
        .layer(user)
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            400,
        )))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .layer(below)
        .subscribe(sub)
        .client_options(|o| o.retries(0))
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client().clone();

    // Unary: four concurrent calls run one at a time; one too slow times out.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .request("test", "Test.Slow")
                    .call::<_, Empty>(&SlowRequest { millis: 30 })
                    .await
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let e = client
        .request("test", "Test.Slow")
        .call::<_, Empty>(&SlowRequest { millis: 3_000 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), 408, "{e}");

    // A stream holds the only permit for its life and is cut at the timeout.
    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    s.send(&Num { n: 1 }).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), Some(Num { n: 1 }));
    let e = tokio::time::timeout(LIMIT, s.recv())
        .await
        .expect("the stream ends")
        .unwrap_err();
    assert_eq!(e.code(), 408, "{e}");
    s.close().await;

    // Events: two quick ones in turn, a slow one cut at the timeout.
    for n in [10, 10, 3_000] {
        client.publish_event("mw.slow", &Ping { n }).await.unwrap();
    }
    assert!(
        eventually(|| outcomes
            .lock()
            .iter()
            .filter(|o| o.0 == ServerKind::Event)
            .count()
            == 3)
        .await
    );

    assert_eq!(
        inside.max.load(Ordering::SeqCst),
        1,
        "the limit held everywhere"
    );
    assert_eq!(started.load(Ordering::SeqCst), 3);
    let seen = outcomes.lock().clone();
    let codes = |kind: ServerKind| -> Vec<i32> {
        seen.iter().filter(|o| o.0 == kind).map(|o| o.2).collect()
    };
    assert_eq!(codes(ServerKind::Call), [0, 0, 0, 0, 408]);
    assert_eq!(codes(ServerKind::Stream), [408]);
    assert_eq!(codes(ServerKind::Event), [0, 0, 408]);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_user_layer_with_towers_timeout_and_concurrency_limit_acts_on_calls_streams_and_publishes()
 {
    let registry = common::memory();
    let sub = Subscriber::new("mw.client", |_: Context, _: Ping| async {
        Ok::<(), RpcError>(())
    });
    let outcomes: Outcomes<CallKind> = Arc::default();
    let log = outcomes.clone();
    let inside = Arc::new(InFlight::default());
    let probe = inside.clone();
    let service = builder(&registry)
        .subscribe(sub)
        .client_options(move |o| {
            o.retries(0)
                // Outermost: records each call's kind and outcome (0 = ok).
                .layer(from_fn(
                    move |req: ClientRequest, next: Next<BoxClientService>| {
                        let (log, kind, endpoint) =
                            (log.clone(), req.kind(), req.endpoint().to_owned());
                        async move {
                            let r = next.run(req).await;
                            let code = r.as_ref().map_or_else(|e| e.code(), |_| 0);
                            log.lock().push((kind, endpoint, code));
                            r
                        }
                    },
                ))
                .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
                    300,
                )))
                .layer(tower::limit::ConcurrencyLimitLayer::new(1))
                // Innermost: holds requests marked X-Delay for 100 ms each, or for
                // 2 s with X-Delay: long.
                .layer(from_fn(
                    move |req: ClientRequest, next: Next<BoxClientService>| {
                        let probe = probe.clone();
                        let delay = match req.header("X-Delay") {
                            Some("long") => Duration::from_secs(2),
                            Some(_) => Duration::from_millis(100),
                            None => Duration::ZERO,
                        };
                        async move {
                            let _in = probe.enter();
                            tokio::time::sleep(delay).await;
                            next.run(req).await
                        }
                    },
                ))
        })
        .build()
        .unwrap();
    service.start().await.unwrap();
    let client = service.client().clone();

    // Calls: two at once run in turn (each held 100 ms); a slow one times out.
    let a = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request("test", "Test.Call")
                .metadata("X-Delay", "short")
                .call::<_, CallResponse>(&CallRequest::default())
                .await
        })
    };
    let _: CallResponse = client
        .request("test", "Test.Call")
        .metadata("X-Delay", "short")
        .call(&CallRequest::default())
        .await
        .unwrap();
    a.await.unwrap().unwrap();
    let e = client
        .request("test", "Test.Slow")
        .call::<_, Empty>(&SlowRequest { millis: 3_000 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CallErrorKind::Timeout, "{e}");

    // Stream openings: one goes, one held too long times out.
    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    s.close().await;
    let e = client
        .request("test", "Test.Echo")
        .metadata("X-Delay", "long")
        .stream::<Num, Num>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CallErrorKind::Timeout, "{e}");

    // Publishes: two at once go in turn; one held too long times out.
    let p = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .message("mw.client")
                .metadata("X-Delay", "short")
                .publish(&Ping { n: 1 })
                .await
        })
    };
    client
        .message("mw.client")
        .metadata("X-Delay", "short")
        .publish(&Ping { n: 2 })
        .await
        .unwrap();
    p.await.unwrap().unwrap();
    let e = client
        .message("mw.client")
        .metadata("X-Delay", "long")
        .publish(&Ping { n: 3 })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), CallErrorKind::Timeout, "{e}");

    assert_eq!(
        inside.max.load(Ordering::SeqCst),
        1,
        "the limit held everywhere"
    );
    let seen = outcomes.lock().clone();
    let kinds = |kind: CallKind| -> Vec<bool> {
        seen.iter()
            .filter(|o| o.0 == kind)
            .map(|o| o.2 == 0)
            .collect()
    };
    assert_eq!(kinds(CallKind::Call), [true, true, false]);
    assert_eq!(kinds(CallKind::Stream), [true, false]);
    assert_eq!(kinds(CallKind::Publish), [true, true, false]);
    service.stop().await.unwrap();
}
