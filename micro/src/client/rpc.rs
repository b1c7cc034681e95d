//! [`RpcClient`]: go-micro's RPC client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use micro_registry::{MemoryRegistry, Registry};
use micro_selector::{Outcome, RegistrySelector, SelectOptions, Selector};
use micro_transport::{
    DialOptions, Header, HttpTransport, Message as TransportMessage, Pool, PoolOptions, Transport,
};
use tokio::time::Instant;

use super::retry::{RetryPolicy, backoff, is_transport_error, retry_on_transport_and_timeout};
use super::stream::RawStream;
use super::{CallOptions, Client, Request, Response, ResponseFuture, transport_error};
use crate::RpcError;
use crate::codec::{Codecs, DEFAULT_CONTENT_TYPE};
use crate::wire::{self, CLIENT_ID, CLIENT_TRANSPORT_ID};

/// Where one attempt goes.
#[derive(Clone, Debug)]
pub struct CallTarget {
    /// The node's id (empty for `with_address` calls).
    pub node_id: String,
    /// The node's address.
    pub address: String,
    /// Whether the node is dialled with TLS: its metadata says `secure=true`, or the
    /// client dials every node with TLS ([`TlsOptions::dial_all`](micro_tls::TlsOptions::dial_all)).
    pub secure: bool,
}

/// The function one attempt runs; [`CallWrapper`]s wrap it.
pub type CallFn = Arc<dyn Fn(CallTarget, Request, Duration) -> ResponseFuture + Send + Sync>;

/// Middleware around every attempt (go-micro's `CallWrapper`): gets the next
/// function and returns one that runs before and after it. It sees the node
/// chosen for the attempt.
pub type CallWrapper = Arc<dyn Fn(CallFn) -> CallFn + Send + Sync>;

/// Options of an [`RpcClient`].
#[derive(Clone)]
pub struct ClientOptions {
    selector: Option<Arc<dyn Selector>>,
    registry: Option<Arc<dyn Registry>>,
    transport: Arc<dyn Transport>,
    pool: PoolOptions,
    codecs: Codecs,
    content_type: String,
    request_timeout: Duration,
    attempt_timeout: Option<Duration>,
    dial_timeout: Duration,
    retries: u32,
    retry: RetryPolicy,
    wrappers: Vec<CallWrapper>,
    broker: Option<Arc<dyn micro_broker::Broker>>,
    #[cfg(feature = "tls")]
    tls: Option<micro_tls::TlsOptions>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            selector: None,
            registry: None,
            transport: Arc::new(HttpTransport::new()),
            pool: PoolOptions::default(),
            codecs: Codecs::new(),
            content_type: DEFAULT_CONTENT_TYPE.into(),
            request_timeout: Duration::from_secs(5),
            attempt_timeout: None,
            dial_timeout: Duration::from_secs(5),
            retries: 1,
            retry: retry_on_transport_and_timeout(),
            wrappers: Vec::new(),
            broker: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("transport", &self.transport.name())
            .field("content_type", &self.content_type)
            .field("request_timeout", &self.request_timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The selector. Default: a [`RegistrySelector`] over the registry.
    pub fn selector(mut self, s: Arc<dyn Selector>) -> Self {
        self.selector = Some(s);
        self
    }

    /// The registry the default selector reads. Default: a new [`MemoryRegistry`].
    pub fn registry(mut self, r: Arc<dyn Registry>) -> Self {
        self.registry = Some(r);
        self
    }

    /// The transport. Default: [`HttpTransport`].
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = t;
        self
    }

    /// How nodes that serve TLS are dialled: the CA (or system roots) their
    /// certificates are verified against, the client certificate presented for
    /// mutual TLS, and whether every node is dialled with TLS
    /// ([`dial_all`](micro_tls::TlsOptions::dial_all)). Nodes whose registry record
    /// says `secure=true` are dialled with TLS, others in plain TCP, on separate
    /// pooled connections. Default: secure nodes verified against the system's
    /// trusted roots, no client certificate.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: micro_tls::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connection pool options. Default: 100 idle connections per address, 60 s TTL.
    pub fn pool(mut self, p: PoolOptions) -> Self {
        self.pool = p;
        self
    }

    /// The codec table. Default: [`Codecs::new`].
    pub fn codecs(mut self, c: Codecs) -> Self {
        self.codecs = c;
        self
    }

    /// Content type of typed requests. Default: `application/json`.
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = ct.into();
        self
    }

    /// How long a call may take, retries included. Default: 5 s (go-micro v4).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Longest one attempt may take (go-micro v5's `ConnectionTimeout`); it is also
    /// what the `Timeout` header tells the server. An attempt that runs out is a 408,
    /// which the default policy retries, on another node when there is one. Useful
    /// against servers that can lose a request (go-micro's can, rarely, on a
    /// kept-alive connection). Default: none, an attempt may use what is left of the
    /// call's timeout.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// How long connecting may take. Default: 5 s.
    pub fn dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = d;
        self
    }

    /// Retries after a failed attempt. Default: 1 (go-micro v4).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Which failures are retried. Default: [`retry_on_transport_and_timeout`].
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// The broker events are published through. Default: none (publishing fails
    /// with a clear error).
    pub fn broker(mut self, b: Arc<dyn micro_broker::Broker>) -> Self {
        self.broker = Some(b);
        self
    }

    /// Adds a call wrapper; the first added runs outermost.
    pub fn wrap(mut self, w: CallWrapper) -> Self {
        self.wrappers.push(w);
        self
    }
}

/// go-micro's RPC client. See the [module docs](super).
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    selector: Arc<dyn Selector>,
    own_selector: Option<RegistrySelector>,
    transport: Arc<dyn Transport>,
    base: Arc<Base>,
    codecs: Codecs,
    content_type: String,
    request_timeout: Duration,
    attempt_timeout: Option<Duration>,
    retries: u32,
    retry: RetryPolicy,
    call_fn: Option<CallFn>,
    broker: Option<Arc<dyn micro_broker::Broker>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("selector", &self.inner.selector.name())
            .field("transport", &self.inner.transport.name())
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client with the given options.
    pub fn new(opts: ClientOptions) -> Self {
        let (selector, own_selector): (Arc<dyn Selector>, _) = match opts.selector {
            Some(s) => (s, None),
            None => {
                let registry = opts
                    .registry
                    .unwrap_or_else(|| Arc::new(MemoryRegistry::new()));
                let s = RegistrySelector::new(registry);
                (Arc::new(s.clone()), Some(s))
            }
        };
        let dial = DialOptions {
            connect_timeout: opts.dial_timeout,
            ..DialOptions::default()
        };
        #[cfg(feature = "tls")]
        let secure = SecureDial::new(&dial, opts.tls.as_ref());
        #[cfg(not(feature = "tls"))]
        let secure = SecureDial::default();
        let base = Arc::new(Base {
            pool: Pool::new(opts.transport.clone(), opts.pool),
            dial,
            secure,
            seq: AtomicU64::new(0),
        });
        let mut inner = Inner {
            selector,
            own_selector,
            transport: opts.transport,
            base: base.clone(),
            codecs: opts.codecs,
            content_type: opts.content_type,
            request_timeout: opts.request_timeout,
            attempt_timeout: opts.attempt_timeout,
            retries: opts.retries,
            retry: opts.retry,
            call_fn: None,
            broker: opts.broker,
        };
        if !opts.wrappers.is_empty() {
            let mut f: CallFn = Arc::new(move |target, req, timeout| {
                let base = base.clone();
                Box::pin(async move {
                    let id = base.seq.fetch_add(1, Ordering::Relaxed);
                    base.attempt(&target, &req, timeout, id).await
                })
            });
            for w in opts.wrappers.iter().rev() {
                f = w(f);
            }
            inner.call_fn = Some(f);
        }
        RpcClient {
            inner: Arc::new(inner),
        }
    }

    /// The selector.
    pub fn selector(&self) -> &Arc<dyn Selector> {
        &self.inner.selector
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.base.pool
    }

    /// Stops the tasks of the client's own selector (its cache's watches) and
    /// closes idle pooled connections.
    pub async fn close(&self) {
        if let Some(s) = &self.inner.own_selector {
            s.stop().await;
        }
        self.inner.base.pool.clear();
    }

    fn next_id(&self) -> u64 {
        self.inner.base.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The target of one attempt: a fixed address or a selected node.
    async fn target(
        &self,
        req: &Request,
        opts: &CallOptions,
        avoid: &[String],
    ) -> Result<CallTarget, RpcError> {
        if !opts.addresses.is_empty() {
            let usable: Vec<&String> = opts
                .addresses
                .iter()
                .filter(|a| !avoid.contains(a))
                .collect();
            let Some(addr) = usable.get(fastrand::usize(..usable.len().max(1))) else {
                return Err(none_available(&req.service));
            };
            return Ok(CallTarget {
                node_id: String::new(),
                address: (*addr).clone(),
                secure: self.inner.base.secure.all,
            });
        }
        let mut sel = SelectOptions::new();
        for f in &opts.filters {
            sel = sel.filter(f.clone());
        }
        for a in avoid {
            sel = sel.avoid(a.clone());
        }
        let mut next = self
            .inner
            .selector
            .select(&req.service, &sel)
            .await
            .map_err(|e| match e {
                micro_selector::Error::NotFound => {
                    RpcError::internal(CLIENT_ID, format!("service {}: not found", req.service))
                }
                micro_selector::Error::NoneAvailable => none_available(&req.service),
                e => RpcError::internal(
                    CLIENT_ID,
                    format!("error selecting {} node: {e}", req.service),
                ),
            })?;
        let node = next.next().map_err(|_| none_available(&req.service))?;
        Ok(CallTarget {
            node_id: node.id.clone(),
            address: node.address.clone(),
            secure: self.inner.base.secure.all
                || node.metadata.get("secure").is_some_and(|s| s == "true"),
        })
    }

    /// A target avoiding `dead` nodes, and `slow` ones while another is left.
    async fn target_avoiding(
        &self,
        req: &Request,
        opts: &CallOptions,
        dead: &[String],
        slow: &[String],
    ) -> Result<CallTarget, RpcError> {
        if slow.is_empty() {
            return self.target(req, opts, dead).await;
        }
        let both: Vec<String> = dead.iter().chain(slow).cloned().collect();
        match self.target(req, opts, &both).await {
            Err(e) if e.detail.ends_with("none available") => self.target(req, opts, dead).await,
            r => r,
        }
    }

    fn mark(&self, target: &CallTarget, outcome: Outcome) {
        if !target.node_id.is_empty() {
            self.inner.selector.mark(&target.node_id, outcome);
        }
    }
}

fn none_available(service: &str) -> RpcError {
    RpcError::internal(
        CLIENT_ID,
        format!("error selecting {service} node: none available"),
    )
}

/// How nodes that serve TLS are dialled.
struct SecureDial {
    /// The dial options with TLS, or why there are none.
    dial: Result<DialOptions, String>,
    /// Dial every node with TLS.
    all: bool,
}

impl Default for SecureDial {
    fn default() -> Self {
        SecureDial {
            dial: Err("the node serves TLS; build micro with the tls feature to call it".into()),
            all: false,
        }
    }
}

impl SecureDial {
    #[cfg(feature = "tls")]
    fn new(plain: &DialOptions, tls: Option<&micro_tls::TlsOptions>) -> Self {
        let opts = tls.cloned().unwrap_or_default();
        let dial = match opts.client() {
            Ok(c) => Ok(DialOptions {
                tls: Some(c.into()),
                ..plain.clone()
            }),
            Err(e) => {
                tracing::warn!(error = %e, "client: no TLS configuration; nodes serving TLS cannot be called");
                Err(format!(
                    "the node serves TLS and the client has no TLS configuration: {e}"
                ))
            }
        };
        SecureDial {
            dial,
            all: opts.dials_all(),
        }
    }
}

/// The part of the client an attempt needs.
struct Base {
    pool: Pool,
    dial: DialOptions,
    secure: SecureDial,
    /// The `Micro-Id` counter.
    seq: AtomicU64,
}

impl Base {
    /// The dial options for `target`: with TLS for secure nodes.
    fn dial_for(&self, target: &CallTarget) -> Result<&DialOptions, RpcError> {
        if !target.secure {
            return Ok(&self.dial);
        }
        self.secure.dial.as_ref().map_err(|why| {
            RpcError::internal(
                CLIENT_TRANSPORT_ID,
                format!("connection error: {}: {why}", target.address),
            )
        })
    }

    /// Sends `req` to `target` over a pooled connection and reads the reply.
    async fn attempt(
        &self,
        target: &CallTarget,
        req: &Request,
        timeout: Duration,
        id: u64,
    ) -> Result<Response, RpcError> {
        let msg = request_message(req, timeout, id);
        let dial = self.dial_for(target)?;
        let run = async {
            // A pooled connection the server closed meanwhile fails before any reply:
            // one more try on a fresh connection, without counting an attempt.
            for fresh in [false, true] {
                let conn = self
                    .pool
                    .get(&target.address, dial)
                    .await
                    .map_err(|e| transport_error("connection error", &e))?;
                let reused = conn.is_reused();
                let sent = conn.socket().send(&msg).await;
                let reply = match sent {
                    Ok(()) => conn.socket().recv().await,
                    Err(e) => Err(e),
                };
                match reply {
                    Ok(rsp) => {
                        conn.release();
                        return Ok(rsp);
                    }
                    Err(e) if reused && !fresh && stale_connection(&e) => {
                        tracing::debug!(address = %target.address, error = %e, "pooled connection was closed; redialling");
                        continue;
                    }
                    Err(e) => {
                        return Err(transport_error("", &e));
                    }
                }
            }
            Err(RpcError::internal(CLIENT_TRANSPORT_ID, "connection closed"))
        };
        let rsp = match tokio::time::timeout(timeout, run).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(RpcError::timeout(
                    CLIENT_ID,
                    "call timeout: context deadline exceeded",
                ));
            }
        };
        if let Some(err) = wire::micro_header(&rsp.header, wire::MICRO_ERROR) {
            return Err(RpcError::parse(err));
        }
        Ok(Response {
            header: rsp.header,
            body: rsp.body,
        })
    }
}

fn stale_connection(e: &micro_transport::Error) -> bool {
    matches!(
        e,
        micro_transport::Error::Closed | micro_transport::Error::Io(_)
    )
}

/// The transport message of a unary request, with go-micro's headers.
fn request_message(req: &Request, timeout: Duration, id: u64) -> TransportMessage {
    let mut header = Header::with_capacity(req.metadata.len() + 8);
    for (k, v) in req.metadata.iter() {
        if !wire::is_hop_header(k) {
            header.insert(k, v);
        }
    }
    header.insert(wire::TIMEOUT, timeout.as_nanos().to_string());
    header.insert(wire::CONTENT_TYPE, req.content_type.as_str());
    header.insert(wire::ACCEPT, req.content_type.as_str());
    header.insert(wire::MICRO_ID, id.to_string());
    header.insert(wire::MICRO_SERVICE, req.service.as_str());
    header.insert(wire::MICRO_METHOD, req.endpoint.as_str());
    header.insert(wire::MICRO_ENDPOINT, req.endpoint.as_str());
    TransportMessage {
        header,
        body: req.body.clone(),
    }
}

#[async_trait]
impl Client for RpcClient {
    async fn call(&self, req: Request, opts: CallOptions) -> Result<Response, RpcError> {
        let inner = &self.inner;
        let now = Instant::now();
        let mut deadline = now + opts.timeout.unwrap_or(inner.request_timeout);
        if let Some(d) = opts.deadline {
            deadline = deadline.min(d);
        }
        let retries = opts.retries.unwrap_or(inner.retries);
        let attempt_timeout = opts.attempt_timeout.or(inner.attempt_timeout);
        // Nodes that failed at the transport level during this call are not tried
        // again; nodes that timed out are tried again only when no other is left.
        let mut dead: Vec<String> = Vec::new();
        let mut slow: Vec<String> = Vec::new();
        let mut last: Option<RpcError> = None;
        for attempt in 0..=retries {
            if attempt > 0 {
                let pause = backoff(attempt);
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            // Selecting counts against the deadline: a registry that hangs on a
            // first lookup must not hold the call past its timeout.
            let Ok(selected) =
                tokio::time::timeout_at(deadline, self.target_avoiding(&req, &opts, &dead, &slow))
                    .await
            else {
                break;
            };
            let target = match selected {
                Ok(t) => t,
                // Every node failed at the transport level during this call.
                Err(e) if !dead.is_empty() && e.detail.ends_with("none available") => break,
                Err(e) => return Err(e),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let budget = attempt_timeout.map_or(remaining, |t| t.min(remaining));
            let id = self.next_id();
            let res = match &inner.call_fn {
                None => inner.base.attempt(&target, &req, budget, id).await,
                Some(f) => f(target.clone(), req.clone(), budget).await,
            };
            match res {
                Ok(rsp) => {
                    self.mark(&target, Outcome::Success);
                    return Ok(rsp);
                }
                Err(e) => {
                    let key = if target.node_id.is_empty() {
                        target.address.clone()
                    } else {
                        target.node_id.clone()
                    };
                    if is_transport_error(&e) {
                        self.mark(&target, Outcome::Failure);
                        dead.push(key);
                    } else if e.code == 408 {
                        slow.push(key);
                    }
                    let retry = (inner.retry)(&e, attempt);
                    tracing::debug!(service = %req.service, endpoint = %req.endpoint, attempt, retry, error = %e, "call attempt failed");
                    if !retry {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            RpcError::timeout(CLIENT_ID, "call timeout: context deadline exceeded")
        }))
    }

    async fn stream(&self, req: Request, opts: CallOptions) -> Result<RawStream, RpcError> {
        let inner = &self.inner;
        let retries = opts.retries.unwrap_or(inner.retries);
        let mut avoid: Vec<String> = Vec::new();
        let mut last = None;
        for _ in 0..=retries {
            let target = match self.target(&req, &opts, &avoid).await {
                Ok(t) => t,
                Err(e) if !avoid.is_empty() => return Err(last.unwrap_or(e)),
                Err(e) => return Err(e),
            };
            let dial = inner.base.dial_for(&target)?;
            match inner.transport.dial(&target.address, dial).await {
                Ok(socket) => {
                    self.mark(&target, Outcome::Success);
                    let id = self.next_id();
                    return RawStream::open(socket, &req, id, opts.timeout).await;
                }
                Err(e) => {
                    self.mark(&target, Outcome::Failure);
                    avoid.push(if target.node_id.is_empty() {
                        target.address
                    } else {
                        target.node_id
                    });
                    last = Some(transport_error("connection error", &e));
                }
            }
        }
        Err(last.unwrap_or_else(|| none_available(&req.service)))
    }

    async fn publish(&self, topic: &str, msg: micro_broker::Message) -> Result<(), RpcError> {
        let Some(broker) = &self.inner.broker else {
            return Err(RpcError::internal(
                CLIENT_ID,
                "publish: the client has no broker",
            ));
        };
        let failed = |e: micro_broker::Error| {
            let code = if matches!(e, micro_broker::Error::NoSubscribers(_)) {
                404
            } else {
                500
            };
            RpcError::new(CLIENT_ID, format!("publish to {topic}: {e}"), code)
        };
        broker.connect().await.map_err(failed)?;
        broker.publish(topic, msg).await.map_err(failed)
    }

    fn codecs(&self) -> &Codecs {
        &self.inner.codecs
    }

    fn content_type(&self) -> &str {
        &self.inner.content_type
    }

    fn name(&self) -> &'static str {
        "mucp"
    }
}
