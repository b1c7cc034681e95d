//! Sending one delivery: `POST http://<node address>/?id=<node id>`, or `https://`
//! for nodes whose metadata says `secure=true` (with the `tls` feature).

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

#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;
#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The pooled HTTP/1.1 client deliveries go through (plain and TLS connections
/// pool apart, by scheme).
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    /// `Ok` when https deliveries can be made, else why not.
    https: Result<(), String>,
}

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
    #[cfg(not(feature = "tls"))]
    let (conn, https) = (
        conn,
        Err("https subscribers are not supported (build micro-broker with the tls feature)".into()),
    );
    #[cfg(feature = "tls")]
    let (conn, https) = https_connector(conn, opts);
    let inner = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .http1_title_case_headers(true)
        .build(conn);
    HttpClient { inner, https }
}

/// A connector for `http` and `https`, verifying subscribers as the broker's TLS
/// options say (the system's roots when none are given). If no client
/// configuration can be built, https deliveries fail with the reason.
#[cfg(feature = "tls")]
fn https_connector(
    mut conn: HttpConnector,
    opts: &HttpBrokerOptions,
) -> (Connector, Result<(), String>) {
    conn.enforce_http(false);
    let tls = opts.tls.clone().unwrap_or_default();
    let (config, https) = match tls.client() {
        Ok(c) => (c, Ok(())),
        Err(e) => {
            tracing::warn!(error = %e, "http broker: https subscribers cannot be reached");
            // never used for https: deliveries check `https` first
            let unused = micro_tls::TlsOptions::new().insecure_skip_verify(true);
            #[allow(clippy::expect_used)] // fixed inputs: the ring provider, safe defaults
            let unused = unused
                .client()
                .expect("a configuration without files builds");
            (unused, Err(format!("no TLS client configuration: {e}")))
        }
    };
    let mut rustls_config = (**config.config()).clone();
    rustls_config.alpn_protocols.clear(); // the connector sets http/1.1
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls_config)
        .https_or_http();
    let connector = match config.fixed_server_name() {
        Some(name) => builder
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone()))
            .enable_http1()
            .wrap_connector(conn),
        None => builder.enable_http1().wrap_connector(conn),
    };
    (connector, https)
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
    let secure = node.metadata.get("secure").is_some_and(|s| s == "true");
    if secure {
        if let Err(why) = &client.https {
            return Outcome::Unsupported(why.clone());
        }
    }
    let scheme = if secure { "https" } else { "http" };
    let uri = match format!("{scheme}://{}/?id={}", node.address, query_escape(&node.id))
        .parse::<Uri>()
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
        let resp = match client.inner.request(req).await {
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
