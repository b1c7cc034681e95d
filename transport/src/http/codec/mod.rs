//! HTTP/1.1 framing: parsing request and response heads (here), writing them
//! ([`encode`]), and decoding chunked bodies ([`chunked`]). Pure functions over byte
//! buffers; the sockets do the I/O.

mod chunked;
mod encode;

use std::mem::MaybeUninit;

pub(crate) use chunked::ChunkedDecoder;
pub(crate) use encode::{
    ConnectionHeader, write_bodiless_request, write_error, write_request, write_response,
};

use crate::{Error, Header};

/// Header slots kept on the stack while parsing; larger heads use the heap.
const STACK_HEADERS: usize = 100;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes (responses only).
    UntilEof,
}

/// The request method, as far as the server cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Post,
    Head,
    Other,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Length of the head in the buffer, request line to blank line.
    pub(crate) len: usize,
    pub(crate) method: Method,
    /// HTTP/1.0 rather than HTTP/1.1.
    pub(crate) http10: bool,
    /// Headers: first value of each, canonical names; `Host` and `Transfer-Encoding`
    /// left out as Go's `net/http` does.
    pub(crate) header: Header,
    pub(crate) framing: Framing,
    pub(crate) expect_continue: bool,
    /// Whether the connection stays open after the response.
    pub(crate) keep_alive: bool,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) len: usize,
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) header: Header,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
}

/// Why a head could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// More header lines than slots (cannot happen: slots are sized by lines).
    TooManyHeaders,
    /// Not HTTP, or broken framing headers (400).
    Invalid(String),
    /// A transfer coding other than `chunked` (501).
    UnsupportedEncoding,
}

impl From<HeadError> for Error {
    fn from(e: HeadError) -> Self {
        match e {
            HeadError::TooManyHeaders => Error::malformed("too many headers"),
            HeadError::Invalid(what) => Error::Malformed(what),
            HeadError::UnsupportedEncoding => Error::malformed("unsupported transfer-encoding"),
        }
    }
}

/// What the framing headers of a message said.
#[derive(Default)]
struct FramingHeaders {
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// Copies httparse headers into a [`Header`] (first value wins) and picks out the
/// framing headers.
fn collect(
    raw: &[httparse::Header<'_>],
    skip_host: bool,
) -> Result<(Header, FramingHeaders), HeadError> {
    let mut header = Header::with_capacity(raw.len());
    let mut f = FramingHeaders::default();
    for h in raw {
        let name = h.name;
        let value = h.value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)?;
            if f.content_length.is_some_and(|old| old != n) {
                return Err(HeadError::Invalid(
                    "conflicting content-length headers".into(),
                ));
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in tokens(value) {
                if f.chunked {
                    // nothing may follow chunked
                    return Err(HeadError::Invalid("chunked is not the last coding".into()));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    f.chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(HeadError::UnsupportedEncoding);
                }
            }
            continue;
        } else if name.eq_ignore_ascii_case("connection") {
            for t in tokens(value) {
                f.close |= t.eq_ignore_ascii_case(b"close");
                f.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if skip_host && name.eq_ignore_ascii_case("host") {
            continue;
        }
        header.insert_if_absent(name, value_string(value));
    }
    if f.chunked && f.content_length.is_some() {
        // a request smuggling vector; RFC 9112 lets us refuse it
        return Err(HeadError::Invalid("both content-length and chunked".into()));
    }
    Ok((header, f))
}

fn value_string(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    }
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn parse_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Invalid(format!(
            "invalid content-length {:?}",
            String::from_utf8_lossy(v)
        )));
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn map_parse_error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        e => HeadError::Invalid(format!("invalid http: {e}")),
    }
}

/// While an incomplete head is at most this long, each read re-parses it so that
/// garbage (a TLS hello, a wrong protocol) is refused at once; beyond it the head is
/// parsed once, when its end has arrived, so a head that arrives a byte at a time
/// costs linear time.
pub(crate) const EARLY_CHECK: usize = 8 * 1024;

/// Where the head at the start of `buf` ends: the index just past the blank line
/// that closes it (`\r\n\r\n`, or bare `\n\n` as httparse also accepts), or `None`
/// while it is incomplete. `from` is how much of `buf` an earlier call already
/// searched, so that a head arriving in many small pieces is scanned once in all,
/// not once per piece: only an end beyond `from` is returned. (The search restarts
/// two bytes before `from` to catch a blank line split across pieces; an end at or
/// before `from`, such as that of leading blank lines the caller already parsed,
/// is not returned again, or the read loops would spin on it.)
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(2);
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let end = match buf.get(nl + 1..)? {
            [b'\n', ..] => Some(nl + 2),
            [b'\r', b'\n', ..] => Some(nl + 3),
            [b'\r'] | [] => return None,
            _ => None,
        };
        if let Some(end) = end.filter(|&end| end > from) {
            return Some(end);
        }
        i = nl + 1;
    }
    None
}

/// Header slots for a head: on the stack for the usual handful; for a large head,
/// one per line, so the limit on a head is its size in bytes, never a count of
/// lines (Go's servers work the same way).
fn with_slots<'b, T>(
    head: &'b [u8],
    parse: impl Fn(&'b [u8], &mut [MaybeUninit<httparse::Header<'b>>]) -> Result<Option<T>, HeadError>,
) -> Result<Option<T>, HeadError> {
    let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    match parse(head, &mut slots) {
        Err(HeadError::TooManyHeaders) => {
            let lines = head.iter().filter(|&&b| b == b'\n').count();
            let mut slots = Vec::with_capacity(lines);
            slots.resize_with(lines, MaybeUninit::uninit);
            parse(head, &mut slots)
        }
        r => r,
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: not complete yet.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    with_slots(buf, parse_request_in)
}

fn parse_request_in<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<RequestHead>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req
        .parse_with_uninit_headers(buf, slots)
        .map_err(map_parse_error)?
    {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let method = match req.method {
        Some("POST") => Method::Post,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let http10 = req.version == Some(0);
    let (header, f) = collect(req.headers, true)?;
    let framing = if f.chunked {
        Framing::Chunked
    } else {
        match f.content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let keep_alive = if http10 {
        f.keep_alive && !f.close
    } else {
        !f.close
    };
    Ok(Some(RequestHead {
        len,
        method,
        http10,
        header,
        framing,
        expect_continue: f.expect_continue && !http10,
        keep_alive,
    }))
}

/// Parses a response head at the start of `buf`. `Ok(None)`: not complete yet.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    with_slots(buf, parse_response_in)
}

fn parse_response_in<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<ResponseHead>, HeadError> {
    let mut rsp = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config
        .parse_response_with_uninit_headers(&mut rsp, buf, slots)
        .map_err(map_parse_error)?
    {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let code = rsp.code.unwrap_or_default();
    let reason = rsp.reason.unwrap_or_default().to_owned();
    let http10 = rsp.version == Some(0);
    let (header, f) = collect(rsp.headers, false)?;
    let framing = if (100..200).contains(&code) || code == 204 || code == 304 {
        Framing::Empty
    } else if f.chunked {
        Framing::Chunked
    } else {
        match f.content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilEof,
        }
    };
    let keep_alive = framing != Framing::UntilEof
        && if http10 {
            f.keep_alive && !f.close
        } else {
            !f.close
        };
    Ok(Some(ResponseHead {
        len,
        code,
        reason,
        header,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
