//! Pure bookkeeping of a watcher: the records it knows, the events that turn one
//! set of records into another, and the plan for applying one watch response.

use std::collections::HashMap;

use micro_registry::{Action, Event, Service};

use crate::records::decode_for;

/// Every key under the prefix, with its record when it decodes (and belongs to
/// the watched service); `None` for garbage.
pub(super) type Known = HashMap<Vec<u8>, Option<Service>>;

/// What one watch response does, computed without changing the known set, so a
/// response can be put off whole when the reader has no room for its events.
pub(super) struct Plan {
    /// The registry events, in order.
    pub(super) events: Vec<Event>,
    /// The new state of every key the response touched (`None`: deleted).
    changes: HashMap<Vec<u8>, Option<Option<Service>>>,
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
            let current: Option<Option<Service>> = match plan.changes.get(&key) {
                Some(state) => state.clone(),
                None => known.get(&key).cloned(),
            };
            match ev.event_type() {
                etcd_client::EventType::Put => {
                    let new = decode_for(kv.key(), kv.value(), service);
                    transition(current.flatten(), new.clone(), &mut plan.events);
                    plan.changes.insert(key, Some(new));
                }
                etcd_client::EventType::Delete => {
                    let before = match current {
                        Some(rec) => rec,
                        // Unknown key: fall back on the previous value etcd sent.
                        None => ev
                            .prev_kv()
                            .and_then(|p| decode_for(p.key(), p.value(), service)),
                    };
                    transition(before, None, &mut plan.events);
                    plan.changes.insert(key, None);
                }
            }
        }
        plan
    }

    /// Applies the planned changes to `known`.
    pub(super) fn commit(self, known: &mut Known) -> Vec<Event> {
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

/// The events that turn the records of `old` into those of `new`: deletions first,
/// then creations and updates, each in key order.
pub(super) fn diff(old: &Known, new: &Known) -> Vec<Event> {
    let mut events = Vec::new();
    let mut gone: Vec<(&Vec<u8>, &Option<Service>)> =
        old.iter().filter(|(k, _)| !new.contains_key(*k)).collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for (_, rec) in gone {
        transition(rec.clone(), None, &mut events);
    }
    let mut keys: Vec<&Vec<u8>> = new.keys().collect();
    keys.sort();
    for k in keys {
        let after = new.get(k).cloned().flatten();
        let before = old.get(k).cloned().flatten();
        if before != after {
            transition(before, after, &mut events);
        }
    }
    events
}

/// The events that take a key's record from `before` to `after`: create, update,
/// delete; a change of version or of node ids is a delete and a create, so a
/// reader never keeps a node under a version it left.
fn transition(before: Option<Service>, after: Option<Service>, out: &mut Vec<Event>) {
    match (before, after) {
        (None, None) => {}
        (None, Some(s)) => out.push(Event {
            action: Action::Create,
            service: s,
        }),
        (Some(s), None) => out.push(Event {
            action: Action::Delete,
            service: s,
        }),
        (Some(b), Some(a)) => {
            let same_nodes = b.nodes.len() == a.nodes.len()
                && b.nodes.iter().zip(&a.nodes).all(|(x, y)| x.id == y.id);
            if b.version == a.version && same_nodes {
                out.push(Event {
                    action: Action::Update,
                    service: a,
                });
            } else {
                out.push(Event {
                    action: Action::Delete,
                    service: b,
                });
                out.push(Event {
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

    fn svc(version: &str, node: &str) -> Service {
        Service {
            name: "s".into(),
            version: version.into(),
            nodes: vec![Node::new(node, "127.0.0.1:1")],
            ..Default::default()
        }
    }

    fn actions(b: Option<Service>, a: Option<Service>) -> Vec<Action> {
        let mut out = Vec::new();
        transition(b, a, &mut out);
        out.into_iter().map(|e| e.action).collect()
    }

    #[test]
    fn diff_turns_one_listing_into_another() {
        let mut old = Known::new();
        old.insert(b"k/a".to_vec(), Some(svc("1", "a")));
        old.insert(b"k/b".to_vec(), Some(svc("1", "b")));
        old.insert(b"k/junk".to_vec(), None);
        old.insert(b"k/same".to_vec(), Some(svc("1", "same")));
        let mut new = Known::new();
        new.insert(b"k/b".to_vec(), Some(svc("2", "b")));
        new.insert(b"k/c".to_vec(), Some(svc("1", "c")));
        new.insert(b"k/same".to_vec(), Some(svc("1", "same")));
        let got: Vec<(Action, String, String)> = diff(&old, &new)
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
