//! Reading HTTP/1.1 messages from a buffered connection: a response head (with
//! interim responses skipped) and a body in any framing. One implementation for
//! the transport's own sockets and for [`wire`](super::wire), over anything that
//! can [`Fill`] a buffer.

use std::future::Future;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use super::codec::{self, ChunkedDecoder, Framing, ResponseHead};
use super::conn::LazyDeadline;
use crate::{Error, Result};

/// Bodies up to this size are copied out of the read buffer (which is then reused);
/// larger ones are split off it without a copy.
const SPLIT_BODY_MIN: usize = 16 * 1024;

/// A connection's read side with its buffer of received, not yet consumed bytes.
pub(crate) trait Fill {
    /// The buffer.
    fn buf(&mut self) -> &mut BytesMut;

    /// Reads more bytes into the buffer, failing with [`Error::Timeout`] at
    /// `deadline`; `Ok(0)` means the peer closed the connection.
    fn fill(&mut self, deadline: Option<Instant>) -> impl Future<Output = Result<usize>> + Send;
}

/// Limits of one response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseLimits {
    pub(crate) max_head: usize,
    pub(crate) max_body: u64,
    pub(crate) head_timeout: Option<std::time::Duration>,
    pub(crate) body_timeout: Option<std::time::Duration>,
}

/// Reads the next final response (skipping `1xx` interim ones): its head and
/// body. [`Error::Closed`] when the peer closed before a byte of it arrived.
pub(crate) async fn read_response<F: Fill>(
    f: &mut F,
    limits: &ResponseLimits,
    overall: Option<Instant>,
) -> Result<(ResponseHead, Bytes)> {
    loop {
        if f.buf().is_empty() && f.fill(overall).await? == 0 {
            return Err(Error::Closed);
        }
        let mut head_deadline = LazyDeadline::new(limits.head_timeout, overall);
        let mut scanned = 0;
        let head = loop {
            let buf = f.buf();
            if let Some(end) = codec::head_end(buf, scanned) {
                match codec::parse_response(&buf[..end])? {
                    Some(head) if head.len <= limits.max_head => break head,
                    Some(head) => return Err(head_too_large(head.len, limits.max_head)),
                    // only blank lines so far
                    None => scanned = end,
                }
                continue;
            }
            scanned = buf.len();
            if buf.len() > limits.max_head {
                return Err(head_too_large(buf.len(), limits.max_head));
            }
            if buf.len() <= codec::EARLY_CHECK {
                // garbage is refused at once, not after the header timeout
                codec::parse_response(buf)?;
            }
            if f.fill(head_deadline.get()).await? == 0 {
                return Err(unexpected_eof());
            }
        };
        f.buf().advance(head.len);
        if head.code == 101 {
            return Err(Error::malformed("unexpected 101 switching protocols"));
        }
        if (100..200).contains(&head.code) {
            continue; // interim response (100 Continue, 103 Early Hints)
        }
        let body_deadline = LazyDeadline::new(limits.body_timeout, overall);
        let body = read_body(
            f,
            head.framing,
            limits.max_body,
            limits.max_head,
            body_deadline,
        )
        .await?;
        return Ok((head, body));
    }
}

fn head_too_large(size: usize, limit: usize) -> Error {
    Error::TooLarge {
        what: "header block",
        size: size as u64,
        limit: limit as u64,
    }
}

/// Reads a body framed as `framing`, at most `limit` bytes (a chunked body's
/// trailer at most `max_trailer`).
pub(crate) async fn read_body<F: Fill>(
    f: &mut F,
    framing: Framing,
    limit: u64,
    max_trailer: usize,
    mut deadline: LazyDeadline,
) -> Result<Bytes> {
    match framing {
        Framing::Empty => Ok(Bytes::new()),
        Framing::Length(n) => {
            if n > limit {
                return Err(Error::TooLarge {
                    what: "body",
                    size: n,
                    limit,
                });
            }
            let n = n as usize;
            let have = f.buf().len();
            if have < n {
                // room for the whole body, so that it arrives in large reads and can
                // be split off without a copy
                f.buf().reserve(n - have);
            }
            while f.buf().len() < n {
                if f.fill(deadline.get()).await? == 0 {
                    return Err(unexpected_eof());
                }
            }
            Ok(take(f.buf(), n))
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut out = BytesMut::new();
            loop {
                if decoder.decode(f.buf(), &mut out, limit, max_trailer)? {
                    return Ok(out.freeze());
                }
                if f.fill(deadline.get()).await? == 0 {
                    return Err(unexpected_eof());
                }
            }
        }
        Framing::UntilEof => loop {
            let size = f.buf().len() as u64;
            if size > limit {
                return Err(Error::TooLarge {
                    what: "body",
                    size,
                    limit,
                });
            }
            if f.fill(deadline.get()).await? == 0 {
                let buf = f.buf();
                let n = buf.len();
                return Ok(take(buf, n));
            }
        },
    }
}

/// Takes the first `n` buffered bytes as a body.
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n < SPLIT_BODY_MIN {
        let body = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        body
    } else {
        buf.split_to(n).freeze()
    }
}

pub(crate) fn unexpected_eof() -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed mid-message",
    ))
}
