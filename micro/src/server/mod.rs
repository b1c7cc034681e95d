//! The RPC server: serves [`Handler`]s over a transport, registers itself, keeps the
//! registration fresh, and shuts down gracefully.
//!
//! [`RpcServer`] speaks go-micro's RPC protocol ("mucp"): Go clients call it like a
//! go-micro server, and it registers the same record a go-micro server would (node
//! id `<name>-<uuid>`, metadata `protocol=mucp` and the component names, every
//! endpoint with its request and response shapes).
//!
//! **Lifecycle.** [`Server::start`] listens, registers (three attempts with go-micro's
//! backoff; a registry that is down does not stop the server, the loop retries), and
//! re-registers every `register_interval` (30 s) with a `register_ttl` (90 s). An
//! optional register check runs before each registration; while it fails the
//! server stays deregistered. [`Server::stop`] deregisters **first**, keeps serving
//! for `drain_linger` (late callers whose caches still hold the node are served),
//! then stops accepting, lets connections finish the request they are serving, and
//! waits up to `drain_timeout` for in-flight calls and streams before cutting them
//! off. Nothing it started is left running.
//!
//! **Errors.** An unknown endpoint, an ill-formed endpoint name, an unsupported
//! content type, a body that does not decode, a handler error, a handler panic and a
//! passed deadline each get a go-micro error in `Micro-Error` (ids
//! `go.micro.server` or the handler's own), and the connection keeps serving.

mod conn;
mod handler;
mod register;
mod stream;
mod subscriber;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use micro_broker::{Broker, SubscribeOptions, Subscription, handler_fn};
use micro_registry::{MemoryRegistry, Metadata as RegistryMetadata, Node, Registry};
use micro_transport::{HttpTransport, Listener, Transport};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use conn::{Dispatch, EventSink};
pub use handler::{BoxFuture, EndpointKind, Handler, HandlerSet, Message, Routes};
pub use register::RegisterCheck;
pub use stream::{Sink, Streaming};
pub use subscriber::Subscriber;
pub(crate) use subscriber::to_transport;

use crate::Error;
use crate::codec::Codecs;

/// The default server name (go-micro's `DefaultName`).
pub const DEFAULT_NAME: &str = "go.micro.server";
/// The default version (go-micro's `DefaultVersion`).
pub const DEFAULT_VERSION: &str = "latest";
/// Default re-registration interval (go-micro's `DefaultRegisterInterval`).
pub const DEFAULT_REGISTER_INTERVAL: Duration = Duration::from_secs(30);
/// Default registration TTL (go-micro's `DefaultRegisterTTL`).
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(90);

/// A server: serves handlers and owns its registration. Object-safe.
#[async_trait]
pub trait Server: Send + Sync + 'static {
    /// Adds a handler's endpoints. Must be called before [`start`](Server::start).
    fn handle(&self, handler: HandlerSet) -> Result<(), Error>;

    /// Adds a subscriber. Must be called before [`start`](Server::start).
    fn subscribe(&self, subscriber: Subscriber) -> Result<(), Error>;

    /// Starts serving and registers.
    async fn start(&self) -> Result<(), Error>;

    /// Deregisters, drains and stops. Stopping a stopped server does nothing.
    async fn stop(&self) -> Result<(), Error>;

    /// The address registered for this server, once started.
    fn address(&self) -> Option<String>;

    /// The server's options.
    fn options(&self) -> &ServerOptions;

    /// Short name of the protocol (`mucp`).
    fn name(&self) -> &'static str;
}

/// Options of an [`RpcServer`].
#[derive(Clone)]
pub struct ServerOptions {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) advertise: Option<String>,
    pub(crate) metadata: RegistryMetadata,
    pub(crate) register_ttl: Duration,
    pub(crate) register_interval: Duration,
    pub(crate) register_check: Option<RegisterCheck>,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) codecs: Codecs,
    pub(crate) broker: Option<Arc<dyn Broker>>,
    pub(crate) broker_name: String,
    pub(crate) drain_linger: Duration,
    pub(crate) drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: DEFAULT_NAME.into(),
            version: DEFAULT_VERSION.into(),
            id: uuid::Uuid::new_v4().to_string(),
            address: "0.0.0.0:0".into(),
            advertise: None,
            metadata: RegistryMetadata::new(),
            register_ttl: DEFAULT_REGISTER_TTL,
            register_interval: DEFAULT_REGISTER_INTERVAL,
            register_check: None,
            registry: Arc::new(MemoryRegistry::new()),
            transport: Arc::new(HttpTransport::new()),
            codecs: Codecs::new(),
            broker: None,
            broker_name: "http".into(),
            drain_linger: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(15),
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("id", &self.id)
            .field("address", &self.address)
            .field("advertise", &self.advertise)
            .field("registry", &self.registry.name())
            .field("transport", &self.transport.name())
            .field("register_ttl", &self.register_ttl)
            .field("register_interval", &self.register_interval)
            .finish_non_exhaustive()
    }
}

impl ServerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Service name registered. Default: `go.micro.server`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Version registered. Default: `latest`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Server id; the node id is `<name>-<id>`. Default: a random UUID.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Address to listen on. Default: `0.0.0.0:0` (all interfaces, a free port), as
    /// go-micro's `:0`. A port range `host:min-max` takes the first free port.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        let a = address.into();
        self.address = if a.starts_with(':') {
            format!("0.0.0.0{a}")
        } else {
            a
        };
        self
    }

    /// Address to register instead of the bound one (behind NAT, in containers).
    /// Default: the bound address, with an unspecified host replaced by this
    /// machine's first private address.
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// Adds node metadata. The server's own keys (`transport`, `broker`, `server`,
    /// `registry`, `protocol`) override user values, as in go-micro.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Registration TTL. Default: 90 s. Zero registers without a TTL.
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.register_ttl = ttl;
        self
    }

    /// Re-registration interval. Default: 30 s. Zero disables re-registration.
    pub fn register_interval(mut self, interval: Duration) -> Self {
        self.register_interval = interval;
        self
    }

    /// A check run before each registration. Default: none (always registers).
    pub fn register_check(mut self, check: RegisterCheck) -> Self {
        self.register_check = Some(check);
        self
    }

    /// The registry. Default: a new [`MemoryRegistry`].
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// The transport. Default: [`HttpTransport`].
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// The codec table. Default: [`Codecs::new`].
    pub fn codecs(mut self, codecs: Codecs) -> Self {
        self.codecs = codecs;
        self
    }

    /// The broker subscribers receive events through; its name goes into node
    /// metadata. Default: none (subscribers then only get events sent over the
    /// transport, and node metadata says `broker=http`, go-micro's default).
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker_name = broker.name().into();
        self.broker = Some(broker);
        self
    }

    /// How long the server keeps serving after deregistering, before it stops
    /// accepting, so that callers whose caches still hold the node are served.
    /// Default: 1 s.
    pub fn drain_linger(mut self, d: Duration) -> Self {
        self.drain_linger = d;
        self
    }

    /// How long stop waits for in-flight calls and streams before cutting them off.
    /// Default: 15 s.
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// The node id this server registers: `<name>-<id>`.
    pub fn node_id(&self) -> String {
        format!("{}-{}", self.name, self.id)
    }

    /// The registry.
    pub fn registry_ref(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.name
    }
}

/// go-micro's RPC server. See the [module docs](self).
#[derive(Clone)]
pub struct RpcServer {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ServerOptions,
    handlers: Mutex<Vec<HandlerSet>>,
    subscribers: Mutex<Vec<Subscriber>>,
    running: tokio::sync::Mutex<Option<Running>>,
    address: Mutex<Option<String>>,
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
                address: Mutex::new(None),
            }),
        }
    }

    /// Adds a typed handler (shorthand for [`Server::handle`] with
    /// [`HandlerSet::new`]).
    pub fn handler<H: Handler>(&self, handler: H) -> Result<(), Error> {
        self.handle(HandlerSet::new(handler))
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
        };
        (dispatch, endpoints)
    }
}

#[async_trait]
impl Server for RpcServer {
    fn handle(&self, handler: HandlerSet) -> Result<(), Error> {
        let mut handlers = self.inner.handlers.lock();
        if handlers.iter().any(|h| h.name == handler.name) {
            return Err(Error::Config(format!(
                "handler {} added twice",
                handler.name
            )));
        }
        handlers.push(handler);
        Ok(())
    }

    fn subscribe(&self, subscriber: Subscriber) -> Result<(), Error> {
        self.inner.subscribers.lock().push(subscriber);
        Ok(())
    }

    async fn start(&self) -> Result<(), Error> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Err(Error::AlreadyStarted);
        }
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

        let registration = Arc::new(register::Registration::new(
            o.registry.clone(),
            service,
            o.register_ttl,
            o.register_interval,
            o.register_check.clone(),
        ));
        registration.check_and_register().await;
        let subscriptions = match (&o.broker, &subscribers) {
            (Some(broker), Some(subs)) => match subscribe_all(broker, subs).await {
                Ok(s) => s,
                Err(e) => {
                    registration.deregister().await;
                    return Err(e);
                }
            },
            _ => Vec::new(),
        };

        let tasks = TaskTracker::new();
        let (stop_accept, shutdown, force) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let accept = tokio::spawn(accept_loop(
            listener,
            Arc::new(dispatch),
            stop_accept.clone(),
            shutdown.clone(),
            force.clone(),
            tasks.clone(),
        ));
        let stop_registrar = CancellationToken::new();
        let registrar = tokio::spawn(registration.clone().run(stop_registrar.clone()));
        *self.inner.address.lock() = Some(advertised);
        *running = Some(Running {
            registration,
            registrar,
            stop_registrar,
            accept,
            stop_accept,
            shutdown,
            force,
            tasks,
            subscriptions,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<(), Error> {
        let Some(r) = self.inner.running.lock().await.take() else {
            return Ok(());
        };
        let o = &self.inner.opts;
        r.stop_registrar.cancel();
        let _ = r.registrar.await;
        r.registration.deregister().await;
        for s in &r.subscriptions {
            if let Err(e) = s.unsubscribe().await {
                tracing::warn!(topic = s.topic(), error = %e, "unsubscribe failed");
            }
        }
        if !o.drain_linger.is_zero() {
            tokio::time::sleep(o.drain_linger).await;
        }
        r.stop_accept.cancel();
        let _ = r.accept.await;
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
        tracing::info!(service = %o.name, "server stopped");
        Ok(())
    }

    fn address(&self) -> Option<String> {
        self.inner.address.lock().clone()
    }

    fn options(&self) -> &ServerOptions {
        &self.inner.opts
    }

    fn name(&self) -> &'static str {
        "mucp"
    }
}

/// One broker subscription per topic, handing each event to every subscriber of
/// the topic.
async fn subscribe_all(
    broker: &Arc<dyn Broker>,
    subs: &Arc<subscriber::Subscribers>,
) -> Result<Vec<Box<dyn Subscription>>, Error> {
    broker.connect().await?;
    let mut out = Vec::new();
    for (topic, list) in &subs.by_topic {
        let queue = list.iter().find_map(|s| s.queue.clone());
        let (subs, t) = (subs.clone(), topic.clone());
        let handler = handler_fn(move |event: micro_broker::Event| {
            let (subs, t) = (subs.clone(), t.clone());
            async move {
                let peer = crate::context::Peer::of_event(&event);
                subs.dispatch_from(&t, to_transport(event.message), peer)
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

async fn accept_loop(
    listener: Box<dyn Listener>,
    dispatch: Arc<Dispatch>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    force: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let socket = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
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
