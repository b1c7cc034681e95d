//! The typed call API: [`ClientExt::request`] and [`CallBuilder`].

use std::time::Duration;

use bytes::Bytes;
use micro_selector::Filter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::stream::ClientStream;
use super::{CallOptions, Client, Request, Response};
use crate::codec::{CodecRef, DEFAULT_CONTENT_TYPE};
use crate::server::Message;
use crate::wire::{self, CLIENT_CODEC_ID};
use crate::{Context, Metadata, RpcError};

/// The typed API of every [`Client`].
pub trait ClientExt: Client {
    /// Starts a call to `endpoint` (`Handler.Method`) of `service`.
    fn request<'a>(&'a self, service: &str, endpoint: &str) -> CallBuilder<'a, Self> {
        CallBuilder {
            client: self,
            service: service.to_owned(),
            endpoint: endpoint.to_owned(),
            content_type: None,
            metadata: Metadata::new(),
            opts: CallOptions::default(),
        }
    }

    /// Starts publishing an event to `topic`.
    fn message<'a>(&'a self, topic: &str) -> PublishBuilder<'a, Self> {
        PublishBuilder {
            client: self,
            topic: topic.to_owned(),
            content_type: None,
            metadata: std::collections::BTreeMap::new(),
        }
    }

    /// Publishes `event` to `topic` with the default content type (JSON).
    fn publish_event<'a, T: Serialize + Sync + ?Sized>(
        &'a self,
        topic: &'a str,
        event: &'a T,
    ) -> impl std::future::Future<Output = Result<(), RpcError>> + 'a {
        self.message(topic).publish(event)
    }
}

impl<C: Client + ?Sized> ClientExt for C {}

/// One call being put together; finish it with [`call`](CallBuilder::call),
/// [`stream`](CallBuilder::stream) or [`server_stream`](CallBuilder::server_stream).
#[must_use = "a call builder does nothing until it is called"]
pub struct CallBuilder<'a, C: ?Sized> {
    client: &'a C,
    service: String,
    endpoint: String,
    content_type: Option<String>,
    metadata: Metadata,
    opts: CallOptions,
}

impl<C: Client + ?Sized> CallBuilder<'_, C> {
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
    /// request timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.opts.timeout = Some(d);
        self
    }

    /// Longest one attempt may take. Default: the client's (none).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.opts.attempt_timeout = Some(d);
        self
    }

    /// How many retries. Default: the client's.
    pub fn retries(mut self, n: u32) -> Self {
        self.opts.retries = Some(n);
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
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    fn codec(&self) -> Result<(String, CodecRef), RpcError> {
        let ct = self.content_type.clone().unwrap_or_else(|| {
            let ct = self.client.content_type();
            if ct.is_empty() {
                DEFAULT_CONTENT_TYPE.to_owned()
            } else {
                ct.to_owned()
            }
        });
        let codec = self.client.codecs().get(&ct).ok_or_else(|| {
            RpcError::internal(CLIENT_CODEC_ID, format!("unsupported content type {ct:?}"))
        })?;
        Ok((ct, codec))
    }

    fn into_request(self, content_type: String, body: Bytes) -> (Request, CallOptions) {
        let req = Request {
            service: self.service,
            endpoint: self.endpoint,
            content_type,
            metadata: self.metadata,
            body,
        };
        (req, self.opts)
    }

    /// A unary call with a typed request and response.
    pub async fn call<Req, Rsp>(self, req: &Req) -> Result<Rsp, RpcError>
    where
        Req: Serialize + ?Sized,
        Rsp: DeserializeOwned,
    {
        let (ct, codec) = self.codec()?;
        let body = codec
            .encode(req)
            .map_err(|e| RpcError::internal(CLIENT_CODEC_ID, e.to_string()))?;
        let client = self.client;
        let (req, opts) = self.into_request(ct, body);
        let rsp = client.call(req, opts).await?;
        codec
            .decode(&rsp.body)
            .map_err(|e| RpcError::internal(CLIENT_CODEC_ID, e.to_string()))
    }

    /// A unary call with an already encoded body.
    pub async fn call_raw(self, body: impl Into<Bytes>) -> Result<Response, RpcError> {
        let (ct, _) = self.codec()?;
        let client = self.client;
        let (req, opts) = self.into_request(ct, body.into());
        client.call(req, opts).await
    }

    /// Opens a stream (client-stream or bidirectional endpoints). The opening
    /// message carries an empty request, as go-micro's generated clients send; the
    /// server discards it.
    pub async fn stream<Req: Message, Rsp: Message>(
        self,
    ) -> Result<ClientStream<Req, Rsp>, RpcError> {
        let (ct, codec) = self.codec()?;
        let opening = opening_body(&codec);
        let client = self.client;
        let (req, opts) = self.into_request(ct, opening);
        let raw = client.stream(req, opts).await?;
        Ok(ClientStream::new(raw, codec))
    }

    /// Opens a server-stream call: sends `req`, then the replies can be read.
    pub async fn server_stream<Req: Message, Rsp: Message>(
        self,
        req: &Req,
    ) -> Result<ClientStream<Req, Rsp>, RpcError> {
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
pub struct PublishBuilder<'a, C: ?Sized> {
    client: &'a C,
    topic: String,
    content_type: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
}

impl<C: Client + ?Sized> PublishBuilder<'_, C> {
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
    pub async fn publish<T: Serialize + ?Sized>(self, event: &T) -> Result<(), RpcError> {
        let ct = self.content_type.unwrap_or_else(|| {
            let ct = self.client.content_type();
            if ct.is_empty() {
                DEFAULT_CONTENT_TYPE.to_owned()
            } else {
                ct.to_owned()
            }
        });
        let codec = self.client.codecs().get(&ct).ok_or_else(|| {
            RpcError::internal(CLIENT_CODEC_ID, format!("unsupported content type {ct:?}"))
        })?;
        let body = codec
            .encode(event)
            .map_err(|e| RpcError::internal(CLIENT_CODEC_ID, e.to_string()))?;
        let mut header = self.metadata;
        header.insert("Content-Type".into(), ct);
        header.insert("Micro-Topic".into(), self.topic.clone());
        header.insert("Micro-ID".into(), uuid::Uuid::new_v4().to_string());
        self.client
            .publish(&self.topic, micro_broker::Message { header, body })
            .await
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
