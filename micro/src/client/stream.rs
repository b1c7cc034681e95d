//! Client-side streams.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use micro_transport::{Header, Message as TransportMessage, Socket};

use super::Request;
use crate::RpcError;
use crate::codec::CodecRef;
use crate::server::Message;
use crate::wire::{self, CLIENT_CODEC_ID, EOS, MICRO_ERROR};

/// A stream to one node, with encoded messages. Every message carries the stream's
/// headers (`Micro-Stream`, `Micro-Id`, service, endpoint, content type), as
/// go-micro's client sends them.
///
/// `send` and `recv` take `&self` and may run at the same time from two tasks.
/// Dropping the stream closes its connection.
pub struct RawStream {
    socket: Arc<dyn Socket>,
    header: Header,
    content_type: String,
}

impl RawStream {
    /// Opens a stream on `socket` and sends the opening message.
    pub(crate) async fn open(
        socket: Box<dyn Socket>,
        req: &Request,
        id: u64,
        timeout: Option<Duration>,
    ) -> Result<RawStream, RpcError> {
        let id = id.to_string();
        let mut header = Header::with_capacity(req.metadata.len() + 8);
        for (k, v) in req.metadata.iter() {
            if !wire::is_hop_header(k) {
                header.insert(k, v);
            }
        }
        header.insert(wire::CONTENT_TYPE, req.content_type.as_str());
        header.insert(wire::ACCEPT, req.content_type.as_str());
        header.insert(wire::MICRO_ID, id.as_str());
        header.insert(wire::MICRO_STREAM, id.as_str());
        header.insert(wire::MICRO_SERVICE, req.service.as_str());
        header.insert(wire::MICRO_METHOD, req.endpoint.as_str());
        header.insert(wire::MICRO_ENDPOINT, req.endpoint.as_str());
        if let Some(t) = timeout {
            header.insert(wire::TIMEOUT, t.as_nanos().to_string());
        }
        let stream = RawStream {
            socket: Arc::from(socket),
            header,
            content_type: req.content_type.clone(),
        };
        stream.send(req.body.clone()).await?;
        Ok(stream)
    }

    /// Sends one encoded message.
    pub async fn send(&self, body: Bytes) -> Result<(), RpcError> {
        let msg = TransportMessage {
            header: self.header.clone(),
            body,
        };
        self.socket
            .send(&msg)
            .await
            .map_err(|e| super::transport_error("", &e))
    }

    /// The next message, or `None` once the server ended the stream (`EOS`). An
    /// error the handler returned arrives as `Err`.
    pub async fn recv(&self) -> Result<Option<TransportMessage>, RpcError> {
        let msg = self
            .socket
            .recv()
            .await
            .map_err(|e| super::transport_error("", &e))?;
        match wire::micro_header(&msg.header, MICRO_ERROR) {
            Some(EOS) => Ok(None),
            Some(err) => Err(RpcError::parse(err)),
            None => Ok(Some(msg)),
        }
    }

    /// Tells the server no more messages will come (a message whose `Micro-Error`
    /// is `EOS`) and keeps the connection open to read the rest of the replies.
    pub async fn close_send(&self) -> Result<(), RpcError> {
        let mut header = self.header.clone();
        header.insert(MICRO_ERROR, EOS);
        header.remove(wire::CONTENT_TYPE);
        self.socket
            .send(&TransportMessage {
                header,
                body: Bytes::new(),
            })
            .await
            .map_err(|e| super::transport_error("", &e))
    }

    /// Ends the stream as go-micro's client does: sends `EOS`, then closes the
    /// connection.
    pub async fn close(&self) {
        let _ = self.close_send().await;
        self.socket.close().await;
    }

    /// The content type of the stream's messages.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

impl std::fmt::Debug for RawStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStream")
            .field("remote", &self.socket.remote_addr())
            .finish()
    }
}

/// A typed stream: sends `Req` messages, receives `Rsp` messages.
pub struct ClientStream<Req, Rsp> {
    raw: RawStream,
    codec: CodecRef,
    _t: PhantomData<fn(Req) -> Rsp>,
}

impl<Req: Message, Rsp: Message> ClientStream<Req, Rsp> {
    pub(crate) fn new(raw: RawStream, codec: CodecRef) -> Self {
        ClientStream {
            raw,
            codec,
            _t: PhantomData,
        }
    }

    /// Sends one message.
    pub async fn send(&self, msg: &Req) -> Result<(), RpcError> {
        let body = self
            .codec
            .encode(msg)
            .map_err(|e| RpcError::internal(CLIENT_CODEC_ID, e.to_string()))?;
        self.raw.send(body).await
    }

    /// The next message, or `None` once the server ended the stream.
    pub async fn recv(&self) -> Result<Option<Rsp>, RpcError> {
        match self.raw.recv().await? {
            None => Ok(None),
            Some(msg) => self
                .codec
                .decode(&msg.body)
                .map(Some)
                .map_err(|e| RpcError::internal(CLIENT_CODEC_ID, e.to_string())),
        }
    }

    /// No more messages from this side; replies can still be read.
    pub async fn close_send(&self) -> Result<(), RpcError> {
        self.raw.close_send().await
    }

    /// Ends the stream and closes the connection.
    pub async fn close(&self) {
        self.raw.close().await;
    }

    /// The untyped stream.
    pub fn raw(&self) -> &RawStream {
        &self.raw
    }
}

impl<Req, Rsp> std::fmt::Debug for ClientStream<Req, Rsp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw.fmt(f)
    }
}
