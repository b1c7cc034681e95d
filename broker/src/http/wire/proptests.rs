//! Property tests of the broker's wire format: what [`encode`] writes is Go's JSON
//! for the message and [`decode`] reads it back, for any topic, headers (arbitrary
//! UTF-8 keys and values) and body; arbitrary bytes never panic the decoder; the
//! `id` query parameter and the error bodies survive any text.
//!
//! The functions are crate-private, so the properties live here rather than in
//! `tests/`. Each property runs [`CASES`] generated cases.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde::Deserialize;

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

/// Any UTF-8 text: control characters, HTML characters, U+2028, astral planes.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        select(
            &[
                "",
                "Micro-Topic",
                "micro-topic",
                "<a&b>",
                "\u{2028}\u{2029}",
                "\"\\"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn message() -> impl Strategy<Value = Envelope> {
    message_with(8)
}

/// A message with fewer than `headers` headers.
fn message_with(headers: usize) -> impl Strategy<Value = Envelope> {
    (
        prop::collection::btree_map(text(16), text(24), 0..headers),
        prop::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(|(header, body)| Envelope {
            header,
            body: body.into(),
        })
}

/// JSON-shaped garbage: tokens a delivery body is made of, in any order.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens = select(
        &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "null",
            "true",
            "1",
            "-0.5e3",
            "\"Header\"",
            "\"header\"",
            "\"BODY\"",
            "\"Body\"",
            "\"x\"",
            "\"aGk=\"",
            "\"a\\r\\nGk=\"",
            "\"!!\"",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"\\u00e9\"",
            "\"\\",
            "\"",
            "\u{ff}",
        ][..],
    );
    prop::collection::vec(tokens, 0..40).prop_map(|t| t.concat().into_bytes())
}

/// Strings of `len` characters from `alphabet` (cheaper to generate than a
/// regular expression in a debug build).
fn word(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> + Clone {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(select(chars), len).prop_map(String::from_iter)
}

/// `word` with the letters whose bit is set in `mask` in upper case.
fn cased(word: &str, mask: u8) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> i & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A valid delivery body with one byte changed, or cut short.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        text(8),
        message(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(topic, msg, at, byte, cut)| {
            let mut wire = encode(&topic, &msg).to_vec();
            let i = at.index(wire.len());
            if cut {
                wire.truncate(i);
            } else {
                wire[i] = byte;
            }
            wire
        })
}

/// A delivery body's fields in the order they were written.
#[derive(Deserialize)]
struct Written {
    #[serde(rename = "Header")]
    header: Ordered,
    #[serde(rename = "Body")]
    body: Option<String>,
}

/// A JSON object of strings, in document order.
struct Ordered(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, JSON-shaped garbage and damaged bodies: an answer, never a panic, and
    /// whatever decodes re-encodes to a body that decodes the same.
    #[test]
    fn garbage_never_panics(
        buf in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_soup(),
            mutated(),
        ],
    ) {
        if let Ok(Some(msg)) = decode(&buf) {
            let topic = msg.header.get(TOPIC_HEADER).cloned().unwrap_or_default();
            let again = decode(&encode(&topic, &msg)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut want = msg;
            want.header.insert(TOPIC_HEADER.to_owned(), topic);
            prop_assert_eq!(again, Some(want));
        }
    }

    /// A published message decodes to itself with `Micro-Topic` set to the topic;
    /// the body is Go's: keys in sorted order, HTML characters escaped, the body
    /// in base64 (`null` when empty).
    #[test]
    fn messages_round_trip(topic in text(24), msg in message()) {
        let wire = encode(&topic, &msg);
        let mut want = msg.clone();
        want.header.insert(TOPIC_HEADER.to_owned(), topic);
        let got = decode(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, Some(want.clone()));

        let text = std::str::from_utf8(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']), "{}", text);
        let written: Written =
            serde_json::from_slice(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sorted: Vec<(String, String)> = want.header.into_iter().collect();
        prop_assert_eq!(written.header.0, sorted);
        let body = written.body.map(|b| STANDARD.decode(b)).transpose();
        let body = body.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(body, (!msg.body.is_empty()).then(|| msg.body.to_vec()));
    }

    /// Decoding is as lenient as Go's: field names in any case, white space
    /// between tokens, `null` header values read as `""`.
    #[test]
    fn lenient_forms_decode_the_same(
        // the spelling is under test here, not the headers: a few do
        msg in message_with(3),
        header_case in any::<u8>(),
        body_case in any::<u8>(),
        pretty in any::<bool>(),
        null_value in any::<bool>(),
    ) {
        let mut header: BTreeMap<String, serde_json::Value> = msg
            .header
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().into()))
            .collect();
        let mut want = msg.clone();
        if null_value {
            header.insert("Nulled".into(), serde_json::Value::Null);
            want.header.insert("Nulled".into(), String::new());
        }
        let body = STANDARD.encode(&msg.body);
        let header_key = cased("header", header_case);
        let body_key = cased("body", body_case);
        let doc = serde_json::json!({ header_key: header, body_key: body });
        let bytes = if pretty {
            serde_json::to_vec_pretty(&doc)
        } else {
            serde_json::to_vec(&doc)
        };
        let bytes = bytes.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, Some(want));
    }

    /// The subscriber id survives the query string whatever it holds, and any
    /// query string is read without a panic.
    #[test]
    fn query_ids_round_trip(id in text(32), before in word("aidz=&%+;09", 0..13), junk in text(32)) {
        let query = format!("{before}&id={}&id=second", query_escape(&id));
        // a pair before ours named `id` would win, as in Go
        if query_param(&before, "id").is_none() {
            prop_assert_eq!(query_param(&query, "id"), Some(id));
        }
        let _ = query_param(&junk, "id");
        let _ = query_param(&junk, &junk);
    }

    /// Error bodies are JSON whose fields read back as written.
    #[test]
    fn error_bodies_round_trip(code in any::<u16>(), detail in text(48), status in text(24)) {
        let body = error_json(code, &detail, &status);
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&v["id"], ERROR_ID);
        prop_assert_eq!(&v["code"], code);
        prop_assert_eq!(&v["detail"], detail.as_str());
        prop_assert_eq!(&v["status"], status.as_str());
    }
}
