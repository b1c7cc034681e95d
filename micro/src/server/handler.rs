//! Handlers: types whose methods serve endpoints named `Handler.Method`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use micro_registry::{Endpoint, Metadata as RegistryMetadata};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::stream::{Sink, StreamIo, Streaming};
use crate::codec::CodecRef;
use crate::describe::describe;
use crate::{Context, RpcError};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A request, response or event type: anything serde can encode and decode. Every
/// such type implements it.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Message for T {}

/// A handler type: its endpoints are `<NAME>.<method>`.
///
/// Methods take `self: Arc<Self>`, the call's [`Context`] and typed messages, and
/// return `Result<_, RpcError>`; [`Handler::routes`] lists them. Four kinds exist,
/// as in go-micro's service template: unary, client stream, server stream and
/// bidirectional stream.
///
/// ```
/// use std::sync::Arc;
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
///     async fn hello(self: Arc<Self>, _ctx: Context, req: Request) -> Result<Response, RpcError> {
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

/// What kind of endpoint this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStream,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    Bidi,
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
}

fn endpoint_name<S: Handler>(method: &str) -> String {
    format!("{}.{method}", S::NAME)
}

fn stream_endpoint<S: Handler, Req: Message, Rsp: Message>(method: &str) -> Endpoint {
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
    /// A unary endpoint: `f(handler, ctx, request) -> response`.
    pub fn unary<Req, Rsp, F, Fut>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Message,
        Rsp: Message,
        F: Fn(Arc<S>, Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rsp, RpcError>> + Send + 'static,
    {
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
                let rsp = f(handler, ctx, req).await?;
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

    /// A client-stream endpoint: `f(handler, ctx, requests) -> response`.
    pub fn client_stream<Req, Rsp, F, Fut>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Message,
        Rsp: Message,
        F: Fn(Arc<S>, Context, Streaming<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Rsp, RpcError>> + Send + 'static,
    {
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<StreamFn> = Arc::new(move |ctx: Context, io: StreamIo| {
            let (handler, f) = (handler.clone(), f.clone());
            Box::pin(async move {
                let (rx, mut tx) = io.split::<Req, Rsp>();
                let rsp = f(handler, ctx, rx).await?;
                tx.send(&rsp).await
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: stream_endpoint::<S, Req, Rsp>(method),
            func: EndpointFn::Stream(func),
        });
        self
    }

    /// A server-stream endpoint: `f(handler, ctx, request, responses)`.
    pub fn server_stream<Req, Rsp, F, Fut>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Message,
        Rsp: Message,
        F: Fn(Arc<S>, Context, Req, Sink<Rsp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
    {
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
                f(handler, ctx, req, tx).await
            }) as BoxFuture<_>
        });
        self.routes.push(Route {
            endpoint: stream_endpoint::<S, Req, Rsp>(method),
            func: EndpointFn::Stream(func),
        });
        self
    }

    /// A bidirectional endpoint: `f(handler, ctx, requests, responses)`.
    pub fn bidi<Req, Rsp, F, Fut>(&mut self, method: &str, f: F) -> &mut Self
    where
        Req: Message,
        Rsp: Message,
        F: Fn(Arc<S>, Context, Streaming<Req>, Sink<Rsp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
    {
        let handler = self.handler.clone();
        let f = Arc::new(f);
        let func: Arc<StreamFn> = Arc::new(move |ctx: Context, io: StreamIo| {
            let (handler, f) = (handler.clone(), f.clone());
            Box::pin(async move {
                let (rx, tx) = io.split::<Req, Rsp>();
                f(handler, ctx, rx, tx).await
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
    pub fn metadata(&mut self, method: &str, key: &str, value: &str) -> &mut Self {
        let name = endpoint_name::<S>(method);
        if let Some(r) = self.routes.iter_mut().find(|r| r.endpoint.name == name) {
            r.endpoint.metadata.insert(key.into(), value.into());
        }
        self
    }
}

/// A handler made ready for a server: its name and erased endpoints.
#[derive(Clone)]
pub struct HandlerSet {
    pub(crate) name: String,
    pub(crate) routes: Vec<Route>,
}

impl HandlerSet {
    /// Erases a handler.
    pub fn new<S: Handler>(handler: S) -> Self {
        Self::from_arc(Arc::new(handler))
    }

    /// Erases a shared handler.
    pub fn from_arc<S: Handler>(handler: Arc<S>) -> Self {
        let mut routes = Routes {
            handler,
            routes: Vec::new(),
        };
        S::routes(&mut routes);
        let mut routes = routes.routes;
        routes.sort_by(|a, b| a.endpoint.name.cmp(&b.endpoint.name));
        HandlerSet {
            name: S::NAME.to_owned(),
            routes,
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
