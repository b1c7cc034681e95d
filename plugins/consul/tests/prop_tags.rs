//! Property tests of go-micro's Consul tag encoding: a generated node's metadata,
//! its service's endpoints and version round-trip through the tags, whatever
//! foreign or broken tags sit among them; the older plain forms read the same;
//! arbitrary and damaged tags never panic the decoders. Each property runs
//! [`CASES`] generated cases.

use micro_consul::tags::{
    self, decode, decode_endpoints, decode_metadata, decode_version, encode, encode_tags,
};
use micro_registry::{Endpoint, MetadataMap, Node, ServiceRecord, Value};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;

/// Generated cases per property.
const CASES: u32 = 100_000;

/// Generated cases for the properties that compress tags: each zlib stream costs
/// its compressor's allocation (about 300 KB), which makes a case some 10 times
/// dearer than the others in a debug build; 100 000 cases of them took over a
/// minute on two cores. The decoders still meet [`CASES`] cases of garbage and of
/// plain forms.
const ZLIB_CASES: u32 = 25_000;

fn config() -> Config {
    with_cases(CASES)
}

fn with_cases(cases: u32) -> Config {
    Config {
        cases,
        // a failure is kept as a unit test, not in a file beside the source
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any UTF-8 text, or one that looks like a tag.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        select(&["", "t", "t-", "e=", "v-", "{}", "latest", "1.0.0"][..]).prop_map(str::to_owned),
    ]
}

fn metadata() -> impl Strategy<Value = MetadataMap> {
    prop::collection::btree_map(text(8), text(12), 0..3)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = (text(8), text(8)).prop_map(|(name, type_name)| Value {
        name,
        type_name,
        values: Vec::new(),
    });
    (text(8), text(8), prop::collection::vec(leaf, 0..3)).prop_map(|(name, type_name, values)| {
        Value {
            name,
            type_name,
            values,
        }
    })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        text(12),
        prop::option::of(value()),
        prop::option::of(value()),
        metadata(),
    )
        .prop_map(|(name, request, response, metadata)| Endpoint {
            name,
            request,
            response,
            metadata,
        })
}

/// A service with one node: what one Consul registration carries.
fn registration() -> impl Strategy<Value = (ServiceRecord, Node)> {
    (
        text(12),
        prop::collection::vec(endpoint(), 0..3),
        text(8),
        metadata(),
    )
        .prop_map(|(version, endpoints, id, metadata)| {
            let service = ServiceRecord {
                name: "svc".into(),
                version,
                endpoints,
                ..ServiceRecord::default()
            };
            let node = Node {
                id,
                address: "127.0.0.1:1".into(),
                metadata,
            };
            (service, node)
        })
}

/// Strings of `len` characters from `alphabet` (cheaper to generate than a
/// regular expression in a debug build).
fn word(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> + Clone {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(select(chars), len).prop_map(String::from_iter)
}

const HEX: &str = "0123456789abcdef";

const PREFIXES: [&str; 6] = ["t-", "t=", "e-", "e=", "v-", "v="];

/// A tag the decoders must leave alone: a foreign one (no go-micro prefix), or
/// one with a prefix whose content does not decode.
fn junk() -> impl Strategy<Value = String> {
    let kind = select(&["t", "e", "v"][..]);
    prop_oneof![
        text(16).prop_filter("foreign", |t| !PREFIXES.iter().any(|p| t.starts_with(p))),
        // not hex
        (
            kind.clone(),
            word(HEX, 0..7),
            word("gz:é", 1..2),
            word(HEX, 0..7)
        )
            .prop_map(|(k, a, x, b)| format!("{k}-{a}{x}{b}")),
        // odd length
        (
            kind.clone(),
            prop::collection::vec(any::<u8>(), 1..6),
            word(HEX, 1..2)
        )
            .prop_map(|(k, b, h)| format!("{k}-{}{h}", hex::encode(b))),
        // hex, but no zlib stream (compression method 0)
        (kind, prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(k, b)| format!("{k}-00{}", hex::encode(b))),
        // plain forms that are not a JSON object
        (select(&["t", "e"][..]), text(8)).prop_map(|(k, t)| format!("{k}=[{t}")),
    ]
}

/// Valid tags of every kind, to damage (made once: compressing is dear).
fn valid_tags() -> Vec<String> {
    let endpoint = Endpoint {
        name: "Greeter.Hello".into(),
        metadata: [("stream".to_owned(), "true".to_owned())].into(),
        ..Endpoint::default()
    };
    let mut all = tags::encode_metadata(&[("protocol".to_owned(), "mucp".to_owned())].into());
    all.extend(tags::encode_endpoints(&[endpoint, Endpoint::default()]));
    all.extend(["", "1.0.0", "latest"].map(tags::encode_version));
    all
}

/// `tags` with `junk` inserted at the given positions.
fn interleave(mut tags: Vec<String>, junk: Vec<(Index, String)>) -> Vec<String> {
    for (at, j) in junk {
        let i = at.index(tags.len() + 1);
        tags.insert(i, j);
    }
    tags
}

proptest! {
    #![proptest_config(with_cases(ZLIB_CASES))]

    /// A node's metadata, its service's endpoints and version come back from its
    /// tags, with foreign and broken tags anywhere among them.
    #[test]
    fn tags_round_trip(
        (service, node) in registration(),
        junk in prop::collection::vec((any::<Index>(), junk()), 0..4),
    ) {
        let tags = interleave(encode_tags(&service, &node), junk);
        prop_assert_eq!(decode_metadata(&tags), node.metadata);
        prop_assert_eq!(decode_endpoints(&tags), service.endpoints);
        prop_assert_eq!(decode_version(&tags), Some(service.version));
    }

    /// The hex-of-zlib content encoding round-trips any bytes.
    #[test]
    fn contents_round_trip(data in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert_eq!(decode(&encode(&data)), Ok(data));
    }
}

proptest! {
    #![proptest_config(config())]

    /// go-micro's older plain forms (`t=`, `e=`, `v=`) read as the encoded ones.
    #[test]
    fn plain_forms_read_the_same((service, node) in registration()) {
        let mut plain = Vec::new();
        for (k, v) in &node.metadata {
            let one: MetadataMap = [(k.clone(), v.clone())].into();
            let json = serde_json::to_string(&one).map_err(|e| TestCaseError::fail(e.to_string()))?;
            plain.push(format!("t={json}"));
        }
        for e in &service.endpoints {
            let json = serde_json::to_string(e).map_err(|e| TestCaseError::fail(e.to_string()))?;
            plain.push(format!("e={json}"));
        }
        plain.push(format!("v={}", service.version));
        prop_assert_eq!(decode_metadata(&plain), node.metadata);
        prop_assert_eq!(decode_endpoints(&plain), service.endpoints);
        prop_assert_eq!(decode_version(&plain), Some(service.version));
    }

    /// Arbitrary tags, prefixed garbage and damaged valid tags (a character
    /// changed, or cut short): every decoder answers, none panics.
    #[test]
    fn garbage_never_panics(
        tags in prop::collection::vec(
            prop_oneof![
                text(64),
                (select(&PREFIXES[..]), text(48)).prop_map(|(p, t)| format!("{p}{t}")),
                (select(&PREFIXES[..]), word(HEX, 0..97)).prop_map(|(p, t)| format!("{p}{t}")),
                (select(valid_tags()), any::<Index>(), any::<char>(), any::<bool>()).prop_map(
                    |(mut tag, at, c, cut)| {
                        let i = at.index(tag.len());
                        // tags are ASCII: every index is a character boundary
                        if cut {
                            tag.truncate(i);
                        } else {
                            tag.replace_range(i..=i, c.encode_utf8(&mut [0; 4]));
                        }
                        tag
                    },
                ),
            ],
            0..6,
        ),
        hex in word("0123456789abcdefABCDEF", 0..65),
    ) {
        let _ = decode_version(&tags);
        let _ = decode_metadata(&tags);
        let _ = decode_endpoints(&tags);
        let _ = decode(&hex);
        for tag in &tags {
            let _ = decode(tag);
        }
    }
}
