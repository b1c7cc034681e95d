//! Property tests of the registry JSON (go-micro's service records, as etcd stores
//! them and the HTTP broker registers them): generated services round-trip, the
//! lenient forms Go's `encoding/json` accepts read the same, and arbitrary bytes
//! never panic the reader. Each property runs [`CASES`] generated cases.

use micro_registry::{Endpoint, MetadataMap, Node, ServiceRecord, Value};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::{Map, Value as Json, json};

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

/// Any UTF-8 text, or a name a real record has.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        select(
            &[
                "",
                "helloworld",
                "latest",
                "127.0.0.1:8080",
                "[::1]:1",
                "protocol",
                "mucp"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn metadata() -> impl Strategy<Value = MetadataMap> {
    prop::collection::btree_map(text(8), text(12), 0..4)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = (text(8), text(8)).prop_map(|(name, type_name)| Value {
        name,
        type_name,
        values: Vec::new(),
    });
    leaf.prop_recursive(3, 8, 3, |inner| {
        (text(8), text(8), prop::collection::vec(inner, 0..3)).prop_map(
            |(name, type_name, values)| Value {
                name,
                type_name,
                values,
            },
        )
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

fn node() -> impl Strategy<Value = Node> {
    (text(12), text(12), metadata()).prop_map(|(id, address, metadata)| Node {
        id,
        address,
        metadata,
    })
}

fn service() -> impl Strategy<Value = ServiceRecord> {
    (
        text(12),
        text(8),
        metadata(),
        prop::collection::vec(endpoint(), 0..3),
        prop::collection::vec(node(), 0..3),
    )
        .prop_map(
            |(name, version, metadata, endpoints, nodes)| ServiceRecord {
                name,
                version,
                metadata,
                endpoints,
                nodes,
            },
        )
}

/// How a lenient writer may spell a record: field names in any case, unknown
/// fields, `null` list elements (skipped by readers), missing empty fields.
#[derive(Clone, Copy, Debug)]
struct Spelling {
    /// Bits choosing the case of field-name letters.
    case: u64,
    unknown: bool,
    null_elements: bool,
    omit_empty: bool,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (any::<u64>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(case, unknown, null_elements, omit_empty)| Spelling {
            case,
            unknown,
            null_elements,
            omit_empty,
        },
    )
}

impl Spelling {
    fn key(&self, name: &str) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if self.case >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    fn object(&self, fields: Vec<(&str, Json, bool)>) -> Json {
        let mut m = Map::new();
        for (name, v, empty) in fields {
            if !(empty && self.omit_empty) {
                m.insert(self.key(name), v);
            }
        }
        if self.unknown {
            m.insert("extra".into(), json!([1, {"name": "not this"}, null]));
        }
        Json::Object(m)
    }

    fn list<T>(&self, items: &[T], each: impl Fn(&T) -> Json) -> (Json, bool) {
        let mut out: Vec<Json> = items.iter().map(each).collect();
        if self.null_elements {
            out.insert(0, Json::Null);
            out.push(Json::Null);
        }
        (Json::Array(out), items.is_empty())
    }

    fn metadata(&self, md: &MetadataMap) -> (Json, bool) {
        (json!(md), md.is_empty())
    }

    fn value(&self, v: &Value) -> Json {
        let (values, empty) = self.list(&v.values, |x| self.value(x));
        self.object(vec![
            ("name", json!(v.name), v.name.is_empty()),
            ("type", json!(v.type_name), v.type_name.is_empty()),
            ("values", values, empty),
        ])
    }

    fn service(&self, s: &ServiceRecord) -> Json {
        let (md, md_empty) = self.metadata(&s.metadata);
        let (endpoints, no_endpoints) = self.list(&s.endpoints, |e| {
            let (md, md_empty) = self.metadata(&e.metadata);
            let opt = |v: &Option<Value>| v.as_ref().map_or(Json::Null, |v| self.value(v));
            self.object(vec![
                ("name", json!(e.name), e.name.is_empty()),
                ("request", opt(&e.request), e.request.is_none()),
                ("response", opt(&e.response), e.response.is_none()),
                ("metadata", md, md_empty),
            ])
        });
        let (nodes, no_nodes) = self.list(&s.nodes, |n| {
            let (md, md_empty) = self.metadata(&n.metadata);
            self.object(vec![
                ("id", json!(n.id), n.id.is_empty()),
                ("address", json!(n.address), n.address.is_empty()),
                ("metadata", md, md_empty),
            ])
        });
        self.object(vec![
            ("name", json!(s.name), s.name.is_empty()),
            ("version", json!(s.version), s.version.is_empty()),
            ("metadata", md, md_empty),
            ("endpoints", endpoints, no_endpoints),
            ("nodes", nodes, no_nodes),
        ])
    }
}

/// JSON-shaped garbage made of the tokens a record has.
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
            "0",
            "true",
            "\"name\"",
            "\"NODES\"",
            "\"endpoints\"",
            "\"metadata\"",
            "\"values\"",
            "\"request\"",
            "\"type\"",
            "\"x\"",
            "\"\\ud800\"",
            "\"\\u00e9\"",
            "\"",
            "\\",
            "\u{ff}",
        ][..],
    );
    prop::collection::vec(tokens, 0..48).prop_map(|t| t.concat().into_bytes())
}

/// A record whose endpoint request nests `depth` values deep.
fn deep(depth: usize) -> String {
    let open = r#"{"name":"v","values":["#;
    format!(
        r#"{{"name":"s","endpoints":[{{"name":"e","request":{}{}}}],"nodes":[{{"id":"n"}}]}}"#,
        open.repeat(depth) + r#"{"name":"leaf"}"#,
        "]}".repeat(depth)
    )
}

proptest! {
    #![proptest_config(config())]

    /// A service written as go-micro writes it reads back equal, and its writing
    /// is stable.
    #[test]
    fn services_round_trip(s in service()) {
        let json = serde_json::to_vec(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: ServiceRecord =
            serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &s);
        let again = serde_json::to_vec(&back).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, json);
    }

    /// Field names in any case, unknown fields, `null` list elements and missing
    /// empty fields read as the service they spell.
    #[test]
    fn lenient_spellings_read_the_same(s in service(), how in spelling()) {
        let json = how.service(&s).to_string();
        let back: ServiceRecord =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, s);
    }

    /// Arbitrary bytes, JSON-shaped garbage and deeply nested values: an answer,
    /// never a panic (nor a stack overflow).
    #[test]
    fn garbage_never_panics(
        buf in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_soup(),
            (0usize..200).prop_map(|d| deep(d).into_bytes()),
        ],
    ) {
        if let Ok(s) = serde_json::from_slice::<ServiceRecord>(&buf) {
            let json = serde_json::to_vec(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: ServiceRecord =
                serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, s);
        }
    }
}
