//! [`Limits`]: what a server accepts from its peers.

use std::time::Duration;

/// What a server accepts from its peers, and how long it waits for them: one
/// struct with one set of names for every server micro runs on the network (the
/// HTTP transport's, the HTTP broker's subscriber endpoint, the front doors to
/// come). A client reading replies applies the size limits too.
///
/// Work beyond a limit gets a clear answer and costs nothing more: a connection
/// over `max_connections` is answered `503 Service Unavailable` and closed, a head
/// over `max_header_size` `431`, a body over `max_body_size` `413`, a peer too
/// slow for a timeout is disconnected (`408` when a request was under way). The
/// defaults follow go-micro's and Go's: every message a conforming go-micro peer
/// sends fits.
///
/// ```
/// use std::time::Duration;
/// use micro_transport::Limits;
///
/// let limits = Limits {
///     max_body_size: 1 << 20,
///     max_connections: 4096,
///     header_read_timeout: Some(Duration::from_secs(5)),
///     ..Limits::default()
/// };
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message body accepted, in either direction of reading. Default:
    /// 4 MiB (go-micro's default gRPC and HTTP/2 message size; RPC payloads are far
    /// smaller). A server answers a larger request with `413 Payload Too Large`
    /// without reading it and closes the connection.
    pub max_body_size: usize,
    /// Largest header block (request or status line and all headers), in bytes, in
    /// either direction of reading. Default: 1 MiB, what Go's HTTP servers accept
    /// (`DefaultMaxHeaderBytes`), so every head a conforming go-micro peer sends is
    /// read: hundreds of metadata pairs, and go-micro's errors, which travel twice
    /// (`Micro-Error` and `X-Micro-Error`), up to nearly 512 KiB each. There is no
    /// separate limit on the number of header lines: the bytes bound it. A server
    /// answers a larger block with `431 Request Header Fields Too Large` and closes
    /// the connection; a client reports [`Error::TooLarge`](crate::Error::TooLarge).
    pub max_header_size: usize,
    /// Most connections a server holds open at once. Default: 16 384 (go-micro has
    /// no limit; at about 12 KiB per idle connection this bounds a server's
    /// connection memory near 200 MiB). One more is answered `503 Service
    /// Unavailable` and closed, which a client takes as "not sent" and tries
    /// another node.
    pub max_connections: usize,
    /// How long a message's headers may take to arrive, from its first byte to the
    /// end of the header block. Default: 10 s (Go's servers use 5 s for the first
    /// request; a little more slack for busy machines). Protects against peers that
    /// start a message and stall (slowloris). `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// How long a message's body may take to arrive once its headers have.
    /// Default: 30 s, enough for a 4 MiB body over a slow link.
    pub body_read_timeout: Option<Duration>,
    /// How long a server connection may stay silent in both directions, with every
    /// request answered, before the server closes it. Default: 5 min, well above
    /// go-micro's 1 min connection pool TTL, so that a client never picks a pooled
    /// connection the server is about to close; a stream that is silent for this
    /// long is closed too. Requests still waiting for their first response keep the
    /// connection open however long they take.
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_size: 4 * 1024 * 1024,
            max_header_size: 1024 * 1024,
            max_connections: 16 * 1024,
            header_read_timeout: Some(Duration::from_secs(10)),
            body_read_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}
