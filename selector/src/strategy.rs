//! Strategies: which candidate node a selection tries first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

/// Decides where in the candidate list a selection starts; the selection then
/// walks the list from there, healthy nodes first.
pub trait Strategy: Send + Sync + 'static {
    /// Index (below `candidates`, which is at least 1) of the first candidate to try
    /// for `service`.
    fn start(&self, service: &str, candidates: usize) -> usize;

    /// Short name, e.g. `random`.
    fn name(&self) -> &'static str;
}

/// Picks a uniformly random node for every selection (go-micro's default).
#[derive(Clone, Copy, Debug, Default)]
pub struct Random;

impl Strategy for Random {
    fn start(&self, _service: &str, candidates: usize) -> usize {
        fastrand::usize(..candidates.max(1))
    }

    fn name(&self) -> &'static str {
        "random"
    }
}

/// Walks the nodes of each service in turn, one step per selection, starting at a
/// random offset. Unlike go-micro's, whose counter lives in one selection (so every
/// call starts afresh at random), the counter is kept per service across
/// selections, which is what spreads calls evenly.
#[derive(Debug, Default)]
pub struct RoundRobin {
    counters: RwLock<HashMap<String, AtomicUsize>>,
}

impl RoundRobin {
    /// A round-robin strategy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Strategy for RoundRobin {
    fn start(&self, service: &str, candidates: usize) -> usize {
        let n = candidates.max(1);
        if let Some(c) = self.counters.read().get(service) {
            return c.fetch_add(1, Ordering::Relaxed) % n;
        }
        let mut map = self.counters.write();
        let c = map
            .entry(service.to_owned())
            .or_insert_with(|| AtomicUsize::new(fastrand::usize(..n)));
        c.fetch_add(1, Ordering::Relaxed) % n
    }

    fn name(&self) -> &'static str {
        "roundrobin"
    }
}
