//! The connection shared by server and client sockets: the two halves of a TCP stream,
//! each under its own lock with its own reusable buffer, and a close signal that
//! wakes every pending operation.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};
use tokio::time::{Instant, Sleep};

use super::HttpTransportOptions;
use super::codec::Framing;
use super::io::{ReadIo, WriteIo};
use super::read;
use crate::{Error, Result};

/// Read buffer size: a typical RPC message fits in one read.
const READ_CHUNK: usize = 8 * 1024;
/// Bodies up to this size are copied into the write buffer (one `write`); larger ones
/// go out with the head in one vectored write, without a copy.
const COPY_BODY_MAX: usize = 64 * 1024;
/// A write buffer grown beyond this (a huge header) is dropped after use.
const WRITE_BUF_KEEP: usize = 256 * 1024;
/// A read buffer grown beyond this (a huge head) is dropped once it is empty, so an
/// idle connection holds about `READ_CHUNK`, whatever it carried before.
const READ_BUF_KEEP: usize = 64 * 1024;

/// Set once when a connection closes; wakes every operation waiting on it.
#[derive(Debug, Default)]
pub(crate) struct CloseSignal {
    closed: AtomicBool,
    notify: Notify,
}

impl CloseSignal {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the connection closed; true the first time.
    pub(crate) fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Runs `fut` until it finishes or the connection is closed.
    pub(crate) async fn guard<F: Future>(&self, fut: F) -> Result<F::Output> {
        // created before the flag is checked, so a close in between still wakes it
        let mut notified = pin!(self.notify.notified());
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            if notified.as_mut().poll(cx).is_ready() || self.is_closed() {
                return Poll::Ready(Err(Error::Closed));
            }
            Poll::Pending
        })
        .await
    }

    /// Runs `fut` until it finishes, the deadline passes, or the connection is closed.
    pub(crate) async fn run<T, F>(&self, deadline: Option<Instant>, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        match deadline {
            None => self.guard(fut).await?,
            Some(at) => match self.guard(tokio::time::timeout_at(at, fut)).await? {
                Ok(out) => out,
                Err(_) => Err(Error::Timeout),
            },
        }
    }
}

/// The instant `t` from now; `None` (no deadline) when that is beyond what the clock
/// can represent.
pub(crate) fn after(t: Duration) -> Option<Instant> {
    Instant::now().checked_add(t)
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A deadline computed when first needed: most messages arrive whole in one read and
/// never look at the clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LazyDeadline {
    timeout: Option<Duration>,
    overall: Option<Instant>,
    at: Option<Option<Instant>>,
}

impl LazyDeadline {
    /// `timeout` from the first use, but no later than `overall`.
    pub(crate) fn new(timeout: Option<Duration>, overall: Option<Instant>) -> Self {
        Self {
            timeout,
            overall,
            at: None,
        }
    }

    pub(crate) fn get(&mut self) -> Option<Instant> {
        let (timeout, overall) = (self.timeout, self.overall);
        *self
            .at
            .get_or_insert_with(|| earliest(overall, timeout.and_then(after)))
    }
}

/// The read half and its buffer of received, not yet consumed bytes.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) io: Option<ReadIo>,
    pub(crate) buf: BytesMut,
    /// One timer for all reads of the connection: moving a registered timer's deadline
    /// later is a single atomic operation, where a fresh timer per read would take the
    /// timer wheel's lock twice.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Outcome of a non-blocking read attempt.
pub(crate) enum Probe {
    /// Nothing to read; the connection looks healthy.
    Idle,
    /// Bytes arrived (now in the buffer).
    Data,
    /// The peer closed, or the connection failed.
    Gone,
}

impl Reader {
    /// Reads more bytes into the buffer. `Ok(0)` means the peer closed the connection.
    pub(crate) async fn fill(
        &mut self,
        deadline: Option<Instant>,
        signal: &CloseSignal,
    ) -> Result<usize> {
        if self.buf.is_empty() && self.buf.capacity() > READ_BUF_KEEP {
            self.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        let Reader { io, buf, timer } = self;
        let io = io.as_mut().ok_or(Error::Closed)?;
        let mut timer = match deadline {
            None => None,
            Some(at) => {
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                timer.as_mut().reset(at);
                Some(timer)
            }
        };
        let mut read = pin!(io.read_buf(buf));
        signal
            .guard(std::future::poll_fn(|cx| {
                if let Poll::Ready(res) = read.as_mut().poll(cx) {
                    return Poll::Ready(res.map_err(Error::Io));
                }
                if let Some(timer) = timer.as_mut() {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Error::Timeout));
                    }
                }
                Poll::Pending
            }))
            .await?
    }

    /// Tries one read without waiting.
    pub(crate) fn probe(&mut self) -> Probe {
        let Some(io) = self.io.as_mut() else {
            return Probe::Gone;
        };
        self.buf.reserve(256);
        match io.try_read_buf(&mut self.buf) {
            Ok(0) => Probe::Gone,
            Ok(_) => Probe::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Idle,
            Err(_) => Probe::Gone,
        }
    }

    /// Reads a body framed as `framing`, at most `limit` bytes.
    pub(crate) async fn read_body(
        &mut self,
        framing: Framing,
        limit: u64,
        max_trailer: usize,
        deadline: LazyDeadline,
        signal: &CloseSignal,
    ) -> Result<Bytes> {
        let mut f = Signalled { rd: self, signal };
        read::read_body(&mut f, framing, limit, max_trailer, deadline).await
    }

    /// Reads and drops whatever the peer still sends, for a short while, so that a
    /// close right after an error response does not reset the connection (and lose
    /// the response) while the peer is still sending.
    pub(crate) async fn drain(&mut self, signal: &CloseSignal) {
        const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);
        const DRAIN_BYTES: usize = 1024 * 1024;
        let deadline = Instant::now() + DRAIN_TIME;
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            self.buf.clear();
            match self.fill(Some(deadline), signal).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        self.buf.clear();
    }
}

pub(crate) use super::read::unexpected_eof;

/// A connection's reader with its close signal, as the shared reading code wants it.
pub(crate) struct Signalled<'a> {
    pub(crate) rd: &'a mut Reader,
    pub(crate) signal: &'a CloseSignal,
}

impl read::Fill for Signalled<'_> {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.rd.buf
    }

    fn fill(&mut self, deadline: Option<Instant>) -> impl Future<Output = Result<usize>> + Send {
        self.rd.fill(deadline, self.signal)
    }
}

/// The write half and a buffer reused for every message head.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) io: Option<WriteIo>,
    pub(crate) buf: BytesMut,
}

impl Writer {
    /// Writes the head in `self.buf` followed by `body`, in one system call where the
    /// kernel takes it all.
    pub(crate) async fn write_with_body(&mut self, body: &[u8]) -> Result<()> {
        let Writer { io, buf } = self;
        let io = io.as_mut().ok_or(Error::Closed)?;
        let mut res = if body.len() <= COPY_BODY_MAX {
            buf.extend_from_slice(body);
            io.write_all(buf).await
        } else {
            write_two(io, buf, body).await
        };
        if res.is_ok() && io.buffers() {
            // a TLS session may keep the last record until flushed
            res = io.flush().await;
        }
        if buf.capacity() > WRITE_BUF_KEEP {
            *buf = BytesMut::with_capacity(1024);
        } else {
            buf.clear();
        }
        res.map_err(Error::Io)
    }

    /// Sends FIN and drops the write half.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(mut io) = self.io.take() {
            // shutdown(2) does not wait for the peer; the bound is only a safeguard
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), io.shutdown()).await;
        }
    }
}

/// Turns TCP_NODELAY on and returns the stream's (local, remote) addresses.
pub(crate) fn addrs(stream: &TcpStream) -> io::Result<(String, String)> {
    stream.set_nodelay(true)?;
    Ok((
        stream.local_addr()?.to_string(),
        stream.peer_addr()?.to_string(),
    ))
}

/// Writes `a` then `b` with vectored writes.
async fn write_two<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut a: &[u8],
    mut b: &[u8],
) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = if a.is_empty() {
            io.write(b).await?
        } else {
            io.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < a.len() {
            a = &a[n..];
        } else {
            b = &b[n - a.len()..];
            a = &[];
        }
    }
    Ok(())
}

/// A connection (TCP, or TLS over TCP) split into independently locked halves.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) reader: Mutex<Reader>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) signal: CloseSignal,
    pub(crate) opts: HttpTransportOptions,
    local: String,
    remote: String,
    secure: bool,
    /// The peer's verified certificate identity (TLS with a client certificate).
    #[cfg(feature = "tls")]
    pub(crate) peer: Option<std::sync::Arc<micro_tls::PeerIdentity>>,
}

impl Conn {
    /// Takes over `stream`: TCP_NODELAY on, addresses recorded once.
    pub(crate) fn new(stream: TcpStream, opts: HttpTransportOptions) -> io::Result<Self> {
        let (local, remote) = addrs(&stream)?;
        let (rd, wr) = stream.into_split();
        Ok(Self::from_halves(
            ReadIo::Tcp(rd),
            WriteIo::Tcp(wr),
            local,
            remote,
            opts,
        ))
    }

    /// Takes over an established TLS session; `local` and `remote` come from
    /// [`addrs`] on its TCP stream.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(
        stream: super::io::TlsStream,
        local: String,
        remote: String,
        opts: HttpTransportOptions,
    ) -> Self {
        let peer = micro_tls::PeerIdentity::from_chain(stream.get_ref().1.peer_certificates())
            .map(std::sync::Arc::new);
        let (rd, wr) = tokio::io::split(stream);
        let mut conn = Self::from_halves(ReadIo::Tls(rd), WriteIo::Tls(wr), local, remote, opts);
        conn.peer = peer;
        conn.secure = true;
        conn
    }

    fn from_halves(
        rd: ReadIo,
        wr: WriteIo,
        local: String,
        remote: String,
        opts: HttpTransportOptions,
    ) -> Self {
        Self {
            reader: Mutex::new(Reader {
                io: Some(rd),
                buf: BytesMut::with_capacity(READ_CHUNK),
                timer: None,
            }),
            writer: Mutex::new(Writer {
                io: Some(wr),
                buf: BytesMut::with_capacity(1024),
            }),
            signal: CloseSignal::default(),
            opts,
            local,
            remote,
            secure: false,
            #[cfg(feature = "tls")]
            peer: None,
        }
    }

    pub(crate) fn local_addr(&self) -> &str {
        &self.local
    }

    /// Whether the connection runs over TLS.
    pub(crate) fn is_secure(&self) -> bool {
        self.secure
    }

    pub(crate) fn remote_addr(&self) -> &str {
        &self.remote
    }

    /// Closes the connection: wakes pending operations, sends FIN, drops both halves.
    pub(crate) async fn close(&self) {
        self.signal.close();
        // pending operations leave promptly once signalled, so the locks come free;
        // the write lock is released before the read lock is taken (a receive may be
        // waiting for the write lock to answer `100 Continue`)
        self.writer.lock().await.shutdown().await;
        self.reader.lock().await.io = None;
    }

    /// Whether the connection looks usable, without blocking. `reusable`: also false
    /// when unread bytes are waiting (a client connection in that state is out of step
    /// with its server).
    pub(crate) fn is_open(&self, reusable: bool) -> bool {
        if self.signal.is_closed() {
            return false;
        }
        let Ok(mut reader) = self.reader.try_lock() else {
            // a receive is in progress: it will find out
            return true;
        };
        if reusable && !reader.buf.is_empty() {
            return false;
        }
        match reader.probe() {
            Probe::Idle => true,
            Probe::Data => !reusable,
            Probe::Gone => {
                if reader.buf.is_empty() {
                    self.signal.close();
                }
                false
            }
        }
    }
}
