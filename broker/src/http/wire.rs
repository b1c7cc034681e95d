//! go-micro's HTTP broker wire format: the JSON body of a delivery POST, the `id`
//! query parameter and the error bodies a subscriber answers with.
//!
//! Encoding is byte-for-byte what Go's `json.Marshal` makes of go-micro's
//! `broker.Message` (`{"Header":{...},"Body":"<base64>"}`, map keys sorted, HTML
//! characters escaped). Decoding is as lenient as Go's `encoding/json`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::Envelope;

/// The header that carries the topic; its exact case is part of the wire.
pub(crate) const TOPIC_HEADER: &str = "Micro-Topic";

/// The error id go-micro's broker answers with.
const ERROR_ID: &str = "go.micro.broker";

/// Encodes `msg` published to `topic` as go-micro's publisher does: the headers
/// with `Micro-Topic` set to `topic`, the body in standard base64 (`null` when
/// empty, as Go writes a nil slice).
pub(crate) fn encode(topic: &str, msg: &Envelope) -> Bytes {
    let header_len: usize = msg.header.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = String::with_capacity(40 + topic.len() + header_len + msg.body.len() * 4 / 3);
    out.push_str("{\"Header\":{");
    let mut first = true;
    let mut topic_written = false;
    let mut entry = |out: &mut String, k: &str, v: &str| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        go_string(out, k);
        out.push(':');
        go_string(out, v);
    };
    for (k, v) in &msg.header {
        if !topic_written && k.as_str() >= TOPIC_HEADER {
            entry(&mut out, TOPIC_HEADER, topic);
            topic_written = true;
        }
        if k != TOPIC_HEADER {
            entry(&mut out, k, v);
        }
    }
    if !topic_written {
        entry(&mut out, TOPIC_HEADER, topic);
    }
    out.push_str("},\"Body\":");
    if msg.body.is_empty() {
        out.push_str("null");
    } else {
        out.push('"');
        STANDARD.encode_string(&msg.body, &mut out);
        out.push('"');
    }
    out.push('}');
    Bytes::from(out)
}

/// Decodes a delivery body. `Ok(None)` is JSON `null`. Field names match
/// case-insensitively, unknown fields are ignored, a missing or `null` body is
/// empty, a `null` header value is `""`.
pub(crate) fn decode(body: &[u8]) -> Result<Option<Envelope>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let msg = MessageSeed.deserialize(&mut de)?;
    de.end()?;
    Ok(msg)
}

struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Option<Envelope>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Option<Envelope>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a broker message object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut header = BTreeMap::new();
        let mut body = Bytes::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.eq_ignore_ascii_case("header") {
                map.next_value_seed(HeaderSeed(&mut header))?;
            } else if key.eq_ignore_ascii_case("body") {
                let b64: Option<std::borrow::Cow<'de, str>> = map.next_value()?;
                body = match b64 {
                    None => Bytes::new(),
                    Some(s) => decode_base64(&s).map_err(de::Error::custom)?,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(Envelope { header, body }))
    }
}

/// Most headers a delivered message may carry: thousands of metadata pairs pass,
/// a body of hundreds of thousands of tiny keys is refused (500, as any message
/// that does not decode). Insertion is O(log n) in the ordered map either way.
pub(crate) const MAX_HEADERS: usize = 10_000;

/// Decodes the header object into an existing map (Go merges repeated fields into
/// one map; a `null` resets it).
struct HeaderSeed<'a>(&'a mut BTreeMap<String, String>);

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string headers")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.clear();
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((k, v)) = map.next_entry::<String, Option<String>>()? {
            self.0.insert(k, v.unwrap_or_default());
            if self.0.len() > MAX_HEADERS {
                return Err(de::Error::custom(format_args!(
                    "more than {MAX_HEADERS} headers"
                )));
            }
        }
        Ok(())
    }
}

/// Standard base64 with padding, as Go's `[]byte` JSON decoding (which skips
/// `\r` and `\n`).
fn decode_base64(s: &str) -> Result<Bytes, String> {
    let res = if s.contains(['\r', '\n']) {
        let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        STANDARD.decode(clean)
    } else {
        STANDARD.decode(s)
    };
    res.map(Bytes::from)
        .map_err(|e| format!("illegal base64 data in Body: {e}"))
}

/// Writes `s` as a JSON string exactly as Go's `encoding/json` does (HTML-safe:
/// `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`; U+2028 and U+2029 escaped).
pub(crate) fn go_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        let needs_hex = matches!(
            c,
            '\0'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}'
        );
        if esc.is_none() && !needs_hex {
            continue;
        }
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The body of a go-micro error (`errors.Error` marshalled by Go), e.g.
/// `{"id":"go.micro.broker","code":500,"detail":"Topic not found","status":"Internal Server Error"}`.
pub(crate) fn error_json(code: u16, detail: &str, status: &str) -> String {
    let mut out = String::with_capacity(64 + detail.len());
    out.push_str("{\"id\":");
    go_string(&mut out, ERROR_ID);
    let _ = write!(out, ",\"code\":{code},\"detail\":");
    go_string(&mut out, detail);
    out.push_str(",\"status\":");
    go_string(&mut out, status);
    out.push('}');
    out
}

/// Escapes a query value as Go's `url.QueryEscape` (what `url.Values.Encode`
/// uses): unreserved characters as is, space as `+`, everything else `%XX`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The first value of query parameter `name` in `query` (the part after `?`), as
/// Go's `req.Form.Get`: `+` is a space, `%XX` is decoded, pairs with a bad escape
/// are skipped.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
            continue;
        };
        if k == name {
            return Some(v);
        }
    }
    None
}

fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping() {
        let mut s = String::new();
        go_string(&mut s, "a<b>&c\"\\\n\t\u{1}\u{2028}é\u{7f}");
        assert_eq!(
            s,
            "\"a\\u003cb\\u003e\\u0026c\\\"\\\\\\n\\t\\u0001\\u2028é\u{7f}\""
        );
    }

    #[test]
    fn encode_sorts_and_overrides_topic() {
        let msg = Envelope::new("hi")
            .with_header("Z", "1")
            .with_header("Micro-Topic", "other")
            .with_header("A", "2");
        let b = encode("t", &msg);
        assert_eq!(
            &b[..],
            br#"{"Header":{"A":"2","Micro-Topic":"t","Z":"1"},"Body":"aGk="}"#
        );
        let empty = encode("t", &Envelope::default());
        assert_eq!(&empty[..], br#"{"Header":{"Micro-Topic":"t"},"Body":null}"#);
    }

    #[test]
    fn decode_is_lenient() {
        let m = decode(br#"{"header":{"Micro-Topic":"t","x":null},"BODY":"aGk=","extra":[1]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(m.header["Micro-Topic"], "t");
        assert_eq!(m.header["x"], "");
        assert_eq!(&m.body[..], b"hi");
        for body in [
            &br#"{"Header":{}}"#[..],
            br#"{"Header":{},"Body":null}"#,
            br#"{"Body":""}"#,
        ] {
            assert!(decode(body).unwrap().unwrap().body.is_empty());
        }
        assert_eq!(decode(b"null").unwrap(), None);
        assert!(decode(b"[]").is_err());
        assert!(decode(br#"{"Header":{"a":1}}"#).is_err());
        assert!(decode(br#"{"Body":"!!"}"#).is_err());
        assert!(decode(br#"{} x"#).is_err());
    }

    #[test]
    fn query() {
        assert_eq!(query_escape("a b/c-d_e.f~g:h"), "a+b%2Fc-d_e.f~g%3Ah");
        assert_eq!(
            query_param("x=1&id=a+b%2Fc", "id").as_deref(),
            Some("a b/c")
        );
        assert_eq!(query_param("id=%zz&id=ok", "id").as_deref(), Some("ok"));
        assert_eq!(query_param("", "id"), None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            error_json(400, "Method not allowed", "Bad Request"),
            r#"{"id":"go.micro.broker","code":400,"detail":"Method not allowed","status":"Bad Request"}"#
        );
    }

    #[test]
    fn header_count_is_capped() {
        let many = |n: usize| {
            let pairs: Vec<String> = (0..n).map(|i| format!("\"k{i}\":\"v\"")).collect();
            format!("{{\"Header\":{{{}}},\"Body\":null}}", pairs.join(","))
        };
        let ok = decode(many(MAX_HEADERS).as_bytes()).unwrap().unwrap();
        assert_eq!(ok.header.len(), MAX_HEADERS);
        let err = decode(many(MAX_HEADERS + 1).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("more than 10000 headers"), "{err}");
    }
}
