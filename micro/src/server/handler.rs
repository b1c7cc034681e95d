//! Handlers: types whose methods serve endpoints named `Handler.Method`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use micro_registry::{Endpoint, MetadataMap as RegistryMetadata};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::method::{Method2, Method3};
use super::stream::{Sink, StreamIo, Streaming};
use super::subscriber::Subscriber;
use crate::codec::CodecRef;
use crate::describe::describe;
use crate::{Context, RpcError};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A request, response or event type: anything serde can encode and decode. Every
/// such type implements it.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Payload for T {}

/// A handler type: its endpoints are `<NAME>.<method>`.
///
/// Methods are `async fn`s taking `&self`, the call's [`Context`] and typed
/// messages, and returning `Result<_, RpcError>`; [`Handler::routes`] lists them.
/// Shared state is the handler's own fields (the server holds the handler in an
/// `Arc`, so many calls run at once). Subscriber methods are declared the same
/// way, with [`Routes::subscribe`] (or a closure, with
/// [`Subscriber::new`](super::Subscriber::new)). Four kinds exist,
/// as in go-micro's service template: unary, client stream, server stream and
/// bidirectional stream.
///
/// ```
/// use micro::server::{Handler, Routes};
/// use micro::{Context, RpcError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Request { name: String }
/// #[derive(Serialize, Deserialize)]
/// struct Response { msg: String }
///
/// struct Greeter;
///
/// impl Greeter {
///     async fn hello(&self, _ctx: Context, req: Request) -> Result<Response, RpcError> {
///         if req.name.is_empty() {
///             return Err(RpcError::bad_request("greeter", "name is required"));
///         }
///         Ok(Response { msg: format!("Hello {}", req.name) })
///     }
/// }
///
/// impl Handler for Greeter {
///     const NAME: &'static str = "Greeter";
///     fn routes(routes: &mut Routes<Self>) {
///         routes.unary("Hello", Self::hello);
///     }
/// }
/// ```
pub trait Handler: Send + Sync + Sized + 'static {
    /// The handler's name, the part before the dot of its endpoints.
    const NAME: &'static str;

    /// Declares the endpoints.
    fn routes(routes: &mut Routes<Self>);
}

pub(crate) type UnaryFn =
    dyn Fn(Context, CodecRef, Bytes) -> BoxFuture<Result<Bytes, RpcError>> + Send + Sync;
pub(crate) type StreamFn =
    dyn Fn(Context, StreamIo) -> BoxFuture<Result<(), RpcError>> + Send + Sync;

/// A type-erased endpoint, ready to serve.
#[derive(Clone)]
pub(crate) enum EndpointFn {
    Unary(Arc<UnaryFn>),
    Stream(Arc<StreamFn>),
}

/// One endpoint of a handler: its registry description and its function.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) endpoint: Endpoint,
    pub(crate) func: EndpointFn,
}

/// The endpoints of a handler, built by [`Handler::routes`].
pub struct Routes<S> {
    handler: Arc<S>,
    routes: Vec<Route>,
    subscribers: Vec<Subscriber>,
    /// Mistakes in the declarations, reported when the handler is added.
    problems: Vec<String>,
}

fn endpoint_name<S: Handler>(method: &str) -> String {
    format!("{}.{method}", S::NAME)
}

fn stream_endpoint<S: Handler, Req: Payload, Rsp: Payload>(method: &str) -> Endpoint {
    let mut metadata = RegistryMetadata::new();
    metadata.insert("stream".into(), "true".into());
    Endpoint {
        name: endpoint_name::<S>(method),
        request: Some(describe::<Req>()),
        response: Some(describe::<Rsp>()),
        metadata,
    }
}

impl<S: Handler> Routes<S> {
    /// A unary endpoint: `async fn method(&self, ctx, request) -> Result<Response, RpcError>`.
    pub fn unary<Req, Rsp, F>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Payload,
        Rsp: Payload,
        F: for<'a> Method2<'a, S, Context, Req, Result<Rsp, RpcError>> + Send + Sync + 'static,
    {
        self.check_new(method);
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<UnaryFn> = Arc::new(move |ctx: Context, codec: CodecRef, body: Bytes| {
            let handler = handler.clone();
            let f = f.clone();
            Box::pin(async move {
                let req: Req = codec.decode(&body).map_err(|e| {
                    RpcError::bad_request(
                        crate::wire::SERVER_ID,
                        format!("unable to decode request body: {e}"),
                    )
                })?;
                let rsp = f(&*handler, ctx, req).await?;
                codec.encode(&rsp).map_err(|e| {
                    RpcError::internal(
                        crate::wire::SERVER_ID,
                        format!("Unable to encode body: {e}"),
                    )
                })
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: Endpoint {
                name: endpoint_name::<S>(method),
                request: Some(describe::<Req>()),
                response: Some(describe::<Rsp>()),
                metadata: RegistryMetadata::new(),
            },
            func: EndpointFn::Unary(func),
        });
        self
    }

    /// A client-stream endpoint: `async fn method(&self, ctx, requests) -> Result<Response, RpcError>`.
    pub fn client_stream<Req, Rsp, F>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Payload,
        Rsp: Payload,
        F: for<'a> Method2<'a, S, Context, Streaming<Req>, Result<Rsp, RpcError>>
            + Send
            + Sync
            + 'static,
    {
        self.check_new(method);
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<StreamFn> = Arc::new(move |ctx: Context, io: StreamIo| {
            let (handler, f) = (handler.clone(), f.clone());
            Box::pin(async move {
                let (rx, mut tx) = io.split::<Req, Rsp>();
                let rsp = f(&*handler, ctx, rx).await?;
                tx.send(&rsp).await
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: stream_endpoint::<S, Req, Rsp>(method),
            func: EndpointFn::Stream(func),
        });
        self
    }

    /// A server-stream endpoint: `async fn method(&self, ctx, request, responses) -> Result<(), RpcError>`.
    pub fn server_stream<Req, Rsp, F>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Payload,
        Rsp: Payload,
        F: for<'a> Method3<'a, S, Context, Req, Sink<Rsp>, Result<(), RpcError>>
            + Send
            + Sync
            + 'static,
    {
        self.check_new(method);
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<StreamFn> = Arc::new(move |ctx: Context, io: StreamIo| {
            let (handler, f) = (handler.clone(), f.clone());
            Box::pin(async move {
                let (mut rx, tx) = io.split::<Req, Rsp>();
                let req = rx.recv().await?.ok_or_else(|| {
                    RpcError::bad_request(
                        crate::wire::SERVER_ID,
                        "stream closed before its request",
                    )
                })?;
                f(&*handler, ctx, req, tx).await
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: stream_endpoint::<S, Req, Rsp>(method),
            func: EndpointFn::Stream(func),
        });
        self
    }

    /// A bidirectional endpoint: `async fn method(&self, ctx, requests, responses) -> Result<(), RpcError>`.
    pub fn bidi<Req, Rsp, F>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Payload,
        Rsp: Payload,
        F: for<'a> Method3<'a, S, Context, Streaming<Req>, Sink<Rsp>, Result<(), RpcError>>
            + Send
            + Sync
            + 'static,
    {
        self.check_new(method);
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<StreamFn> = Arc::new(move |ctx: Context, io: StreamIo| {
            let (handler, f) = (handler.clone(), f.clone());
            Box::pin(async move {
                let (rx, tx) = io.split::<Req, Rsp>();
                f(&*handler, ctx, rx, tx).await
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: stream_endpoint::<S, Req, Rsp>(method),
            func: EndpointFn::Stream(func),
        });
        self
    }

    /// Adds metadata to the registry description of an endpoint declared before
    /// (go-micro's `server.EndpointMetadata`).
    /// Naming a method not declared before is an error that
    /// [`ServiceBuilder::build`](crate::ServiceBuilder::build) (or
    /// [`Server::handle`](super::Server::handle)) reports.
    pub fn metadata(&mut self, method: &str, key: &str, value: &str) -> &mut Self {
        let name = endpoint_name::<S>(method);
        match self.routes.iter_mut().find(|r| r.endpoint.name == name) {
            Some(r) => {
                r.endpoint.metadata.insert(key.into(), value.into());
            }
            None => self.problems.push(format!(
                "metadata {key:?} for {name}, which is not declared (yet)"
            )),
        }
        self
    }

    /// A subscriber method: `async fn method(&self, ctx, event) -> Result<(), RpcError>`
    /// runs for each event of `topic` (the event's metadata is in the context).
    /// Registered as go-micro registers a subscriber struct's methods: endpoint
    /// `<NAME>.<method>` with the event's shape and `{"subscriber": "true",
    /// "topic": topic}`.
    pub fn subscribe<T, F>(&mut self, method: &str, topic: &str, f: F) -> &mut Self
    where
        T: Payload,
        F: for<'a> Method2<'a, S, Context, T, Result<(), RpcError>> + Send + Sync + 'static,
    {
        self.subscribe_in(method, topic, None, f)
    }

    /// A subscriber method in queue group `queue`: of all subscribers in the group
    /// (across processes) one gets each event.
    pub fn subscribe_queue<T, F>(
        &mut self,
        method: &str,
        topic: &str,
        queue: &str,
        f: F,
    ) -> &mut Self
    where
        T: Payload,
        F: for<'a> Method2<'a, S, Context, T, Result<(), RpcError>> + Send + Sync + 'static,
    {
        self.subscribe_in(method, topic, Some(queue), f)
    }

    fn subscribe_in<T, F>(
        &mut self,
        method: &str,
        topic: &str,
        queue: Option<&str>,
        f: F,
    ) -> &mut Self
    where
        T: Payload,
        F: for<'a> Method2<'a, S, Context, T, Result<(), RpcError>> + Send + Sync + 'static,
    {
        let name = endpoint_name::<S>(method);
        if self.subscribers.iter().any(|s| s.endpoint.name == name) {
            self.problems
                .push(format!("subscriber {name} is declared twice"));
        }
        let (handler, f) = (self.handler.clone(), Arc::new(f));
        let mut sub = Subscriber::new(topic, move |ctx: Context, event: T| {
            let (handler, f) = (handler.clone(), f.clone());
            async move { f(&*handler, ctx, event).await }
        })
        .name(name);
        if let Some(q) = queue {
            sub = sub.queue(q);
        }
        self.subscribers.push(sub);
        self
    }

    /// The handler being declared, for routes that depend on its configuration
    /// (a queue name read from the environment, say).
    pub fn handler(&self) -> &S {
        &self.handler
    }

    /// Records a second declaration of `method` as an error.
    fn check_new(&mut self, method: &str) {
        let name = endpoint_name::<S>(method);
        if self.routes.iter().any(|r| r.endpoint.name == name) {
            self.problems.push(format!("{name} is declared twice"));
        }
    }
}

/// A handler made ready for a server: its name and erased endpoints.
#[derive(Clone)]
pub struct HandlerSet {
    pub(crate) name: String,
    pub(crate) routes: Vec<Route>,
    /// Its subscriber methods.
    pub(crate) subscribers: Vec<Subscriber>,
    /// Mistakes in its routes (duplicate endpoints, metadata for unknown ones).
    pub(crate) problems: Vec<String>,
}

impl HandlerSet {
    /// Erases a handler.
    pub fn new<S: Handler>(handler: S) -> Self {
        Self::from_arc(Arc::new(handler))
    }

    /// Erases a shared handler.
    pub fn from_arc<S: Handler>(handler: Arc<S>) -> Self {
        let mut declared = Routes {
            handler,
            routes: Vec::new(),
            subscribers: Vec::new(),
            problems: Vec::new(),
        };
        S::routes(&mut declared);
        let mut routes = declared.routes;
        routes.sort_by(|a, b| a.endpoint.name.cmp(&b.endpoint.name));
        HandlerSet {
            name: S::NAME.to_owned(),
            routes,
            subscribers: declared.subscribers,
            problems: declared.problems,
        }
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry description of each endpoint, sorted by name.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.routes.iter().map(|r| r.endpoint.clone()).collect()
    }
}

impl std::fmt::Debug for HandlerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerSet")
            .field("name", &self.name)
            .field(
                "endpoints",
                &self
                    .routes
                    .iter()
                    .map(|r| &r.endpoint.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
