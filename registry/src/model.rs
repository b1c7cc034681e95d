//! The registry model: [`ServiceRecord`], [`Node`], [`Endpoint`] and [`Value`], read and
//! written exactly as go-micro's registry JSON.
//!
//! Writing follows go-micro's producers field for field and in their field order
//! (that of go-micro v4.11 and v5: a node is written `metadata, id, address`, an
//! endpoint `request, response, metadata, name`; v4.9 and older put `name`/`id`
//! first, which reads the same):
//! every field is present (no field is ever skipped), a service's empty `metadata` and
//! `endpoints` and a value's empty `values` are written as `null` (Go's nil), while
//! node and endpoint metadata are always objects (`{}` when empty), as go-micro
//! servers and brokers write them.
//!
//! Reading is as lenient as Go's `encoding/json`: field names match
//! case-insensitively, unknown fields are ignored, missing fields take their empty
//! value, `null` is accepted for every string, map, list and list element (a `null`
//! element of a list is skipped, a `null` map value reads as `""`).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// String-to-string metadata, ordered by key as Go writes map keys.
pub type MetadataMap = BTreeMap<String, String>;

/// A service as stored in the registry: one name and version, with its endpoints and
/// the nodes that serve it.
///
/// A registry returns one `ServiceRecord` per version of a name.
///
/// ```
/// use micro_registry::{Node, ServiceRecord};
///
/// let json = r#"{"name":"helloworld","version":"latest","metadata":null,"endpoints":[],
///   "nodes":[{"id":"helloworld-1","address":"127.0.0.1:8080","metadata":{"protocol":"mucp"}}]}"#;
/// let svc: ServiceRecord = serde_json::from_str(json).unwrap();
/// assert_eq!(svc.nodes[0].metadata["protocol"], "mucp");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Service name, e.g. `helloworld`.
    pub name: String,
    /// Version; go-micro servers use `latest` unless told otherwise.
    pub version: String,
    /// Service-level metadata (go-micro servers leave it empty).
    pub metadata: MetadataMap,
    /// Endpoints served, `Handler.Method` names with request/response shapes.
    pub endpoints: Vec<Endpoint>,
    /// The nodes (processes) serving this version.
    pub nodes: Vec<Node>,
}

/// One instance of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Unique id, `<service>-<uuid>` for go-micro servers.
    pub id: String,
    /// `host:port` (IPv6 as `[host]:port`).
    pub address: String,
    /// Node metadata: go-micro servers set `transport`, `broker`, `server`,
    /// `registry` and `protocol` (`mucp`).
    pub metadata: MetadataMap,
}

/// An endpoint a service serves, with the shapes of its request and response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// `Handler.Method`, e.g. `Helloworld.Call`.
    pub name: String,
    /// Shape of the request, if known.
    pub request: Option<Value>,
    /// Shape of the response, if known (subscribers have none).
    pub response: Option<Value>,
    /// Endpoint metadata (`stream`, `subscriber`, `topic`, ...).
    pub metadata: MetadataMap,
}

/// The shape of a request or response type: a name, a type name and the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// Field name (the type name for a root value).
    pub name: String,
    /// Type name, e.g. `string`, `int64`, `[]string` or a struct name. Written as
    /// JSON `type`.
    pub type_name: String,
    /// Fields of a struct type; empty for scalars.
    pub values: Vec<Value>,
}

impl ServiceRecord {
    /// A copy of this service with no nodes: what a single-node record shares with
    /// its siblings.
    pub fn without_nodes(&self) -> ServiceRecord {
        ServiceRecord {
            name: self.name.clone(),
            version: self.version.clone(),
            metadata: self.metadata.clone(),
            endpoints: self.endpoints.clone(),
            nodes: Vec::new(),
        }
    }

    /// A copy of this service holding only `node`.
    pub fn with_node(&self, node: Node) -> ServiceRecord {
        let mut s = self.without_nodes();
        s.nodes.push(node);
        s
    }
}

impl Node {
    /// A node with the given id and address and no metadata.
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Node {
            id: id.into(),
            address: address.into(),
            metadata: MetadataMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Serialisation: go-micro field order, every field present.

/// A list written as Go writes a slice that may be nil: `null` when empty.
struct NilIfEmpty<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for NilIfEmpty<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_none()
        } else {
            self.0.serialize(s)
        }
    }
}

/// A map written as Go writes a map that may be nil: `null` when empty.
struct NilMapIfEmpty<'a>(&'a MetadataMap);

impl Serialize for NilMapIfEmpty<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_none()
        } else {
            self.0.serialize(s)
        }
    }
}

impl Serialize for ServiceRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Service", 5)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("metadata", &NilMapIfEmpty(&self.metadata))?;
        st.serialize_field("endpoints", &NilIfEmpty(&self.endpoints))?;
        st.serialize_field("nodes", &NilIfEmpty(&self.nodes))?;
        st.end()
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Node", 3)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("address", &self.address)?;
        st.end()
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Endpoint", 4)?;
        st.serialize_field("request", &self.request)?;
        st.serialize_field("response", &self.response)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.serialize_field("name", &self.name)?;
        st.end()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Value", 3)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("type", &self.type_name)?;
        st.serialize_field("values", &NilIfEmpty(&self.values))?;
        st.end()
    }
}

// ---------------------------------------------------------------------------------
// Deserialisation: case-insensitive names, nulls everywhere, unknown fields ignored.

/// A string that may be `null`.
struct NullableString(String);

impl<'de> Deserialize<'de> for NullableString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NullableString(
            Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// A map that may be `null`, with values that may be `null`.
struct NullableMap(MetadataMap);

impl<'de> Deserialize<'de> for NullableMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
        Ok(NullableMap(
            m.into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        ))
    }
}

/// A list that may be `null`, whose `null` elements are skipped.
struct NullableList<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NullableList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = Vec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list or null")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
                Ok(Vec::new())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
                d.deserialize_seq(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element::<Option<T>>()? {
                    out.extend(item);
                }
                Ok(out)
            }
        }

        d.deserialize_option(ListVisitor(PhantomData))
            .map(NullableList)
    }
}

/// Implements `Deserialize` for a model struct: a JSON object (or `null`, read as the
/// empty value) whose keys match the listed names case-insensitively.
macro_rules! deserialize_model {
    ($ty:ident, $expecting:literal, { $($key:literal => $field:ident: $wrap:ty),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct ModelVisitor;

                impl<'de> Visitor<'de> for ModelVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_unit<E: serde::de::Error>(self) -> Result<$ty, E> {
                        Ok($ty::default())
                    }

                    fn visit_none<E: serde::de::Error>(self) -> Result<$ty, E> {
                        Ok($ty::default())
                    }

                    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$ty, D::Error> {
                        d.deserialize_map(self)
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some(key) = map.next_key::<String>()? {
                            $(
                                if key.eq_ignore_ascii_case($key) {
                                    out.$field = map.next_value::<$wrap>()?.into_inner();
                                    continue;
                                }
                            )*
                            map.next_value::<IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }

                d.deserialize_option(ModelVisitor)
            }
        }
    };
}

trait IntoInner {
    type Inner;
    fn into_inner(self) -> Self::Inner;
}

impl IntoInner for NullableString {
    type Inner = String;
    fn into_inner(self) -> String {
        self.0
    }
}

impl IntoInner for NullableMap {
    type Inner = MetadataMap;
    fn into_inner(self) -> MetadataMap {
        self.0
    }
}

impl<T> IntoInner for NullableList<T> {
    type Inner = Vec<T>;
    fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T> IntoInner for Option<T> {
    type Inner = Option<T>;
    fn into_inner(self) -> Option<T> {
        self
    }
}

deserialize_model!(ServiceRecord, "a registry service object", {
    "name" => name: NullableString,
    "version" => version: NullableString,
    "metadata" => metadata: NullableMap,
    "endpoints" => endpoints: NullableList<Endpoint>,
    "nodes" => nodes: NullableList<Node>,
});

deserialize_model!(Node, "a registry node object", {
    "id" => id: NullableString,
    "address" => address: NullableString,
    "metadata" => metadata: NullableMap,
});

deserialize_model!(Endpoint, "a registry endpoint object", {
    "name" => name: NullableString,
    "request" => request: Option<Value>,
    "response" => response: Option<Value>,
    "metadata" => metadata: NullableMap,
});

deserialize_model!(Value, "a registry value object", {
    "name" => name: NullableString,
    "type" => type_name: NullableString,
    "values" => values: NullableList<Value>,
});
