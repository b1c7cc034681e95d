//! The local subscription table: which handlers a delivery for a node id runs,
//! and the registry record of every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use micro_registry::{MetadataMap, Node, ServiceRecord};

use crate::EventHandler;

/// The registry service every subscription is registered under.
pub const SERVICE_NAME: &str = "micro.http.broker";

/// The version of broadcast subscriptions.
pub const BROADCAST_VERSION: &str = "ff.http.broadcast";

/// One registered node: the subscriptions of one (topic, queue) pair.
pub(crate) struct NodeEntry {
    pub(crate) topic: String,
    pub(crate) queue: Option<String>,
    /// The record registered (one node).
    pub(crate) service: ServiceRecord,
    subs: Vec<(u64, Arc<dyn EventHandler>)>,
    next: AtomicUsize,
}

/// Every local subscription, by node id.
#[derive(Default)]
pub(crate) struct Table {
    nodes: HashMap<String, NodeEntry>,
    by_key: HashMap<(String, Option<String>), String>,
    /// Whether the broker's server speaks TLS (node metadata `secure`).
    pub(crate) secure: bool,
}

/// What [`Table::remove`] left behind.
pub(crate) enum Removed {
    /// Not found (already unsubscribed).
    Nothing,
    /// Other subscriptions still use the node.
    Kept,
    /// The node has no subscription left; deregister this record.
    Last(ServiceRecord),
}

impl Table {
    /// Adds a subscription and returns the record to register for it. Broadcast
    /// subscriptions of a topic share the node `<topic>-<broker id>`; each queue
    /// group of a topic gets its own node `<topic>-<uuid>`, so that its record never
    /// collides with the broadcast one in registries keyed by node id.
    pub(crate) fn add(
        &mut self,
        broker_id: &str,
        address: &str,
        topic: &str,
        queue: Option<&str>,
        sub_id: u64,
        handler: Arc<dyn EventHandler>,
    ) -> (String, ServiceRecord) {
        let key = (topic.to_owned(), queue.map(str::to_owned));
        let node_id = self
            .by_key
            .entry(key)
            .or_insert_with(|| match queue {
                None => format!("{topic}-{broker_id}"),
                Some(_) => format!("{topic}-{}", uuid::Uuid::new_v4()),
            })
            .clone();
        let entry = self
            .nodes
            .entry(node_id.clone())
            .or_insert_with(|| NodeEntry {
                topic: topic.to_owned(),
                queue: queue.map(str::to_owned),
                service: record(&node_id, address, topic, queue, self.secure),
                subs: Vec::new(),
                next: AtomicUsize::new(0),
            });
        entry.subs.push((sub_id, handler));
        (node_id, entry.service.clone())
    }

    /// Removes a subscription.
    pub(crate) fn remove(&mut self, node_id: &str, sub_id: u64) -> Removed {
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return Removed::Nothing;
        };
        let before = entry.subs.len();
        entry.subs.retain(|(id, _)| *id != sub_id);
        if entry.subs.len() == before {
            return Removed::Nothing;
        }
        if !entry.subs.is_empty() {
            return Removed::Kept;
        }
        let Some(entry) = self.nodes.remove(node_id) else {
            return Removed::Nothing;
        };
        self.by_key.remove(&(entry.topic, entry.queue));
        Removed::Last(entry.service)
    }

    /// The handlers a delivery to `node_id` for `topic` runs: every broadcast
    /// subscription of the node, or one subscription of a queue group (round
    /// robin). `None` when this broker has no such node for the topic.
    pub(crate) fn handlers(
        &self,
        node_id: &str,
        topic: &str,
    ) -> Option<Vec<Arc<dyn EventHandler>>> {
        let entry = self.nodes.get(node_id)?;
        if entry.topic != topic || entry.subs.is_empty() {
            return None;
        }
        Some(match entry.queue {
            None => entry.subs.iter().map(|(_, h)| h.clone()).collect(),
            Some(_) => {
                let i = entry.next.fetch_add(1, Ordering::Relaxed) % entry.subs.len();
                vec![entry.subs[i].1.clone()]
            }
        })
    }

    /// The records of every node.
    pub(crate) fn services(&self) -> Vec<ServiceRecord> {
        self.nodes.values().map(|e| e.service.clone()).collect()
    }

    /// Removes everything and returns the records to deregister.
    pub(crate) fn clear(&mut self) -> Vec<ServiceRecord> {
        self.by_key.clear();
        self.nodes.drain().map(|(_, e)| e.service).collect()
    }
}

/// The registry record of a subscription node, as go-micro's broker writes it.
pub(crate) fn record(
    node_id: &str,
    address: &str,
    topic: &str,
    queue: Option<&str>,
    secure: bool,
) -> ServiceRecord {
    let mut metadata = MetadataMap::new();
    metadata.insert("secure".into(), secure.to_string());
    metadata.insert("broker".into(), "http".into());
    metadata.insert("topic".into(), topic.into());
    ServiceRecord {
        name: SERVICE_NAME.into(),
        version: queue.unwrap_or(BROADCAST_VERSION).into(),
        metadata: MetadataMap::new(),
        endpoints: Vec::new(),
        nodes: vec![Node {
            id: node_id.into(),
            address: address.into(),
            metadata,
        }],
    }
}
