//! [`MemoryRegistry`]: an in-process registry with TTLs and watches.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{
    Action, Error, MetadataMap, Node, RegisterOptions, Registry, Result, ServiceRecord, WatchEvent,
    WatchOptions, Watcher,
};

/// Default number of events a watcher may fall behind before it lags.
pub const DEFAULT_WATCH_BUFFER: usize = 1024;

/// An in-process registry.
///
/// Clones share one registry. It behaves like go-micro's etcd registry rather than
/// its memory registry where the two differ:
///
/// * events are per node: `create` when a node appears, `update` when a node or its
///   version's endpoints or metadata change, nothing when a registration only renews
///   the TTL, `delete` when a node is deregistered **or expires** (go-micro's memory
///   registry prunes silently);
/// * a version without nodes disappears, so a name whose nodes all expired is
///   [`Error::NotFound`];
/// * re-registering a version replaces its endpoints and metadata (last writer wins).
///
/// Expiry is exact: a background task owned by the registry sleeps until the next
/// deadline (it starts with the first registration that has a TTL and stops when the
/// last clone is dropped or on [`shutdown`](MemoryRegistry::shutdown)); reads also skip
/// expired nodes, so results are right even between two runs of that task.
///
/// **Watch policy.** Events go to every watcher through a bounded buffer
/// ([`DEFAULT_WATCH_BUFFER`] by default). A slow watcher never stalls the registry:
/// when it falls more than the buffer behind, the oldest events are dropped for it and
/// its next call to [`Watcher::next`] returns [`Error::Lagged`] with the number lost;
/// it then continues with the oldest event still buffered. A consumer that lagged
/// should re-read the services it tracks (the registry cache does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro_registry::Result<()> {
/// use micro_registry::{MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
///
/// let registry = MemoryRegistry::new();
/// let svc = ServiceRecord {
///     name: "helloworld".into(),
///     version: "latest".into(),
///     nodes: vec![Node::new("helloworld-1", "127.0.0.1:8080")],
///     ..Default::default()
/// };
/// registry.register(&svc, &RegisterOptions::default()).await?;
/// assert_eq!(registry.get_service("helloworld").await?[0].nodes.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<WatchEvent>>,
    /// Wakes the expiry task when an earlier deadline appears.
    wake: Arc<Notify>,
    pruner: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// name -> version -> record
    services: HashMap<String, BTreeMap<String, Record>>,
}

struct Record {
    metadata: MetadataMap,
    endpoints: Vec<crate::Endpoint>,
    nodes: BTreeMap<String, Entry>,
}

struct Entry {
    node: Node,
    expires: Option<Instant>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRegistry").finish_non_exhaustive()
    }
}

impl MemoryRegistry {
    /// An empty registry whose watchers may fall [`DEFAULT_WATCH_BUFFER`] events behind.
    pub fn new() -> Self {
        Self::with_watch_buffer(DEFAULT_WATCH_BUFFER)
    }

    /// An empty registry whose watchers may fall `buffer` events behind before they
    /// lag (at least 1).
    pub fn with_watch_buffer(buffer: usize) -> Self {
        let (events, _) = broadcast::channel(buffer.max(1));
        MemoryRegistry {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                events,
                wake: Arc::new(Notify::new()),
                pruner: Mutex::new(None),
            }),
        }
    }

    /// Stops the expiry task and waits for it. Registrations stay readable, but
    /// TTLs are then only applied on reads and no expiry events are sent until the
    /// next registration with a TTL starts the task again.
    pub async fn shutdown(&self) {
        let handle = self.inner.pruner.lock().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }

    fn publish(&self, action: Action, service: ServiceRecord) {
        // No receivers is fine: nobody is watching.
        let _ = self
            .inner
            .events
            .send(Arc::new(WatchEvent { action, service }));
    }

    /// Starts the expiry task if it is not running and a runtime is available.
    fn ensure_pruner(&self) {
        let mut slot = self.inner.pruner.lock();
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("memory registry: no tokio runtime, expiry is applied on reads only");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        *slot = Some(rt.spawn(prune_loop(weak, wake)));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.pruner.get_mut().take() {
            h.abort();
        }
    }
}

async fn prune_loop(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = weak.upgrade() else { return };
            let registry = MemoryRegistry { inner };
            let events = expire(&registry, Instant::now());
            let next = events.1;
            for svc in events.0 {
                tracing::debug!(service = %svc.name, node = ?svc.nodes.first().map(|n| &n.id), "memory registry: node expired");
                registry.publish(Action::Delete, svc);
            }
            next
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// Removes expired nodes; returns one single-node service per expired node and the
/// next deadline.
fn expire(registry: &MemoryRegistry, now: Instant) -> (Vec<ServiceRecord>, Option<Instant>) {
    let mut out = Vec::new();
    let mut next: Option<Instant> = None;
    let mut state = registry.inner.state.lock();
    state.services.retain(|name, versions| {
        versions.retain(|version, rec| {
            let mut gone = Vec::new();
            rec.nodes.retain(|_, e| match e.expires {
                Some(t) if t <= now => {
                    gone.push(e.node.clone());
                    false
                }
                Some(t) => {
                    next = Some(next.map_or(t, |n| n.min(t)));
                    true
                }
                None => true,
            });
            for node in gone {
                out.push(rec.service(name, version, vec![node]));
            }
            !rec.nodes.is_empty()
        });
        !versions.is_empty()
    });
    (out, next)
}

impl Record {
    fn service(&self, name: &str, version: &str, nodes: Vec<Node>) -> ServiceRecord {
        ServiceRecord {
            name: name.to_owned(),
            version: version.to_owned(),
            metadata: self.metadata.clone(),
            endpoints: self.endpoints.clone(),
            nodes,
        }
    }

    fn live_nodes(&self, now: Instant) -> Vec<Node> {
        self.nodes
            .values()
            .filter(|e| e.expires.is_none_or(|t| t > now))
            .map(|e| e.node.clone())
            .collect()
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn register(&self, service: &ServiceRecord, opts: &RegisterOptions) -> Result<()> {
        if service.nodes.is_empty() {
            return Err(Error::Invalid(format!(
                "service {:?} has no nodes",
                service.name
            )));
        }
        if service.name.is_empty() {
            return Err(Error::Invalid("service has no name".into()));
        }
        let now = Instant::now();
        // a TTL too long for the clock never expires
        let expires = opts.ttl.and_then(|ttl| now.checked_add(ttl));
        let mut events = Vec::new();
        {
            let mut state = self.inner.state.lock();
            let versions = state.services.entry(service.name.clone()).or_default();
            let rec = versions
                .entry(service.version.clone())
                .or_insert_with(|| Record {
                    metadata: service.metadata.clone(),
                    endpoints: service.endpoints.clone(),
                    nodes: BTreeMap::new(),
                });
            let shape_changed =
                rec.metadata != service.metadata || rec.endpoints != service.endpoints;
            if shape_changed {
                rec.metadata = service.metadata.clone();
                rec.endpoints = service.endpoints.clone();
            }
            for node in &service.nodes {
                let action = match rec.nodes.get_mut(&node.id) {
                    // An entry that already expired but was not pruned yet counts as new.
                    Some(e) if e.expires.is_some_and(|t| t <= now) => {
                        e.node = node.clone();
                        e.expires = expires;
                        Some(Action::Create)
                    }
                    Some(e) => {
                        e.expires = expires;
                        if e.node != *node {
                            e.node = node.clone();
                            Some(Action::Update)
                        } else if shape_changed {
                            Some(Action::Update)
                        } else {
                            None
                        }
                    }
                    None => {
                        rec.nodes.insert(
                            node.id.clone(),
                            Entry {
                                node: node.clone(),
                                expires,
                            },
                        );
                        Some(Action::Create)
                    }
                };
                if let Some(action) = action {
                    events.push((
                        action,
                        rec.service(&service.name, &service.version, vec![node.clone()]),
                    ));
                }
            }
        }
        for (action, svc) in events {
            self.publish(action, svc);
        }
        if opts.ttl.is_some() {
            self.ensure_pruner();
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    async fn deregister(&self, service: &ServiceRecord) -> Result<()> {
        let mut events = Vec::new();
        {
            let mut state = self.inner.state.lock();
            let Some(versions) = state.services.get_mut(&service.name) else {
                return Ok(());
            };
            if let Some(rec) = versions.get_mut(&service.version) {
                for node in &service.nodes {
                    if let Some(e) = rec.nodes.remove(&node.id) {
                        events.push(rec.service(&service.name, &service.version, vec![e.node]));
                    }
                }
                if rec.nodes.is_empty() {
                    versions.remove(&service.version);
                }
            }
            if versions.is_empty() {
                state.services.remove(&service.name);
            }
        }
        for svc in events {
            self.publish(Action::Delete, svc);
        }
        Ok(())
    }

    async fn get_service(&self, name: &str) -> Result<Vec<ServiceRecord>> {
        let now = Instant::now();
        let state = self.inner.state.lock();
        let versions = state.services.get(name).ok_or(Error::NotFound)?;
        let out: Vec<ServiceRecord> = versions
            .iter()
            .filter_map(|(version, rec)| {
                let nodes = rec.live_nodes(now);
                (!nodes.is_empty()).then(|| rec.service(name, version, nodes))
            })
            .collect();
        if out.is_empty() {
            Err(Error::NotFound)
        } else {
            Ok(out)
        }
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        let now = Instant::now();
        let state = self.inner.state.lock();
        let mut out: Vec<ServiceRecord> = state
            .services
            .iter()
            .flat_map(|(name, versions)| {
                versions.iter().filter_map(move |(version, rec)| {
                    let nodes = rec.live_nodes(now);
                    (!nodes.is_empty()).then(|| rec.service(name, version, nodes))
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(out)
    }

    async fn watch(&self, opts: &WatchOptions) -> Result<Box<dyn Watcher>> {
        Ok(Box::new(MemoryWatcher {
            rx: Some(self.inner.events.subscribe()),
            service: opts.service.clone(),
        }))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// A watcher on a [`MemoryRegistry`].
struct MemoryWatcher {
    rx: Option<broadcast::Receiver<Arc<WatchEvent>>>,
    service: Option<String>,
}

#[async_trait]
impl Watcher for MemoryWatcher {
    async fn next(&mut self) -> Result<WatchEvent> {
        let rx = self.rx.as_mut().ok_or(Error::WatcherStopped)?;
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if self.service.as_ref().is_none_or(|s| *s == ev.service.name) {
                        return Ok((*ev).clone());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Err(Error::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = None;
                    return Err(Error::WatcherStopped);
                }
            }
        }
    }

    fn stop(&mut self) {
        self.rx = None;
    }
}
