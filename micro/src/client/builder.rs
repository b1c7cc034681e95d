//! The typed call API: [`CallBuilder`], [`ServiceClient`] and [`PublishBuilder`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use micro_selector::Filter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CallError;
use super::request::{CallKind, CallOptions, ClientRequest, Reply};
use super::stream::ClientStream;
use super::{Client, RpcClient};
use crate::codec::{CodecError, CodecRef, DEFAULT_CONTENT_TYPE};
use crate::server::Payload;
use crate::{Context, Metadata, wire};

/// The typed entry points, on every client: `Arc<dyn Client>` and [`RpcClient`]
/// alike, with no trait to import.
macro_rules! typed_api {
    () => {
        /// Starts a call to `endpoint` (`Handler.Method`) of `service`. For many calls
        /// to one service, [`ServiceClient`] keeps the name and the options.
        pub fn request(&self, service: &str, endpoint: &str) -> CallBuilder<'_> {
            CallBuilder::new(self, service.into(), endpoint)
        }

        /// Starts publishing an event to `topic`.
        pub fn message(&self, topic: &str) -> PublishBuilder<'_> {
            PublishBuilder {
                client: self,
                topic: topic.to_owned(),
                content_type: None,
                metadata: BTreeMap::new(),
            }
        }

        /// Publishes `event` to `topic` with the default content type (JSON).
        pub async fn publish_event<T: Serialize + ?Sized>(
            &self,
            topic: &str,
            event: &T,
        ) -> Result<(), CallError> {
            self.message(topic).publish(event).await
        }
    };
}

impl dyn Client {
    typed_api!();
}

impl RpcClient {
    typed_api!();

    /// A handle for calling `service` (see [`ServiceClient`]).
    pub fn service(&self, service: &str) -> ServiceClient {
        ServiceClient::new(Arc::new(self.clone()), service)
    }
}

/// The codec for a content type, or the client's default.
fn codec_for(client: &dyn Client, ct: Option<&str>) -> Result<(Arc<str>, CodecRef), CallError> {
    let ct = match ct {
        Some(ct) => ct,
        None if client.content_type().is_empty() => DEFAULT_CONTENT_TYPE,
        None => client.content_type(),
    };
    let codec = client
        .codecs()
        .get(ct)
        .ok_or_else(|| CallError::encode(CodecError::Unsupported(ct.to_owned())))?;
    Ok((ct.into(), codec))
}

/// A cheap, reusable handle on one service: its name, a pinned address or node
/// filters, default metadata and call options, shared by every call made through
/// it. Clones share everything.
///
/// ```no_run
/// # async fn demo(client: std::sync::Arc<dyn micro::client::Client>) -> Result<(), micro::client::CallError> {
/// use micro::client::ServiceClient;
/// # #[derive(serde::Serialize)] struct Req { name: String }
/// # #[derive(serde::Deserialize)] struct Rsp { msg: String }
///
/// let greeter = ServiceClient::new(client, "greeter")
///     .timeout(std::time::Duration::from_secs(2))
///     .metadata("X-Caller", "billing");
/// let rsp: Rsp = greeter.call("Greeter.Hello", &Req { name: "Alice".into() }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceClient {
    client: Arc<dyn Client>,
    service: Arc<str>,
    content_type: Option<Arc<str>>,
    metadata: Metadata,
    options: CallOptions,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("service", &self.service)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A handle on `service` through `client`.
    pub fn new(client: Arc<dyn Client>, service: &str) -> Self {
        ServiceClient {
            client,
            service: service.into(),
            content_type: None,
            metadata: Metadata::new(),
            options: CallOptions::default(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.service
    }

    /// Calls this address instead of discovering nodes (go-micro's `WithAddress`);
    /// may be given several times, one is picked per attempt. Default: discovery.
    pub fn address(mut self, addr: impl Into<String>) -> Self {
        self.options.addresses.push(addr.into());
        self
    }

    /// A selector filter every call applies (version, label...). Default: none.
    pub fn filter(mut self, f: Filter) -> Self {
        self.options.filters.push(f);
        self
    }

    /// A metadata pair every call sends. Default: none.
    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// How long each call may take, retries included. Default: the client's.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.options.timeout = Some(d);
        self
    }

    /// Longest one attempt may take. Default: the client's.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.options.attempt_timeout = Some(d);
        self
    }

    /// Retries per call. Default: the client's.
    pub fn retries(mut self, n: u32) -> Self {
        self.options.retries = Some(n);
        self
    }

    /// Whether an attempt sent but not answered may run again elsewhere. Default:
    /// the client's (true).
    pub fn retryable(mut self, on: bool) -> Self {
        self.options.retryable = Some(on);
        self
    }

    /// The content type. Default: the client's (`application/json`).
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Starts a call to `endpoint` with this handle's settings, for per-call
    /// options on top of them.
    pub fn request(&self, endpoint: &str) -> CallBuilder<'_> {
        let mut b = CallBuilder::new(&*self.client, self.service.clone(), endpoint);
        b.content_type = self.content_type.clone();
        b.metadata = self.metadata.clone();
        b.opts = self.options.clone();
        b
    }

    /// A unary call with a typed request and response.
    pub async fn call<Req, Rsp>(&self, endpoint: &str, req: &Req) -> Result<Rsp, CallError>
    where
        Req: Serialize + ?Sized,
        Rsp: DeserializeOwned,
    {
        self.request(endpoint).call(req).await
    }

    /// Opens a stream (client-stream or bidirectional endpoints).
    pub async fn stream<Req: Payload, Rsp: Payload>(
        &self,
        endpoint: &str,
    ) -> Result<ClientStream<Req, Rsp>, CallError> {
        self.request(endpoint).stream().await
    }

    /// Opens a server-stream call: sends `req`, then the replies can be read.
    pub async fn server_stream<Req: Payload, Rsp: Payload>(
        &self,
        endpoint: &str,
        req: &Req,
    ) -> Result<ClientStream<Req, Rsp>, CallError> {
        self.request(endpoint).server_stream(req).await
    }
}

/// One call being put together; finish it with [`call`](CallBuilder::call),
/// [`stream`](CallBuilder::stream) or [`server_stream`](CallBuilder::server_stream).
#[must_use = "a call builder does nothing until it is called"]
pub struct CallBuilder<'a> {
    client: &'a dyn Client,
    service: Arc<str>,
    endpoint: Arc<str>,
    content_type: Option<Arc<str>>,
    metadata: Metadata,
    opts: CallOptions,
}

impl<'a> CallBuilder<'a> {
    fn new(client: &'a dyn Client, service: Arc<str>, endpoint: &str) -> Self {
        CallBuilder {
            client,
            service,
            endpoint: endpoint.into(),
            content_type: None,
            metadata: Metadata::new(),
            opts: CallOptions::default(),
        }
    }

    /// Adds a metadata pair, sent as a header.
    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Carries an incoming call on: its caller metadata (not its hop headers) and
    /// its remaining deadline.
    pub fn context(mut self, ctx: &Context) -> Self {
        for (k, v) in ctx.metadata().iter() {
            if !wire::is_hop_header(k) && !self.metadata.contains(k) {
                self.metadata.insert(k, v);
            }
        }
        if let Some(d) = ctx.deadline() {
            self.opts.deadline = Some(self.opts.deadline.map_or(d, |o| o.min(d)));
        }
        self
    }

    /// How long the call may take, retries included. Default: the client's
    /// request timeout (for streams: none).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.opts.timeout = Some(d);
        self
    }

    /// Longest one attempt may take. Default: the client's.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.opts.attempt_timeout = Some(d);
        self
    }

    /// How many retries. Default: the client's.
    pub fn retries(mut self, n: u32) -> Self {
        self.opts.retries = Some(n);
        self
    }

    /// Whether an attempt that was sent but not answered (timed out, connection
    /// lost) may run again on another node: `false` for calls that must not run
    /// twice. Default: the client's (true).
    pub fn retryable(mut self, on: bool) -> Self {
        self.opts.retryable = Some(on);
        self
    }

    /// Calls this address, bypassing discovery (go-micro's `WithAddress`). May be
    /// given several times; one is picked per attempt.
    pub fn address(mut self, addr: impl Into<String>) -> Self {
        self.opts.addresses.push(addr.into());
        self
    }

    /// A selector filter (version, label, endpoint...).
    pub fn filter(mut self, f: Filter) -> Self {
        self.opts.filters.push(f);
        self
    }

    /// The content type. Default: the client's (`application/json`).
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    fn into_request(self, kind: CallKind, content_type: Arc<str>, body: Bytes) -> ClientRequest {
        let mut req = ClientRequest::new(kind, self.service, self.endpoint, content_type, body);
        req.metadata = self.metadata;
        req.options = self.opts;
        req
    }

    /// A unary call with a typed request and response.
    pub async fn call<Req, Rsp>(self, req: &Req) -> Result<Rsp, CallError>
    where
        Req: Serialize + ?Sized,
        Rsp: DeserializeOwned,
    {
        let (ct, codec) = codec_for(self.client, self.content_type.as_deref())?;
        let body = codec.encode(req).map_err(CallError::encode)?;
        let client = self.client;
        let rsp = client
            .call(self.into_request(CallKind::Call, ct, body))
            .await?;
        codec.decode(&rsp.body).map_err(CallError::decode)
    }

    /// A unary call with an already encoded body.
    pub async fn call_raw(self, body: impl Into<Bytes>) -> Result<Reply, CallError> {
        let (ct, _) = codec_for(self.client, self.content_type.as_deref())?;
        let client = self.client;
        client
            .call(self.into_request(CallKind::Call, ct, body.into()))
            .await
    }

    /// Opens a stream (client-stream or bidirectional endpoints). The opening
    /// message carries an empty request, as go-micro's generated clients send; the
    /// server discards it.
    pub async fn stream<Req: Payload, Rsp: Payload>(
        self,
    ) -> Result<ClientStream<Req, Rsp>, CallError> {
        let (ct, codec) = codec_for(self.client, self.content_type.as_deref())?;
        let opening = opening_body(&codec);
        let client = self.client;
        let raw = client
            .stream(self.into_request(CallKind::Stream, ct, opening))
            .await?;
        Ok(ClientStream::new(raw, codec))
    }

    /// Opens a server-stream call: sends `req`, then the replies can be read.
    pub async fn server_stream<Req: Payload, Rsp: Payload>(
        self,
        req: &Req,
    ) -> Result<ClientStream<Req, Rsp>, CallError> {
        let stream = self.stream::<Req, Rsp>().await?;
        stream.send(req).await?;
        Ok(stream)
    }
}

/// One event being put together; finish it with [`publish`](PublishBuilder::publish).
///
/// The broker message carries go-micro's headers: the metadata given (keys exactly
/// as written), `Content-Type`, `Micro-Topic` and `Micro-ID` (a new UUID), as
/// go-micro v4.11+ and v5 publishers write them.
#[must_use = "a publish builder does nothing until it is published"]
pub struct PublishBuilder<'a> {
    client: &'a dyn Client,
    topic: String,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl PublishBuilder<'_> {
    /// Adds a metadata pair.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Carries an incoming call's caller metadata on.
    pub fn context(mut self, ctx: &Context) -> Self {
        for (k, v) in ctx.metadata().iter() {
            if !wire::is_hop_header(k) {
                self.metadata
                    .entry(k.to_owned())
                    .or_insert_with(|| v.to_owned());
            }
        }
        self
    }

    /// The content type. Default: the client's (`application/json`).
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Encodes and publishes `event`.
    pub async fn publish<T: Serialize + ?Sized>(self, event: &T) -> Result<(), CallError> {
        let (ct, codec) = codec_for(self.client, self.content_type.as_deref())?;
        let body = codec.encode(event).map_err(CallError::encode)?;
        let mut req = ClientRequest::new(CallKind::Publish, "", self.topic, ct, body);
        req.event_header = self.metadata;
        self.client.publish(req).await
    }
}

/// The body of a stream's opening message: an empty object for JSON, nothing for
/// binary codecs.
fn opening_body(codec: &CodecRef) -> Bytes {
    if codec.name() == "json" {
        Bytes::from_static(b"{}\n")
    } else {
        Bytes::new()
    }
}
