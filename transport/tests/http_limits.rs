//! A misbehaving peer costs one connection and nothing else: wrong methods, oversized
//! heads and bodies, garbage, and stalled or silent connections each get their
//! answer, and the listener keeps serving everyone else.

mod common;

use std::time::{Duration, Instant};

use common::{Server, raw_connect, raw_write, read_raw_response, read_to_close, serve, within};
use micro_transport::{
    DialOptions, Error, Header, HttpTransport, HttpTransportOptions, Message, Transport,
};
use tokio::sync::mpsc;

/// An echo server that reports what each `recv` returned.
async fn server_with(
    opts: HttpTransportOptions,
) -> (Server, mpsc::UnboundedReceiver<Result<Message, Error>>) {
    let listener = HttpTransport::with_options(opts)
        .listen("127.0.0.1:0")
        .await
        .expect("listen");
    let (tx, rx) = mpsc::unbounded_channel();
    let server = serve(listener, move |socket| {
        let tx = tx.clone();
        async move {
            loop {
                let res = socket.recv().await;
                let ok = res.as_ref().ok().cloned();
                let _ = tx.send(res);
                match ok {
                    Some(msg) if socket.send(&msg).await.is_ok() => {}
                    _ => break,
                }
            }
        }
    });
    (server, rx)
}

/// The next `recv` result that is not the normal end of a connection.
async fn next_outcome(
    seen: &mut mpsc::UnboundedReceiver<Result<Message, Error>>,
) -> Result<Message, Error> {
    loop {
        match within(seen.recv()).await.expect("server gone") {
            Err(Error::Closed) => continue,
            other => return other,
        }
    }
}

/// Checks that the server still answers a fresh client.
async fn still_serving(addr: &str) {
    let client = within(HttpTransport::new().dial(addr, &DialOptions::default()))
        .await
        .expect("dial");
    within(client.send(&Message::new(Header::new(), "ping")))
        .await
        .expect("send");
    assert_eq!(within(client.recv()).await.expect("recv").body, "ping");
}

#[tokio::test]
async fn other_methods_get_405_and_the_connection_keeps_serving() {
    let (server, mut seen) = server_with(HttpTransportOptions::new()).await;
    let mut stream = raw_connect(&server.addr).await;
    let mut buf = Vec::new();
    raw_write(&mut stream, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let rsp = read_raw_response(&mut stream, &mut buf).await;
    assert_eq!(rsp.status(), 405);
    assert_eq!(rsp.header("Allow"), Some("POST"));
    assert_eq!(rsp.body, b"405 Method Not Allowed\n");

    // a PUT with a body: the body is consumed, the framing stays intact
    raw_write(
        &mut stream,
        b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(read_raw_response(&mut stream, &mut buf).await.status(), 405);

    // HEAD: same status, no body on the wire
    raw_write(
        &mut stream,
        b"HEAD / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let head_rsp = read_raw_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(head_rsp.status(), 405);
    // read_raw_response took Content-Length bytes as body; for HEAD those are the
    // start of the next response, which proves no body was sent
    assert!(
        head_rsp.body.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        head_rsp.body
    );

    let msg = within(seen.recv()).await.unwrap().unwrap();
    assert_eq!(msg.body, "ok", "only the POST reached recv()");
}

#[tokio::test]
async fn oversized_body_gets_413_without_being_read() {
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        max_body_size: 1024,
        ..Default::default()
    });
    let (server, mut seen) = server_with(opts).await;
    let mut stream = raw_connect(&server.addr).await;
    // the body is never sent: the server must answer from the head alone
    raw_write(
        &mut stream,
        b"POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n",
    )
    .await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close\r\n"));
    let err = within(seen.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "body",
                size: 1025,
                limit: 1024
            }
        ),
        "{err:?}"
    );

    // a chunked body that grows past the limit
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n",
    )
    .await;
    raw_write(&mut stream, &[b'a'; 1024]).await;
    raw_write(&mut stream, b"\r\n1\r\n").await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(matches!(
        within(seen.recv()).await.unwrap(),
        Err(Error::TooLarge { .. })
    ));

    // exactly at the limit is fine
    let mut stream = raw_connect(&server.addr).await;
    let mut req = b"POST / HTTP/1.1\r\nContent-Length: 1024\r\n\r\n".to_vec();
    req.extend_from_slice(&[b'b'; 1024]);
    raw_write(&mut stream, &req).await;
    assert_eq!(
        read_raw_response(&mut stream, &mut Vec::new())
            .await
            .body
            .len(),
        1024
    );
    still_serving(&server.addr).await;
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        max_header_size: 2048,
        ..Default::default()
    });
    let (server, mut seen) = server_with(opts).await;

    // one huge header, never finished
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        format!("POST / HTTP/1.1\r\nX-Big: {}", "a".repeat(4000)).as_bytes(),
    )
    .await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    let err = within(seen.recv()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "header block",
                limit: 2048,
                ..
            }
        ),
        "{err:?}"
    );

    // many short header lines over the byte limit: the bytes count, not the lines
    let mut stream = raw_connect(&server.addr).await;
    let mut req = String::from("POST / HTTP/1.1\r\n");
    for i in 0..300 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    raw_write(&mut stream, req.as_bytes()).await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert!(within(seen.recv()).await.unwrap().is_err());
    still_serving(&server.addr).await;
}

#[tokio::test]
async fn many_header_lines_within_the_byte_limit_are_served() {
    // 131 metadata pairs (a go-micro client sent that many) and 5000 short ones:
    // only bytes are limited, as in Go's HTTP server.
    for n in [131, 5000] {
        let (server, mut seen) = server_with(HttpTransportOptions::new()).await;
        let mut stream = raw_connect(&server.addr).await;
        let mut req = String::from("POST / HTTP/1.1\r\nContent-Length: 2\r\n");
        for i in 0..n {
            req.push_str(&format!("X-Meta-{i}: value-{i}\r\n"));
        }
        req.push_str("\r\n{}");
        raw_write(&mut stream, req.as_bytes()).await;
        let msg = within(seen.recv()).await.unwrap().unwrap();
        assert_eq!(msg.header.get("X-Meta-0"), Some("value-0"));
        let last = format!("value-{}", n - 1);
        assert_eq!(
            msg.header.get(&format!("x-meta-{}", n - 1)),
            Some(last.as_str())
        );
        assert_eq!(&msg.body[..], b"{}");
    }
}

#[tokio::test]
async fn garbage_gets_400_and_new_connections_are_served() {
    let (server, mut seen) = server_with(HttpTransportOptions::new()).await;
    for garbage in [
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"[..], // a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                  // HTTP/2 prior knowledge
        b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let mut stream = raw_connect(&server.addr).await;
        raw_write(&mut stream, garbage).await;
        let text = String::from_utf8_lossy(&read_to_close(&mut stream).await).to_string();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        let err = next_outcome(&mut seen).await.unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{err:?}");
        still_serving(&server.addr).await;
        next_outcome(&mut seen).await.unwrap(); // the ping
    }

    // an unsupported transfer coding
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    )
    .await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn stalled_and_silent_connections_are_closed() {
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        header_read_timeout: Duration::from_millis(200).into(),
        body_read_timeout: Duration::from_millis(200).into(),
        idle_timeout: Duration::from_millis(300).into(),
        ..Default::default()
    });
    let (server, mut seen) = server_with(opts).await;

    // half a head, then nothing: 408 after the header timeout
    let mut stream = raw_connect(&server.addr).await;
    let start = Instant::now();
    raw_write(&mut stream, b"POST / HTTP/1.1\r\nContent-Le").await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{text}"
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(matches!(
        within(seen.recv()).await.unwrap(),
        Err(Error::Timeout)
    ));

    // a head, then half the body
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
    )
    .await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(matches!(
        within(seen.recv()).await.unwrap(),
        Err(Error::Timeout)
    ));

    // never a byte: closed silently after the idle timeout
    let mut stream = raw_connect(&server.addr).await;
    let start = Instant::now();
    assert!(read_to_close(&mut stream).await.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(matches!(
        within(seen.recv()).await.unwrap(),
        Err(Error::Closed)
    ));

    // a connection in use is not idle: requests spaced below the idle timeout keep it
    let client = within(HttpTransport::new().dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    for _ in 0..4 {
        within(client.send(&Message::new(Header::new(), "x")))
            .await
            .unwrap();
        assert_eq!(within(client.recv()).await.unwrap().body, "x");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn a_slow_handler_keeps_its_connection() {
    // the idle timeout never cuts a request that is still waiting for its response
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        idle_timeout: Duration::from_millis(100).into(),
        ..Default::default()
    });
    let listener = HttpTransport::with_options(opts)
        .listen("127.0.0.1:0")
        .await
        .unwrap();
    let server = serve(listener, |socket| async move {
        let socket2 = socket.clone();
        // a concurrent reader, as an RPC server has for stream messages
        let reader = tokio::spawn(async move { socket2.recv().await });
        let Ok(Ok(req)) = reader.await else { return };
        let reader = {
            let socket = socket.clone();
            tokio::spawn(async move { socket.recv().await })
        };
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = socket.send(&req).await;
        let _ = reader.await;
    });
    let client = within(HttpTransport::new().dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    within(client.send(&Message::new(Header::new(), "slow")))
        .await
        .unwrap();
    assert_eq!(within(client.recv()).await.unwrap().body, "slow");
    // once answered and silent, the connection goes
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn connections_over_the_limit_get_503_and_room_comes_back() {
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        max_connections: 2,
        ..Default::default()
    });
    let (server, _seen) = server_with(opts).await;
    let a = raw_connect(&server.addr).await;
    let b = raw_connect(&server.addr).await;
    // let the server accept both
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = raw_connect(&server.addr).await;
    let text = String::from_utf8(read_to_close(&mut c).await).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("too many connections to this node"),
        "{text}"
    );
    drop((a, b));
    // once they are closed there is room again
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut s = raw_connect(&server.addr).await;
        raw_write(&mut s, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").await;
        let r = read_raw_response(&mut s, &mut Vec::new()).await;
        if r.status() == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "closed connections give their slots back");
}
