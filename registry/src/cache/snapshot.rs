//! [`Snapshot`]: an immutable, cheaply shared view of one service's nodes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::{Node, ServiceRecord};

/// Every version of one service with its nodes, as the cache last saw them.
///
/// Cloning is a reference-count increment; the node list of all versions is
/// flattened once when the snapshot is made, so a selector picks a node by index
/// without copying anything.
#[derive(Clone, Default)]
pub struct Snapshot {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    services: Vec<ServiceRecord>,
    /// (service index, node index) of every node of every version.
    index: Vec<(u32, u32)>,
}

impl Snapshot {
    /// A snapshot of `services` (one entry per version).
    pub fn new(services: Vec<ServiceRecord>) -> Self {
        let index = services
            .iter()
            .enumerate()
            .flat_map(|(s, svc)| (0..svc.nodes.len()).map(move |n| (s as u32, n as u32)))
            .collect();
        Snapshot {
            inner: Arc::new(Inner { services, index }),
        }
    }

    /// The services, one per version.
    pub fn services(&self) -> &[ServiceRecord] {
        &self.inner.services
    }

    /// Number of nodes over all versions.
    pub fn node_count(&self) -> usize {
        self.inner.index.len()
    }

    /// Whether there are no nodes at all.
    pub fn is_empty(&self) -> bool {
        self.inner.index.is_empty()
    }

    /// The `i`-th node over all versions, with its service.
    pub fn node(&self, i: usize) -> Option<(&ServiceRecord, &Node)> {
        let &(s, n) = self.inner.index.get(i)?;
        let svc = &self.inner.services[s as usize];
        Some((svc, &svc.nodes[n as usize]))
    }

    /// Every node with its service.
    pub fn nodes(&self) -> impl Iterator<Item = (&ServiceRecord, &Node)> {
        (0..self.node_count()).filter_map(|i| self.node(i))
    }

    /// An owned handle on the `i`-th node that keeps this snapshot alive.
    pub fn node_ref(&self, i: usize) -> Option<NodeRef> {
        let &(s, n) = self.inner.index.get(i)?;
        Some(NodeRef {
            snapshot: self.clone(),
            service: s,
            node: n,
        })
    }

    /// A deep copy of the services.
    pub fn to_vec(&self) -> Vec<ServiceRecord> {
        self.inner.services.clone()
    }

    /// Whether two snapshots are the same allocation.
    pub fn ptr_eq(&self, other: &Snapshot) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.services()).finish()
    }
}

/// A node picked from a [`Snapshot`]: dereferences to the [`Node`] and knows its
/// [`ServiceRecord`] (version, endpoints). Cloning is cheap.
#[derive(Clone)]
pub struct NodeRef {
    snapshot: Snapshot,
    service: u32,
    node: u32,
}

impl NodeRef {
    /// The service (one version) this node belongs to.
    pub fn service(&self) -> &ServiceRecord {
        &self.snapshot.inner.services[self.service as usize]
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.service().nodes[self.node as usize]
    }
}

impl Deref for NodeRef {
    type Target = Node;

    fn deref(&self) -> &Node {
        self.node()
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRef")
            .field("service", &self.service().name)
            .field("version", &self.service().version)
            .field("node", self.node())
            .finish()
    }
}
