//! The registry [`Cache`]: fast, resilient lookups in front of any [`Registry`].

mod entry;
mod snapshot;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Error, RegisterOptions, Registry, Result, ServiceRecord, WatchOptions, Watcher};
use entry::Entry;

pub use snapshot::{NodeRef, Snapshot};

/// Options of a [`Cache`].
#[derive(Clone, Debug)]
pub struct CacheOptions {
    ttl: Duration,
    min_retry_interval: Duration,
    not_found_ttl: Duration,
    empty_grace: Option<Duration>,
    watch: bool,
    idle_timeout: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            ttl: Duration::from_secs(60),
            min_retry_interval: Duration::from_secs(5),
            not_found_ttl: Duration::from_secs(1),
            empty_grace: None,
            watch: true,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl CacheOptions {
    /// How long a node set read from the registry is served without asking again.
    /// Watch events renew it. Once it ran out, the next lookup still gets the node
    /// set at once while the registry is read in the background. Default: 60 s
    /// (go-micro's `DefaultTTL`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// After a failed lookup, how long the cache waits before asking the registry
    /// again; meanwhile callers get the stale node set, or the error when there is
    /// none. Default: 5 s (go-micro v5's `DefaultMinimumRetryInterval`).
    pub fn min_retry_interval(mut self, d: Duration) -> Self {
        self.min_retry_interval = d;
        self
    }

    /// How long a "not found" answer is remembered before the registry is asked
    /// again. Default: 1 s.
    pub fn not_found_ttl(mut self, d: Duration) -> Self {
        self.not_found_ttl = d;
        self
    }

    /// How long the last good node set keeps being served after the registry starts
    /// reporting no nodes for the service (a registry restarted with its data wiped,
    /// a watch that re-listed an empty prefix, the last node deregistering). Once it
    /// has reported none for this long, lookups fail with "not found". Default: the
    /// TTL.
    pub fn empty_grace(mut self, d: Duration) -> Self {
        self.empty_grace = Some(d);
        self
    }

    /// Whether to watch each service the cache holds and apply the events as they
    /// come. Default: true. Without watching, changes are seen when the TTL runs out.
    pub fn watch(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }

    /// How long an entry is kept after the last lookup of its name. A name nobody
    /// looked up for this long is forgotten and its watch stopped, so a cache that
    /// saw many names over time holds (and watches) only those still in use; the
    /// next lookup of a forgotten name asks the registry again, as the first one
    /// did. Entries are checked every half of this (at least every minute).
    /// Default: 10 min.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How often the idle sweep runs.
    fn sweep_every(&self) -> Duration {
        (self.idle_timeout / 2).clamp(Duration::from_millis(1), MAX_SWEEP_INTERVAL)
    }

    fn grace(&self) -> Duration {
        self.empty_grace.unwrap_or(self.ttl)
    }
}

/// [`CacheOptions::idle_timeout`]'s default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The idle sweep runs at least this often.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

type Flight = Shared<BoxFuture<'static, Result<Snapshot>>>;

/// A caching layer over a [`Registry`], used by selectors and the HTTP broker.
///
/// Only [`get_service`](Registry::get_service) is cached (through [`Cache::get`]);
/// the other methods pass through. The contract:
///
/// * **Fast hits.** A fresh entry is served from memory as a shared [`Snapshot`]:
///   no registry call, no copy.
/// * **Single flight.** Concurrent misses for one name share one registry call and
///   its result (or error).
/// * **Watch-driven.** After the first successful lookup of a name the cache watches
///   it and applies create, update and delete events as they arrive (go-micro's merge
///   rules), so changes show up without waiting for the TTL. Lost events (a lagging
///   or failed watch) make the next lookup ask the registry again.
/// * **Stale while refreshing.** When an entry's TTL ran out, the next lookup still
///   gets its nodes at once, and one registry read in the background refreshes it:
///   a registry that is slow, or hangs as in a network partition, never holds a
///   caller up. Callers wait for the registry only when the cache has nothing to
///   serve, or when events may have been lost ([`Cache::invalidate`], a lagging
///   watch).
/// * **Stale on error.** When the registry fails, the last node set is served and the
///   registry is asked again at most every `min_retry_interval`.
/// * **No transient empties.** When the registry starts reporting no nodes for a
///   service that had some (by lookup or by events), the last good set is still
///   served for `empty_grace`; a non-empty answer ends the grace at once.
/// * **Fast not-found.** A name the registry does not know fails at once with
///   [`Error::NotFound`], and that answer is remembered for `not_found_ttl`.
///
/// The watch and background refresh tasks belong to the cache: [`Cache::stop`] ends
/// them and waits, and dropping the last clone aborts them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> micro_registry::Result<()> {
/// use std::sync::Arc;
/// use micro_registry::{Cache, MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
///
/// let registry = Arc::new(MemoryRegistry::new());
/// let svc = ServiceRecord {
///     name: "greeter".into(),
///     version: "1.0".into(),
///     nodes: vec![Node::new("greeter-1", "127.0.0.1:9000")],
///     ..Default::default()
/// };
/// registry.register(&svc, &RegisterOptions::default()).await?;
///
/// let cache = Cache::new(registry);
/// let snapshot = cache.get("greeter").await?;
/// assert_eq!(snapshot.node_count(), 1);
/// assert!(cache.get("nobody").await.unwrap_err().is_not_found());
/// cache.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    registry: Arc<dyn Registry>,
    opts: CacheOptions,
    entries: RwLock<HashMap<String, Entry>>,
    flights: Mutex<HashMap<String, Flight>>,
    watchers: Mutex<Watchers>,
    /// The clock entries count their last use from.
    epoch: Instant,
}

#[derive(Default)]
struct Watchers {
    stopped: bool,
    tasks: HashMap<String, JoinHandle<()>>,
    /// Background reads of expired entries, at most one per name.
    refreshes: HashMap<String, JoinHandle<()>>,
    /// Forgets idle entries; started with the first entry.
    sweeper: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("registry", &self.inner.registry.name())
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache over `registry` with default options.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::with_options(registry, CacheOptions::default())
    }

    /// A cache over `registry` with the given options.
    pub fn with_options(registry: Arc<dyn Registry>, opts: CacheOptions) -> Self {
        Cache {
            inner: Arc::new(Inner {
                registry,
                opts,
                entries: RwLock::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
                watchers: Mutex::new(Watchers::default()),
                epoch: Instant::now(),
            }),
        }
    }

    /// The registry behind the cache.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The nodes of every version of `name`.
    ///
    /// Cancelling the call does not cancel a lookup other callers wait on.
    pub async fn get(&self, name: &str) -> Result<Snapshot> {
        let now = Instant::now();
        {
            let entries = self.inner.entries.read();
            if let Some(e) = entries.get(name) {
                e.touch(self.inner.clock(now));
                if now < e.expires {
                    return e.serve(now, self.inner.opts.grace());
                }
                // Expired, with nodes to serve and no sign of lost events: serve
                // them and read the registry in the background.
                if !e.needs_lookup {
                    if let Ok(stale) = e.serve(now, self.inner.opts.grace()) {
                        drop(entries);
                        if self.inner.refresh_in_background(name) {
                            return Ok(stale);
                        }
                    }
                }
            }
        }
        self.fetch_shared(name).await
    }

    /// Forgets what the cache knows about `name` except its last good node set, so
    /// that the next lookup asks the registry.
    pub fn invalidate(&self, name: &str) {
        self.inner.invalidate(name);
    }

    /// Stops every watch, background refresh and the idle sweep, and waits for
    /// them. Lookups keep working afterwards, without watches (entries then live
    /// for the TTL), without background refreshes (an expired entry is read before
    /// it is served) and without forgetting idle names.
    pub async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut w = self.inner.watchers.lock();
            w.stopped = true;
            let refreshes: Vec<_> = w.refreshes.drain().map(|(_, t)| t).collect();
            let sweeper = w.sweeper.take();
            w.tasks
                .drain()
                .map(|(_, t)| t)
                .chain(refreshes)
                .chain(sweeper)
                .collect()
        };
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    /// Number of services being watched (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.inner.watchers.lock().tasks.len()
    }

    /// Number of names the cache holds an entry for (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.entries.read().len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn fetch_shared(&self, name: &str) -> Result<Snapshot> {
        let flight = {
            let mut flights = self.inner.flights.lock();
            match flights.get(name) {
                Some(f) => f.clone(),
                None => {
                    let inner = self.inner.clone();
                    let key = name.to_owned();
                    let f = async move { inner.fetch(key).await }.boxed().shared();
                    flights.insert(name.to_owned(), f.clone());
                    f
                }
            }
        };
        let res = flight.await;
        if let Some(e) = self.inner.entries.read().get(name) {
            e.touch(self.inner.clock(Instant::now()));
        }
        res
    }
}

impl Inner {
    /// One registry lookup for `name`, applied to the entry; removes its own flight.
    async fn fetch(self: Arc<Self>, name: String) -> Result<Snapshot> {
        // A lookup that started while a throttle window was open serves from the
        // entry without asking the registry.
        let now = Instant::now();
        {
            let entries = self.entries.read();
            if let Some(e) = entries.get(&name) {
                if now < e.expires {
                    let res = e.serve(now, self.opts.grace());
                    drop(entries);
                    self.flights.lock().remove(&name);
                    return res;
                }
            }
        }
        let res = self.registry.get_service(&name).await;
        let (out, start_watch) = self.apply_lookup(&name, res, true);
        self.flights.lock().remove(&name);
        self.start_sweeper();
        if start_watch {
            self.clone().start_watch(&name);
        }
        out.unwrap_or(Err(Error::NotFound))
    }

    /// Milliseconds from the cache's epoch to `now`: the clock of `Entry::touch`.
    fn clock(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Applies a lookup's result to the entry of `name` (made first when `create`;
    /// else a forgotten name stays forgotten: `None`); returns what a caller gets
    /// now, and whether the name should now be watched.
    fn apply_lookup(
        &self,
        name: &str,
        res: Result<Vec<ServiceRecord>>,
        create: bool,
    ) -> (Option<Result<Snapshot>>, bool) {
        let now = Instant::now();
        let mut entries = self.entries.write();
        let e = match entries.get_mut(name) {
            Some(e) => e,
            None if create => entries
                .entry(name.to_owned())
                .or_insert_with(|| Entry::new(now, self.clock(now))),
            None => return (None, false),
        };
        let start_watch = e.apply_lookup(res, now, &self.opts, name);
        (Some(e.serve(now, self.opts.grace())), start_watch)
    }

    /// Starts the idle sweep unless it runs (or the cache was stopped, or there is
    /// no runtime: then nothing is ever forgotten).
    fn start_sweeper(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut w = self.watchers.lock();
        if w.stopped || w.sweeper.is_some() {
            return;
        }
        let (cache, every) = (Arc::downgrade(self), self.opts.sweep_every());
        w.sweeper = Some(rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = cache.upgrade() else { return };
                let stopped = inner.forget_idle();
                drop(inner);
                for t in stopped {
                    let _ = t.await;
                }
            }
        }));
    }

    /// Drops the entries not looked up for the idle timeout and aborts their watch
    /// and refresh tasks; returns those tasks, for the sweep to wait on.
    fn forget_idle(&self) -> Vec<JoinHandle<()>> {
        let now = self.clock(Instant::now());
        let idle = self.opts.idle_timeout.as_millis().min(u128::from(u64::MAX)) as u64;
        let mut gone = Vec::new();
        self.entries.write().retain(|name, e| {
            let keep = now.saturating_sub(e.last_used()) < idle;
            if !keep {
                gone.push(name.clone());
            }
            keep
        });
        if gone.is_empty() {
            return Vec::new();
        }
        tracing::debug!(
            count = gone.len(),
            "registry cache: forgetting idle services"
        );
        let mut w = self.watchers.lock();
        let tasks: Vec<JoinHandle<()>> = gone
            .iter()
            .flat_map(|name| [w.tasks.remove(name), w.refreshes.remove(name)])
            .flatten()
            .collect();
        for t in &tasks {
            t.abort();
        }
        tasks
    }

    /// Reads `name` from the registry in a task of the cache's, unless one already
    /// does. Returns false when no task can be started (no runtime, or the cache
    /// was stopped): the caller then reads the registry itself.
    fn refresh_in_background(self: &Arc<Self>, name: &str) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut w = self.watchers.lock();
        if w.stopped {
            return false;
        }
        if w.refreshes.get(name).is_some_and(|t| !t.is_finished()) {
            return true;
        }
        w.refreshes.retain(|_, t| !t.is_finished());
        // The task holds the cache weakly, so it never keeps a dropped cache alive.
        let (cache, registry, key) = (Arc::downgrade(self), self.registry.clone(), name.to_owned());
        let task = rt.spawn(async move {
            let res = registry.get_service(&key).await;
            let Some(inner) = cache.upgrade() else { return };
            let (_, start_watch) = inner.apply_lookup(&key, res, false);
            if start_watch {
                inner.start_watch(&key);
            }
        });
        w.refreshes.insert(name.to_owned(), task);
        true
    }

    fn invalidate(&self, name: &str) {
        if let Some(e) = self.entries.write().get_mut(name) {
            e.invalidate(Instant::now());
        }
    }

    fn start_watch(self: Arc<Self>, name: &str) {
        if !self.opts.watch {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut w = self.watchers.lock();
        if w.stopped || w.tasks.get(name).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let task = rt.spawn(watch::run(
            Arc::downgrade(&self),
            self.registry.clone(),
            name.to_owned(),
        ));
        w.tasks.insert(name.to_owned(), task);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let w = self.watchers.get_mut();
        for (_, t) in w.tasks.drain().chain(w.refreshes.drain()) {
            t.abort();
        }
        if let Some(t) = w.sweeper.take() {
            t.abort();
        }
    }
}

#[async_trait]
impl Registry for Cache {
    async fn register(&self, service: &ServiceRecord, opts: &RegisterOptions) -> Result<()> {
        self.inner.registry.register(service, opts).await
    }

    async fn deregister(&self, service: &ServiceRecord) -> Result<()> {
        self.inner.registry.deregister(service).await
    }

    async fn get_service(&self, name: &str) -> Result<Vec<ServiceRecord>> {
        Ok(self.get(name).await?.to_vec())
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        self.inner.registry.list_services().await
    }

    async fn watch(&self, opts: &WatchOptions) -> Result<Box<dyn Watcher>> {
        self.inner.registry.watch(opts).await
    }

    fn name(&self) -> &'static str {
        self.inner.registry.name()
    }
}

/// Errors the cache reports while it serves stale data are logged, not returned.
pub(crate) fn log_stale(name: &str, err: &Error) {
    tracing::warn!(service = name, error = %err, "registry lookup failed; serving cached nodes");
}
