//! Delivery counters of an [`HttpBroker`](super::HttpBroker).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of an [`HttpBroker`](super::HttpBroker)'s counters, since it was
/// created.
///
/// A *delivery* is one event addressed to one target: a broadcast subscriber node,
/// or a queue group. Once no publish or retry is in progress,
/// `deliveries == delivered + rejected + dropped + pending`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpBrokerStats {
    /// Events accepted by `publish` (it returned `Ok`).
    pub published: u64,
    /// Deliveries those events made: one per broadcast node and per queue group.
    pub deliveries: u64,
    /// Deliveries answered with `2xx` (first attempt or retry).
    pub delivered: u64,
    /// Of `delivered`, those that succeeded on a retry.
    pub retried: u64,
    /// Deliveries answered with another status; they are not retried (the answer
    /// would be the same). A queue group member answering `404` (no such
    /// subscription any more) is not a rejection: another member is tried.
    pub rejected: u64,
    /// Deliveries given up: retry queue overflow, attempts or age exhausted, target
    /// gone from the registry, unsupported target (`https`, bad address), retry
    /// disabled, or pending at `disconnect`.
    pub dropped: u64,
    /// Of `dropped`, those pushed out of a full retry queue.
    pub overflowed: u64,
    /// Attempts that failed in transport (connect, reset, timeout).
    pub failed_attempts: u64,
    /// Deliveries waiting in retry queues now.
    pub pending: u64,
    /// Events this broker's server received for one of its subscriptions.
    pub received: u64,
    /// EventHandler calls that returned an error or panicked.
    pub handler_errors: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) published: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) handler_errors: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn dec(c: &AtomicU64) {
    c.fetch_sub(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn snapshot(&self) -> HttpBrokerStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpBrokerStats {
            published: g(&self.published),
            deliveries: g(&self.deliveries),
            delivered: g(&self.delivered),
            retried: g(&self.retried),
            rejected: g(&self.rejected),
            dropped: g(&self.dropped),
            overflowed: g(&self.overflowed),
            failed_attempts: g(&self.failed_attempts),
            pending: g(&self.pending),
            received: g(&self.received),
            handler_errors: g(&self.handler_errors),
        }
    }
}
