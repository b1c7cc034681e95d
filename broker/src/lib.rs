//! Brokers for micro: publish events to topics, subscribe handlers to them.
//!
//! * [`HttpBroker`]: go-micro's HTTP broker on the wire. Each subscription is
//!   registered in a registry as the service `micro.http.broker` (version = the queue
//!   name, or `ff.http.broadcast`), and events are delivered by HTTP POST to the
//!   subscribers, so Go publishers reach Rust subscribers and the other way round.
//! * [`MemoryBroker`]: in-process delivery, for tests and single-process apps.
//!
//! Delivery semantics are those of go-micro's brokers: every subscription without a
//! queue (broadcast) gets every event; of the subscriptions sharing a queue name, one
//! gets each event.
//!
//! # What is guaranteed
//!
//! Neither broker stores anything durably: events live in memory and are lost when
//! the process stops. Within that:
//!
//! * **HTTP broker.** `publish` returns once every target (each broadcast subscriber
//!   node, each queue group) has answered, failed or timed out. A subscriber's
//!   handlers have run before it answers. Transport failures are retried, per
//!   target, from a bounded per-topic retry queue (64 deliveries, oldest dropped
//!   first) with backoff, for at most 8 retries or 60 s, and only while the target
//!   is still registered; a target that got an event never gets it again from a
//!   retry, but a subscriber that received an event and failed to answer in time may
//!   see it twice. Publishing to a topic without subscribers fails with
//!   [`Error::NoSubscribers`] and the event is not kept. Every outcome is counted in
//!   [`HttpBrokerStats`]. go-micro instead keeps failed events in a 64-message inbox
//!   per topic that is only drained, 8 at a time and to every group again, by later
//!   publishes to the topic. Details: [`HttpBroker`].
//! * **Memory broker.** Each subscription has its own task and a bounded queue;
//!   handlers of one subscription see events in publish order; a full queue drops
//!   the event for that subscription (or, optionally, makes the publisher wait).
//!   Details: [`MemoryBroker`].
//!
//! Handler errors and panics are logged and counted by both brokers; nothing is
//! redelivered because a handler failed.

pub mod http;
pub mod memory;
mod util;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use http::{HttpBroker, HttpBrokerOptions, HttpBrokerStats};
pub use memory::{MemoryBroker, MemoryBrokerOptions, MemoryBrokerStats, Overflow};

/// A broker message: headers and a body.
///
/// Header keys keep their exact case: go-micro's broker JSON carries a Go map whose
/// keys are not canonicalised (`Micro-Topic`, and `Micro-ID` from go-micro v4.11+/v5
/// publishers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Headers, keys as given.
    pub header: BTreeMap<String, String>,
    /// The payload.
    pub body: Bytes,
}

impl Envelope {
    /// A message with a body and no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Envelope {
            header: BTreeMap::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.insert(key.into(), value.into());
        self
    }
}

/// An event handed to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The topic it was published to.
    pub topic: String,
    /// The message.
    pub message: Envelope,
    /// How it arrived (the publisher's identity, with TLS).
    info: EventInfo,
}

/// What a broker knows about how an event arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EventInfo {
    #[cfg(feature = "tls")]
    peer: Option<std::sync::Arc<micro_tls::PeerIdentity>>,
}

impl Event {
    /// An event on `topic`.
    pub fn new(topic: impl Into<String>, message: Envelope) -> Self {
        Event {
            topic: topic.into(),
            message,
            info: EventInfo::default(),
        }
    }

    /// The identity the publisher proved with its client certificate when the event
    /// was delivered over mutual TLS (an [`HttpBroker`] with a client CA); `None`
    /// otherwise.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn peer_identity(&self) -> Option<&std::sync::Arc<micro_tls::PeerIdentity>> {
        self.info.peer.as_ref()
    }

    #[cfg(feature = "tls")]
    pub(crate) fn with_peer(
        mut self,
        peer: Option<std::sync::Arc<micro_tls::PeerIdentity>>,
    ) -> Self {
        self.info.peer = peer;
        self
    }
}

/// What a handler returns; an error is logged (the HTTP broker, like go-micro's,
/// does not redeliver).
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Handles the events of a subscription.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event.
    async fn handle(&self, event: Event) -> HandlerResult;
}

/// A handler from an async closure.
///
/// ```
/// use micro_broker::{Event, handler_fn};
///
/// let h = handler_fn(|event: Event| async move {
///     println!("{}: {} bytes", event.topic, event.message.body.len());
///     Ok(())
/// });
/// # let _ = h;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn EventHandler>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    struct FnHandler<F>(F);

    #[async_trait]
    impl<F, Fut> EventHandler for FnHandler<F>
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        async fn handle(&self, event: Event) -> HandlerResult {
            (self.0)(event).await
        }
    }

    Arc::new(FnHandler(f))
}

/// Options of [`Broker::subscribe`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Queue group: of the subscriptions sharing a queue name, one gets each event.
    /// `None` (the default) is a broadcast subscription: it gets every event.
    pub queue: Option<String>,
}

impl SubscribeOptions {
    /// A subscription in queue group `queue`.
    pub fn queue(queue: impl Into<String>) -> Self {
        SubscribeOptions {
            queue: Some(queue.into()),
        }
    }
}

/// A live subscription. Dropping it does not unsubscribe; call
/// [`unsubscribe`](Subscription::unsubscribe).
#[async_trait]
pub trait Subscription: Send + Sync {
    /// The topic.
    fn topic(&self) -> &str;

    /// The queue group, if any.
    fn queue(&self) -> Option<&str>;

    /// Stops the subscription (the HTTP broker deregisters it).
    async fn unsubscribe(&self) -> Result<()>;
}

/// A message broker. Object-safe; shared as `Arc<dyn Broker>`.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Starts the broker (the HTTP broker listens). Idempotent.
    async fn connect(&self) -> Result<()>;

    /// Stops it: every subscription is removed, every task stopped. Idempotent.
    async fn disconnect(&self) -> Result<()>;

    /// Publishes `msg` to `topic`.
    async fn publish(&self, topic: &str, msg: Envelope) -> Result<()>;

    /// Subscribes `handler` to `topic`.
    async fn subscribe(
        &self,
        topic: &str,
        handler: Arc<dyn EventHandler>,
        opts: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>>;

    /// The address subscribers are reached at (empty for in-process brokers or
    /// before `connect`).
    fn address(&self) -> String;

    /// Short name, written into server node metadata (`http`, `memory`).
    fn name(&self) -> &'static str;
}

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nobody subscribes to the topic (go-micro's `service not found` from the
    /// registry lookup); see the broker's docs for what happens to the event.
    #[error("no subscribers for topic {0:?}")]
    NoSubscribers(String),
    /// The broker is not connected.
    #[error("broker not connected")]
    NotConnected,
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(#[from] micro_registry::Error),
    /// Listening or delivering failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A message could not be encoded or decoded.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The TLS configuration could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
}

/// `Result` with the broker [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
