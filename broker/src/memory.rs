//! [`MemoryBroker`]: in-process delivery, for tests and single-process apps.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::util::run_handler;
use crate::{Broker, Envelope, Error, Event, EventHandler, Result, SubscribeOptions, Subscription};

/// What [`MemoryBroker::publish`](Broker::publish) does when a subscription's
/// queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the event for that subscription (a queue group tries its other
    /// members first), log a warning and count it in
    /// [`MemoryBrokerStats::dropped`]. A slow subscriber never holds up the
    /// publisher or the other subscribers. The default.
    #[default]
    Drop,
    /// Wait until the subscription has room: nothing is lost, but a slow
    /// subscriber slows the publisher down (and with it every subscriber of the
    /// events it publishes next).
    Wait,
}

/// Options of a [`MemoryBroker`].
#[derive(Clone, Debug)]
pub struct MemoryBrokerOptions {
    queue_capacity: usize,
    overflow: Overflow,
    stop_timeout: Duration,
}

impl Default for MemoryBrokerOptions {
    fn default() -> Self {
        MemoryBrokerOptions {
            queue_capacity: 1024,
            overflow: Overflow::Drop,
            stop_timeout: Duration::from_secs(5),
        }
    }
}

impl MemoryBrokerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events each subscription may have waiting (at least 1). Default: 1024.
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events.max(1);
        self
    }

    /// What happens when a subscription's queue is full. Default: [`Overflow::Drop`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How long unsubscribing and disconnecting wait for a handler call in
    /// progress before cancelling it. Default: 5 s.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }
}

/// Counters of a [`MemoryBroker`], since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryBrokerStats {
    /// Events accepted by `publish`.
    pub published: u64,
    /// Events put in a subscription's queue (one per broadcast subscription and
    /// per queue group).
    pub queued: u64,
    /// Events dropped because every eligible queue was full.
    pub dropped: u64,
    /// EventHandler calls that returned `Ok`.
    pub handled: u64,
    /// EventHandler calls that returned an error or panicked.
    pub handler_errors: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    handled: AtomicU64,
    handler_errors: AtomicU64,
}

/// An in-process broker.
///
/// * Every broadcast subscription (no queue) of a topic gets every event; of the
///   subscriptions sharing a queue name, **one** gets each event, chosen **round
///   robin** (a member whose queue is full is skipped).
/// * Each subscription has its own task and a bounded queue
///   ([`queue_capacity`](MemoryBrokerOptions::queue_capacity), 1024): `publish`
///   only enqueues and returns, handlers of one subscription run one at a time in
///   publish order, different subscriptions run concurrently. A full queue drops
///   the event for that subscription by default ([`Overflow`]).
/// * EventHandler errors and panics are logged and counted; nothing is redelivered.
/// * Publishing to a topic without subscriptions fails with
///   [`Error::NoSubscribers`]; the event is not kept.
/// * `connect` does nothing (the broker works without it); `disconnect` removes
///   every subscription. Unsubscribing or disconnecting discards queued events,
///   lets a handler call in progress finish (up to
///   [`stop_timeout`](MemoryBrokerOptions::stop_timeout), then cancels it) and
///   waits for the subscription's task, except when called from inside that
///   subscription's own handler. Dropping the last clone of the broker aborts
///   every task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro_broker::Result<()> {
/// use micro_broker::{Broker, MemoryBroker, Envelope, SubscribeOptions, handler_fn};
///
/// let broker = MemoryBroker::new();
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// broker
///     .subscribe("greetings", handler_fn(move |ev| {
///         let tx = tx.clone();
///         async move { tx.send(ev.message.body).ok(); Ok(()) }
///     }), SubscribeOptions::default())
///     .await?;
/// broker.publish("greetings", Envelope::new("hello")).await?;
/// assert_eq!(rx.recv().await.unwrap(), "hello");
/// broker.disconnect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    opts: MemoryBrokerOptions,
    topics: RwLock<HashMap<String, Topic>>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Topic {
    broadcast: Vec<Arc<Sub>>,
    groups: BTreeMap<String, Group>,
}

#[derive(Default)]
struct Group {
    members: Vec<Arc<Sub>>,
    next: AtomicUsize,
}

struct Sub {
    id: u64,
    tx: mpsc::Sender<Event>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// A broker with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// A broker with the given options.
    pub fn with_options(opts: MemoryBrokerOptions) -> Self {
        MemoryBroker {
            inner: Arc::new(Inner {
                opts,
                topics: RwLock::default(),
                counters: Arc::default(),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The counters.
    pub fn stats(&self) -> MemoryBrokerStats {
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MemoryBrokerStats {
            published: g(&c.published),
            queued: g(&c.queued),
            dropped: g(&c.dropped),
            handled: g(&c.handled),
            handler_errors: g(&c.handler_errors),
        }
    }
}

impl Inner {
    /// Removes subscription `id`; returns it.
    fn remove(&self, topic: &str, queue: Option<&str>, id: u64) -> Option<Arc<Sub>> {
        let mut topics = self.topics.write();
        let t = topics.get_mut(topic)?;
        let list = match queue {
            None => &mut t.broadcast,
            Some(q) => &mut t.groups.get_mut(q)?.members,
        };
        let pos = list.iter().position(|s| s.id == id)?;
        let sub = list.remove(pos);
        if let Some(q) = queue {
            if t.groups.get(q).is_some_and(|g| g.members.is_empty()) {
                t.groups.remove(q);
            }
        }
        if t.broadcast.is_empty() && t.groups.is_empty() {
            topics.remove(topic);
        }
        Some(sub)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.topics.get_mut().values() {
            let groups = t.groups.values().flat_map(|g| g.members.iter());
            for s in t.broadcast.iter().chain(groups) {
                if let Some(h) = s.task.lock().take() {
                    h.abort();
                }
            }
        }
    }
}

/// Stops a subscription's task: discards its queue, waits for a handler call in
/// progress (bounded), unless called from that task itself.
async fn stop(sub: Arc<Sub>, timeout: Duration) {
    sub.stop.cancel();
    let Some(mut handle) = sub.task.lock().take() else {
        return;
    };
    if tokio::task::try_id() == Some(handle.id()) {
        // Unsubscribing from inside its own handler: the task ends after it.
        return;
    }
    if tokio::time::timeout(timeout, &mut handle).await.is_err() {
        tracing::warn!(
            ?timeout,
            "memory broker: handler still running at unsubscribe; cancelled"
        );
        handle.abort();
        let _ = handle.await;
    }
}

async fn run(
    mut rx: mpsc::Receiver<Event>,
    handler: Arc<dyn EventHandler>,
    stop: CancellationToken,
    counters: Arc<Counters>,
) {
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            e = rx.recv() => match e {
                Some(e) => e,
                None => return,
            },
        };
        if run_handler(&handler, event).await {
            counters.handled.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.handler_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn connect(&self) -> Result<()> {
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        let topics = std::mem::take(&mut *self.inner.topics.write());
        let subs = topics.into_values().flat_map(|t| {
            let groups: Vec<Arc<Sub>> = t.groups.into_values().flat_map(|g| g.members).collect();
            t.broadcast.into_iter().chain(groups)
        });
        let timeout = self.inner.opts.stop_timeout;
        futures_util::future::join_all(subs.map(|s| stop(s, timeout))).await;
        Ok(())
    }

    async fn publish(&self, topic: &str, msg: Envelope) -> Result<()> {
        // One candidate list per target: a broadcast subscription, or the members
        // of a group in round-robin order.
        let targets: Vec<Vec<mpsc::Sender<Event>>> = {
            let topics = self.inner.topics.read();
            let Some(t) = topics.get(topic) else {
                return Err(Error::NoSubscribers(topic.to_owned()));
            };
            let mut out: Vec<Vec<mpsc::Sender<Event>>> =
                t.broadcast.iter().map(|s| vec![s.tx.clone()]).collect();
            for g in t.groups.values() {
                let n = g.members.len();
                let start = g.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
                out.push(
                    (0..n)
                        .map(|i| g.members[(start + i) % n].tx.clone())
                        .collect(),
                );
            }
            out
        };
        if targets.is_empty() {
            return Err(Error::NoSubscribers(topic.to_owned()));
        }
        let c = &self.inner.counters;
        c.published.fetch_add(1, Ordering::Relaxed);
        let event = Event::new(topic, msg);
        for candidates in targets {
            let mut sent = candidates
                .iter()
                .any(|tx| tx.try_send(event.clone()).is_ok());
            if !sent && self.inner.opts.overflow == Overflow::Wait {
                for tx in &candidates {
                    if tx.send(event.clone()).await.is_ok() {
                        sent = true;
                        break;
                    }
                }
            }
            if sent {
                c.queued.fetch_add(1, Ordering::Relaxed);
            } else if candidates.iter().any(|tx| !tx.is_closed()) {
                tracing::warn!(topic, "memory broker: subscriber queue full; event dropped");
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Arc<dyn EventHandler>,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>> {
        if topic.is_empty() {
            return Err(Error::Invalid("empty topic".into()));
        }
        let queue = opts.queue.filter(|q| !q.is_empty());
        let (tx, rx) = mpsc::channel(self.inner.opts.queue_capacity);
        let stop = CancellationToken::new();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(run(rx, handler, stop.clone(), self.inner.counters.clone()));
        let sub = Arc::new(Sub {
            id,
            tx,
            stop,
            task: Mutex::new(Some(task)),
        });
        {
            let mut topics = self.inner.topics.write();
            let t = topics.entry(topic.to_owned()).or_default();
            match &queue {
                None => t.broadcast.push(sub),
                Some(q) => t.groups.entry(q.clone()).or_default().members.push(sub),
            }
        }
        Ok(Box::new(MemorySubscription {
            broker: Arc::downgrade(&self.inner),
            topic: topic.to_owned(),
            queue,
            id,
            done: AtomicBool::new(false),
        }))
    }

    fn address(&self) -> String {
        String::new()
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// A subscription of a [`MemoryBroker`]; it does not keep the broker alive.
struct MemorySubscription {
    broker: Weak<Inner>,
    topic: String,
    queue: Option<String>,
    id: u64,
    done: AtomicBool,
}

#[async_trait]
impl Subscription for MemorySubscription {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    async fn unsubscribe(&self) -> Result<()> {
        if self.done.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(inner) = self.broker.upgrade() else {
            return Ok(());
        };
        let sub = inner.remove(&self.topic, self.queue.as_deref(), self.id);
        let timeout = inner.opts.stop_timeout;
        drop(inner);
        if let Some(sub) = sub {
            stop(sub, timeout).await;
        }
        Ok(())
    }
}
