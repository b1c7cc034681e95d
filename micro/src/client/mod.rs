//! The RPC client: finds a node through the selector and calls it over the
//! transport, the way go-micro's client does.
//!
//! [`RpcClient`] sends go-micro's request headers (`Micro-Service`,
//! `Micro-Endpoint`, `Micro-Method`, `Micro-Id`, `Content-Type`, `Accept`, the
//! `Timeout` in nanoseconds, and the caller's metadata), so Go servers serve it like a
//! Go client. On top of go-micro's behaviour:
//!
//! * **retries never re-run an answered call and never lose one go-micro would
//!   have saved**: a request that was not sent is always tried again, an answer
//!   (even one that cannot be read) never, a request sent but not answered (timeout,
//!   connection lost) when the call is retryable, which it is unless said otherwise
//!   (see [`CallErrorKind`] and [`ClientOptions`]);
//! * a retry goes to a **different node** when there is one: a node that failed at
//!   the transport level is avoided for the rest of the call and reported to the
//!   selector, which tries it last for a while;
//! * each attempt has its own timeout (a share of the call's), so a request lost by
//!   a server costs one attempt, not the whole call;
//! * the selector is asked again on every attempt, so a node set that changed
//!   meanwhile is used;
//! * connections are pooled per address and checked before reuse;
//! * request bodies are encoded once into shared bytes, so retries cost no encoding.
//!
//! # Middleware
//!
//! Tower layers go around the client at two places: above node selection
//! ([`ClientOptions::layer`], go-micro's `ClientWrapper`: each call, stream opening
//! and publish once) and below it ([`ClientOptions::attempt_layer`], go-micro's
//! `CallWrapper`: each attempt, with the node chosen). Both see a
//! [`ClientRequest`] and answer a [`ClientResponse`] or a [`CallError`].
//!
//! # Calling
//!
//! ```no_run
//! # async fn demo(client: std::sync::Arc<dyn micro::client::Client>) -> Result<(), micro::client::CallError> {
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
//!
//! For many calls to one service, a [`ServiceClient`] holds the name, a pinned
//! address or filters, and default options.

mod attempt;
mod builder;
mod error;
mod layer;
mod options;
mod request;
mod retry;
mod rpc;
mod stream;

use async_trait::async_trait;

pub use builder::{CallBuilder, PublishBuilder, ServiceClient};
pub use error::{CallError, CallErrorKind};
pub use layer::BoxClientService;
pub use options::{ClientOptions, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES};
pub use request::{CallKind, CallOptions, CallTarget, ClientRequest, ClientResponse, Reply};
pub use retry::backoff;
pub use rpc::RpcClient;
pub use stream::{ClientStream, RawStream};

use crate::codec::Codecs;

/// A client: calls endpoints of services, opens streams and publishes events.
/// Object-safe; shared as `Arc<dyn Client>`, whose typed API
/// ([`request`](CallBuilder), [`message`](PublishBuilder)) needs no import.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// One unary call ([`CallKind::Call`]).
    async fn call(&self, req: ClientRequest) -> Result<Reply, CallError>;

    /// Opens a stream ([`CallKind::Stream`]): connects to one node and sends the
    /// opening message (`req`'s body), as go-micro's client does.
    async fn stream(&self, req: ClientRequest) -> Result<RawStream, CallError>;

    /// Publishes an encoded event ([`CallKind::Publish`], the topic in
    /// [`endpoint`](ClientRequest::endpoint)) through the client's broker.
    async fn publish(&self, req: ClientRequest) -> Result<(), CallError>;

    /// The codec table used to encode typed requests.
    fn codecs(&self) -> &Codecs;

    /// The content type typed requests use unless told otherwise.
    fn content_type(&self) -> &str;

    /// Short name (`mucp`).
    fn name(&self) -> &'static str;
}
