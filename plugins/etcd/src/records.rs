//! go-micro's key layout and record encoding, and the grouping of records into
//! services.

use micro_registry::{Error, Result, ServiceRecord};

/// Where records live under the prefix.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// Ends with `/`.
    prefix: String,
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Self {
        Layout {
            prefix: prefix.to_owned(),
        }
    }

    /// Everything: `/micro/registry/`.
    pub(crate) fn all(&self) -> &str {
        &self.prefix
    }

    /// One service's records: `/micro/registry/<service>/` (the trailing slash
    /// keeps `foo` from matching `foobar`).
    pub(crate) fn service(&self, name: &str) -> String {
        format!("{}{}/", self.prefix, flatten(name))
    }

    /// One node's record: `/micro/registry/<service>/<node-id>`.
    pub(crate) fn node(&self, service: &str, node: &str) -> Result<String> {
        check_part("service name", service)?;
        check_part("node id", node)?;
        Ok(format!(
            "{}{}/{}",
            self.prefix,
            flatten(service),
            flatten(node)
        ))
    }
}

/// go-micro replaces every `/` with `-` in key parts.
fn flatten(s: &str) -> String {
    s.replace('/', "-")
}

/// Refuses parts go-micro's path join would drop or resolve (`""`, `.`, `..`).
fn check_part(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(Error::Invalid(format!(
            "{what} {s:?} cannot be an etcd key"
        )));
    }
    Ok(())
}

/// The stored value: the service JSON holding only `node_index`'s node.
pub(crate) fn encode(service: &ServiceRecord, node_index: usize) -> Result<Vec<u8>> {
    let node = service
        .nodes
        .get(node_index)
        .cloned()
        .ok_or_else(|| Error::Invalid("node index out of range".into()))?;
    serde_json::to_vec(&service.with_node(node))
        .map_err(|e| Error::Invalid(format!("service {:?} cannot be encoded: {e}", service.name)))
}

/// Decodes a stored value. Garbage (not JSON, not a service, not UTF-8) and records
/// without nodes are skipped with a warning naming the key.
pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<ServiceRecord> {
    match serde_json::from_slice::<ServiceRecord>(value) {
        Ok(s) if s.nodes.is_empty() => {
            tracing::warn!(key = %String::from_utf8_lossy(key), "etcd registry: skipping a record without nodes");
            None
        }
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(key = %String::from_utf8_lossy(key), error = %e, "etcd registry: skipping an undecodable record");
            None
        }
    }
}

/// Decodes a record read under a service's prefix, keeping it only if it belongs
/// to `name` (`a/b` and `a-b` share a prefix).
pub(crate) fn decode_for(key: &[u8], value: &[u8], name: Option<&str>) -> Option<ServiceRecord> {
    let s = decode(key, value)?;
    match name {
        Some(n) if s.name != n => {
            tracing::debug!(key = %String::from_utf8_lossy(key), service = %s.name, "etcd registry: record of another service under the prefix");
            None
        }
        _ => Some(s),
    }
}

/// Groups single-node records by version, in the order versions first appear: the
/// first record of a version gives name, metadata and endpoints; nodes are
/// concatenated.
pub(crate) fn by_version(records: impl IntoIterator<Item = ServiceRecord>) -> Vec<ServiceRecord> {
    let mut out: Vec<ServiceRecord> = Vec::new();
    for rec in records {
        match out.iter_mut().find(|s| s.version == rec.version) {
            Some(s) => s.nodes.extend(rec.nodes),
            None => out.push(rec),
        }
    }
    out
}

/// Groups records by name and version, sorted by name, then version.
pub(crate) fn by_name_version(
    records: impl IntoIterator<Item = ServiceRecord>,
) -> Vec<ServiceRecord> {
    let mut out: Vec<ServiceRecord> = Vec::new();
    for rec in records {
        match out
            .iter_mut()
            .find(|s| s.name == rec.name && s.version == rec.version)
        {
            Some(s) => s.nodes.extend(rec.nodes),
            None => out.push(rec),
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use micro_registry::Node;

    fn svc(name: &str, version: &str, node: &str) -> ServiceRecord {
        ServiceRecord {
            name: name.into(),
            version: version.into(),
            nodes: vec![Node::new(node, "127.0.0.1:1")],
            ..Default::default()
        }
    }

    #[test]
    fn keys_follow_go_micro() {
        let l = Layout::new("/micro/registry/");
        assert_eq!(
            l.node("micro.http.broker", "events/user-6a9e")
                .ok()
                .as_deref(),
            Some("/micro/registry/micro.http.broker/events-user-6a9e")
        );
        assert_eq!(l.service("a/b"), "/micro/registry/a-b/");
        assert!(l.node("", "x").is_err());
        assert!(l.node("x", "..").is_err());
    }

    #[test]
    fn encodes_one_node_per_record() {
        let mut s = svc("greeter", "1", "a");
        s.nodes.push(Node::new("b", "127.0.0.1:2"));
        let v = encode(&s, 1).unwrap_or_default();
        let back = decode(b"k", &v);
        assert_eq!(
            back.map(|b| b.nodes),
            Some(vec![Node::new("b", "127.0.0.1:2")])
        );
        assert!(encode(&s, 2).is_err());
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(decode(b"k", b"not json").is_none());
        assert!(decode(b"k", b"{\"name\":\"x\",\"nodes\":[]}").is_none());
        assert!(decode(b"k", b"{\"name\":\"x\",\"nodes\":null}").is_none());
        assert!(decode(b"k", &[0xff, 0xfe, b'{']).is_none());
        assert!(decode(b"k", b"{\"name\":\"\xff\",\"nodes\":[{\"id\":\"a\"}]}").is_none());
        assert!(decode(b"k", b"[1,2]").is_none());
        assert!(decode_for(b"k", br#"{"name":"x","nodes":[{"id":"a"}]}"#, Some("y")).is_none());
    }

    #[test]
    fn grouping() {
        let g = by_version([
            svc("a", "1", "n1"),
            svc("a", "2", "n2"),
            svc("a", "1", "n3"),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].nodes.len(), 2);
        let l = by_name_version([
            svc("b", "1", "x"),
            svc("a", "2", "y"),
            svc("a", "1", "z"),
            svc("b", "1", "w"),
        ]);
        let names: Vec<_> = l
            .iter()
            .map(|s| (s.name.as_str(), s.version.as_str(), s.nodes.len()))
            .collect();
        assert_eq!(names, [("a", "1", 1), ("a", "2", 1), ("b", "1", 2)]);
    }
}
