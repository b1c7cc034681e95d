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

#[derive(Clone, Debug, Default)]
struct Inner {
    metadata: Metadata,
    deadline: Option<Instant>,
    /// The connection's addresses, shared by every call on it.
    addrs: Option<Arc<(String, String)>>,
    peer: Peer,
    extensions: http::Extensions,
}

/// The identity the caller proved with its certificate, when there is one (only
/// with the `tls` feature).
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer(#[cfg(feature = "tls")] Option<Arc<micro_tls::PeerIdentity>>);

impl Peer {
    /// The client certificate's identity on `socket` (mutual TLS).
    pub(crate) fn of_socket(_socket: &dyn micro_transport::Socket) -> Self {
        #[cfg(feature = "tls")]
        return Peer(_socket.peer_identity());
        #[cfg(not(feature = "tls"))]
        Peer()
    }

    /// The publisher's identity of a broker event (HTTP broker with mutual TLS).
    pub(crate) fn of_event(_event: &micro_broker::Event) -> Self {
        #[cfg(feature = "tls")]
        return Peer(_event.peer_identity().cloned());
        #[cfg(not(feature = "tls"))]
        Peer()
    }
}

impl Context {
    /// A context over a request's headers; `addrs` are the connection's (local,
    /// remote) addresses.
    pub(crate) fn new(
        metadata: Metadata,
        deadline: Option<Instant>,
        addrs: Option<Arc<(String, String)>>,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                metadata,
                deadline,
                addrs,
                peer: Peer::default(),
                extensions: http::Extensions::new(),
            }),
        }
    }

    /// The context with the caller's certificate identity (set right after `new`).
    pub(crate) fn with_peer(mut self, peer: Peer) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.peer = peer,
            None => tracing::debug!("peer identity set on a shared context; ignored"),
        }
        self
    }

    /// The identity the caller proved with its client certificate (subject, SANs,
    /// SPIFFE ID), when the server requires client certificates (mutual TLS: a
    /// transport or HTTP broker with a client CA); `None` otherwise. For
    /// authorization rules.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn peer_identity(&self) -> Option<&micro_tls::PeerIdentity> {
        self.inner.peer.0.as_deref()
    }

    /// Every header of the request, plus `Local` and `Remote` (the connection's
    /// addresses), as go-micro's servers give a handler's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// The metadata, for a server layer to change before the handler sees it (an
    /// auth layer replacing a token with the account it names, say). Copies the
    /// context's data if another clone shares it.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut Arc::make_mut(&mut self.inner).metadata
    }

    /// Typed values server layers attach for the handler: the account an auth
    /// layer resolved, the span a tracing layer opened. Nothing crosses the wire.
    pub fn extensions(&self) -> &http::Extensions {
        &self.inner.extensions
    }

    /// The extensions, to add to; copies the context's data if another clone
    /// shares it.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut Arc::make_mut(&mut self.inner).extensions
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

    /// The service the caller addressed (`Micro-Service`; empty for events).
    pub fn service(&self) -> &str {
        crate::wire::micro_header(&self.inner.metadata, crate::wire::MICRO_SERVICE).unwrap_or("")
    }

    /// The endpoint called, `Handler.Method` (empty for events).
    pub fn endpoint(&self) -> &str {
        let h = &self.inner.metadata;
        crate::wire::micro_header(h, crate::wire::MICRO_ENDPOINT)
            .or_else(|| crate::wire::micro_header(h, crate::wire::MICRO_METHOD))
            .unwrap_or("")
    }

    /// The topic of an event handed to a subscriber (`Micro-Topic`; empty for calls).
    pub fn topic(&self) -> &str {
        self.inner
            .metadata
            .get(crate::wire::MICRO_TOPIC)
            .unwrap_or("")
    }

    /// The server's address on this connection (empty for events from a broker).
    pub fn local_addr(&self) -> &str {
        self.inner.addrs.as_ref().map_or("", |a| a.0.as_str())
    }

    /// The caller's address (empty for events from a broker).
    pub fn remote_addr(&self) -> &str {
        self.inner.addrs.as_ref().map_or("", |a| a.1.as_str())
    }
}
