//! Node selection for micro.
//!
//! A [`Selector`] turns a service name into the nodes a call may use. The default,
//! [`RegistrySelector`], reads nodes through a registry [`Cache`] (a warm pick makes no
//! registry call and copies nothing), keeps the nodes that pass the call's
//! [filters](filter), and orders them by a [`Strategy`]: [`Random`] (the default) or
//! [`RoundRobin`]. Nodes of every version are candidates.
//!
//! Unlike go-micro, whose `Mark` does nothing, the client's reports count: a node
//! [marked](Selector::mark) as failed at the transport level is tried last for a
//! while (1 s after one failure, doubling up to 30 s by default), and a call can name
//! nodes to [avoid](SelectOptions::avoid) altogether, which is how a retry goes to a
//! different node. Only transport failures should be reported: an application error
//! says nothing about a node's health.
//!
//! Errors keep "the service is unknown" ([`Error::NotFound`]) apart from "the service
//! has no node this call can use" ([`Error::NoneAvailable`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use micro_registry::{MemoryRegistry, Node, RegisterOptions, Registry, ServiceRecord};
//! use micro_selector::{RegistrySelector, SelectOptions, Selector};
//!
//! let registry = Arc::new(MemoryRegistry::new());
//! let svc = ServiceRecord {
//!     name: "greeter".into(),
//!     version: "latest".into(),
//!     nodes: vec![Node::new("greeter-1", "127.0.0.1:9000")],
//!     ..Default::default()
//! };
//! registry.register(&svc, &RegisterOptions::default()).await?;
//!
//! let selector = RegistrySelector::new(registry);
//! let mut next = selector.select("greeter", &SelectOptions::new()).await?;
//! assert_eq!(next.next()?.address, "127.0.0.1:9000");
//! selector.stop().await;
//! # Ok(()) }
//! ```

pub mod filter;
mod health;
mod next;
mod strategy;

use std::sync::Arc;

use async_trait::async_trait;
use micro_registry::{Cache, CacheOptions, Registry};

pub use filter::Filter;
pub use health::Penalty;
pub use micro_registry::{NodeRef, Snapshot};
pub use next::Candidates;
pub use strategy::{Random, RoundRobin, Strategy};

use health::Health;

/// Why a selection failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry does not know the service (go-micro's `not found`).
    #[error("not found")]
    NotFound,
    /// The service is known but no node passed the filters, or every node was
    /// avoided or already tried (go-micro's `none available`).
    #[error("none available")]
    NoneAvailable,
    /// The registry failed and no cached nodes could stand in.
    #[error("registry: {0}")]
    Registry(#[source] micro_registry::Error),
}

/// What a call learnt about a node at the transport level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A message went through (whatever the application answered).
    Success,
    /// Connecting, sending or receiving failed.
    Failure,
}

/// Options of one selection.
#[derive(Clone, Debug, Default)]
pub struct SelectOptions {
    filters: Vec<Filter>,
    avoid: Vec<String>,
}

impl SelectOptions {
    /// No filters, nothing avoided.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter; a node must pass every filter.
    pub fn filter(mut self, f: Filter) -> Self {
        self.filters.push(f);
        self
    }

    /// Excludes the node with this id (for example one that just failed).
    pub fn avoid(mut self, node_id: impl Into<String>) -> Self {
        self.avoid.push(node_id.into());
        self
    }

    /// The filters.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// The ids of the nodes to avoid.
    pub fn avoided(&self) -> &[String] {
        &self.avoid
    }
}

/// Chooses nodes for calls. Object-safe; shared as `Arc<dyn Selector>`.
#[async_trait]
pub trait Selector: Send + Sync + 'static {
    /// The candidate nodes of `service` for one call.
    async fn select(&self, service: &str, opts: &SelectOptions) -> Result<Candidates, Error>;

    /// Reports what happened at the transport level when a call used the node with
    /// id `node_id`.
    fn mark(&self, node_id: &str, outcome: Outcome);

    /// Forgets the cached nodes of `service` (the next selection reads the registry)
    /// and every health report the selector holds.
    fn reset(&self, service: &str);

    /// Short name (`registry` for [`RegistrySelector`], as in go-micro).
    fn name(&self) -> &'static str;
}

/// The default selector: registry [`Cache`] + [`Strategy`] + filters + health.
#[derive(Clone)]
pub struct RegistrySelector {
    cache: Cache,
    strategy: Arc<dyn Strategy>,
    health: Arc<Health>,
}

impl std::fmt::Debug for RegistrySelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySelector")
            .field("strategy", &self.strategy.name())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl RegistrySelector {
    /// A selector over `registry` with a new cache (default options) and the
    /// [`Random`] strategy.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::builder(registry).build()
    }

    /// A builder for the other options.
    pub fn builder(registry: Arc<dyn Registry>) -> RegistrySelectorBuilder {
        RegistrySelectorBuilder {
            registry,
            cache: None,
            cache_options: CacheOptions::default(),
            strategy: Arc::new(Random),
            penalty: Penalty::default(),
        }
    }

    /// The cache the selector reads through.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Stops the cache's watch tasks and waits for them.
    pub async fn stop(&self) {
        self.cache.stop().await;
    }
}

/// Builds a [`RegistrySelector`].
pub struct RegistrySelectorBuilder {
    registry: Arc<dyn Registry>,
    cache: Option<Cache>,
    cache_options: CacheOptions,
    strategy: Arc<dyn Strategy>,
    penalty: Penalty,
}

impl RegistrySelectorBuilder {
    /// The strategy. Default: [`Random`].
    pub fn strategy(mut self, s: impl Strategy) -> Self {
        self.strategy = Arc::new(s);
        self
    }

    /// Options of the selector's own cache. Default: [`CacheOptions::default`].
    pub fn cache_options(mut self, opts: CacheOptions) -> Self {
        self.cache_options = opts;
        self
    }

    /// Reads through an existing cache instead of making one (its registry is used,
    /// not the builder's). Default: a new cache.
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// How long failed nodes are tried last. Default: [`Penalty::default`].
    pub fn penalty(mut self, p: Penalty) -> Self {
        self.penalty = p;
        self
    }

    /// The selector.
    pub fn build(self) -> RegistrySelector {
        RegistrySelector {
            cache: self
                .cache
                .unwrap_or_else(|| Cache::with_options(self.registry, self.cache_options)),
            strategy: self.strategy,
            health: Arc::new(Health::new(self.penalty)),
        }
    }
}

#[async_trait]
impl Selector for RegistrySelector {
    async fn select(&self, service: &str, opts: &SelectOptions) -> Result<Candidates, Error> {
        let snapshot = self.cache.get(service).await.map_err(|e| match e {
            micro_registry::Error::NotFound => Error::NotFound,
            e => Error::Registry(e),
        })?;
        let candidates = if opts.filters.is_empty() && opts.avoid.is_empty() {
            None
        } else {
            Some(
                snapshot
                    .nodes()
                    .enumerate()
                    .filter(|(_, (svc, node))| {
                        !opts.avoid.contains(&node.id)
                            && opts.filters.iter().all(|f| f.matches(svc, node))
                    })
                    .map(|(i, _)| i as u32)
                    .collect::<Vec<u32>>(),
            )
        };
        let count = candidates.as_ref().map_or(snapshot.node_count(), Vec::len);
        if count == 0 {
            return Err(Error::NoneAvailable);
        }
        let start = self.strategy.start(service, count);
        Ok(Candidates::new(snapshot, candidates, start, &self.health))
    }

    fn mark(&self, node_id: &str, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.health.success(node_id),
            Outcome::Failure => self.health.failure(node_id),
        }
    }

    fn reset(&self, service: &str) {
        self.cache.invalidate(service);
        self.health.clear();
    }

    fn name(&self) -> &'static str {
        "registry"
    }
}
