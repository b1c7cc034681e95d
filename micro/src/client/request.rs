//! What the client's layers see: [`ClientRequest`] in, [`ClientResponse`] out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use micro_selector::Filter;
use micro_transport::Header;
use tokio::time::Instant;

use super::stream::RawStream;
use crate::Metadata;

/// What a [`ClientRequest`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallKind {
    /// A unary call: one request, one reply.
    Call,
    /// Opening a stream: the opening message; the reply is the stream.
    Stream,
    /// Publishing an event through the broker.
    Publish,
}

/// Options of one call; unset fields take the client's defaults.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// How long the whole call may take, retries included.
    pub timeout: Option<Duration>,
    /// A deadline inherited from an upstream call; the earlier of it and `timeout`
    /// applies.
    pub deadline: Option<Instant>,
    /// How many times a failed attempt may be retried.
    pub retries: Option<u32>,
    /// Longest one attempt may take (see [`ClientOptions::attempt_timeout`](super::ClientOptions::attempt_timeout)).
    pub attempt_timeout: Option<Duration>,
    /// Whether an attempt that was sent but not answered (timed out, connection
    /// lost) may be tried again on another node. `Some(false)` for calls that must
    /// not run twice.
    pub retryable: Option<bool>,
    /// Call these addresses instead of asking the selector (go-micro's
    /// `WithAddress`).
    pub addresses: Vec<String>,
    /// Selector filters.
    pub filters: Vec<Filter>,
}

/// Where one attempt goes: the node the selector picked (or a fixed address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTarget {
    /// The node's id (empty for calls to a fixed address).
    pub node_id: String,
    /// The node's address.
    pub address: String,
    /// Whether the node is dialled with TLS: its metadata says `secure=true`, or the
    /// client dials every node with TLS (`TlsOptions::dial_all`, feature `tls`).
    pub secure: bool,
}

impl CallTarget {
    /// The key a failed node is avoided by for the rest of a call: its id, or its
    /// address for a fixed-address call.
    pub(crate) fn key(&self) -> &str {
        if self.node_id.is_empty() {
            &self.address
        } else {
            &self.node_id
        }
    }
}

/// One call, stream opening or publish as the client's layers see it.
///
/// Above node selection (layers added with
/// [`ClientOptions::layer`](super::ClientOptions::layer), go-micro's
/// `ClientWrapper` position) a layer sees the logical call once, whatever the
/// retries; below it (layers added with
/// [`ClientOptions::attempt_layer`](super::ClientOptions::attempt_layer),
/// go-micro's `CallWrapper` position) it sees each attempt, with
/// [`target`](ClientRequest::target) set to the chosen node.
///
/// The body is encoded already and cheap to clone, so a retry costs no encoding.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub(crate) kind: CallKind,
    pub(crate) service: Arc<str>,
    pub(crate) endpoint: Arc<str>,
    pub(crate) content_type: Arc<str>,
    pub(crate) metadata: Metadata,
    /// Publish only: the broker message's headers, names exactly as given.
    pub(crate) event_header: BTreeMap<String, String>,
    pub(crate) body: Bytes,
    pub(crate) options: CallOptions,
    pub(crate) target: Option<CallTarget>,
    pub(crate) attempt: u32,
    pub(crate) deadline: Option<Instant>,
    pub(crate) extensions: http::Extensions,
}

impl ClientRequest {
    /// A request of `kind` to `endpoint` (`Handler.Method`; the topic for a publish)
    /// of `service`, with an encoded body.
    pub fn new(
        kind: CallKind,
        service: impl Into<Arc<str>>,
        endpoint: impl Into<Arc<str>>,
        content_type: impl Into<Arc<str>>,
        body: impl Into<Bytes>,
    ) -> Self {
        ClientRequest {
            kind,
            service: service.into(),
            endpoint: endpoint.into(),
            content_type: content_type.into(),
            metadata: Metadata::new(),
            event_header: BTreeMap::new(),
            body: body.into(),
            options: CallOptions::default(),
            target: None,
            attempt: 0,
            deadline: None,
            extensions: http::Extensions::new(),
        }
    }

    /// What the request asks for.
    pub fn kind(&self) -> CallKind {
        self.kind
    }

    /// The service called (its registry name; empty for a publish).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The endpoint, `Handler.Method`; for a publish, the topic.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The topic of a publish (empty for calls and streams).
    pub fn topic(&self) -> &str {
        match self.kind {
            CallKind::Publish => &self.endpoint,
            _ => "",
        }
    }

    /// Content type of the body.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The caller's metadata, sent as headers of a call or stream.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The caller's metadata, for a layer to change.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// A header of the request: a metadata pair of a call or stream, a header of a
    /// published event (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.kind {
            CallKind::Publish => self
                .event_header
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => self.metadata.get(name),
        }
    }

    /// Sets a header: a metadata pair of a call or stream, a header of a published
    /// event. This is how a layer adds, say, a trace or auth header to every kind.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        match self.kind {
            CallKind::Publish => {
                self.event_header
                    .retain(|k, _| !k.eq_ignore_ascii_case(name));
                self.event_header.insert(name.to_owned(), value.into());
            }
            _ => self.metadata.insert(name, value),
        }
    }

    /// The encoded body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The call's options.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The node of this attempt: set below node selection, `None` above it.
    pub fn target(&self) -> Option<&CallTarget> {
        self.target.as_ref()
    }

    /// The attempt number below node selection (0 for the first); 0 above it.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the caller stops waiting: the call's deadline above node selection, the
    /// attempt's below it.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Values layers attach for layers below them.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Values layers attach for layers below them, to change.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }
}

/// A unary call's reply, still encoded.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// The reply's headers.
    pub header: Header,
    /// The encoded body.
    pub body: Bytes,
}

/// What a [`ClientRequest`] got: a reply, an open stream, or a published event.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientResponse {
    /// The reply of a [`CallKind::Call`].
    Reply(Reply),
    /// The stream a [`CallKind::Stream`] opened.
    Stream(RawStream),
    /// A [`CallKind::Publish`] was handed to the broker.
    Published,
}
