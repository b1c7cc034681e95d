//! The crate's error type.

use std::path::PathBuf;

/// What building a [`ConsulRegistry`](crate::ConsulRegistry) or one request to Consul
/// can fail with.
///
/// Registry operations report these inside
/// [`micro_registry::Error::Backend`] (its `source`), and report timeouts as
/// [`micro_registry::Error::Timeout`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address in the options cannot be used.
    #[error("invalid consul address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("invalid environment variable {name}: {reason}")]
    Env {
        /// The variable's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A file named in the options could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The TLS settings cannot be used (bad PEM, no certificate in a CA file, a
    /// client key that does not match).
    #[error("tls: {0}")]
    Tls(String),
    /// The ACL token cannot be sent in an HTTP header.
    #[error("invalid consul token: {0}")]
    Token(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[source] reqwest::Error),
    /// Consul refused the request because of its ACLs: the token is missing,
    /// unknown, or lacks a permission the call needs.
    #[error("permission denied by consul acl (check the token): {0}")]
    PermissionDenied(String),
    /// Consul answered with an HTTP error status.
    #[error("consul answered {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The body of the answer (Consul's explanation).
        message: String,
    },
    /// The request did not get an answer (connection refused or reset, TLS
    /// handshake failure, ...).
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The URL requested (without query).
        url: String,
        /// What went wrong, with the causes (e.g. `connection refused`, `invalid
        /// peer certificate: UnknownIssuer`).
        reason: String,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// A blocking query on a watch's own connection got no answer: the agent
    /// could not be reached (`connecting`), the connection failed or closed, the
    /// answer was malformed or over a limit, or it did not come in time
    /// (`timed_out`).
    #[error("request to {url} failed: {reason}")]
    Connection {
        /// The URL requested (without query).
        url: String,
        /// What went wrong.
        reason: String,
        /// Whether no connection could be made (TCP connect or TLS handshake).
        connecting: bool,
        /// Whether the request timed out.
        timed_out: bool,
    },
    /// Consul's answer could not be decoded.
    #[error("malformed answer from {url}: {reason}")]
    Decode {
        /// The URL requested (without query).
        url: String,
        /// Why it could not be decoded.
        reason: String,
    },
}

impl Error {
    pub(crate) fn request(url: &str, source: reqwest::Error) -> Error {
        Error::Request {
            url: url.to_owned(),
            reason: describe(&source),
            source,
        }
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Request { source, .. } => source.is_timeout(),
            Error::Connection { timed_out, .. } => *timed_out,
            _ => false,
        }
    }

    /// Whether the agent could not be reached at all (so another address may be
    /// tried).
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            Error::Request { source, .. } => source.is_connect(),
            Error::Connection { connecting, .. } => *connecting,
            _ => false,
        }
    }

    /// Whether the agent answered with an error status (other than an ACL
    /// refusal): it was reached and said no, as opposed to not answering.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, Error::Status { .. })
    }

    /// Whether Consul answered with this HTTP status.
    pub fn is_status(&self, status: u16) -> bool {
        matches!(self, Error::Status { status: s, .. } if *s == status)
    }
}

/// A reqwest error with its causes, which its own message leaves out.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".into());
    }
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
