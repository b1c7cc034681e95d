//! [`HttpBroker`]: go-micro's HTTP broker on the wire.

mod addr;
mod broker_impl;
mod client;
mod conn;
mod options;
mod publish;
mod retry;
mod server;
mod stats;
mod subs;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use micro_registry::{Cache, Node, RegisterOptions, ServiceRecord};
use parking_lot::RwLock;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Broker, Error, Result};
use client::HttpClient;
use retry::RetryQueue;
use stats::Stats;
use subs::{Removed, Table};

pub use options::{DEFAULT_ADDRESS, ENV_BROKER_ADDRESS, HttpBrokerOptions};
pub use stats::HttpBrokerStats;
pub use subs::{BROADCAST_VERSION, SERVICE_NAME};

/// go-micro's HTTP broker: subscriptions are registered in a registry as
/// `micro.http.broker` and events are POSTed to the subscribers, so Go and Rust
/// publishers and subscribers mix freely.
///
/// # Subscribing
///
/// Each subscription is registered (TTL 60 s, renewed every 30 s by a task of the
/// broker) as one node of the service `micro.http.broker`, version = the queue
/// name or `ff.http.broadcast`, node metadata `{"broker":"http","secure":"false",
/// "topic":<topic>}` (`"secure":"true"` when the broker serves TLS), address = the
/// advertised address. Broadcast subscriptions of
/// one broker to one topic share the node `<topic>-<broker id>`; each queue group
/// of a topic gets its own node `<topic>-<uuid>` (go-micro uses one node id for
/// both, so in registries keyed by node id, etcd and Consul, its broadcast and
/// queue records of a topic overwrite each other). A node is deregistered when its
/// last subscription is removed and on [`disconnect`](Broker::disconnect).
///
/// # Receiving
///
/// The broker's server accepts `POST <any path>?id=<node id>` with go-micro's JSON
/// body and runs, before answering, every broadcast subscription of that node, or
/// one subscription (round robin) of a queue node. It answers `200` with an empty
/// body whatever the handlers return (handler errors and panics are logged and
/// counted), `404` when it has no such node for the topic (go-micro answers `200`
/// and drops the event; Go publishers ignore the status either way, ours try
/// another queue member), `405` for other methods, `413` for bodies over
/// [`Limits::max_body_size`](micro_transport::Limits::max_body_size), `500` for unreadable or malformed
/// bodies and a missing `Micro-Topic` header (go-micro's error JSON). Several
/// subscriptions of one queue group in one process therefore share its events,
/// as they do between processes.
///
/// # Publishing and delivery guarantees
///
/// `publish` looks up `micro.http.broker` through a registry [`Cache`] and
/// addresses the event to every broadcast node of the topic and to every queue
/// group of the topic (one *delivery* each). It sends them concurrently and
/// returns when each has been answered, has failed or has timed out
/// ([`delivery_timeout`](HttpBrokerOptions::delivery_timeout)): sequential
/// publishes from one task reach a subscriber in order unless a retry intervenes.
/// A queue group delivery goes to one uniformly random member; if that member
/// fails in transport or answers `404`, the other members are tried in random
/// order before the delivery counts as failed.
///
/// * A delivery *succeeds* when the subscriber answers `2xx` (its handlers have run).
///   Any other status *rejects* it: it is logged and not retried (go-micro ignores
///   the status; our subscribers only answer otherwise for malformed events).
/// * A delivery that *fails in transport* (connect, reset, timeout) goes to the
///   topic's **retry queue** (at most [`retry_queue`](HttpBrokerOptions::retry_queue)
///   deliveries per topic, 64 by default; when full, the oldest is dropped with a
///   warning and counted in `overflowed`). A task of the broker retries it with
///   exponential backoff (200 ms doubling to 10 s, jittered), only to the target that
///   failed: the same broadcast node while it is still registered, or any live
///   member of the queue group. Targets that already got the event never get it
///   again from a retry. A delivery is dropped after
///   [`retry_attempts`](HttpBrokerOptions::retry_attempts) retries (8), when it is
///   older than [`retry_max_age`](HttpBrokerOptions::retry_max_age) (60 s), when its
///   target is no longer registered, or at `disconnect`.
/// * Retried events may arrive after later ones, and an event whose delivery timed
///   out after the subscriber received it may be handled twice: delivery is
///   at-least-once for transport failures within those bounds, otherwise at most
///   once. Nothing is stored on disk; a publisher that stops loses its retry queue.
/// * Publishing to a topic without subscribers fails with
///   [`Error::NoSubscribers`] and **the event is not kept** (go-micro keeps it in
///   an inbox and re-sends it, possibly twice, on later publishes); the caller
///   decides. A registry failure with nothing cached fails with
///   [`Error::Registry`], the event not kept either.
/// * Subscribers with `secure == "true"` (go-micro's `Secure` broker, or ours with
///   TLS) get their events over https, the subscriber's certificate verified as
///   `HttpBrokerOptions::tls` says (by default against the system's roots).
///   Without the `tls` feature their deliveries are dropped with a warning.
///
/// [`stats`](HttpBroker::stats) exposes counters of all of the above.
///
/// # Lifecycle
///
/// [`connect`](Broker::connect) binds the listener and starts the server, the
/// heartbeat and the retry task; it is idempotent. `publish` and `subscribe` on a
/// broker that was never connected connect it first (go-micro's client connects
/// lazily too); after [`disconnect`](Broker::disconnect) they fail with
/// [`Error::NotConnected`] until `connect` is called again. `disconnect`
/// deregisters every subscription first, then stops accepting, lets requests in
/// progress finish for [`shutdown_grace`](HttpBrokerOptions::shutdown_grace),
/// stops every task and waits for them (so a handler must not await `disconnect`
/// of its own broker: it would wait for itself until the grace ends and then be
/// cancelled). Dropping the last clone of a connected
/// broker aborts its tasks without deregistering (the records expire after their
/// TTL), which is what a crash looks like to other brokers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro_broker::Result<()> {
/// use std::sync::Arc;
/// use micro_broker::{Broker, HttpBroker, HttpBrokerOptions, Envelope, SubscribeOptions, handler_fn};
/// use micro_registry::MemoryRegistry;
///
/// let registry = Arc::new(MemoryRegistry::new());
/// let broker = HttpBroker::with_options(HttpBrokerOptions::new().registry(registry));
/// broker.connect().await?;
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// let sub = broker
///     .subscribe("greetings", handler_fn(move |ev| {
///         let tx = tx.clone();
///         async move { tx.send(ev.message.body).ok(); Ok(()) }
///     }), SubscribeOptions::default())
///     .await?;
/// broker.publish("greetings", Envelope::new("hello")).await?;
/// assert_eq!(rx.recv().await.unwrap(), "hello");
/// sub.unsubscribe().await?;
/// broker.disconnect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    life: tokio::sync::Mutex<Life>,
}

/// State shared with the broker's tasks and subscriptions.
pub(crate) struct Core {
    pub(crate) opts: HttpBrokerOptions,
    id: String,
    pub(crate) table: RwLock<Table>,
    /// Serialises subscribe and unsubscribe (registry calls included).
    ops: tokio::sync::Mutex<()>,
    pub(crate) stats: Stats,
    pub(crate) retry: RetryQueue,
    conn: RwLock<Option<Conn>>,
    /// 0 never connected, 1 connected, 2 disconnected.
    phase: std::sync::atomic::AtomicU8,
    next_sub: AtomicU64,
    /// When a failed delivery last made the cache re-read the registry.
    last_suspect: parking_lot::Mutex<Option<tokio::time::Instant>>,
    /// Subscribers by topic in the last snapshot of `micro.http.broker`.
    pub(crate) index: publish::IndexMemo,
}

/// What exists while connected.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) cache: Cache,
    pub(crate) client: HttpClient,
    pub(crate) address: String,
}

#[derive(Default)]
struct Life {
    cancel: Option<CancellationToken>,
    /// The heartbeat's own token (a child of `cancel`): disconnect stops the
    /// heartbeat before anything else, so that a re-registration round in progress
    /// (slow while the registry is down) does not hold the subscriptions' lock
    /// while disconnect waits for it.
    heartbeat: Option<CancellationToken>,
    tasks: Vec<JoinHandle<()>>,
}

/// Shortest pause between two registry re-reads caused by failed deliveries.
const SUSPECT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

const NEVER: u8 = 0;
const CONNECTED: u8 = 1;
const CLOSED: u8 = 2;

impl Default for HttpBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBroker")
            .field("id", &self.inner.core.id)
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl HttpBroker {
    /// A broker with default options (a private memory registry, listening on
    /// `127.0.0.1:0`).
    pub fn new() -> Self {
        Self::with_options(HttpBrokerOptions::default())
    }

    /// A broker with the given options. Nothing happens until it is connected.
    pub fn with_options(opts: HttpBrokerOptions) -> Self {
        HttpBroker {
            inner: Arc::new(Inner {
                core: Arc::new(Core {
                    opts,
                    id: uuid::Uuid::new_v4().to_string(),
                    table: RwLock::new(Table::default()),
                    ops: tokio::sync::Mutex::new(()),
                    stats: Stats::default(),
                    retry: RetryQueue::default(),
                    conn: RwLock::new(None),
                    phase: std::sync::atomic::AtomicU8::new(NEVER),
                    next_sub: AtomicU64::new(1),
                    last_suspect: parking_lot::Mutex::new(None),
                    index: publish::IndexMemo::default(),
                }),
                life: tokio::sync::Mutex::new(Life::default()),
            }),
        }
    }

    /// The broker's id (a UUID), the suffix of its broadcast node ids.
    pub fn id(&self) -> &str {
        &self.inner.core.id
    }

    /// The options.
    pub fn options(&self) -> &HttpBrokerOptions {
        &self.inner.core.opts
    }

    /// The delivery counters.
    pub fn stats(&self) -> HttpBrokerStats {
        self.inner.core.stats.snapshot()
    }

    /// The subscriber nodes of `topic` as this broker's registry cache sees them
    /// now: `(queue, node)`, `queue` being `None` for broadcast subscribers.
    /// Connects the broker if it was never connected.
    pub async fn subscribers(&self, topic: &str) -> Result<Vec<(Option<String>, Node)>> {
        let conn = self.ensure_connected().await?;
        let snapshot = match conn.cache.get(SERVICE_NAME).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(self
            .inner
            .core
            .index
            .get(&snapshot)
            .targets(topic)
            .into_iter()
            .flat_map(|t| match t {
                publish::Target::Node(n) => vec![(None, n.node().clone())],
                publish::Target::Group { name, members } => members
                    .into_iter()
                    .map(|n| (Some(name.clone()), n.node().clone()))
                    .collect(),
            })
            .collect())
    }

    async fn ensure_connected(&self) -> Result<Conn> {
        if let Some(c) = self.inner.core.conn() {
            return Ok(c);
        }
        if self.inner.core.phase.load(Ordering::Acquire) == NEVER {
            self.connect().await?;
        }
        self.inner.core.conn().ok_or(Error::NotConnected)
    }
}

impl Core {
    pub(crate) fn conn(&self) -> Option<Conn> {
        self.conn.read().clone()
    }

    /// Registers every subscription again (the heartbeat).
    async fn heartbeat(self: Arc<Self>, cancel: CancellationToken) {
        let every = self.opts.register_interval;
        if every.is_zero() {
            return;
        }
        // an interval too long for the clock never ticks
        let Some(first) = tokio::time::Instant::now().checked_add(every) else {
            return;
        };
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Holding `ops` keeps an unsubscribe from deregistering a record that
            // this round is about to register again.
            let _ops = tokio::select! {
                _ = cancel.cancelled() => return,
                g = self.ops.lock() => g,
            };
            let services = self.table.read().services();
            for svc in services {
                let reg = self.register(&svc);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = reg => if let Err(e) = r {
                        tracing::warn!(node = ?svc.nodes.first().map(|n| &n.id), error = %e, "http broker: re-registering a subscription failed");
                    },
                }
            }
        }
    }

    async fn register(&self, svc: &ServiceRecord) -> Result<()> {
        let opts = if self.opts.register_ttl.is_zero() {
            RegisterOptions::default()
        } else {
            RegisterOptions::ttl(self.opts.register_ttl)
        };
        self.opts.registry.register(svc, &opts).await?;
        Ok(())
    }

    /// Makes this broker's own lookups see a change of its subscriptions at once.
    fn invalidate(&self) {
        if let Some(c) = self.conn.read().as_ref() {
            c.cache.invalidate(SERVICE_NAME);
        }
    }

    /// A delivery failed or found no subscription: the subscriber may have left
    /// without the cache hearing of it, so the next lookup re-reads the registry
    /// (at most once per [`SUSPECT_INTERVAL`]).
    pub(crate) fn suspect(&self) {
        let now = tokio::time::Instant::now();
        {
            let mut last = self.last_suspect.lock();
            if last.is_some_and(|t| now.saturating_duration_since(t) < SUSPECT_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        self.invalidate();
    }

    async fn unsubscribe(&self, node_id: &str, sub_id: u64) -> Result<()> {
        let _ops = self.ops.lock().await;
        let removed = self.table.write().remove(node_id, sub_id);
        if let Removed::Last(svc) = removed {
            self.opts.registry.deregister(&svc).await?;
            self.invalidate();
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let life = self.life.get_mut();
        if let Some(c) = life.cancel.take() {
            c.cancel();
        }
        for t in life.tasks.drain(..) {
            t.abort();
        }
        // Subscriptions may outlive the broker; the cache's watch tasks and the
        // client's pooled connections must not.
        self.core.conn.write().take();
    }
}
