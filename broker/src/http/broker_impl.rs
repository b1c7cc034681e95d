//! The [`Broker`] implementation of [`HttpBroker`]: lifecycle, publish, subscribe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use micro_registry::Cache;
use tokio_util::sync::CancellationToken;

use super::subs::{BROADCAST_VERSION, Removed, SERVICE_NAME};
use super::{
    CLOSED, CONNECTED, Conn, Core, HttpBroker, addr, client, conn, retry, server, stats, wire,
};
use crate::{Broker, Envelope, Error, EventHandler, Result, SubscribeOptions, Subscription};

#[async_trait]
impl Broker for HttpBroker {
    async fn connect(&self) -> Result<()> {
        let core = &self.inner.core;
        let mut life = self.inner.life.lock().await;
        if core.phase.load(Ordering::Acquire) == CONNECTED {
            return Ok(());
        }
        let bind = addr::listen_addr(&core.opts.address);
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .map_err(|source| Error::Io {
                op: "listen",
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::Io {
            op: "listen",
            source,
        })?;
        let address = addr::advertise(bound, core.opts.advertise.as_deref());
        #[cfg(feature = "tls")]
        let tls = conn::Tls(match core.opts.tls.as_ref().filter(|t| t.serves_tls()) {
            Some(t) => Some(Arc::new(
                t.server(&[micro_tls::ALPN_HTTP1])
                    .map_err(|e| Error::Tls(e.to_string()))?,
            )),
            None => None,
        });
        #[cfg(not(feature = "tls"))]
        let tls = conn::Tls::default();
        core.table.write().secure = tls.is_some();
        let cache = Cache::with_options(core.opts.registry.clone(), core.opts.cache.clone());
        *core.conn.write() = Some(Conn {
            cache,
            client: client::new_client(&core.opts),
            address: address.clone(),
        });
        let cancel = CancellationToken::new();
        let heartbeat = cancel.child_token();
        life.tasks = vec![
            tokio::spawn(server::serve(listener, core.clone(), tls, cancel.clone())),
            tokio::spawn(core.clone().heartbeat(heartbeat.clone())),
            tokio::spawn(retry::run(core.clone(), cancel.clone())),
        ];
        life.cancel = Some(cancel);
        life.heartbeat = Some(heartbeat);
        core.phase.store(CONNECTED, Ordering::Release);
        tracing::debug!(%address, %bound, id = %core.id, secure = core.table.read().secure, "http broker connected");
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        let core = &self.inner.core;
        let mut life = self.inner.life.lock().await;
        if core.phase.load(Ordering::Acquire) != CONNECTED {
            return Ok(());
        }
        core.phase.store(CLOSED, Ordering::Release);
        // The heartbeat stops first: a round in progress gives up the
        // subscriptions' lock at once instead of finishing its registrations.
        if let Some(h) = life.heartbeat.take() {
            h.cancel();
        }
        // Deregister first, so publishers stop sending while requests drain; all
        // at once, so that a registry that is down costs one timeout, not one per
        // subscription.
        let mut first_err = None;
        {
            let _ops = core.ops.lock().await;
            let services = core.table.write().clear();
            let registry = &core.opts.registry;
            let results =
                futures_util::future::join_all(services.iter().map(|svc| registry.deregister(svc)))
                    .await;
            for e in results.into_iter().filter_map(|r| r.err()) {
                tracing::warn!(error = %e, "http broker: deregistering a subscription failed");
                first_err.get_or_insert(Error::from(e));
            }
        }
        if let Some(c) = life.cancel.take() {
            c.cancel();
        }
        for t in life.tasks.drain(..) {
            if let Err(e) = t.await {
                if e.is_panic() {
                    tracing::error!("http broker: a task panicked");
                }
            }
        }
        let lost = core.retry.clear() as u64;
        if lost > 0 {
            tracing::warn!(
                lost,
                "http broker: pending deliveries dropped at disconnect"
            );
            stats::add(&core.stats.dropped, lost);
            core.stats.pending.fetch_sub(lost, Ordering::Relaxed);
        }
        let conn = core.conn.write().take();
        if let Some(c) = conn {
            c.cache.stop().await;
        }
        tracing::debug!(id = %core.id, "http broker disconnected");
        first_err.map_or(Ok(()), Err)
    }

    async fn publish(&self, topic: &str, msg: Envelope) -> Result<()> {
        if topic.is_empty() {
            return Err(Error::Invalid("empty topic".into()));
        }
        let conn = self.ensure_connected().await?;
        let core = &self.inner.core;
        let body: Bytes = wire::encode(topic, &msg);
        let snapshot = match conn.cache.get(SERVICE_NAME).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(Error::NoSubscribers(topic.to_owned())),
            Err(e) => return Err(e.into()),
        };
        let targets = core.index.get(&snapshot).targets(topic);
        if targets.is_empty() {
            return Err(Error::NoSubscribers(topic.to_owned()));
        }
        stats::inc(&core.stats.published);
        stats::add(&core.stats.deliveries, targets.len() as u64);
        core.deliver(&conn, topic, &body, targets).await;
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
        let queue = opts
            .queue
            .filter(|q| !q.is_empty() && q != BROADCAST_VERSION);
        let conn = self.ensure_connected().await?;
        let core = &self.inner.core;
        let _ops = core.ops.lock().await;
        if core.phase.load(Ordering::Acquire) != CONNECTED {
            return Err(Error::NotConnected);
        }
        let sub_id = core.next_sub.fetch_add(1, Ordering::Relaxed);
        let (node_id, svc) = core.table.write().add(
            &core.id,
            &conn.address,
            topic,
            queue.as_deref(),
            sub_id,
            handler,
        );
        if let Err(e) = core.register(&svc).await {
            let removed = core.table.write().remove(&node_id, sub_id);
            if let Removed::Last(svc) = removed {
                // Best effort: the record may have been written before the error.
                let _ = core.opts.registry.deregister(&svc).await;
            }
            return Err(e);
        }
        core.invalidate();
        Ok(Box::new(HttpSubscription {
            core: core.clone(),
            topic: topic.to_owned(),
            queue,
            node_id,
            sub_id,
            done: AtomicBool::new(false),
        }))
    }

    fn address(&self) -> String {
        self.inner
            .core
            .conn
            .read()
            .as_ref()
            .map(|c| c.address.clone())
            .unwrap_or_default()
    }

    fn name(&self) -> &'static str {
        "http"
    }
}

/// A subscription of an [`HttpBroker`].
struct HttpSubscription {
    core: Arc<Core>,
    topic: String,
    queue: Option<String>,
    node_id: String,
    sub_id: u64,
    done: AtomicBool,
}

#[async_trait]
impl Subscription for HttpSubscription {
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
        self.core.unsubscribe(&self.node_id, self.sub_id).await
    }
}
