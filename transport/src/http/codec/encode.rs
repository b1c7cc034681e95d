//! Writing request and response heads.

use bytes::BytesMut;

use crate::Header;
use crate::header::is_token_byte;

/// The `User-Agent` our client sends unless the message carries one.
pub(crate) const USER_AGENT: &str = concat!("micro-rs/", env!("CARGO_PKG_VERSION"));

/// Writes a request head for a body of `body_len` bytes, as go-micro's client does:
/// `POST / HTTP/1.1`, `Host`, `User-Agent`, `Content-Length`, then the message
/// headers.
pub(crate) fn write_request(buf: &mut BytesMut, host: &str, header: &Header, body_len: usize) {
    put_request(buf, "POST", "/", host, header, Some(body_len));
}

/// Writes a request head: request line, `Host`, `User-Agent`, `Content-Length`
/// when there is a body, then `header` without framing headers.
fn put_request(
    buf: &mut BytesMut,
    method: &str,
    target: &str,
    host: &str,
    header: &Header,
    body_len: Option<usize>,
) {
    buf.extend_from_slice(method.as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    put_value(buf, host.as_bytes());
    buf.extend_from_slice(b"\r\nUser-Agent: ");
    put_value(
        buf,
        header.get("User-Agent").unwrap_or(USER_AGENT).as_bytes(),
    );
    if let Some(n) = body_len {
        buf.extend_from_slice(b"\r\nContent-Length: ");
        put_u64(buf, n as u64);
    }
    buf.extend_from_slice(b"\r\n");
    for (name, value) in header.iter() {
        if !is_request_framing(name) {
            put_header(buf, name, value);
        }
    }
    buf.extend_from_slice(b"\r\n");
}

/// Writes the head of a request without a body: `<method> <target> HTTP/1.1`,
/// `Host`, `User-Agent`, then `header` (framing headers left out). Fails when the
/// method is not an HTTP token or the target is empty or holds a byte a request
/// line cannot (space, control characters).
pub(crate) fn write_bodiless_request(
    buf: &mut BytesMut,
    method: &str,
    target: &str,
    host: &str,
    header: &Header,
) -> Result<(), &'static str> {
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err("the method is not an http token");
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the target is empty or holds a space or control character");
    }
    put_request(buf, method, target, host, header, None);
    Ok(())
}

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// No `Connection` header (HTTP/1.1 keep-alive default).
    None,
    /// `Connection: close`: the server closes after this response.
    Close,
    /// `Connection: keep-alive`, for HTTP/1.0 clients that asked for it.
    KeepAlive,
}

/// Writes a `200 OK` response head for a body of `body_len` bytes.
pub(crate) fn write_response(
    buf: &mut BytesMut,
    header: &Header,
    body_len: usize,
    connection: ConnectionHeader,
) {
    buf.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: ");
    put_u64(buf, body_len as u64);
    buf.extend_from_slice(b"\r\n");
    put_connection(buf, connection);
    for (name, value) in header.iter() {
        if is_response_framing(name) {
            continue;
        }
        put_header(buf, name, value);
    }
    buf.extend_from_slice(b"\r\n");
}

/// Writes a complete plain-text error response (`405`, `413`, ...). For a `HEAD`
/// request the body is left out, as HTTP requires.
pub(crate) fn write_error(
    buf: &mut BytesMut,
    code: u16,
    reason: &str,
    connection: ConnectionHeader,
    head_only: bool,
) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    put_u64(buf, u64::from(code));
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(reason.as_bytes());
    buf.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\n");
    if code == 405 {
        buf.extend_from_slice(b"Allow: POST\r\n");
    }
    put_connection(buf, connection);
    // body: "<code> <reason>\n"
    let body_len = 3 + 1 + reason.len() + 1;
    buf.extend_from_slice(b"Content-Length: ");
    put_u64(buf, body_len as u64);
    buf.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        put_u64(buf, u64::from(code));
        buf.extend_from_slice(b" ");
        buf.extend_from_slice(reason.as_bytes());
        buf.extend_from_slice(b"\n");
    }
}

fn put_connection(buf: &mut BytesMut, connection: ConnectionHeader) {
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::Close => buf.extend_from_slice(b"Connection: close\r\n"),
        ConnectionHeader::KeepAlive => buf.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
}

/// Headers the client writes itself (Go's `reqWriteExcludeHeader`).
fn is_request_framing(name: &str) -> bool {
    [
        "Host",
        "User-Agent",
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// Headers the server writes itself (Go's `respExcludeHeader`, plus `Connection`, which
/// the socket decides).
fn is_response_framing(name: &str) -> bool {
    [
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
        "Connection",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// Writes `name: value\r\n`, skipping names that are not HTTP tokens (they could
/// smuggle a line break or a colon) and sanitising the value.
fn put_header(buf: &mut BytesMut, name: &str, value: &str) {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        tracing::debug!(name, "skipping header with an invalid name");
        return;
    }
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    put_value(buf, value.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Writes a header value with control characters (CR and LF above all) turned into
/// spaces and surrounding white space trimmed, as Go does, so a value can never end
/// the header line early.
fn put_value(buf: &mut BytesMut, value: &[u8]) {
    let blank = |b: &u8| *b == b' ' || *b == b'\t' || is_ctl(*b);
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    let value = &value[start..end];
    if !value.iter().any(|&b| is_ctl(b)) {
        buf.extend_from_slice(value);
        return;
    }
    buf.reserve(value.len());
    for &b in value {
        buf.extend_from_slice(&[if is_ctl(b) { b' ' } else { b }]);
    }
}

/// Writes `n` in decimal without going through `fmt`.
pub(super) fn put_u64(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}
