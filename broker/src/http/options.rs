//! [`HttpBrokerOptions`]: everything an [`HttpBroker`](super::HttpBroker) can be
//! told, with go-micro's defaults where go-micro has one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use micro_registry::{CacheOptions, MemoryRegistry, Registry};
use micro_transport::Limits;

/// The environment variable [`HttpBrokerOptions::from_env`] reads the listen
/// address from (go-micro's `--broker_address`).
pub const ENV_BROKER_ADDRESS: &str = "MICRO_BROKER_ADDRESS";

/// go-micro's default listen address: loopback, any free port.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:0";

/// Options of an [`HttpBroker`](super::HttpBroker). Build with the methods, each of
/// which documents its default.
///
/// ```
/// use std::time::Duration;
/// use micro_broker::HttpBrokerOptions;
///
/// let opts = HttpBrokerOptions::new()
///     .address("0.0.0.0:0")
///     .delivery_timeout(Duration::from_secs(5))
///     .retry_queue(256);
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct HttpBrokerOptions {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) address: String,
    pub(crate) advertise: Option<String>,
    pub(crate) register_ttl: Duration,
    pub(crate) register_interval: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retry_queue: usize,
    pub(crate) retry_attempts: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_max_backoff: Duration,
    pub(crate) retry_max_age: Duration,
    pub(crate) cache: CacheOptions,
    pub(crate) limits: Limits,
    pub(crate) shutdown_grace: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<micro_tls::TlsOptions>,
}

impl Default for HttpBrokerOptions {
    fn default() -> Self {
        HttpBrokerOptions {
            registry: Arc::new(MemoryRegistry::new()),
            address: DEFAULT_ADDRESS.to_owned(),
            advertise: None,
            register_ttl: Duration::from_secs(60),
            register_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(30),
            retry_queue: 64,
            retry_attempts: 8,
            retry_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(10),
            retry_max_age: Duration::from_secs(60),
            cache: CacheOptions::default().empty_grace(Duration::ZERO),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(5),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl fmt::Debug for HttpBrokerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBrokerOptions")
            .field("registry", &self.registry.name())
            .field("address", &self.address)
            .field("advertise", &self.advertise)
            .field("register_ttl", &self.register_ttl)
            .field("register_interval", &self.register_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("retry_queue", &self.retry_queue)
            .field("retry_attempts", &self.retry_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_max_backoff", &self.retry_max_backoff)
            .field("retry_max_age", &self.retry_max_age)
            .field("cache", &self.cache)
            .field("limits", &self.limits)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish_non_exhaustive()
    }
}

impl HttpBrokerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// TLS, both ways. With a certificate (or self-signed mode) the broker serves its
    /// subscribers over https and registers them with `secure=true`, as go-micro's
    /// `Secure` broker does; with a client CA it requires publishers' certificates
    /// (mutual TLS) and hands their identity to handlers
    /// ([`Event::peer_identity`](crate::Event::peer_identity)). Deliveries to
    /// subscribers registered with `secure=true` go over https, verified as these
    /// options say. Default: none: plain subscribers, and https deliveries verified
    /// against the system's trusted roots.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: micro_tls::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The defaults, with the listen address taken from `MICRO_BROKER_ADDRESS` when
    /// it is set and not empty (the first of a comma-separated list, as go-micro).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let opts = Self::default();
        let addr = var(ENV_BROKER_ADDRESS);
        match addr
            .as_deref()
            .and_then(|v| v.split(',').map(str::trim).find(|a| !a.is_empty()))
        {
            Some(addr) => opts.address(addr),
            None => opts,
        }
    }

    /// The registry subscriptions are registered in and subscribers are looked up
    /// in. Default: a new, private [`MemoryRegistry`] (go-micro's default is mDNS),
    /// so brokers only find each other when given a shared registry.
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// The address the broker's HTTP server listens on, `host:port`; `:port` means
    /// every IPv4 interface, port 0 any free port. Default: `127.0.0.1:0`
    /// (go-micro's default, reachable from this host only).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// The address written into the registry for subscribers to be reached at:
    /// `host:port`, or a bare host to which the bound port is added. Default: the
    /// bound address, where an unspecified host (`0.0.0.0`, `::`) is replaced by an
    /// address of this machine (private IPv4 first, then private IPv6, public IPv4,
    /// public IPv6, loopback), as go-micro does.
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// How long a subscription's registration lives without renewal. Default: 60 s
    /// (go-micro's broker TTL). Zero registers without a TTL.
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.register_ttl = ttl;
        self
    }

    /// How often every subscription is registered again. Default: 30 s (go-micro's
    /// heartbeat). Zero disables re-registration.
    pub fn register_interval(mut self, interval: Duration) -> Self {
        self.register_interval = interval;
        self
    }

    /// How long connecting to a subscriber may take. Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one delivery (connect, send, the subscriber's handlers, answer) may
    /// take before it counts as failed. Default: 30 s. A handler slower than this
    /// may see the event again when it is retried.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Largest number of failed deliveries kept for retry per topic; when full the
    /// oldest is dropped (logged, counted in `overflowed`). Default: 64 (go-micro's
    /// inbox size). Zero disables retrying.
    pub fn retry_queue(mut self, deliveries: usize) -> Self {
        self.retry_queue = deliveries;
        self
    }

    /// How many times a failed delivery is retried before it is dropped. Default: 8.
    /// Zero disables retrying.
    pub fn retry_attempts(mut self, attempts: u32) -> Self {
        self.retry_attempts = attempts;
        self
    }

    /// The pause before the first retry; it doubles with each retry up to
    /// `max` and is jittered down by up to half. Default: 200 ms up to 10 s.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_max_backoff = max.max(first);
        self
    }

    /// How long after its first failure a delivery is dropped even if attempts
    /// remain. Default: 60 s (the registration TTL: by then a crashed subscriber's
    /// registration has expired).
    pub fn retry_max_age(mut self, age: Duration) -> Self {
        self.retry_max_age = age;
        self
    }

    /// Options of the registry cache publish lookups go through. Default:
    /// [`CacheOptions::default`] (60 s TTL, watch-driven, stale data while the
    /// registry fails) with no empty grace: when a topic's last subscriber leaves,
    /// publishing fails with `NoSubscribers` at once, as in go-micro, rather than
    /// going on delivering to the departed subscribers for a while.
    pub fn cache(mut self, cache: CacheOptions) -> Self {
        self.cache = cache;
        self
    }

    /// What the broker's subscriber endpoint accepts from publishers: the same
    /// [`Limits`] (and names) as the HTTP transport's. Default:
    /// [`Limits::default`]: 4 MiB deliveries (the JSON, about 4/3 of the payload;
    /// larger ones get `413`), 1 MiB heads, 16 384 connections (one more gets
    /// `503`), 10 s for a request's headers, 30 s for its body, and 5 min idle
    /// (longer than the 90 s after which Go's HTTP client, and this broker's,
    /// closes idle connections, so that publishers close them first).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long [`disconnect`](crate::Broker::disconnect) lets requests in progress
    /// finish before their connections are closed. Default: 5 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    pub(crate) fn retry_enabled(&self) -> bool {
        self.retry_queue > 0 && self.retry_attempts > 0
    }

    /// The pause before retry number `attempt` (1-based), jittered.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        micro_util::Backoff::new(self.retry_backoff, self.retry_max_backoff).delay(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment() {
        let with = |v: &str| {
            let v = v.to_owned();
            HttpBrokerOptions::from_vars(move |k| (k == ENV_BROKER_ADDRESS).then(|| v.clone()))
                .address
        };
        assert_eq!(with(":8001"), ":8001");
        assert_eq!(with(" , 10.0.0.1:9000,10.0.0.2:9000"), "10.0.0.1:9000");
        assert_eq!(with(""), DEFAULT_ADDRESS);
        assert_eq!(
            HttpBrokerOptions::from_vars(|_| None).address,
            DEFAULT_ADDRESS
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let o = HttpBrokerOptions::new();
        for _ in 0..100 {
            let first = o.backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let third = o.backoff(3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            let late = o.backoff(30);
            assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10));
        }
    }
}
