//! [`Context`]: what a handler knows about the call it serves.

use std::sync::Arc;
use std::time::Duration;

use micro_transport::Header;
use tokio::time::Instant;

/// Call metadata: header-like pairs with case-insensitive names, as go-micro's
/// `metadata.Metadata` (names are kept in canonical form, `x-user-id` reads as
/// `X-User-Id`).
pub type Metadata = Header;

/// The context of one call, given to every handler.
///
/// It carries the caller's metadata (every header of the request, as go-micro
/// exposes them), the deadline the caller set (`Timeout` header), and where the call
/// came from. Pass it to [`CallBuilder::context`](crate::client::CallBuilder::context)
/// to propagate metadata and the remaining deadline to a downstream call.
#[derive(Clone, Debug, Default)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    metadata: Metadata,
    deadline: Option<Instant>,
    service: String,
    endpoint: String,
    local: String,
    remote: String,
}

impl Context {
    pub(crate) fn new(
        metadata: Metadata,
        deadline: Option<Instant>,
        service: &str,
        endpoint: &str,
        local: &str,
        remote: &str,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                metadata,
                deadline,
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                local: local.to_owned(),
                remote: remote.to_owned(),
            }),
        }
    }

    /// Every header of the request.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// One metadata value, by case-insensitive name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.inner.metadata.get(key)
    }

    /// When the caller stops waiting, if it said (`Timeout` header). The server
    /// cancels the handler at that moment and answers 408.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// Time left before the deadline (zero once passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The service the caller addressed (`Micro-Service`).
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The endpoint called, `Handler.Method`.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The server's address on this connection.
    pub fn local_addr(&self) -> &str {
        &self.inner.local
    }

    /// The caller's address.
    pub fn remote_addr(&self) -> &str {
        &self.inner.remote
    }
}
