//! The simulated mesh of the scale benchmark (`tests/benches/scale/`,
//! `scripts/scale.sh`): how node `i` of `N` is named and what it registers, shared
//! by the `scale-registrant` processes, the bench that reads them, and (by
//! convention, in Go) the go-micro peer's `bench scale` subcommand.
//!
//! Node `i` belongs to service `scale.s<i / 10>` (ten nodes per service, so `N`
//! nodes make `N / 10` services), has id `scale-n<i>` and address
//! `127.0.0.1:<10000 + i % 50000>` (nothing listens there: only the registry sees
//! it). Its record is what a go-micro server with two endpoints registers:
//! go-micro's five metadata keys and a unary and a streaming endpoint with
//! request and response shapes.

use std::time::Duration;

use micro_registry::{Endpoint, MetadataMap, Node, ServiceRecord, Value};

/// Nodes per service.
pub const NODES_PER_SERVICE: usize = 10;

/// The register interval the scale bench uses: go-micro's 30 s divided by
/// [`TIME_SCALE`].
pub const INTERVAL: Duration = Duration::from_secs(3);

/// The register TTL the scale bench uses: the server default of 90 s divided by
/// [`TIME_SCALE`].
pub const TTL: Duration = Duration::from_secs(9);

/// How much faster than real time the bench runs the registration timers: a
/// rate measured in the bench divided by this is the rate with go-micro's
/// timings (interval 30 s, TTL 90 s).
pub const TIME_SCALE: f64 = 10.0;

/// The service of node `i`.
pub fn service_name(i: usize) -> String {
    format!("scale.s{}", i / NODES_PER_SERVICE)
}

/// The id of node `i`.
pub fn node_id(i: usize) -> String {
    format!("scale-n{i}")
}

/// The single-node service record node `i` registers, with `registry` as its
/// `registry` metadata.
pub fn record(i: usize, registry: &str) -> ServiceRecord {
    record_of(&service_name(i), &node_id(i), i, registry)
}

/// A record of service `name` with one node `id` (address from `i`).
pub fn record_of(name: &str, id: &str, i: usize, registry: &str) -> ServiceRecord {
    let mut metadata = MetadataMap::new();
    for (k, v) in [
        ("broker", "http"),
        ("protocol", "mucp"),
        ("registry", registry),
        ("server", "mucp"),
        ("transport", "http"),
    ] {
        metadata.insert(k.into(), v.into());
    }
    ServiceRecord {
        name: name.to_owned(),
        version: "latest".into(),
        metadata: MetadataMap::new(),
        endpoints: endpoints(),
        nodes: vec![Node {
            id: id.to_owned(),
            address: format!("127.0.0.1:{}", 10_000 + i % 50_000),
            metadata,
        }],
    }
}

fn value(name: &str, field: &str) -> Value {
    Value {
        name: name.into(),
        type_name: name.into(),
        values: vec![Value {
            name: field.into(),
            type_name: "string".into(),
            values: Vec::new(),
        }],
    }
}

fn endpoints() -> Vec<Endpoint> {
    let mut stream = MetadataMap::new();
    stream.insert("stream".into(), "true".into());
    vec![
        Endpoint {
            name: "Scale.Call".into(),
            request: Some(value("CallRequest", "name")),
            response: Some(value("CallResponse", "msg")),
            metadata: MetadataMap::new(),
        },
        Endpoint {
            name: "Scale.Stream".into(),
            request: Some(value("StreamRequest", "name")),
            response: Some(value("StreamResponse", "msg")),
            metadata: stream,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming() {
        assert_eq!(service_name(0), "scale.s0");
        assert_eq!(service_name(19), "scale.s1");
        assert_eq!(node_id(7), "scale-n7");
        let r = record(12, "etcd");
        assert_eq!(r.nodes[0].address, "127.0.0.1:10012");
        assert_eq!(r.nodes[0].metadata["registry"], "etcd");
        assert_eq!(r.endpoints.len(), 2);
    }
}
