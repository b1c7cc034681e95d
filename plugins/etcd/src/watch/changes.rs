//! Pure bookkeeping of a watcher: the records it knows, the events that turn one
//! set of records into another, and the plan for applying one watch response.
//!
//! The watcher keeps of each record only what it needs ([`Rec`]): a digest of
//! the stored value, to tell whether it changed, and the record's name, version
//! and node ids, to report it deleted. A whole record (endpoints, metadata) costs
//! several KB decoded, and a cache watching many services would hold every one of
//! them twice (here and in its own node set). Deletions carry the whole previous
//! record when etcd sends it (every delete of a watch does); a record that
//! vanished while the watch was interrupted, or that changed version or node id,
//! is reported deleted with its name, version and node ids only.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use micro_registry::{Action, Node, ServiceRecord, WatchEvent};

use crate::records::decode_for;

/// What the watcher keeps of one decodable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Rec {
    /// A digest of the stored value.
    digest: u64,
    /// Name, version and node ids (nothing else) of the record.
    skeleton: ServiceRecord,
}

impl Rec {
    pub(super) fn new(value: &[u8], full: &ServiceRecord) -> Rec {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut h);
        Rec {
            digest: h.finish(),
            skeleton: ServiceRecord {
                name: full.name.clone(),
                version: full.version.clone(),
                nodes: full
                    .nodes
                    .iter()
                    .map(|n| Node::new(n.id.clone(), ""))
                    .collect(),
                ..Default::default()
            },
        }
    }
}

/// Every key under the prefix, with what is kept of its record when it decodes
/// (and belongs to the watched service); `None` for garbage.
pub(super) type Known = HashMap<Vec<u8>, Option<Rec>>;

/// The decoded records of a listing, by key (only those that decode).
pub(super) type Listed = HashMap<Vec<u8>, ServiceRecord>;

/// What one watch response does, computed without changing the known set, so a
/// response can be put off whole when the reader has no room for its events.
pub(super) struct Plan {
    /// The registry events, in order.
    pub(super) events: Vec<WatchEvent>,
    /// The new state of every key the response touched (`None`: deleted).
    changes: HashMap<Vec<u8>, Option<Option<Rec>>>,
    /// The highest revision among the response's events (0 when none).
    pub(super) revision: i64,
}

impl Plan {
    /// Plans `events` against `known`, keeping records of `service` only.
    pub(super) fn new(known: &Known, events: &[etcd_client::Event], service: Option<&str>) -> Plan {
        let mut plan = Plan {
            events: Vec::new(),
            changes: HashMap::new(),
            revision: 0,
        };
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            plan.revision = plan.revision.max(kv.mod_revision());
            let key = kv.key().to_vec();
            // Present (with its record) or absent, as of the events before this one.
            let current: Option<Option<Rec>> = match plan.changes.get(&key) {
                Some(state) => state.clone(),
                None => known.get(&key).cloned(),
            };
            let previous = || {
                ev.prev_kv()
                    .and_then(|p| decode_for(p.key(), p.value(), service))
            };
            match ev.event_type() {
                etcd_client::EventType::Put => {
                    let new = decode_for(kv.key(), kv.value(), service);
                    let rec = new.as_ref().map(|s| Rec::new(kv.value(), s));
                    let before = current.flatten().map(|r| r.skeleton);
                    transition(before, new, &mut plan.events);
                    plan.changes.insert(key, Some(rec));
                }
                etcd_client::EventType::Delete => {
                    let before = match current {
                        // Known: the whole previous record when etcd sent it.
                        Some(Some(rec)) => previous().or(Some(rec.skeleton)),
                        Some(None) => None,
                        // Unknown key: fall back on the previous value etcd sent.
                        None => previous(),
                    };
                    transition(before, None, &mut plan.events);
                    plan.changes.insert(key, None);
                }
            }
        }
        plan
    }

    /// Applies the planned changes to `known`.
    pub(super) fn commit(self, known: &mut Known) -> Vec<WatchEvent> {
        for (k, state) in self.changes {
            match state {
                Some(rec) => {
                    known.insert(k, rec);
                }
                None => {
                    known.remove(&k);
                }
            }
        }
        self.events
    }
}

/// The events that turn the records of `old` into those of `new` (whose decoded
/// records are in `listed`): deletions first, then creations and updates, each
/// in key order.
pub(super) fn diff(old: &Known, new: &Known, listed: &Listed) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let mut gone: Vec<(&Vec<u8>, &Option<Rec>)> =
        old.iter().filter(|(k, _)| !new.contains_key(*k)).collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for (_, rec) in gone {
        transition(rec.clone().map(|r| r.skeleton), None, &mut events);
    }
    let mut keys: Vec<&Vec<u8>> = new.keys().collect();
    keys.sort();
    for k in keys {
        let after = new.get(k).cloned().flatten();
        let before = old.get(k).cloned().flatten();
        if before.as_ref().map(|r| r.digest) != after.as_ref().map(|r| r.digest) {
            transition(
                before.map(|r| r.skeleton),
                listed.get(k).cloned(),
                &mut events,
            );
        }
    }
    events
}

/// The events that take a key's record from `before` to `after`: create, update,
/// delete; a change of version or of node ids is a delete and a create, so a
/// reader never keeps a node under a version it left.
fn transition(
    before: Option<ServiceRecord>,
    after: Option<ServiceRecord>,
    out: &mut Vec<WatchEvent>,
) {
    match (before, after) {
        (None, None) => {}
        (None, Some(s)) => out.push(WatchEvent {
            action: Action::Create,
            service: s,
        }),
        (Some(s), None) => out.push(WatchEvent {
            action: Action::Delete,
            service: s,
        }),
        (Some(b), Some(a)) => {
            let same_nodes = b.nodes.len() == a.nodes.len()
                && b.nodes.iter().zip(&a.nodes).all(|(x, y)| x.id == y.id);
            if b.version == a.version && same_nodes {
                out.push(WatchEvent {
                    action: Action::Update,
                    service: a,
                });
            } else {
                out.push(WatchEvent {
                    action: Action::Delete,
                    service: b,
                });
                out.push(WatchEvent {
                    action: Action::Create,
                    service: a,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_registry::Node;

    fn svc(version: &str, node: &str) -> ServiceRecord {
        ServiceRecord {
            name: "s".into(),
            version: version.into(),
            nodes: vec![Node::new(node, "127.0.0.1:1")],
            ..Default::default()
        }
    }

    fn actions(b: Option<ServiceRecord>, a: Option<ServiceRecord>) -> Vec<Action> {
        let mut out = Vec::new();
        transition(b, a, &mut out);
        out.into_iter().map(|e| e.action).collect()
    }

    fn rec(s: &ServiceRecord) -> Option<Rec> {
        Some(Rec::new(&serde_json::to_vec(s).unwrap(), s))
    }

    #[test]
    fn diff_turns_one_listing_into_another() {
        let mut old = Known::new();
        old.insert(b"k/a".to_vec(), rec(&svc("1", "a")));
        old.insert(b"k/b".to_vec(), rec(&svc("1", "b")));
        old.insert(b"k/junk".to_vec(), None);
        old.insert(b"k/same".to_vec(), rec(&svc("1", "same")));
        let mut new = Known::new();
        let mut listed = Listed::new();
        for (k, s) in [
            ("k/b", svc("2", "b")),
            ("k/c", svc("1", "c")),
            ("k/same", svc("1", "same")),
        ] {
            new.insert(k.as_bytes().to_vec(), rec(&s));
            listed.insert(k.as_bytes().to_vec(), s);
        }
        let got: Vec<(Action, String, String)> = diff(&old, &new, &listed)
            .into_iter()
            .map(|e| (e.action, e.service.version, e.service.nodes[0].id.clone()))
            .collect();
        let want = [
            (Action::Delete, "1", "a"),
            (Action::Delete, "1", "b"),
            (Action::Create, "2", "b"),
            (Action::Create, "1", "c"),
        ]
        .map(|(a, v, n)| (a, v.to_string(), n.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn kept_records_are_small() {
        let mut full = svc("1", "a");
        full.nodes[0]
            .metadata
            .insert("protocol".into(), "mucp".into());
        full.endpoints.push(micro_registry::Endpoint {
            name: "Greeter.Hello".into(),
            ..Default::default()
        });
        let r = Rec::new(b"v", &full);
        assert_eq!(r.skeleton.nodes[0].id, "a");
        assert!(r.skeleton.nodes[0].metadata.is_empty() && r.skeleton.endpoints.is_empty());
        assert_eq!(r.skeleton.version, "1");
        assert_ne!(r.digest, Rec::new(b"w", &full).digest);
    }

    #[test]
    fn transitions() {
        assert_eq!(actions(None, None), []);
        assert_eq!(actions(None, Some(svc("1", "a"))), [Action::Create]);
        assert_eq!(actions(Some(svc("1", "a")), None), [Action::Delete]);
        assert_eq!(
            actions(Some(svc("1", "a")), Some(svc("1", "a"))),
            [Action::Update]
        );
        assert_eq!(
            actions(Some(svc("1", "a")), Some(svc("2", "a"))),
            [Action::Delete, Action::Create]
        );
        assert_eq!(
            actions(Some(svc("1", "a")), Some(svc("1", "b"))),
            [Action::Delete, Action::Create]
        );
    }
}
