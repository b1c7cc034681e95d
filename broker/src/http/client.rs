//! Sending one delivery: `POST http://<node address>/?id=<node id>`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use micro_registry::Node;

use super::HttpBrokerOptions;
use super::wire::query_escape;

/// The pooled HTTP/1.1 client deliveries go through.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How much of an answer's body is read (to log it and keep the connection
/// reusable); go-micro subscribers answer with an empty body.
const MAX_ANSWER: usize = 64 << 10;

const AGENT: &str = concat!("micro-broker/", env!("CARGO_PKG_VERSION"));

/// A client with a connection pool (idle connections live 90 s, as Go's default
/// transport keeps them).
pub(crate) fn new_client(opts: &HttpBrokerOptions) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(opts.connect_timeout));
    conn.set_nodelay(true);
    conn.set_keepalive(Some(Duration::from_secs(30)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .http1_title_case_headers(true)
        .build(conn)
}

/// How one attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Answered `2xx`.
    Delivered,
    /// Answered `404`: the node has no such subscription (any more).
    Gone,
    /// Answered with another status.
    Rejected(StatusCode, String),
    /// Connecting, sending or waiting for the answer failed, or timed out.
    Failed(String),
    /// The node cannot be delivered to by this broker (https, bad address).
    Unsupported(String),
}

/// Sends `body` to `node`.
pub(crate) async fn post(
    client: &HttpClient,
    node: &Node,
    body: Bytes,
    timeout: Duration,
) -> Outcome {
    if node.metadata.get("secure").is_some_and(|s| s == "true") {
        return Outcome::Unsupported("https subscribers are not supported".into());
    }
    let uri = match format!("http://{}/?id={}", node.address, query_escape(&node.id)).parse::<Uri>()
    {
        Ok(u) if u.authority().is_some_and(|a| a.as_str() == node.address) && u.path() == "/" => u,
        _ => return Outcome::Unsupported(format!("bad subscriber address {:?}", node.address)),
    };
    let req = Request::post(uri)
        .header(HOST, node.address.as_str())
        .header(USER_AGENT, AGENT)
        .header(CONTENT_LENGTH, body.len())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body));
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::Unsupported(format!("bad request for {:?}: {e}", node.address)),
    };
    let attempt = async {
        let resp = match client.request(req).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(chain(&e)),
        };
        let status = resp.status();
        let answer = match Limited::new(resp.into_body(), MAX_ANSWER).collect().await {
            Ok(b) => b.to_bytes(),
            // The status is what counts; an unreadable answer body is only logged.
            Err(e) => Bytes::from(format!("(answer body unreadable: {e})")),
        };
        if status.is_success() {
            Outcome::Delivered
        } else if status == StatusCode::NOT_FOUND {
            Outcome::Gone
        } else {
            Outcome::Rejected(status, String::from_utf8_lossy(&answer).into_owned())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(o) => o,
        Err(_) => Outcome::Failed(format!("no answer within {timeout:?}")),
    }
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
