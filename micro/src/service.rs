//! [`Service`]: a server, a client and their plugins, put together and run.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use micro_broker::{Broker, HttpBroker, HttpBrokerOptions, MemoryBroker};
use micro_registry::{MemoryRegistry, Registry};
use micro_selector::Selector;
use micro_transport::{HttpTransport, MemoryTransport, PoolOptions, Transport};
use tokio::sync::Notify;

use crate::Error;
use crate::client::{Client, ClientOptions, RpcClient};
use crate::codec::Codecs;
use crate::config::Config;
use crate::server::{
    BoxFuture, Handler, HandlerSet, RegisterCheck, RpcServer, Server, ServerOptions, Subscriber,
};

/// A lifecycle hook: runs before or after the service starts or stops. An error in
/// a `before_start` hook aborts the start.
pub type Hook =
    Arc<dyn Fn() -> BoxFuture<Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + Sync>;

/// A running or runnable service. Cheap to clone; clones share the service.
///
/// ```no_run
/// use micro::Service;
/// # struct Greeter;
/// # impl micro::server::Handler for Greeter {
/// #     const NAME: &'static str = "Greeter";
/// #     fn routes(_: &mut micro::server::Routes<Self>) {}
/// # }
///
/// # async fn demo() -> Result<(), micro::Error> {
/// let service = Service::builder("greeter")
///     .version("1.0.0")
///     .from_env()?            // MICRO_REGISTRY=etcd, MICRO_SERVER_ADDRESS, ...
///     .handle(Greeter)
///     .build()?;
/// service.run().await         // until SIGINT, SIGTERM or SIGQUIT
/// # }
/// ```
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    server: Arc<dyn Server>,
    client: Arc<dyn Client>,
    rpc_client: Option<RpcClient>,
    registry: Arc<dyn Registry>,
    broker: Arc<dyn Broker>,
    hooks: Hooks,
    shutdown: Notify,
}

#[derive(Default, Clone)]
struct Hooks {
    before_start: Vec<Hook>,
    after_start: Vec<Hook>,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.inner.name)
            .field("registry", &self.inner.registry.name())
            .field("broker", &self.inner.broker.name())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A builder for a service called `name`.
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder::new(name.into())
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The client, for calling other services (and this one).
    pub fn client(&self) -> &Arc<dyn Client> {
        &self.inner.client
    }

    /// The server.
    pub fn server(&self) -> &Arc<dyn Server> {
        &self.inner.server
    }

    /// The registry shared by the server, the client and the broker.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// Runs the `before_start` hooks, connects the broker, starts the server (which
    /// registers), then runs the `after_start` hooks. Whatever fails undoes what
    /// was started before it: a server that started is stopped (and deregistered)
    /// when an `after_start` hook fails, the broker is disconnected when the server
    /// cannot start.
    pub async fn start(&self) -> Result<(), Error> {
        let inner = &self.inner;
        run_hooks("before_start", &inner.hooks.before_start).await?;
        inner.broker.connect().await?;
        if let Err(e) = inner.server.start().await {
            if let Err(d) = inner.broker.disconnect().await {
                tracing::warn!(error = %d, "disconnecting the broker after a failed start failed");
            }
            return Err(e);
        }
        if let Err(e) = run_hooks("after_start", &inner.hooks.after_start).await {
            for r in [
                inner.server.stop().await,
                inner.broker.disconnect().await.map_err(Error::from),
            ] {
                if let Err(s) = r {
                    tracing::warn!(error = %s, "stopping after a failed after_start hook failed");
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Runs the `before_stop` hooks, stops the server (deregister, drain, close),
    /// disconnects the broker, closes the client, then runs the `after_stop` hooks.
    /// Every step runs even if an earlier one failed; the first error is returned.
    pub async fn stop(&self) -> Result<(), Error> {
        let mut first = run_hooks("before_stop", &self.inner.hooks.before_stop)
            .await
            .err();
        if let Err(e) = self.inner.server.stop().await {
            first.get_or_insert(e);
        }
        if let Err(e) = self.inner.broker.disconnect().await {
            first.get_or_insert(e.into());
        }
        if let Some(c) = &self.inner.rpc_client {
            c.close().await;
        }
        if let Err(e) = run_hooks("after_stop", &self.inner.hooks.after_stop).await {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Starts, waits for SIGINT, SIGTERM or SIGQUIT (or [`Service::shutdown`]), then
    /// stops gracefully. When the server fails on its own meanwhile (its listener
    /// died), it stops too and returns that failure.
    pub async fn run(&self) -> Result<(), Error> {
        self.start().await?;
        let waited = self.wait().await;
        let stopped = self.stop().await;
        waited.and(stopped)
    }

    /// Waits for SIGINT, SIGTERM or SIGQUIT, for [`Service::shutdown`], or for the
    /// server to fail on its own (then returns why). With
    /// [`start`](Service::start) and [`stop`](Service::stop) this is
    /// [`run`](Service::run) in three steps, for programs that act in between.
    pub async fn wait(&self) -> Result<(), Error> {
        tokio::select! {
            _ = wait_for_signal(&self.inner.shutdown) => {
                tracing::info!(service = %self.inner.name, "stopping");
                Ok(())
            }
            e = self.inner.server.failure() => {
                tracing::error!(service = %self.inner.name, error = %e, "the server failed; stopping");
                Err(e)
            }
        }
    }

    /// Makes a pending [`run`](Service::run) stop the service and return (for
    /// services embedded in a larger program).
    pub fn shutdown(&self) {
        self.inner.shutdown.notify_one();
    }
}

async fn run_hooks(name: &'static str, hooks: &[Hook]) -> Result<(), Error> {
    for h in hooks {
        h().await
            .map_err(|source| Error::Hook { hook: name, source })?;
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal(shutdown: &Notify) {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::quit(),
    ];
    let mut streams: Vec<_> = kinds.iter().filter_map(|k| signal(*k).ok()).collect();
    if streams.is_empty() {
        tracing::warn!("cannot listen for signals; only shutdown() stops the service");
        shutdown.notified().await;
        return;
    }
    let any = futures_util::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv())));
    tokio::select! {
        _ = any => {}
        _ = shutdown.notified() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal(shutdown: &Notify) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = shutdown.notified() => {}
    }
}

/// Builds a [`Service`]. Every component can be replaced; the defaults need nothing
/// external: a memory registry, the HTTP transport, the HTTP broker.
pub struct ServiceBuilder {
    name: String,
    server_opts: ServerOptions,
    client_opts: ClientOptions,
    registry: Option<Arc<dyn Registry>>,
    selector: Option<Arc<dyn Selector>>,
    transport: Option<Arc<dyn Transport>>,
    broker: Option<Arc<dyn Broker>>,
    broker_address: Option<String>,
    server: Option<Arc<dyn Server>>,
    client: Option<Arc<dyn Client>>,
    codecs: Codecs,
    handlers: Vec<HandlerSet>,
    subscribers: Vec<Subscriber>,
    hooks: Hooks,
    /// The first error of a builder call, reported by [`build`](Self::build).
    error: Option<Error>,
    #[cfg(feature = "tls")]
    tls: Option<micro_tls::TlsOptions>,
}

impl ServiceBuilder {
    fn new(name: String) -> Self {
        ServiceBuilder {
            server_opts: ServerOptions::new().name(name.clone()),
            name,
            client_opts: ClientOptions::new(),
            registry: None,
            selector: None,
            transport: None,
            broker: None,
            broker_address: None,
            server: None,
            client: None,
            codecs: Codecs::new(),
            handlers: Vec::new(),
            subscribers: Vec::new(),
            hooks: Hooks::default(),
            error: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[cfg_attr(not(any(feature = "etcd", feature = "consul")), allow(dead_code))]
    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
    }

    /// Applies the `MICRO_*` environment (see [`config`](crate::config)). Later
    /// builder calls override it.
    pub fn from_env(self) -> Result<Self, Error> {
        self.config(Config::from_env()?)
    }

    /// Applies a [`Config`].
    pub fn config(mut self, c: Config) -> Result<Self, Error> {
        if let Some(name) = c.registry.as_deref() {
            self.registry = Some(crate::plugins::registry(name, &c.registry_address)?);
        }
        if let Some(n) = c.server_name {
            self.name = n.clone();
            self.server_opts = self.server_opts.name(n);
        }
        if let Some(v) = c.server_version {
            self.server_opts = self.server_opts.version(v);
        }
        if let Some(v) = c.server_id {
            self.server_opts = self.server_opts.id(v);
        }
        if let Some(v) = c.server_address {
            self.server_opts = self.server_opts.address(v);
        }
        if let Some(v) = c.server_advertise {
            self.server_opts = self.server_opts.advertise(v);
        }
        for (k, v) in c.server_metadata {
            self.server_opts = self.server_opts.metadata(k, v);
        }
        if let Some(v) = c.register_ttl {
            self.server_opts = self.server_opts.register_ttl(v);
        }
        if let Some(v) = c.register_interval {
            self.server_opts = self.server_opts.register_interval(v);
        }
        if let Some(t) = c.transport.as_deref() {
            self.transport = match t {
                "http" => None, // the default, with TLS if asked for
                "memory" => Some(Arc::new(MemoryTransport::new())),
                other => {
                    return Err(Error::Config(format!(
                        "unknown transport {other:?} (http, memory)"
                    )));
                }
            };
        }
        #[cfg(feature = "tls")]
        if let Some(t) = c.tls {
            self.tls = Some(t);
        }
        if let Some(b) = c.broker.as_deref() {
            match b {
                "http" => {}
                "memory" => self.broker = Some(Arc::new(MemoryBroker::new())),
                other => {
                    return Err(Error::Config(format!(
                        "unknown broker {other:?} (http, memory)"
                    )));
                }
            }
        }
        if let Some(a) = c.broker_address {
            self.broker_address = Some(a);
        }
        if let Some(n) = c.client_retries {
            self.client_opts = self.client_opts.retries(n);
        }
        if let Some(d) = c.client_request_timeout {
            self.client_opts = self.client_opts.request_timeout(d);
        }
        if let Some(d) = c.client_connection_timeout {
            self.client_opts = self.client_opts.attempt_timeout(d);
        }
        if let Some(d) = c.client_dial_timeout {
            self.client_opts = self.client_opts.dial_timeout(d);
        }
        let mut pool = PoolOptions::new();
        if let Some(n) = c.client_pool_size {
            pool = pool.size(n);
        }
        if let Some(d) = c.client_pool_ttl {
            pool = pool.ttl(d);
        }
        self.client_opts = self.client_opts.pool(pool);
        Ok(self)
    }

    /// The version. Default: `latest`.
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.server_opts = self.server_opts.version(v);
        self
    }

    /// Adds node metadata.
    pub fn metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.server_opts = self.server_opts.metadata(k, v);
        self
    }

    /// The listen address. Default: `0.0.0.0:0`.
    pub fn address(mut self, a: impl Into<String>) -> Self {
        self.server_opts = self.server_opts.address(a);
        self
    }

    /// The address to register. Default: the bound address.
    pub fn advertise(mut self, a: impl Into<String>) -> Self {
        self.server_opts = self.server_opts.advertise(a);
        self
    }

    /// The server id (node id `<name>-<id>`). Default: a random UUID.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.server_opts = self.server_opts.id(id);
        self
    }

    /// Registration TTL. Default: 90 s.
    pub fn register_ttl(mut self, d: Duration) -> Self {
        self.server_opts = self.server_opts.register_ttl(d);
        self
    }

    /// Re-registration interval. Default: 30 s.
    pub fn register_interval(mut self, d: Duration) -> Self {
        self.server_opts = self.server_opts.register_interval(d);
        self
    }

    /// Adds a server layer around every unary call, stream opening and subscriber
    /// event (see [`ServerOptions::layer`](crate::server::ServerOptions::layer) and
    /// [`middleware`](crate::middleware)); the first added is the outermost.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<crate::server::BoxServerService> + Send + Sync + 'static,
        L::Service: tower::Service<crate::server::ServerRequest, Response = crate::server::ServerResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<crate::server::ServerRequest>>::Error: Into<tower::BoxError>,
        <L::Service as tower::Service<crate::server::ServerRequest>>::Future: Send + 'static,
    {
        self.server_opts = self.server_opts.layer(layer);
        self
    }

    /// Whether a panicking handler or subscriber answers a 500 instead of dropping
    /// the call (see [`ServerOptions::recover`](crate::server::ServerOptions::recover)).
    /// Default: on.
    pub fn recover(mut self, on: bool) -> Self {
        self.server_opts = self.server_opts.recover(on);
        self
    }

    /// A check run before every registration. Default: none.
    pub fn register_check(mut self, c: RegisterCheck) -> Self {
        self.server_opts = self.server_opts.register_check(c);
        self
    }

    /// How long stop keeps serving after deregistering. Default: 2 s (see
    /// [`ServerOptions::drain_linger`]).
    pub fn drain_linger(mut self, d: Duration) -> Self {
        self.server_opts = self.server_opts.drain_linger(d);
        self
    }

    /// How long stop waits for in-flight calls. Default: 15 s.
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.server_opts = self.server_opts.drain_timeout(d);
        self
    }

    /// The registry, shared by server, client and broker. Default: a new
    /// [`MemoryRegistry`].
    pub fn registry(mut self, r: Arc<dyn Registry>) -> Self {
        self.registry = Some(r);
        self
    }

    /// The etcd registry at `endpoints` (`host:port`, port 2379 when left out), for
    /// server, client and broker: `Service::builder("greeter").etcd(["127.0.0.1:2379"])`.
    /// For more settings (TLS, auth, prefix) build an
    /// [`EtcdRegistry`](micro_etcd::EtcdRegistry) and pass it to
    /// [`registry`](Self::registry). An endpoint that does not parse is reported by
    /// [`build`](Self::build).
    #[cfg(feature = "etcd")]
    #[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
    pub fn etcd<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        match micro_etcd::EtcdRegistry::builder()
            .endpoints(endpoints)
            .build()
        {
            Ok(r) => self.registry = Some(Arc::new(r)),
            Err(e) => self.fail(Error::Config(format!("etcd registry: {e}"))),
        }
        self
    }

    /// The Consul registry of the agent at `address` (`host:port`), for server,
    /// client and broker: `Service::builder("greeter").consul("127.0.0.1:8500")`. For
    /// more settings (TLS, ACL token, checks) build a
    /// [`ConsulRegistry`](micro_consul::ConsulRegistry) and pass it to
    /// [`registry`](Self::registry).
    #[cfg(feature = "consul")]
    #[cfg_attr(docsrs, doc(cfg(feature = "consul")))]
    pub fn consul(mut self, address: impl Into<String>) -> Self {
        match micro_consul::ConsulRegistry::builder()
            .address(address)
            .build()
        {
            Ok(r) => self.registry = Some(Arc::new(r)),
            Err(e) => self.fail(Error::Config(format!("consul registry: {e}"))),
        }
        self
    }

    /// The selector. Default: a [`RegistrySelector`](micro_selector::RegistrySelector)
    /// over the registry.
    pub fn selector(mut self, s: Arc<dyn Selector>) -> Self {
        self.selector = Some(s);
        self
    }

    /// The transport, for both server and client. Default: [`HttpTransport`].
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// TLS for the default transport, HTTP broker and client (see
    /// [`micro::tls`](crate::tls)): with a certificate the server and the broker's
    /// subscribers serve TLS (mutual TLS with a client CA) and register
    /// `secure=true`; the client dials such nodes with TLS, verifying them against
    /// the CA (or the system's roots), and presents the certificate when asked.
    /// A transport or broker given to the builder keeps its own settings.
    /// Default: none (`MICRO_TLS_*` with [`from_env`](Self::from_env)).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: micro_tls::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The broker. Default: an [`HttpBroker`] on the registry.
    pub fn broker(mut self, b: Arc<dyn Broker>) -> Self {
        self.broker = Some(b);
        self
    }

    /// The HTTP broker's listen address. Default: `127.0.0.1:0`.
    pub fn broker_address(mut self, a: impl Into<String>) -> Self {
        self.broker_address = Some(a.into());
        self
    }

    /// A custom server (its own options apply; handlers given to the builder are
    /// added to it). Default: an [`RpcServer`].
    pub fn server(mut self, s: Arc<dyn Server>) -> Self {
        self.server = Some(s);
        self
    }

    /// A custom client. Default: an [`RpcClient`].
    pub fn client(mut self, c: Arc<dyn Client>) -> Self {
        self.client = Some(c);
        self
    }

    /// Options of the default client (retries, timeouts, pool, wrappers).
    pub fn client_options(mut self, f: impl FnOnce(ClientOptions) -> ClientOptions) -> Self {
        self.client_opts = f(self.client_opts);
        self
    }

    /// The codec table, for server and client. Default: [`Codecs::new`].
    pub fn codecs(mut self, c: Codecs) -> Self {
        self.codecs = c;
        self
    }

    /// Adds a handler. Mistakes (a handler added twice, an endpoint declared twice,
    /// metadata for an undeclared endpoint) are reported by [`build`](Self::build).
    pub fn handle<H: Handler>(mut self, h: H) -> Self {
        self.handlers.push(HandlerSet::new(h));
        self
    }

    /// Adds a subscriber: see [`Subscriber`]. Subscribers of one topic in different
    /// queues each get their own broker subscription (each runs once per event).
    pub fn subscribe(mut self, s: Subscriber) -> Self {
        self.subscribers.push(s);
        self
    }

    /// Runs `f` before the service starts.
    pub fn before_start<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
    {
        self.hooks.before_start.push(hook(f));
        self
    }

    /// Runs `f` after the service started.
    pub fn after_start<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
    {
        self.hooks.after_start.push(hook(f));
        self
    }

    /// Runs `f` before the service stops.
    pub fn before_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
    {
        self.hooks.before_stop.push(hook(f));
        self
    }

    /// Runs `f` after the service stopped.
    pub fn after_stop<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
    {
        self.hooks.after_stop.push(hook(f));
        self
    }

    /// Puts the service together, or reports the first mistake of the builder
    /// calls.
    pub fn build(self) -> Result<Service, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let registry = self
            .registry
            .unwrap_or_else(|| Arc::new(MemoryRegistry::new()));
        let http = HttpTransport::new();
        #[cfg(feature = "tls")]
        let http = match &self.tls {
            Some(t) => http.tls(t.clone()),
            None => http,
        };
        let transport = self.transport.unwrap_or_else(|| Arc::new(http));
        let broker: Arc<dyn Broker> = match self.broker {
            Some(b) => b,
            None => {
                let mut o = HttpBrokerOptions::new().registry(registry.clone());
                if let Some(a) = &self.broker_address {
                    o = o.address(a.clone());
                }
                #[cfg(feature = "tls")]
                if let Some(t) = &self.tls {
                    o = o.tls(t.clone());
                }
                Arc::new(HttpBroker::with_options(o))
            }
        };
        let server: Arc<dyn Server> = match self.server {
            Some(s) => s,
            None => Arc::new(RpcServer::new(
                self.server_opts
                    .registry(registry.clone())
                    .transport(transport.clone())
                    .codecs(self.codecs.clone())
                    .broker(broker.clone()),
            )),
        };
        for h in self.handlers {
            server.handle(h)?;
        }
        for s in self.subscribers {
            server.subscribe(s)?;
        }
        let (client, rpc_client): (Arc<dyn Client>, _) = match self.client {
            Some(c) => (c, None),
            None => {
                #[cfg(feature = "tls")]
                let o = match self.tls {
                    Some(t) => self.client_opts.tls(t),
                    None => self.client_opts,
                };
                #[cfg(not(feature = "tls"))]
                let o = self.client_opts;
                let mut o = o
                    .transport(transport)
                    .codecs(self.codecs)
                    .registry(registry.clone())
                    .broker(broker.clone());
                if let Some(s) = self.selector {
                    o = o.selector(s);
                }
                let c = RpcClient::new(o);
                (Arc::new(c.clone()), Some(c))
            }
        };
        Ok(Service {
            inner: Arc::new(Inner {
                name: self.name,
                server,
                client,
                rpc_client,
                registry,
                broker,
                hooks: self.hooks,
                shutdown: Notify::new(),
            }),
        })
    }
}

fn hook<F, Fut>(f: F) -> Hook
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()) as BoxFuture<_>)
}
