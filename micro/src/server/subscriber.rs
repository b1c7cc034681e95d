//! Subscribers: typed functions that handle the events of a topic.
//!
//! A subscriber is registered with the server's record as an endpoint the way
//! go-micro registers it: named `Func` (or the name given), the request shape of
//! the event type, no response, metadata `{"subscriber": "true", "topic": <topic>}`.
//! When the server starts it subscribes through its broker: **one broker
//! subscription per topic**, shared by every subscriber of that topic, and each
//! event is handed to every subscriber of the topic, as go-micro v5 does (a broker
//! subscription per subscriber would deliver each event once per queue to all of
//! them). Subscribers of one topic must therefore name the same queue (or none):
//! go-micro silently uses the first one's; here adding one in another queue is an
//! error. Events that arrive over the RPC
//! transport (`Micro-Topic` header) are dispatched the same way.
//!
//! Events are decoded by their `Content-Type` header; an event without one is read
//! as JSON (go-micro assumes protobuf, which no JSON publisher matches). Handler
//! errors are joined into one go-micro error, `subscriber error: ...` (500,
//! `go.micro.server`), which the HTTP broker logs and a transport sender receives.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use micro_registry::{Endpoint, MetadataMap as RegistryMetadata};
use micro_transport::{Header, Message as TransportMessage};

use super::conn::EventSink;
use super::handler::{BoxFuture, Payload};
use crate::codec::{Codecs, DEFAULT_CONTENT_TYPE};
use crate::describe::describe;
use crate::wire::{self, SERVER_ID};
use crate::{Context, RpcError};

type SubscriberFn =
    dyn Fn(Context, &Codecs, &TransportMessage) -> BoxFuture<Result<(), RpcError>> + Send + Sync;

/// A typed event handler on a topic.
#[derive(Clone)]
pub struct Subscriber {
    pub(crate) topic: String,
    pub(crate) queue: Option<String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) func: Arc<SubscriberFn>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("endpoint", &self.endpoint.name)
            .finish()
    }
}

impl Subscriber {
    /// A subscriber of `topic` that decodes each event into `T` and calls `f` with
    /// the event's metadata in the [`Context`].
    ///
    /// ```
    /// use micro::server::Subscriber;
    /// use micro::{Context, RpcError};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Event { id: String, message: String }
    ///
    /// let sub = Subscriber::new("example.events", |_ctx: Context, ev: Event| async move {
    ///     println!("{}: {}", ev.id, ev.message);
    ///     Ok::<(), RpcError>(())
    /// })
    /// .queue("workers");
    /// assert_eq!(sub.topic(), "example.events");
    /// ```
    pub fn new<T, F, Fut>(topic: impl Into<String>, f: F) -> Self
    where
        T: Payload,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
    {
        let topic = topic.into();
        let mut metadata = RegistryMetadata::new();
        metadata.insert("subscriber".into(), "true".into());
        metadata.insert("topic".into(), topic.clone());
        let endpoint = Endpoint {
            name: "Func".into(),
            request: Some(describe::<T>()),
            response: None,
            metadata,
        };
        let f = Arc::new(f);
        let func: Arc<SubscriberFn> = Arc::new(
            move |ctx: Context, codecs: &Codecs, msg: &TransportMessage| {
                let ct = msg
                    .header
                    .get(wire::CONTENT_TYPE)
                    .filter(|c| !c.is_empty())
                    .unwrap_or(DEFAULT_CONTENT_TYPE);
                let decoded = match codecs.get(ct) {
                    None => Err(RpcError::bad_request(
                        SERVER_ID,
                        format!("unsupported content type {ct:?}"),
                    )),
                    Some(codec) => codec.decode::<T>(&msg.body).map_err(|e| {
                        RpcError::bad_request(SERVER_ID, format!("unable to decode event: {e}"))
                    }),
                };
                let f = f.clone();
                Box::pin(async move { f(ctx, decoded?).await }) as BoxFuture<_>
            },
        );
        Subscriber {
            topic,
            queue: None,
            endpoint,
            func,
        }
    }

    /// Puts the subscriber in a queue group: of all subscribers in the group (across
    /// processes), one gets each event. Default: none, every subscriber gets every
    /// event.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The endpoint name registered for the subscriber. Default: `Func`, as go-micro
    /// names function subscribers.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.endpoint.name = name.into();
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// The subscribers of one server, grouped by topic.
pub(crate) struct Subscribers {
    pub(crate) by_topic: BTreeMap<String, Vec<Subscriber>>,
    pub(crate) codecs: Codecs,
}

impl Subscribers {
    pub(crate) fn new(list: &[Subscriber], codecs: Codecs) -> Self {
        let mut by_topic: BTreeMap<String, Vec<Subscriber>> = BTreeMap::new();
        for s in list {
            by_topic.entry(s.topic.clone()).or_default().push(s.clone());
        }
        Subscribers { by_topic, codecs }
    }

    /// Registry descriptions, by topic descending as go-micro lists them.
    pub(crate) fn endpoints(&self) -> Vec<Endpoint> {
        self.by_topic
            .values()
            .rev()
            .flatten()
            .map(|s| s.endpoint.clone())
            .collect()
    }

    /// Runs every subscriber of `topic` on one event; errors are joined.
    pub(crate) async fn dispatch(
        &self,
        topic: &str,
        ctx: Context,
        msg: TransportMessage,
    ) -> Result<(), RpcError> {
        let Some(subs) = self.by_topic.get(topic) else {
            return Err(RpcError::not_found(
                SERVER_ID,
                format!("no subscriber for topic {topic}"),
            ));
        };
        let mut errors = Vec::new();
        for s in subs {
            if let Err(e) = (s.func)(ctx.clone(), &self.codecs, &msg).await {
                errors.push(if e.detail.is_empty() {
                    e.to_json()
                } else {
                    e.detail
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RpcError::internal(
                SERVER_ID,
                format!("subscriber error: {}", errors.join("\n")),
            ))
        }
    }
}

#[async_trait::async_trait]
impl EventSink for Subscribers {
    async fn deliver(
        &self,
        topic: &str,
        ctx: Context,
        msg: TransportMessage,
    ) -> Result<(), RpcError> {
        self.dispatch(topic, ctx, msg).await
    }
}

/// A broker message as a transport message (header names become canonical).
pub(crate) fn to_transport(msg: micro_broker::Envelope) -> TransportMessage {
    let header: Header = msg.header.into_iter().collect();
    TransportMessage {
        header,
        body: msg.body,
    }
}
