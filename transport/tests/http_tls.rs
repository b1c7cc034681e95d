//! The HTTP transport over TLS, with real handshakes on loopback: messages both
//! ways, mutual TLS and the peer's identity, and every kind of bad peer costing
//! one connection and a clear error while the server keeps serving the others.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{serve, within};
use micro_tls::TlsOptions;
use micro_tls::testing::TestCa;
use micro_transport::{
    DialOptions, Error, Header, HttpTransport, Message, Pool, PoolOptions, Socket, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Echoes every message, adding the client's certificate common name as `Peer-Cn`.
async fn echo_identity(socket: Arc<dyn Socket>) {
    while let Ok(mut msg) = socket.recv().await {
        let cn = socket
            .peer_identity()
            .and_then(|id| id.common_name.clone())
            .unwrap_or_default();
        msg.header.insert("Peer-Cn", cn);
        msg.header.insert("Secure", socket.is_secure().to_string());
        if socket.send(&msg).await.is_err() {
            break;
        }
    }
}

fn server_tls(ca: &TestCa) -> TlsOptions {
    let id = ca.issue("server", &["127.0.0.1", "localhost"]);
    TlsOptions::new().cert_pem(&id.cert_pem, &id.key_pem)
}

fn dial_tls(client: &TlsOptions) -> DialOptions {
    DialOptions {
        tls: Some(client.client().expect("client tls").into()),
        ..DialOptions::default()
    }
}

async fn tls_server(opts: TlsOptions) -> common::Server {
    let listener = HttpTransport::new()
        .tls(opts)
        .listen("127.0.0.1:0")
        .await
        .expect("listen");
    assert!(listener.is_secure());
    serve(listener, echo_identity)
}

/// One round trip on a new connection.
async fn round_trip(addr: &str, dial: &DialOptions) -> Result<Message, Error> {
    let socket = within(HttpTransport::new().dial(addr, dial)).await?;
    let mut msg = Message::new(Header::new(), "hello");
    msg.header.insert("Content-Type", "text/plain");
    within(socket.send(&msg)).await?;
    within(socket.recv()).await
}

#[tokio::test]
async fn messages_travel_over_tls() {
    let ca = TestCa::new("ca");
    let server = tls_server(server_tls(&ca)).await;
    let dial = dial_tls(&TlsOptions::new().ca_pem(ca.cert_pem()));
    let socket = within(HttpTransport::new().dial(&server.addr, &dial))
        .await
        .unwrap();
    assert!(socket.is_secure());
    let server_id = socket.peer_identity().expect("server identity");
    assert_eq!(server_id.common_name.as_deref(), Some("server"));
    // several messages on one connection, small and large
    for body in [vec![b'a'; 10], vec![b'b'; 200_000], vec![b'c'; 3]] {
        within(socket.send(&Message::new(Header::new(), body.clone())))
            .await
            .unwrap();
        let reply = within(socket.recv()).await.unwrap();
        assert_eq!(reply.body, body);
        assert_eq!(reply.header.get("Secure"), Some("true"));
        assert_eq!(
            reply.header.get("Peer-Cn"),
            Some(""),
            "no client certificate"
        );
    }
    assert!(socket.is_open());
    socket.close().await;
}

#[tokio::test]
async fn mutual_tls_gives_the_handler_the_client_identity() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let server = tls_server(server_tls(&ca).client_ca_pem(ca.cert_pem())).await;
    let base = TlsOptions::new().ca_pem(ca.cert_pem());

    let orders = ca.issue("orders", &["spiffe://example.org/orders"]);
    let dial = dial_tls(&base.clone().cert_pem(&orders.cert_pem, &orders.key_pem));
    let reply = round_trip(&server.addr, &dial).await.unwrap();
    assert_eq!(reply.header.get("Peer-Cn"), Some("orders"));

    // without a certificate, and with one from another CA: refused, clearly
    let err = round_trip(&server.addr, &dial_tls(&base))
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("CertificateRequired") || text.contains("certificate"),
        "{text}"
    );
    let stranger = other.issue("stranger", &["127.0.0.1"]);
    let dial_stranger = dial_tls(&base.clone().cert_pem(&stranger.cert_pem, &stranger.key_pem));
    let err = round_trip(&server.addr, &dial_stranger).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("UnknownCA") || text.contains("BadCertificate"),
        "{text}"
    );

    // and the server still serves the good client
    let reply = round_trip(&server.addr, &dial).await.unwrap();
    assert_eq!(reply.header.get("Peer-Cn"), Some("orders"));
}

#[tokio::test]
async fn untrusted_servers_are_refused_at_the_handshake() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let client = TlsOptions::new().ca_pem(ca.cert_pem());
    let dial = dial_tls(&client);

    // a wrong CA
    let server = tls_server(server_tls(&other)).await;
    let err = round_trip(&server.addr, &dial).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.is_connection_error());
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // an expired certificate
    let expired = ca.issue_expired("server", &["127.0.0.1"]);
    let server = tls_server(TlsOptions::new().cert_pem(&expired.cert_pem, &expired.key_pem)).await;
    let err = round_trip(&server.addr, &dial).await.unwrap_err();
    assert!(err.to_string().contains("certificate expired"), "{err}");

    // a certificate for other names
    let elsewhere = ca.issue("server", &["10.9.8.7", "elsewhere.internal"]);
    let server =
        tls_server(TlsOptions::new().cert_pem(&elsewhere.cert_pem, &elsewhere.key_pem)).await;
    let err = round_trip(&server.addr, &dial).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // unless the client is told the name to expect
    let named = dial_tls(&client.clone().server_name("elsewhere.internal"));
    round_trip(&server.addr, &named).await.unwrap();
    // or skips verification
    let insecure = dial_tls(&TlsOptions::new().insecure_skip_verify(true));
    round_trip(&server.addr, &insecure).await.unwrap();
}

#[tokio::test]
async fn plain_http_to_a_tls_port_gets_go_s_400() {
    let ca = TestCa::new("ca");
    let server = tls_server(server_tls(&ca)).await;
    // our plain client: a clear status error
    let err = round_trip(&server.addr, &DialOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(400), "{err:?}");
    assert!(
        err.to_string()
            .contains("Client sent an HTTP request to an HTTPS server"),
        "{err}"
    );
    // a raw client: the same words, then the connection closes
    let mut raw = TcpStream::connect(&server.addr).await.unwrap();
    raw.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within(raw.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 400 Bad Request"), "{answer}");
    // the server keeps serving TLS clients
    let dial = dial_tls(&TlsOptions::new().ca_pem(ca.cert_pem()));
    round_trip(&server.addr, &dial).await.unwrap();
}

#[tokio::test]
async fn a_tls_hello_to_a_plain_port_is_a_clear_error() {
    let listener = HttpTransport::new().listen("127.0.0.1:0").await.unwrap();
    assert!(!listener.is_secure());
    let server = serve(listener, echo_identity);
    let dial = dial_tls(&TlsOptions::new().insecure_skip_verify(true));
    let err = round_trip(&server.addr, &dial).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("does not speak TLS"), "{err}");
    // plain clients are still served
    let reply = round_trip(&server.addr, &DialOptions::default())
        .await
        .unwrap();
    assert_eq!(reply.header.get("Secure"), Some("false"));
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_handshakes() {
    let ca = TestCa::new("ca");
    let server = tls_server(server_tls(&ca)).await;
    // connected, says nothing
    let _silent = TcpStream::connect(&server.addr).await.unwrap();
    // garbage that is neither TLS nor HTTP
    let mut garbage = TcpStream::connect(&server.addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0])
        .await
        .unwrap();
    let dial = dial_tls(&TlsOptions::new().ca_pem(ca.cert_pem()));
    for _ in 0..3 {
        round_trip(&server.addr, &dial).await.unwrap();
    }
}

#[tokio::test]
async fn rotation_serves_new_certificates_and_keeps_the_old_on_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let (cert, key) = ca
        .issue("first", &["127.0.0.1"])
        .write(dir.path(), "server")
        .unwrap();
    let opts = TlsOptions::new()
        .cert_files(&cert, &key)
        .reload_interval(Duration::ZERO);
    let server = tls_server(opts).await;
    let dial = dial_tls(&TlsOptions::new().ca_pem(ca.cert_pem()));
    let served = |dial: DialOptions, addr: String| async move {
        let socket = within(HttpTransport::new().dial(&addr, &dial))
            .await
            .unwrap();
        let cn = socket.peer_identity().unwrap().common_name.clone().unwrap();
        (socket, cn)
    };
    let (kept, cn) = served(dial.clone(), server.addr.clone()).await;
    assert_eq!(cn, "first");

    ca.issue("second", &["127.0.0.1"])
        .write(dir.path(), "server")
        .unwrap();
    let (_, cn) = served(dial.clone(), server.addr.clone()).await;
    assert_eq!(cn, "second");

    std::fs::write(&cert, "garbage").unwrap();
    let (_, cn) = served(dial.clone(), server.addr.clone()).await;
    assert_eq!(cn, "second", "the old certificate stays in use");

    // the connection made before the rotations still works
    within(kept.send(&Message::new(Header::new(), "still here")))
        .await
        .unwrap();
    assert_eq!(within(kept.recv()).await.unwrap().body, "still here");
}

#[tokio::test]
async fn the_pool_keeps_plain_and_tls_connections_apart() {
    let ca = TestCa::new("ca");
    let server = tls_server(server_tls(&ca)).await;
    let pool = Pool::new(Arc::new(HttpTransport::new()), PoolOptions::new());
    let dial = dial_tls(&TlsOptions::new().ca_pem(ca.cert_pem()));
    let conn = within(pool.get(&server.addr, &dial)).await.unwrap();
    assert!(conn.is_tls());
    within(conn.send(&Message::new(Header::new(), "x")))
        .await
        .unwrap();
    within(conn.recv()).await.unwrap();
    conn.release();
    assert_eq!(pool.idle_count(&server.addr), 1);
    // a plain get does not take the TLS connection
    let plain = within(pool.get(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    assert!(!plain.is_reused() && !plain.is_tls());
    drop(plain);
    // a TLS get does
    let again = within(pool.get(&server.addr, &dial)).await.unwrap();
    assert!(again.is_reused() && again.is_tls());
}

/// An error with its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}
