//! Client-side streams.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use micro_transport::{Header, Message as TransportMessage, Socket};
use tokio::time::Instant;

use super::error::{CallError, CallErrorKind};
use super::request::ClientRequest;
use crate::RpcError;
use crate::codec::CodecRef;
use crate::server::Payload;
use crate::wire::{self, EOS, MICRO_ERROR};

/// A stream to one node, with encoded messages. Every message carries the stream's
/// headers (`Micro-Stream`, `Micro-Id`, service, endpoint, content type), as
/// go-micro's client sends them.
///
/// `send` and `recv` take `&self` and may run at the same time from two tasks.
/// Dropping the stream closes its connection. When the call that opened it had a
/// deadline (a timeout, or one inherited from an upstream call), every `send` and
/// `recv` ends with a [`Timeout`](CallErrorKind::Timeout) error once it passes.
pub struct RawStream {
    socket: Arc<dyn Socket>,
    header: Header,
    content_type: String,
    deadline: Option<Instant>,
}

impl RawStream {
    /// Opens a stream on `socket` and sends the opening message.
    pub(crate) async fn open(
        socket: Box<dyn Socket>,
        req: &ClientRequest,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<RawStream, CallError> {
        let id = id.to_string();
        let mut header = Header::with_capacity(req.metadata.len() + 8);
        for (k, v) in req.metadata.iter() {
            if !wire::is_hop_header(k) {
                header.insert(k, v);
            }
        }
        header.insert(wire::CONTENT_TYPE, &*req.content_type);
        header.insert(wire::ACCEPT, &*req.content_type);
        header.insert(wire::MICRO_ID, id.as_str());
        header.insert(wire::MICRO_STREAM, id.as_str());
        header.insert(wire::MICRO_SERVICE, &*req.service);
        header.insert(wire::MICRO_METHOD, &*req.endpoint);
        header.insert(wire::MICRO_ENDPOINT, &*req.endpoint);
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            header.insert(wire::TIMEOUT, left.as_nanos().to_string());
        }
        let stream = RawStream {
            socket: Arc::from(socket),
            header,
            content_type: req.content_type.to_string(),
            deadline,
        };
        stream
            .send(req.body.clone())
            .await
            .map_err(|e| CallError::new(CallErrorKind::Send, e.into_rpc()))?;
        Ok(stream)
    }

    /// Runs `fut` until the stream's deadline, if it has one.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        match self.deadline {
            None => fut.await,
            Some(d) => tokio::time::timeout_at(d, fut)
                .await
                .unwrap_or_else(|_| Err(CallError::timeout())),
        }
    }

    /// Sends one encoded message.
    pub async fn send(&self, body: Bytes) -> Result<(), CallError> {
        let msg = TransportMessage {
            header: self.header.clone(),
            body,
        };
        self.bounded(async {
            self.socket
                .send(&msg)
                .await
                .map_err(|e| CallError::transport(CallErrorKind::Send, "", e))
        })
        .await
    }

    /// The next message, or `None` once the server ended the stream (`EOS`). An
    /// error the handler returned arrives as a [`Remote`](CallErrorKind::Remote)
    /// error.
    pub async fn recv(&self) -> Result<Option<TransportMessage>, CallError> {
        let msg = self
            .bounded(async {
                self.socket.recv().await.map_err(|e| {
                    let kind = match e {
                        micro_transport::Error::Closed | micro_transport::Error::Io(_) => {
                            CallErrorKind::Receive
                        }
                        micro_transport::Error::Timeout => CallErrorKind::Timeout,
                        _ => CallErrorKind::BadReply,
                    };
                    CallError::transport(kind, "", e)
                })
            })
            .await?;
        match wire::micro_header(&msg.header, MICRO_ERROR) {
            Some(EOS) => Ok(None),
            Some(err) => Err(CallError::remote(RpcError::parse(err))),
            None => Ok(Some(msg)),
        }
    }

    /// Tells the server no more messages will come (a message whose `Micro-Error`
    /// is `EOS`) and keeps the connection open to read the rest of the replies.
    pub async fn close_send(&self) -> Result<(), CallError> {
        let mut header = self.header.clone();
        header.insert(MICRO_ERROR, EOS);
        header.remove(wire::CONTENT_TYPE);
        let msg = TransportMessage {
            header,
            body: Bytes::new(),
        };
        self.bounded(async {
            self.socket
                .send(&msg)
                .await
                .map_err(|e| CallError::transport(CallErrorKind::Send, "", e))
        })
        .await
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

    /// When the stream stops waiting, if the call gave a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl std::fmt::Debug for RawStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStream")
            .field("remote", &self.socket.remote_addr())
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A typed stream: sends `Req` messages, receives `Rsp` messages.
pub struct ClientStream<Req, Rsp> {
    raw: RawStream,
    codec: CodecRef,
    _t: PhantomData<fn(Req) -> Rsp>,
}

impl<Req: Payload, Rsp: Payload> ClientStream<Req, Rsp> {
    pub(crate) fn new(raw: RawStream, codec: CodecRef) -> Self {
        ClientStream {
            raw,
            codec,
            _t: PhantomData,
        }
    }

    /// Sends one message.
    pub async fn send(&self, msg: &Req) -> Result<(), CallError> {
        let body = self.codec.encode(msg).map_err(CallError::encode)?;
        self.raw.send(body).await
    }

    /// The next message, or `None` once the server ended the stream.
    pub async fn recv(&self) -> Result<Option<Rsp>, CallError> {
        match self.raw.recv().await? {
            None => Ok(None),
            Some(msg) => self
                .codec
                .decode(&msg.body)
                .map(Some)
                .map_err(CallError::decode),
        }
    }

    /// No more messages from this side; replies can still be read.
    pub async fn close_send(&self) -> Result<(), CallError> {
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
