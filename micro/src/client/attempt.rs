//! One attempt on one node: a unary exchange over a pooled connection, or a stream
//! opened on a connection of its own. Every failure says how far the request got
//! ([`CallErrorKind`]), which the retry rule goes by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use micro_transport::{DialOptions, Header, Message as TransportMessage, Pool, Transport};
use tokio::time::Instant;

use super::error::{CallError, CallErrorKind};
use super::request::{CallTarget, ClientRequest, Reply};
use super::stream::RawStream;
use crate::RpcError;
use crate::wire;

/// What every attempt needs: connections and the request id counter.
pub(crate) struct Conns {
    pub(crate) pool: Pool,
    pub(crate) dial: DialOptions,
    /// How nodes serving TLS are dialled.
    pub(crate) secure: SecureDial,
    /// The `Micro-Id` counter.
    pub(crate) seq: AtomicU64,
}

/// How nodes that serve TLS are dialled.
pub(crate) struct SecureDial {
    /// The dial options with TLS, or why there are none.
    dial: Result<DialOptions, String>,
    /// Dial every node with TLS.
    pub(crate) all: bool,
}

impl SecureDial {
    /// No TLS configuration: secure nodes cannot be called.
    #[cfg_attr(feature = "tls", allow(dead_code))]
    pub(crate) fn none() -> Self {
        SecureDial {
            dial: Err("the node serves TLS; build micro with the tls feature to call it".into()),
            all: false,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn new(plain: &DialOptions, tls: Option<&micro_tls::TlsOptions>) -> Self {
        let opts = tls.cloned().unwrap_or_default();
        let dial = match opts.client() {
            Ok(c) => Ok(DialOptions {
                tls: Some(c.into()),
                ..plain.clone()
            }),
            Err(e) => {
                tracing::warn!(error = %e, "client: no TLS configuration; nodes serving TLS cannot be called");
                Err(format!(
                    "the node serves TLS and the client has no TLS configuration: {e}"
                ))
            }
        };
        SecureDial {
            dial,
            all: opts.dials_all(),
        }
    }
}

impl Conns {
    /// The dial options for `target`: with TLS for secure nodes.
    fn dial_for(&self, target: &CallTarget) -> Result<&DialOptions, CallError> {
        if !target.secure {
            return Ok(&self.dial);
        }
        self.secure.dial.as_ref().map_err(|why| {
            CallError::new(
                CallErrorKind::Connect,
                RpcError::internal(
                    wire::CLIENT_TRANSPORT_ID,
                    format!("connection error: {}: {why}", target.address),
                ),
            )
        })
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `req` to `target` over a pooled connection and reads the reply, within
    /// `budget`. `retryable` allows one more try on a fresh connection when a pooled
    /// one turns out to have been closed by the server after the request was
    /// written (with a non-retryable call that is returned as an error instead,
    /// since the server may have read the request first).
    pub(crate) async fn call(
        &self,
        target: &CallTarget,
        req: &ClientRequest,
        budget: Duration,
        retryable: bool,
    ) -> Result<Reply, CallError> {
        let msg = request_message(req, budget, self.next_id());
        let dial = self.dial_for(target)?;
        let run = async {
            for fresh in [false, true] {
                let conn = self.pool.get(&target.address, dial).await.map_err(|e| {
                    CallError::transport(CallErrorKind::Connect, "connection error", e)
                })?;
                let stale_ok = conn.is_reused() && !fresh;
                if let Err(e) = conn.socket().send(&msg).await {
                    // Not sent whole: the server cannot have run it.
                    if stale_ok && stale_connection(&e) {
                        tracing::debug!(address = %target.address, error = %e, "pooled connection was closed; redialling");
                        continue;
                    }
                    return Err(CallError::transport(CallErrorKind::Send, "", e));
                }
                match conn.socket().recv().await {
                    Ok(rsp) => {
                        conn.release();
                        return Ok(rsp);
                    }
                    Err(e) if stale_ok && retryable && stale_connection(&e) => {
                        tracing::debug!(address = %target.address, error = %e, "pooled connection was closed; redialling");
                        continue;
                    }
                    Err(e) => return Err(receive_error(e)),
                }
            }
            Err(CallError::new(
                CallErrorKind::Receive,
                RpcError::internal(wire::CLIENT_TRANSPORT_ID, "connection closed"),
            ))
        };
        let rsp = match tokio::time::timeout(budget, run).await {
            Ok(r) => r?,
            Err(_) => return Err(CallError::timeout()),
        };
        if let Some(err) = wire::micro_header(&rsp.header, wire::MICRO_ERROR) {
            return Err(CallError::remote(RpcError::parse(err)));
        }
        Ok(Reply {
            header: rsp.header,
            body: rsp.body,
        })
    }

    /// Dials `target` and sends the stream's opening message, both within
    /// `deadline` (the dial options' own timeout applies as well).
    pub(crate) async fn open(
        &self,
        transport: &dyn Transport,
        target: &CallTarget,
        req: &ClientRequest,
        deadline: Option<Instant>,
    ) -> Result<RawStream, CallError> {
        let dial = self.dial_for(target)?;
        let dialling = transport.dial(&target.address, dial);
        let dialled = match deadline {
            None => dialling.await,
            Some(d) => tokio::time::timeout_at(d, dialling)
                .await
                .map_err(|_| CallError::timeout())?,
        };
        let socket = dialled
            .map_err(|e| CallError::transport(CallErrorKind::Connect, "connection error", e))?;
        RawStream::open(socket, req, self.next_id(), deadline).await
    }
}

/// A receive failure: the request was sent. A reply that came but cannot be read
/// is the server's answer; a connection that broke, or a transport timeout, left
/// the request unanswered; a transport-level 503 says the server refused the
/// connection unread.
fn receive_error(e: micro_transport::Error) -> CallError {
    use micro_transport::Error as E;
    let kind = match &e {
        E::Timeout => CallErrorKind::Timeout,
        E::Closed | E::Io(_) => CallErrorKind::Receive,
        // The server's transport refused the connection before reading anything
        // (its connection limit): the request was not processed.
        E::Status { code: 503, .. } => CallErrorKind::Rejected,
        _ => CallErrorKind::BadReply,
    };
    if kind == CallErrorKind::Timeout {
        return CallError::timeout().with_source(e);
    }
    CallError::transport(kind, "", e)
}

/// A failure that a pooled connection closed by the server meanwhile shows.
fn stale_connection(e: &micro_transport::Error) -> bool {
    matches!(
        e,
        micro_transport::Error::Closed | micro_transport::Error::Io(_)
    )
}

/// The transport message of a unary request, with go-micro's headers.
fn request_message(req: &ClientRequest, timeout: Duration, id: u64) -> TransportMessage {
    let mut header = Header::with_capacity(req.metadata.len() + 8);
    for (k, v) in req.metadata.iter() {
        if !wire::is_hop_header(k) {
            header.insert(k, v);
        }
    }
    header.insert(wire::TIMEOUT, timeout.as_nanos().to_string());
    header.insert(wire::CONTENT_TYPE, &*req.content_type);
    header.insert(wire::ACCEPT, &*req.content_type);
    header.insert(wire::MICRO_ID, id.to_string());
    header.insert(wire::MICRO_SERVICE, &*req.service);
    header.insert(wire::MICRO_METHOD, &*req.endpoint);
    header.insert(wire::MICRO_ENDPOINT, &*req.endpoint);
    TransportMessage {
        header,
        body: req.body.clone(),
    }
}
