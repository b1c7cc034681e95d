//! The registry error type.

use std::sync::Arc;

/// A boxed error from a registry backend, shareable between the callers of a
/// single-flight lookup.
pub type BoxError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a registry, watcher or cache can fail with.
///
/// Errors are cheap to clone: the registry cache hands one lookup's error to every
/// caller that waited on it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service is not registered (go-micro's `service not found`).
    #[error("service not found")]
    NotFound,
    /// The watcher was stopped (go-micro's `watcher stopped`).
    #[error("watcher stopped")]
    WatcherStopped,
    /// A watcher fell behind and `missed` events were dropped for it; the watcher
    /// still works, but its consumer should re-read the services it tracks.
    #[error("watcher lagged behind and missed {missed} events")]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
    /// The service or request was rejected before reaching the backend.
    #[error("invalid service: {0}")]
    Invalid(String),
    /// A record read from the backend could not be decoded.
    #[error("malformed record {key}: {reason}")]
    Malformed {
        /// Where the record was found (a key, a tag, a service id).
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("{registry} registry: {op} timed out")]
    Timeout {
        /// The registry's short name.
        registry: &'static str,
        /// The operation, e.g. `register`.
        op: &'static str,
    },
    /// The backend failed (unreachable, refused, answered with an error).
    #[error("{registry} registry: {op}: {source}")]
    Backend {
        /// The registry's short name.
        registry: &'static str,
        /// The operation, e.g. `get_service`.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Wraps a backend error.
    pub fn backend(
        registry: &'static str,
        op: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            registry,
            op,
            source: Arc::new(source),
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound)
    }
}

/// `Result` with the registry [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
