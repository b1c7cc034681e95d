//! [`Candidates`]: the nodes one selection may use, in the order to try them.

use std::sync::Arc;

use micro_registry::{NodeRef, Snapshot};
use tokio::time::Instant;

use crate::Error;
use crate::health::Health;

/// The result of a selection: yields candidate nodes, each once, in the order the
/// strategy chose, with nodes that recently failed at the transport level last.
///
/// Cheap to make: on the common path (no filter, nothing to avoid, no node
/// penalised) it is a shared [`Snapshot`] and two integers.
pub struct Candidates {
    snapshot: Snapshot,
    order: Order,
    yielded: usize,
}

enum Order {
    /// Every node of the snapshot, starting at `start`.
    All { start: usize },
    /// These node indices, in this order.
    List(Vec<u32>),
}

impl Candidates {
    pub(crate) fn new(
        snapshot: Snapshot,
        candidates: Option<Vec<u32>>,
        start: usize,
        health: &Arc<Health>,
    ) -> Candidates {
        let order = match candidates {
            None if !health.any() => Order::All { start },
            None => Order::List(rotate_healthy_first(
                (0..snapshot.node_count() as u32).collect(),
                start,
                &snapshot,
                health,
            )),
            Some(list) => Order::List(rotate_healthy_first(list, start, &snapshot, health)),
        };
        Candidates {
            snapshot,
            order,
            yielded: 0,
        }
    }

    /// The next node to try, or [`Error::NoneAvailable`] once every candidate was
    /// yielded.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<NodeRef, Error> {
        let n = self.len();
        if self.yielded >= n {
            return Err(Error::NoneAvailable);
        }
        let idx = match &self.order {
            Order::All { start } => (start + self.yielded) % n,
            Order::List(list) => list[self.yielded] as usize,
        };
        self.yielded += 1;
        self.snapshot.node_ref(idx).ok_or(Error::NoneAvailable)
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        match &self.order {
            Order::All { .. } => self.snapshot.node_count(),
            Order::List(list) => list.len(),
        }
    }

    /// Whether there are no candidates.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The snapshot the candidates come from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("candidates", &self.len())
            .field("yielded", &self.yielded)
            .finish()
    }
}

/// Rotates `list` to begin at `start`, then moves penalised nodes to the end
/// (keeping the relative order of each group).
fn rotate_healthy_first(
    mut list: Vec<u32>,
    start: usize,
    snapshot: &Snapshot,
    health: &Health,
) -> Vec<u32> {
    if !list.is_empty() {
        let start = start % list.len();
        list.rotate_left(start);
    }
    if health.any() {
        let now = Instant::now();
        let penalised = |i: &u32| {
            snapshot
                .node(*i as usize)
                .is_some_and(|(_, node)| health.is_penalised(&node.id, now))
        };
        let (mut healthy, sick): (Vec<u32>, Vec<u32>) =
            list.into_iter().partition(|i| !penalised(i));
        healthy.extend(sick);
        list = healthy;
    }
    list
}
