//! Shared fixtures of the micro tests: a test handler and servers on loopback.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use micro::client::{ClientOptions, RpcClient};
use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
use micro::server::{Handler, Routes, RpcServer, Server, ServerOptions, Sink, Streaming};
use micro::{Context, RpcError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallResponse {
    pub msg: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    pub millis: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailRequest {
    pub code: i32,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaResponse {
    pub metadata: BTreeMap<String, String>,
}

/// A reply whose encoding always fails (go-micro's TestCodecWriteError).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Unencodable {}

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Num {
    pub n: i64,
}

/// The test handler: `Test.Call`, `Test.Slow`, `Test.Panic`, `Test.Fail`,
/// `Test.Meta`, `Test.Sum` (client stream), `Test.Count` (server stream),
/// `Test.Echo` (bidi). `served` counts completed calls of this instance.
#[derive(Default)]
pub struct Test {
    pub id: String,
    pub served: AtomicUsize,
    /// Runs of `Test.Fail`.
    pub failed: AtomicUsize,
}

impl Test {
    pub fn named(id: &str) -> Self {
        Test {
            id: id.to_owned(),
            served: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }

    async fn call(&self, _: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(CallResponse {
            msg: format!("Hello {} from {}", req.name, self.id),
        })
    }

    async fn slow(&self, _: Context, req: SlowRequest) -> Result<Empty, RpcError> {
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(Empty {})
    }

    async fn panic(&self, _: Context, _: Empty) -> Result<Empty, RpcError> {
        panic!("the handler blew up");
    }

    async fn fail(&self, _: Context, req: FailRequest) -> Result<Empty, RpcError> {
        self.failed.fetch_add(1, Ordering::SeqCst);
        Err(RpcError::new("test", req.detail, req.code))
    }

    async fn meta(&self, ctx: Context, _: Empty) -> Result<MetaResponse, RpcError> {
        let metadata = ctx
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(MetaResponse { metadata })
    }

    async fn unencodable(&self, _: Context, _: Empty) -> Result<Unencodable, RpcError> {
        Ok(Unencodable {})
    }

    async fn sum(&self, _: Context, mut nums: Streaming<Num>) -> Result<Num, RpcError> {
        let mut n = 0;
        while let Some(x) = nums.recv().await? {
            n += x.n;
        }
        Ok(Num { n })
    }

    async fn count(&self, _: Context, req: Num, mut out: Sink<Num>) -> Result<(), RpcError> {
        if req.n < 0 {
            return Err(RpcError::bad_request("test", "negative count"));
        }
        for i in 0..req.n {
            out.send(&Num { n: i }).await?;
        }
        Ok(())
    }

    async fn echo(
        &self,
        _: Context,
        mut inp: Streaming<Num>,
        mut out: Sink<Num>,
    ) -> Result<(), RpcError> {
        while let Some(x) = inp.recv().await? {
            if x.n < 0 {
                return Err(RpcError::bad_request("test", "negative number"));
            }
            out.send(&x).await?;
        }
        Ok(())
    }
}

impl Handler for Test {
    const NAME: &'static str = "Test";

    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call)
            .unary("Slow", Self::slow)
            .unary("Panic", Self::panic)
            .unary("Fail", Self::fail)
            .unary("Meta", Self::meta)
            .unary("Unencodable", Self::unencodable)
            .client_stream("Sum", Self::sum)
            .server_stream("Count", Self::count)
            .bidi("Echo", Self::echo);
    }
}

/// Server options for tests: loopback, service `test`, fast drain.
pub fn options(registry: Arc<dyn Registry>) -> ServerOptions {
    ServerOptions::new()
        .name("test")
        .address("127.0.0.1:0")
        .registry(registry)
        .drain_linger(Duration::from_millis(50))
        .drain_timeout(Duration::from_secs(5))
}

/// A started server with a `Test` handler.
pub async fn start(opts: ServerOptions, id: &str) -> (RpcServer, Arc<Test>) {
    let handler = Arc::new(Test::named(id));
    let server = RpcServer::new(opts);
    server
        .handle(micro::server::HandlerSet::from_arc(handler.clone()))
        .unwrap();
    server.start().await.unwrap();
    (server, handler)
}

/// A client on `registry`.
pub fn client(registry: Arc<dyn Registry>) -> RpcClient {
    RpcClient::new(ClientOptions::new().registry(registry))
}

pub fn memory() -> Arc<dyn Registry> {
    Arc::new(MemoryRegistry::new())
}

/// A raw HTTP/1.1 exchange on one connection, for wire tests.
pub struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// A parsed raw response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawConn {
    pub async fn connect(addr: &str) -> RawConn {
        RawConn {
            stream: tokio::net::TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response (Content-Length framed), or `None` when the server closed
    /// the connection first. Gives up after 5 s.
    pub async fn read(&mut self) -> Option<RawResponse> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let mut lines = head.split("\r\n");
                let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Some(RawResponse {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A request shaped exactly like go-micro's Go client writes it.
pub fn go_request(
    endpoint: &str,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        r.push_str(&format!("Accept: {ct}\r\nContent-Type: {ct}\r\n"));
    }
    r.push_str(&format!(
        "Micro-Endpoint: {endpoint}\r\nMicro-Id: 0\r\nMicro-Method: {endpoint}\r\nMicro-Service: test\r\nTimeout: 5000000000\r\n"
    ));
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Registers a node of `service` at `addr`.
pub async fn register(registry: &Arc<dyn Registry>, service: &str, id: &str, addr: &str) {
    let mut node = Node::new(format!("{service}-{id}"), addr.to_owned());
    node.metadata.insert("protocol".into(), "mucp".into());
    let svc = ServiceRecord {
        name: service.into(),
        version: "latest".into(),
        nodes: vec![node],
        ..Default::default()
    };
    registry
        .register(&svc, &RegisterOptions::default())
        .await
        .unwrap();
}
