//! Watches over Consul blocking queries.
//!
//! A watch reads a baseline before [`Registry::watch`](micro_registry::Registry::watch)
//! returns, then a task owned by the [`ConsulWatcher`] runs blocking queries and
//! turns each answer into per-node events by comparing it with the previous one:
//! `Create` for a node that appeared (or became healthy), `Update` for a node whose
//! address, metadata or endpoints changed, `Delete` for a node that disappeared
//! (or turned critical); a node that changed version is a `Delete` in the old
//! version followed by a `Create` in the new one.
//!
//! Because events come from comparing whole answers, nothing is lost while Consul
//! is unreachable: the task retries with backoff and, once Consul answers again,
//! reports the difference between what it knew and what is there now.

mod all;
mod blocking;
mod service;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use micro_registry::{Action, MetadataMap, Node, Result, ServiceRecord, WatchEvent, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::health::Instance;
use crate::options::ConsulOptions;

pub(crate) use blocking::Blocking;

/// How many events a watcher buffers; when its consumer falls this far behind,
/// the watch task waits (the next answer is compared with the last one it
/// delivered, so nothing is lost, only delayed). Events travel boxed: the
/// channel allocates its slots 32 at a time up front, 256 bytes boxed instead
/// of 4 KiB unboxed, per watched service.
const BUFFER: usize = 256;

/// The healthy nodes of one service, by node id.
///
/// What nodes have in common is kept once: nodes whose service part (name,
/// version, metadata, endpoints) is the same share one copy of it, and nodes
/// whose node metadata is the same (go-micro's five keys are the same on every
/// node of a service) share one copy of that. A watch keeps about a node's id
/// and address per node, not a whole record (measured: 14.5 KB per watched
/// service of ten go-micro nodes with whole nodes kept, see docs/scale.md).
#[derive(Default)]
pub(crate) struct Snapshot {
    nodes: BTreeMap<String, Kept>,
}

struct Kept {
    /// The service without nodes, shared with the other nodes of the answer.
    service: Arc<ServiceRecord>,
    address: String,
    /// The node's metadata, shared with the nodes that have the same.
    metadata: Arc<MetadataMap>,
}

impl Kept {
    /// The node `id` as a single-node service, as events carry it.
    fn record(&self, id: &str) -> ServiceRecord {
        let node = Node {
            id: id.to_owned(),
            address: self.address.clone(),
            metadata: (*self.metadata).clone(),
        };
        ServiceRecord {
            nodes: vec![node],
            ..(*self.service).clone()
        }
    }

    fn same(&self, other: &Kept) -> bool {
        self.address == other.address
            && (Arc::ptr_eq(&self.metadata, &other.metadata) || self.metadata == other.metadata)
            && (Arc::ptr_eq(&self.service, &other.service) || self.service == other.service)
    }
}

impl Snapshot {
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    #[cfg(test)]
    fn ids(&self) -> Vec<&str> {
        self.nodes.keys().map(String::as_str).collect()
    }
}

/// The first of `shared` equal to `value`, or `value` added to them.
fn intern<T: PartialEq>(shared: &mut Vec<Arc<T>>, value: T) -> Arc<T> {
    if let Some(s) = shared.iter().find(|s| ***s == value) {
        return s.clone();
    }
    let s = Arc::new(value);
    shared.push(s.clone());
    s
}

/// The healthy instances as a [`Snapshot`]; the first of two instances with one id
/// wins.
pub(crate) fn snapshot(instances: Vec<Instance>) -> Snapshot {
    let mut services: Vec<Arc<ServiceRecord>> = Vec::new();
    let mut metadata: Vec<Arc<MetadataMap>> = Vec::new();
    let mut nodes = BTreeMap::new();
    for inst in instances {
        if inst.critical {
            continue;
        }
        let mut service = inst.service;
        if service.nodes.is_empty() {
            continue;
        }
        let node = service.nodes.swap_remove(0);
        service.nodes = Vec::new();
        if nodes.contains_key(&node.id) {
            continue;
        }
        let kept = Kept {
            service: intern(&mut services, service),
            address: node.address,
            metadata: intern(&mut metadata, node.metadata),
        };
        nodes.insert(node.id, kept);
    }
    Snapshot { nodes }
}

/// The events that turn `old` into `new`.
pub(crate) fn diff(old: &Snapshot, new: &Snapshot) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for (id, o) in &old.nodes {
        match new.nodes.get(id) {
            None => events.push(event(Action::Delete, id, o)),
            Some(n) if n.service.version != o.service.version => {
                events.push(event(Action::Delete, id, o));
                events.push(event(Action::Create, id, n));
            }
            Some(n) if !n.same(o) => events.push(event(Action::Update, id, n)),
            Some(_) => {}
        }
    }
    for (id, n) in &new.nodes {
        if !old.nodes.contains_key(id) {
            events.push(event(Action::Create, id, n));
        }
    }
    events
}

fn event(action: Action, id: &str, kept: &Kept) -> WatchEvent {
    WatchEvent {
        action,
        service: kept.record(id),
    }
}

/// Sends `events`; false when the watcher is gone.
async fn deliver(tx: &mpsc::Sender<Box<WatchEvent>>, events: Vec<WatchEvent>) -> bool {
    for ev in events {
        if tx.send(Box::new(ev)).await.is_err() {
            return false;
        }
    }
    true
}

/// Starts a watch of one service (`Some(name)`) or of all services.
pub(crate) async fn start(
    client: Arc<Client>,
    opts: &ConsulOptions,
    service: Option<&str>,
) -> std::result::Result<ConsulWatcher, crate::Error> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let task = match service {
        Some(name) => {
            let w = service::ServiceWatch::start(client, opts, name).await?;
            tokio::spawn(w.run(tx))
        }
        None => {
            let w = all::AllWatch::start(client, opts).await?;
            tokio::spawn(w.run(tx))
        }
    };
    Ok(ConsulWatcher {
        rx,
        task: Some(task),
    })
}

/// A watcher on a [`ConsulRegistry`](crate::ConsulRegistry). Stopping or dropping
/// it stops its task.
#[derive(Debug)]
pub(crate) struct ConsulWatcher {
    rx: mpsc::Receiver<Box<WatchEvent>>,
    task: Option<JoinHandle<()>>,
}

#[async_trait]
impl Watcher for ConsulWatcher {
    async fn next(&mut self) -> Result<WatchEvent> {
        if self.task.is_none() {
            return Err(micro_registry::Error::WatcherStopped);
        }
        match self.rx.recv().await {
            Some(ev) => Ok(*ev),
            None => {
                self.stop();
                Err(micro_registry::Error::WatcherStopped)
            }
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.rx.close();
    }
}

impl Drop for ConsulWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_registry::Endpoint;

    fn svc(id: &str, version: &str, addr: &str) -> ServiceRecord {
        ServiceRecord {
            name: "s".into(),
            version: version.into(),
            nodes: vec![Node::new(id, addr)],
            ..Default::default()
        }
    }

    fn snap(items: &[ServiceRecord]) -> Snapshot {
        snapshot(
            items
                .iter()
                .map(|s| Instance {
                    service: s.clone(),
                    critical: false,
                })
                .collect(),
        )
    }

    #[test]
    fn diff_reports_each_node() {
        let a = svc("a", "1", "h:1");
        let b = svc("b", "1", "h:2");
        let c = svc("c", "1", "h:3");
        let mut b2 = b.clone();
        b2.endpoints.push(Endpoint::default());
        let c2 = svc("c", "2", "h:3");
        let d = svc("d", "1", "h:4");
        let old = snap(&[a.clone(), b, c.clone()]);
        let new = snap(&[b2.clone(), c2.clone(), d.clone()]);
        let got: Vec<(Action, String, String)> = diff(&old, &new)
            .into_iter()
            .map(|e| (e.action, e.service.nodes[0].id.clone(), e.service.version))
            .collect();
        assert_eq!(
            got,
            vec![
                (Action::Delete, "a".into(), "1".into()),
                (Action::Update, "b".into(), "1".into()),
                (Action::Delete, "c".into(), "1".into()),
                (Action::Create, "c".into(), "2".into()),
                (Action::Create, "d".into(), "1".into()),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn nodes_share_their_service_and_events_carry_whole_records() {
        let mut with_endpoints = svc("x", "1", "h:1");
        with_endpoints.endpoints.push(Endpoint {
            name: "S.E".into(),
            ..Default::default()
        });
        let nodes: Vec<ServiceRecord> = (0..10)
            .map(|i| {
                let mut s = with_endpoints.clone();
                let mut node = Node::new(format!("n{i}"), format!("h:{i}"));
                node.metadata.insert("transport".into(), "http".into());
                s.nodes = vec![node];
                s
            })
            .collect();
        let old = snap(&nodes);
        let first = &old.nodes["n0"].service;
        assert!(first.nodes.is_empty());
        assert_eq!(Arc::strong_count(first), 10, "one copy for ten nodes");
        assert_eq!(
            Arc::strong_count(&old.nodes["n0"].metadata),
            10,
            "one copy of equal node metadata"
        );
        let new = snap(&nodes[1..]);
        let events = diff(&old, &new);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, Action::Delete);
        assert_eq!(events[0].service, nodes[0], "the whole record");
        let mut moved = nodes[1].clone();
        moved.nodes[0].address = "h:99".into();
        let events = diff(&new, &snap(&[moved.clone()]));
        assert!(events.contains(&WatchEvent {
            action: Action::Update,
            service: moved
        }));
        let mut relabelled = nodes[2].clone();
        relabelled.nodes[0]
            .metadata
            .insert("transport".into(), "grpc".into());
        let events = diff(&new, &snap(&[nodes[1].clone(), relabelled.clone()]));
        assert!(events.contains(&WatchEvent {
            action: Action::Update,
            service: relabelled
        }));
    }

    #[test]
    fn critical_instances_are_absent() {
        let s = snapshot(vec![
            Instance {
                service: svc("a", "1", "h:1"),
                critical: true,
            },
            Instance {
                service: svc("b", "1", "h:1"),
                critical: false,
            },
        ]);
        assert_eq!(s.ids(), vec!["b"]);
    }
}
