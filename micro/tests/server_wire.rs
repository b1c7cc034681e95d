//! The server on the wire: requests exactly as go-micro's Go client writes them,
//! and every kind of bad input, each answered clearly while the server serves on.

#![allow(clippy::unwrap_used)]

mod common;

use common::{RawConn, go_request};
use micro::RpcError;
use micro::server::Server;

async fn server() -> micro::server::RpcServer {
    common::start(common::options(common::memory()), "s1")
        .await
        .0
}

fn error_of(rsp: &common::RawResponse) -> RpcError {
    RpcError::parse(rsp.header("Micro-Error").expect("Micro-Error header"))
}

#[tokio::test]
async fn a_go_shaped_request_reaches_the_handler_and_gets_go_micros_answer() {
    let server = server().await;
    let addr = server.address().unwrap();
    let mut conn = RawConn::connect(&addr).await;
    conn.send(&go_request(
        "Test.Call",
        Some("application/json"),
        &[],
        b"{\"name\":\"Alice\"}\n",
    ))
    .await;
    let rsp = conn.read().await.expect("a response");
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.body, b"{\"msg\":\"Hello Alice from s1\"}\n");
    assert_eq!(rsp.header("Content-Type"), Some("application/json"));
    assert_eq!(rsp.header("Micro-Id"), Some("0"));
    assert_eq!(rsp.header("Micro-Endpoint"), Some("Test.Call"));
    assert!(rsp.header("Micro-Error").is_none());
    // The connection stays open for the next request, as go-micro's client expects.
    conn.send(&go_request(
        "Test.Call",
        Some("application/json"),
        &[],
        b"{\"name\":\"Bob\"}",
    ))
    .await;
    assert_eq!(
        conn.read().await.unwrap().body,
        b"{\"msg\":\"Hello Bob from s1\"}\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn handler_errors_travel_as_go_micro_json_in_micro_error() {
    let server = server().await;
    let mut conn = RawConn::connect(&server.address().unwrap()).await;
    conn.send(&go_request(
        "Test.Fail",
        Some("application/json"),
        &[],
        br#"{"code":404,"detail":"not here"}"#,
    ))
    .await;
    let rsp = conn.read().await.unwrap();
    assert_eq!(rsp.status, 200, "errors are still HTTP 200, as in go-micro");
    assert!(rsp.body.is_empty());
    assert_eq!(
        rsp.header("Micro-Error"),
        Some(r#"{"id":"test","code":404,"detail":"not here","status":"Not Found"}"#)
    );
    assert_eq!(rsp.header("X-Micro-Error"), rsp.header("Micro-Error"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_connection_keeps_serving() {
    let server = server().await;
    let mut conn = RawConn::connect(&server.address().unwrap()).await;
    let cases: Vec<(Vec<u8>, i32, &str)> = vec![
        (
            go_request("Test.Call", Some("application/json"), &[], b"{\"name\":"),
            400,
            "unable to decode request body",
        ),
        (
            go_request("Test.Call", Some("application/json"), &[], b"{\"name\": 7}"),
            400,
            "invalid type",
        ),
        (
            go_request("Test.Nope", Some("application/json"), &[], b"{}"),
            404,
            "rpc: can't find method Nope",
        ),
        (
            go_request("Other.Call", Some("application/json"), &[], b"{}"),
            404,
            "rpc: can't find service Other",
        ),
        (
            go_request("NoDot", Some("application/json"), &[], b"{}"),
            400,
            "request ill-formed: NoDot",
        ),
        (
            go_request("A.B.C", Some("application/json"), &[], b"{}"),
            400,
            "request ill-formed: A.B.C",
        ),
        (
            go_request("Test.Panic", Some("application/json"), &[], b"{}"),
            500,
            "handler panicked: the handler blew up",
        ),
        // No content type: go-micro servers assume protobuf; JSON bytes are no protobuf.
        (
            go_request("Test.Call", None, &[], b"{\"name\":\"x\"}"),
            400,
            "unable to decode request body",
        ),
    ];
    for (req, code, detail) in cases {
        conn.send(&req).await;
        let rsp = conn.read().await.expect("the connection keeps serving");
        let err = error_of(&rsp);
        assert_eq!(err.code, code, "{err}");
        assert!(
            err.detail.contains(detail),
            "{err} should mention {detail:?}"
        );
        assert_eq!(err.id, "go.micro.server");
    }
    // An unknown content type gets go-micro's plain-text answer, plus a real error.
    conn.send(&go_request(
        "Test.Call",
        Some("application/xml"),
        &[],
        b"<x/>",
    ))
    .await;
    let rsp = conn.read().await.unwrap();
    assert_eq!(rsp.body, b"Unsupported Content-Type: application/xml");
    assert_eq!(rsp.header("Content-Type"), Some("text/plain"));
    assert_eq!(error_of(&rsp).code, 415);
    // And after all that, a good call on the same connection.
    conn.send(&go_request(
        "Test.Call",
        Some("application/json"),
        &[],
        b"{\"name\":\"ok\"}",
    ))
    .await;
    assert_eq!(
        conn.read().await.unwrap().body,
        b"{\"msg\":\"Hello ok from s1\"}\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_and_garbage_close_only_their_connection() {
    let server = server().await;
    let addr = server.address().unwrap();
    // A body announced as 5 MiB is over the transport's 4 MiB default: refused
    // before it is read.
    let body = vec![b'x'; 5 << 20];
    let mut head = go_request("Test.Call", Some("application/json"), &[], b"");
    let cl = head
        .windows(17)
        .position(|w| w == b"Content-Length: 0")
        .unwrap();
    head.splice(
        cl..cl + 17,
        format!("Content-Length: {}", body.len()).into_bytes(),
    );
    let mut conn = RawConn::connect(&addr).await;
    conn.send(&head).await;
    let rsp = conn.read().await.expect("413");
    assert_eq!(rsp.status, 413);

    let mut garbage = RawConn::connect(&addr).await;
    garbage
        .send(b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n")
        .await;
    let rsp = garbage.read().await;
    assert!(rsp.is_none() || rsp.unwrap().status == 400);

    // A fresh connection is served as if nothing happened.
    let mut ok = RawConn::connect(&addr).await;
    ok.send(&go_request(
        "Test.Call",
        Some("application/json"),
        &[],
        b"{\"name\":\"after\"}",
    ))
    .await;
    assert_eq!(
        ok.read().await.unwrap().body,
        b"{\"msg\":\"Hello after from s1\"}\n"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_timeout_header_is_the_handlers_deadline() {
    let server = server().await;
    let mut conn = RawConn::connect(&server.address().unwrap()).await;
    // 50 ms deadline, 2 s handler: 408 after about 50 ms, and the server serves on.
    let req = go_request(
        "Test.Slow",
        Some("application/json"),
        &[],
        b"{\"millis\":2000}",
    );
    let req = String::from_utf8(req)
        .unwrap()
        .replace("Timeout: 5000000000", "Timeout: 50000000");
    let start = std::time::Instant::now();
    conn.send(req.as_bytes()).await;
    let rsp = conn.read().await.unwrap();
    assert_eq!(error_of(&rsp).code, 408);
    assert!(
        start.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    conn.send(&go_request(
        "Test.Call",
        Some("application/json"),
        &[],
        b"{\"name\":\"x\"}",
    ))
    .await;
    assert!(conn.read().await.unwrap().header("Micro-Error").is_none());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn caller_metadata_arrives_as_context_metadata() {
    let server = server().await;
    let mut conn = RawConn::connect(&server.address().unwrap()).await;
    conn.send(&go_request(
        "Test.Meta",
        Some("application/json"),
        &[("Foo", "bar"), ("x-lower", "1")],
        b"{}",
    ))
    .await;
    let rsp = conn.read().await.unwrap();
    let meta: common::MetaResponse = serde_json::from_slice(&rsp.body).unwrap();
    assert_eq!(meta.metadata.get("Foo").map(String::as_str), Some("bar"));
    assert_eq!(
        meta.metadata.get("X-Lower").map(String::as_str),
        Some("1"),
        "names are canonical"
    );
    assert_eq!(
        meta.metadata.get("Micro-Service").map(String::as_str),
        Some("test")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_go_client_stream_is_served_including_its_chunked_eos() {
    // What go-micro's client sends for BidiStream, byte for byte in shape: an opening
    // message (its body discarded), messages, then EOS with a chunked empty body.
    let server = server().await;
    let mut conn = RawConn::connect(&server.address().unwrap()).await;
    let msg = |body: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n\
             Accept: application/json\r\nContent-Type: application/json\r\nMicro-Endpoint: Test.Echo\r\n\
             Micro-Id: 0\r\nMicro-Method: Test.Echo\r\nMicro-Service: test\r\nMicro-Stream: 0\r\n\r\n{body}",
            body.len()
        )
    };
    conn.send(msg("{\"n\":99}\n").as_bytes()).await; // opening: discarded
    conn.send(msg("{\"n\":1}\n").as_bytes()).await;
    let r1 = conn.read().await.unwrap();
    assert_eq!(r1.body, b"{\"n\":1}\n");
    assert_eq!(r1.header("Micro-Stream"), Some("0"));
    conn.send(msg("{\"n\":2}\n").as_bytes()).await;
    assert_eq!(conn.read().await.unwrap().body, b"{\"n\":2}\n");
    conn.send(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\nTransfer-Encoding: chunked\r\n\
          Accept: application/json\r\nContent-Type: application/json\r\nMicro-Endpoint: Test.Echo\r\n\
          Micro-Error: EOS\r\nMicro-Id: 0\r\nMicro-Method: Test.Echo\r\nMicro-Service: test\r\nMicro-Stream: 0\r\n\r\n0\r\n\r\n",
    )
    .await;
    let end = conn.read().await.unwrap();
    assert_eq!(end.header("Micro-Error"), Some("EOS"));
    assert!(end.body.is_empty());
    server.stop().await.unwrap();
}
