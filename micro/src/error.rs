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
