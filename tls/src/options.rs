//! [`TlsOptions`] and reading them from the environment.

use std::path::Path;
use std::time::Duration;

use crate::{ClientTls, Error, Pem, Result, ServerTls};

/// This service's certificate chain (PEM file).
pub const ENV_CERT: &str = "MICRO_TLS_CERT";
/// This service's private key (PEM file).
pub const ENV_KEY: &str = "MICRO_TLS_KEY";
/// The authorities servers' certificates must chain to (PEM file).
pub const ENV_CA: &str = "MICRO_TLS_CA";
/// The authorities client certificates must chain to (PEM file); turns on mutual TLS.
pub const ENV_CLIENT_CA: &str = "MICRO_TLS_CLIENT_CA";
/// `true`: skip verifying servers' certificates (go-micro v6's name).
pub const ENV_INSECURE: &str = "MICRO_TLS_INSECURE";
/// `true`: serve a self-signed certificate made at start (development only).
pub const ENV_SELF_SIGNED: &str = "MICRO_TLS_SELF_SIGNED";
/// The name servers' certificates are verified against.
pub const ENV_SERVER_NAME: &str = "MICRO_TLS_SERVER_NAME";
/// `true`: dial every node with TLS.
pub const ENV_DIAL_ALL: &str = "MICRO_TLS_DIAL_ALL";
/// Seconds between checks of the certificate files.
pub const ENV_RELOAD_INTERVAL: &str = "MICRO_TLS_RELOAD_INTERVAL";

/// Everything about TLS, for servers and clients alike; see the [crate docs](crate).
///
/// Build with [`TlsOptions::new`] and the methods (each documents its default), or
/// read from the environment with [`TlsOptions::from_env`]. Then
/// [`server`](Self::server) and [`client`](Self::client) make the rustls
/// configurations (transports and brokers call them; most programs never do).
///
/// ```
/// use micro_tls::TlsOptions;
///
/// # let ca = micro_tls::testing::TestCa::new("doc");
/// # let ca_pem = ca.cert_pem();
/// // A client that trusts one CA:
/// let client = TlsOptions::new().ca_pem(ca_pem).client()?;
/// # let _ = client;
/// # Ok::<(), micro_tls::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub(crate) identity: Option<(Pem, Pem)>,
    pub(crate) self_signed: bool,
    pub(crate) ca: Option<Pem>,
    pub(crate) client_ca: Option<Pem>,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) server_name: Option<String>,
    pub(crate) dial_all: bool,
    pub(crate) reload_interval: Duration,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            identity: None,
            self_signed: false,
            ca: None,
            client_ca: None,
            insecure_skip_verify: false,
            server_name: None,
            dial_all: false,
            reload_interval: Duration::from_secs(5),
        }
    }
}

impl TlsOptions {
    /// The defaults: no certificate, servers verified against the system's roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// This service's certificate chain and private key, from PEM files: what a
    /// server serves, and what a client presents when a server asks for a client
    /// certificate. The files are read again when they change (see
    /// [`reload_interval`](Self::reload_interval)). Default: none.
    pub fn cert_files(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.identity = Some((Pem::file(cert), Pem::file(key)));
        self
    }

    /// This service's certificate chain and private key, as PEM in memory (see
    /// [`cert_files`](Self::cert_files)). Default: none.
    pub fn cert_pem(mut self, cert: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        self.identity = Some((Pem::inline(cert), Pem::inline(key)));
        self
    }

    /// With no certificate given, serve a self-signed certificate made at start
    /// (ECDSA P-256, one year, names `localhost`, `127.0.0.1`, `::1`), as go-micro's
    /// `Secure` transport does without a TLS config. **For development only**: no
    /// client can verify it, so clients must skip verification. Logged as a warning.
    /// Default: off (a server without a certificate is an error).
    pub fn self_signed(mut self, on: bool) -> Self {
        self.self_signed = on;
        self
    }

    /// The authorities servers' certificates must chain to, from a PEM file.
    /// Default: the system's trusted roots.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca = Some(Pem::file(path));
        self
    }

    /// The authorities servers' certificates must chain to, as PEM in memory.
    /// Default: the system's trusted roots.
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca = Some(Pem::inline(pem));
        self
    }

    /// Mutual TLS: a server requires a client certificate chaining to these
    /// authorities (PEM file), and refuses the handshake without one. Default: none
    /// (clients are not asked for a certificate).
    pub fn client_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.client_ca = Some(Pem::file(path));
        self
    }

    /// Mutual TLS with the authorities as PEM in memory (see
    /// [`client_ca_file`](Self::client_ca_file)). Default: none.
    pub fn client_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.client_ca = Some(Pem::inline(pem));
        self
    }

    /// Do not verify servers' certificates: any peer can then pretend to be any
    /// service. For development, or to reach go-micro services with self-signed
    /// certificates. Logged as a warning whenever a client configuration is built.
    /// Default: off (verify).
    pub fn insecure_skip_verify(mut self, on: bool) -> Self {
        self.insecure_skip_verify = on;
        self
    }

    /// Verify servers' certificates against this name instead of the dialled host
    /// (an IP address, matched against the certificate's IP SANs, for nodes found in
    /// a registry). Default: the dialled host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Dial every node with TLS, whatever its registry record says, as go-micro's
    /// `Secure` transport does (go-micro servers do not say that they serve TLS).
    /// Default: off: nodes whose metadata says `secure=true` (ours, when serving TLS)
    /// are dialled with TLS, the others in plain TCP, so that a mesh can move to TLS
    /// one service at a time.
    pub fn dial_all(mut self, on: bool) -> Self {
        self.dial_all = on;
        self
    }

    /// How often certificate files are checked for changes. Default: 5 s.
    pub fn reload_interval(mut self, every: Duration) -> Self {
        self.reload_interval = every;
        self
    }

    /// Whether a server with these options serves TLS (a certificate is given, or
    /// self-signed mode is on).
    pub fn serves_tls(&self) -> bool {
        self.identity.is_some() || self.self_signed
    }

    /// Whether a server with these options requires client certificates.
    pub fn requires_client_cert(&self) -> bool {
        self.client_ca.is_some()
    }

    /// Whether clients skip verifying servers.
    pub fn is_insecure(&self) -> bool {
        self.insecure_skip_verify
    }

    /// Whether clients dial every node with TLS.
    pub fn dials_all(&self) -> bool {
        self.dial_all
    }

    /// The server side: see [`ServerTls::new`]. `alpn` lists the application
    /// protocols served (`[ALPN_HTTP1]` for the HTTP transport and broker).
    ///
    /// [`ALPN_HTTP1`]: crate::ALPN_HTTP1
    pub fn server(&self, alpn: &[&[u8]]) -> Result<ServerTls> {
        ServerTls::new(self, alpn)
    }

    /// The client side: see [`ClientTls::new`].
    pub fn client(&self) -> Result<ClientTls> {
        ClientTls::new(self)
    }

    /// The options the `MICRO_TLS_*` variables describe (see the [crate docs](crate)),
    /// or `None` when none of them is set. A certificate without a key (or the other
    /// way round), an unknown boolean or an unreadable interval is an error; the files
    /// are read later, when a configuration is built.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let all = [
            ENV_CERT,
            ENV_KEY,
            ENV_CA,
            ENV_CLIENT_CA,
            ENV_INSECURE,
            ENV_SELF_SIGNED,
            ENV_SERVER_NAME,
            ENV_DIAL_ALL,
            ENV_RELOAD_INTERVAL,
        ];
        if all.iter().all(|k| get(k).is_none()) {
            return Ok(None);
        }
        let mut opts = Self::new();
        match (get(ENV_CERT), get(ENV_KEY)) {
            (Some(c), Some(k)) => opts = opts.cert_files(c.trim(), k.trim()),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::Env {
                    var: ENV_KEY,
                    reason: format!("not set, but {ENV_CERT} is"),
                });
            }
            (None, Some(_)) => {
                return Err(Error::Env {
                    var: ENV_CERT,
                    reason: format!("not set, but {ENV_KEY} is"),
                });
            }
        }
        if let Some(ca) = get(ENV_CA) {
            opts = opts.ca_file(ca.trim());
        }
        if let Some(ca) = get(ENV_CLIENT_CA) {
            opts = opts.client_ca_file(ca.trim());
        }
        if let Some(name) = get(ENV_SERVER_NAME) {
            opts = opts.server_name(name.trim());
        }
        opts.insecure_skip_verify = flag(ENV_INSECURE, get(ENV_INSECURE))?;
        opts.self_signed = flag(ENV_SELF_SIGNED, get(ENV_SELF_SIGNED))?;
        opts.dial_all = flag(ENV_DIAL_ALL, get(ENV_DIAL_ALL))?;
        if let Some(s) = get(ENV_RELOAD_INTERVAL) {
            let secs: f64 = s.trim().parse().map_err(|_| Error::Env {
                var: ENV_RELOAD_INTERVAL,
                reason: format!("{s:?} is not a number of seconds"),
            })?;
            opts.reload_interval = Duration::try_from_secs_f64(secs).map_err(|e| Error::Env {
                var: ENV_RELOAD_INTERVAL,
                reason: e.to_string(),
            })?;
        }
        Ok(Some(opts))
    }
}

/// A boolean variable, as Go's `strconv.ParseBool` reads it.
fn flag(var: &'static str, value: Option<String>) -> Result<bool> {
    let Some(v) = value else { return Ok(false) };
    match v.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(Error::Env {
            var,
            reason: format!("{other:?} is not a boolean"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_set_is_none() {
        assert!(TlsOptions::from_vars(vars(&[])).unwrap().is_none());
        assert!(
            TlsOptions::from_vars(vars(&[(ENV_CERT, " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_variable_is_read() {
        let opts = TlsOptions::from_vars(vars(&[
            (ENV_CERT, "/c.pem"),
            (ENV_KEY, "/k.pem"),
            (ENV_CA, "/ca.pem"),
            (ENV_CLIENT_CA, "/cca.pem"),
            (ENV_INSECURE, "true"),
            (ENV_SELF_SIGNED, "1"),
            (ENV_SERVER_NAME, "svc.internal"),
            (ENV_DIAL_ALL, "T"),
            (ENV_RELOAD_INTERVAL, "0.5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            opts.identity,
            Some((Pem::file("/c.pem"), Pem::file("/k.pem")))
        );
        assert_eq!(opts.ca, Some(Pem::file("/ca.pem")));
        assert!(opts.requires_client_cert());
        assert!(opts.is_insecure() && opts.self_signed && opts.dials_all());
        assert_eq!(opts.server_name.as_deref(), Some("svc.internal"));
        assert_eq!(opts.reload_interval, Duration::from_millis(500));
    }

    #[test]
    fn bad_variables_are_clear_errors() {
        let err = TlsOptions::from_vars(vars(&[(ENV_CERT, "/c.pem")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MICRO_TLS_KEY: not set, but MICRO_TLS_CERT is"
        );
        let err = TlsOptions::from_vars(vars(&[(ENV_INSECURE, "yes")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MICRO_TLS_INSECURE: \"yes\" is not a boolean"
        );
        let err = TlsOptions::from_vars(vars(&[(ENV_RELOAD_INTERVAL, "-1")])).unwrap_err();
        assert!(
            err.to_string().starts_with("MICRO_TLS_RELOAD_INTERVAL"),
            "{err}"
        );
    }
}
