//! [`ClientOptions`]: how an [`RpcClient`](super::RpcClient) is built.

use std::sync::Arc;
use std::time::Duration;

use micro_registry::Registry;
use micro_selector::Selector;
use micro_transport::{HttpTransport, PoolOptions, Transport};
use tower::{BoxError, Layer, Service};

use super::layer::{BoxClientService, StoredLayer};
use super::request::{ClientRequest, ClientResponse};
use crate::codec::{Codecs, DEFAULT_CONTENT_TYPE};

/// The default timeout of a call, retries included: 5 s (go-micro v4's).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The default number of retries: 2, so three attempts of at most a third of the
/// call's timeout each.
pub const DEFAULT_RETRIES: u32 = 2;

/// Options of an [`RpcClient`](super::RpcClient).
///
/// # Timeouts and retries
///
/// A call has a total budget ([`request_timeout`](Self::request_timeout), or the
/// call's own timeout or inherited deadline) and each attempt a share of it
/// ([`attempt_timeout`](Self::attempt_timeout), by default the budget divided by
/// the number of attempts). An attempt that fails goes to another node when the
/// rule of [`CallErrorKind`](super::CallErrorKind) allows it: a request that was
/// not sent is always tried again, an answer never, and a request sent but not
/// answered (timeout, connection lost) only when the call is
/// [`retryable`](Self::retryable). That last case makes delivery at least once: a
/// handler that ran but whose answer was lost runs again on the next node. go-micro's
/// clients do the same on a timeout (v5 retries only 408s; v4 also retries 500s,
/// which we never do since an answer is final).
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) selector: Option<Arc<dyn Selector>>,
    pub(crate) registry: Option<Arc<dyn Registry>>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) pool: PoolOptions,
    pub(crate) codecs: Codecs,
    pub(crate) content_type: String,
    pub(crate) request_timeout: Duration,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) dial_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retryable: bool,
    pub(crate) broker: Option<Arc<dyn micro_broker::Broker>>,
    pub(crate) layers: Vec<StoredLayer>,
    pub(crate) attempt_layers: Vec<StoredLayer>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<micro_tls::TlsOptions>,
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
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            attempt_timeout: None,
            dial_timeout: Duration::from_secs(5),
            retries: DEFAULT_RETRIES,
            retryable: true,
            broker: None,
            layers: Vec::new(),
            attempt_layers: Vec::new(),
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
            .field("attempt_timeout", &self.attempt_timeout)
            .field("retries", &self.retries)
            .field("retryable", &self.retryable)
            .field("layers", &self.layers.len())
            .field("attempt_layers", &self.attempt_layers.len())
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The selector. Default: a [`RegistrySelector`](micro_selector::RegistrySelector)
    /// over the registry.
    pub fn selector(mut self, s: Arc<dyn Selector>) -> Self {
        self.selector = Some(s);
        self
    }

    /// The registry the default selector reads. Default: a new
    /// [`MemoryRegistry`](micro_registry::MemoryRegistry).
    pub fn registry(mut self, r: Arc<dyn Registry>) -> Self {
        self.registry = Some(r);
        self
    }

    /// The transport. Default: [`HttpTransport`].
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = t;
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

    /// How long a call may take, retries included
    /// (`MICRO_CLIENT_REQUEST_TIMEOUT`). Default: 5 s (go-micro v4).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Longest one attempt may take (`MICRO_CLIENT_CONNECTION_TIMEOUT`, after
    /// go-micro v5's `ConnectionTimeout`, which means the same); it is also what the
    /// `Timeout` header tells the server. An attempt that runs out is tried again
    /// on another node (see [the type docs](Self)). Default: the call's budget
    /// divided by its number of attempts (`retries + 1`), so every attempt fits:
    /// 5 s / 3 with the defaults, and go-micro v5's 5 s with v5's 30 s and 5
    /// retries.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// How long connecting may take (`MICRO_CLIENT_DIAL_TIMEOUT`). Default: 5 s.
    pub fn dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = d;
        self
    }

    /// Retries after a failed attempt (`MICRO_CLIENT_RETRIES`). Default: 2.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Whether a request that was sent but not answered (timed out, connection
    /// lost) may be tried again on another node, which can run a handler twice.
    /// Calls can say otherwise one by one. Default: true, as go-micro retries
    /// timeouts.
    pub fn retryable(mut self, on: bool) -> Self {
        self.retryable = on;
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

    /// The broker events are published through. Default: none (publishing fails
    /// with a clear error).
    pub fn broker(mut self, b: Arc<dyn micro_broker::Broker>) -> Self {
        self.broker = Some(b);
        self
    }

    /// Adds a layer above node selection (go-micro's `ClientWrapper` position): it
    /// sees every call, stream opening and publish once, whatever the retries. The
    /// first layer added is the outermost. Any tower layer fits whose service
    /// errors convert into [`BoxError`]; its errors become
    /// [`CallError`](super::CallError)s ([`CallError::from_layer`](super::CallError::from_layer)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use micro::client::ClientOptions;
    ///
    /// let opts = ClientOptions::new()
    ///     .layer(tower::limit::ConcurrencyLimitLayer::new(64))
    ///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(2)));
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxClientService> + Send + Sync + 'static,
        L::Service:
            Service<ClientRequest, Response = ClientResponse> + Clone + Send + Sync + 'static,
        <L::Service as Service<ClientRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ClientRequest>>::Future: Send + 'static,
    {
        self.layers.push(StoredLayer::new(layer));
        self
    }

    /// Adds a layer below node selection (go-micro's `CallWrapper` position): it sees
    /// every attempt of calls and stream openings, with
    /// [`ClientRequest::target`](super::ClientRequest::target) set to the node
    /// chosen. Publishes do not pass here (the broker picks its own targets). The
    /// first layer added is the outermost.
    pub fn attempt_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxClientService> + Send + Sync + 'static,
        L::Service:
            Service<ClientRequest, Response = ClientResponse> + Clone + Send + Sync + 'static,
        <L::Service as Service<ClientRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ClientRequest>>::Future: Send + 'static,
    {
        self.attempt_layers.push(StoredLayer::new(layer));
        self
    }
}
