//! One connection of the broker's server, with its own timeouts: a request head
//! must arrive within the header timeout once its first byte came, and an idle
//! keep-alive connection is closed after the idle timeout (hyper's own header
//! timeout also runs while a connection is idle, which would close idle
//! connections early and race with clients reusing them).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Core;
use super::server::handle;

/// hyper's smallest read buffer: the head limit is at least this.
const MAX_HEAD_MIN: usize = 8 << 10;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What the connection is doing, and since when (milliseconds since it opened).
struct Activity {
    state: AtomicU8,
    since: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn set(&self, state: u8) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
    }

    /// The state and how long it has lasted.
    fn get(&self) -> (u8, Duration) {
        let since = self.since.load(Ordering::Relaxed);
        let state = self.state.load(Ordering::Relaxed);
        (
            state,
            Duration::from_millis(self.now().saturating_sub(since)),
        )
    }
}

/// Marks the connection busy while a request is handled.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: &Arc<Activity>) -> Busy {
        a.set(BUSY);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(IDLE);
    }
}

/// The server's TLS configuration, if it serves TLS (always none without the
/// `tls` feature).
#[derive(Clone, Default)]
pub(crate) struct Tls(#[cfg(feature = "tls")] pub(crate) Option<Arc<micro_tls::ServerTls>>);

impl Tls {
    pub(crate) fn is_some(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.0.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

/// The identity a client proved with its certificate (nothing without the `tls`
/// feature).
#[derive(Clone, Default)]
pub(super) struct Peer(#[cfg(feature = "tls")] pub(super) Option<Arc<micro_tls::PeerIdentity>>);

/// The socket, noting when the first byte of a request head arrives.
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before && this.activity.state.load(Ordering::Relaxed) == IDLE {
            this.activity.set(HEAD);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves one connection until the client closes it, a timeout closes it, or
/// `cancel` fires (then requests in progress finish and the connection closes).
pub(super) async fn serve(
    stream: TcpStream,
    tls: Tls,
    core: Arc<Core>,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls.0 {
        let timeout = super::server::or_forever(core.opts.limits.header_read_timeout);
        let handshake = micro_tls::accept(stream, &tls, timeout);
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = handshake => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "http broker: tls handshake failed");
                    return;
                }
            },
        };
        let peer = micro_tls::PeerIdentity::from_chain(stream.get_ref().1.peer_certificates())
            .map(Arc::new);
        return serve_io(stream, Peer(peer), core, cancel, permit).await;
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    serve_io(stream, Peer::default(), core, cancel, permit).await
}

/// Serves HTTP/1.1 on an established stream (TCP, or TLS after the handshake).
async fn serve_io<S>(
    stream: S,
    peer: Peer,
    core: Arc<Core>,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &core.opts.limits;
    let (header_timeout, idle_timeout) = (
        super::server::or_forever(limits.header_read_timeout),
        super::server::or_forever(limits.idle_timeout),
    );
    let max_head = limits.max_header_size.max(MAX_HEAD_MIN);
    let activity = Arc::new(Activity {
        state: AtomicU8::new(IDLE),
        since: AtomicU64::new(0),
        opened: Instant::now(),
    });
    let a = activity.clone();
    let svc = service_fn(move |req| {
        let core = core.clone();
        let busy = Busy::new(&a);
        let peer = peer.clone();
        async move {
            let resp = handle(&core, req, peer).await;
            drop(busy);
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .title_case_headers(true)
        .max_buf_size(max_head)
        .keep_alive(true);
    let io = Watched {
        io: stream,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let every = (header_timeout.min(idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    let res = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = cancel.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => match activity.get() {
                (HEAD, t) if t >= header_timeout => {
                    tracing::debug!(?t, "http broker: request head not received in time; closing");
                    return;
                }
                (IDLE, t) if t >= idle_timeout && !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ => {}
            },
        }
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "http broker: connection ended with an error");
    }
}
