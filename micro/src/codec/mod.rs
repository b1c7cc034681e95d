//! Codecs: how message bodies are encoded, chosen by Content-Type.
//!
//! | Content-Type | codec | body |
//! |---|---|---|
//! | `application/json` (default) | [`JsonCodec`] | one JSON document and a `\n`, as go-micro writes it |
//! | `application/octet-stream` | [`BytesCodec`] | the payload's bytes as they are |
//! | `application/protobuf` | [`ProtoCodec`] | protobuf bytes of a [`Proto`] payload |
//!
//! go-micro's legacy `application/json-rpc` and `application/proto-rpc` envelopes are
//! not offered: Go clients only use them for nodes that lack `protocol=mucp`, and our
//! servers always register it. The gRPC content types belong to gRPC transports.
//!
//! Payloads are serde types; a [`Codec`] works on erased serde values, so any serde
//! format can be added for a new content type with [`Codecs::with`]. Protobuf
//! payloads are prost messages wrapped in [`Proto`], which serialises itself as raw
//! protobuf bytes for binary codecs.
//!
//! Message types that Go peers also read and write need two serde attributes for
//! Go's nil slices (`null`) and `[]byte` (base64): see [`go`].

mod finite;
pub mod go;
mod json;
mod proto;
mod raw;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use json::JsonCodec;
pub use proto::Proto;
pub use raw::{BytesCodec, ProtoCodec};

/// The default content type of requests and events: `application/json`.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// Why a body could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// The body could not be decoded into the expected type.
    #[error("decode: {0}")]
    Decode(String),
    /// No codec is registered for the content type.
    #[error("unsupported content type {0:?}")]
    Unsupported(String),
}

/// A decoding callback: receives an erased deserializer over the body.
pub type DecodeFn<'a> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 'a;

/// Encodes and decodes the bodies of one content type. Object-safe, so codecs can
/// be added at construction time.
pub trait Codec: Send + Sync + 'static {
    /// Short name, e.g. `json`.
    fn name(&self) -> &'static str;

    /// Encodes one value.
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Bytes, CodecError>;

    /// Decodes `body` by handing a deserializer over it to `visit`.
    fn decode(&self, body: &[u8], visit: &mut DecodeFn<'_>) -> Result<(), CodecError>;
}

/// A codec picked from a [`Codecs`] table: cheap to clone, with typed helpers.
#[derive(Clone)]
pub struct CodecRef {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// JSON, encoded without going through erased serde.
    Json,
    Other(Arc<dyn Codec>),
}

impl CodecRef {
    /// The codec's short name.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Json => "json",
            Kind::Other(c) => c.name(),
        }
    }

    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        match &self.kind {
            Kind::Json => json::encode(value),
            Kind::Other(c) => c.encode(&value),
        }
    }

    /// Decodes `body` into a `T`. An empty body decodes like `{}` (or `null`), as
    /// go-micro leaves the zero value when a body is empty.
    pub fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, CodecError> {
        match &self.kind {
            Kind::Json => json::decode(body),
            Kind::Other(c) => {
                let mut out: Option<T> = None;
                c.decode(body, &mut |de| {
                    out = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                })?;
                out.ok_or_else(|| CodecError::Decode("codec produced no value".into()))
            }
        }
    }
}

impl std::fmt::Debug for CodecRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CodecRef({})", self.name())
    }
}

/// The table of codecs by content type. Cheap to clone.
///
/// ```
/// use micro::codec::Codecs;
///
/// let codecs = Codecs::new();
/// let json = codecs.get("application/json; charset=utf-8").unwrap();
/// let body = json.encode(&serde_json::json!({"name": "Alice"})).unwrap();
/// assert_eq!(&body[..], b"{\"name\":\"Alice\"}\n");
/// assert!(codecs.get("application/xml").is_none());
/// ```
#[derive(Clone)]
pub struct Codecs {
    table: Arc<HashMap<String, CodecRef>>,
}

impl Default for Codecs {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Codecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.table.keys().collect();
        keys.sort();
        f.debug_tuple("Codecs").field(&keys).finish()
    }
}

impl Codecs {
    /// The built-in table: JSON, raw bytes and protobuf.
    pub fn new() -> Self {
        let mut table = HashMap::new();
        table.insert("application/json".to_owned(), CodecRef { kind: Kind::Json });
        table.insert(
            "application/octet-stream".to_owned(),
            CodecRef {
                kind: Kind::Other(Arc::new(BytesCodec)),
            },
        );
        table.insert(
            "application/protobuf".to_owned(),
            CodecRef {
                kind: Kind::Other(Arc::new(ProtoCodec)),
            },
        );
        Codecs {
            table: Arc::new(table),
        }
    }

    /// Adds (or replaces) the codec for `content_type`.
    pub fn with(mut self, content_type: &str, codec: impl Codec) -> Self {
        let mut table = (*self.table).clone();
        table.insert(
            normalise(content_type),
            CodecRef {
                kind: Kind::Other(Arc::new(codec)),
            },
        );
        self.table = Arc::new(table);
        self
    }

    /// The codec for `content_type` (parameters such as `; charset=utf-8` and case
    /// are ignored).
    pub fn get(&self, content_type: &str) -> Option<CodecRef> {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        if let Some(c) = self.table.get(ct) {
            return Some(c.clone());
        }
        self.table.get(&normalise(ct)).cloned()
    }

    /// Every content type in the table.
    pub fn content_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self.table.keys().cloned().collect();
        v.sort();
        v
    }
}

fn normalise(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
