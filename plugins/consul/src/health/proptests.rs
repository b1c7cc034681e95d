//! Property tests of the Consul read path: a node registered the go-micro way
//! (its agent registration: id, tags, address and port) reads back from a health
//! answer as the single-node service it was, and any answer body is read without
//! a panic.
//!
//! The reading is crate-private, so the properties live here rather than in
//! `tests/`. The tag encoding itself is tested from `tests/prop_tags.rs`.

use micro_registry::{Endpoint, MetadataMap};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

use super::*;
use crate::convert::{CheckPlan, registration};

/// Generated cases for the answers of registered nodes: each compresses its tags
/// (see `ZLIB_CASES` in `tests/prop_tags.rs`).
const ZLIB_CASES: u32 = 25_000;
/// Generated cases for arbitrary answers.
const CASES: u32 = 100_000;

fn config(cases: u32) -> Config {
    Config {
        cases,
        // a failure is kept as a unit test, not in a file beside the source
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings of `len` characters from `alphabet` (cheaper to generate than a
/// regular expression in a debug build).
fn word(alphabet: &str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> + Clone {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(select(chars), len).prop_map(String::from_iter)
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

fn metadata() -> impl Strategy<Value = MetadataMap> {
    prop::collection::btree_map(text(8), text(12), 0..3)
}

/// A node address as go-micro writes it: `host:port`, IPv6 in brackets.
fn address() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        (word("abcxyz", 1..2), word("abcxyz09.-", 0..13)).prop_map(|(a, b)| a + &b),
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ];
    (host, 1..=u16::MAX).prop_map(|(h, p)| format!("{h}:{p}"))
}

fn registered() -> impl Strategy<Value = ServiceRecord> {
    let endpoint = (text(12), metadata()).prop_map(|(name, metadata)| Endpoint {
        name,
        metadata,
        ..Endpoint::default()
    });
    (
        word("abcxyz.", 1..13),
        text(8),
        prop::collection::vec(endpoint, 0..2),
        word("abcxyz09-", 1..13),
        address(),
        metadata(),
    )
        .prop_map(
            |(name, version, endpoints, id, address, metadata)| ServiceRecord {
                name,
                version,
                metadata: MetadataMap::new(),
                endpoints,
                nodes: vec![Node {
                    id,
                    address,
                    metadata,
                }],
            },
        )
}

fn reply(body: Vec<u8>) -> Reply {
    Reply {
        body: body.into(),
        index: Some(1),
        url: "test".into(),
        acl_deny: false,
    }
}

proptest! {
    #![proptest_config(config(ZLIB_CASES))]

    /// A registered node reads back from a health answer as the service it
    /// registered with (service metadata is not carried, as in go-micro); a
    /// critical check drops it from the grouped services.
    #[test]
    fn registered_nodes_read_back(s in registered(), critical in any::<bool>()) {
        let reg = registration(&s, &s.nodes[0], &CheckPlan::None);
        let status = if critical { "critical" } else { "passing" };
        let answer = serde_json::json!([{
            "Node": {"Node": "consul-1", "Address": "10.9.9.9"},
            "Service": {
                "ID": reg.id, "Service": reg.name, "Tags": reg.tags,
                "Address": reg.address, "Port": reg.port,
            },
            "Checks": [{"CheckID": "serfHealth", "Status": status}],
        }]);
        let body = serde_json::to_vec(&answer).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = instances(&s.name, &reply(body)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(&got[0].service, &s);
        prop_assert_eq!(got[0].critical, critical);
        let grouped = group(&got);
        prop_assert_eq!(grouped, if critical { vec![] } else { vec![s] });
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Any answer body: instances or an error, never a panic.
    #[test]
    fn any_answer_is_read_without_panic(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(
                select(&["[", "]", "{", "}", ",", ":", "null", "1", "-1", "70000", "\"x\"",
                         "\"svc\"", "\"Service\"", "\"ID\"", "\"Tags\"", "\"Port\"", "\"Node\"",
                         "\"Address\"", "\"Checks\"", "\"Status\"", "\"critical\"",
                         "\"v=1\"", "\"t={}\""][..]),
                0..48,
            )
            .prop_map(|t| t.concat().into_bytes()),
        ],
    ) {
        if let Ok(found) = instances("svc", &reply(body)) {
            for inst in &found {
                prop_assert_eq!(inst.service.name.as_str(), "svc");
                prop_assert_eq!(inst.service.nodes.len(), 1);
            }
            let _ = group(&found);
        }
    }
}
