//! Publishing: which targets an event goes to, and one attempt at each.

use bytes::Bytes;
use micro_registry::{Node, NodeRef, Snapshot};

use super::client::{Outcome, post};
use super::retry::{Pending, RetryTarget};
use super::stats::{dec, inc};
use super::subs::BROADCAST_VERSION;
use super::{Conn, Core};

/// Where one delivery of an event goes. Nodes are handles into the cache's
/// snapshot: choosing targets copies no node.
pub(crate) enum Target {
    /// A broadcast subscriber node: it gets every event.
    Node(NodeRef),
    /// A queue group: one of its members gets each event.
    Group {
        /// The group (the registered version).
        name: String,
        /// Its members, as the registry lists them now.
        members: Vec<NodeRef>,
    },
}

/// Whether `node` subscribes to `topic` through an HTTP broker (tagged
/// `broker=http` and `topic=<topic>`).
fn subscribes(node: &Node, topic: &str) -> bool {
    node.metadata.get("broker").is_some_and(|b| b == "http")
        && node.metadata.get("topic").is_some_and(|t| t == topic)
}

/// The subscriber nodes of `topic` in versions accepted by `version`, as handles.
fn candidates<'a>(
    snapshot: &'a Snapshot,
    topic: &'a str,
    version: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = NodeRef> + 'a {
    snapshot
        .nodes()
        .enumerate()
        .filter(move |(_, (svc, node))| version(&svc.version) && subscribes(node, topic))
        .filter_map(move |(i, _)| snapshot.node_ref(i))
}

/// Every target of an event on `topic`: each broadcast node, each queue group.
pub(crate) fn targets(snapshot: &Snapshot, topic: &str) -> Vec<Target> {
    let mut out: Vec<Target> = candidates(snapshot, topic, |v| v == BROADCAST_VERSION)
        .map(Target::Node)
        .collect();
    // The registry gives one service entry per version, so each group once.
    for svc in snapshot.services() {
        if svc.version != BROADCAST_VERSION {
            let members = group_members(snapshot, topic, &svc.version);
            if !members.is_empty() {
                out.push(Target::Group {
                    name: svc.version.clone(),
                    members,
                });
            }
        }
    }
    out
}

/// The broadcast node `id` of `topic`, if it is still registered.
pub(crate) fn find_node(snapshot: &Snapshot, topic: &str, id: &str) -> Option<NodeRef> {
    candidates(snapshot, topic, |v| v == BROADCAST_VERSION).find(|n| n.id == id)
}

/// The members of queue group `name` of `topic`.
pub(crate) fn group_members(snapshot: &Snapshot, topic: &str, name: &str) -> Vec<NodeRef> {
    candidates(snapshot, topic, |v| v == name).collect()
}

/// How a delivery to a queue group ended.
pub(crate) enum GroupOutcome {
    /// A member took it.
    Delivered,
    /// A member answered with an error status.
    Rejected,
    /// At least one member failed in transport: worth retrying.
    Failed(String),
    /// No member can take it (all gone or unsupported).
    NoMember(String),
}

impl Core {
    /// One attempt to each of `targets`, concurrently; failures go to the retry
    /// queue. Returns when every target answered, failed or timed out.
    pub(crate) async fn deliver(
        &self,
        conn: &Conn,
        topic: &str,
        body: &Bytes,
        targets: Vec<Target>,
    ) {
        let one = |t: Target| async move {
            match t {
                Target::Node(node) => self.first_to_node(conn, topic, body, node).await,
                Target::Group { name, members } => {
                    self.first_to_group(conn, topic, body, name, members).await
                }
            }
        };
        if targets.len() == 1 {
            for t in targets {
                one(t).await;
            }
        } else {
            futures_util::future::join_all(targets.into_iter().map(one)).await;
        }
    }

    async fn first_to_node(&self, conn: &Conn, topic: &str, body: &Bytes, node: NodeRef) {
        match post(
            &conn.client,
            &node,
            body.clone(),
            self.opts.delivery_timeout,
        )
        .await
        {
            Outcome::Delivered => inc(&self.stats.delivered),
            Outcome::Gone => {
                self.suspect();
                tracing::debug!(topic, node = %node.id, "http broker: subscriber has no such subscription (404)");
                inc(&self.stats.rejected);
            }
            Outcome::Rejected(status, answer) => {
                tracing::warn!(topic, node = %node.id, %status, answer = %answer.trim_end(), "http broker: subscriber rejected an event");
                inc(&self.stats.rejected);
            }
            Outcome::Unsupported(why) => {
                tracing::warn!(topic, node = %node.id, reason = %why, "http broker: cannot deliver; event dropped for this subscriber");
                inc(&self.stats.dropped);
            }
            Outcome::Failed(why) => {
                inc(&self.stats.failed_attempts);
                self.suspect();
                tracing::debug!(topic, node = %node.id, address = %node.address, error = %why, "http broker: delivery failed");
                self.retry_new(topic, body, RetryTarget::Node(node.id.clone()), why);
            }
        }
    }

    async fn first_to_group(
        &self,
        conn: &Conn,
        topic: &str,
        body: &Bytes,
        name: String,
        members: Vec<NodeRef>,
    ) {
        match self.to_group(conn, topic, body, &name, members).await {
            GroupOutcome::Delivered => inc(&self.stats.delivered),
            GroupOutcome::Rejected => inc(&self.stats.rejected),
            GroupOutcome::NoMember(why) => {
                tracing::warn!(topic, group = %name, reason = %why, "http broker: no member of the queue group can take the event; dropped");
                inc(&self.stats.dropped);
            }
            GroupOutcome::Failed(why) => self.retry_new(topic, body, RetryTarget::Group(name), why),
        }
    }

    /// Tries the members of a group in random order until one takes the event.
    pub(crate) async fn to_group(
        &self,
        conn: &Conn,
        topic: &str,
        body: &Bytes,
        name: &str,
        mut members: Vec<NodeRef>,
    ) -> GroupOutcome {
        fastrand::shuffle(&mut members);
        let mut failed = None;
        let mut last = String::from("no member");
        for node in &members {
            match post(&conn.client, node, body.clone(), self.opts.delivery_timeout).await {
                Outcome::Delivered => return GroupOutcome::Delivered,
                Outcome::Rejected(status, answer) => {
                    tracing::warn!(topic, group = name, node = %node.id, %status, answer = %answer.trim_end(), "http broker: subscriber rejected an event");
                    return GroupOutcome::Rejected;
                }
                Outcome::Gone => {
                    self.suspect();
                    last = format!("{}: no such subscription (404)", node.id);
                }
                Outcome::Unsupported(why) => last = format!("{}: {why}", node.id),
                Outcome::Failed(why) => {
                    inc(&self.stats.failed_attempts);
                    self.suspect();
                    tracing::debug!(topic, group = name, node = %node.id, error = %why, "http broker: delivery to a queue member failed; trying another");
                    failed = Some(format!("{}: {why}", node.id));
                }
            }
        }
        match failed {
            Some(why) => GroupOutcome::Failed(why),
            None => GroupOutcome::NoMember(last),
        }
    }

    /// Queues a delivery that failed for the first time.
    fn retry_new(&self, topic: &str, body: &Bytes, target: RetryTarget, why: String) {
        if !self.opts.retry_enabled() {
            tracing::warn!(topic, target = %target, error = %why, "http broker: delivery failed and retrying is off; event dropped for this target");
            inc(&self.stats.dropped);
            return;
        }
        inc(&self.stats.pending);
        self.requeue(Pending::new(topic, body.clone(), target));
    }

    /// Puts a pending delivery (back) in its topic's queue, or drops it when its
    /// attempts or age are used up; the oldest delivery of a full queue is dropped.
    pub(crate) fn requeue(&self, mut p: Pending) {
        let now = tokio::time::Instant::now();
        if p.attempts > self.opts.retry_attempts
            || now.saturating_duration_since(p.since) >= self.opts.retry_max_age
        {
            tracing::warn!(topic = %p.topic, target = %p.target, attempts = p.attempts, "http broker: giving up on a delivery");
            dec(&self.stats.pending);
            inc(&self.stats.dropped);
            return;
        }
        p.due = now + self.opts.backoff(p.attempts);
        if let Some(old) = self.retry.push(p, self.opts.retry_queue) {
            tracing::warn!(topic = %old.topic, target = %old.target, "http broker: retry queue full; oldest pending delivery dropped");
            dec(&self.stats.pending);
            inc(&self.stats.dropped);
            inc(&self.stats.overflowed);
        }
    }
}
