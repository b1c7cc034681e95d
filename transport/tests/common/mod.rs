//! Shared fixtures for the transport tests: echo servers that stop when dropped, and
//! raw HTTP helpers for talking to a server byte by byte.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use micro_transport::{Listener, Socket, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};

/// Upper bound for any single wait in a test.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step timed out")
}

/// A server task; dropping it stops the accept loop and every connection task.
pub struct Server {
    pub addr: String,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `listener`, running `handle` for each accepted socket.
pub fn serve<F, Fut>(listener: Box<dyn Listener>, handle: F) -> Server
where
    F: Fn(Arc<dyn Socket>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.addr();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok(socket) = listener.accept().await {
            conns.spawn(handle(Arc::from(socket)));
            // reap finished connections so the set stays small
            while conns.try_join_next().is_some() {}
        }
    });
    Server { addr, task }
}

/// Echoes every message back on its connection until the peer goes away.
pub async fn echo(socket: Arc<dyn Socket>) {
    while let Ok(msg) = socket.recv().await {
        if socket.send(&msg).await.is_err() {
            break;
        }
    }
}

/// An echo server on a free loopback port (or memory address).
pub async fn echo_server(transport: &dyn Transport) -> Server {
    let listener = transport.listen("127.0.0.1:0").await.expect("listen");
    serve(listener, echo)
}

/// A raw HTTP response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// Status line and headers, up to and including the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code")
    }

    /// The value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The exact bytes of head and body.
    pub fn bytes(&self) -> Vec<u8> {
        let mut v = self.head.as_bytes().to_vec();
        v.extend_from_slice(&self.body);
        v
    }
}

/// Reads one response with a `Content-Length` body from `stream`, keeping whatever
/// follows it in `buf`.
pub async fn read_raw_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    within(async {
        loop {
            if let Some(end) = find(buf, b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end + 4].to_vec()).expect("utf-8 head");
                let partial = RawResponse {
                    head,
                    body: Vec::new(),
                };
                let len: usize = partial
                    .header("Content-Length")
                    .map_or(0, |v| v.parse().expect("a number"));
                while buf.len() < end + 4 + len {
                    read_more(stream, buf).await;
                }
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return RawResponse { body, ..partial };
            }
            read_more(stream, buf).await;
        }
    })
    .await
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await.expect("read");
    assert!(
        n > 0,
        "connection closed; got so far: {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Reads until the peer closes; returns what arrived. Fails after [`LIMIT`].
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    out
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Connects a raw TCP stream.
pub async fn raw_connect(addr: &str) -> TcpStream {
    within(TcpStream::connect(addr)).await.expect("connect")
}

/// Writes `bytes` on `stream`.
pub async fn raw_write(stream: &mut TcpStream, bytes: &[u8]) {
    within(stream.write_all(bytes)).await.expect("write");
}

/// The error of a result whose success type is not `Debug` (sockets, listeners).
pub fn expect_err<T>(res: Result<T, micro_transport::Error>) -> micro_transport::Error {
    match res {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}
