//! go-micro's wire error: `{"id", "code", "detail", "status"}`.
//!
//! Every failed call ends as an [`RpcError`]: errors returned by handlers, errors
//! the server raises (unknown endpoint, bad body, timeout) and errors the client
//! raises (service not found, no node available, transport failure). Its JSON is
//! go-micro's, so a Go client sees the same id, code and detail as a Rust one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A go-micro error: what travels in the `Micro-Error` header of a failed call.
///
/// Its `Display` is the JSON, exactly as go-micro's `Error()` string, so an error
/// passes through any layer that only keeps strings and can be parsed back.
///
/// ```
/// use micro::RpcError;
///
/// let e = RpcError::bad_request("helloworld", "name is required");
/// assert_eq!(
///     e.to_string(),
///     r#"{"id":"helloworld","code":400,"detail":"name is required","status":"Bad Request"}"#
/// );
/// assert_eq!(RpcError::parse(&e.to_string()), e);
/// // Anything that is not go-micro JSON becomes the detail.
/// assert_eq!(RpcError::parse("boom").detail, "boom");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RpcError {
    /// Who raised it, usually a service name or `go.micro.client` / `go.micro.server`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// An HTTP-like status code (0 when unknown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The HTTP reason phrase of `code`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

fn is_zero(c: &i32) -> bool {
    *c == 0
}

impl RpcError {
    /// An error with the given id, detail and code; the status is the code's reason
    /// phrase.
    pub fn new(id: impl Into<String>, detail: impl Into<String>, code: i32) -> Self {
        RpcError {
            id: id.into(),
            code,
            detail: detail.into(),
            status: status_text(code).to_owned(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 400)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 401)
    }

    /// 403 Forbidden.
    pub fn forbidden(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 403)
    }

    /// 404 Not Found.
    pub fn not_found(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 404)
    }

    /// 405 Method Not Allowed.
    pub fn method_not_allowed(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 405)
    }

    /// 408 Request Timeout (what a deadline that passed becomes).
    pub fn timeout(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 408)
    }

    /// 409 Conflict.
    pub fn conflict(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 409)
    }

    /// 500 Internal Server Error.
    pub fn internal(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, detail, 500)
    }

    /// Parses an error string as go-micro does: go-micro JSON when it is, otherwise
    /// the whole string becomes the detail (code 0).
    pub fn parse(s: &str) -> Self {
        match serde_json::from_str::<RpcError>(s) {
            Ok(e) => e,
            Err(_) => RpcError {
                detail: s.to_owned(),
                ..Default::default()
            },
        }
    }

    /// The JSON form (fields in go-micro's order, empty ones left out).
    pub fn to_json(&self) -> String {
        // Serialising four plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::error::Error for RpcError {}

/// The codes go-micro's `errors` package names, and the ones this framework
/// raises, as an enum; any other code is [`Code::Other`]. The wire keeps the
/// number ([`RpcError::code`]); [`RpcError::kind`] reads it as a `Code`.
///
/// ```
/// use micro::errors::Code;
/// use micro::RpcError;
///
/// let e = RpcError::with_code("greeter", "slow down", Code::TooManyRequests);
/// assert_eq!((e.code, e.kind()), (429, Code::TooManyRequests));
/// assert_eq!(RpcError::new("x", "teapot", 418).kind(), Code::Other(418));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 400: the request cannot be decoded or is invalid.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404: unknown service or endpoint (go-micro's routing error), no subscribers.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: a deadline passed.
    Timeout,
    /// 409.
    Conflict,
    /// 413: a message over the size limit.
    PayloadTooLarge,
    /// 429: a rate limit refused the call.
    TooManyRequests,
    /// 500: the handler failed, or an internal error.
    InternalServerError,
    /// 501.
    NotImplemented,
    /// 502.
    BadGateway,
    /// 503: overloaded, draining, or a circuit breaker open.
    ServiceUnavailable,
    /// 504.
    GatewayTimeout,
    /// Any other code (0 when none was given).
    Other(i32),
}

impl Code {
    /// The number on the wire.
    pub fn as_i32(self) -> i32 {
        match self {
            Code::BadRequest => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::Timeout => 408,
            Code::Conflict => 409,
            Code::PayloadTooLarge => 413,
            Code::TooManyRequests => 429,
            Code::InternalServerError => 500,
            Code::NotImplemented => 501,
            Code::BadGateway => 502,
            Code::ServiceUnavailable => 503,
            Code::GatewayTimeout => 504,
            Code::Other(c) => c,
        }
    }

    /// Whether the caller is at fault (4xx).
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.as_i32())
    }

    /// Whether the server is at fault (5xx).
    pub fn is_server_error(self) -> bool {
        (500..600).contains(&self.as_i32())
    }
}

impl From<i32> for Code {
    fn from(c: i32) -> Self {
        match c {
            400 => Code::BadRequest,
            401 => Code::Unauthorized,
            403 => Code::Forbidden,
            404 => Code::NotFound,
            405 => Code::MethodNotAllowed,
            408 => Code::Timeout,
            409 => Code::Conflict,
            413 => Code::PayloadTooLarge,
            429 => Code::TooManyRequests,
            500 => Code::InternalServerError,
            501 => Code::NotImplemented,
            502 => Code::BadGateway,
            503 => Code::ServiceUnavailable,
            504 => Code::GatewayTimeout,
            c => Code::Other(c),
        }
    }
}

impl From<Code> for i32 {
    fn from(c: Code) -> i32 {
        c.as_i32()
    }
}

impl RpcError {
    /// An error with a [`Code`].
    pub fn with_code(id: impl Into<String>, detail: impl Into<String>, code: Code) -> Self {
        RpcError::new(id, detail, code.as_i32())
    }

    /// The code as a [`Code`].
    pub fn kind(&self) -> Code {
        Code::from(self.code)
    }
}

/// The HTTP reason phrase of `code` (`""` for codes without one), spelled as Go's
/// `net/http.StatusText` spells it: go-micro fills an error's `status` with it, so
/// Go peers see the same text from a Rust service (`418` is `I'm a teapot`, `413`
/// `Request Entity Too Large`).
pub fn status_text(code: i32) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn every_named_code_round_trips_and_has_go_s_status_text() {
        for c in (0..700).map(Code::from) {
            assert_eq!(Code::from(c.as_i32()), c);
            if !matches!(c, Code::Other(_)) {
                assert!(!status_text(c.as_i32()).is_empty(), "{c:?}");
            }
        }
        assert!(Code::TooManyRequests.is_client_error());
        assert!(Code::ServiceUnavailable.is_server_error());
        assert!(!Code::Other(0).is_client_error());
    }
}
