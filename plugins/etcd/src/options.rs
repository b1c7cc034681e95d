//! [`EtcdOptions`]: how to reach etcd and where to keep the records.

use std::path::PathBuf;
use std::time::Duration;

use micro_registry::{Error, Result};

use crate::EtcdRegistry;

/// etcd's client port, added to addresses that have none.
pub const DEFAULT_PORT: u16 = 2379;
/// The endpoint used when none is given.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
/// go-micro's key prefix.
pub const DEFAULT_PREFIX: &str = "/micro/registry/";
/// go-micro's per-operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events a watcher holds for its reader before it pauses its etcd watch.
pub const DEFAULT_WATCH_BUFFER: usize = 256;

/// Options of an [`EtcdRegistry`]; a builder whose [`build`](EtcdOptions::build)
/// makes the registry.
///
/// ```
/// use std::time::Duration;
/// use micro_etcd::EtcdOptions;
///
/// let registry = EtcdOptions::new()
///     .endpoints(["10.0.0.1,10.0.0.2:2379", "https://etcd-3:2379"])
///     .timeout(Duration::from_secs(3))
///     .build();
/// // https:// needs a CA (see `TlsConfig`), so this one is refused up front.
/// assert!(registry.is_err());
/// ```
#[derive(Clone)]
pub struct EtcdOptions {
    pub(crate) endpoints: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) dial_timeout: Option<Duration>,
    pub(crate) auth: Option<(String, String)>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) prefix: String,
    pub(crate) watch_buffer: usize,
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .field("dial_timeout", &self.dial_timeout)
            // Never the password.
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .field("prefix", &self.prefix)
            .field("watch_buffer", &self.watch_buffer)
            .finish()
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            dial_timeout: None,
            auth: None,
            tls: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            watch_buffer: DEFAULT_WATCH_BUFFER,
        }
    }
}

impl EtcdOptions {
    /// Default options: `127.0.0.1:2379`, 5 s timeout, no auth, no TLS, prefix
    /// `/micro/registry/`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options from the environment, as go-micro reads them:
    /// `MICRO_REGISTRY_ADDRESS` (a comma-separated list of endpoints) and
    /// `ETCD_USERNAME` with `ETCD_PASSWORD` (used only when both are set).
    /// Everything else has its default.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut opts = Self::new();
        if let Some(addrs) = var("MICRO_REGISTRY_ADDRESS").filter(|a| !a.trim().is_empty()) {
            opts = opts.endpoints([addrs]);
        }
        if let (Some(user), Some(pass)) = (var("ETCD_USERNAME"), var("ETCD_PASSWORD")) {
            if !user.is_empty() {
                opts = opts.auth(user, pass);
            }
        }
        opts
    }

    /// The etcd endpoints (client URLs). Each entry may be a comma-separated list.
    /// An address without a scheme gets `http://` (`https://` when [`tls`](Self::tls)
    /// is set); one without a port gets `:2379`. Calling it again replaces the list.
    /// Default: `127.0.0.1:2379`.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.endpoints = endpoints
            .into_iter()
            .flat_map(|e| {
                e.as_ref()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        self
    }

    /// The time limit of each etcd operation (a read, a write, a lease grant, opening
    /// a stream). Default: 5 s, as go-micro.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time limit for connecting to an endpoint (and authenticating). Default:
    /// the operation [`timeout`](Self::timeout), as go-micro.
    pub fn dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = Some(timeout);
        self
    }

    /// User name and password for etcd's authentication. The token is fetched on
    /// first use and refreshed when etcd reports it expired. Default: none.
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// Connects over TLS, verifying the server's certificate against the given CA.
    /// Default: plain HTTP/2 (unless an endpoint says `https://`, which then
    /// requires this).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The key prefix under which records live; a missing trailing `/` is added.
    /// Default: `/micro/registry/` (go-micro's; change it only to keep registries
    /// apart).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let mut p: String = prefix.into();
        if !p.ends_with('/') {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    /// How many events each watcher holds for a reader that is slower than etcd
    /// (at least 1). When a watch response does not fit, the watcher pauses its
    /// etcd watch and resumes it from the last delivered revision once the reader
    /// has caught up. Default: 256.
    pub fn watch_buffer(mut self, events: usize) -> Self {
        self.watch_buffer = events.max(1);
        self
    }

    /// Makes the registry. Nothing is sent to etcd yet: the connection is made on
    /// first use, so this succeeds while etcd is down. Fails with
    /// [`Error::Invalid`] on an unusable endpoint or TLS file.
    pub fn build(self) -> Result<EtcdRegistry> {
        EtcdRegistry::new(self)
    }

    pub(crate) fn effective_dial_timeout(&self) -> Duration {
        self.dial_timeout.unwrap_or(self.timeout)
    }

    /// The endpoint URLs etcd-client gets: scheme and port added.
    pub(crate) fn normalized_endpoints(&self) -> Result<Vec<String>> {
        let list: Vec<&str> = if self.endpoints.is_empty() {
            vec![DEFAULT_ENDPOINT]
        } else {
            self.endpoints.iter().map(String::as_str).collect()
        };
        let default_scheme = if self.tls.is_some() { "https" } else { "http" };
        list.into_iter()
            .map(|e| normalize_endpoint(e, default_scheme))
            .collect()
    }
}

fn normalize_endpoint(raw: &str, default_scheme: &str) -> Result<String> {
    let invalid = |why: &str| Error::Invalid(format!("etcd endpoint {raw:?}: {why}"));
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (default_scheme.to_owned(), raw),
    };
    if scheme != "http" && scheme != "https" {
        return Err(invalid("scheme must be http or https"));
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(invalid("expected host[:port]"));
    }
    let uri: http::uri::Authority = authority.parse().map_err(|_| invalid("bad host or port"))?;
    let host = uri.host();
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let url = match uri.port_u16() {
        Some(_) => format!("{scheme}://{authority}"),
        // Something follows the host but is no valid port.
        None if authority.len() > host.len() => return Err(invalid("bad port")),
        None => format!("{scheme}://{authority}:{DEFAULT_PORT}"),
    };
    Ok(url)
}

/// TLS settings: the CA that signed etcd's certificate (required: no public root
/// store is bundled, since etcd clusters use private CAs), an optional client
/// certificate for etcd's `--client-cert-auth`, and an optional name to verify
/// instead of the endpoint's host.
///
/// Certificates are always verified; there is no option to skip verification
/// (the underlying gRPC stack offers none).
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    pub(crate) ca: Vec<Source>,
    pub(crate) identity: Option<(Source, Source)>,
    pub(crate) domain: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum Source {
    Pem(Vec<u8>),
    File(PathBuf),
}

impl Source {
    pub(crate) fn load(&self, what: &str) -> Result<Vec<u8>> {
        match self {
            Source::Pem(b) => Ok(b.clone()),
            Source::File(p) => std::fs::read(p)
                .map_err(|e| Error::Invalid(format!("etcd tls {what} {}: {e}", p.display()))),
        }
    }
}

impl TlsConfig {
    /// Empty settings; add a CA before use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificate(s) in this PEM text. May be called more than once.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca.push(Source::Pem(pem.into()));
        self
    }

    /// Trusts the CA certificate(s) in this PEM file (read when the registry is
    /// built). May be called more than once.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca.push(Source::File(path.into()));
        self
    }

    /// Presents this client certificate and key (PEM text). Default: none.
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((Source::Pem(cert.into()), Source::Pem(key.into())));
        self
    }

    /// Presents the client certificate and key in these PEM files. Default: none.
    pub fn identity_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((Source::File(cert.into()), Source::File(key.into())));
        self
    }

    /// The name the server certificate must carry. Default: the endpoint's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain = Some(name.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(opts: EtcdOptions) -> Vec<String> {
        opts.normalized_endpoints().unwrap_or_default()
    }

    #[test]
    fn endpoints_get_scheme_and_port() {
        assert_eq!(norm(EtcdOptions::new()), ["http://127.0.0.1:2379"]);
        assert_eq!(
            norm(EtcdOptions::new().endpoints(["a, b:1234 ,http://c", "https://d:5/", "[::1]"])),
            [
                "http://a:2379",
                "http://b:1234",
                "http://c:2379",
                "https://d:5",
                "http://[::1]:2379"
            ]
        );
        assert_eq!(
            norm(EtcdOptions::new().tls(TlsConfig::new()).endpoints(["a"])),
            ["https://a:2379"]
        );
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in ["ftp://a", "a/b", "a:", "a:99999", "http://", ":80"] {
            let res = EtcdOptions::new().endpoints([bad]).normalized_endpoints();
            assert!(
                matches!(res, Err(Error::Invalid(_))),
                "{bad:?} gave {res:?}"
            );
        }
    }

    #[test]
    fn env_is_read_like_go_micro() {
        let vars = |m: &'static [(&'static str, &'static str)]| {
            move |k: &str| m.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let o = EtcdOptions::from_vars(vars(&[
            ("MICRO_REGISTRY_ADDRESS", "10.0.0.1,10.0.0.2:2380"),
            ("ETCD_USERNAME", "root"),
            ("ETCD_PASSWORD", "pw"),
        ]));
        assert_eq!(o.endpoints, ["10.0.0.1", "10.0.0.2:2380"]);
        assert_eq!(o.auth, Some(("root".into(), "pw".into())));
        // A user name alone is not enough.
        let o = EtcdOptions::from_vars(vars(&[("ETCD_USERNAME", "root")]));
        assert_eq!(o.auth, None);
        assert!(o.endpoints.is_empty());
    }

    #[test]
    fn debug_hides_the_password() {
        let s = format!("{:?}", EtcdOptions::new().auth("root", "s3cret"));
        assert!(s.contains("root") && !s.contains("s3cret"), "{s}");
    }

    #[test]
    fn prefix_gets_a_trailing_slash() {
        assert_eq!(EtcdOptions::new().prefix("/x").prefix, "/x/");
        assert_eq!(EtcdOptions::new().prefix("/x/").prefix, "/x/");
    }
}
