//! Serving one connection: reading requests, routing them to endpoints, writing
//! replies, and feeding stream messages to running stream handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use micro_transport::{Header, Message as TransportMessage, Socket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::{EndpointFn, Route};
use super::request::{ServerKind, ServerRequest, Work};
use super::stack::Stack;
use super::stream::{Outbound, StreamIo};
use crate::codec::Codecs;
use crate::wire::{self, MICRO_ERROR, MICRO_STREAM, SERVER_ID};
use crate::{Context, RpcError};

/// Messages a stream handler may have waiting before the connection stops reading.
const STREAM_INBOX: usize = 64;

/// How long a connection must have been quiet before shutdown closes it.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// What every connection of a server shares.
pub(crate) struct Dispatch {
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) handlers: Vec<String>,
    pub(crate) codecs: Codecs,
    pub(crate) events: Option<Arc<dyn EventSink>>,
    pub(crate) max_streams_per_connection: usize,
    pub(crate) max_streams: usize,
    /// Streams running on the whole server.
    pub(crate) open_streams: Arc<AtomicUsize>,
    /// The layers around handlers and subscribers (`None`: none).
    pub(crate) stack: Stack,
}

/// One running stream, counted against the server's limit until it is dropped.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<StreamSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where messages that carry `Micro-Topic` go (subscribers of the server).
#[async_trait::async_trait]
pub(crate) trait EventSink: Send + Sync {
    /// Hands one event to the subscribers of `topic` (the one subscribed to; for an
    /// event sent over the transport, its `Micro-Topic`), with its context.
    async fn deliver(
        &self,
        topic: &str,
        ctx: Context,
        msg: TransportMessage,
    ) -> Result<(), RpcError>;
}

/// Serves `socket` until the peer hangs up, the connection fails, or `shutdown`
/// fires while no request is being served on it.
pub(crate) async fn serve(
    socket: Box<dyn Socket>,
    dispatch: Arc<Dispatch>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    force: CancellationToken,
) {
    let socket: Arc<dyn Socket> = Arc::from(socket);
    let addrs = Arc::new((
        socket.local_addr().to_owned(),
        socket.remote_addr().to_owned(),
    ));
    let mut streams: HashMap<String, mpsc::Sender<TransportMessage>> = HashMap::new();
    let mut last_request = Instant::now();
    let ended: &str = loop {
        streams.retain(|_, tx| !tx.is_closed());
        let idle = streams.is_empty();
        // Once the server shuts down, a connection closes when it has been quiet
        // for a moment: a request a client wrote just before (a kept-alive
        // connection it took from its pool) is read and served, not cut off.
        let quiet_until = last_request + DRAIN_QUIET;
        let msg = tokio::select! {
            biased;
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep_until(quiet_until).await;
            }, if idle => break "server stopping",
            r = socket.recv() => match r {
                Ok(m) => m,
                Err(micro_transport::Error::Closed) => break "closed",
                Err(e) => {
                    tracing::debug!(remote = socket.remote_addr(), error = %e, "connection failed");
                    break "failed";
                }
            },
        };
        last_request = Instant::now();
        if let Some(sid) = wire::micro_header(&msg.header, MICRO_STREAM) {
            let eos = wire::micro_header(&msg.header, MICRO_ERROR).is_some();
            if let Some(tx) = streams.get(sid) {
                let sid = sid.to_owned();
                if tx.send(msg).await.is_err() || eos {
                    streams.remove(&sid);
                }
                continue;
            }
            if eos {
                // The end of a stream we no longer track: nothing to do.
                continue;
            }
        }
        dispatch
            .handle(msg, &socket, &addrs, &mut streams, &tasks, &force)
            .await;
    };
    tracing::debug!(
        remote = socket.remote_addr(),
        how = ended,
        "connection ended"
    );
    drop(streams);
    socket.close().await;
}

impl Dispatch {
    async fn handle(
        &self,
        msg: TransportMessage,
        socket: &Arc<dyn Socket>,
        addrs: &Arc<(String, String)>,
        streams: &mut HashMap<String, mpsc::Sender<TransportMessage>>,
        tasks: &TaskTracker,
        force: &CancellationToken,
    ) {
        let h = &msg.header;
        if h.contains(wire::MICRO_TOPIC) {
            return self.handle_event(msg, socket).await;
        }
        // Borrowed from the request: they are copied only into the reply headers.
        let service = wire::micro_header(h, wire::MICRO_SERVICE).unwrap_or("");
        let endpoint = wire::micro_header(h, wire::MICRO_ENDPOINT)
            .or_else(|| wire::micro_header(h, wire::MICRO_METHOD))
            .unwrap_or("");
        let stream_id = wire::micro_header(h, MICRO_STREAM);
        let id = wire::micro_header(h, wire::MICRO_ID);

        // Reply headers as go-micro v4.11+/v5 servers send them: the call's Micro-*
        // headers; stream replies also carry the X-Micro-* twins (errors add
        // Micro-Error and X-Micro-Error when they are sent).
        let mut reply = Header::with_capacity(if stream_id.is_some() { 12 } else { 6 });
        let set: fn(&mut Header, &str, &str) = if stream_id.is_some() {
            wire::set_twin
        } else {
            wire::set
        };
        if let Some(id) = id.or(stream_id) {
            set(&mut reply, wire::MICRO_ID, id);
        }
        set(&mut reply, wire::MICRO_SERVICE, service);
        set(&mut reply, wire::MICRO_METHOD, endpoint);
        set(&mut reply, wire::MICRO_ENDPOINT, endpoint);
        if let Some(sid) = stream_id {
            set(&mut reply, MICRO_STREAM, sid);
        }

        let content_type = h
            .get(wire::CONTENT_TYPE)
            .filter(|v| !v.is_empty())
            .unwrap_or(wire::SERVER_DEFAULT_CONTENT_TYPE)
            .to_owned();
        let Some(codec) = self.codecs.get(&content_type) else {
            let err = RpcError::new(
                SERVER_ID,
                format!("Unsupported Content-Type: {content_type}"),
                415,
            );
            let mut header = reply;
            header.insert(wire::CONTENT_TYPE, "text/plain");
            wire::set_twin(&mut header, MICRO_ERROR, &err.to_json());
            let body = Bytes::from(format!("Unsupported Content-Type: {content_type}"));
            send(socket, TransportMessage { header, body }).await;
            return;
        };

        let route = match self.route(endpoint) {
            Ok(r) => r,
            Err(err) => return send_error(socket, reply, &err).await,
        };
        // The key a stream's later messages are routed by.
        let stream_key = matches!(route.func, EndpointFn::Stream(_))
            .then(|| stream_id.or(id).unwrap_or("").to_owned());

        let deadline = h
            .get(wire::TIMEOUT)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|ns| *ns > 0)
            .and_then(|ns| Instant::now().checked_add(Duration::from_nanos(ns)));
        let TransportMessage { mut header, body } = msg;
        // go-micro's servers put the connection's addresses in the metadata
        wire::set_addresses(&mut header, addrs);
        let ctx = Context::new(header, deadline, Some(addrs.clone()))
            .with_peer(crate::context::Peer::of_socket(&**socket));

        match &route.func {
            EndpointFn::Unary(f) => {
                let req = ServerRequest {
                    kind: ServerKind::Call,
                    ctx,
                    body,
                    work: Work::Unary(f.clone(), codec),
                };
                match self.stack.run(req).await {
                    Ok(rsp) => {
                        let mut header = reply;
                        if !rsp.body.is_empty() {
                            header.insert(wire::CONTENT_TYPE, content_type);
                        }
                        send(
                            socket,
                            TransportMessage {
                                header,
                                body: rsp.body,
                            },
                        )
                        .await;
                    }
                    Err(err) => send_error(socket, reply, &err).await,
                }
            }
            EndpointFn::Stream(f) => {
                let sid = stream_key.unwrap_or_default();
                // Bounded work: a stream over a limit is refused with a clear error
                // and costs nothing more.
                if streams.len() >= self.max_streams_per_connection {
                    let err = RpcError::new(
                        SERVER_ID,
                        format!(
                            "too many streams on this connection (limit {})",
                            self.max_streams_per_connection
                        ),
                        503,
                    );
                    return send_error(socket, reply, &err).await;
                }
                let Some(slot) = StreamSlot::take(&self.open_streams, self.max_streams) else {
                    let err = RpcError::new(
                        SERVER_ID,
                        format!(
                            "too many streams on this server (limit {})",
                            self.max_streams
                        ),
                        503,
                    );
                    return send_error(socket, reply, &err).await;
                };
                let (tx, inbox) = mpsc::channel(STREAM_INBOX);
                streams.insert(sid, tx);
                let out = Arc::new(Outbound {
                    socket: socket.clone(),
                    header: reply,
                    content_type,
                });
                // go-micro clients open a stream with a message whose body is not a
                // request (generated clients send an empty one, then the real
                // requests): its body is discarded, as go-micro's server does.
                let io = StreamIo {
                    inbox,
                    out: out.clone(),
                    codec,
                };
                let req = ServerRequest {
                    kind: ServerKind::Stream,
                    ctx,
                    body,
                    work: Work::Stream(f.clone(), Some(io)),
                };
                let stack = self.stack.clone();
                let force = force.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    tokio::select! {
                        _ = force.cancelled() => {}
                        _ = async {
                            let res = stack.run(req).await.map(|_| ());
                            out.finish(&res).await;
                        } => {}
                    }
                });
            }
        }
    }

    /// The route for `endpoint`, or go-micro's routing errors.
    fn route(&self, endpoint: &str) -> Result<&Route, RpcError> {
        let mut parts = endpoint.split('.');
        let (Some(handler), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(RpcError::bad_request(
                SERVER_ID,
                format!("rpc: service/endpoint request ill-formed: {endpoint}"),
            ));
        };
        if let Some(r) = self.routes.get(endpoint) {
            return Ok(r);
        }
        if self.handlers.iter().any(|h| h == handler) {
            Err(RpcError::not_found(
                SERVER_ID,
                format!("rpc: can't find method {method}"),
            ))
        } else {
            Err(RpcError::not_found(
                SERVER_ID,
                format!("rpc: can't find service {handler}"),
            ))
        }
    }

    async fn handle_event(&self, msg: TransportMessage, socket: &Arc<dyn Socket>) {
        let header = msg.header.clone();
        let topic = header.get(wire::MICRO_TOPIC).unwrap_or("").to_owned();
        // Events get what calls get: the stack (a panicking subscriber is a 500),
        // and the sender's Timeout as a deadline.
        let deadline = header
            .get(wire::TIMEOUT)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|ns| *ns > 0)
            .and_then(|ns| Instant::now().checked_add(Duration::from_nanos(ns)));
        let ctx = Context::new(msg.header, deadline, None)
            .with_peer(crate::context::Peer::of_socket(&**socket));
        let result = match &self.events {
            Some(sink) => {
                let req = ServerRequest {
                    kind: ServerKind::Event,
                    ctx,
                    body: msg.body,
                    work: Work::Event(sink.clone(), topic),
                };
                self.stack.run(req).await.map(|_| ())
            }
            None => Err(RpcError::not_found(
                SERVER_ID,
                "no subscribers on this server",
            )),
        };
        let mut header = header;
        if let Err(e) = result {
            wire::set_twin(&mut header, MICRO_ERROR, &e.to_json());
        }
        send(
            socket,
            TransportMessage {
                header,
                body: Bytes::new(),
            },
        )
        .await;
    }

    /// An event the broker delivered to a subscription of `topic`, through the
    /// stack.
    pub(crate) async fn broker_event(
        &self,
        topic: &str,
        msg: TransportMessage,
        peer: crate::context::Peer,
    ) -> Result<(), RpcError> {
        let Some(sink) = &self.events else {
            return Err(RpcError::not_found(
                SERVER_ID,
                "no subscribers on this server",
            ));
        };
        let ctx = Context::new(msg.header, None, None).with_peer(peer);
        let req = ServerRequest {
            kind: ServerKind::Event,
            ctx,
            body: msg.body,
            work: Work::Event(sink.clone(), topic.to_owned()),
        };
        self.stack.run(req).await.map(|_| ())
    }
}

async fn send_error(socket: &Arc<dyn Socket>, mut header: Header, err: &RpcError) {
    wire::set_twin(&mut header, MICRO_ERROR, &err.to_json());
    send(
        socket,
        TransportMessage {
            header,
            body: Bytes::new(),
        },
    )
    .await;
}

async fn send(socket: &Arc<dyn Socket>, msg: TransportMessage) {
    if let Err(e) = socket.send(&msg).await {
        tracing::debug!(remote = socket.remote_addr(), error = %e, "reply not sent");
    }
}
