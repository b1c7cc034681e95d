//! The retry rule, checked with handlers that count their runs: an answer is
//! final (however large, even when it cannot be read), a request that was not sent
//! always goes to another node, and one that was sent but not answered goes again
//! only when the call is retryable.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{CallRequest, CallResponse, Empty, FailRequest};
use micro::client::{CallErrorKind, ClientOptions, RpcClient};
use micro::registry::Registry;
use micro::server::Server;
use micro::transport::{HttpTransport, HttpTransportOptions};
use tokio::io::AsyncReadExt;

/// A node that reads each request's first bytes and then behaves as `hang_up`
/// says: true closes the connection (the request was sent, no answer came), false
/// keeps it open and silent. Counts the requests it read.
async fn misbehaving_node(
    registry: &Arc<dyn Registry>,
    service: &str,
    hang_up: bool,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let read = Arc::new(AtomicUsize::new(0));
    let seen = read.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if hang_up {
                        return; // drops the socket: the caller sees the connection end
                    }
                }
            }));
        }
    });
    common::register(
        registry,
        service,
        if hang_up { "dropper" } else { "hole" },
        &addr,
    )
    .await;
    (read, task)
}

#[tokio::test]
async fn large_errors_arrive_whole_and_the_handler_runs_once() {
    // go-micro puts an error in Micro-Error and X-Micro-Error: a 256 KiB detail
    // makes a head over 512 KiB. It is the server's answer: read whole, not
    // retried, the node not blamed.
    let registry = common::memory();
    let (s1, h1) = common::start(common::options(registry.clone()), "s1").await;
    let (s2, h2) = common::start(common::options(registry.clone()), "s2").await;
    let client = RpcClient::new(ClientOptions::new().registry(registry).retries(3));
    let mut calls = 0;
    for size in [1, 32 * 1024, 100 * 1024, 256 * 1024] {
        for _ in 0..4 {
            calls += 1;
            let detail: String = "x<&>\"".repeat(size / 5 + 1)[..size].to_owned();
            let err = client
                .request("test", "Test.Fail")
                .call::<_, Empty>(&FailRequest {
                    code: 503,
                    detail: detail.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(err.kind(), CallErrorKind::Remote, "{size}");
            assert_eq!((err.code(), err.detail().len()), (503, size));
            assert_eq!(err.detail(), detail);
            let runs = h1.failed.load(Ordering::SeqCst) + h2.failed.load(Ordering::SeqCst);
            assert_eq!(runs, calls, "every call ran its handler exactly once");
        }
    }
    client.close().await;
    s1.stop().await.unwrap();
    s2.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_that_cannot_be_read_is_final() {
    // A client whose head limit is below the reply's: the answer arrived, so it is
    // reported (BadReply, naming the limit), not retried on the other node.
    let registry = common::memory();
    let (s1, h1) = common::start(common::options(registry.clone()), "s1").await;
    let (s2, h2) = common::start(common::options(registry.clone()), "s2").await;
    let transport = HttpTransport::with_options(HttpTransportOptions::new().limits(
        micro::transport::Limits {
            max_header_size: 16 * 1024,
            ..Default::default()
        },
    ));
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .transport(Arc::new(transport))
            .retries(3),
    );
    for call in 1..=6 {
        let err = client
            .request("test", "Test.Fail")
            .call::<_, Empty>(&FailRequest {
                code: 500,
                detail: "y".repeat(20 * 1024),
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), CallErrorKind::BadReply, "{err}");
        assert!(err.detail().contains("header block"), "{err}");
        let runs = h1.failed.load(Ordering::SeqCst) + h2.failed.load(Ordering::SeqCst);
        assert_eq!(runs, call, "not run again on the other node");
    }
    // and the nodes still serve
    let rsp: CallResponse = client
        .request("test", "Test.Call")
        .call(&CallRequest::default())
        .await
        .unwrap();
    assert!(rsp.msg.starts_with("Hello  from s"));
    client.close().await;
    s1.stop().await.unwrap();
    s2.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_of_the_wrong_shape_is_final() {
    let registry = common::memory();
    let (s1, h1) = common::start(common::options(registry.clone()), "s1").await;
    let client = RpcClient::new(ClientOptions::new().registry(registry).retries(3));
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        count: u64,
    }
    let err = client
        .request("test", "Test.Call")
        .call::<_, Wrong>(&CallRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CallErrorKind::Decode, "{err}");
    assert_eq!(err.id(), "go.micro.client.codec");
    assert_eq!(h1.served.load(Ordering::SeqCst), 1);
    client.close().await;
    s1.stop().await.unwrap();
}

#[tokio::test]
async fn an_unanswered_request_goes_again_only_when_retryable() {
    for hang_up in [false, true] {
        let registry = common::memory();
        let (server, live) = common::start(common::options(registry.clone()), "live").await;
        let (read, task) = misbehaving_node(&registry, "test", hang_up).await;
        let client = RpcClient::new(
            ClientOptions::new()
                .registry(registry)
                .attempt_timeout(Duration::from_millis(200)),
        );
        // Not retryable: the calls that went to the bad node first fail; its
        // request was read, so it may have run and is not sent again.
        let mut failed = 0;
        for _ in 0..16 {
            match client
                .request("test", "Test.Call")
                .retryable(false)
                .call::<_, CallResponse>(&CallRequest::default())
                .await
            {
                Ok(rsp) => assert!(rsp.msg.ends_with("from live")),
                Err(e) => {
                    let want = if hang_up {
                        CallErrorKind::Receive
                    } else {
                        CallErrorKind::Timeout
                    };
                    assert_eq!(e.kind(), want, "{e}");
                    assert!(e.kind().may_have_run());
                    failed += 1;
                }
            }
        }
        let bad = read.load(Ordering::SeqCst);
        assert!(
            bad > 0,
            "random selection sends some calls to the bad node first"
        );
        assert_eq!(
            failed, bad,
            "each request the bad node read failed its call, once"
        );
        assert_eq!(live.served.load(Ordering::SeqCst), 16 - failed);
        // Retryable (the default): every call succeeds on the live node.
        for _ in 0..16 {
            let rsp: CallResponse = client
                .request("test", "Test.Call")
                .call(&CallRequest::default())
                .await
                .unwrap();
            assert!(rsp.msg.ends_with("from live"));
        }
        client.close().await;
        server.stop().await.unwrap();
        task.abort();
    }
}

#[tokio::test]
async fn a_request_that_was_not_sent_always_goes_to_another_node() {
    // A refused connection: nothing was sent, so even a call that must not run
    // twice is tried on the next node.
    let registry = common::memory();
    let (server, live) = common::start(common::options(registry.clone()), "live").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    common::register(&registry, "test", "dead", &addr).await;
    let client = RpcClient::new(ClientOptions::new().registry(registry));
    for _ in 0..16 {
        let rsp: CallResponse = client
            .request("test", "Test.Call")
            .retryable(false)
            .call(&CallRequest::default())
            .await
            .unwrap();
        assert!(rsp.msg.ends_with("from live"));
    }
    assert_eq!(live.served.load(Ordering::SeqCst), 16);
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_attempt_timeout_defaults_to_a_share_of_the_budget() {
    // 900 ms budget, two retries: each attempt gets 300 ms, so a call whose first
    // node never answers still succeeds on the second within the budget.
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "live").await;
    let (read, task) = misbehaving_node(&registry, "test", false).await;
    let client = RpcClient::new(
        ClientOptions::new()
            .registry(registry)
            .request_timeout(Duration::from_millis(900))
            .retries(2),
    );
    for _ in 0..16 {
        let rsp: CallResponse = client
            .request("test", "Test.Call")
            .call(&CallRequest::default())
            .await
            .unwrap();
        assert!(rsp.msg.ends_with("from live"));
    }
    assert!(read.load(Ordering::SeqCst) > 0);
    client.close().await;
    server.stop().await.unwrap();
    task.abort();
}
