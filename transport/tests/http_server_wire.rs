//! Our server against raw TCP clients writing exactly what go-micro's Go client (and
//! curl, and old HTTP/1.0 clients) write; checks the parsed message and the raw
//! response bytes.

mod common;

use common::{
    RawResponse, Server, raw_connect, raw_write, read_raw_response, read_to_close, serve, within,
};
use micro_transport::{Header, HttpTransport, Message, Transport};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// A server that reports every request it receives and answers with
/// `Content-Type` and `Micro-Id` of the request and the body `reply:<body>`.
async fn recording_server() -> (Server, mpsc::UnboundedReceiver<Message>) {
    let listener = HttpTransport::new()
        .listen("127.0.0.1:0")
        .await
        .expect("listen");
    let (tx, rx) = mpsc::unbounded_channel();
    let server = serve(listener, move |socket| {
        let tx = tx.clone();
        async move {
            while let Ok(req) = socket.recv().await {
                let mut header = Header::new();
                for name in ["Content-Type", "Micro-Id"] {
                    if let Some(v) = req.header.get(name) {
                        header.insert(name, v);
                    }
                }
                let mut body = b"reply:".to_vec();
                body.extend_from_slice(&req.body);
                let _ = tx.send(req);
                if socket.send(&Message::new(header, body)).await.is_err() {
                    break;
                }
            }
        }
    });
    (server, rx)
}

fn go_request(addr: &str, id: u32, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nAccept: application/json\r\nContent-Type: application/json\r\n\
         Micro-Endpoint: Greeter.Hello\r\nMicro-Id: {id}\r\nMicro-Method: Greeter.Hello\r\n\
         Micro-Service: greeter\r\nTimeout: 5000000000\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn go_client_request_and_raw_response() {
    let (server, mut seen) = recording_server().await;
    let mut stream = raw_connect(&server.addr).await;
    let body = "{\"name\":\"John\"}\n";
    raw_write(&mut stream, go_request(&server.addr, 0, body).as_bytes()).await;

    let req = within(seen.recv()).await.unwrap();
    assert_eq!(req.body, body);
    let headers: Vec<_> = req.header.iter().collect();
    assert_eq!(
        headers,
        [
            ("User-Agent", "Go-http-client/1.1"),
            ("Content-Length", "16"),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("Micro-Endpoint", "Greeter.Hello"),
            ("Micro-Id", "0"),
            ("Micro-Method", "Greeter.Hello"),
            ("Micro-Service", "greeter"),
            ("Timeout", "5000000000"),
        ]
    );

    let mut buf = Vec::new();
    let rsp = read_raw_response(&mut stream, &mut buf).await;
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 22\r\nContent-Type: application/json\r\nMicro-Id: 0\r\n\r\nreply:{body}"
    );
    assert_eq!(String::from_utf8(rsp.bytes()).unwrap(), expected);

    // the connection keeps serving; several requests in one write are all answered
    let two = go_request(&server.addr, 1, "{}") + &go_request(&server.addr, 2, "[]");
    raw_write(&mut stream, two.as_bytes()).await;
    for (id, body) in [("1", "reply:{}"), ("2", "reply:[]")] {
        let rsp = read_raw_response(&mut stream, &mut buf).await;
        assert_eq!(rsp.status(), 200);
        assert_eq!(rsp.header("Micro-Id"), Some(id));
        assert_eq!(rsp.body, body.as_bytes());
    }
    assert!(buf.is_empty());
}

#[tokio::test]
async fn chunked_request_body() {
    let (server, mut seen) = recording_server().await;
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        b"POST /any/path HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nMicro-Id: 9\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    raw_write(
        &mut stream,
        b"6\r\n world\r\n0\r\nX-Trailer: ignored\r\n\r\n",
    )
    .await;
    let req = within(seen.recv()).await.unwrap();
    assert_eq!(req.body, "hello world");
    assert_eq!(req.header.get("Transfer-Encoding"), None);
    assert_eq!(req.header.get("X-Trailer"), None);
    let rsp = read_raw_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(rsp.body, b"reply:hello world");
}

#[tokio::test]
async fn expect_100_continue() {
    let (server, mut seen) = recording_server().await;
    let mut stream = raw_connect(&server.addr).await;
    let body = "x".repeat(2000);
    // what curl sends for a body over 1 KiB
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        server.addr,
        body.len()
    );
    raw_write(&mut stream, head.as_bytes()).await;
    let mut interim = [0u8; 25];
    within(stream.read_exact(&mut interim)).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw_write(&mut stream, body.as_bytes()).await;
    let req = within(seen.recv()).await.unwrap();
    assert_eq!(req.body.len(), 2000);
    let rsp = read_raw_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.body.len(), 2006);
}

#[tokio::test]
async fn connection_close_closes_after_the_response() {
    let (server, mut seen) = recording_server().await;
    let mut stream = raw_connect(&server.addr).await;
    // go-micro v5's client with ConnClose
    let req = go_request(&server.addr, 5, "{}").replacen(
        "Content-Length",
        "Connection: close\r\nContent-Length",
        1,
    );
    raw_write(&mut stream, req.as_bytes()).await;
    within(seen.recv()).await.unwrap();
    let rest = read_to_close(&mut stream).await;
    let text = String::from_utf8(rest).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nreply:{}"), "{text}");
}

#[tokio::test]
async fn http_1_0_clients() {
    let (server, _seen) = recording_server().await;
    // no keep-alive: one response, then the server closes
    let mut stream = raw_connect(&server.addr).await;
    raw_write(
        &mut stream,
        b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    let text = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(
        text.contains("Connection: close\r\n") && text.ends_with("reply:hi"),
        "{text}"
    );

    // keep-alive asked for: the connection serves a second request
    let mut stream = raw_connect(&server.addr).await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        raw_write(
            &mut stream,
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
        )
        .await;
        let rsp: RawResponse = read_raw_response(&mut stream, &mut buf).await;
        assert_eq!(rsp.header("Connection"), Some("keep-alive"));
        assert_eq!(rsp.body, b"reply:hi");
    }
}

#[tokio::test]
async fn response_headers_cannot_be_injected() {
    let listener = HttpTransport::new().listen("127.0.0.1:0").await.unwrap();
    let server = serve(listener, |socket| async move {
        if socket.recv().await.is_ok() {
            let mut header = Header::new();
            header.insert("Micro-Error", "boom\r\nSet-Cookie: evil=1\r\n\r\nsmuggled");
            let _ = socket.send(&Message::new(header, "ok")).await;
        }
    });
    let mut stream = raw_connect(&server.addr).await;
    raw_write(&mut stream, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    let rsp = read_raw_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(rsp.header("Set-Cookie"), None);
    assert_eq!(
        rsp.header("Micro-Error"),
        Some("boom  Set-Cookie: evil=1    smuggled")
    );
    assert_eq!(rsp.body, b"ok");
}
