//! End-to-end RPC throughput and latency: `Helloworld.Call` through the whole stack
//! (typed client, selector, pool, HTTP transport, server, handler) at 1 and 16
//! concurrent callers on loopback, next to a bare hyper HTTP/1.1 echo measured in the
//! same run, alternating the two.
//!
//! Run: `cargo bench -p micro --bench rpc`. Target: at 16 callers, at least 60 % of
//! bare hyper's throughput. Environment: `BENCH_SECS` (default 3) per measurement.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use micro::client::{ClientOptions, RpcClient};
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{Handler, Routes, RpcServer, Server, ServerOptions};
use micro::{Context, RpcError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct CallRequest {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct CallResponse {
    msg: String,
}

struct Helloworld;

impl Helloworld {
    async fn call(&self, _: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        Ok(CallResponse {
            msg: format!("Hello {}", req.name),
        })
    }
}

impl Handler for Helloworld {
    const NAME: &'static str = "Helloworld";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call);
    }
}

struct Stats {
    calls_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `callers` loops of `call` for `secs` (after a short warm-up) and measures.
async fn measure<F, Fut>(callers: usize, secs: f64, make: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<
            Output = Box<
                dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
                    + Send,
            >,
        > + Send,
{
    let warm = Duration::from_millis(300);
    let run = Duration::from_secs_f64(secs);
    let start = Instant::now() + warm;
    let end = start + run;
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut call = make().await;
            let mut lat = Vec::with_capacity(100_000);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                call().await;
                if t0 >= start {
                    lat.push(t0.elapsed());
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        calls_per_sec: all.len() as f64 / run.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

type CallFn =
    Box<dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

async fn hyper_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let req: CallRequest = serde_json::from_slice(&body).unwrap();
                        let mut out = serde_json::to_vec(&CallResponse {
                            msg: format!("Hello {}", req.name),
                        })
                        .unwrap();
                        out.push(b'\n');
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(out))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn hyper_caller(addr: String) -> CallFn {
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    Box::new(move || {
        let sender = sender.clone();
        let addr = addr.clone();
        Box::pin(async move {
            let body = serde_json::to_vec(&CallRequest {
                name: "bench".into(),
            })
            .unwrap();
            let req = hyper::Request::post(format!("http://{addr}/"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let rsp = sender.lock().await.send_request(req).await.unwrap();
            let body = rsp.into_body().collect().await.unwrap().to_bytes();
            let r: CallResponse = serde_json::from_slice(&body).unwrap();
            assert_eq!(r.msg, "Hello bench");
        })
    })
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
        let server = RpcServer::new(
            ServerOptions::new()
                .name("helloworld")
                .address("127.0.0.1:0")
                .registry(registry.clone()),
        );
        server.handler(Helloworld).unwrap();
        server.start().await.unwrap();
        let client = Arc::new(RpcClient::new(
            ClientOptions::new().registry(registry.clone()),
        ));
        let haddr = hyper_server().await;

        println!(
            "{:<28} {:>8} {:>12} {:>10} {:>10}",
            "stack", "callers", "calls/s", "p50", "p99"
        );
        let mut ratio16 = Vec::new();
        for round in 0..2 {
            for callers in [1usize, 16] {
                let h = {
                    let haddr = haddr.clone();
                    measure(callers, secs, move || hyper_caller(haddr.clone())).await
                };
                let m = {
                    let client = client.clone();
                    measure(callers, secs, move || {
                        let client = client.clone();
                        async move {
                            Box::new(move || {
                                let client = client.clone();
                                Box::pin(async move {
                                    let r: CallResponse = client
                                        .request("helloworld", "Helloworld.Call")
                                        .call(&CallRequest {
                                            name: "bench".into(),
                                        })
                                        .await
                                        .unwrap();
                                    assert_eq!(r.msg, "Hello bench");
                                })
                                    as std::pin::Pin<
                                        Box<dyn std::future::Future<Output = ()> + Send>,
                                    >
                            }) as CallFn
                        }
                    })
                    .await
                };
                for (name, s) in [("bare hyper echo", &h), ("micro Helloworld.Call", &m)] {
                    println!(
                        "{:<28} {:>8} {:>12.0} {:>8.1}us {:>8.1}us   (round {})",
                        name,
                        callers,
                        s.calls_per_sec,
                        s.p50.as_secs_f64() * 1e6,
                        s.p99.as_secs_f64() * 1e6,
                        round + 1
                    );
                }
                if callers == 16 {
                    ratio16.push(m.calls_per_sec / h.calls_per_sec);
                }
            }
        }
        let ratio = ratio16.iter().sum::<f64>() / ratio16.len() as f64;
        println!(
            "target rpc_throughput_16_vs_hyper measured {:.0}% goal >=60% {}",
            ratio * 100.0,
            if ratio >= 0.6 { "met" } else { "missed" }
        );
        client.close().await;
        server.stop().await.unwrap();
    });
}
