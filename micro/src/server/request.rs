//! What the server's layers see: [`ServerRequest`] in, [`ServerResponse`] out.

use std::sync::Arc;

use bytes::Bytes;
use micro_transport::Message as TransportMessage;
use tokio::time::Instant;

use super::conn::EventSink;
use super::handler::{StreamFn, UnaryFn};
use super::stream::StreamIo;
use crate::codec::CodecRef;
use crate::{Context, RpcError};

/// What a [`ServerRequest`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    /// A unary call: the handler answers one body.
    Call,
    /// A stream opening: the handler runs for the stream's whole life; the response
    /// comes when it ends.
    Stream,
    /// An event for the server's subscribers (from the broker, or sent over the
    /// transport with `Micro-Topic`).
    Event,
}

/// The work a request stands for, run at the bottom of the stack.
pub(crate) enum Work {
    Unary(Arc<UnaryFn>, CodecRef),
    Stream(Arc<StreamFn>, Option<StreamIo>),
    Event(Arc<dyn EventSink>, String),
}

/// One unit of inbound work as the server's layers see it: a unary call, a stream
/// opening, or an event for the subscribers. Handlers and subscribers sit at the
/// bottom of the same stack.
///
/// The [`Context`] carries the service, the endpoint (or the topic of an event),
/// the caller's metadata, the deadline and the peer; the body is still encoded.
pub struct ServerRequest {
    pub(crate) kind: ServerKind,
    pub(crate) ctx: Context,
    pub(crate) body: Bytes,
    pub(crate) work: Work,
}

impl std::fmt::Debug for ServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRequest")
            .field("kind", &self.kind)
            .field("service", &self.ctx.service())
            .field("endpoint", &self.endpoint())
            .field("body", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl ServerRequest {
    /// What the request is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The call's context: metadata, deadline, peer.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The call's context, for a layer to change (metadata, extensions) before the
    /// handler sees it.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// The service addressed (`Micro-Service`; empty for events).
    pub fn service(&self) -> &str {
        self.ctx.service()
    }

    /// The endpoint called, `Handler.Method`; for an event, its topic.
    pub fn endpoint(&self) -> &str {
        match self.kind {
            ServerKind::Event => self.ctx.topic(),
            _ => self.ctx.endpoint(),
        }
    }

    /// When the caller stops waiting, if it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.ctx.deadline()
    }

    /// The encoded body: the request of a call, the opening message of a stream
    /// (discarded, as go-micro's servers do), the event.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Runs the work: the bottom of the stack. The caller's deadline applies here.
    pub(crate) async fn run(self) -> Result<ServerResponse, RpcError> {
        let deadline = self.ctx.deadline();
        let work = async move {
            match self.work {
                Work::Unary(f, codec) => f(self.ctx, codec, self.body).await,
                Work::Stream(f, io) => {
                    let io = io.ok_or_else(|| {
                        RpcError::internal(crate::wire::SERVER_ID, "a stream ran twice")
                    })?;
                    f(self.ctx, io).await.map(|()| Bytes::new())
                }
                Work::Event(sink, topic) => {
                    let msg = TransportMessage {
                        header: self.ctx.metadata().clone(),
                        body: self.body,
                    };
                    sink.deliver(&topic, self.ctx, msg)
                        .await
                        .map(|()| Bytes::new())
                }
            }
        };
        let body = match deadline {
            None => work.await?,
            Some(d) => tokio::time::timeout_at(d, work).await.map_err(|_| {
                RpcError::timeout(
                    crate::wire::SERVER_ID,
                    "deadline exceeded while handling the request",
                )
            })??,
        };
        Ok(ServerResponse { body })
    }
}

/// What a [`ServerRequest`] got: the encoded reply of a call (empty for streams
/// and events, whose handlers answer as they go).
#[derive(Clone, Debug, Default)]
pub struct ServerResponse {
    /// The encoded reply.
    pub body: Bytes,
}
