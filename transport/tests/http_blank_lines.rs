//! Blank lines before a head (RFC 9112 §2.2 lets a recipient skip them) are skipped
//! by our server and our client, whether they arrive with the head or alone.
//!
//! A bare `\n\n` (or `\r\n\n`) there once made the read loop find the same blank
//! line again and again: the connection's task spun on the CPU and never read the
//! message. Each exchange here runs on a runtime of its own in a thread of its own,
//! so that such a spin fails the test after a bound instead of hanging it.

mod common;

use std::future::Future;
use std::sync::mpsc;

use common::LIMIT;
use micro_transport::{DialOptions, Header, HttpTransport, Message, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs `fut` on a runtime of its own; fails if it has not finished within
/// [`LIMIT`] (a thread stuck in a busy loop is left behind, not waited for).
fn bounded<F>(what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ = tx.send(rt.block_on(fut));
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what}: no message within {LIMIT:?}"))
}

const PREFIXES: &[&[u8]] = &[b"\r\n", b"\n", b"\n\n", b"\r\n\n", b"\r\n\r\n", b"\n\r\n\n"];

#[test]
fn the_server_skips_blank_lines_before_a_request() {
    for &prefix in PREFIXES {
        for separate in [false, true] {
            let body = bounded("server", async move {
                let listener = HttpTransport::new()
                    .listen("127.0.0.1:0")
                    .await
                    .expect("listen");
                let mut raw = TcpStream::connect(listener.addr()).await.expect("connect");
                let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok";
                if separate {
                    raw.write_all(prefix).await.expect("write");
                    raw.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                    raw.write_all(request).await.expect("write");
                } else {
                    raw.write_all(&[prefix, &request[..]].concat())
                        .await
                        .expect("write");
                }
                let socket = listener.accept().await.expect("accept");
                socket.recv().await.expect("recv").body
            });
            assert_eq!(&body[..], b"ok", "prefix {prefix:?}, separate {separate}");
        }
    }
}

#[test]
fn the_client_skips_blank_lines_before_a_response() {
    for &prefix in PREFIXES {
        let body = bounded("client", async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address").to_string();
            let peer = tokio::spawn(async move {
                let (mut raw, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 4096];
                let n = raw.read(&mut buf).await.expect("read");
                assert!(n > 0, "the client sent nothing");
                let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                raw.write_all(&[prefix, &response[..]].concat())
                    .await
                    .expect("write");
                raw
            });
            let client = HttpTransport::new()
                .dial(&addr, &DialOptions::default())
                .await
                .expect("dial");
            client
                .send(&Message::new(Header::new(), "hi"))
                .await
                .expect("send");
            let got = client.recv().await.expect("recv").body;
            drop(peer.await.expect("peer"));
            got
        });
        assert_eq!(&body[..], b"ok", "prefix {prefix:?}");
    }
}
