//! [`EtcdRegistry`]: the [`Registry`] implementation.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use micro_registry::{
    Error, RegisterOptions, Registry, Result, ServiceRecord, WatchOptions, Watcher,
};

use crate::EtcdOptions;
use crate::conn::{Conn, NAME};
use crate::records::{Layout, by_name_version, by_version, decode_for, encode};
use crate::register::{Registrations, lease_seconds};
use crate::watch::{EtcdWatcher, Spec, WatchStats};

/// go-micro's etcd registry, in Rust. See the [crate docs](crate) for the contract.
///
/// Clones share one connection and one set of registrations. Dropping the last
/// clone stops every keepalive task (the records then expire with their leases);
/// watchers live on until they are dropped.
#[derive(Clone)]
pub struct EtcdRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Conn>,
    layout: Layout,
    regs: Registrations,
    watch_stats: Arc<WatchStats>,
    watch_buffer: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.regs.abort_all();
    }
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("conn", &self.inner.conn)
            .field("prefix", &self.inner.layout.all())
            .finish_non_exhaustive()
    }
}

/// Counters of an [`EtcdRegistry`], for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keepalive streams open now (one per lease being renewed: one per TTL in
    /// use, per 8 192 keys).
    pub keepalive_streams: usize,
    /// Keepalive streams opened since the registry was made.
    pub keepalive_streams_opened: u64,
    /// Leases granted since the registry was made.
    pub leases_granted: u64,
    /// Key checks (`LeaseTimeToLive` with keys) made by `register` calls of
    /// unchanged records since the registry was made.
    pub key_checks: u64,
    /// Times a watcher of this registry re-listed its prefix after an
    /// interruption (stream error, reconnect, compaction).
    pub watch_resyncs: u64,
}

impl EtcdRegistry {
    /// A registry with these options; see [`EtcdOptions::build`].
    pub fn new(opts: EtcdOptions) -> Result<Self> {
        let conn = Arc::new(Conn::new(&opts)?);
        Ok(EtcdRegistry {
            inner: Arc::new(Inner {
                conn,
                layout: Layout::new(&opts.prefix),
                regs: Registrations::default(),
                watch_stats: Arc::new(WatchStats::default()),
                watch_buffer: opts.watch_buffer,
            }),
        })
    }

    /// Options to build a registry from.
    pub fn builder() -> EtcdOptions {
        EtcdOptions::new()
    }

    /// A registry configured from the environment ([`EtcdOptions::from_env`]).
    pub fn from_env() -> Result<Self> {
        EtcdOptions::from_env().build()
    }

    /// The counters: keepalive streams, leases granted, watch re-lists.
    pub fn stats(&self) -> Stats {
        let r = &self.inner.regs.stats;
        Stats {
            keepalive_streams: r.active_streams.load(Ordering::Relaxed),
            keepalive_streams_opened: r.opened_streams.load(Ordering::Relaxed),
            leases_granted: r.regrants.load(Ordering::Relaxed),
            key_checks: r.key_checks.load(Ordering::Relaxed),
            watch_resyncs: self.inner.watch_stats.resyncs.load(Ordering::Relaxed),
        }
    }

    /// Stops every keepalive task and waits for them, without deregistering: the
    /// records expire when their leases run out. A later `register` starts
    /// renewing again.
    pub async fn shutdown(&self) {
        self.inner.regs.shutdown().await;
    }

    fn node_keys(&self, service: &ServiceRecord) -> Result<Vec<String>> {
        if service.nodes.is_empty() {
            return Err(Error::Invalid(format!(
                "service {:?} has no nodes",
                service.name
            )));
        }
        service
            .nodes
            .iter()
            .map(|n| self.inner.layout.node(&service.name, &n.id))
            .collect()
    }
}

#[async_trait]
impl Registry for EtcdRegistry {
    /// Writes one record per node (go-micro's layout) on a lease of the TTL, or
    /// checks with one read that the records are still there and unchanged. Every
    /// node is attempted; the first error is returned.
    async fn register(&self, service: &ServiceRecord, opts: &RegisterOptions) -> Result<()> {
        let keys = self.node_keys(service)?;
        let ttl = lease_seconds(opts.ttl);
        let mut first_err = None;
        for (i, key) in keys.iter().enumerate() {
            let value = encode(service, i)?;
            let res = self
                .inner
                .regs
                .register(&self.inner.conn, key, value, ttl)
                .await;
            if let Err(e) = res {
                tracing::debug!(key = %key, error = %e, "etcd registry: register failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Deletes the nodes' records, stops renewing their leases and revokes them.
    /// Local state is dropped even when etcd cannot be reached, so the records
    /// then expire with their leases.
    async fn deregister(&self, service: &ServiceRecord) -> Result<()> {
        let keys = self.node_keys(service)?;
        let mut first_err = None;
        for key in &keys {
            if let Err(e) = self.inner.regs.deregister(&self.inner.conn, key).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn get_service(&self, name: &str) -> Result<Vec<ServiceRecord>> {
        let prefix = self.inner.layout.service(name);
        let resp = self.inner.conn.get("get_service", &prefix, true).await?;
        let records = resp
            .kvs()
            .iter()
            .filter_map(|kv| decode_for(kv.key(), kv.value(), Some(name)));
        let out = by_version(records);
        if out.is_empty() {
            Err(Error::NotFound)
        } else {
            Ok(out)
        }
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        let resp = self
            .inner
            .conn
            .get("list_services", self.inner.layout.all(), true)
            .await?;
        let records = resp
            .kvs()
            .iter()
            .filter_map(|kv| decode_for(kv.key(), kv.value(), None));
        Ok(by_name_version(records))
    }

    /// Lists the prefix (so this fails when etcd cannot be reached), then follows
    /// it from the listed revision on; see the crate docs for what the watcher does
    /// across interruptions.
    async fn watch(&self, opts: &WatchOptions) -> Result<Box<dyn Watcher>> {
        let prefix = match &opts.service {
            Some(s) => self.inner.layout.service(s),
            None => self.inner.layout.all().to_owned(),
        };
        let spec = Spec {
            prefix,
            service: opts.service.clone(),
            buffer: self.inner.watch_buffer,
        };
        let w = EtcdWatcher::start(
            self.inner.conn.clone(),
            spec,
            self.inner.watch_stats.clone(),
        )
        .await?;
        Ok(Box::new(w))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}
