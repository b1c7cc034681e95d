//! Server-side streams: [`Streaming`] (messages from the caller) and [`Sink`]
//! (messages to the caller).

use std::marker::PhantomData;
use std::sync::Arc;

use micro_transport::{Header, Message as TransportMessage, Socket};
use tokio::sync::mpsc;

use crate::RpcError;
use crate::codec::CodecRef;
use crate::server::Payload;
use crate::wire::{self, EOS, MICRO_ERROR};

/// Where a stream's messages go: the connection and the headers every message of
/// the stream carries.
pub(crate) struct Outbound {
    pub(crate) socket: Arc<dyn Socket>,
    pub(crate) header: Header,
    pub(crate) content_type: String,
}

impl Outbound {
    /// Sends one message with a body.
    pub(crate) async fn send_body(&self, body: bytes::Bytes) -> Result<(), RpcError> {
        let mut header = self.header.clone();
        if !body.is_empty() {
            header.insert(wire::CONTENT_TYPE, self.content_type.as_str());
        }
        self.socket
            .send(&TransportMessage { header, body })
            .await
            .map_err(|e| RpcError::internal(wire::SERVER_ID, format!("stream send failed: {e}")))
    }

    /// Ends the stream: `EOS` after success, the error otherwise.
    pub(crate) async fn finish(&self, result: &Result<(), RpcError>) {
        let mut header = self.header.clone();
        let value = match result {
            Ok(()) => EOS.to_owned(),
            Err(e) => e.to_json(),
        };
        wire::set_twin(&mut header, MICRO_ERROR, &value);
        let msg = TransportMessage {
            header,
            body: bytes::Bytes::new(),
        };
        if let Err(e) = self.socket.send(&msg).await {
            tracing::debug!(error = %e, "could not end stream: connection gone");
        }
    }
}

/// The raw halves of one server-side stream, before typing.
pub(crate) struct StreamIo {
    pub(crate) inbox: mpsc::Receiver<TransportMessage>,
    pub(crate) out: Arc<Outbound>,
    pub(crate) codec: CodecRef,
}

impl StreamIo {
    pub(crate) fn split<Req: Payload, Rsp: Payload>(self) -> (Streaming<Req>, Sink<Rsp>) {
        (
            Streaming {
                inbox: self.inbox,
                codec: self.codec.clone(),
                ended: false,
                _t: PhantomData,
            },
            Sink {
                out: self.out,
                codec: self.codec,
                _t: PhantomData,
            },
        )
    }
}

/// Messages the caller sends on a stream.
pub struct Streaming<T> {
    inbox: mpsc::Receiver<TransportMessage>,
    codec: CodecRef,
    ended: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: Payload> Streaming<T> {
    /// The next message, or `None` once the caller ended the stream (or hung up).
    /// A message that does not decode is an error; the stream goes on.
    pub async fn recv(&mut self) -> Result<Option<T>, RpcError> {
        if self.ended {
            return Ok(None);
        }
        let Some(msg) = self.inbox.recv().await else {
            self.ended = true;
            return Ok(None);
        };
        if let Some(err) = wire::micro_header(&msg.header, MICRO_ERROR) {
            self.ended = true;
            if err == EOS {
                return Ok(None);
            }
            return Err(RpcError::parse(err));
        }
        self.codec.decode(&msg.body).map(Some).map_err(|e| {
            RpcError::bad_request(
                wire::SERVER_ID,
                format!("unable to decode stream message: {e}"),
            )
        })
    }
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("ended", &self.ended)
            .finish()
    }
}

/// Messages the handler sends to the caller on a stream.
pub struct Sink<T> {
    out: Arc<Outbound>,
    codec: CodecRef,
    _t: PhantomData<fn(T)>,
}

impl<T: Payload> Sink<T> {
    /// Sends one message. Fails once the caller is gone.
    pub async fn send(&mut self, msg: &T) -> Result<(), RpcError> {
        let body = self.codec.encode(msg).map_err(|e| {
            RpcError::internal(wire::SERVER_ID, format!("Unable to encode body: {e}"))
        })?;
        self.out.send_body(body).await
    }
}

impl<T> std::fmt::Debug for Sink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}
