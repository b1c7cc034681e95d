//! Endpoint shapes derived from types: [`describe`] turns a request or response type
//! into the registry [`Value`] tree go-micro publishes for each endpoint.
//!
//! It needs nothing but the type's serde `Deserialize` implementation: the type is
//! deserialised once from a tracing deserializer that records what the
//! implementation asks for (struct and field names as serde sees them, renames
//! included, and the type of every field). Type names follow Go's spelling, as Go
//! peers and tools expect: `string`, `bool`, `int32`, `int64`, `uint64`, `float64`,
//! `[]T`, `[]byte`, `map[K]V`, and the Rust name of structs and enums. An `Option<T>`
//! is described as `T`.
//!
//! Like go-micro, the tree stops at three levels: the root, its fields and their
//! fields. Types whose `Deserialize` cannot be traced (they validate their input, or
//! use `deserialize_any`-driven forms such as untagged enums or `flatten`) get a root
//! value with their name and no fields, never an error.
//!
//! ```text
//! use micro::describe::describe;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct CallRequest {
//!     name: String,
//!     #[serde(rename = "tags")]
//!     labels: Vec<String>,
//!     retries: Option<u32>,
//! }
//!
//! let v = describe::<CallRequest>();
//! assert_eq!((v.name.as_str(), v.type_name.as_str()), ("CallRequest", "CallRequest"));
//! let fields: Vec<(&str, &str)> =
//!     v.values.iter().map(|f| (f.name.as_str(), f.type_name.as_str())).collect();
//! assert_eq!(fields, [("name", "string"), ("tags", "[]string"), ("retries", "uint32")]);
//! ```

use std::fmt;

use micro_registry::Value;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

/// Levels of the published tree: root, fields, sub-fields (go-micro's limit).
const PUBLISHED_DEPTH: usize = 3;
/// Past this depth lists, maps and options are traced empty, which ends recursive
/// types; past `HARD_LIMIT` tracing gives up.
const HARD_LIMIT: usize = 32;

/// The [`Value`] tree describing `T`.
pub(crate) fn describe<T: DeserializeOwned>() -> Value {
    let mut shape = Shape::default();
    match T::deserialize(Tracer {
        shape: &mut shape,
        depth: 0,
    }) {
        Ok(_) => {
            let mut v = shape.into_value(0);
            v.name = v.type_name.clone();
            v
        }
        Err(e) => {
            tracing::debug!(ty = std::any::type_name::<T>(), error = %e, "type cannot be described");
            let name = short_type_name(std::any::type_name::<T>());
            Value {
                name: name.clone(),
                type_name: name,
                values: Vec::new(),
            }
        }
    }
}

/// `a::b::Foo<c::Bar>` becomes `Foo`.
fn short_type_name(full: &str) -> String {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

/// What the tracer learnt about one type.
#[derive(Default)]
struct Shape {
    type_name: String,
    fields: Vec<(String, Shape)>,
}

impl Shape {
    fn into_value(self, depth: usize) -> Value {
        let values = if depth + 1 < PUBLISHED_DEPTH {
            self.fields
                .into_iter()
                .map(|(name, s)| s.into_field(name, depth + 1))
                .collect()
        } else {
            Vec::new()
        };
        Value {
            name: String::new(),
            type_name: self.type_name,
            values,
        }
    }

    fn into_field(self, name: String, depth: usize) -> Value {
        let mut v = self.into_value(depth);
        v.name = name;
        v
    }
}

#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

/// A deserializer that answers every request with a default value and records it.
struct Tracer<'a> {
    shape: &'a mut Shape,
    depth: usize,
}

impl Tracer<'_> {
    fn check_depth(&self) -> Result<(), TraceError> {
        if self.depth > HARD_LIMIT {
            Err(TraceError("type nests too deeply to describe".into()))
        } else {
            Ok(())
        }
    }

    fn deep(&self) -> bool {
        self.depth >= PUBLISHED_DEPTH
    }
}

macro_rules! primitive {
    ($($method:ident => $name:literal, $visit:ident($($value:expr)?);)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
            self.shape.type_name = $name.into();
            v.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    primitive! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "int8", visit_i8(0);
        deserialize_i16 => "int16", visit_i16(0);
        deserialize_i32 => "int32", visit_i32(0);
        deserialize_i64 => "int64", visit_i64(0);
        deserialize_i128 => "int128", visit_i128(0);
        deserialize_u8 => "uint8", visit_u8(0);
        deserialize_u16 => "uint16", visit_u16(0);
        deserialize_u32 => "uint32", visit_u32(0);
        deserialize_u64 => "uint64", visit_u64(0);
        deserialize_u128 => "uint128", visit_u128(0);
        deserialize_f32 => "float32", visit_f32(0.0);
        deserialize_f64 => "float64", visit_f64(0.0);
        deserialize_char => "rune", visit_char('\0');
        deserialize_str => "string", visit_borrowed_str("");
        deserialize_string => "string", visit_borrowed_str("");
        deserialize_bytes => "[]byte", visit_borrowed_bytes(&[]);
        deserialize_byte_buf => "[]byte", visit_borrowed_bytes(&[]);
        deserialize_unit => "", visit_unit();
        deserialize_identifier => "string", visit_borrowed_str("");
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        self.shape.type_name = "interface{}".into();
        v.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        v.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        if self.deep() {
            return v.visit_none();
        }
        v.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, TraceError> {
        self.shape.type_name = name.into();
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        let out = v.visit_newtype_struct(Tracer {
            shape: &mut *self.shape,
            depth: self.depth,
        })?;
        self.shape.type_name = name.into();
        Ok(out)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        let mut elem = Shape::default();
        let n = usize::from(!self.deep());
        let out = v.visit_seq(Elements {
            shape: &mut elem,
            depth: self.depth + 1,
            left: n,
        })?;
        self.shape.type_name = format!("[]{}", elem.type_name);
        Ok(out)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        let mut elem = Shape::default();
        let out = v.visit_seq(Elements {
            shape: &mut elem,
            depth: self.depth + 1,
            left: len,
        })?;
        self.shape.type_name = format!("[{len}]{}", elem.type_name);
        Ok(out)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        let mut elem = Shape::default();
        let out = v.visit_seq(Elements {
            shape: &mut elem,
            depth: self.depth + 1,
            left: len,
        })?;
        self.shape.type_name = name.into();
        Ok(out)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        let (mut key, mut value) = (Shape::default(), Shape::default());
        let entries = usize::from(!self.deep());
        let out = v.visit_map(Entries {
            key: &mut key,
            value: &mut value,
            depth: self.depth + 1,
            left: entries,
        })?;
        self.shape.type_name = format!("map[{}]{}", key.type_name, value.type_name);
        Ok(out)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        self.shape.type_name = name.into();
        v.visit_map(Fields {
            shape: &mut *self.shape,
            fields,
            next: 0,
            depth: self.depth,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, TraceError> {
        self.check_depth()?;
        self.shape.type_name = name.into();
        let variant = variants.first().copied().unwrap_or("");
        v.visit_enum(Variant {
            variant,
            depth: self.depth,
        })
    }
}

/// Yields `left` traced elements (the first one recorded).
struct Elements<'a> {
    shape: &'a mut Shape,
    depth: usize,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Tracer {
            shape: &mut *self.shape,
            depth: self.depth,
        })
        .map(Some)
    }
}

/// Yields `left` traced map entries.
struct Entries<'a> {
    key: &'a mut Shape,
    value: &'a mut Shape,
    depth: usize,
    left: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Tracer {
            shape: &mut *self.key,
            depth: self.depth,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        seed.deserialize(Tracer {
            shape: &mut *self.value,
            depth: self.depth,
        })
    }
}

/// Yields every field of a struct by name, tracing each value.
struct Fields<'a> {
    shape: &'a mut Shape,
    fields: &'static [&'static str],
    next: usize,
    depth: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        let Some(name) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let name = self.fields.get(self.next).copied().unwrap_or("");
        self.next += 1;
        let mut field = Shape::default();
        let out = seed.deserialize(Tracer {
            shape: &mut field,
            depth: self.depth + 1,
        })?;
        self.shape.fields.push((name.to_owned(), field));
        Ok(out)
    }
}

/// Picks the first variant of an enum and traces its content.
struct Variant {
    variant: &'static str,
    depth: usize,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), TraceError> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for Variant {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, TraceError> {
        let mut inner = Shape::default();
        seed.deserialize(Tracer {
            shape: &mut inner,
            depth: self.depth + 1,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, TraceError> {
        let mut elem = Shape::default();
        v.visit_seq(Elements {
            shape: &mut elem,
            depth: self.depth + 1,
            left: len,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, TraceError> {
        let mut inner = Shape::default();
        v.visit_map(Fields {
            shape: &mut inner,
            fields,
            next: 0,
            depth: self.depth,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::describe;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        map: BTreeMap<String, i64>,
        raw: serde_bytes_like::Raw,
        choice: Choice,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        deep: Deeper,
        flag: bool,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Deeper {
        level3: String,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Choice {
        A,
        B(u8),
    }

    mod serde_bytes_like {
        /// A newtype over bytes, described by its own name.
        #[derive(serde::Deserialize)]
        pub(super) struct Raw(#[allow(dead_code)] pub(crate) Vec<u8>);
    }

    #[test]
    fn descriptions_follow_go_micros_shape_and_depth() {
        let v = describe::<Outer>();
        assert_eq!((v.name.as_str(), v.type_name.as_str()), ("Outer", "Outer"));
        let field = |name: &str| v.values.iter().find(|f| f.name == name).unwrap();
        assert_eq!(field("inner").type_name, "Inner");
        assert_eq!(field("list").type_name, "[]Inner");
        assert_eq!(field("map").type_name, "map[string]int64");
        assert_eq!(field("raw").type_name, "Raw");
        assert_eq!(field("choice").type_name, "Choice");
        // Three levels: Outer -> inner -> deep; deep's own fields are not published.
        let inner = field("inner");
        let deep = inner.values.iter().find(|f| f.name == "deep").unwrap();
        assert_eq!(deep.type_name, "Deeper");
        assert!(deep.values.is_empty());
        assert_eq!(
            inner
                .values
                .iter()
                .find(|f| f.name == "flag")
                .unwrap()
                .type_name,
            "bool"
        );
    }

    #[test]
    fn recursive_and_untraceable_types_still_get_a_description() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Tree {
            children: Vec<Tree>,
            parent: Option<Box<Tree>>,
        }
        let t = describe::<Tree>();
        assert_eq!(t.type_name, "Tree");
        assert_eq!(t.values[0].type_name, "[]Tree");

        #[derive(Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Either {
            N(u32),
            S(String),
        }
        let e = describe::<Either>();
        assert_eq!((e.name.as_str(), e.values.len()), ("Either", 0));
        assert_eq!(describe::<String>().type_name, "string");
        assert_eq!(describe::<serde_json::Value>().type_name, "interface{}");
    }
}
