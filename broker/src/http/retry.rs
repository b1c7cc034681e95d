//! The retry queues of failed deliveries and the task that retries them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{Outcome, post};
use super::publish::GroupOutcome;
use super::stats::{add, dec, inc};
use super::subs::SERVICE_NAME;
use super::{Conn, Core};

/// Deliveries retried at once by the retry task.
const CONCURRENCY: usize = 32;

/// Who a pending delivery is for.
#[derive(Clone, Debug)]
pub(crate) enum RetryTarget {
    /// A broadcast node, by id: only that node may get it.
    Node(String),
    /// A queue group: any live member may get it.
    Group(String),
}

impl fmt::Display for RetryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryTarget::Node(id) => write!(f, "node {id}"),
            RetryTarget::Group(g) => write!(f, "queue group {g}"),
        }
    }
}

/// A delivery waiting for its next attempt.
pub(crate) struct Pending {
    pub(crate) topic: String,
    pub(crate) body: Bytes,
    pub(crate) target: RetryTarget,
    /// Attempts made so far (all failed).
    pub(crate) attempts: u32,
    /// When the first attempt failed.
    pub(crate) since: Instant,
    /// When the next attempt is due.
    pub(crate) due: Instant,
}

impl Pending {
    pub(crate) fn new(topic: &str, body: Bytes, target: RetryTarget) -> Self {
        let now = Instant::now();
        Pending {
            topic: topic.to_owned(),
            body,
            target,
            attempts: 1,
            since: now,
            due: now,
        }
    }
}

/// One bounded queue per topic, ordered by first failure.
#[derive(Default)]
pub(crate) struct RetryQueue {
    topics: Mutex<HashMap<String, VecDeque<Pending>>>,
    notify: Notify,
}

impl RetryQueue {
    /// Adds `p`; when its topic then holds more than `cap` deliveries the oldest is
    /// removed and returned.
    pub(crate) fn push(&self, p: Pending, cap: usize) -> Option<Pending> {
        let evicted = {
            let mut topics = self.topics.lock();
            let q = topics.entry(p.topic.clone()).or_default();
            let at = q.partition_point(|x| x.since <= p.since);
            q.insert(at, p);
            if q.len() > cap { q.pop_front() } else { None }
        };
        self.notify.notify_one();
        evicted
    }

    fn next_due(&self) -> Option<Instant> {
        self.topics
            .lock()
            .values()
            .flat_map(|q| q.iter().map(|p| p.due))
            .min()
    }

    fn take_due(&self, now: Instant) -> Vec<Pending> {
        let mut out = Vec::new();
        let mut topics = self.topics.lock();
        for q in topics.values_mut() {
            if q.iter().any(|p| p.due <= now) {
                let (due, rest): (VecDeque<_>, VecDeque<_>) =
                    q.drain(..).partition(|p| p.due <= now);
                out.extend(due);
                *q = rest;
            }
        }
        topics.retain(|_, q| !q.is_empty());
        out
    }

    /// Empties every queue; returns how many deliveries were removed.
    pub(crate) fn clear(&self) -> usize {
        self.topics.lock().drain().map(|(_, q)| q.len()).sum()
    }
}

/// Retries due deliveries until `cancel` fires. Deliveries in flight when it
/// fires are counted as dropped.
pub(crate) async fn run(core: Arc<Core>, cancel: CancellationToken) {
    loop {
        let notified = core.retry.notify.notified();
        let next = core.retry.next_due();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = notified => continue,
            _ = sleep_until(next) => {}
        }
        let due = core.retry.take_due(Instant::now());
        if due.is_empty() {
            continue;
        }
        let Some(conn) = core.conn() else {
            add(&core.stats.dropped, due.len() as u64);
            core.stats
                .pending
                .fetch_sub(due.len() as u64, Ordering::Relaxed);
            continue;
        };
        let in_flight = AtomicU64::new(due.len() as u64);
        let work = futures_util::stream::iter(due).for_each_concurrent(CONCURRENCY, |p| {
            let (core, conn, in_flight) = (&core, &conn, &in_flight);
            async move {
                core.retry_one(conn, p).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        });
        tokio::select! {
            _ = cancel.cancelled() => {
                let lost = in_flight.load(Ordering::Relaxed);
                add(&core.stats.dropped, lost);
                core.stats.pending.fetch_sub(lost, Ordering::Relaxed);
                return;
            }
            _ = work => {}
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Core {
    /// One retry of `p`: to its node if it is still registered, or to a live member
    /// of its group.
    async fn retry_one(&self, conn: &Conn, mut p: Pending) {
        let snapshot = match conn.cache.get(SERVICE_NAME).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return self.gone(&p, "no subscriber registered"),
            Err(e) => {
                tracing::debug!(topic = %p.topic, error = %e, "http broker: registry lookup for a retry failed");
                p.attempts += 1;
                return self.requeue(p);
            }
        };
        match p.target.clone() {
            RetryTarget::Node(id) => {
                let Some(node) = self.index.get(&snapshot).find_node(&p.topic, &id) else {
                    return self.gone(&p, "subscriber no longer registered");
                };
                match post(
                    &conn.client,
                    &node,
                    p.body.clone(),
                    self.opts.delivery_timeout,
                )
                .await
                {
                    Outcome::Delivered => self.retry_delivered(),
                    Outcome::Gone | Outcome::Rejected(..) => {
                        self.suspect();
                        tracing::debug!(topic = %p.topic, node = %id, "http broker: subscriber rejected a retried event");
                        dec(&self.stats.pending);
                        inc(&self.stats.rejected);
                    }
                    Outcome::Unsupported(why) => self.gone(&p, &why),
                    Outcome::Failed(why) => {
                        inc(&self.stats.failed_attempts);
                        self.suspect();
                        tracing::debug!(topic = %p.topic, node = %id, error = %why, attempts = p.attempts + 1, "http broker: retry failed");
                        p.attempts += 1;
                        self.requeue(p);
                    }
                }
            }
            RetryTarget::Group(name) => {
                let members = self.index.get(&snapshot).group_members(&p.topic, &name);
                if members.is_empty() {
                    return self.gone(&p, "queue group no longer registered");
                }
                match self.to_group(conn, &p.topic, &p.body, &name, members).await {
                    GroupOutcome::Delivered => self.retry_delivered(),
                    GroupOutcome::Rejected => {
                        dec(&self.stats.pending);
                        inc(&self.stats.rejected);
                    }
                    GroupOutcome::NoMember(why) => self.gone(&p, &why),
                    GroupOutcome::Failed(_) => {
                        p.attempts += 1;
                        self.requeue(p);
                    }
                }
            }
        }
    }

    fn retry_delivered(&self) {
        dec(&self.stats.pending);
        inc(&self.stats.delivered);
        inc(&self.stats.retried);
    }

    fn gone(&self, p: &Pending, why: &str) {
        tracing::info!(topic = %p.topic, target = %p.target, reason = why, "http broker: dropping a pending delivery");
        dec(&self.stats.pending);
        inc(&self.stats.dropped);
    }
}
