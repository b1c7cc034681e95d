//! Shared fixtures of the broker tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use micro_broker::{Event, EventHandler, HttpBroker, HttpBrokerOptions, handler_fn};
use micro_registry::MemoryRegistry;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// Collects the events a handler gets.
#[derive(Clone, Default)]
pub struct Collector {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn handler(&self) -> Arc<dyn EventHandler> {
        let events = self.events.clone();
        handler_fn(move |ev: Event| {
            let events = events.clone();
            async move {
                events.lock().push(ev);
                Ok(())
            }
        })
    }

    pub fn count(&self) -> usize {
        self.events.lock().len()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.message.body).into_owned())
            .collect()
    }
}

/// Waits until `f` holds, polling every 10 ms, at most [`WAIT`].
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Options for a broker on `registry` with quick retries.
pub fn opts(registry: &Arc<MemoryRegistry>) -> HttpBrokerOptions {
    HttpBrokerOptions::new()
        .registry(registry.clone())
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .delivery_timeout(Duration::from_secs(5))
        .shutdown_grace(Duration::from_secs(2))
}

/// A broker on `registry` with quick retries.
pub fn broker(registry: &Arc<MemoryRegistry>) -> HttpBroker {
    HttpBroker::with_options(opts(registry))
}

/// Waits until `publisher` sees `n` subscriber nodes of `topic`.
pub async fn wait_subscribers(publisher: &HttpBroker, topic: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = publisher
            .subscribers(topic)
            .await
            .map(|s| s.len())
            .unwrap_or(0);
        if seen == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publisher sees {seen} subscribers of {topic}, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `request` on a new connection to `addr` and reads the answer until the
/// server closes the connection or a full response with `Content-Length` arrived.
pub async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    read_response(&mut s).await
}

/// Reads one HTTP response (head and a `Content-Length` body) from `s`.
pub async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(len) = len {
                if buf.len() >= end + 4 + len {
                    buf.truncate(end + 4 + len);
                    break;
                }
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a raw HTTP response.
pub fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// The status line of a raw HTTP response.
pub fn status_of(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

/// A POST of `body` to `path` in go-micro's shape.
pub fn go_post(host: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Number of tasks alive in the current runtime.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A registry that records every register and deregister call on top of a
/// [`MemoryRegistry`].
pub struct Recording {
    pub inner: MemoryRegistry,
    pub calls: Mutex<Vec<Call>>,
}

/// One recorded call.
#[derive(Clone, Debug)]
pub struct Call {
    /// `register` or `deregister`.
    pub op: &'static str,
    /// The service as JSON, exactly as a registry would store it.
    pub json: String,
    /// The TTL of a register call.
    pub ttl: Option<Duration>,
}

impl Recording {
    pub fn new() -> Arc<Self> {
        Arc::new(Recording {
            inner: MemoryRegistry::new(),
            calls: Mutex::new(Vec::new()),
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }
}

#[async_trait::async_trait]
impl micro_registry::Registry for Recording {
    async fn register(
        &self,
        service: &micro_registry::ServiceRecord,
        opts: &micro_registry::RegisterOptions,
    ) -> micro_registry::Result<()> {
        self.calls.lock().push(Call {
            op: "register",
            json: serde_json::to_string(service).expect("service json"),
            ttl: opts.ttl,
        });
        self.inner.register(service, opts).await
    }

    async fn deregister(
        &self,
        service: &micro_registry::ServiceRecord,
    ) -> micro_registry::Result<()> {
        self.calls.lock().push(Call {
            op: "deregister",
            json: serde_json::to_string(service).expect("service json"),
            ttl: None,
        });
        self.inner.deregister(service).await
    }

    async fn get_service(
        &self,
        name: &str,
    ) -> micro_registry::Result<Vec<micro_registry::ServiceRecord>> {
        self.inner.get_service(name).await
    }

    async fn list_services(&self) -> micro_registry::Result<Vec<micro_registry::ServiceRecord>> {
        self.inner.list_services().await
    }

    async fn watch(
        &self,
        opts: &micro_registry::WatchOptions,
    ) -> micro_registry::Result<Box<dyn micro_registry::Watcher>> {
        self.inner.watch(opts).await
    }

    fn name(&self) -> &'static str {
        "recording"
    }
}

/// Waits until `publisher`'s registry cache follows registry events (its watch
/// starts asynchronously after the first lookup; changes made before that are only
/// seen at the cache TTL): registers probe nodes until one shows up without a
/// lookup, then removes them.
pub async fn watch_ready(publisher: &HttpBroker, registry: &MemoryRegistry) {
    use micro_registry::{MetadataMap, Node, RegisterOptions, Registry, ServiceRecord};
    let probe = |n: usize| {
        let mut md = MetadataMap::new();
        md.insert("broker".into(), "http".into());
        md.insert("topic".into(), "__probe".into());
        ServiceRecord {
            name: "micro.http.broker".into(),
            version: "ff.http.broadcast".into(),
            nodes: vec![Node {
                id: format!("__probe-{n}"),
                address: "127.0.0.1:9".into(),
                metadata: md,
            }],
            ..Default::default()
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        registry
            .register(&probe(n), &RegisterOptions::default())
            .await
            .expect("register probe");
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !publisher
            .subscribers("__probe")
            .await
            .expect("lookup")
            .is_empty()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the publisher's cache never followed events"
        );
    }
    for i in 1..=n {
        registry
            .deregister(&probe(i))
            .await
            .expect("deregister probe");
    }
    wait_subscribers(publisher, "__probe", 0).await;
}
