//! Round-trip throughput of the HTTP transport over loopback: one connection doing
//! sequential request/response exchanges with an RPC-sized message (the headers
//! go-micro's client sends and a small JSON body), then several connections at once.
//!
//! For scale it first measures a bare TCP echo of the same bytes (no HTTP parsing, no
//! headers map): the floor any transport on this machine pays for the wakeups and
//! system calls.
//!
//! Run with `cargo run --release -p micro-transport --example roundtrip [seconds]`.

#![allow(clippy::print_stdout)] // a benchmark program: printing is its job

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro_transport::{DialOptions, Header, HttpTransport, Message, Socket, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bytes one exchange puts on the wire, as our client and server write them.
const RAW_REQUEST_LEN: usize = 300;
const RAW_RESPONSE_LEN: usize = 110;

/// Bare TCP: the client writes a request-sized buffer, the server reads exactly that
/// much and writes a response-sized buffer back.
async fn raw_baseline(secs: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut req = [0u8; RAW_REQUEST_LEN];
        let rsp = [b'r'; RAW_RESPONSE_LEN];
        while s.read_exact(&mut req).await.is_ok() {
            if s.write_all(&rsp).await.is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let req = [b'q'; RAW_REQUEST_LEN];
    let mut rsp = [0u8; RAW_RESPONSE_LEN];
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < until {
        for _ in 0..100 {
            c.write_all(&req).await.expect("write");
            c.read_exact(&mut rsp).await.expect("read");
        }
        n += 100;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(c);
    let _ = server.await;
    rate
}

fn request() -> Message {
    let mut h = Header::new();
    h.insert("Content-Type", "application/json");
    h.insert("Accept", "application/json");
    h.insert("Micro-Id", "42");
    h.insert("Micro-Service", "helloworld");
    h.insert("Micro-Endpoint", "Helloworld.Call");
    h.insert("Micro-Method", "Helloworld.Call");
    h.insert("Timeout", "5000000000");
    Message::new(h, &b"{\"name\":\"John\"}\n"[..])
}

async fn run(client: &dyn Socket, msg: &Message, until: Instant) -> u64 {
    let mut n = 0;
    while Instant::now() < until {
        for _ in 0..100 {
            client.send(msg).await.expect("send");
            client.recv().await.expect("recv");
        }
        n += 100;
    }
    n
}

/// Starts an HTTP transport server answering every request with a fixed response.
async fn http_server(transport: &HttpTransport) -> (String, tokio::task::JoinHandle<()>) {
    let listener = transport.listen("127.0.0.1:0").await.expect("listen");
    let addr = listener.addr();
    let server = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok(socket) = listener.accept().await {
            conns.spawn(async move {
                let mut reply = Header::new();
                reply.insert("Content-Type", "application/json");
                reply.insert("Micro-Id", "42");
                let body = bytes::Bytes::from_static(b"{\"msg\":\"Hello John\"}\n");
                while socket.recv().await.is_ok() {
                    let rsp = Message {
                        header: reply.clone(),
                        body: body.clone(),
                    };
                    if socket.send(&rsp).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, server)
}

/// One connection, sequential exchanges: bare TCP first, then the HTTP transport.
async fn one_connection(label: &str, secs: u64) {
    let raw = raw_baseline(secs).await;
    let transport = HttpTransport::new();
    let (addr, server) = http_server(&transport).await;
    let msg = request();
    let client = transport
        .dial(&addr, &DialOptions::default())
        .await
        .expect("dial");
    run(
        client.as_ref(),
        &msg,
        Instant::now() + Duration::from_millis(300),
    )
    .await; // warm up
    let start = Instant::now();
    let n = run(client.as_ref(), &msg, start + Duration::from_secs(secs)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    println!(
        "{label}: bare TCP {raw:>7.0}/s, http {rate:>7.0}/s ({:.1} us each, {:.0} % of bare TCP)",
        elapsed * 1e6 / n as f64,
        100.0 * rate / raw
    );
    server.abort();
}

/// Several connections at once, each doing sequential exchanges.
async fn many_connections(conns: usize, secs: u64) {
    let transport = HttpTransport::new();
    let (addr, server) = http_server(&transport).await;
    let msg = request();
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(Arc::<dyn Socket>::from(
            transport
                .dial(&addr, &DialOptions::default())
                .await
                .expect("dial"),
        ));
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let msg = msg.clone();
        tasks.spawn(async move { run(client.as_ref(), &msg, until).await });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("client task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "http, {conns:>2} connections (2 workers): {:>7.0} round trips/s",
        total as f64 / elapsed
    );
    server.abort();
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    // client and server on one thread: the CPU cost of the code, without the
    // cross-CPU wakeups that dominate (and blur) single-connection latency
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    single.block_on(one_connection("1 thread,  1 conn", secs));
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    multi.block_on(async {
        one_connection("2 workers, 1 conn", secs).await;
        for conns in [4, 16] {
            many_connections(conns, secs).await;
        }
    });
}
