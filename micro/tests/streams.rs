//! Streams: client stream, server stream and bidirectional, with errors, and the
//! deadlines every wait of a stream keeps.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Num;
use micro::client::{CallError, CallErrorKind, ClientOptions, ClientStream, RpcClient};
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{Handler, HandlerSet, Routes, RpcServer, Server};
use micro::{Context, RpcError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

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

// ---------------------------------------------------------------------------------
// Deadlines: a stream opened with a timeout, or under a caller's deadline, fails
// whatever it waits for with 408 once the deadline passes.

/// How long after its deadline a wait may end (scheduling on a busy machine).
const SLACK: Duration = Duration::from_secs(3);
/// The stream timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(300);

/// A peer that accepts connections and never answers: it reads what comes, or
/// (`read` false) not even that. Dropping it closes every connection.
struct HungPeer {
    addr: String,
    task: JoinHandle<()>,
}

impl Drop for HungPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hung_peer(read: bool) -> HungPeer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut readers = JoinSet::new();
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            if read {
                readers.spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            } else {
                held.push(conn);
            }
        }
    });
    HungPeer { addr, task }
}

/// Asserts that `err` is the client's timeout and came between `deadline` and
/// `deadline + SLACK`.
fn assert_timed_out_at(err: &CallError, deadline: Instant) {
    let now = Instant::now();
    assert_eq!(err.kind(), CallErrorKind::Timeout, "{err}");
    assert_eq!(err.code(), 408, "{err}");
    assert!(now >= deadline, "{:?} early", deadline - now);
    assert!(now < deadline + SLACK, "{:?} late", now - deadline);
}

#[tokio::test]
async fn a_stream_timeout_ends_a_recv_from_a_hung_peer() {
    let peer = hung_peer(true).await;
    let client = common::client(common::memory());
    let deadline = Instant::now() + TIMEOUT;
    let s = client
        .request("test", "Test.Count")
        .address(&peer.addr)
        .timeout(TIMEOUT)
        .server_stream::<Num, Num>(&Num { n: 3 })
        .await
        .unwrap();
    let err = tokio::time::timeout(TIMEOUT + SLACK, s.recv())
        .await
        .expect("recv ends at the stream's deadline")
        .unwrap_err();
    assert_timed_out_at(&err, deadline);
    // past the deadline every wait fails at once
    let err = tokio::time::timeout(SLACK, s.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), 408);
    client.close().await;
}

#[tokio::test]
async fn a_stream_timeout_ends_a_send_to_a_peer_that_stops_reading() {
    let peer = hung_peer(false).await;
    let client = common::client(common::memory());
    let deadline = Instant::now() + TIMEOUT;
    let s = client
        .request("test", "Test.Sum")
        .address(&peer.addr)
        .timeout(TIMEOUT)
        .stream::<Num, Num>()
        .await
        .unwrap();
    // The socket buffers take a few megabytes; then a send waits.
    let chunk = Bytes::from(vec![b' '; 1 << 20]);
    let sending = async {
        for _ in 0..1024 {
            if let Err(e) = s.raw().send(chunk.clone()).await {
                return e;
            }
        }
        panic!("a gigabyte went to a peer that reads nothing");
    };
    let err = tokio::time::timeout(TIMEOUT + SLACK, sending)
        .await
        .expect("send ends at the stream's deadline");
    assert_timed_out_at(&err, deadline);
    client.close().await;
}

/// Opens a stream to a hung peer under the deadline of the call it serves, and
/// hands the stream to the test.
struct Relay {
    client: RpcClient,
    peer: String,
    opened: mpsc::UnboundedSender<ClientStream<Num, Num>>,
}

impl Relay {
    async fn open(&self, ctx: Context, _: common::Empty) -> Result<common::Empty, RpcError> {
        let s = self
            .client
            .request("test", "Test.Count")
            .address(&self.peer)
            .context(&ctx)
            .server_stream::<Num, Num>(&Num { n: 3 })
            .await
            .map_err(|e| RpcError::internal("relay", e.to_string()))?;
        let _ = self.opened.send(s);
        Ok(common::Empty {})
    }
}

impl Handler for Relay {
    const NAME: &'static str = "Relay";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Open", Self::open);
    }
}

#[tokio::test]
async fn a_callers_deadline_ends_a_recv_from_a_hung_peer() {
    let peer = hung_peer(true).await;
    let registry = common::memory();
    let (opened, mut streams) = mpsc::unbounded_channel();
    let relay = Arc::new(Relay {
        client: common::client(common::memory()),
        peer: peer.addr.clone(),
        opened,
    });
    let server = RpcServer::new(common::options(registry.clone()));
    server.handle(HandlerSet::from_arc(relay)).unwrap();
    server.start().await.unwrap();
    let client = common::client(registry);

    // The relay's stream has no timeout of its own: it inherits the deadline of
    // the call it serves, which is that of the call's attempt (with no retries,
    // the whole call's).
    let deadline = Instant::now() + TIMEOUT;
    client
        .request("test", "Relay.Open")
        .timeout(TIMEOUT)
        .retries(0)
        .call::<_, common::Empty>(&common::Empty {})
        .await
        .unwrap();
    let s = streams.recv().await.unwrap();
    assert!(s.raw().deadline().is_some());
    let err = tokio::time::timeout(TIMEOUT + SLACK, s.recv())
        .await
        .expect("recv ends at the caller's deadline")
        .unwrap_err();
    assert_timed_out_at(&err, deadline);
    client.close().await;
    server.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_hung_registry_does_not_hold_a_stream_opening_past_its_timeout() {
    let memory = Arc::new(MemoryRegistry::new());
    let faulty = Arc::new(micro::registry::testing::Faulty::new(memory.clone()));
    let registry: Arc<dyn Registry> = memory.clone();
    common::register(&registry, "hung", "1", "127.0.0.1:1").await;
    faulty.set_delay(Duration::from_secs(60));
    let client = RpcClient::new(ClientOptions::new().registry(faulty));
    let start = Instant::now();
    let err = client
        .request("hung", "Test.Echo")
        .timeout(TIMEOUT)
        .stream::<Num, Num>()
        .await
        .unwrap_err();
    assert_eq!(err.code(), 408, "{err}");
    assert_eq!(start.elapsed(), TIMEOUT);
    client.close().await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn a_stream_timeout_bounds_a_handshake_with_a_silent_peer() {
    // The peer takes the connection and never answers the TLS handshake, which
    // the dial timeout (5 s by default) would otherwise bound alone.
    let peer = hung_peer(true).await;
    let tls = micro::tls::TlsOptions::new()
        .insecure_skip_verify(true)
        .dial_all(true);
    let client = RpcClient::new(ClientOptions::new().registry(common::memory()).tls(tls));
    let deadline = Instant::now() + TIMEOUT;
    let err = tokio::time::timeout(TIMEOUT + SLACK, async {
        client
            .request("test", "Test.Echo")
            .address(&peer.addr)
            .timeout(TIMEOUT)
            .stream::<Num, Num>()
            .await
            .unwrap_err()
    })
    .await
    .expect("opening ends at the stream's deadline");
    assert_timed_out_at(&err, deadline);
    client.close().await;
}
