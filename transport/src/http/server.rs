//! The server side of a connection: reads requests, writes raw responses.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Buf;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::HttpTransportOptions;
use super::codec::{self, ConnectionHeader, Framing, HeadError, Method};
use super::conn::{Conn, LazyDeadline, Reader, after, earliest, unexpected_eof};
use super::listener::ConnSlot;
use crate::{Error, Message, Result, Socket};

/// Bound on writing a transport-level error response to a peer that does not read.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct ServerSocket {
    conn: Conn,
    /// The `Connection` header the next response carries (a [`ConnectionHeader`]).
    connection: AtomicU8,
    /// A request was received and has had no response yet.
    unanswered: AtomicBool,
    /// When the socket was created; `last_activity` counts from here.
    born: Instant,
    /// Nanoseconds from `born` to the last message sent or received.
    last_activity: AtomicU64,
    /// Counts the connection against the listener's limit until it is dropped.
    _slot: ConnSlot,
}

/// A request rejected at the transport level; the connection closes after it.
struct Rejection {
    code: u16,
    reason: &'static str,
    error: Error,
}

impl ServerSocket {
    pub(crate) fn new(
        stream: TcpStream,
        opts: HttpTransportOptions,
        slot: ConnSlot,
    ) -> io::Result<Self> {
        Ok(Self::from_conn(Conn::new(stream, opts)?, slot))
    }

    pub(crate) fn from_conn(conn: Conn, slot: ConnSlot) -> Self {
        Self {
            conn,
            connection: AtomicU8::new(ConnectionHeader::None as u8),
            unanswered: AtomicBool::new(false),
            born: Instant::now(),
            last_activity: AtomicU64::new(0),
            _slot: slot,
        }
    }

    fn touch(&self) {
        let nanos = self.born.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.last_activity.store(nanos, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.born + Duration::from_nanos(self.last_activity.load(Ordering::Relaxed))
    }

    fn next_connection_header(&self) -> ConnectionHeader {
        match self.connection.load(Ordering::Acquire) {
            x if x == ConnectionHeader::Close as u8 => ConnectionHeader::Close,
            x if x == ConnectionHeader::KeepAlive as u8 => ConnectionHeader::KeepAlive,
            _ => ConnectionHeader::None,
        }
    }

    /// Waits for the first byte of the next request, closing the connection once it
    /// has been idle for the idle timeout.
    async fn wait_for_request(&self, rd: &mut Reader, overall: Option<Instant>) -> Result<()> {
        let idle = self.conn.opts.limits.idle_timeout;
        loop {
            let idle_at = idle.and_then(|t| {
                if self.unanswered.load(Ordering::Acquire) {
                    after(t)
                } else {
                    self.last_activity().checked_add(t)
                }
            });
            if idle_at.is_some_and(|at| at <= Instant::now()) {
                tracing::debug!(remote = self.conn.remote_addr(), "closing idle connection");
                return Err(Error::Closed);
            }
            match rd.fill(earliest(overall, idle_at), &self.conn.signal).await {
                Ok(0) => return Err(Error::Closed),
                Ok(_) => return Ok(()),
                Err(Error::Timeout) if overall.is_none_or(|at| Instant::now() < at) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next POST request, answering other methods with `405`.
    async fn read_request(
        &self,
        rd: &mut Reader,
        overall: Option<Instant>,
    ) -> std::result::Result<Message, Rejection> {
        let opts = &self.conn.opts;
        let signal = &self.conn.signal;
        loop {
            if rd.buf.is_empty() {
                self.wait_for_request(rd, overall)
                    .await
                    .map_err(Rejection::silent)?;
            }
            let mut head_deadline = LazyDeadline::new(opts.limits.header_read_timeout, overall);
            let mut scanned = 0;
            let head = loop {
                if let Some(end) = codec::head_end(&rd.buf, scanned) {
                    match codec::parse_request(&rd.buf[..end]) {
                        Ok(Some(head)) if head.len <= opts.limits.max_header_size => break head,
                        Ok(Some(head)) => return Err(Rejection::head_too_large(head.len, opts)),
                        // only blank lines so far
                        Ok(None) => scanned = end,
                        Err(e) => return Err(Rejection::bad_head(e)),
                    }
                    continue;
                }
                scanned = rd.buf.len();
                if rd.buf.len() > opts.limits.max_header_size {
                    return Err(Rejection::head_too_large(rd.buf.len(), opts));
                }
                if rd.buf.len() <= codec::EARLY_CHECK {
                    // garbage is refused at once, not after the header timeout
                    codec::parse_request(&rd.buf).map_err(Rejection::bad_head)?;
                }
                match rd.fill(head_deadline.get(), signal).await {
                    Ok(0) => return Err(Rejection::silent(unexpected_eof())),
                    Ok(_) => {}
                    Err(e) => return Err(Rejection::timeout_or_silent(e, overall)),
                }
            };
            rd.buf.advance(head.len);

            if let Framing::Length(n) = head.framing {
                let limit = opts.limits.max_body_size as u64;
                if n > limit {
                    let error = Error::TooLarge {
                        what: "body",
                        size: n,
                        limit,
                    };
                    return Err(Rejection::close(413, "Payload Too Large", error));
                }
            }
            if head.expect_continue && head.framing != Framing::Empty && rd.buf.is_empty() {
                self.write_raw(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(Rejection::silent)?;
            }
            let body_deadline = LazyDeadline::new(opts.limits.body_read_timeout, overall);
            let limit = opts.limits.max_body_size as u64;
            let body = rd
                .read_body(
                    head.framing,
                    limit,
                    opts.limits.max_header_size,
                    body_deadline,
                    signal,
                )
                .await
                .map_err(|e| match e {
                    Error::TooLarge { .. } => Rejection::close(413, "Payload Too Large", e),
                    Error::Malformed(_) => Rejection::close(400, "Bad Request", e),
                    e => Rejection::timeout_or_silent(e, overall),
                })?;
            self.touch();

            if head.method != Method::Post {
                tracing::debug!(
                    remote = self.conn.remote_addr(),
                    "answering a request other than POST with 405"
                );
                let connection = if head.keep_alive {
                    ConnectionHeader::None
                } else {
                    ConnectionHeader::Close
                };
                self.write_error(
                    405,
                    "Method Not Allowed",
                    connection,
                    head.method == Method::Head,
                )
                .await
                .map_err(Rejection::silent)?;
                if !head.keep_alive {
                    return Err(Rejection::silent(Error::Closed));
                }
                continue;
            }

            let connection = match (head.keep_alive, head.http10) {
                (false, _) => ConnectionHeader::Close,
                (true, true) => ConnectionHeader::KeepAlive,
                (true, false) => ConnectionHeader::None,
            };
            self.connection.store(connection as u8, Ordering::Release);
            self.unanswered.store(true, Ordering::Release);
            return Ok(Message {
                header: head.header,
                body,
            });
        }
    }

    /// Writes bytes that are not a message (`100 Continue`).
    async fn write_raw(&self, bytes: &[u8]) -> Result<()> {
        let deadline = Some(Instant::now() + ERROR_WRITE_TIMEOUT);
        self.conn
            .signal
            .run(deadline, async {
                let mut w = self.conn.writer.lock().await;
                w.buf.clear();
                w.write_with_body(bytes).await
            })
            .await
    }

    /// Writes a plain-text error response.
    async fn write_error(
        &self,
        code: u16,
        reason: &str,
        connection: ConnectionHeader,
        head_only: bool,
    ) -> Result<()> {
        let deadline = Some(Instant::now() + ERROR_WRITE_TIMEOUT);
        self.conn
            .signal
            .run(deadline, async {
                let mut w = self.conn.writer.lock().await;
                w.buf.clear();
                codec::write_error(&mut w.buf, code, reason, connection, head_only);
                w.write_with_body(&[]).await
            })
            .await
    }

    /// Answers a rejected request (if it warrants an answer) and closes the connection.
    async fn finish(&self, rd: &mut Reader, rejection: Rejection) -> Error {
        if rejection.code != 0 {
            tracing::debug!(
                remote = self.conn.remote_addr(),
                code = rejection.code,
                error = %rejection.error,
                "rejecting request"
            );
            let connection = ConnectionHeader::Close;
            if self
                .write_error(rejection.code, rejection.reason, connection, false)
                .await
                .is_ok()
            {
                self.conn.writer.lock().await.shutdown().await;
                rd.drain(&self.conn.signal).await;
            }
        } else if !matches!(rejection.error, Error::Closed) {
            tracing::debug!(
                remote = self.conn.remote_addr(),
                error = %rejection.error,
                "closing connection"
            );
        }
        self.conn.signal.close();
        self.conn.writer.lock().await.shutdown().await;
        rd.io = None;
        rd.buf.clear();
        rejection.error
    }
}

impl Rejection {
    /// Closes the connection without a response.
    fn silent(error: Error) -> Self {
        Self {
            code: 0,
            reason: "",
            error,
        }
    }

    fn close(code: u16, reason: &'static str, error: Error) -> Self {
        Self {
            code,
            reason,
            error,
        }
    }

    fn head_too_large(size: usize, opts: &HttpTransportOptions) -> Self {
        let error = Error::TooLarge {
            what: "header block",
            size: size as u64,
            limit: opts.limits.max_header_size as u64,
        };
        Self::close(431, "Request Header Fields Too Large", error)
    }

    fn bad_head(e: HeadError) -> Self {
        match e {
            HeadError::TooManyHeaders => {
                Self::close(431, "Request Header Fields Too Large", e.into())
            }
            HeadError::UnsupportedEncoding => Self::close(501, "Not Implemented", e.into()),
            HeadError::Invalid(_) => Self::close(400, "Bad Request", e.into()),
        }
    }

    /// A read failure mid-request: a timeout of the transport's own limits gets a
    /// `408`; the caller's deadline and I/O failures close silently.
    fn timeout_or_silent(error: Error, overall: Option<Instant>) -> Self {
        let caller_deadline = overall.is_some_and(|at| Instant::now() >= at);
        if matches!(error, Error::Timeout) && !caller_deadline {
            Self::close(408, "Request Timeout", error)
        } else {
            Self::silent(error)
        }
    }
}

#[async_trait]
impl Socket for ServerSocket {
    async fn send(&self, msg: &Message) -> Result<()> {
        let signal = &self.conn.signal;
        if signal.is_closed() {
            return Err(Error::Closed);
        }
        let deadline = self.conn.opts.timeout.and_then(after);
        let res = signal
            .run(deadline, async {
                let mut w = self.conn.writer.lock().await;
                let connection = self.next_connection_header();
                w.buf.clear();
                codec::write_response(&mut w.buf, &msg.header, msg.body.len(), connection);
                w.write_with_body(&msg.body).await?;
                if connection == ConnectionHeader::Close {
                    w.shutdown().await;
                    signal.close();
                }
                Ok(())
            })
            .await;
        match res {
            Ok(()) => {
                self.unanswered.store(false, Ordering::Release);
                self.touch();
                Ok(())
            }
            Err(e) => {
                signal.close();
                Err(e)
            }
        }
    }

    async fn recv(&self) -> Result<Message> {
        let signal = &self.conn.signal;
        if signal.is_closed() {
            return Err(Error::Closed);
        }
        let overall = self.conn.opts.timeout.and_then(after);
        let mut rd = signal
            .run(overall, async { Ok(self.conn.reader.lock().await) })
            .await?;
        match self.read_request(&mut rd, overall).await {
            Ok(msg) => Ok(msg),
            Err(rejection) => Err(self.finish(&mut rd, rejection).await),
        }
    }

    async fn close(&self) {
        self.conn.close().await;
    }

    fn local_addr(&self) -> &str {
        self.conn.local_addr()
    }

    fn remote_addr(&self) -> &str {
        self.conn.remote_addr()
    }

    fn is_open(&self) -> bool {
        self.conn.is_open(false)
    }

    #[cfg(feature = "tls")]
    fn peer_identity(&self) -> Option<std::sync::Arc<micro_tls::PeerIdentity>> {
        self.conn.peer.clone()
    }

    fn is_secure(&self) -> bool {
        self.conn.is_secure()
    }
}
