//! Streams: client stream, server stream and bidirectional, with errors.

#![allow(clippy::unwrap_used)]

mod common;

use common::Num;
use micro::server::Server;

#[tokio::test]
async fn the_three_stream_kinds_work_end_to_end() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = common::client(registry);

    let s = client
        .request("test", "Test.Count")
        .server_stream::<Num, Num>(&Num { n: 5 })
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = s.recv().await.unwrap() {
        got.push(m.n);
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    s.close().await;

    let s = client
        .request("test", "Test.Sum")
        .stream::<Num, Num>()
        .await
        .unwrap();
    for n in 1..=10 {
        s.send(&Num { n }).await.unwrap();
    }
    s.close_send().await.unwrap();
    assert_eq!(s.recv().await.unwrap(), Some(Num { n: 55 }));
    assert_eq!(s.recv().await.unwrap(), None, "then EOS");
    s.close().await;

    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    for n in 0..100 {
        s.send(&Num { n }).await.unwrap();
        assert_eq!(s.recv().await.unwrap(), Some(Num { n }));
    }
    s.close_send().await.unwrap();
    assert_eq!(s.recv().await.unwrap(), None);
    s.close().await;

    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sending_while_receiving_from_two_tasks() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = common::client(registry);
    let s = std::sync::Arc::new(
        client
            .request("test", "Test.Echo")
            .stream::<Num, Num>()
            .await
            .unwrap(),
    );
    let sender = {
        let s = s.clone();
        tokio::spawn(async move {
            for n in 0..500 {
                s.send(&Num { n }).await.unwrap();
            }
            s.close_send().await.unwrap();
        })
    };
    let mut expected = 0;
    while let Some(m) = s.recv().await.unwrap() {
        assert_eq!(m.n, expected);
        expected += 1;
    }
    assert_eq!(expected, 500);
    sender.await.unwrap();
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_handler_error_ends_the_stream_with_that_error() {
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = common::client(registry);
    let s = client
        .request("test", "Test.Echo")
        .stream::<Num, Num>()
        .await
        .unwrap();
    s.send(&Num { n: 1 }).await.unwrap();
    assert_eq!(s.recv().await.unwrap(), Some(Num { n: 1 }));
    s.send(&Num { n: -1 }).await.unwrap();
    let err = s.recv().await.unwrap_err();
    assert_eq!((err.code(), err.detail()), (400, "negative number"));
    s.close().await;

    let s = client
        .request("test", "Test.Count")
        .server_stream::<Num, Num>(&Num { n: -3 })
        .await
        .unwrap();
    assert_eq!(s.recv().await.unwrap_err().code(), 400);
    s.close().await;

    // A stream to an unknown endpoint fails with go-micro's routing error.
    let s = client
        .request("test", "Test.Missing")
        .stream::<Num, Num>()
        .await
        .unwrap();
    let err = s.recv().await.unwrap_err();
    assert!(err.detail().contains("can't find method Missing"), "{err}");
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_waiting_on_a_silent_peer_fails_at_the_calls_deadline() {
    // Issue 13, point 9: a stream honours the call's deadline wherever it waits.
    let registry = common::memory();
    let (server, _) = common::start(common::options(registry.clone()), "s1").await;
    let client = common::client(registry);
    // Test.Echo answers only what it is sent: nothing comes back.
    let s = client
        .request("test", "Test.Echo")
        .timeout(std::time::Duration::from_millis(300))
        .stream::<Num, Num>()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), s.recv())
        .await
        .expect("recv gives up by itself")
        .unwrap_err();
    assert_eq!(e.kind(), micro::client::CallErrorKind::Timeout, "{e}");
    assert_eq!(e.code(), 408, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    s.close().await;
    client.close().await;
    server.stop().await.unwrap();
}
