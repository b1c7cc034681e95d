//! Local failures of services, servers and clients (wire errors are [`RpcError`](crate::RpcError)).

/// Why starting, stopping or configuring a service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (could not listen, for example).
    #[error("transport: {0}")]
    Transport(#[from] micro_transport::Error),
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(#[from] micro_registry::Error),
    /// The broker failed.
    #[error("broker: {0}")]
    Broker(#[from] micro_broker::Error),
    /// The configuration is invalid (an unknown plugin name, a bad duration...).
    #[error("configuration: {0}")]
    Config(String),
    /// `start` was called on a running server or service.
    #[error("already started")]
    AlreadyStarted,
    /// A running server failed on its own: its listener died, or one of its tasks
    /// panicked.
    #[error("server failed: {0}")]
    Failed(String),
    /// A lifecycle hook failed.
    #[error("{hook} hook failed: {source}")]
    Hook {
        /// Which hook.
        hook: &'static str,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// `err` and each of its causes, `: `-separated, leaving out a cause whose text
/// the message already holds: `connect to 127.0.0.1:9 failed: Connection refused`.
pub(crate) fn chain(context: &str, err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::from(context);
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}
