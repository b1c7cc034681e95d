//! Codecs that carry a payload's bytes as they are: `application/octet-stream` and
//! `application/protobuf`.
//!
//! A payload travels through them when it serialises as bytes: `Vec<u8>`,
//! `bytes::Bytes` (with its serde feature), `serde_bytes` types, `String`, `()` (an
//! empty body), or a [`Proto`](super::Proto) message. Anything else is a clear
//! encode or decode error naming the codec.

use bytes::Bytes;
use serde::de::{self, Visitor};
use serde::ser::{self, Impossible, Serialize};

use super::{Codec, CodecError, DecodeFn};

/// `application/octet-stream`: the payload's bytes as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

/// `application/protobuf`: protobuf bytes, produced and read by
/// [`Proto`](super::Proto) payloads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtoCodec;

impl Codec for BytesCodec {
    fn name(&self) -> &'static str {
        "bytes"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Bytes, CodecError> {
        encode_raw(value, "bytes")
    }

    fn decode(&self, body: &[u8], visit: &mut DecodeFn<'_>) -> Result<(), CodecError> {
        decode_raw(body, visit, "bytes")
    }
}

impl Codec for ProtoCodec {
    fn name(&self) -> &'static str {
        "proto"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Bytes, CodecError> {
        encode_raw(value, "proto")
    }

    fn decode(&self, body: &[u8], visit: &mut DecodeFn<'_>) -> Result<(), CodecError> {
        decode_raw(body, visit, "proto")
    }
}

fn encode_raw(
    value: &dyn erased_serde::Serialize,
    codec: &'static str,
) -> Result<Bytes, CodecError> {
    let mut out = Vec::new();
    erased_serde::serialize(
        value,
        RawSerializer {
            out: &mut out,
            codec,
        },
    )
    .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(Bytes::from(out))
}

fn decode_raw(
    body: &[u8],
    visit: &mut DecodeFn<'_>,
    codec: &'static str,
) -> Result<(), CodecError> {
    let mut de = <dyn erased_serde::Deserializer<'_>>::erase(RawDeserializer { body, codec });
    visit(&mut de).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Errors of the raw serializer and deserializer.
#[derive(Debug)]
pub(crate) struct RawError(String);

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RawError {}

impl ser::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

impl de::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

fn not_bytes(codec: &str, what: &str) -> RawError {
    RawError(format!(
        "the {codec} codec carries raw bytes, not {what}: use Vec<u8>, Bytes, String or Proto<T>"
    ))
}

/// Serialises a byte payload into `out`.
struct RawSerializer<'a> {
    out: &'a mut Vec<u8>,
    codec: &'static str,
}

macro_rules! reject {
    ($($method:ident($($arg:ty),*) => $what:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), RawError> {
            Err(not_bytes(self.codec, $what))
        })*
    };
}

impl<'a> ser::Serializer for RawSerializer<'a> {
    type Ok = ();
    type Error = RawError;
    type SerializeSeq = ByteSeq<'a>;
    type SerializeTuple = Impossible<(), RawError>;
    type SerializeTupleStruct = Impossible<(), RawError>;
    type SerializeTupleVariant = Impossible<(), RawError>;
    type SerializeMap = Impossible<(), RawError>;
    type SerializeStruct = Impossible<(), RawError>;
    type SerializeStructVariant = Impossible<(), RawError>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), RawError> {
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), RawError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_unit(self) -> Result<(), RawError> {
        Ok(())
    }

    fn serialize_none(self) -> Result<(), RawError> {
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), RawError> {
        v.serialize(self)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), RawError> {
        v.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq<'a>, RawError> {
        self.out.reserve(len.unwrap_or(0));
        Ok(ByteSeq {
            out: self.out,
            codec: self.codec,
        })
    }

    reject! {
        serialize_bool(bool) => "a bool";
        serialize_i8(i8) => "a number";
        serialize_i16(i16) => "a number";
        serialize_i32(i32) => "a number";
        serialize_i64(i64) => "a number";
        serialize_u8(u8) => "a number";
        serialize_u16(u16) => "a number";
        serialize_u32(u32) => "a number";
        serialize_u64(u64) => "a number";
        serialize_f32(f32) => "a number";
        serialize_f64(f64) => "a number";
        serialize_char(char) => "a char";
        serialize_unit_struct(&'static str) => "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) => "an enum";
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), RawError> {
        Err(not_bytes(self.codec, "an enum"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
        Err(not_bytes(self.codec, "a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, RawError> {
        Err(not_bytes(self.codec, "a tuple struct"))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        Err(not_bytes(self.codec, "an enum"))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        Err(not_bytes(self.codec, "a map"))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, RawError> {
        Err(not_bytes(self.codec, &format!("the struct {name}")))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        Err(not_bytes(self.codec, "an enum"))
    }
}

/// A sequence that must hold `u8`s (how `Vec<u8>` serialises).
struct ByteSeq<'a> {
    out: &'a mut Vec<u8>,
    codec: &'static str,
}

impl ser::SerializeSeq for ByteSeq<'_> {
    type Ok = ();
    type Error = RawError;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), RawError> {
        let b = v.serialize(ByteElement { codec: self.codec })?;
        self.out.push(b);
        Ok(())
    }

    fn end(self) -> Result<(), RawError> {
        Ok(())
    }
}

/// Accepts exactly one `u8`.
struct ByteElement {
    codec: &'static str,
}

macro_rules! element_reject {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<u8, RawError> {
            Err(not_bytes(self.codec, "a list of non-bytes"))
        })*
    };
}

impl ser::Serializer for ByteElement {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = Impossible<u8, RawError>;
    type SerializeTuple = Impossible<u8, RawError>;
    type SerializeTupleStruct = Impossible<u8, RawError>;
    type SerializeTupleVariant = Impossible<u8, RawError>;
    type SerializeMap = Impossible<u8, RawError>;
    type SerializeStruct = Impossible<u8, RawError>;
    type SerializeStructVariant = Impossible<u8, RawError>;

    fn serialize_u8(self, v: u8) -> Result<u8, RawError> {
        Ok(v)
    }

    element_reject! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<u8, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<u8, RawError> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        Err(not_bytes(self.codec, "a list of non-bytes"))
    }
}

/// Offers a body as bytes (or a string, a byte list, an empty option or unit).
struct RawDeserializer<'de> {
    body: &'de [u8],
    codec: &'static str,
}

impl<'de> de::Deserializer<'de> for RawDeserializer<'de> {
    type Error = RawError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_borrowed_bytes(self.body)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_borrowed_bytes(self.body)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_byte_buf(self.body.to_vec())
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        match std::str::from_utf8(self.body) {
            Ok(s) => v.visit_borrowed_str(s),
            Err(e) => Err(RawError(format!(
                "{} codec: body is not UTF-8: {e}",
                self.codec
            ))),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        self.deserialize_str(v)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_seq(de::value::SeqDeserializer::<_, RawError>::new(
            self.body.iter().copied(),
        ))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        if self.body.is_empty() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        if self.body.is_empty() {
            v.visit_unit()
        } else {
            Err(RawError(format!(
                "{} codec: expected an empty body",
                self.codec
            )))
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, RawError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}
