//! Header names and helpers of go-micro's RPC protocol ("mucp") over a transport.

use micro_transport::Header;

pub(crate) const MICRO_SERVICE: &str = "Micro-Service";
pub(crate) const MICRO_ENDPOINT: &str = "Micro-Endpoint";
pub(crate) const MICRO_METHOD: &str = "Micro-Method";
pub(crate) const MICRO_ID: &str = "Micro-Id";
pub(crate) const MICRO_STREAM: &str = "Micro-Stream";
pub(crate) const MICRO_ERROR: &str = "Micro-Error";
pub(crate) const MICRO_TOPIC: &str = "Micro-Topic";
pub(crate) const CONTENT_TYPE: &str = "Content-Type";
pub(crate) const ACCEPT: &str = "Accept";
pub(crate) const TIMEOUT: &str = "Timeout";

/// The `Micro-Error` value that ends a stream.
pub(crate) const EOS: &str = "EOS";

/// The content type a go-micro server assumes when a request names none.
pub(crate) const SERVER_DEFAULT_CONTENT_TYPE: &str = "application/protobuf";

/// Id of errors raised by the server itself.
pub(crate) const SERVER_ID: &str = "go.micro.server";
/// Id of errors raised by the client itself.
pub(crate) const CLIENT_ID: &str = "go.micro.client";
/// Id of errors raised by the client's transport.
pub(crate) const CLIENT_TRANSPORT_ID: &str = "go.micro.client.transport";
/// Id of errors raised by the client's codec.
pub(crate) const CLIENT_CODEC_ID: &str = "go.micro.client.codec";

/// Headers that describe one hop and are never copied from a request's metadata
/// into an outgoing call.
pub(crate) const HOP_HEADERS: &[&str] = &[
    "Micro-Service",
    "Micro-Endpoint",
    "Micro-Method",
    "Micro-Id",
    "Micro-Stream",
    "Micro-Error",
    "Micro-Topic",
    "X-Micro-Service",
    "X-Micro-Endpoint",
    "X-Micro-Method",
    "X-Micro-Id",
    "X-Micro-Stream",
    "X-Micro-Error",
    "Content-Type",
    "Content-Length",
    "Accept",
    "Timeout",
    "Host",
    "User-Agent",
    "Connection",
    "Transfer-Encoding",
    "Expect",
    "Accept-Encoding",
    "Local",
    "Remote",
];

/// A `Micro-*` header, or its `X-Micro-*` twin, which go-micro servers also accept.
pub(crate) fn micro_header<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    if let Some(v) = h.get(name).filter(|v| !v.is_empty()) {
        return Some(v);
    }
    h.iter()
        .find(|(k, v)| {
            // bytes, not str slices: a name from a peer may hold multi-byte chars
            let k = k.as_bytes();
            !v.is_empty()
                && k.len() == name.len() + 2
                && k[..2].eq_ignore_ascii_case(b"x-")
                && k[2..].eq_ignore_ascii_case(name.as_bytes())
        })
        .map(|(_, v)| v)
}

/// Sets a header unless the value is empty.
pub(crate) fn set(h: &mut Header, name: &str, value: &str) {
    if !value.is_empty() {
        h.insert(name, value);
    }
}

/// Sets a `Micro-*` header and its `X-` twin, as go-micro servers do.
pub(crate) fn set_twin(h: &mut Header, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    h.insert(name, value);
    let mut x = String::with_capacity(name.len() + 2);
    x.push_str("X-");
    x.push_str(name);
    h.insert(x, value);
}

/// Sets `Local` and `Remote` to the connection's (local, remote) addresses, as
/// go-micro's servers do in a handler's metadata.
pub(crate) fn set_addresses(h: &mut Header, addrs: &(String, String)) {
    h.insert("Local", addrs.0.as_str());
    h.insert("Remote", addrs.1.as_str());
}

/// Whether a header belongs to the hop rather than to the caller's metadata.
pub(crate) fn is_hop_header(name: &str) -> bool {
    HOP_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_of_any_characters_do_not_panic() {
        // "é" is two bytes: slicing the str at 2 would split it.
        let mut h = Header::new();
        h.insert("éMicro-Error", "x");
        h.insert("ÿÿ-Micro-Service", "y");
        h.insert("X-Micro-Id", "7");
        assert_eq!(micro_header(&h, MICRO_ERROR), None);
        assert_eq!(micro_header(&h, MICRO_ID), Some("7"));
    }
}
