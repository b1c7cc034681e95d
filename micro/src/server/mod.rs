//! The RPC server: serves [`Handler`]s over a transport, registers itself, keeps the
//! registration fresh, and shuts down gracefully.
//!
//! [`RpcServer`] speaks go-micro's RPC protocol ("mucp"): Go clients call it like a
//! go-micro server, and it registers the same record a go-micro server would (node
//! id `<name>-<uuid>`, metadata `protocol=mucp` and the component names, every
//! endpoint with its request and response shapes).
//!
//! **Lifecycle.** [`Server::start`] listens and starts accepting, then registers
//! (three attempts with go-micro's backoff; a registry that is down does not stop the
//! server, the loop retries), so a caller that finds the node at once is served at
//! once; it re-registers every `register_interval` (30 s) with a `register_ttl`
//! (90 s). An optional register check runs before each registration; while it fails
//! the server stays deregistered. [`Server::stop`] deregisters **first** (always,
//! whatever the server believes it registered: a registration that timed out may
//! still have been written) and returns that error, keeps serving for
//! `drain_linger` (late callers whose caches still hold the node are served), then
//! stops accepting, closes each connection once it has been quiet for a moment, and
//! waits up to `drain_timeout` for in-flight calls and streams before cutting them
//! off. Nothing it started is left running.
//!
//! Every task the server starts is owned: `stop` cancels and awaits it, and dropping
//! the last handle of a running server cancels it at once (its registration then
//! expires with its TTL, as after a crash; `stop` is the graceful way). A listener
//! that dies or a registrar that panics is not swallowed: [`Server::failure`]
//! completes with the reason, and [`Service::run`](crate::Service::run) stops the
//! service and returns it.
//!
//! **Errors.** An unknown endpoint, an ill-formed endpoint name, an unsupported
//! content type, a body that does not decode, a handler error, a handler panic and a
//! passed deadline each get a go-micro error in `Micro-Error` (ids
//! `go.micro.server` or the handler's own), and the connection keeps serving.

mod conn;
mod handler;
pub mod method;
mod options;
mod register;
mod request;
mod stack;
mod stream;
mod subscriber;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use micro_broker::{Broker, SubscribeOptions, Subscription, handler_fn};
use micro_registry::Node;
use micro_transport::Listener;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use conn::{Dispatch, EventSink};
pub use handler::{BoxFuture, Handler, HandlerSet, Payload, Routes};
pub use options::ServerOptions;
pub use register::RegisterCheck;
pub use request::{ServerKind, ServerRequest, ServerResponse};
pub use stack::{BoxServerService, rpc_error_from_layer};
pub use stream::{Sink, Streaming};
pub use subscriber::Subscriber;
pub(crate) use subscriber::to_transport;

use crate::Error;

/// The default server name (go-micro's `DefaultName`).
pub const DEFAULT_NAME: &str = "go.micro.server";
/// The default version (go-micro's `DefaultVersion`).
pub const DEFAULT_VERSION: &str = "latest";
/// Default re-registration interval (go-micro's `DefaultRegisterInterval`).
pub const DEFAULT_REGISTER_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a stopping server keeps serving after deregistering (see
/// [`ServerOptions::drain_linger`]).
pub const DEFAULT_DRAIN_LINGER: Duration = Duration::from_secs(2);
/// Default registration TTL (go-micro's `DefaultRegisterTTL`).
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(90);

/// A server: serves handlers and owns its registration. Object-safe.
#[async_trait]
pub trait Server: Send + Sync + 'static {
    /// Adds a handler's endpoints. Fails once the server has started.
    fn handle(&self, handler: HandlerSet) -> Result<(), Error>;

    /// Adds a subscriber. Fails once the server has started.
    fn subscribe(&self, subscriber: Subscriber) -> Result<(), Error>;

    /// Starts serving and registers.
    async fn start(&self) -> Result<(), Error>;

    /// Deregisters, drains and stops; the deregistration's error is returned after
    /// everything else is done. Stopping a stopped server does nothing.
    async fn stop(&self) -> Result<(), Error>;

    /// Completes, with the reason, when the running server fails on its own (its
    /// listener died, a task of its panicked); pending while it serves well or is
    /// not running.
    async fn failure(&self) -> Error {
        std::future::pending().await
    }

    /// The address registered for this server, once started.
    fn address(&self) -> Option<String>;

    /// The service name it registers.
    fn service_name(&self) -> &str;

    /// The id of the node it registers (`<name>-<id>`).
    fn node_id(&self) -> String;

    /// Short name of the protocol (`mucp`).
    fn name(&self) -> &'static str;
}

/// go-micro's RPC server. See the [module docs](self).
///
/// Cheap to clone; clones share the server. Dropping the last clone of a running
/// server cancels everything it runs.
#[derive(Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ServerOptions,
    handlers: Mutex<Vec<HandlerSet>>,
    subscribers: Mutex<Vec<Subscriber>>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// Set from the start of `start` to the end of `stop`: handlers and
    /// subscribers can no longer be added.
    started: AtomicBool,
    address: Mutex<Option<String>>,
    /// Why the running server failed on its own, if it did.
    failure: Arc<watch::Sender<Option<String>>>,
    /// The parent of every cancellation token of a run: cancelled on drop.
    root: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every task of a run holds a child of this token: they all end now.
        self.root.cancel();
    }
}

struct Running {
    registration: Arc<register::Registration>,
    registrar: JoinHandle<()>,
    stop_registrar: CancellationToken,
    accept: JoinHandle<()>,
    stop_accept: CancellationToken,
    shutdown: CancellationToken,
    force: CancellationToken,
    tasks: TaskTracker,
    subscriptions: Vec<Box<dyn Subscription>>,
}

impl Running {
    /// Cancels everything at once (a start that failed half-way).
    fn cancel(&self) {
        self.stop_registrar.cancel();
        self.stop_accept.cancel();
        self.shutdown.cancel();
        self.force.cancel();
    }
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// A server with the given options.
    pub fn new(opts: ServerOptions) -> Self {
        RpcServer {
            inner: Arc::new(Inner {
                opts,
                handlers: Mutex::new(Vec::new()),
                subscribers: Mutex::new(Vec::new()),
                running: tokio::sync::Mutex::new(None),
                started: AtomicBool::new(false),
                address: Mutex::new(None),
                failure: Arc::new(watch::channel(None).0),
                root: CancellationToken::new(),
            }),
        }
    }

    /// Adds a typed handler (shorthand for [`Server::handle`] with
    /// [`HandlerSet::new`]).
    pub fn handler<H: Handler>(&self, handler: H) -> Result<(), Error> {
        self.handle(HandlerSet::new(handler))
    }

    /// The server's options.
    pub fn options(&self) -> &ServerOptions {
        &self.inner.opts
    }

    /// Whether the server is registered right now.
    pub async fn is_registered(&self) -> bool {
        self.inner
            .running
            .lock()
            .await
            .as_ref()
            .is_some_and(|r| r.registration.is_registered())
    }

    fn check_not_started(&self, what: &str) -> Result<(), Error> {
        if self.inner.started.load(Ordering::Acquire) {
            return Err(Error::Config(format!(
                "{what} must be added before the server starts"
            )));
        }
        Ok(())
    }

    /// The registry node; `secure`: the listener serves TLS (metadata `secure=true`,
    /// which our clients dial with TLS and go-micro's ignore).
    fn node(&self, address: String, secure: bool) -> Node {
        let o = &self.inner.opts;
        let mut metadata = o.metadata.clone();
        if secure {
            metadata.insert("secure".into(), "true".into());
        }
        metadata.insert("transport".into(), o.transport.name().into());
        metadata.insert("broker".into(), o.broker_name.clone());
        metadata.insert("server".into(), "mucp".into());
        metadata.insert("registry".into(), o.registry.name().into());
        metadata.insert("protocol".into(), "mucp".into());
        Node {
            id: o.node_id(),
            address,
            metadata,
        }
    }

    fn dispatch(
        &self,
        subscribers: Option<Arc<subscriber::Subscribers>>,
    ) -> (Dispatch, Vec<micro_registry::Endpoint>) {
        let handlers = self.inner.handlers.lock();
        let mut sorted: Vec<&HandlerSet> = handlers.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut routes = HashMap::new();
        let mut endpoints = Vec::new();
        for h in &sorted {
            for r in &h.routes {
                endpoints.push(r.endpoint.clone());
                routes.insert(r.endpoint.name.clone(), r.clone());
            }
        }
        if let Some(s) = &subscribers {
            endpoints.extend(s.endpoints());
        }
        let dispatch = Dispatch {
            routes,
            handlers: sorted.iter().map(|h| h.name.clone()).collect(),
            codecs: self.inner.opts.codecs.clone(),
            events: subscribers.map(|s| s as Arc<dyn EventSink>),
            max_streams_per_connection: self.inner.opts.max_streams_per_connection,
            max_streams: self.inner.opts.max_streams,
            open_streams: Arc::default(),
            stack: stack::Stack::new(&self.inner.opts.layers, self.inner.opts.recover),
        };
        (dispatch, endpoints)
    }
}

#[async_trait]
impl Server for RpcServer {
    fn handle(&self, handler: HandlerSet) -> Result<(), Error> {
        self.check_not_started("handlers")?;
        if !handler.problems.is_empty() {
            return Err(Error::Config(format!(
                "handler {}: {}",
                handler.name,
                handler.problems.join("; ")
            )));
        }
        let mut handlers = self.inner.handlers.lock();
        if handlers.iter().any(|h| h.name == handler.name) {
            return Err(Error::Config(format!(
                "handler {} added twice",
                handler.name
            )));
        }
        let mut subscribers = self.inner.subscribers.lock();
        for s in &handler.subscribers {
            check_queue(&subscribers, s)?;
        }
        subscribers.extend(handler.subscribers.iter().cloned());
        handlers.push(handler);
        Ok(())
    }

    fn subscribe(&self, subscriber: Subscriber) -> Result<(), Error> {
        self.check_not_started("subscribers")?;
        let mut subscribers = self.inner.subscribers.lock();
        check_queue(&subscribers, &subscriber)?;
        subscribers.push(subscriber);
        Ok(())
    }

    async fn start(&self) -> Result<(), Error> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Err(Error::AlreadyStarted);
        }
        self.inner.started.store(true, Ordering::Release);
        let result = self.start_locked().await;
        match result {
            Ok(r) => {
                *running = Some(r);
                Ok(())
            }
            Err(e) => {
                self.inner.started.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    async fn stop(&self) -> Result<(), Error> {
        let Some(r) = self.inner.running.lock().await.take() else {
            return Ok(());
        };
        let o = &self.inner.opts;
        let mut first: Option<Error> = None;
        r.stop_registrar.cancel();
        if let Err(e) = r.registrar.await {
            first.get_or_insert(task_error("registrar", e));
        }
        // Always: a registration that timed out, or that stop cancelled in flight,
        // may have been written all the same.
        if let Err(e) = r.registration.deregister().await {
            first.get_or_insert(e.into());
        }
        for s in &r.subscriptions {
            if let Err(e) = s.unsubscribe().await {
                tracing::warn!(topic = s.topic(), error = %e, "unsubscribe failed");
                first.get_or_insert(e.into());
            }
        }
        if !o.drain_linger.is_zero() {
            tokio::time::sleep(o.drain_linger).await;
        }
        r.stop_accept.cancel();
        if let Err(e) = r.accept.await {
            first.get_or_insert(task_error("accept loop", e));
        }
        r.shutdown.cancel();
        r.tasks.close();
        if tokio::time::timeout(o.drain_timeout, r.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(service = %o.name, timeout = ?o.drain_timeout, "calls still running after the drain timeout; cutting them off");
            r.force.cancel();
            r.tasks.wait().await;
        }
        *self.inner.address.lock() = None;
        self.inner.failure.send_replace(None);
        self.inner.started.store(false, Ordering::Release);
        tracing::info!(service = %o.name, "server stopped");
        first.map_or(Ok(()), Err)
    }

    async fn failure(&self) -> Error {
        let mut rx = self.inner.failure.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return Error::Failed(why);
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn address(&self) -> Option<String> {
        self.inner.address.lock().clone()
    }

    fn service_name(&self) -> &str {
        &self.inner.opts.name
    }

    fn node_id(&self) -> String {
        self.inner.opts.node_id()
    }

    fn name(&self) -> &'static str {
        "mucp"
    }
}

impl RpcServer {
    /// `start` with the lock held: listen, accept, register, subscribe, then the
    /// re-registration loop. Whatever fails undoes what was done before it.
    async fn start_locked(&self) -> Result<Running, Error> {
        let o = &self.inner.opts;
        let listener = o.transport.listen(&o.address).await?;
        let bound = listener.addr();
        let advertised = micro_registry::addr::advertise_address(&bound, o.advertise.as_deref());
        let subscribers = {
            let list = self.inner.subscribers.lock();
            (!list.is_empty())
                .then(|| Arc::new(subscriber::Subscribers::new(&list, o.codecs.clone())))
        };
        let (dispatch, endpoints) = self.dispatch(subscribers.clone());
        let service = register::service_record(
            &o.name,
            &o.version,
            self.node(advertised.clone(), listener.is_secure()),
            endpoints,
        );
        tracing::info!(service = %o.name, listen = %bound, transport = o.transport.name(), tls = listener.is_secure(), "server listening");

        // Accept first: a caller that discovers the node right after it registers
        // is served at once, not left in the listen backlog.
        let root = &self.inner.root;
        let tasks = TaskTracker::new();
        let (stop_accept, shutdown, force, stop_registrar) = (
            root.child_token(),
            root.child_token(),
            root.child_token(),
            root.child_token(),
        );
        let dispatch = Arc::new(dispatch);
        let accept = tokio::spawn(accept_loop(
            listener,
            dispatch.clone(),
            stop_accept.clone(),
            shutdown.clone(),
            force.clone(),
            tasks.clone(),
            self.inner.failure.clone(),
        ));
        let registration = Arc::new(register::Registration::new(
            o.registry.clone(),
            service,
            o.register_ttl,
            o.register_interval,
            o.register_check.clone(),
        ));
        let mut run = Running {
            registration: registration.clone(),
            registrar: tokio::spawn(async {}),
            stop_registrar,
            accept,
            stop_accept,
            shutdown,
            force,
            tasks,
            subscriptions: Vec::new(),
        };
        tokio::select! {
            _ = registration.check_and_register() => {}
            _ = root.cancelled() => {}
        }
        if let (Some(broker), Some(subs)) = (&o.broker, &subscribers) {
            match subscribe_all(broker, subs, &dispatch).await {
                Ok(s) => run.subscriptions = s,
                Err(e) => {
                    run.cancel();
                    let _ = (&mut run.accept).await;
                    if let Err(d) = registration.deregister().await {
                        tracing::warn!(service = %o.name, error = %d, "deregistration after a failed start failed");
                    }
                    return Err(e);
                }
            }
        }
        let failure = self.inner.failure.clone();
        let stop = run.stop_registrar.clone();
        run.registrar = tokio::spawn(async move {
            let result = AssertUnwindSafe(registration.run(stop))
                .catch_unwind()
                .await;
            if let Err(p) = result {
                let why = format!("the registrar panicked: {}", panic_text(&*p));
                tracing::error!("{why}");
                failure.send_replace(Some(why));
            }
        });
        *self.inner.address.lock() = Some(advertised);
        Ok(run)
    }
}

/// A task that ended badly, as an error.
fn task_error(what: &str, e: tokio::task::JoinError) -> Error {
    if e.is_panic() {
        Error::Failed(format!(
            "the {what} panicked: {}",
            panic_text(&*e.into_panic())
        ))
    } else {
        Error::Failed(format!("the {what} was cancelled"))
    }
}

/// The message of a panic payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// One broker subscription per topic, handing each event to every subscriber of
/// the topic.
async fn subscribe_all(
    broker: &Arc<dyn Broker>,
    subs: &Arc<subscriber::Subscribers>,
    dispatch: &Arc<Dispatch>,
) -> Result<Vec<Box<dyn Subscription>>, Error> {
    broker.connect().await?;
    let mut out = Vec::new();
    for (topic, list) in &subs.by_topic {
        let queue = list.iter().find_map(|s| s.queue.clone());
        let (dispatch, t) = (dispatch.clone(), topic.clone());
        let handler = handler_fn(move |event: micro_broker::Event| {
            let (dispatch, t) = (dispatch.clone(), t.clone());
            async move {
                let peer = crate::context::Peer::of_event(&event);
                dispatch
                    .broker_event(&t, to_transport(event.message), peer)
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        });
        match broker
            .subscribe(topic, handler, SubscribeOptions { queue })
            .await
        {
            Ok(s) => out.push(s),
            Err(e) => {
                for s in &out {
                    let _ = s.unsubscribe().await;
                }
                return Err(e.into());
            }
        }
    }
    Ok(out)
}

/// Accepts connections until `stop` fires. A listener that fails is fatal: the
/// failure is recorded for [`Server::failure`] and the loop ends.
async fn accept_loop(
    listener: Box<dyn Listener>,
    dispatch: Arc<Dispatch>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    force: CancellationToken,
    tasks: TaskTracker,
    failure: Arc<watch::Sender<Option<String>>>,
) {
    loop {
        let socket = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // The transport retries what is transient (out of file
                    // descriptors); an error here means the listener is gone.
                    let why = crate::error::chain(&format!("the listener on {} failed", listener.addr()), &e);
                    tracing::error!("{why}");
                    failure.send_replace(Some(why));
                    break;
                }
            },
        };
        let (dispatch, shutdown, force) = (dispatch.clone(), shutdown.clone(), force.clone());
        let conn_tasks = tasks.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = force.cancelled() => {}
                _ = conn::serve(socket, dispatch, shutdown, conn_tasks, force.clone()) => {}
            }
        });
    }
}

/// One broker subscription serves every subscriber of a topic, in one queue:
/// subscribers of a topic in different queues would silently share the first's.
fn check_queue(existing: &[Subscriber], new: &Subscriber) -> Result<(), Error> {
    match existing
        .iter()
        .find(|s| s.topic == new.topic && s.queue != new.queue)
    {
        Some(other) => Err(Error::Config(format!(
            "subscribers of topic {:?} in different queues ({:?} and {:?}): one broker \
             subscription serves a topic's subscribers, so they must share its queue",
            new.topic, other.queue, new.queue
        ))),
        None => Ok(()),
    }
}
