//! Transports for micro.
//!
//! A transport moves [`Message`]s (headers and a body) between a client and a server.
//! [`Transport::listen`] gives a [`Listener`] whose `accept` yields one [`Socket`] per
//! inbound connection; [`Transport::dial`] gives a client [`Socket`]. A socket sends and
//! receives whole messages, and both directions can be used at once from different
//! tasks (a bidirectional stream sends while it receives).
//!
//! Two transports ship here:
//!
//! * [`HttpTransport`]: go-micro's HTTP transport on the wire, so Go services and ours
//!   call each other. Every message is one HTTP/1.1 request (client to server) or
//!   response (server to client) on a long-lived connection.
//! * [`MemoryTransport`]: in-process peers for tests and embedded use.
//!
//! [`Pool`] keeps idle client sockets per address for reuse by unary calls.
//!
//! This crate stands alone: it knows nothing about registries, codecs or RPC. Its
//! `tls` feature (off by default) adds TLS and mutual TLS with `micro-tls`.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod header;
pub mod http;
mod limits;
pub mod memory;
pub mod pool;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{Error, Result};
pub use header::{Header, canonical};
pub use http::{HttpTransport, HttpTransportOptions};
pub use limits::Limits;
pub use memory::MemoryTransport;
/// The TLS options and configurations the transport takes (crate `micro-tls`).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use micro_tls as tls;
pub use pool::{Pool, PoolOptions, Pooled};

/// One message: headers and an opaque body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers, names case-insensitive (see [`Header`]).
    pub header: Header,
    /// The body, cheap to clone so that a retry resends the same bytes.
    pub body: Bytes,
}

impl Message {
    /// A message with the given headers and body.
    pub fn new(header: Header, body: impl Into<Bytes>) -> Self {
        Self {
            header,
            body: body.into(),
        }
    }
}

/// Options for [`Transport::dial`].
#[derive(Clone, Debug)]
pub struct DialOptions {
    /// How long connecting may take (the TLS handshake, if any, gets as long again).
    /// Default: 5 s (go-micro's `DefaultDialTimeout`).
    pub connect_timeout: Duration,
    /// Dial with TLS, verifying the server as the configuration says. Default:
    /// `None`, plain TCP. A [`DialTls`] can only be made with the `tls` feature;
    /// transports without TLS ignore it.
    pub tls: Option<DialTls>,
}

impl Default for DialOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

impl DialOptions {
    /// Whether a dial with these options uses TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The TLS side of a dial: a client configuration (with the `tls` feature, made
/// from a `micro_tls::ClientTls` with `From`); the server is verified against the
/// name `ClientTls::server_name` gives for the dialled address.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DialTls {
    #[cfg(feature = "tls")]
    client: micro_tls::ClientTls,
}

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
impl From<micro_tls::ClientTls> for DialTls {
    fn from(client: micro_tls::ClientTls) -> Self {
        DialTls { client }
    }
}

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
impl DialTls {
    /// The client configuration.
    pub fn client(&self) -> &micro_tls::ClientTls {
        &self.client
    }
}

/// A way to reach peers: dial them, or listen for them.
///
/// Implementations are cheap to share (`Arc<dyn Transport>`).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Connects to `addr` (`host:port` for network transports).
    ///
    /// Cancelling the returned future abandons the attempt; nothing is left open.
    async fn dial(&self, addr: &str, opts: &DialOptions) -> Result<Box<dyn Socket>>;

    /// Starts listening on `addr`. For network transports `host:0` picks a free port;
    /// [`Listener::addr`] tells which.
    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>>;

    /// The transport's short name, as go-micro writes it into node metadata
    /// (`"http"`, `"memory"`).
    fn name(&self) -> &'static str;
}

/// Accepts inbound connections. Dropping the listener stops accepting; sockets that
/// were already accepted stay open.
#[async_trait]
pub trait Listener: Send + Sync {
    /// The address the listener is bound to (`host:port` with the real port).
    fn addr(&self) -> String;

    /// Whether accepted connections speak TLS. Default: false.
    fn is_secure(&self) -> bool {
        false
    }

    /// Waits for the next inbound connection.
    ///
    /// An error from one connection (a failed handshake, garbage before the first
    /// message) never surfaces here: such connections are closed and logged. An
    /// error means the listener itself failed.
    async fn accept(&self) -> Result<Box<dyn Socket>>;
}

/// One connection. `send` and `recv` take `&self` so that one task can send while
/// another receives; two concurrent `send`s (or `recv`s) are serialised.
#[async_trait]
pub trait Socket: Send + Sync {
    /// Sends one message. On a server socket this is a response to the peer, on a
    /// client socket a request.
    async fn send(&self, msg: &Message) -> Result<()>;

    /// Receives the next message. Returns [`Error::Closed`] once the peer closed the
    /// connection cleanly.
    async fn recv(&self) -> Result<Message>;

    /// Closes the connection; later calls fail with [`Error::Closed`].
    async fn close(&self);

    /// The local address.
    fn local_addr(&self) -> &str;

    /// The peer's address.
    fn remote_addr(&self) -> &str;

    /// Whether the connection is still usable, checked without blocking: false once
    /// the peer closed it or the socket failed. The pool uses this before reuse.
    fn is_open(&self) -> bool;

    /// Whether the connection runs over TLS. Default: false.
    fn is_secure(&self) -> bool {
        false
    }

    /// The identity the peer proved with its certificate: on a server socket the
    /// client's (mutual TLS), on a client socket the server's. Default: `None` (no
    /// TLS, or no certificate).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    fn peer_identity(&self) -> Option<std::sync::Arc<micro_tls::PeerIdentity>> {
        None
    }
}
