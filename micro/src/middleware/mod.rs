//! Middleware: tower layers around the server's handlers and the client's calls.
//!
//! Both sides are tower stacks, so any tower layer (and tower-http style layers
//! written against `tower::Service`) whose errors convert into `tower::BoxError`
//! fits:
//!
//! | position | added with | sees | go-micro's name |
//! |---|---|---|---|
//! | server | [`ServiceBuilder::layer`](crate::ServiceBuilder::layer), [`ServerOptions::layer`](crate::server::ServerOptions::layer) | each unary call, stream opening and subscriber event, as a [`ServerRequest`](crate::server::ServerRequest); handlers and subscribers sit at the bottom | `HandlerWrapper`, `SubscriberWrapper` |
//! | client, above node selection | [`ClientOptions::layer`](crate::client::ClientOptions::layer) | each call, stream opening and publish once, whatever the retries | `ClientWrapper` |
//! | client, below node selection | [`ClientOptions::attempt_layer`](crate::client::ClientOptions::attempt_layer) | each attempt, with the node chosen | `CallWrapper` |
//!
//! Layer errors become the side's error: on the server an [`RpcError`](crate::RpcError)
//! (a layer's own `RpcError` as it is, tower's timeout a 408, tower's load
//! shedding a 503, anything else a 500), on the client a
//! [`CallError`](crate::client::CallError) (an `RpcError` from a layer is a
//! refusal, which the client tries on another node).
//!
//! Built in, each shaped like tower's (layer, service, future): [`RecoverLayer`]
//! (panics become 500s; the server has the same recovery built in below its
//! layers, on by default), [`EndpointTimeoutLayer`],
//! [`RateLimitLayer`] and [`BreakerLayer`]. tower's own cover the rest:
//! `tower::limit::ConcurrencyLimitLayer` with `tower::load_shed::LoadShedLayer` in
//! front of it sheds load with 503s instead of queueing.
//!
//! [`from_fn`] turns an async function into a layer, the way go-micro's wrappers
//! read:
//!
//! ```
//! use micro::middleware::{Next, from_fn};
//! use micro::server::{BoxServerService, ServerRequest};
//!
//! // go-micro's HandlerWrapper: log every call with its endpoint.
//! let log = from_fn(|req: ServerRequest, next: Next<BoxServerService>| async move {
//!     let endpoint = req.endpoint().to_owned();
//!     let result = next.run(req).await;
//!     tracing::info!(%endpoint, ok = result.is_ok(), "served");
//!     result
//! });
//! let service = micro::Service::builder("greeter").layer(log);
//! # let _ = service;
//! ```

mod breaker;
mod from_fn;
mod rate_limit;
mod recover;
mod timeout;

pub use breaker::{BREAKER_ID, Breaker, BreakerFuture, BreakerLayer};
pub use from_fn::{FromFn, FromFnLayer, Next, from_fn};
pub use rate_limit::{RATE_LIMIT_ID, RateLimit, RateLimitFuture, RateLimitLayer};
pub(crate) use recover::panicked;
pub use recover::{Recover, RecoverFuture, RecoverLayer};
pub use timeout::{EndpointTimeout, EndpointTimeoutLayer, TimeoutFuture};

/// What the built-in layers read of a request, on either side.
pub trait RequestInfo {
    /// The service addressed (empty for events and publishes).
    fn service(&self) -> &str;
    /// The endpoint, `Handler.Method`; the topic for events and publishes.
    fn endpoint(&self) -> &str;
}

impl RequestInfo for crate::server::ServerRequest {
    fn service(&self) -> &str {
        crate::server::ServerRequest::service(self)
    }
    fn endpoint(&self) -> &str {
        crate::server::ServerRequest::endpoint(self)
    }
}

impl RequestInfo for crate::client::ClientRequest {
    fn service(&self) -> &str {
        crate::client::ClientRequest::service(self)
    }
    fn endpoint(&self) -> &str {
        crate::client::ClientRequest::endpoint(self)
    }
}
