//! [`Proto`]: prost messages as payloads.

use std::ops::{Deref, DerefMut};

use serde::de::{Deserialize, Deserializer, Error as _, Visitor};
use serde::ser::{Error as _, Serialize, Serializer};

/// A prost message as a payload: it travels as protobuf bytes with the
/// `application/protobuf` (or `application/octet-stream`) content type.
///
/// With a text format such as JSON it refuses to encode: derive serde on the message
/// type and use it directly for JSON instead.
///
/// ```
/// use micro::codec::{Codecs, Proto};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Hello {
///     #[prost(string, tag = "1")]
///     name: String,
/// }
///
/// let proto = Codecs::new().get("application/protobuf").unwrap();
/// let body = proto.encode(&Proto(Hello { name: "Alice".into() })).unwrap();
/// assert_eq!(&body[..], b"\x0a\x05Alice");
/// let back: Proto<Hello> = proto.decode(&body).unwrap();
/// assert_eq!(back.name, "Alice");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proto<T>(pub T);

impl<T> Proto<T> {
    /// The message.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Proto<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Proto<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: prost::Message> Serialize for Proto<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return Err(S::Error::custom(
                "a Proto payload needs a binary content type such as application/protobuf",
            ));
        }
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de, T: prost::Message + Default> Deserialize<'de> for Proto<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ProtoVisitor<T>(std::marker::PhantomData<T>);

        impl<T: prost::Message + Default> Visitor<'_> for ProtoVisitor<T> {
            type Value = Proto<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("protobuf bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Proto<T>, E> {
                T::decode(v)
                    .map(Proto)
                    .map_err(|e| E::custom(format!("protobuf: {e}")))
            }
        }

        if d.is_human_readable() {
            return Err(D::Error::custom(
                "a Proto payload needs a binary content type such as application/protobuf",
            ));
        }
        d.deserialize_bytes(ProtoVisitor(std::marker::PhantomData))
    }
}
