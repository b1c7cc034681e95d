//! Our client against a raw TCP server that writes exactly the bytes under test:
//! go-micro's `TestHTTPTransportError` (a 500 becomes the error text
//! `500 Internal Server Error: an error occurred`), the request bytes we write, and
//! every response framing a Go server (or anything in between) may use.

mod common;

use common::{find, within};
use micro_transport::{DialOptions, Error, Header, HttpTransport, Message, Socket, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw server: accepts one connection and hands it to the test.
async fn raw_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address").to_string();
    (listener, addr)
}

/// Reads one request (head + Content-Length body) as raw bytes.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    within(async {
        loop {
            if let Some(end) = find(buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.parse().expect("a number"));
                if buf.len() >= end + 4 + len {
                    return buf.drain(..end + 4 + len).collect();
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "client closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

async fn connect(addr: &str, listener: &TcpListener) -> (Box<dyn Socket>, TcpStream) {
    let transport = HttpTransport::new();
    let opts = DialOptions::default();
    let (client, accepted) =
        within(async { tokio::join!(transport.dial(addr, &opts), listener.accept()) }).await;
    (client.expect("dial"), accepted.expect("dial").0)
}

fn request() -> Message {
    let mut header = Header::new();
    header.insert("content-type", "application/json");
    header.insert("micro-service", "greeter");
    Message::new(header, "{}")
}

#[tokio::test]
async fn writes_the_request_go_micro_writes() {
    let (listener, addr) = raw_server().await;
    let (client, mut peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    let mut buf = Vec::new();
    let raw = read_request(&mut peer, &mut buf).await;
    let expected = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: micro-rs/{}\r\nContent-Length: 2\r\n\
         Content-Type: application/json\r\nMicro-Service: greeter\r\n\r\n{{}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(String::from_utf8(raw).unwrap(), expected);
}

#[tokio::test]
async fn non_200_is_an_error_with_go_micros_text() {
    let (listener, addr) = raw_server().await;
    let (client, mut peer) = connect(&addr, &listener).await;
    let mut buf = Vec::new();

    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut buf).await;
    // what go-micro's socket.error() writes
    peer.write_all(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\nan error occurred",
    )
    .await
    .unwrap();
    let err = within(client.recv()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "500 Internal Server Error: an error occurred"
    );
    assert_eq!(err.status_code(), Some(500));
    assert!(matches!(&err, Error::Status { body, .. } if body == "an error occurred"));

    // the framing was intact, so the connection still works
    assert!(client.is_open());
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut buf).await;
    peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok")
        .await
        .unwrap();
    let reply = within(client.recv()).await.unwrap();
    assert_eq!(reply.body, "ok");
    assert_eq!(
        reply.header.get("X-A"),
        Some("1"),
        "first value of a repeated header"
    );
}

#[tokio::test]
async fn interim_chunked_and_streamed_responses() {
    let (listener, addr) = raw_server().await;
    let (client, mut peer) = connect(&addr, &listener).await;
    let mut buf = Vec::new();
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut buf).await;
    // a 100 Continue is skipped, then two responses for one request (a stream), the
    // second chunked and split across writes
    peer.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nMicro-Stream: 1\r\n\r\nfirst")
        .await
        .unwrap();
    peer.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec")
        .await
        .unwrap();
    let first = within(client.recv()).await.unwrap();
    assert_eq!(first.body, "first");
    assert_eq!(first.header.get("Micro-Stream"), Some("1"));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    peer.write_all(b"\r\n3\r\nond\r\n0\r\n\r\n").await.unwrap();
    let second = within(client.recv()).await.unwrap();
    assert_eq!(second.body, "second");
    assert_eq!(second.header.get("Transfer-Encoding"), None);
    assert!(client.is_open());
}

#[tokio::test]
async fn body_until_eof_and_connection_close() {
    let (listener, addr) = raw_server().await;
    // a response without a length is read to the end of the connection
    let (client, mut peer) = connect(&addr, &listener).await;
    let mut buf = Vec::new();
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut buf).await;
    peer.write_all(b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\nall of it")
        .await
        .unwrap();
    drop(peer);
    let reply = within(client.recv()).await.unwrap();
    assert_eq!(reply.body, "all of it");
    assert!(!client.is_open());
    assert!(matches!(
        within(client.send(&request())).await,
        Err(Error::Closed)
    ));

    // Connection: close marks the socket closed once the response is read
    let (client, mut peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut buf).await;
    peer.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
        .await
        .unwrap();
    assert_eq!(within(client.recv()).await.unwrap().body, "bye");
    assert!(!client.is_open());
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn garbage_and_early_close_are_errors() {
    let (listener, addr) = raw_server().await;
    let (client, mut peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    peer.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        .await
        .unwrap();
    let err = within(client.recv()).await.unwrap_err();
    assert!(matches!(err, Error::Malformed(_)), "{err:?}");
    assert!(err.is_connection_error());
    assert!(!client.is_open());

    // the server closes before answering: Closed, which an RPC client retries
    let (client, mut peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut Vec::new()).await;
    drop(peer);
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));

    // ... and with the request unread the kernel resets the connection instead
    let (client, peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    drop(peer);
    let err = within(client.recv()).await.unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");

    // ... or in the middle of a body
    let (client, mut peer) = connect(&addr, &listener).await;
    within(client.send(&request())).await.unwrap();
    read_request(&mut peer, &mut Vec::new()).await;
    peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    drop(peer);
    let err = within(client.recv()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let (listener, addr) = raw_server().await;
    let transport = HttpTransport::with_options(
        micro_transport::HttpTransportOptions::new().limits(micro_transport::Limits {
            max_body_size: 1000,
            ..Default::default()
        }),
    );
    let opts = DialOptions::default();
    let (client, accepted) =
        within(async { tokio::join!(transport.dial(&addr, &opts), listener.accept()) }).await;
    let (client, mut peer) = (client.unwrap(), accepted.unwrap().0);
    within(client.send(&request())).await.unwrap();
    peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n")
        .await
        .unwrap();
    let err = within(client.recv()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "body",
                size: 1001,
                limit: 1000
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn is_open_notices_a_server_close_without_blocking() {
    let (listener, addr) = raw_server().await;
    let (client, peer) = connect(&addr, &listener).await;
    assert!(client.is_open());
    drop(peer);
    // the close travels over loopback; poll for it a bounded number of times
    let mut open = true;
    for _ in 0..200 {
        open = client.is_open();
        if !open {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!open, "is_open never noticed the close");

    // unexpected bytes between calls make a connection unfit for reuse
    let (client, mut peer) = connect(&addr, &listener).await;
    peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut fit = true;
    for _ in 0..200 {
        fit = client.is_open();
        if !fit {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!fit, "stray response not noticed");
    // ... but a stream can still read it
    assert_eq!(within(client.recv()).await.unwrap().body, "");
}
