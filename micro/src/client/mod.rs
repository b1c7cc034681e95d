//! The RPC client: finds a node through the selector and calls it over the
//! transport, the way go-micro's client does.
//!
//! [`RpcClient`] sends go-micro's request headers (`Micro-Service`,
//! `Micro-Endpoint`, `Micro-Method`, `Micro-Id`, `Content-Type`, `Accept`, the
//! `Timeout` in nanoseconds, and the caller's metadata), so Go servers serve it like a
//! Go client. On top of go-micro's behaviour:
//!
//! * a retry goes to a **different node** when there is one: a node that failed at
//!   the transport level is avoided for the rest of the call and reported to the
//!   selector, which tries it last for a while;
//! * the selector is asked again on every attempt, so a node set that changed
//!   meanwhile is used;
//! * connections are pooled per address and checked before reuse; a call that finds
//!   its pooled connection closed by the server retries once on a fresh connection
//!   to the same node, without counting an attempt;
//! * request bodies are encoded once into shared bytes, so retries cost no encoding.
//!
//! The typed entry point is [`ClientExt::request`]:
//!
//! ```no_run
//! # async fn demo(client: &dyn micro::client::Client) -> Result<(), micro::RpcError> {
//! use micro::client::ClientExt;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct CallRequest { name: String }
//! #[derive(Serialize, Deserialize)]
//! struct CallResponse { msg: String }
//!
//! let rsp: CallResponse = client
//!     .request("helloworld", "Helloworld.Call")
//!     .metadata("X-User", "alice")
//!     .call(&CallRequest { name: "Alice".into() })
//!     .await?;
//! println!("{}", rsp.msg);
//! # Ok(()) }
//! ```

mod builder;
mod retry;
mod rpc;
mod stream;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use micro_selector::Filter;
use micro_transport::Header;
use tokio::time::Instant;

pub use builder::{CallBuilder, ClientExt, PublishBuilder};
pub use retry::{
    RetryPolicy, backoff, is_transport_error, retry_always, retry_never,
    retry_on_transport_and_timeout,
};
pub use rpc::{CallFn, CallTarget, CallWrapper, ClientOptions, RpcClient};
pub use stream::{ClientStream, RawStream};

use crate::codec::Codecs;
use crate::{Metadata, RpcError};

/// A transport failure as a client error (id `go.micro.client.transport`): the
/// detail is `context` (when not empty), then the error and each of its causes,
/// `: `-separated, as `connection error: connect to 127.0.0.1:9 failed: Connection
/// refused (os error 111)`. A wire error carries no source chain, so the cause
/// (refused, reset, timed out) has to be in its text.
pub(crate) fn transport_error(context: &str, err: &micro_transport::Error) -> RpcError {
    let mut detail = String::from(context);
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        next = e.source();
    }
    RpcError::internal(crate::wire::CLIENT_TRANSPORT_ID, detail)
}

/// One request, encoded.
#[derive(Clone, Debug)]
pub struct Request {
    /// The service to call (its registry name).
    pub service: String,
    /// The endpoint, `Handler.Method`.
    pub endpoint: String,
    /// Content type of the body.
    pub content_type: String,
    /// The caller's metadata, sent as headers.
    pub metadata: Metadata,
    /// The encoded body; cheap to clone for retries.
    pub body: Bytes,
}

impl Request {
    /// A request with an encoded body and no metadata.
    pub fn new(
        service: impl Into<String>,
        endpoint: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        Request {
            service: service.into(),
            endpoint: endpoint.into(),
            content_type: content_type.into(),
            metadata: Metadata::new(),
            body: body.into(),
        }
    }
}

/// The future of one attempt, as [`CallWrapper`]s see it.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, RpcError>> + Send>>;

/// One response, still encoded.
#[derive(Clone, Debug)]
pub struct Response {
    /// The response headers.
    pub header: Header,
    /// The encoded body.
    pub body: Bytes,
}

/// Options of one call; unset fields take the client's defaults.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// How long the whole call may take, retries included.
    pub timeout: Option<Duration>,
    /// A deadline inherited from an upstream call; the earlier of it and `timeout`
    /// applies.
    pub deadline: Option<Instant>,
    /// How many times a failed attempt may be retried.
    pub retries: Option<u32>,
    /// Longest one attempt may take (see [`ClientOptions::attempt_timeout`]).
    pub attempt_timeout: Option<Duration>,
    /// Call these addresses instead of asking the selector (go-micro's
    /// `WithAddress`).
    pub addresses: Vec<String>,
    /// Selector filters.
    pub filters: Vec<Filter>,
}

/// A client: calls endpoints of services. Object-safe; shared as
/// `Arc<dyn Client>`. The typed API is in [`ClientExt`].
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// One unary call. Errors are go-micro errors: the handler's, or the client's
    /// own (`go.micro.client`, `go.micro.client.transport`).
    async fn call(&self, req: Request, opts: CallOptions) -> Result<Response, RpcError>;

    /// Opens a stream: connects to one node and sends the opening message (`req`'s
    /// body), as go-micro's client does.
    async fn stream(&self, req: Request, opts: CallOptions) -> Result<RawStream, RpcError>;

    /// Publishes an encoded event to `topic` through the client's broker (connecting
    /// it first if needed).
    async fn publish(&self, topic: &str, msg: micro_broker::Message) -> Result<(), RpcError>;

    /// The codec table used to encode typed requests.
    fn codecs(&self) -> &Codecs;

    /// The content type typed requests use unless told otherwise.
    fn content_type(&self) -> &str;

    /// Short name (`mucp`).
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_keep_their_causes() {
        let refused = micro_transport::Error::Connect {
            addr: "127.0.0.1:9".into(),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here"),
        };
        let e = transport_error("connection error", &refused);
        assert_eq!(e.id, "go.micro.client.transport");
        assert_eq!(e.code, 500);
        assert_eq!(
            e.detail,
            "connection error: connect to 127.0.0.1:9 failed: refused here"
        );
        let io = micro_transport::Error::Io(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "pipe broke",
        ));
        assert_eq!(transport_error("", &io).detail, "i/o error: pipe broke");
        assert_eq!(
            transport_error("", &micro_transport::Error::Closed).detail,
            "connection closed"
        );
        assert!(super::is_transport_error(&transport_error("", &io)));
    }
}
