//! Property tests of the etcd records: every node of a generated service is
//! stored as go-micro's single-node JSON and reads back, records group back into
//! the services they came from, keys stay under their service's prefix, and
//! arbitrary values never panic the reader.
//!
//! The functions are crate-private, so the properties live here rather than in
//! `tests/`. Each property runs [`CASES`] generated cases.

use micro_registry::{Endpoint, MetadataMap, Node, Value};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

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

/// Any UTF-8 text, or a part that is special in a key.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        select(
            &[
                "",
                ".",
                "..",
                "a/b",
                "a-b",
                "/",
                "latest",
                "micro.http.broker"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn metadata() -> impl Strategy<Value = MetadataMap> {
    prop::collection::btree_map(text(8), text(12), 0..3)
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    let value = (text(8), text(8)).prop_map(|(name, type_name)| Value {
        name,
        type_name,
        values: Vec::new(),
    });
    (text(12), prop::option::of(value), metadata()).prop_map(|(name, request, metadata)| Endpoint {
        name,
        request,
        response: None,
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

fn service(nodes: std::ops::Range<usize>) -> impl Strategy<Value = ServiceRecord> {
    (
        text(8),
        select(&["", "1", "2", "latest"][..]),
        metadata(),
        prop::collection::vec(endpoint(), 0..2),
        prop::collection::vec(node(), nodes),
    )
        .prop_map(
            |(name, version, metadata, endpoints, nodes)| ServiceRecord {
                name,
                version: version.to_owned(),
                metadata,
                endpoints,
                nodes,
            },
        )
}

/// A service for grouping: few names, so that services share them; what the
/// nodes and endpoints hold matters less here than in [`service`].
fn named_service() -> impl Strategy<Value = ServiceRecord> {
    (
        select(&["a", "b", "a/b", "a-b"][..]),
        select(&["", "1", "2"][..]),
        select(&["", "E.One", "E.Two"][..]),
        prop::collection::vec(any::<u16>(), 1..3),
    )
        .prop_map(|(name, version, endpoint, ports)| ServiceRecord {
            name: name.to_owned(),
            version: version.to_owned(),
            metadata: MetadataMap::new(),
            endpoints: vec![Endpoint {
                name: endpoint.to_owned(),
                ..Endpoint::default()
            }],
            nodes: ports
                .into_iter()
                .map(|p| Node::new(format!("{name}-{p}"), format!("127.0.0.1:{p}")))
                .collect(),
        })
}

/// Every node's stored value, and what it decodes to.
fn records(s: &ServiceRecord) -> Result<Vec<(Vec<u8>, ServiceRecord)>, TestCaseError> {
    (0..s.nodes.len())
        .map(|i| {
            let value = encode(s, i).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let rec = decode(b"key", &value).ok_or_else(|| TestCaseError::fail("not decoded"))?;
            Ok((value, rec))
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Each node's record holds the service with that node alone, reads back
    /// equal, and only under the service's own name; the records of one service
    /// group back into it.
    #[test]
    fn records_round_trip(s in service(1..4), other in prop::option::of(text(8))) {
        let recs = records(&s)?;
        let name = other.as_deref().unwrap_or(&s.name);
        for ((value, rec), node) in recs.iter().zip(&s.nodes) {
            prop_assert_eq!(rec, &s.with_node(node.clone()));
            let for_name = decode_for(b"key", value, Some(name));
            prop_assert_eq!(for_name, (*name == s.name).then(|| rec.clone()));
        }
        prop_assert!(encode(&s, s.nodes.len()).is_err());
        let recs: Vec<ServiceRecord> = recs.into_iter().map(|(_, rec)| rec).collect();
        prop_assert_eq!(by_version(recs.clone()), vec![s.clone()]);
        prop_assert_eq!(by_name_version(recs), vec![s]);
    }

    /// Records of several services (each node's record as it reads back, see
    /// above) group by name and version in order, each group's nodes in the
    /// order their records came.
    #[test]
    fn records_group_by_name_and_version(services in prop::collection::vec(named_service(), 1..5)) {
        let mut want: Vec<ServiceRecord> = Vec::new();
        let mut all = Vec::new();
        for s in &services {
            match want.iter_mut().find(|w| (&w.name, &w.version) == (&s.name, &s.version)) {
                Some(w) => w.nodes.extend(s.nodes.iter().cloned()),
                None => want.push(s.clone()),
            }
            all.extend(s.nodes.iter().map(|n| s.with_node(n.clone())));
        }
        want.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        prop_assert_eq!(by_name_version(all), want);
    }

    /// A node's key lies under its service's prefix, with every `/` of the parts
    /// flattened; parts a path join would drop are refused.
    #[test]
    fn keys_stay_under_their_service(prefix in "/[a-z/]{0,8}/", service in text(12), node in text(12)) {
        let layout = Layout::new(&prefix);
        let bad = |p: &str| p.is_empty() || p == "." || p == "..";
        match layout.node(&service, &node) {
            Err(_) => prop_assert!(bad(&service) || bad(&node)),
            Ok(key) => {
                prop_assert!(!bad(&service) && !bad(&node));
                let under = layout.service(&service);
                prop_assert!(under.starts_with(layout.all()));
                let rest = key.strip_prefix(&under).ok_or_else(|| TestCaseError::fail(key.clone()))?;
                prop_assert_eq!(rest, node.replace('/', "-"));
            }
        }
    }

    /// Arbitrary values never panic the reader; what it accepts has nodes.
    #[test]
    fn garbage_never_panics(
        key in prop::collection::vec(any::<u8>(), 0..16),
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            prop::collection::vec(
                select(&["{", "}", "[", "]", ":", ",", "null", "\"name\"", "\"nodes\"",
                         "\"id\"", "\"x\"", "\"\\ud800\""][..]),
                0..32,
            )
            .prop_map(|t| t.concat().into_bytes()),
        ],
    ) {
        if let Some(s) = decode(&key, &value) {
            prop_assert!(!s.nodes.is_empty());
        }
    }
}
