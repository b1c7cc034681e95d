//! The two halves of a connection: plain TCP (split without a lock) or TLS (split
//! over the TLS session, behind the `tls` feature).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[cfg(feature = "tls")]
pub(crate) type TlsStream = tokio_rustls::TlsStream<tokio::net::TcpStream>;

/// The read half.
#[derive(Debug)]
pub(crate) enum ReadIo {
    Tcp(OwnedReadHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::ReadHalf<TlsStream>),
}

/// The write half.
#[derive(Debug)]
pub(crate) enum WriteIo {
    Tcp(OwnedWriteHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::WriteHalf<TlsStream>),
}

impl ReadIo {
    /// Reads what is there without waiting: `Ok(0)` when the peer closed,
    /// `WouldBlock` when nothing is there.
    pub(crate) fn try_read_buf(&mut self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        match self {
            ReadIo::Tcp(io) => io.try_read_buf(buf),
            #[cfg(feature = "tls")]
            ReadIo::Tls(io) => {
                // one poll with a waker that does nothing: the TLS session reads
                // what the socket has and decrypts whole records
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut tmp = [0u8; 2048];
                let mut rb = ReadBuf::new(&mut tmp);
                match Pin::new(io).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        buf.extend_from_slice(rb.filled());
                        Ok(rb.filled().len())
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncRead for ReadIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadIo::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ReadIo::Tls(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            WriteIo::Tls(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            WriteIo::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteIo::Tcp(io) => io.is_write_vectored(),
            #[cfg(feature = "tls")]
            WriteIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(io) => Pin::new(io).poll_flush(cx),
            #[cfg(feature = "tls")]
            WriteIo::Tls(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            WriteIo::Tls(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

impl WriteIo {
    /// Whether writes may stay buffered until flushed (TLS records).
    pub(crate) fn buffers(&self) -> bool {
        !matches!(self, WriteIo::Tcp(_))
    }
}
