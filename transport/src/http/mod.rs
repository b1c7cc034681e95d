//! go-micro's HTTP transport.
//!
//! On the wire every message is one HTTP/1.1 exchange on a long-lived TCP connection:
//! the client writes a `POST / HTTP/1.1` request per message (headers = message
//! headers, body = message body) and the server answers with raw `HTTP/1.1 200 OK`
//! responses, one per message it sends. A stream sends several responses for one
//! request, which is why the framing is written by hand here and not by an HTTP
//! library. Go services built with go-micro's default transport and ours call each
//! other both ways.
//!
//! A received message's headers are the request's (or response's) headers, first
//! value of each, names in canonical form (`micro-id` becomes `Micro-Id`); like Go's
//! `net/http`, `Host` and `Transfer-Encoding` are left out and `Content-Length` is
//! kept. Writing a message, header values have control characters (CR, LF) replaced
//! by spaces and headers whose names are not HTTP tokens are skipped, so a header can
//! never split the message; the framing headers are always the transport's own.
//!
//! The server is strict where go-micro is lax, so that a misbehaving peer costs one
//! connection and nothing else: methods other than `POST` get `405 Method Not
//! Allowed` (and the connection keeps serving), oversized heads get `431`, oversized
//! bodies `413`, garbage `400`, and slow or silent peers are disconnected by the
//! timeouts of [`HttpTransportOptions`]. Apart from the `405`, each of these closes the
//! connection after the error response, and the server socket's `recv` then returns
//! the matching error ([`Error::TooLarge`](crate::Error::TooLarge),
//! [`Error::Malformed`](crate::Error::Malformed), [`Error::Timeout`](crate::Error::Timeout))
//! so that the server loop can log it and drop the socket. `Listener::accept` never
//! sees them.
//!
//! With the `tls` feature, `HttpTransport::tls` makes listeners serve TLS (and
//! mutual TLS) with a `micro_tls::TlsOptions`, and
//! [`DialOptions::tls`](crate::DialOptions::tls) dials with TLS; the framing inside
//! is the same. Handshakes run concurrently (a silent or slow client holds up no
//! other), each bounded by the header read timeout; a plain HTTP request on a TLS
//! port gets Go's `400 Bad Request` ("Client sent an HTTP request to an HTTPS
//! server.") and a TLS handshake on a plain port a `400` of the plain server, which a
//! TLS client reports as [`Error::Tls`](crate::Error::Tls) ("the peer does not speak
//! TLS"). `Socket::peer_identity` tells whom the peer's certificate names.
//!
//! ```
//! use micro_transport::{DialOptions, HttpTransport, Message, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro_transport::Result<()> {
//! let transport = HttpTransport::new();
//! let listener = transport.listen("127.0.0.1:0").await?;
//! let addr = listener.addr();
//! let server = tokio::spawn(async move {
//!     let socket = listener.accept().await?;
//!     let request = socket.recv().await?;
//!     socket.send(&request).await // echo
//! });
//!
//! let client = transport.dial(&addr, &DialOptions::default()).await?;
//! let mut msg = Message::default();
//! msg.header.insert("Content-Type", "application/json");
//! msg.body = "{}".into();
//! client.send(&msg).await?;
//! let reply = client.recv().await?;
//! assert_eq!(reply.body, msg.body);
//! server.await.expect("server task")?;
//! # Ok(())
//! # }
//! ```

mod client;
mod codec;
mod conn;
mod io;
mod listener;
mod read;
mod server;
#[cfg(feature = "tls")]
mod tls;
pub mod wire;

use std::time::Duration;

use async_trait::async_trait;

use crate::{DialOptions, Limits, Listener, Result, Socket, Transport};

/// Options of the [`HttpTransport`]. Build with [`HttpTransportOptions::new`] (or
/// `default()`) and the setters; each setter documents its default.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpTransportOptions {
    pub(crate) limits: Limits,
    pub(crate) timeout: Option<Duration>,
}

impl HttpTransportOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the transport accepts from peers: sizes, connections, read timeouts.
    /// Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Deadline for each `send` and each `recv`, like go-micro's transport `Timeout`
    /// option. Default: none (as in go-micro), because a receive often waits for a
    /// handler or for the next message of a stream; RPC deadlines live in the client
    /// and server instead.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }
}

/// go-micro's HTTP transport (`name()` = `"http"`); see the [module docs](self).
///
/// Cheap to clone; clones share nothing but their options. Its sockets and listeners
/// need a Tokio runtime with I/O and time enabled.
#[derive(Clone, Debug, Default)]
pub struct HttpTransport {
    opts: HttpTransportOptions,
    #[cfg(feature = "tls")]
    tls: Option<micro_tls::TlsOptions>,
}

impl HttpTransport {
    /// A transport with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport with the given options.
    pub fn with_options(opts: HttpTransportOptions) -> Self {
        Self {
            opts,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves TLS on every listener, with the certificate (and, for mutual TLS, the
    /// client CA) of `tls`: each `listen` loads them, and fails if they cannot be
    /// loaded. Options that give no certificate (and no self-signed mode) leave
    /// listeners plain. Dialling with TLS is chosen per dial
    /// ([`DialOptions::tls`](crate::DialOptions::tls)). Default: no TLS.
    ///
    /// A listener serving TLS answers plain HTTP with Go's `400` ("Client sent an
    /// HTTP request to an HTTPS server.") and closes the connection; handshakes run
    /// concurrently, each bounded by the header read timeout, and a failed one is
    /// logged and costs that connection only.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: micro_tls::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS options given with [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_options(&self) -> Option<&micro_tls::TlsOptions> {
        self.tls.as_ref()
    }

    fn wrap(&self, listener: listener::HttpListener) -> Result<Box<dyn Listener>> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_ref().filter(|t| t.serves_tls()) {
            let config = tls
                .server(&[micro_tls::ALPN_HTTP1])
                .map_err(|e| crate::Error::Tls {
                    addr: listener.addr_str().to_owned(),
                    reason: e.to_string(),
                })?;
            return Ok(Box::new(listener.with_tls(config)));
        }
        Ok(Box::new(listener))
    }

    /// The transport's options.
    pub fn options(&self) -> &HttpTransportOptions {
        &self.opts
    }

    /// A listener serving on a socket bound elsewhere (go-micro's `NetListener` listen
    /// option): for sockets handed over by a supervisor, or bound with options this
    /// crate does not set.
    ///
    /// Must be called from within a Tokio runtime; outside one it fails.
    pub fn listener_from_std(&self, listener: std::net::TcpListener) -> Result<Box<dyn Listener>> {
        self.wrap(listener::HttpListener::from_std(listener, self.opts)?)
    }
}

#[async_trait]
impl Transport for HttpTransport {
    /// Connects to `host:port` (an IPv6 host in brackets) within
    /// `opts.connect_timeout`. Cancelling the future abandons the attempt.
    async fn dial(&self, addr: &str, opts: &DialOptions) -> Result<Box<dyn Socket>> {
        Ok(Box::new(
            client::ClientSocket::connect(addr, opts, self.opts).await?,
        ))
    }

    /// Listens on `host:port`. Port 0 picks a free port; `host:min-max` binds the first
    /// free port of the range (go-micro v4). An empty host (`:8080`) listens on all
    /// IPv4 interfaces; use `[::]:8080` for IPv6.
    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>> {
        self.wrap(listener::HttpListener::bind(addr, self.opts).await?)
    }

    fn name(&self) -> &'static str {
        "http"
    }
}
