//! [`CallError`]: why a call, a stream or a publish failed.

use std::fmt;
use std::sync::Arc;

use crate::RpcError;
use crate::wire::{CLIENT_CODEC_ID, CLIENT_ID, CLIENT_TRANSPORT_ID};

/// What kind of failure a [`CallError`] is. The kind says what is known about the
/// request, which is what the retry rule goes by:
///
/// | kind | the request | retried on another node |
/// |---|---|---|
/// | [`Remote`](Self::Remote), [`BadReply`](Self::BadReply), [`Decode`](Self::Decode) | reached the server, which answered | never |
/// | [`Timeout`](Self::Timeout), [`Receive`](Self::Receive) | was sent; no answer came | when the call is retryable (the default) |
/// | [`Connect`](Self::Connect), [`Send`](Self::Send), [`Rejected`](Self::Rejected) | was not sent, or not whole: it cannot have run | always |
/// | [`NotFound`](Self::NotFound), [`NoneAvailable`](Self::NoneAvailable), [`Registry`](Self::Registry), [`Encode`](Self::Encode), [`Broker`](Self::Broker), [`Other`](Self::Other) | was not sent | no (nothing to retry on, or not a node's fault) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallErrorKind {
    /// The server answered with an error (its handler's, or its own: unknown
    /// endpoint, bad body, deadline passed).
    Remote,
    /// A reply arrived but could not be read: too large, malformed, or an HTTP
    /// status other than 200.
    BadReply,
    /// The reply arrived but did not decode into the expected type.
    Decode,
    /// No reply before the deadline (the call's, or the attempt's). The request was
    /// sent and may have run.
    Timeout,
    /// The connection broke after the request was sent, before a reply. The
    /// request may have run.
    Receive,
    /// Connecting failed (refused, unreachable, dial timeout).
    Connect,
    /// Writing the request failed: the server never had the whole request.
    Send,
    /// A layer refused the call before it was sent (circuit breaker open, rate
    /// limit, load shedding).
    Rejected,
    /// The registry has no such service.
    NotFound,
    /// The service has no node left to try: every node failed during this call,
    /// or the filters removed them all.
    NoneAvailable,
    /// The registry failed and no cached nodes were available.
    Registry,
    /// The request could not be encoded.
    Encode,
    /// Publishing through the broker failed (no broker, no subscriber, delivery).
    Broker,
    /// Anything else (an error from a layer that is none of the above).
    Other,
}

impl CallErrorKind {
    /// Whether the request can have reached a handler: false for failures before or
    /// while sending, true once it was sent (even with no reply).
    pub fn may_have_run(self) -> bool {
        matches!(
            self,
            Self::Remote | Self::BadReply | Self::Decode | Self::Timeout | Self::Receive
        )
    }
}

/// Why a call, a stream or a publish failed: the server's error, or a local one.
///
/// Every error also has go-micro's form, [`rpc`](CallError::rpc): for a
/// [`Remote`](CallErrorKind::Remote) error exactly what the server sent, for a
/// local one the error a go-micro client would report (`go.micro.client` ids,
/// `service x: not found`, `connection error: ...`, 408 on timeouts). Its `Display`
/// is that form's JSON, as go-micro prints errors; [`kind`](CallError::kind) and
/// [`source`](std::error::Error::source) tell the rest. A handler can return a
/// downstream call's error with `?`: it becomes that [`RpcError`].
///
/// ```
/// use micro::client::{CallError, CallErrorKind};
/// use micro::RpcError;
///
/// let e = CallError::remote(RpcError::not_found("greeter", "no such user"));
/// assert_eq!(e.kind(), CallErrorKind::Remote);
/// assert_eq!(e.code(), 404);
/// let wire: RpcError = e.into();
/// assert_eq!(wire.detail, "no such user");
/// ```
#[derive(Clone)]
pub struct CallError {
    kind: CallErrorKind,
    rpc: RpcError,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl CallError {
    /// An error of `kind` whose go-micro form is `rpc`.
    pub fn new(kind: CallErrorKind, rpc: RpcError) -> Self {
        CallError {
            kind,
            rpc,
            source: None,
        }
    }

    /// The error a server answered with.
    pub fn remote(rpc: RpcError) -> Self {
        Self::new(CallErrorKind::Remote, rpc)
    }

    /// A refusal by a client layer before the call was sent (its [`RpcError`] says
    /// why, e.g. 503 for an open circuit breaker, 429 for a rate limit). The call is
    /// retried on another node when there is one.
    pub fn rejected(rpc: RpcError) -> Self {
        Self::new(CallErrorKind::Rejected, rpc)
    }

    /// The same error with `source` as its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CallErrorKind {
        self.kind
    }

    /// go-micro's form of the error.
    pub fn rpc(&self) -> &RpcError {
        &self.rpc
    }

    /// go-micro's form of the error, by value.
    pub fn into_rpc(self) -> RpcError {
        self.rpc
    }

    /// The HTTP-like code of go-micro's form (408 for timeouts, the server's code
    /// for remote errors).
    pub fn code(&self) -> i32 {
        self.rpc.code
    }

    /// The detail of go-micro's form.
    pub fn detail(&self) -> &str {
        &self.rpc.detail
    }

    /// The id of go-micro's form (the server's id for remote errors,
    /// `go.micro.client...` for local ones).
    pub fn id(&self) -> &str {
        &self.rpc.id
    }

    pub(crate) fn not_found(service: &str) -> Self {
        Self::new(
            CallErrorKind::NotFound,
            RpcError::internal(CLIENT_ID, format!("service {service}: not found")),
        )
    }

    pub(crate) fn none_available(service: &str) -> Self {
        Self::new(
            CallErrorKind::NoneAvailable,
            RpcError::internal(
                CLIENT_ID,
                format!("error selecting {service} node: none available"),
            ),
        )
    }

    pub(crate) fn registry(
        service: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::new(
            CallErrorKind::Registry,
            RpcError::internal(CLIENT_ID, format!("error selecting {service} node: {e}")),
        )
        .with_source(e)
    }

    pub(crate) fn timeout() -> Self {
        Self::new(
            CallErrorKind::Timeout,
            RpcError::timeout(CLIENT_ID, "call timeout: context deadline exceeded"),
        )
    }

    /// A transport failure; `kind` is [`Connect`](CallErrorKind::Connect),
    /// [`Send`](CallErrorKind::Send), [`Receive`](CallErrorKind::Receive) or
    /// [`BadReply`](CallErrorKind::BadReply). The detail carries the whole cause
    /// chain, as `connection error: connect to 127.0.0.1:9 failed: Connection
    /// refused (os error 111)`: a wire error has no source chain.
    pub(crate) fn transport(
        kind: CallErrorKind,
        context: &str,
        err: micro_transport::Error,
    ) -> Self {
        let detail = crate::error::chain(context, &err);
        Self::new(kind, RpcError::internal(CLIENT_TRANSPORT_ID, detail)).with_source(err)
    }

    pub(crate) fn encode(e: crate::codec::CodecError) -> Self {
        Self::new(
            CallErrorKind::Encode,
            RpcError::internal(CLIENT_CODEC_ID, e.to_string()),
        )
        .with_source(e)
    }

    pub(crate) fn decode(e: crate::codec::CodecError) -> Self {
        Self::new(
            CallErrorKind::Decode,
            RpcError::internal(CLIENT_CODEC_ID, e.to_string()),
        )
        .with_source(e)
    }

    /// An error from a layer: a `CallError` passes through; tower's timeout becomes
    /// [`Timeout`](CallErrorKind::Timeout), tower's load shedding
    /// [`Rejected`](CallErrorKind::Rejected) (503), an [`RpcError`]
    /// [`Rejected`](CallErrorKind::Rejected); anything else
    /// [`Other`](CallErrorKind::Other) (500), never retried, since nothing says
    /// whether the request was sent.
    pub fn from_layer(e: tower::BoxError) -> Self {
        let e = match e.downcast::<CallError>() {
            Ok(e) => return *e,
            Err(e) => e,
        };
        let e = match e.downcast::<RpcError>() {
            Ok(e) => return Self::rejected(*e),
            Err(e) => e,
        };
        if e.is::<tower::timeout::error::Elapsed>() {
            return Self::timeout();
        }
        if e.is::<tower::load_shed::error::Overloaded>() {
            return Self::rejected(RpcError::new(CLIENT_ID, "service overloaded", 503));
        }
        Self::new(
            CallErrorKind::Other,
            RpcError::internal(CLIENT_ID, e.to_string()),
        )
        .with_boxed_source(e)
    }

    fn with_boxed_source(mut self, e: tower::BoxError) -> Self {
        self.source = Some(Arc::from(e));
        self
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.rpc, f)
    }
}

impl fmt::Debug for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallError")
            .field("kind", &self.kind)
            .field("rpc", &self.rpc)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        e.rpc
    }
}

impl PartialEq<RpcError> for CallError {
    fn eq(&self, other: &RpcError) -> bool {
        &self.rpc == other
    }
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
        let e = CallError::transport(CallErrorKind::Connect, "connection error", refused);
        assert_eq!(e.id(), "go.micro.client.transport");
        assert_eq!(e.code(), 500);
        assert_eq!(
            e.detail(),
            "connection error: connect to 127.0.0.1:9 failed: refused here"
        );
        assert!(std::error::Error::source(&e).is_some());
        assert!(!e.kind().may_have_run());
        let io = micro_transport::Error::Io(std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "pipe broke",
        ));
        let e = CallError::transport(CallErrorKind::Receive, "", io);
        assert_eq!(e.detail(), "i/o error: pipe broke");
        assert!(e.kind().may_have_run());
    }

    #[test]
    fn layer_errors_are_classified() {
        let boxed: tower::BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(CallError::from_layer(boxed).kind(), CallErrorKind::Timeout);
        let boxed: tower::BoxError = Box::new(RpcError::new("x", "slow down", 429));
        let e = CallError::from_layer(boxed);
        assert_eq!((e.kind(), e.code()), (CallErrorKind::Rejected, 429));
        let boxed: tower::BoxError = Box::new(CallError::not_found("s"));
        assert_eq!(CallError::from_layer(boxed).kind(), CallErrorKind::NotFound);
        let boxed: tower::BoxError = "odd".into();
        let e = CallError::from_layer(boxed);
        assert_eq!((e.kind(), e.detail()), (CallErrorKind::Other, "odd"));
    }
}
