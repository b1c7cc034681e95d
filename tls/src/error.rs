//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// A TLS configuration failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: io::Error,
    },

    /// A certificate, key or authority is unusable (not PEM, empty, key does not
    /// match the certificate, ...).
    #[error("{what}: {reason}")]
    Invalid {
        /// Which input: a file name, or `"certificate"`, `"private key"`, ...
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The options do not make a configuration (a server without a certificate, ...).
    #[error("tls options: {0}")]
    Options(String),

    /// An environment variable holds something unusable.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// A handshake failed: the peer's certificate was refused (or ours), the peer
    /// does not speak TLS, or it took too long.
    #[error("tls handshake with {peer} failed: {reason}")]
    Handshake {
        /// The peer's address.
        peer: String,
        /// What went wrong, in rustls's words, with a hint where one helps.
        reason: String,
    },

    /// rustls refused the configuration.
    #[error("tls configuration")]
    Rustls(#[from] rustls::Error),
}

/// A result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
