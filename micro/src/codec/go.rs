//! serde helpers for message types that Go peers read and write.
//!
//! Go's `encoding/json` differs from serde's defaults in two ways that matter on
//! the wire:
//!
//! * a nil slice or map is written as `null` (an empty but allocated one as `[]` or
//!   `{}`); serde's `Vec` and `HashMap` refuse `null`, so a Go peer's ordinary
//!   message fails to decode. [`nullable`] reads `null` as the empty value.
//! * `[]byte` is written as a base64 string (standard alphabet, padded); serde's
//!   `Vec<u8>` is an array of numbers, which Go reads but never writes. [`base64`]
//!   writes and reads Go's form.
//!
//! ```
//! use micro::codec::go;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
//! struct Upload {
//!     // Go: Tags []string `json:"tags"` (nil when empty)
//!     #[serde(default, deserialize_with = "go::nullable")]
//!     tags: Vec<String>,
//!     // Go: Data []byte `json:"data"`
//!     #[serde(default, with = "go::base64")]
//!     data: Vec<u8>,
//! }
//!
//! // What a Go peer sends for Upload{Data: []byte("hi")}:
//! let from_go: Upload = serde_json::from_str(r#"{"tags":null,"data":"aGk="}"#).unwrap();
//! assert_eq!(from_go, Upload { tags: vec![], data: b"hi".to_vec() });
//! // And what it reads back:
//! assert_eq!(serde_json::to_string(&from_go).unwrap(), r#"{"tags":[],"data":"aGk="}"#);
//! ```
//!
//! Types generated from `.proto` files will accept both forms without these
//! attributes.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;

/// Reads `null` as `T::default()` (use with `deserialize_with`, plus `default` for
/// a missing field): Go's nil slices and maps.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Go's `[]byte` in JSON: a base64 string (standard alphabet, padded) on output;
/// on input a base64 string, `null` (a nil slice: empty) or an array of numbers.
/// Use with `#[serde(with = "micro::codec::go::base64")]` on `Vec<u8>` or
/// `bytes::Bytes` fields (anything that is `AsRef<[u8]>` and `From<Vec<u8>>`).
pub mod base64 {
    use super::*;
    use ::base64::Engine as _;
    use ::base64::engine::general_purpose::STANDARD;

    /// Writes the bytes as a base64 string.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v.as_ref()))
    }

    /// Reads a base64 string, `null` or an array of numbers.
    ///
    /// It asks the format for bytes (inside an option, for `null`), so that
    /// the endpoint descriptions the server registers report the field as Go's `[]byte`.
    /// Bytes the format hands over are the base64 text: this module is Go's JSON
    /// form of `[]byte`, whose only encoding is a base64 string.
    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: From<Vec<u8>>,
    {
        d.deserialize_option(OptionVisitor).map(T::from)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 bytes (Go's []byte), null or an array of numbers")
        }

        fn visit_none<E: de::Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
            d.deserialize_byte_buf(BytesVisitor)
        }
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("base64 bytes (Go's []byte), null or an array of numbers")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            STANDARD
                .decode(v)
                .map_err(|e| E::custom(format_args!("invalid base64 in bytes field: {e}")))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            STANDARD
                .decode(v)
                .map_err(|e| E::custom(format_args!("invalid base64 in bytes field: {e}")))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct M {
        #[serde(default, deserialize_with = "super::nullable")]
        list: Vec<i32>,
        #[serde(default, deserialize_with = "super::nullable")]
        map: HashMap<String, f64>,
        #[serde(default, with = "super::base64")]
        data: Vec<u8>,
        #[serde(default, with = "super::base64")]
        shared: bytes::Bytes,
    }

    #[test]
    fn go_forms_decode() {
        let m: M = serde_json::from_str(r#"{"list":null,"map":null,"data":null,"shared":"AAEC"}"#)
            .unwrap();
        assert_eq!(
            m,
            M {
                shared: bytes::Bytes::from_static(&[0, 1, 2]),
                ..M::default()
            }
        );
        let m: M = serde_json::from_str(r#"{"data":[1,2,255]}"#).unwrap();
        assert_eq!(m.data, [1, 2, 255]);
        let m: M = serde_json::from_str("{}").unwrap();
        assert_eq!(m, M::default());
    }

    #[test]
    fn bytes_encode_as_go_does() {
        let m = M {
            data: (0..=255).collect(),
            ..M::default()
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""data":"AAECAwQF"#), "{json}");
        assert!(json.contains(r#""shared":"""#), "{json}");
        let back: M = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_base64_is_a_clear_error() {
        let e = serde_json::from_str::<M>(r#"{"data":"not base64!"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid base64"), "{e}");
        let e = serde_json::from_str::<M>(r#"{"data":[256]}"#).unwrap_err();
        assert!(e.to_string().contains("256"), "{e}");
    }
}
