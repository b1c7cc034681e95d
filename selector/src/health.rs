//! Node health as the client reports it: nodes that failed at the transport level
//! are tried last for a while.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::time::Instant;

/// How long a failed node is avoided: `base` after one failure, doubling with each
/// further failure in a row, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Penalty {
    /// Avoidance after the first failure. Default: 1 s.
    pub base: Duration,
    /// Longest avoidance. Default: 30 s.
    pub max: Duration,
}

impl Default for Penalty {
    fn default() -> Self {
        Penalty {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

struct Record {
    until: Instant,
    failures: u32,
}

/// Penalised nodes by id.
#[derive(Default)]
pub(crate) struct Health {
    penalty: Penalty,
    nodes: RwLock<HashMap<String, Record>>,
    /// Number of entries in `nodes`, read without locking on the hot path.
    count: AtomicUsize,
}

impl Health {
    pub(crate) fn new(penalty: Penalty) -> Self {
        Health {
            penalty,
            ..Default::default()
        }
    }

    /// Whether any node is penalised at all (cheap).
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Whether `id` is penalised at `now`.
    pub(crate) fn is_penalised(&self, id: &str, now: Instant) -> bool {
        self.nodes.read().get(id).is_some_and(|r| r.until > now)
    }

    pub(crate) fn failure(&self, id: &str) {
        let now = Instant::now();
        let mut nodes = self.nodes.write();
        // Forget nodes whose penalty ran out long ago, so the map stays small.
        if nodes.len() > 64 {
            let horizon = self.penalty.max;
            nodes.retain(|_, r| now.saturating_duration_since(r.until) < horizon);
        }
        let r = nodes.entry(id.to_owned()).or_insert(Record {
            until: now,
            failures: 0,
        });
        r.failures = r.failures.saturating_add(1);
        let factor = 1u32 << (r.failures - 1).min(16);
        r.until = now
            + self
                .penalty
                .base
                .saturating_mul(factor)
                .min(self.penalty.max);
        self.count.store(nodes.len(), Ordering::Relaxed);
    }

    pub(crate) fn success(&self, id: &str) {
        if !self.any() {
            return;
        }
        let mut nodes = self.nodes.write();
        nodes.remove(id);
        self.count.store(nodes.len(), Ordering::Relaxed);
    }

    pub(crate) fn clear(&self) {
        let mut nodes = self.nodes.write();
        nodes.clear();
        self.count.store(0, Ordering::Relaxed);
    }
}
