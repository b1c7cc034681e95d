//! Our client calls a real go-micro server (v4.11 and v5.30, found through etcd and
//! through Consul): unary `Helloworld.Call`, the three stream kinds, a handler
//! error, and caller metadata.
//!
//! go-micro quirks the assertions respect (see `/work/notes/captures/README.md`):
//! a Go server garbles the contents of fast server-stream messages (their count
//! and framing are reliable, so only those are checked), and once a client has
//! sent its `EOS` (half-close) a Go server sends no `EOS` back: a `ClientStream`
//! gets its count and a `BidiStream` its echoes, then nothing more. A go-micro
//! server can also lose a unary request on a kept-alive connection (see
//! `retry_lost`); such calls are made again, and each time is printed.

use std::sync::Arc;
use std::time::Duration;

use examples::{CallRequest, CallResponse, CountMessage, StrokeMessage};
use micro::RpcError;
use micro::client::Client;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, FailRequest, GoProc, MetaRequest, MetaResponse, Registries, for_each_combo, our_server,
    retry_lost,
};
use serde_json::Value;

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);
/// Messages per client and server stream. Kept below 10 so that every message
/// of a Go server's stream has the same length: go-micro garbles fast stream
/// messages, and messages of different lengths may not even decode.
const N: i64 = 5;
/// Echoes in the bidirectional stream.
const BIDI: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_go_server() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("our client -> Go server", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let name = format!("go-hw-{}", combo.slug());
    let mut args = registries.go_args(combo.registry);
    args.extend(["--name".to_owned(), name.clone()]);
    let mut server = GoProc::spawn(combo.go, "server", &args);
    let ready = server.ready(LIMIT).await;
    eprintln!(
        "[{}] Go server {} at {}",
        combo.label(),
        ready.node_id,
        ready.address
    );

    let caller = our_server("rust-caller", registries.registry(combo.registry))
        .build()
        .expect("build caller");
    let client = caller.client().clone();

    unary(&*client, &name).await;
    client_stream(&*client, &name, &mut server).await;
    server_stream(&*client, &name).await;
    bidi(&*client, &name).await;
    errors(&*client, &name).await;
    metadata(&*client, &name).await;

    caller.stop().await.expect("stop caller");
    let (by_itself, out) = server.terminate(LIMIT).await;
    assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
}

async fn unary(client: &dyn Client, name: &str) {
    // Plain, non-ASCII with JSON escapes, and 1 MiB.
    for who in [
        "Rust".to_owned(),
        "Wörld ✓ \"q\" \n\t 世界".to_owned(),
        "x".repeat(1 << 20),
    ] {
        let req = CallRequest { name: who.clone() };
        let rsp: CallResponse =
            retry_lost(name, || client.request(name, "Helloworld.Call").call(&req))
                .await
                .expect("Helloworld.Call");
        assert!(
            rsp.msg == format!("Hello {who}"),
            "reply to a {} byte name",
            who.len()
        );
    }
}

async fn client_stream(client: &dyn Client, name: &str, server: &mut GoProc) {
    let s = client
        .request(name, "Helloworld.ClientStream")
        .stream::<StrokeMessage, CountMessage>()
        .await
        .expect("open ClientStream");
    for i in 0..N {
        s.send(&StrokeMessage { stroke: i })
            .await
            .expect("send stroke");
    }
    s.close_send().await.expect("close_send");
    let reply = tokio::time::timeout(LIMIT, s.recv())
        .await
        .expect("ClientStream reply in time")
        .expect("ClientStream reply");
    assert_eq!(reply, Some(CountMessage { count: N }));
    s.close().await;
    // The handler also printed what it counted.
    let line = server.next_json(LIMIT).await;
    assert_eq!(line["kind"], "client_stream", "{line}");
    assert_eq!(line["count"], N, "{line}");
    assert!(line.get("send_error").is_none(), "{line}");
    assert!(line.get("recv_error").is_none(), "{line}");
}

async fn server_stream(client: &dyn Client, name: &str) {
    let s = client
        .request(name, "Helloworld.ServerStream")
        .server_stream::<CountMessage, CountMessage>(&CountMessage { count: N })
        .await
        .expect("open ServerStream");
    let mut got = Vec::new();
    loop {
        let msg = tokio::time::timeout(LIMIT, s.recv())
            .await
            .expect("ServerStream message in time")
            .expect("ServerStream message");
        match msg {
            Some(m) => got.push(m.count),
            None => break,
        }
        assert!(got.len() <= N as usize, "more messages than asked: {got:?}");
    }
    // Contents are not checked: go-micro reuses its write buffer (see the docs).
    assert_eq!(got.len(), N as usize, "messages before EOS: {got:?}");
    s.close().await;
}

async fn bidi(client: &dyn Client, name: &str) {
    let s = client
        .request(name, "Helloworld.BidiStream")
        .stream::<StrokeMessage, StrokeMessage>()
        .await
        .expect("open BidiStream");
    // Lock step, so go-micro's write-buffer reuse cannot garble the echoes (their
    // lengths differ); many of them.
    for i in 0..BIDI {
        s.send(&StrokeMessage { stroke: i }).await.expect("send");
        let echo = tokio::time::timeout(LIMIT, s.recv())
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(echo, Some(StrokeMessage { stroke: i }));
    }
    // A go-micro server sends no EOS once the client has sent one (its router
    // ends the stream silently when the handler saw the client's EOS), so there
    // is nothing more to read after `close_send`.
    s.close_send().await.expect("close_send");
    s.close().await;
}

async fn errors(client: &dyn Client, name: &str) {
    for (code, detail, status) in [
        (404, "not here", "Not Found"),
        (409, "already there", "Conflict"),
        (418, "short and stout", "I'm a teapot"),
        (422, "cannot do that", "Unprocessable Entity"),
        (425, "too early", "Too Early"),
        (429, "slow down", "Too Many Requests"),
        (451, "not here either", "Unavailable For Legal Reasons"),
        (503, "come back later", "Service Unavailable"),
        (511, "log in first", "Network Authentication Required"),
    ] {
        let req = FailRequest {
            code,
            detail: detail.into(),
        };
        let err: RpcError = retry_lost(name, || {
            client
                .request(name, "Helloworld.Fail")
                .call::<_, Value>(&req)
        })
        .await
        .expect_err("Helloworld.Fail fails")
        .into();
        assert_eq!(
            err,
            RpcError {
                id: "helloworld".into(),
                code,
                detail: detail.into(),
                status: status.into(),
            }
        );
    }
}

async fn metadata(client: &dyn Client, name: &str) {
    let rsp: MetaResponse = retry_lost(name, || {
        client
            .request(name, "Helloworld.Meta")
            .metadata("Foo", "bar")
            .metadata("x-lower", "1")
            .metadata("X-Trace-Id", "trace-42")
            .call(&MetaRequest {})
    })
    .await
    .expect("Helloworld.Meta");
    let md = &rsp.metadata;
    // The Go handler's context holds every request header, canonical names.
    for (k, v) in [
        ("Foo", "bar"),
        ("X-Lower", "1"),
        ("X-Trace-Id", "trace-42"),
        ("Micro-Service", name),
        ("Micro-Endpoint", "Helloworld.Meta"),
        ("Micro-Method", "Helloworld.Meta"),
        ("Content-Type", "application/json"),
    ] {
        assert_eq!(md.get(k).map(String::as_str), Some(v), "{k} in {md:?}");
    }
    assert!(md.contains_key("Timeout"), "Timeout header in {md:?}");
}
