//! go-micro's Consul tag encoding: how a node's metadata, its service's endpoints
//! and version travel in the `Tags` of a Consul service registration.
//!
//! | tag | content |
//! |---|---|
//! | `t-` + hex(zlib(JSON `{"key":"value"}`)) | one per node metadata pair |
//! | `e-` + hex(zlib(JSON of one endpoint)) | one per endpoint, in order |
//! | `v-` + hex(zlib(version)) | exactly one |
//!
//! Decoding also accepts go-micro's older plain forms `t=` + JSON, `e=` + JSON and
//! `v=` + text. It is strict where go-micro is not: only tags starting with exactly
//! one of these six prefixes are read, so foreign tags (`test`, `traefik.enable=true`,
//! a bare `t`) are ignored instead of hiding or breaking the real ones, and a tag with
//! a valid prefix whose content does not decode (bad hex, bad zlib, bad JSON) is
//! skipped with a warning.
//!
//! ```
//! use micro_consul::tags;
//!
//! // go-micro's own test vector for version 1.0.0:
//! let tags = vec!["v-789c32d433d03300040000ffff02ce00ee".to_owned()];
//! assert_eq!(tags::decode_version(&tags).as_deref(), Some("1.0.0"));
//! ```

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use micro_registry::{Endpoint, MetadataMap, Node, ServiceRecord};

/// The most bytes one tag may inflate to; anything longer is rejected as garbage
/// (a zlib bomb would otherwise cost memory).
pub const MAX_DECODED_LEN: usize = 1 << 20;

/// Every tag go-micro writes for `node` of `service`: metadata tags, then endpoint
/// tags, then the version tag.
pub fn encode_tags(service: &ServiceRecord, node: &Node) -> Vec<String> {
    let mut tags = encode_metadata(&node.metadata);
    tags.extend(encode_endpoints(&service.endpoints));
    tags.push(encode_version(&service.version));
    tags
}

/// One `t-` tag per metadata pair, in key order.
pub fn encode_metadata(md: &MetadataMap) -> Vec<String> {
    md.iter()
        .map(|(k, v)| {
            let mut one = MetadataMap::new();
            one.insert(k.clone(), v.clone());
            // A map of strings always serialises.
            let json = serde_json::to_vec(&one).unwrap_or_default();
            format!("t-{}", encode(&json))
        })
        .collect()
}

/// One `e-` tag per endpoint, in order.
pub fn encode_endpoints(endpoints: &[Endpoint]) -> Vec<String> {
    endpoints
        .iter()
        .map(|e| {
            // The registry model always serialises.
            let json = serde_json::to_vec(e).unwrap_or_default();
            format!("e-{}", encode(&json))
        })
        .collect()
}

/// The `v-` tag of a version.
pub fn encode_version(version: &str) -> String {
    format!("v-{}", encode(version.as_bytes()))
}

/// The version carried by the first version tag that decodes; `None` when no tag
/// carries one.
pub fn decode_version(tags: &[String]) -> Option<String> {
    tags.iter().find_map(|tag| {
        let data = decode_tag(tag, 'v')?;
        match String::from_utf8(data) {
            Ok(v) => Some(v),
            Err(_) => {
                skip(tag, "version is not utf-8");
                None
            }
        }
    })
}

/// Node metadata: the pairs of every metadata tag that decodes, merged (a later
/// tag wins for a repeated key).
pub fn decode_metadata(tags: &[String]) -> MetadataMap {
    let mut md = MetadataMap::new();
    for tag in tags {
        let Some(data) = decode_tag(tag, 't') else {
            continue;
        };
        match serde_json::from_slice::<MetadataMap>(&data) {
            Ok(pairs) => md.extend(pairs),
            Err(e) => skip(tag, &format!("not a json object of strings: {e}")),
        }
    }
    md
}

/// The endpoints of every endpoint tag that decodes, in tag order.
pub fn decode_endpoints(tags: &[String]) -> Vec<Endpoint> {
    tags.iter()
        .filter_map(|tag| {
            let data = decode_tag(tag, 'e')?;
            match serde_json::from_slice::<Endpoint>(&data) {
                Ok(e) => Some(e),
                Err(e) => {
                    skip(tag, &format!("not an endpoint: {e}"));
                    None
                }
            }
        })
        .collect()
}

/// The content of `tag` if it is a `kind` tag (`<kind>-hex` or `<kind>=plain`);
/// `None` for other tags and for tags that do not decode (logged).
fn decode_tag(tag: &str, kind: char) -> Option<Vec<u8>> {
    let mut chars = tag.chars();
    if chars.next() != Some(kind) {
        return None;
    }
    let rest = chars.as_str();
    if let Some(plain) = rest.strip_prefix('=') {
        return Some(plain.as_bytes().to_vec());
    }
    let hex = rest.strip_prefix('-')?;
    match decode(hex) {
        Ok(data) => Some(data),
        Err(reason) => {
            skip(tag, &reason);
            None
        }
    }
}

fn skip(tag: &str, reason: &str) {
    let shown: String = tag.chars().take(64).collect();
    tracing::warn!(tag = %shown, reason, "consul: skipping a malformed go-micro tag");
}

/// Lowercase hex of a zlib stream of `data` (go-micro's `encode`).
pub fn encode(data: &[u8]) -> String {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(data);
    hex::encode(z.finish().unwrap_or_default())
}

/// The inverse of [`encode`]: fails on bad hex, a bad or truncated zlib stream,
/// or content longer than [`MAX_DECODED_LEN`].
pub fn decode(hex_text: &str) -> Result<Vec<u8>, String> {
    let raw = hex::decode(hex_text).map_err(|e| format!("bad hex: {e}"))?;
    let mut out = Vec::new();
    ZlibDecoder::new(raw.as_slice())
        .take(MAX_DECODED_LEN as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad zlib: {e}"))?;
    if out.len() > MAX_DECODED_LEN {
        return Err(format!("inflates to more than {MAX_DECODED_LEN} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_registry::Value;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn go_micro_version_vectors() {
        // From go-micro's TestEncodingVersion (Go's zlib output).
        assert_eq!(
            decode_version(&s(&["v-789c32d433d03300040000ffff02ce00ee"])).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            decode_version(&s(&["v-789cca492c492d2e01040000ffff08cc028e"])).as_deref(),
            Some("latest")
        );
        // Our encoding differs in bytes but decodes the same.
        for v in ["1.0.0", "latest", ""] {
            assert_eq!(decode_version(&[encode_version(v)]).as_deref(), Some(v));
        }
    }

    #[test]
    fn plain_forms() {
        let tags = s(&[
            "v=1.2.3",
            r#"t={"a":"b"}"#,
            r#"e={"name":"Greeter.Hello","request":null,"response":null,"metadata":{"stream":"true"}}"#,
        ]);
        assert_eq!(decode_version(&tags).as_deref(), Some("1.2.3"));
        assert_eq!(decode_metadata(&tags)["a"], "b");
        let eps = decode_endpoints(&tags);
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].name, "Greeter.Hello");
        assert_eq!(eps[0].metadata["stream"], "true");
    }

    #[test]
    fn round_trip() {
        let mut md = MetadataMap::new();
        md.insert("protocol".into(), "mucp".into());
        md.insert("odd key.with/chars".into(), "ü \"quoted\" <>&".into());
        let ep = Endpoint {
            name: "Greeter.Hello".into(),
            request: Some(Value {
                name: "Request".into(),
                type_name: "Request".into(),
                values: vec![Value {
                    name: "name".into(),
                    type_name: "string".into(),
                    values: vec![],
                }],
            }),
            response: None,
            metadata: [("endpoint".to_owned(), "x".to_owned())].into(),
        };
        let svc = ServiceRecord {
            name: "greeter".into(),
            version: "2.0".into(),
            endpoints: vec![ep.clone(), Endpoint::default()],
            ..Default::default()
        };
        let node = Node {
            id: "greeter-1".into(),
            address: "127.0.0.1:1".into(),
            metadata: md.clone(),
        };
        let tags = encode_tags(&svc, &node);
        assert_eq!(tags.len(), 2 + 2 + 1);
        assert!(
            tags[0].starts_with("t-") && tags[2].starts_with("e-") && tags[4].starts_with("v-")
        );
        assert_eq!(decode_metadata(&tags), md);
        assert_eq!(decode_endpoints(&tags), vec![ep, Endpoint::default()]);
        assert_eq!(decode_version(&tags).as_deref(), Some("2.0"));
    }

    #[test]
    fn foreign_and_garbage_tags_are_ignored() {
        let garbage_zlib = format!("t-{}", hex::encode(b"this is not zlib"));
        let bomb = format!("e-{}", encode(&vec![b'a'; MAX_DECODED_LEN + 10]));
        let not_json = format!("t-{}", encode(b"not json"));
        let tags = vec![
            "test".to_owned(),
            "t".to_owned(),
            "e".to_owned(),
            "v".to_owned(),
            "".to_owned(),
            "traefik.enable=true".to_owned(),
            "t-zz".to_owned(),
            "e-0".to_owned(),
            "v-xyz".to_owned(),
            garbage_zlib,
            bomb,
            not_json,
            "é".to_owned(),
            encode_metadata(&[("k".to_owned(), "v".to_owned())].into())[0].clone(),
            encode_version("1"),
        ];
        assert_eq!(decode_version(&tags).as_deref(), Some("1"));
        let md = decode_metadata(&tags);
        assert_eq!(md.len(), 1);
        assert_eq!(md["k"], "v");
        assert!(decode_endpoints(&tags).is_empty());
    }

    #[test]
    fn truncated_or_empty_streams_are_errors() {
        let full = encode(b"hello world, hello world");
        assert!(decode("").is_err());
        assert!(decode("00").is_err());
        assert!(decode(&full[..full.len() - 8]).is_err(), "missing checksum");
        assert!(decode(&full[..10]).is_err(), "cut in the middle");
        assert_eq!(decode(&full).unwrap(), b"hello world, hello world");
    }

    #[test]
    fn no_version_tag() {
        assert_eq!(decode_version(&s(&["test", "v"])), None);
    }
}
