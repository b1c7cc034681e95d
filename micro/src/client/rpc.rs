//! [`RpcClient`]: go-micro's RPC client, with node selection, retries and the
//! client's tower stacks.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use micro_registry::MemoryRegistry;
use micro_selector::{Outcome, RegistrySelector, SelectOptions, Selector};
use micro_transport::{DialOptions, Pool, Transport};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;

use super::Client;
use super::attempt::{Conns, SecureDial};
use super::error::{CallError, CallErrorKind};
use super::layer::{self, BoxClientService};
use super::options::ClientOptions;
use super::request::{CallKind, CallTarget, ClientRequest, ClientResponse, Reply};
use super::retry::{Verdict, backoff, verdict};
use super::stream::RawStream;
use crate::RpcError;
use crate::codec::Codecs;
use crate::wire::CLIENT_ID;

/// go-micro's RPC client. See the [module docs](super).
///
/// Cheap to clone; clones share connections, selector and layers.
#[derive(Clone)]
pub struct RpcClient {
    engine: Arc<Engine>,
    /// The layers above node selection, around the engine.
    outer: Option<BoxClientService>,
}

/// What the client knows, shared by its services.
struct Core {
    selector: Arc<dyn Selector>,
    own_selector: Option<RegistrySelector>,
    transport: Arc<dyn Transport>,
    conns: Conns,
    codecs: Codecs,
    content_type: String,
    request_timeout: Duration,
    attempt_timeout: Option<Duration>,
    retries: u32,
    retryable: bool,
    broker: Option<Arc<dyn micro_broker::Broker>>,
}

/// Selection and retries: the bottom of the outer stack.
struct Engine {
    core: Arc<Core>,
    /// The layers below node selection, around one attempt.
    attempt: Option<BoxClientService>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.engine.core;
        f.debug_struct("RpcClient")
            .field("selector", &core.selector.name())
            .field("transport", &core.transport.name())
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
        let secure = SecureDial::none();
        let core = Arc::new(Core {
            selector,
            own_selector,
            conns: Conns {
                pool: Pool::new(opts.transport.clone(), opts.pool),
                dial,
                secure,
                seq: AtomicU64::new(0),
            },
            transport: opts.transport,
            codecs: opts.codecs,
            content_type: opts.content_type,
            request_timeout: opts.request_timeout,
            attempt_timeout: opts.attempt_timeout,
            retries: opts.retries,
            retryable: opts.retryable,
            broker: opts.broker,
        });
        let attempt = layer::stack(&opts.attempt_layers, || {
            let core = core.clone();
            BoxCloneSyncService::new(tower::service_fn(move |req: ClientRequest| {
                let core = core.clone();
                async move { core.attempt(req).await }
            }))
        });
        let engine = Arc::new(Engine { core, attempt });
        let outer = layer::stack(&opts.layers, || {
            let engine = engine.clone();
            BoxCloneSyncService::new(tower::service_fn(move |req: ClientRequest| {
                let engine = engine.clone();
                async move { engine.dispatch(req).await }
            }))
        });
        RpcClient { engine, outer }
    }

    /// The selector.
    pub fn selector(&self) -> &Arc<dyn Selector> {
        &self.engine.core.selector
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.engine.core.conns.pool
    }

    /// Stops the tasks of the client's own selector (its cache's watches) and
    /// closes idle pooled connections.
    pub async fn close(&self) {
        if let Some(s) = &self.engine.core.own_selector {
            s.stop().await;
        }
        self.engine.core.conns.pool.clear();
    }

    async fn run(&self, req: ClientRequest) -> Result<ClientResponse, CallError> {
        match &self.outer {
            None => self.engine.dispatch(req).await,
            Some(stack) => layer::run(stack, req).await,
        }
    }
}

impl Engine {
    async fn dispatch(&self, req: ClientRequest) -> Result<ClientResponse, CallError> {
        match req.kind {
            CallKind::Call => self.call(req).await.map(ClientResponse::Reply),
            CallKind::Stream => self.open(req).await.map(ClientResponse::Stream),
            CallKind::Publish => self
                .core
                .publish(req)
                .await
                .map(|()| ClientResponse::Published),
        }
    }

    /// One attempt on `target`: through the attempt layers when there are any.
    async fn attempt(
        &self,
        req: &ClientRequest,
        target: &CallTarget,
        attempt: u32,
        deadline: Option<Instant>,
        retryable: bool,
    ) -> Result<ClientResponse, CallError> {
        let Some(stack) = &self.attempt else {
            return self.core.attempt_on(req, target, deadline, retryable).await;
        };
        let mut a = req.clone();
        a.target = Some(target.clone());
        a.attempt = attempt;
        a.deadline = deadline;
        a.options.retryable = Some(retryable);
        layer::run(stack, a).await
    }

    /// A unary call: selection, attempts and retries within the call's deadline.
    async fn call(&self, mut req: ClientRequest) -> Result<Reply, CallError> {
        let core = &self.core;
        let start = Instant::now();
        let deadline = core.deadline(&req, start, core.request_timeout);
        req.deadline = Some(deadline);
        let retries = req.options.retries.unwrap_or(core.retries);
        let retryable = req.options.retryable.unwrap_or(core.retryable);
        let per_attempt = req
            .options
            .attempt_timeout
            .or(core.attempt_timeout)
            .unwrap_or_else(|| deadline.saturating_duration_since(start) / (retries + 1));
        let mut avoid = Avoid::default();
        let mut last: Option<CallError> = None;
        for attempt in 0..=retries {
            // Selecting counts against the deadline: a registry that hangs on a
            // first lookup must not hold the call past its timeout.
            let Ok(selected) = tokio::time::timeout_at(deadline, core.target(&req, &avoid)).await
            else {
                break;
            };
            let target = match selected {
                Ok(t) => t,
                // Every node failed during this call: the last failure says why.
                Err(e) if e.kind() == CallErrorKind::NoneAvailable && last.is_some() => break,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let budget = per_attempt.min(deadline - now);
            let result = self
                .attempt(&req, &target, attempt, Some(now + budget), retryable)
                .await;
            let e = match result.and_then(expect_reply) {
                Ok(reply) => {
                    core.mark(&target, Outcome::Success);
                    return Ok(reply);
                }
                Err(e) => e,
            };
            avoid.note(&target, e.kind(), core);
            let v = verdict(e.kind(), retryable);
            tracing::debug!(service = %req.service, endpoint = %req.endpoint, attempt, node = %target.address, retry = ?v, error = %e, "call attempt failed");
            match v {
                Verdict::Fail => return Err(e),
                Verdict::RetryNow => {}
                Verdict::RetryAfterBackoff if attempt < retries => {
                    let pause = backoff(attempt + 1);
                    if Instant::now() + pause >= deadline {
                        last = Some(e);
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
                Verdict::RetryAfterBackoff => {}
            }
            last = Some(e);
        }
        Err(last.unwrap_or_else(CallError::timeout))
    }

    /// Opens a stream: selection and the opening message, tried again on another
    /// node when the request was not sent. A stream has no deadline unless the call
    /// gave one (a timeout or an inherited deadline): streams live long. With one,
    /// everything the stream waits for is bounded by it, from node selection and
    /// dialling to each `send` and `recv`.
    async fn open(&self, mut req: ClientRequest) -> Result<RawStream, CallError> {
        let core = &self.core;
        let deadline = (req.options.timeout.is_some() || req.options.deadline.is_some())
            .then(|| core.deadline(&req, Instant::now(), Duration::MAX));
        req.deadline = deadline;
        let retries = req.options.retries.unwrap_or(core.retries);
        let mut avoid = Avoid::default();
        let mut last: Option<CallError> = None;
        for attempt in 0..=retries {
            // Selecting counts against the deadline, as for calls: a registry that
            // hangs must not hold the opening past it.
            let selecting = core.target(&req, &avoid);
            let selected = match deadline {
                None => selecting.await,
                Some(d) => match tokio::time::timeout_at(d, selecting).await {
                    Ok(selected) => selected,
                    Err(_) => return Err(last.unwrap_or_else(CallError::timeout)),
                },
            };
            let target = match selected {
                Ok(t) => t,
                Err(e) if e.kind() == CallErrorKind::NoneAvailable && last.is_some() => break,
                Err(e) => return Err(e),
            };
            let result = self.attempt(&req, &target, attempt, deadline, false).await;
            let e = match result {
                Ok(ClientResponse::Stream(s)) => {
                    core.mark(&target, Outcome::Success);
                    return Ok(s);
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => e,
            };
            avoid.note(&target, e.kind(), core);
            // Only a stream that was not opened is tried elsewhere.
            if verdict(e.kind(), false) == Verdict::Fail {
                return Err(e);
            }
            last = Some(e);
        }
        Err(last.unwrap_or_else(|| CallError::none_available(&req.service)))
    }
}

impl Core {
    /// The call's deadline: `default` from `start` (or the call's own timeout), no
    /// later than an inherited deadline.
    fn deadline(&self, req: &ClientRequest, start: Instant, default: Duration) -> Instant {
        let timeout = req.options.timeout.unwrap_or(default);
        let own = start.checked_add(timeout).unwrap_or_else(far_future);
        match req.options.deadline {
            Some(d) => own.min(d),
            None => own,
        }
    }

    /// The bottom of the attempt stack.
    async fn attempt(&self, req: ClientRequest) -> Result<ClientResponse, CallError> {
        let Some(target) = req.target.clone() else {
            return Err(CallError::new(
                CallErrorKind::Other,
                RpcError::internal(CLIENT_ID, "attempt without a target"),
            ));
        };
        let retryable = req.options.retryable.unwrap_or(self.retryable);
        self.attempt_on(&req, &target, req.deadline, retryable)
            .await
    }

    async fn attempt_on(
        &self,
        req: &ClientRequest,
        target: &CallTarget,
        deadline: Option<Instant>,
        retryable: bool,
    ) -> Result<ClientResponse, CallError> {
        match req.kind {
            CallKind::Call => {
                let budget = deadline
                    .map(|d| d.saturating_duration_since(Instant::now()))
                    .unwrap_or(self.request_timeout);
                self.conns
                    .call(target, req, budget, retryable)
                    .await
                    .map(ClientResponse::Reply)
            }
            CallKind::Stream => self
                .conns
                .open(&*self.transport, target, req, deadline)
                .await
                .map(ClientResponse::Stream),
            CallKind::Publish => Err(CallError::new(
                CallErrorKind::Other,
                RpcError::internal(CLIENT_ID, "a publish has no attempts"),
            )),
        }
    }

    /// The target of one attempt: a fixed address or a selected node, avoiding the
    /// nodes that failed during this call (and those that timed out, while another
    /// is left).
    async fn target(&self, req: &ClientRequest, avoid: &Avoid) -> Result<CallTarget, CallError> {
        if avoid.slow.is_empty() {
            return self.pick(req, &avoid.dead).await;
        }
        let both: Vec<String> = avoid.dead.iter().chain(&avoid.slow).cloned().collect();
        match self.pick(req, &both).await {
            Err(e) if e.kind() == CallErrorKind::NoneAvailable => self.pick(req, &avoid.dead).await,
            r => r,
        }
    }

    async fn pick(&self, req: &ClientRequest, avoid: &[String]) -> Result<CallTarget, CallError> {
        let addresses = &req.options.addresses;
        if !addresses.is_empty() {
            let usable: Vec<&String> = addresses.iter().filter(|a| !avoid.contains(a)).collect();
            let Some(addr) = usable.get(fastrand::usize(..usable.len().max(1))) else {
                return Err(CallError::none_available(&req.service));
            };
            return Ok(CallTarget {
                node_id: String::new(),
                address: (*addr).clone(),
                secure: self.conns.secure.all,
            });
        }
        let mut sel = SelectOptions::new();
        for f in &req.options.filters {
            sel = sel.filter(f.clone());
        }
        for a in avoid {
            sel = sel.avoid(a.clone());
        }
        let mut next = self
            .selector
            .select(&req.service, &sel)
            .await
            .map_err(|e| match e {
                micro_selector::Error::NotFound => CallError::not_found(&req.service),
                micro_selector::Error::NoneAvailable => CallError::none_available(&req.service),
                e => CallError::registry(&req.service, e),
            })?;
        let node = next
            .next()
            .map_err(|_| CallError::none_available(&req.service))?;
        Ok(CallTarget {
            node_id: node.id.clone(),
            address: node.address.clone(),
            secure: self.conns.secure.all
                || node.metadata.get("secure").is_some_and(|s| s == "true"),
        })
    }

    fn mark(&self, target: &CallTarget, outcome: Outcome) {
        if !target.node_id.is_empty() {
            self.selector.mark(&target.node_id, outcome);
        }
    }

    async fn publish(&self, req: ClientRequest) -> Result<(), CallError> {
        let topic = req.endpoint.clone();
        let failed = |e: micro_broker::Error| {
            let code = if matches!(e, micro_broker::Error::NoSubscribers(_)) {
                404
            } else {
                500
            };
            CallError::new(
                CallErrorKind::Broker,
                RpcError::new(CLIENT_ID, format!("publish to {topic}: {e}"), code),
            )
            .with_source(e)
        };
        let Some(broker) = &self.broker else {
            return Err(CallError::new(
                CallErrorKind::Broker,
                RpcError::internal(CLIENT_ID, "publish: the client has no broker"),
            ));
        };
        let mut header = req.event_header;
        header.insert("Content-Type".into(), req.content_type.to_string());
        header.insert("Micro-Topic".into(), topic.to_string());
        header.insert("Micro-ID".into(), uuid::Uuid::new_v4().to_string());
        let msg = micro_broker::Envelope {
            header,
            body: req.body,
        };
        broker.connect().await.map_err(failed)?;
        broker.publish(&topic, msg).await.map_err(failed)
    }
}

/// The nodes a call stays away from: those that failed at the transport level (or
/// whose layers refused), and those that timed out (tried again only when no other
/// is left).
#[derive(Default)]
struct Avoid {
    dead: Vec<String>,
    slow: Vec<String>,
}

impl Avoid {
    /// Records what a failed attempt says about its node, and tells the selector
    /// when the node itself failed. An answer, even one that could not be read,
    /// says the node works.
    fn note(&mut self, target: &CallTarget, kind: CallErrorKind, core: &Core) {
        let key = target.key().to_owned();
        match kind {
            CallErrorKind::Connect | CallErrorKind::Send | CallErrorKind::Receive => {
                core.mark(target, Outcome::Failure);
                self.dead.push(key);
            }
            CallErrorKind::Rejected => self.dead.push(key),
            CallErrorKind::Timeout => self.slow.push(key),
            _ => {}
        }
    }
}

fn expect_reply(r: ClientResponse) -> Result<Reply, CallError> {
    match r {
        ClientResponse::Reply(reply) => Ok(reply),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(r: &ClientResponse) -> CallError {
    CallError::new(
        CallErrorKind::Other,
        RpcError::internal(CLIENT_ID, format!("a layer answered with {r:?}")),
    )
}

/// A deadline no call reaches (a timeout too long for the clock).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

#[async_trait]
impl Client for RpcClient {
    async fn call(&self, req: ClientRequest) -> Result<Reply, CallError> {
        if self.outer.is_none() {
            return self.engine.call(req).await;
        }
        self.run(req).await.and_then(expect_reply)
    }

    async fn stream(&self, req: ClientRequest) -> Result<RawStream, CallError> {
        match self.run(req).await? {
            ClientResponse::Stream(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn publish(&self, req: ClientRequest) -> Result<(), CallError> {
        match self.run(req).await? {
            ClientResponse::Published => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn codecs(&self) -> &Codecs {
        &self.engine.core.codecs
    }

    fn content_type(&self) -> &str {
        &self.engine.core.content_type
    }

    fn name(&self) -> &'static str {
        "mucp"
    }
}
