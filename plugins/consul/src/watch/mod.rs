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
use micro_registry::{Action, Node, Result, ServiceRecord, WatchEvent, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::health::Instance;
use crate::options::ConsulOptions;

pub(crate) use blocking::Blocking;

/// How many events a watcher buffers; when its consumer falls this far behind,
/// the watch task waits (the next answer is compared with the last one it
/// delivered, so nothing is lost, only delayed).
const BUFFER: usize = 256;

/// The healthy nodes of one service, by node id.
///
/// Nodes whose service part (name, version, metadata, endpoints: most of a
/// record's size) is the same share one copy of it, so a watch keeps about a
/// node's own size per node instead of a whole record per node.
#[derive(Default)]
pub(crate) struct Snapshot {
    nodes: BTreeMap<String, Kept>,
}

struct Kept {
    /// The service without nodes, shared with the other nodes of the answer.
    service: Arc<ServiceRecord>,
    node: Node,
}

impl Kept {
    /// The node as a single-node service, as events carry it.
    fn record(&self) -> ServiceRecord {
        ServiceRecord {
            nodes: vec![self.node.clone()],
            ..(*self.service).clone()
        }
    }

    fn same(&self, other: &Kept) -> bool {
        self.node == other.node
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

/// The healthy instances as a [`Snapshot`]; the first of two instances with one id
/// wins.
pub(crate) fn snapshot(instances: Vec<Instance>) -> Snapshot {
    let mut shared: Vec<Arc<ServiceRecord>> = Vec::new();
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
        let service = match shared.iter().find(|s| ***s == service) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(service);
                shared.push(s.clone());
                s
            }
        };
        nodes.insert(node.id.clone(), Kept { service, node });
    }
    Snapshot { nodes }
}

/// The events that turn `old` into `new`.
pub(crate) fn diff(old: &Snapshot, new: &Snapshot) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for (id, o) in &old.nodes {
        match new.nodes.get(id) {
            None => events.push(event(Action::Delete, o)),
            Some(n) if n.service.version != o.service.version => {
                events.push(event(Action::Delete, o));
                events.push(event(Action::Create, n));
            }
            Some(n) if !n.same(o) => events.push(event(Action::Update, n)),
            Some(_) => {}
        }
    }
    for (id, n) in &new.nodes {
        if !old.nodes.contains_key(id) {
            events.push(event(Action::Create, n));
        }
    }
    events
}

fn event(action: Action, kept: &Kept) -> WatchEvent {
    WatchEvent {
        action,
        service: kept.record(),
    }
}

/// Sends `events`; false when the watcher is gone.
async fn deliver(tx: &mpsc::Sender<WatchEvent>, events: Vec<WatchEvent>) -> bool {
    for ev in events {
        if tx.send(ev).await.is_err() {
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
    rx: mpsc::Receiver<WatchEvent>,
    task: Option<JoinHandle<()>>,
}

#[async_trait]
impl Watcher for ConsulWatcher {
    async fn next(&mut self) -> Result<WatchEvent> {
        if self.task.is_none() {
            return Err(micro_registry::Error::WatcherStopped);
        }
        match self.rx.recv().await {
            Some(ev) => Ok(ev),
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
                s.nodes = vec![Node::new(format!("n{i}"), format!("h:{i}"))];
                s
            })
            .collect();
        let old = snap(&nodes);
        let first = &old.nodes["n0"].service;
        assert!(first.nodes.is_empty());
        assert_eq!(Arc::strong_count(first), 10, "one copy for ten nodes");
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
