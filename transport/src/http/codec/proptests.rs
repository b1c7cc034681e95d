//! Property tests of the HTTP framing: heads written by [`encode`](super::encode)
//! parse back to what was written, arbitrary bytes never panic, and a head or a
//! chunked body that arrives in pieces reads the same as when it arrives whole.
//!
//! The functions are crate-private, so the properties live here rather than in
//! `tests/`. Each property runs [`CASES`] generated cases.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;

use super::encode::USER_AGENT;
use super::*;

/// Generated cases per property.
const CASES: u32 = 100_000;

fn config() -> Config {
    Config {
        cases: CASES,
        // a failure is kept as a unit test, not in a file beside the source
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------
// Generators.

/// Pieces of HTTP heads, so that generated garbage gets past the first byte.
const VOCAB: &[&str] = &[
    "POST",
    "GET",
    "HEAD",
    " ",
    "  ",
    "/",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2",
    "HTTP/1.1 200 OK",
    "HTTP/1.0 204 ",
    "HTTP/1.1 100 Continue",
    "\r\n",
    "\n",
    "\r",
    ":",
    ": ",
    ",",
    "\t",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "chunked",
    "identity",
    "gzip",
    "Connection",
    "close",
    "keep-alive",
    "Expect",
    "100-continue",
    "Host",
    "Micro-Id",
    "0",
    "7",
    "18446744073709551616",
    "99999999999999999999",
    "\0",
    "\x7f",
    "é",
    "\u{2028}",
    "x",
];

/// Strings of `len` characters from `alphabet` (cheaper to generate than a
/// regular expression in a debug build).
fn word(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> + Clone {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(select(chars), len).prop_map(String::from_iter)
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(select(VOCAB), 0..48).prop_map(|parts| parts.concat().into_bytes())
}

/// Arbitrary bytes or head-shaped garbage.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), soup()]
}

/// Up to `n` cut points for splitting an input of any length.
fn cuts(n: usize) -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..=n)
}

/// `input` cut at `cuts` (positions taken modulo its length, sorted).
fn split<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for p in at {
        pieces.push(&input[from..p]);
        from = p;
    }
    pieces.push(&input[from..]);
    pieces
}

/// The characters of an HTTP token.
const TOKEN_CHARS: &str =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+.^_`|~-";

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "Content-Type",
                "Micro-Id",
                "micro-endpoint",
                "X-Custom",
                "Host",
                "User-Agent",
                "Content-Length",
                "Transfer-Encoding",
                "Trailer",
                "Connection",
                "Expect",
                "accept",
            ][..]
        )
        .prop_map(str::to_owned),
        word(TOKEN_CHARS, 1..17),
        // not tokens: the writers skip them
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "close",
                "keep-alive, Close",
                "100-continue",
                "application/json",
                ""
            ][..]
        )
        .prop_map(str::to_owned),
        // any UTF-8, CR, LF and the other control characters included
        prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
    ]
}

fn headers() -> impl Strategy<Value = Header> {
    prop::collection::vec((header_name(), header_value()), 0..8)
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn connection() -> impl Strategy<Value = ConnectionHeader> {
    select(
        &[
            ConnectionHeader::None,
            ConnectionHeader::Close,
            ConnectionHeader::KeepAlive,
        ][..],
    )
}

/// A body length the parser reads back (at most 19 digits).
fn body_len() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..64, 0usize..=9_999_999_999_999_999_999]
}

// ---------------------------------------------------------------------------------
// What the writers promise.

/// A value as the writers put it on the wire: control characters (but tab) as
/// spaces, then surrounding blanks trimmed.
fn sanitized(v: &str) -> String {
    let spaced: String = v
        .chars()
        .map(|c| {
            if (c < ' ' && c != '\t') || c == '\x7f' {
                ' '
            } else {
                c
            }
        })
        .collect();
    spaced.trim_matches([' ', '\t']).to_owned()
}

fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(crate::header::is_token_byte)
}

fn is_any(name: &str, set: &[&str]) -> bool {
    set.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// The message headers a written head carries, after the writer's own `first`.
fn expected(first: &[(&str, String)], header: &Header, framing: &[&str]) -> Header {
    let mut out = Header::new();
    for (k, v) in first {
        out.insert(k, v.clone());
    }
    for (k, v) in header.iter() {
        if is_token(k) && !is_any(k, framing) {
            out.insert_if_absent(k, sanitized(v));
        }
    }
    out
}

fn length_framing(n: usize) -> Framing {
    if n == 0 {
        Framing::Empty
    } else {
        Framing::Length(n as u64)
    }
}

// ---------------------------------------------------------------------------------
// The read loop of the client and the server, over pieces instead of a socket.

/// Reads a head the way `client.rs` and `server.rs` do: look for the blank line
/// from where the last search stopped, parse up to it (skipping leading blank
/// lines), and check an incomplete head of at most [`EARLY_CHECK`] bytes at once.
/// `Ok(None)`: no complete head in all of the pieces.
fn read_head<T>(
    pieces: &[&[u8]],
    parse: impl Fn(&[u8]) -> Result<Option<T>, HeadError>,
) -> Result<Option<T>, HeadError> {
    let mut buf = Vec::new();
    let mut scanned = 0;
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(end) = head_end(&buf, scanned) {
            match parse(&buf[..end])? {
                Some(head) => return Ok(Some(head)),
                None => scanned = end,
            }
        }
        scanned = buf.len();
        if buf.len() <= EARLY_CHECK {
            parse(&buf)?;
        }
    }
    Ok(None)
}

/// A comparable summary of a parse outcome (error messages aside: an early check
/// and a complete parse may word the same refusal differently).
fn outcome<T: std::fmt::Debug>(r: &Result<Option<T>, HeadError>) -> Option<String> {
    r.as_ref().ok().map(|h| format!("{h:?}"))
}

fn request_summary(r: Result<Option<RequestHead>, HeadError>) -> Result<Option<String>, ()> {
    r.map(|h| h.map(|h| format!("{h:?}"))).map_err(|_| ())
}

// ---------------------------------------------------------------------------------
// Chunked bodies.

/// One chunk-size line's extension: usually short, sometimes around the
/// 1024-byte line limit.
fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(String::new()),
        4 => prop::collection::vec(
            (
                word("abcdefghijklmnopqrstuvwxyz", 1..6),
                prop::option::of(prop_oneof![
                    word("abcdefghijklmnopqrstuvwxyz0123456789", 1..6),
                    word("abcdefghijklmnopqrstuvwxyz ", 0..6).prop_map(|q| format!("\"{q}\"")),
                ]),
            ),
            1..4,
        )
        .prop_map(|exts| {
            exts.into_iter()
                .map(|(name, value)| match value {
                    Some(v) => format!(";{name}={v}"),
                    None => format!(";{name}"),
                })
                .collect()
        }),
        1 => (1000usize..1040).prop_map(|n| format!(";{}", "e".repeat(n))),
    ]
}

/// A chunked body: its chunks (data and extension), the last chunk's extension,
/// trailer lines and whether lines end in CRLF.
#[derive(Clone, Debug)]
struct Chunked {
    chunks: Vec<(Vec<u8>, String, bool)>,
    last_ext: String,
    trailers: Vec<(String, bool)>,
    final_crlf: bool,
}

fn chunked() -> impl Strategy<Value = Chunked> {
    let chunk = (
        prop::collection::vec(any::<u8>(), 1..64),
        extension(),
        any::<bool>(),
    );
    (
        prop::collection::vec(chunk, 0..6),
        extension(),
        prop::collection::vec(
            (
                (
                    word("ABCXYZabcxyz-", 1..9),
                    word(" !\"#:;<=>?@AZaz[\\]^_`{|}~0189", 0..17),
                )
                    .prop_map(|(name, value)| format!("{name}: {value}")),
                any::<bool>(),
            ),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(chunks, last_ext, trailers, final_crlf)| Chunked {
            chunks,
            last_ext,
            trailers,
            final_crlf,
        })
}

impl Chunked {
    /// The encoded body and the length of its trailer section.
    fn encode(&self) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        for (data, ext, upper) in &self.chunks {
            let size = if *upper {
                format!("{:X}", data.len())
            } else {
                format!("{:x}", data.len())
            };
            out.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("0{}\r\n", self.last_ext).as_bytes());
        let before = out.len();
        for (line, crlf) in &self.trailers {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        out.extend_from_slice(if self.final_crlf { b"\r\n" } else { b"\n" });
        let trailer = out.len() - before;
        (out, trailer)
    }

    fn body(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|c| c.0.iter().copied())
            .collect()
    }

    /// What decoding must give with these limits: the first limit broken, in the
    /// order the decoder meets them, or the body.
    fn expected(&self, limit: u64, max_trailer: usize, trailer: usize) -> Decoded {
        let line_ok = |n: usize, ext: &str| format!("{n:x}").len() + ext.len() + 2 <= 1024;
        let mut total = 0;
        for (data, ext, _) in &self.chunks {
            if !line_ok(data.len(), ext) {
                return Err("invalid chunk size".into());
            }
            total += data.len() as u64;
            if total > limit {
                return Err("body".into());
            }
        }
        if !line_ok(0, &self.last_ext) {
            return Err("invalid chunk size".into());
        }
        if trailer > max_trailer {
            return Err("trailer section".into());
        }
        Ok(Some((self.body(), b"NEXT".to_vec())))
    }
}

/// What decoding `pieces` gives: the body and what was left after it once every
/// piece was fed, or `None` while incomplete.
type Decoded = Result<Option<(Vec<u8>, Vec<u8>)>, String>;

fn decode_pieces(pieces: &[&[u8]], limit: u64, max_trailer: usize) -> Decoded {
    let mut dec = ChunkedDecoder::default();
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut done = false;
    for piece in pieces {
        input.put_slice(piece);
        if !done {
            done = dec
                .decode(&mut input, &mut out, limit, max_trailer)
                .map_err(|e| match e {
                    // the size reported depends on how much had arrived
                    Error::TooLarge { what, .. } => what.to_owned(),
                    Error::Malformed(why) => why,
                    e => e.to_string(),
                })?;
        }
    }
    Ok(done.then(|| (out.to_vec(), input.to_vec())))
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: every parser answers, none panics, and a complete head
    /// lies within the input.
    #[test]
    fn garbage_never_panics(buf in garbage(), from in any::<Index>()) {
        if let Ok(Some(h)) = parse_request(&buf) {
            prop_assert!(h.len <= buf.len());
        }
        if let Ok(Some(h)) = parse_response(&buf) {
            prop_assert!(h.len <= buf.len());
        }
        let from = from.index(buf.len() + 8);
        if let Some(end) = head_end(&buf, from) {
            prop_assert!(end <= buf.len() && buf[end - 1] == b'\n');
        }
    }

    /// Arbitrary bytes read in pieces: the same outcome as read whole.
    #[test]
    fn garbage_reads_the_same_in_pieces(buf in garbage(), cuts in cuts(6)) {
        let pieces = split(&buf, &cuts);
        let whole = read_head(&[&buf], parse_request);
        let split = read_head(&pieces, parse_request);
        prop_assert_eq!(whole.is_err(), split.is_err());
        prop_assert_eq!(outcome(&whole), outcome(&split));
        let whole = read_head(&[&buf], parse_response);
        let split = read_head(&pieces, parse_response);
        prop_assert_eq!(whole.is_err(), split.is_err());
        prop_assert_eq!(outcome(&whole), outcome(&split));
    }

    /// A written request parses back: the writer's framing headers, the message
    /// headers with valid names and sanitised values, nothing injected; in any
    /// split, followed by its body and the next request.
    #[test]
    fn requests_round_trip(
        host in header_value(),
        header in headers(),
        len in body_len(),
        cuts in cuts(6),
    ) {
        let mut buf = BytesMut::new();
        write_request(&mut buf, &host, &header, len);
        let head_len = buf.len();
        let ua = sanitized(header.get("User-Agent").unwrap_or(USER_AGENT));
        let want = expected(
            &[("User-Agent", ua), ("Content-Length", len.to_string())],
            &header,
            &["Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"],
        );
        let head = parse_request(&buf).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let head = head.ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(head.len, head_len);
        prop_assert_eq!(head.method, Method::Post);
        prop_assert!(!head.http10);
        prop_assert_eq!(&head.header, &want);
        prop_assert_eq!(head.framing, length_framing(len));
        prop_assert_eq!(head.keep_alive, !has_token(want.get("Connection"), "close"));
        prop_assert_eq!(
            head.expect_continue,
            want.get("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        );

        buf.extend_from_slice(&b"body bytes"[..len.min(10)]);
        write_request(&mut buf, "next", &Header::new(), 0);
        let whole = format!("{head:?}");
        let got = request_summary(read_head(&split(&buf, &cuts), parse_request));
        prop_assert_eq!(got, Ok(Some(whole)));
    }

    /// A written response parses back likewise, in any split.
    #[test]
    fn responses_round_trip(
        header in headers(),
        len in body_len(),
        conn in connection(),
        cuts in cuts(6),
    ) {
        let mut buf = BytesMut::new();
        write_response(&mut buf, &header, len, conn);
        let head_len = buf.len();
        let mut first = vec![("Content-Length", len.to_string())];
        match conn {
            ConnectionHeader::None => {}
            ConnectionHeader::Close => first.push(("Connection", "close".into())),
            ConnectionHeader::KeepAlive => first.push(("Connection", "keep-alive".into())),
        }
        let want = expected(
            &first,
            &header,
            &["Content-Length", "Transfer-Encoding", "Trailer", "Connection"],
        );
        let head = parse_response(&buf).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let head = head.ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(head.len, head_len);
        prop_assert_eq!((head.code, head.reason.as_str()), (200, "OK"));
        prop_assert_eq!(&head.header, &want);
        prop_assert_eq!(head.framing, length_framing(len));
        prop_assert_eq!(head.keep_alive, conn != ConnectionHeader::Close);

        buf.extend_from_slice(&b"body bytes"[..len.min(10)]);
        write_response(&mut buf, &Header::new(), 0, ConnectionHeader::None);
        let whole = format!("{head:?}");
        let got = read_head(&split(&buf, &cuts), parse_response)
            .map(|h| h.map(|h| format!("{h:?}")))
            .map_err(|e| format!("{e:?}"));
        prop_assert_eq!(got, Ok(Some(whole)));
    }

    /// An error response parses back with its code, reason and body.
    #[test]
    fn error_responses_round_trip(
        code in 100u16..600,
        // letters and inner spaces, or nothing
        reason in word("ABCNOTZabcnotz ", 0..30).prop_map(|r| r.trim().to_owned()),
        conn in connection(),
        head_only in any::<bool>(),
    ) {
        let mut buf = BytesMut::new();
        write_error(&mut buf, code, &reason, conn, head_only);
        let head = parse_response(&buf).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let head = head.ok_or_else(|| TestCaseError::fail("incomplete"))?;
        let text = format!("{code} {reason}\n");
        prop_assert_eq!((head.code, head.reason.as_str()), (code, reason.as_str()));
        let text_len = text.len().to_string();
        prop_assert_eq!(head.header.get("Content-Length"), Some(text_len.as_str()));
        prop_assert_eq!(head.header.get("Allow").is_some(), code == 405);
        let body = &buf[head.len..];
        prop_assert_eq!(body, if head_only { &b""[..] } else { text.as_bytes() });
        let bodiless = (100..200).contains(&code) || code == 204 || code == 304;
        let framing = if bodiless { Framing::Empty } else { Framing::Length(text.len() as u64) };
        prop_assert_eq!(head.framing, framing);
    }

    /// A chunked body decodes to its data in any split, leaves what follows it in
    /// the buffer, and is refused exactly when it breaks a limit.
    #[test]
    fn chunked_bodies_round_trip(
        c in chunked(),
        slack in 0u64..4,
        short in any::<bool>(),
        max_trailer in 0usize..80,
        cuts in cuts(8),
    ) {
        let (mut input, trailer) = c.encode();
        let body = c.body().len() as u64;
        let limit = if short { body.saturating_sub(slack) } else { body + slack };
        input.extend_from_slice(b"NEXT");
        let whole = decode_pieces(&[&input], limit, max_trailer);
        let split = decode_pieces(&split(&input, &cuts), limit, max_trailer);
        prop_assert_eq!(&whole, &c.expected(limit, max_trailer, trailer));
        prop_assert_eq!(&whole, &split);
    }

    /// Arbitrary bytes as a chunked body: no panic, and the same outcome in any
    /// split.
    #[test]
    fn chunked_garbage_decodes_the_same_in_pieces(
        buf in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(
                select(&["0", "1", "a", "F", ";", "x=y", "\r\n", "\n", "\r", "abc", " "][..]),
                0..32,
            )
            .prop_map(|p| p.concat().into_bytes()),
        ],
        limit in 0u64..64,
        max_trailer in 0usize..64,
        cuts in cuts(6),
    ) {
        let whole = decode_pieces(&[&buf], limit, max_trailer);
        let split = decode_pieces(&split(&buf, &cuts), limit, max_trailer);
        prop_assert_eq!(whole, split);
    }
}
