//! One HTTP/1.1 exchange on a connection the caller owns, written and read by the
//! transport's own HTTP code.
//!
//! For plugins that talk to an HTTP API over a connection of their own and keep
//! many such connections waiting: the Consul registry holds one per watched
//! service for its blocking queries, which wait minutes for an answer. A pooled
//! HTTP client keeps read and write buffers per connection (hyper's are 8 KiB
//! each, and its read buffer grows to the largest answer and stays there); here
//! the caller's buffer is released after every response and a read that waits
//! for an answer to begin holds only a small buffer inside the future, so a
//! waiting connection costs its socket and little else.
//!
//! ```
//! # async fn demo() -> micro_transport::Result<()> {
//! use bytes::BytesMut;
//! use micro_transport::{Header, Limits};
//! use micro_transport::http::wire;
//!
//! let mut io = tokio::net::TcpStream::connect("127.0.0.1:8500").await?;
//! let mut buf = BytesMut::new();
//! let mut header = Header::new();
//! header.insert("Accept", "application/json");
//! wire::write_request(&mut buf, "GET", "/v1/status/leader", "127.0.0.1:8500", &header)?;
//! tokio::io::AsyncWriteExt::write_all(&mut io, &buf).await?;
//! buf.clear();
//! let resp = wire::read_response(&mut io, &mut buf, &Limits::default()).await?;
//! println!("{} {:?}", resp.status, resp.body);
//! # Ok(())
//! # }
//! ```

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::codec;
use super::read::{self, Fill, ResponseLimits};
use crate::{Error, Header, Limits, Result};

/// A read into a buffer with less room than this first grows it by `READ_CHUNK`.
const READ_ROOM: usize = 1024;
/// How much a buffer grows by when a response is arriving.
const READ_CHUNK: usize = 8 * 1024;
/// The first read of a response when nothing is buffered goes into this much
/// space inside the future, so that waiting for an answer holds no buffer.
const FIRST_READ: usize = 512;

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers: first value of each, names in canonical form (`x-consul-index`
    /// becomes `X-Consul-Index`).
    pub header: Header,
    /// The body, whatever its framing on the wire (length, chunked, until close).
    pub body: Bytes,
    /// Whether the connection may carry another request (no `Connection: close`,
    /// and the body was not delimited by the server closing).
    pub keep_alive: bool,
}

/// Appends the head of a request without a body to `buf`: `<method> <target>
/// HTTP/1.1`, `Host: <host>`, a `User-Agent` (unless `header` has one), then
/// `header`; framing headers in `header` are left out and values with control
/// characters are sanitised, as for transport messages.
///
/// # Errors
///
/// [`Error::Malformed`] when the method is not an HTTP token or the target is
/// empty or holds a space or control character; nothing is written then.
pub fn write_request(
    buf: &mut BytesMut,
    method: &str,
    target: &str,
    host: &str,
    header: &Header,
) -> Result<()> {
    codec::write_bodiless_request(buf, method, target, host, header).map_err(Error::malformed)
}

/// Reads the next final response from `io` (interim `1xx` responses are
/// skipped), with bytes already received in `buf`; what follows the response
/// stays in `buf`, and an emptied `buf` is released.
///
/// `limits` bounds the head (`max_header_size`), the body (`max_body_size`),
/// the time from a head's first byte to its end (`header_read_timeout`) and the
/// time the body takes (`body_read_timeout`); waiting for the first byte is not
/// bounded here (a long poll may wait minutes): bound the whole exchange with
/// [`tokio::time::timeout`].
///
/// # Errors
///
/// [`Error::Closed`] when the peer closed before the response began;
/// [`Error::Io`] on a read failure or a close in mid-response;
/// [`Error::Malformed`] on a response that is not HTTP/1.x;
/// [`Error::TooLarge`] over a limit; [`Error::Timeout`] past a timeout. After
/// any error the connection is out of step and should be closed.
pub async fn read_response<R>(io: &mut R, buf: &mut BytesMut, limits: &Limits) -> Result<Response>
where
    R: AsyncRead + Unpin + Send + ?Sized,
{
    let rl = ResponseLimits {
        max_head: limits.max_header_size,
        max_body: limits.max_body_size as u64,
        head_timeout: limits.header_read_timeout,
        body_timeout: limits.body_read_timeout,
    };
    let res = read::read_response(&mut Reading { io, buf }, &rl, None).await;
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    let (head, body) = res?;
    Ok(Response {
        status: head.code,
        header: head.header,
        body,
        keep_alive: head.keep_alive && !matches!(head.framing, codec::Framing::UntilEof),
    })
}

/// `io` and its buffer.
struct Reading<'a, R: ?Sized> {
    io: &'a mut R,
    buf: &'a mut BytesMut,
}

impl<R: AsyncRead + Unpin + Send + ?Sized> Fill for Reading<'_, R> {
    fn buf(&mut self) -> &mut BytesMut {
        self.buf
    }

    async fn fill(&mut self, deadline: Option<Instant>) -> Result<usize> {
        let read = async {
            let room = self.buf.capacity() - self.buf.len();
            if self.buf.is_empty() && room < FIRST_READ {
                let mut first = [0u8; FIRST_READ];
                let n = self.io.read(&mut first).await?;
                self.buf.extend_from_slice(&first[..n]);
                return Ok(n);
            }
            if room < READ_ROOM {
                self.buf.reserve(READ_CHUNK);
            }
            Ok(self.io.read_buf(self.buf).await?)
        };
        match deadline {
            None => read.await,
            Some(at) => tokio::time::timeout_at(at, read)
                .await
                .map_err(|_| Error::Timeout)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn answer(wire: &[u8]) -> (Result<Response>, BytesMut) {
        let (mut client, mut server) = tokio::io::duplex(64);
        let wire = wire.to_vec();
        let writer = tokio::spawn(async move {
            // a byte at a time, so every read ends somewhere else
            for b in wire {
                if server.write_all(&[b]).await.is_err() {
                    return;
                }
            }
        });
        let mut buf = BytesMut::new();
        let res = read_response(&mut client, &mut buf, &Limits::default()).await;
        writer.abort();
        (res, buf)
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_and_keeps_what_follows() {
        let (res, buf) = answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1",
        )
        .await;
        let r = res.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        assert_eq!(r.header.get("X-Consul-Index"), Some("7"));
        assert!(r.keep_alive);
        assert_eq!(&buf[..], b"HTTP/1.1", "the next response's bytes are kept");

        let (res, buf) =
            answer(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .await;
        let r = res.unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"abcde"[..]));
        assert!(
            buf.is_empty() && buf.capacity() == 0,
            "an empty buffer is released"
        );
    }

    #[tokio::test]
    async fn until_close_bodies_end_keep_alive() {
        let (res, _) = answer(b"HTTP/1.0 200 OK\r\n\r\nall of it").await;
        // the writer task is aborted after the read; the duplex end closing ends the body
        match res {
            Ok(r) => {
                assert_eq!(&r.body[..], b"all of it");
                assert!(!r.keep_alive);
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn bad_input_fails_clearly() {
        let (res, _) = answer(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(res, Err(Error::Malformed(_))), "{res:?}");
        let (res, _) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").await;
        assert!(matches!(res, Err(Error::Io(_))), "{res:?}");
        let (res, _) = answer(b"").await;
        assert!(matches!(res, Err(Error::Closed)), "{res:?}");
        let mut buf = BytesMut::new();
        let bad = write_request(&mut buf, "GET", "/a b", "h", &Header::new());
        assert!(matches!(bad, Err(Error::Malformed(_))));
        assert!(write_request(&mut buf, "G T", "/", "h", &Header::new()).is_err());
        assert!(buf.is_empty(), "nothing written on error");
    }

    #[tokio::test]
    async fn limits_hold() {
        let limits = Limits {
            max_body_size: 4,
            ..Limits::default()
        };
        let (mut client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let res = read_response(&mut client, &mut buf, &limits).await;
        assert!(
            matches!(res, Err(Error::TooLarge { what: "body", .. })),
            "{res:?}"
        );
    }

    #[test]
    fn request_heads() {
        let mut buf = BytesMut::new();
        let mut h = Header::new();
        h.insert("X-Consul-Token", "t\r\nInjected: 1");
        h.insert("Content-Length", "9");
        write_request(
            &mut buf,
            "GET",
            "/v1/health/service/a?index=3&wait=5m",
            "127.0.0.1:8500",
            &h,
        )
        .unwrap();
        let text = String::from_utf8(buf.to_vec()).unwrap();
        assert!(text.starts_with("GET /v1/health/service/a?index=3&wait=5m HTTP/1.1\r\nHost: 127.0.0.1:8500\r\nUser-Agent: micro-rs/"), "{text}");
        assert!(
            text.contains("X-Consul-Token: t  Injected: 1\r\n"),
            "{text}"
        );
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
    }
}
