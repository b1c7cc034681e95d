//! Bad requests to the broker's server get go-micro's errors, and the server
//! keeps serving: wrong method, unreadable and malformed bodies, no topic, random
//! bytes, oversized bodies, huge headers, half-open and stalled connections.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, body_of, go_post, raw, status_of};
use micro_broker::{Broker, Envelope, HttpBroker, SubscribeOptions};
use micro_registry::MemoryRegistry;
use micro_transport::Limits;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn broker(registry: &Arc<MemoryRegistry>) -> HttpBroker {
    HttpBroker::with_options(common::opts(registry).limits(Limits {
        max_body_size: 64 << 10,
        max_header_size: 64 << 10,
        header_read_timeout: Some(Duration::from_millis(500)),
        body_read_timeout: Some(Duration::from_millis(500)),
        ..Limits::default()
    }))
}

fn go_error(code: u16, detail: &str, status: &str) -> String {
    format!(r#"{{"id":"go.micro.broker","code":{code},"detail":"{detail}","status":"{status}"}}"#)
}

/// The broker still delivers a well-formed event.
async fn still_serving(b: &HttpBroker, got: &Collector) {
    let before = got.count();
    b.publish("bad", Envelope::new("ok"))
        .await
        .expect("publish");
    assert_eq!(got.count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_go_micros_and_the_server_survives() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let got = Collector::new();
    let _sub = b
        .subscribe("bad", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let addr = b.address();
    let path = format!("/?id=bad-{}", b.id());

    // Any method but POST: 405 with go-micro's 400 error JSON and a newline.
    for method in ["GET", "PUT", "DELETE"] {
        let resp = raw(
            &addr,
            format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(
            status_of(&resp),
            "HTTP/1.1 405 Method Not Allowed",
            "{resp}"
        );
        assert_eq!(
            body_of(&resp),
            go_error(400, "Method not allowed", "Bad Request") + "\n"
        );
        assert!(
            resp.contains("Content-Type: text/plain; charset=utf-8"),
            "{resp}"
        );
    }

    // Bodies that are not a broker message: 500 "Error parsing request body: ...".
    for body in [
        "not json",
        "{\"Header\":",
        "[1,2]",
        "{\"Header\":{\"a\":1}}",
        "{\"Body\":\"***\"}",
    ] {
        let resp = raw(&addr, &go_post(&addr, &path, body)).await;
        assert_eq!(
            status_of(&resp),
            "HTTP/1.1 500 Internal Server Error",
            "{body}: {resp}"
        );
        let err: serde_json::Value = serde_json::from_str(body_of(&resp)).expect("error json");
        assert_eq!(err["id"], "go.micro.broker");
        assert_eq!(err["code"], 500);
        assert_eq!(err["status"], "Internal Server Error");
        assert!(
            err["detail"]
                .as_str()
                .expect("detail")
                .starts_with("Error parsing request body: "),
            "{err}"
        );
    }

    // No Micro-Topic (or a JSON null): 500 "Topic not found".
    for body in [
        r#"{"Header":{"micro-topic":"bad"},"Body":"b2s="}"#,
        r#"{"Body":"b2s="}"#,
        "null",
        r#"{"Header":{"Micro-Topic":""}}"#,
    ] {
        let resp = raw(&addr, &go_post(&addr, &path, body)).await;
        assert_eq!(
            status_of(&resp),
            "HTTP/1.1 500 Internal Server Error",
            "{body}: {resp}"
        );
        assert_eq!(
            body_of(&resp),
            go_error(500, "Topic not found", "Internal Server Error")
        );
    }

    // A delivery for a node this broker does not have: 404 (go-micro: 200).
    let resp = raw(
        &addr,
        &go_post(&addr, "/?id=nobody", r#"{"Header":{"Micro-Topic":"bad"}}"#),
    )
    .await;
    assert_eq!(status_of(&resp), "HTTP/1.1 404 Not Found", "{resp}");
    assert_eq!(got.count(), 0);

    // Oversized: by Content-Length, and by a chunked body that grows too long.
    let big = format!(
        r#"{{"Header":{{"Micro-Topic":"bad"}},"Body":"{}"}}"#,
        "A".repeat(100 << 10)
    );
    let resp = raw(&addr, &go_post(&addr, &path, &big)).await;
    assert_eq!(status_of(&resp), "HTTP/1.1 413 Payload Too Large", "{resp}");
    let mut chunked =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", "A".repeat(0x1000)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(&addr, &chunked).await;
    assert_eq!(status_of(&resp), "HTTP/1.1 413 Payload Too Large", "{resp}");
    assert!(body_of(&resp).contains("\"code\":413"), "{resp}");

    // Random bytes, a huge header, an empty connection: closed or 4xx, never a crash.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20 {
        let junk: Vec<u8> = (0..rng.usize(1..2000)).map(|_| rng.u8(..)).collect();
        let resp = raw(&addr, &junk).await;
        assert!(resp.is_empty() || resp.starts_with("HTTP/1.1 4"), "{resp}");
    }
    let huge = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(200 << 10)
    );
    let resp = raw(&addr, huge.as_bytes()).await;
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
        "{resp}"
    );
    drop(TcpStream::connect(&addr).await.expect("connect"));

    // Half-open: a head that never ends and a body that never comes are closed by
    // the read timeouts, while other clients are served meanwhile.
    let mut stalled_head = TcpStream::connect(&addr).await.expect("connect");
    stalled_head
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut stalled_body = TcpStream::connect(&addr).await.expect("connect");
    stalled_body
        .write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{").as_bytes(),
        )
        .await
        .expect("write");
    still_serving(&b, &got).await;
    let resp = common::read_response(&mut stalled_body).await;
    assert_eq!(
        status_of(&resp),
        "HTTP/1.1 500 Internal Server Error",
        "{resp}"
    );
    assert!(
        body_of(&resp).contains("Error reading request body"),
        "{resp}"
    );
    let resp = common::read_response(&mut stalled_head).await;
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 408"),
        "{resp}"
    );

    still_serving(&b, &got).await;
    assert_eq!(got.bodies(), ["ok", "ok"]);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connection_serves_many_and_any_path() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let got = Collector::new();
    let _sub = b
        .subscribe("bad", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let addr = b.address();
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    for i in 0..5 {
        let path = format!("/any/path{i}?x=1&id=bad-{}", b.id());
        s.write_all(&go_post(
            &addr,
            &path,
            r#"{"Header":{"Micro-Topic":"bad"},"Body":"b2s="}"#,
        ))
        .await
        .expect("write");
        let resp = common::read_response(&mut s).await;
        assert_eq!(status_of(&resp), "HTTP/1.1 200 OK", "{resp}");
    }
    assert_eq!(got.count(), 5);
    // Idle for longer than the header timeout: still open (only the idle timeout,
    // 120 s by default, closes an idle connection).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let path = format!("/?id=bad-{}", b.id());
    s.write_all(&go_post(
        &addr,
        &path,
        r#"{"Header":{"Micro-Topic":"bad"}}"#,
    ))
    .await
    .expect("write");
    let resp = common::read_response(&mut s).await;
    assert_eq!(status_of(&resp), "HTTP/1.1 200 OK", "{resp}");
    assert_eq!(got.count(), 6);
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = HttpBroker::with_options(common::opts(&registry).limits(Limits {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    }));
    let got = Collector::new();
    let _sub = b
        .subscribe("bad", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let addr = b.address();
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let path = format!("/?id=bad-{}", b.id());
    s.write_all(&go_post(
        &addr,
        &path,
        r#"{"Header":{"Micro-Topic":"bad"}}"#,
    ))
    .await
    .expect("write");
    assert_eq!(
        status_of(&common::read_response(&mut s).await),
        "HTTP/1.1 200 OK"
    );
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        common::WAIT,
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await
    .expect("closed by the server in time")
    .unwrap_or(0);
    assert_eq!(n, 0, "the server closed the idle connection");
    still_serving(&b, &got).await;
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_panics_still_answer_200() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = broker(&registry);
    let _failing = b
        .subscribe(
            "bad",
            micro_broker::handler_fn(|_| async { Err("nope".into()) }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let _panicking = b
        .subscribe(
            "bad",
            micro_broker::handler_fn(|_| async { panic!("handler bug") }),
            SubscribeOptions::default(),
        )
        .await
        .expect("subscribe");
    let got = Collector::new();
    let _ok = b
        .subscribe("bad", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    for _ in 0..3 {
        b.publish("bad", Envelope::new("x")).await.expect("publish");
    }
    assert_eq!(got.count(), 3);
    let s = b.stats();
    assert_eq!((s.delivered, s.rejected, s.handler_errors), (3, 0, 6));
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503() {
    let registry = Arc::new(MemoryRegistry::new());
    let b = HttpBroker::with_options(common::opts(&registry).limits(Limits {
        max_connections: 2,
        ..Limits::default()
    }));
    let got = Collector::new();
    let _sub = b
        .subscribe("limited", got.handler(), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let addr = b.address();
    let _a = TcpStream::connect(&addr).await.unwrap();
    let _b = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let text = common::read_response(&mut c).await;
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{text}"
    );
    b.disconnect().await.unwrap();
}
