//! [`ServerOptions`]: how an [`RpcServer`](super::RpcServer) is built.

use std::sync::Arc;
use std::time::Duration;

use micro_broker::Broker;
use micro_registry::{MemoryRegistry, MetadataMap as RegistryMetadata, Registry};
use micro_transport::{HttpTransport, Transport};
use tower::{BoxError, Layer, Service};

use super::register::RegisterCheck;
use super::request::{ServerRequest, ServerResponse};
use super::stack::{BoxServerService, StoredServerLayer};
use super::{
    DEFAULT_DRAIN_LINGER, DEFAULT_NAME, DEFAULT_REGISTER_INTERVAL, DEFAULT_REGISTER_TTL,
    DEFAULT_VERSION,
};
use crate::codec::Codecs;

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
    pub(crate) max_streams_per_connection: usize,
    pub(crate) max_streams: usize,
    pub(crate) layers: Vec<StoredServerLayer>,
    pub(crate) recover: bool,
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
            drain_linger: DEFAULT_DRAIN_LINGER,
            drain_timeout: Duration::from_secs(15),
            max_streams_per_connection: 128,
            max_streams: 10_000,
            layers: Vec::new(),
            recover: true,
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
    /// Default: 2 s: go-micro clients were seen choosing a node over a second
    /// after its deregistration (a lookup in flight when the change arrived), and
    /// a go-micro client does not retry a refused connection. Connections then
    /// close once quiet for 250 ms, so a request written at that moment is served.
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

    /// Most streams open at once on one connection. Default: 128 (go-micro's
    /// clients open one connection per stream; HTTP/2 servers usually allow about
    /// 100). One more is answered with a 503 error for that stream; the connection
    /// goes on. Connections, body and head sizes are the transport's
    /// [`Limits`](micro_transport::Limits).
    pub fn max_streams_per_connection(mut self, n: usize) -> Self {
        self.max_streams_per_connection = n;
        self
    }

    /// Most streams open at once on the whole server. Default: 10 000. One more
    /// is answered with a 503 error for that stream.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// Adds a layer around every unary call, stream opening and subscriber event
    /// (go-micro's `HandlerWrapper` and `SubscriberWrapper`); the first added is the
    /// outermost. Any tower layer fits whose service errors convert into
    /// `tower::BoxError`; they answer the caller as described in
    /// [`middleware`](crate::middleware).
    ///
    /// ```
    /// use micro::server::ServerOptions;
    ///
    /// let opts = ServerOptions::new()
    ///     .layer(tower::load_shed::LoadShedLayer::new())
    ///     .layer(tower::limit::ConcurrencyLimitLayer::new(256));
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxServerService> + Send + Sync + 'static,
        L::Service:
            Service<ServerRequest, Response = ServerResponse> + Clone + Send + Sync + 'static,
        <L::Service as Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ServerRequest>>::Future: Send + 'static,
    {
        self.layers.push(StoredServerLayer::new(layer));
        self
    }

    /// Whether a panic in a handler or subscriber becomes a 500 for its caller
    /// (caught right above the handlers, below every layer, so layers see the
    /// 500; it is built in, not a boxed layer, and costs a `catch_unwind`).
    /// Default: on. Off, a panic ends the connection it happened on (the server
    /// goes on). [`RecoverLayer`](crate::middleware::RecoverLayer) does the same
    /// at any other position of a stack.
    pub fn recover(mut self, on: bool) -> Self {
        self.recover = on;
        self
    }

    /// The node id this server registers: `<name>-<id>`.
    pub fn node_id(&self) -> String {
        format!("{}-{}", self.name, self.id)
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.name
    }
}
