//! The JSON codec (`application/json`).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::finite::Finite;
use super::{Codec, CodecError, DecodeFn};

/// `application/json`: one JSON document followed by `\n` (go-micro writes with
/// Go's `json.Encoder`, which appends it); trailing white space is accepted on input.
///
/// Numbers cross the Go boundary bit for bit: floats are written in their shortest
/// form that reads back to the same bits and parsed with correct rounding (Go's
/// `strconv` does both), so every `f64`, subnormals and `-0` included, arrives
/// unchanged in either direction. NaN and infinities, which JSON cannot carry, are
/// an encode error, as in Go (serde_json alone would write `null`, which a Go peer
/// reads as `0`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, CodecError> {
    // No copy: the vector becomes the Bytes (which adds its small shared header
    // when the vector has spare capacity).
    let mut buf = Vec::with_capacity(128);
    serde_json::to_writer(&mut buf, &Finite(value))
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return decode_empty();
    }
    serde_json::from_slice(body).map_err(|e| CodecError::Decode(e.to_string()))
}

/// go-micro leaves the zero value when a body is empty: the closest serde reading is
/// an empty object, then `null`.
fn decode_empty<T: DeserializeOwned>() -> Result<T, CodecError> {
    serde_json::from_slice(b"{}").or_else(|first| {
        serde_json::from_slice(b"null")
            .map_err(|_| CodecError::Decode(format!("empty body: {first}")))
    })
}

impl Codec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Bytes, CodecError> {
        encode(value)
    }

    fn decode(&self, body: &[u8], visit: &mut DecodeFn<'_>) -> Result<(), CodecError> {
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            body
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let mut erased = <dyn erased_serde::Deserializer<'_>>::erase(&mut de);
        visit(&mut erased).map_err(|e| CodecError::Decode(e.to_string()))?;
        de.end().map_err(|e| CodecError::Decode(e.to_string()))
    }
}
