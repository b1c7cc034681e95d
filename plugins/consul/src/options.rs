//! [`ConsulOptions`]: how to reach Consul and how to register.

use std::path::PathBuf;
use std::time::Duration;

use crate::{ConsulRegistry, Error};

/// The address used when none is configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";

/// Requests one registry sends at once by default (see
/// [`ConsulOptions::max_requests`]).
pub const DEFAULT_MAX_REQUESTS: usize = 32;

/// An HTTP health check Consul runs against every registered node (go-micro's
/// `HTTPCheck` option).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// The URL to probe. `{host}` is replaced by the node's host and `{port}` by
    /// its port, e.g. `http://{host}:8080/health`.
    pub url: String,
    /// How often Consul probes.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
}

/// Options of a [`ConsulRegistry`], built with chained calls and turned into a
/// registry by [`build`](ConsulOptions::build).
///
/// ```
/// use std::time::Duration;
/// use micro_consul::ConsulOptions;
///
/// let registry = ConsulOptions::new()
///     .address("127.0.0.1:8500")
///     .token("my-acl-token")
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// # drop(registry);
/// ```
#[derive(Clone)]
pub struct ConsulOptions {
    pub(crate) addresses: Vec<String>,
    pub(crate) token: Option<String>,
    pub(crate) secure: bool,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) tcp_check: Option<Duration>,
    pub(crate) http_check: Option<HttpCheck>,
    pub(crate) allow_stale: bool,
    pub(crate) datacenter: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) watch_wait: Duration,
    pub(crate) watch_min_interval: Duration,
    pub(crate) watch_full_read_interval: Duration,
    pub(crate) heartbeat: bool,
    pub(crate) max_requests: usize,
}

impl Default for ConsulOptions {
    fn default() -> Self {
        ConsulOptions {
            addresses: vec![DEFAULT_ADDRESS.to_owned()],
            token: None,
            secure: false,
            ca_file: None,
            client_cert: None,
            insecure_skip_verify: false,
            tcp_check: None,
            http_check: None,
            allow_stale: true,
            datacenter: None,
            timeout: Duration::from_secs(10),
            watch_wait: Duration::from_secs(60),
            watch_min_interval: Duration::from_millis(100),
            watch_full_read_interval: Duration::from_secs(1),
            heartbeat: true,
            max_requests: DEFAULT_MAX_REQUESTS,
        }
    }
}

impl std::fmt::Debug for ConsulOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulOptions")
            .field("addresses", &self.addresses)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("secure", &self.secure)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("tcp_check", &self.tcp_check)
            .field("http_check", &self.http_check)
            .field("allow_stale", &self.allow_stale)
            .field("datacenter", &self.datacenter)
            .field("timeout", &self.timeout)
            .field("watch_wait", &self.watch_wait)
            .field("watch_min_interval", &self.watch_min_interval)
            .field("watch_full_read_interval", &self.watch_full_read_interval)
            .field("heartbeat", &self.heartbeat)
            .field("max_requests", &self.max_requests)
            .finish()
    }
}

impl ConsulOptions {
    /// The defaults: Consul at [`DEFAULT_ADDRESS`] over plain HTTP, no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options read from the environment, on top of the defaults:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MICRO_REGISTRY_ADDRESS` | comma-separated Consul addresses (go-micro's name) |
    /// | `CONSUL_HTTP_ADDR` | the address, when `MICRO_REGISTRY_ADDRESS` is unset |
    /// | `CONSUL_HTTP_TOKEN` | ACL token |
    /// | `CONSUL_HTTP_TOKEN_FILE` | file holding the ACL token (when `CONSUL_HTTP_TOKEN` is unset) |
    /// | `CONSUL_HTTP_SSL` | `true`: HTTPS for addresses without a scheme |
    /// | `CONSUL_HTTP_SSL_VERIFY` | `false`: do not verify the server's certificate |
    /// | `CONSUL_CACERT` | PEM file of the CA certificates to trust |
    /// | `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` | PEM client certificate and key |
    ///
    /// Empty variables count as unset. Fails on a value that cannot be used (a
    /// boolean that is not one, a token file that cannot be read, a client
    /// certificate without its key).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable source.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut opts = ConsulOptions::default();
        if let Some(addrs) = var("MICRO_REGISTRY_ADDRESS").or_else(|| var("CONSUL_HTTP_ADDR")) {
            opts = opts.addresses(addrs.split(','));
        }
        if let Some(token) = var("CONSUL_HTTP_TOKEN") {
            opts.token = Some(token.trim().to_owned());
        } else if let Some(path) = var("CONSUL_HTTP_TOKEN_FILE") {
            let token = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                path: path.clone().into(),
                source,
            })?;
            opts.token = Some(token.trim().to_owned()).filter(|t| !t.is_empty());
        }
        if let Some(v) = var("CONSUL_HTTP_SSL") {
            opts.secure = parse_bool("CONSUL_HTTP_SSL", &v)?;
        }
        if let Some(v) = var("CONSUL_HTTP_SSL_VERIFY") {
            opts.insecure_skip_verify = !parse_bool("CONSUL_HTTP_SSL_VERIFY", &v)?;
        }
        if let Some(ca) = var("CONSUL_CACERT") {
            opts.ca_file = Some(ca.into());
        }
        match (var("CONSUL_CLIENT_CERT"), var("CONSUL_CLIENT_KEY")) {
            (Some(cert), Some(key)) => opts.client_cert = Some((cert.into(), key.into())),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::Env {
                    name: "CONSUL_CLIENT_KEY",
                    reason: "CONSUL_CLIENT_CERT is set but the key is not".into(),
                });
            }
            (None, Some(_)) => {
                return Err(Error::Env {
                    name: "CONSUL_CLIENT_CERT",
                    reason: "CONSUL_CLIENT_KEY is set but the certificate is not".into(),
                });
            }
        }
        Ok(opts)
    }

    /// The Consul agent to talk to: `host:port`, `host` (port 8500), or a URL with
    /// an `http://` or `https://` scheme. Default: [`DEFAULT_ADDRESS`].
    pub fn address(self, address: impl Into<String>) -> Self {
        self.addresses([address.into()])
    }

    /// Several agents, tried in order: a request that cannot connect moves on to
    /// the next one, which is then used until it fails in turn. Empty entries are
    /// ignored. Default: [`DEFAULT_ADDRESS`] only.
    pub fn addresses<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.addresses = addresses
            .into_iter()
            .map(|a| a.as_ref().trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        self
    }

    /// The ACL token sent with every request (`X-Consul-Token`). Default: none
    /// (the agent's default token applies).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// Use HTTPS for addresses given without a scheme. Default: false (an
    /// `https://` address is HTTPS regardless).
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// Trust only the CA certificates in this PEM file when verifying Consul's
    /// certificate. Default: the system's trusted roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this client certificate (PEM files of the certificate chain and of
    /// its private key) to agents that verify clients. Default: none.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Accept any certificate from Consul, without verifying it. Only for test
    /// setups: it removes TLS's protection against impostors. Default: false
    /// (certificates are verified; go-micro v4 skips verification).
    pub fn insecure_skip_verify(mut self, on: bool) -> Self {
        self.insecure_skip_verify = on;
        self
    }

    /// Have Consul check each node with a TCP connect to its address every
    /// `interval`, instead of a TTL check (go-micro's `TCPCheck`). It takes
    /// precedence over [`http_check`](Self::http_check) and the TTL. Default: off.
    pub fn tcp_check(mut self, interval: Duration) -> Self {
        self.tcp_check = Some(interval).filter(|d| !d.is_zero());
        self
    }

    /// Have Consul probe each node over HTTP, instead of a TTL check (go-micro's
    /// `HTTPCheck`). Used when no TCP check is set. Default: off.
    pub fn http_check(mut self, check: HttpCheck) -> Self {
        self.http_check = Some(check).filter(|c| !c.interval.is_zero());
        self
    }

    /// Let lookups ([`get_service`](micro_registry::Registry::get_service),
    /// [`list_services`](micro_registry::Registry::list_services)) be answered by
    /// any Consul server, not only the leader: faster, possibly slightly behind.
    /// Watches always read consistently. Default: true (as go-micro).
    pub fn allow_stale(mut self, on: bool) -> Self {
        self.allow_stale = on;
        self
    }

    /// Read from this datacenter. Registrations always go to the agent's own.
    /// Default: the agent's datacenter.
    pub fn datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into()).filter(|d| !d.is_empty());
        self
    }

    /// How long one request may take (a watch's blocking query gets its wait time
    /// on top). Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a watch's blocking query waits for a change before it asks
    /// again (Consul caps it at 10 minutes and adds up to 1/16 of jitter).
    /// Default: 60 s.
    pub fn watch_wait(mut self, wait: Duration) -> Self {
        self.watch_wait = wait.clamp(Duration::from_secs(1), Duration::from_secs(600));
        self
    }

    /// The shortest time between the starts of two blocking queries of one
    /// watch, so that a service changing constantly cannot make a watch spin.
    /// Default: 100 ms.
    pub fn watch_min_interval(mut self, d: Duration) -> Self {
        self.watch_min_interval = d;
        self
    }

    /// The shortest time between two full re-reads of a watch of all services.
    /// Such a watch reads again only the services a change is pinned to; a
    /// change that neither of its two queries pins to a service (an instance
    /// without checks, a new port with the same tags and checks) is found by
    /// reading every service again, which it then does after this interval
    /// (and after at least nine times the last full re-read's duration, so
    /// they take at most a tenth of its time). A longer interval costs a large
    /// datacenter less and reports those rare changes later. Default: 1 s.
    pub fn watch_full_read_interval(mut self, d: Duration) -> Self {
        self.watch_full_read_interval = d;
        self
    }

    /// Keep TTL checks passing from a background task (when nobody passed them for
    /// half the TTL),
    /// re-registering a node the agent lost, between the caller's own
    /// registrations. Off, a node stays healthy only while the caller registers it
    /// again within each TTL (go-micro's behaviour). Default: true.
    pub fn heartbeat(mut self, on: bool) -> Self {
        self.heartbeat = on;
        self
    }

    /// The most requests the registry has in flight at once, blocking queries
    /// (which own a connection each, one per watched service) left aside. The
    /// others wait their turn, within their timeout. Default:
    /// [`DEFAULT_MAX_REQUESTS`], at least 1.
    ///
    /// Each request in flight holds a connection to the agent, and Consul
    /// answers `429` to a client address with more than
    /// `limits.http_max_conns_per_client` connections (200 by default, shared
    /// by every process on the host): without a bound, a process renewing
    /// thousands of registrations against a slow agent opens a connection per
    /// waiting renewal and is then refused everything.
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = n.max(1);
        self
    }

    /// The registry. Fails when an address cannot be used or the TLS settings
    /// cannot be loaded. Needs no runtime and makes no request.
    pub fn build(self) -> Result<ConsulRegistry, Error> {
        ConsulRegistry::with_options(self)
    }
}

/// Go's `strconv.ParseBool`, which Consul's own tools use for these variables.
fn parse_bool(name: &'static str, v: &str) -> Result<bool, Error> {
    match v.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(Error::Env {
            name,
            reason: format!("{other:?} is not a boolean"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<ConsulOptions, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsulOptions::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn env_defaults() {
        let o = from(&[]).unwrap();
        assert_eq!(o.addresses, vec![DEFAULT_ADDRESS.to_owned()]);
        assert!(o.token.is_none());
        assert!(o.allow_stale);
        assert!(!o.secure);
        assert!(!o.insecure_skip_verify);
    }

    #[test]
    fn env_micro_address_wins() {
        let o = from(&[
            ("MICRO_REGISTRY_ADDRESS", "10.0.0.1:8500, 10.0.0.2"),
            ("CONSUL_HTTP_ADDR", "10.9.9.9:8500"),
            ("CONSUL_HTTP_TOKEN", " secret "),
        ])
        .unwrap();
        assert_eq!(o.addresses, vec!["10.0.0.1:8500", "10.0.0.2"]);
        assert_eq!(o.token.as_deref(), Some("secret"));
        let o = from(&[("MICRO_REGISTRY_ADDRESS", ""), ("CONSUL_HTTP_ADDR", "h:1")]).unwrap();
        assert_eq!(o.addresses, vec!["h:1"]);
    }

    #[test]
    fn env_tls() {
        let o = from(&[
            ("CONSUL_HTTP_SSL", "true"),
            ("CONSUL_HTTP_SSL_VERIFY", "0"),
            ("CONSUL_CACERT", "/ca.pem"),
            ("CONSUL_CLIENT_CERT", "/c.pem"),
            ("CONSUL_CLIENT_KEY", "/k.pem"),
        ])
        .unwrap();
        assert!(o.secure);
        assert!(o.insecure_skip_verify);
        assert_eq!(o.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            o.client_cert,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
    }

    #[test]
    fn env_rejects_bad_values() {
        let e = from(&[("CONSUL_HTTP_SSL", "yes")]).unwrap_err();
        assert!(e.to_string().contains("CONSUL_HTTP_SSL"), "{e}");
        let e = from(&[("CONSUL_CLIENT_CERT", "/c.pem")]).unwrap_err();
        assert!(e.to_string().contains("CONSUL_CLIENT_KEY"), "{e}");
        let e = from(&[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/token"), "{e}");
    }

    #[test]
    fn debug_hides_the_token() {
        let shown = format!("{:?}", ConsulOptions::new().token("s3cr3t"));
        assert!(
            !shown.contains("s3cr3t") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn env_token_file() {
        let dir = std::env::temp_dir().join(format!("micro-consul-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let o = from(&[("CONSUL_HTTP_TOKEN_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(o.token.as_deref(), Some("from-file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
