//! The crate's error type.

use std::io;

use bytes::Bytes;

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection is closed: the peer closed it, or [`Socket::close`] was called.
    ///
    /// [`Socket::close`]: crate::Socket::close
    #[error("connection closed")]
    Closed,

    /// Connecting to `addr` failed (refused, unreachable, timed out).
    #[error("connect to {addr} failed")]
    Connect {
        /// The address that was dialled.
        addr: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// Listening on `addr` failed (address in use, permission denied, no such interface).
    #[error("listen on {addr} failed")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// A send or receive did not finish within its deadline.
    #[error("timed out")]
    Timeout,

    /// Reading or writing the connection failed.
    #[error("i/o error")]
    Io(#[from] io::Error),

    /// The peer answered with an HTTP status other than 200.
    ///
    /// Displays as go-micro does: `"<code> <reason>: <body>"`, for example
    /// `500 Internal Server Error: an error occurred`.
    #[error("{}", status_text(*.code, .reason, .body))]
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase from the status line (may be empty).
        reason: String,
        /// The response body.
        body: Bytes,
    },

    /// The peer sent something that is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),

    /// A message (or one of its parts) is larger than the configured limit.
    #[error("{what} too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Which part: `"body"` or `"header block"`.
        what: &'static str,
        /// Its size in bytes, or the number of bytes seen when the limit was crossed.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// TLS failed with `addr`: the handshake was refused (certificate not trusted,
    /// expired, for another name; no client certificate where one is required), or
    /// the peer does not speak TLS.
    #[error("tls with {addr}: {reason}")]
    Tls {
        /// The peer's address.
        addr: String,
        /// What failed, in rustls's words.
        reason: String,
    },

    /// An address could not be understood.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A transport result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the failure concerns the connection or the peer as a whole rather than
    /// one message: connecting failed, the address is unusable, the connection broke or
    /// was closed, or the peer does not speak the protocol (a malformed message, an HTTP
    /// status other than 200).
    ///
    /// An RPC client uses this to tell a broken node (try another one) from a failed
    /// call. A [`Timeout`](Error::Timeout) is not counted: a slow handler does not make
    /// a node broken, and the caller decides what a deadline means. A
    /// [`TooLarge`](Error::TooLarge) is a property of the message, not of the peer.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Closed
                | Error::Connect { .. }
                | Error::Io(_)
                | Error::Status { .. }
                | Error::Malformed(_)
                | Error::Tls { .. }
                | Error::InvalidAddress { .. }
        )
    }

    /// The HTTP status code when the peer answered with a status other than 200.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        Error::Malformed(what.into())
    }
}

/// go-micro's error text for a non-200 response: Go's `Response.Status` (the status
/// line after the protocol) followed by `": "` and the body.
fn status_text(code: u16, reason: &str, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    if reason.is_empty() {
        format!("{code}: {body}")
    } else {
        format!("{code} {reason}: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_displays_like_go_micro() {
        let e = Error::Status {
            code: 500,
            reason: "Internal Server Error".into(),
            body: Bytes::from_static(b"an error occurred"),
        };
        assert_eq!(
            e.to_string(),
            "500 Internal Server Error: an error occurred"
        );
        assert_eq!(e.status_code(), Some(500));
        let e = Error::Status {
            code: 404,
            reason: String::new(),
            body: Bytes::new(),
        };
        assert_eq!(e.to_string(), "404: ");
    }

    #[test]
    fn connection_errors_are_classified() {
        assert!(Error::Closed.is_connection_error());
        assert!(
            Error::Connect {
                addr: "127.0.0.1:1".into(),
                source: io::ErrorKind::ConnectionRefused.into()
            }
            .is_connection_error()
        );
        assert!(!Error::Timeout.is_connection_error());
        assert!(
            !Error::TooLarge {
                what: "body",
                size: 2,
                limit: 1
            }
            .is_connection_error()
        );
        let e = Error::Connect {
            addr: "h:1".into(),
            source: io::ErrorKind::TimedOut.into(),
        };
        assert_eq!(e.to_string(), "connect to h:1 failed");
        assert!(std::error::Error::source(&e).is_some());
    }
}
