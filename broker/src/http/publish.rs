//! Publishing: which targets an event goes to, and one attempt at each.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use micro_registry::{NodeRef, Snapshot};
use parking_lot::Mutex;

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

/// The HTTP-broker subscriber nodes of every topic in one snapshot of
/// `micro.http.broker`, built once per snapshot (every topic of the mesh is in
/// that one service, so scanning it on each publish would cost every publisher
/// time in proportion to every other topic's subscriptions).
pub(crate) struct TopicIndex {
    snapshot: Snapshot,
    /// Topic → indices of its nodes in the snapshot, in snapshot order (so the
    /// nodes of one version, one queue group, are contiguous).
    topics: HashMap<String, Vec<u32>>,
}

impl TopicIndex {
    fn build(snapshot: Snapshot) -> Self {
        let mut topics: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, (_, node)) in snapshot.nodes().enumerate() {
            if node.metadata.get("broker").is_none_or(|b| b != "http") {
                continue;
            }
            let (Some(topic), Ok(i)) = (node.metadata.get("topic"), u32::try_from(i)) else {
                continue;
            };
            topics.entry(topic.clone()).or_default().push(i);
        }
        TopicIndex { snapshot, topics }
    }

    /// The nodes of `topic` whose version `version` accepts.
    fn candidates<'a>(
        &'a self,
        topic: &str,
        version: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = NodeRef> + 'a {
        self.topics
            .get(topic)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|&i| self.snapshot.node_ref(i as usize))
            .filter(move |n| version(&n.service().version))
    }

    /// Every target of an event on `topic`: each broadcast node, each queue group.
    pub(crate) fn targets(&self, topic: &str) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let mut groups: Vec<Target> = Vec::new();
        for n in self.candidates(topic, |_| true) {
            let version = &n.service().version;
            if version == BROADCAST_VERSION {
                out.push(Target::Node(n));
                continue;
            }
            match groups.last_mut() {
                Some(Target::Group { name, members }) if name == version => members.push(n),
                _ => groups.push(Target::Group {
                    name: version.clone(),
                    members: vec![n],
                }),
            }
        }
        out.extend(groups);
        out
    }

    /// The broadcast node `id` of `topic`, if it is still registered.
    pub(crate) fn find_node(&self, topic: &str, id: &str) -> Option<NodeRef> {
        self.candidates(topic, |v| v == BROADCAST_VERSION)
            .find(|n| n.id == id)
    }

    /// The members of queue group `name` of `topic`.
    pub(crate) fn group_members(&self, topic: &str, name: &str) -> Vec<NodeRef> {
        self.candidates(topic, |v| v == name).collect()
    }
}

/// The index of the last snapshot seen: rebuilt only when the cache hands out a
/// new snapshot (a registry change), shared by every publish and retry until
/// then.
#[derive(Default)]
pub(crate) struct IndexMemo(Mutex<Option<Arc<TopicIndex>>>);

impl IndexMemo {
    pub(crate) fn get(&self, snapshot: &Snapshot) -> Arc<TopicIndex> {
        if let Some(ix) = self.0.lock().as_ref() {
            if ix.snapshot.ptr_eq(snapshot) {
                return ix.clone();
            }
        }
        let ix = Arc::new(TopicIndex::build(snapshot.clone()));
        *self.0.lock() = Some(ix.clone());
        ix
    }
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

#[cfg(test)]
mod tests {
    use micro_registry::{Node, ServiceRecord};

    use super::*;

    fn node(id: &str, topic: &str) -> Node {
        let mut n = Node::new(id, "127.0.0.1:1");
        n.metadata.insert("broker".into(), "http".into());
        n.metadata.insert("topic".into(), topic.into());
        n
    }

    fn version(v: &str, nodes: Vec<Node>) -> ServiceRecord {
        ServiceRecord {
            name: "micro.http.broker".into(),
            version: v.into(),
            nodes,
            ..Default::default()
        }
    }

    fn ids(t: &Target) -> (Option<&str>, Vec<&str>) {
        match t {
            Target::Node(n) => (None, vec![n.id.as_str()]),
            Target::Group { name, members } => (
                Some(name.as_str()),
                members.iter().map(|n| n.id.as_str()).collect(),
            ),
        }
    }

    #[test]
    fn targets_come_from_the_topics_own_nodes() {
        let mut plain = Node::new("not-http", "127.0.0.1:1");
        plain.metadata.insert("topic".into(), "a".into());
        let snapshot = Snapshot::new(vec![
            version(
                BROADCAST_VERSION,
                vec![node("b1", "a"), node("x1", "b"), node("b2", "a"), plain],
            ),
            version("q1", vec![node("q1-a", "a"), node("q1-b", "b")]),
            version("q2", vec![node("q2-a", "a"), node("q2-a2", "a")]),
        ]);
        let ix = TopicIndex::build(snapshot.clone());
        let got: Vec<_> = ix.targets("a");
        let got: Vec<_> = got.iter().map(ids).collect();
        assert_eq!(
            got,
            vec![
                (None, vec!["b1"]),
                (None, vec!["b2"]),
                (Some("q1"), vec!["q1-a"]),
                (Some("q2"), vec!["q2-a", "q2-a2"]),
            ]
        );
        assert!(ix.targets("none").is_empty());
        assert_eq!(
            ix.find_node("a", "b2").map(|n| n.id.clone()),
            Some("b2".into())
        );
        assert!(ix.find_node("a", "x1").is_none(), "x1 is of topic b");
        assert!(
            ix.find_node("a", "q1-a").is_none(),
            "queue members are not broadcast"
        );
        assert_eq!(ix.group_members("b", "q1").len(), 1);
        assert!(ix.group_members("a", "q3").is_empty());
    }

    #[test]
    fn the_index_is_built_once_per_snapshot() {
        let memo = IndexMemo::default();
        let one = Snapshot::new(vec![version(BROADCAST_VERSION, vec![node("b1", "a")])]);
        let first = memo.get(&one);
        assert!(Arc::ptr_eq(&first, &memo.get(&one.clone())));
        let two = Snapshot::new(vec![version(BROADCAST_VERSION, vec![node("b2", "a")])]);
        let second = memo.get(&two);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(ids(&second.targets("a")[0]).1, vec!["b2"]);
    }
}
