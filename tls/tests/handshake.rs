//! Real TLS handshakes on loopback with the configurations this crate builds:
//! verification, mutual TLS, peer identities, rotation.

use std::time::Duration;

use micro_tls::testing::TestCa;
use micro_tls::{ALPN_HTTP1, ClientTls, PeerIdentity, ServerTls, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Accepts one connection, answers `ok` after the handshake; returns the peer
/// identity the server saw, or the handshake error.
async fn serve_one(listener: TcpListener, tls: ServerTls) -> Result<Option<PeerIdentity>, String> {
    let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let mut stream = TlsAcceptor::from(tls.config().clone())
        .accept(tcp)
        .await
        .map_err(|e| e.to_string())?;
    let peer = PeerIdentity::from_chain(stream.get_ref().1.peer_certificates());
    stream.write_all(b"ok").await.map_err(|e| e.to_string())?;
    stream.shutdown().await.ok();
    Ok(peer)
}

/// Connects to `addr` and reads what the server says.
async fn call(addr: &str, tls: &ClientTls) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = tls.server_name(addr).map_err(|e| e.to_string())?;
    let mut stream = TlsConnector::from(tls.config().clone())
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// One exchange: (client result, server result).
async fn exchange(
    server: &TlsOptions,
    client: &TlsOptions,
) -> (Result<String, String>, Result<Option<PeerIdentity>, String>) {
    let server = server.server(&[ALPN_HTTP1]).expect("server config");
    let client = client.client().expect("client config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let srv = tokio::spawn(serve_one(listener, server));
    let got = call(&addr, &client).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .expect("server done")
        .expect("server task");
    (got, seen)
}

fn server_opts(ca: &TestCa, sans: &[&str]) -> TlsOptions {
    let id = ca.issue("server", sans);
    TlsOptions::new().cert_pem(&id.cert_pem, &id.key_pem)
}

#[tokio::test]
async fn verified_by_ca_and_ip_san() {
    let ca = TestCa::new("ca");
    let server = server_opts(&ca, &["127.0.0.1", "localhost"]);
    let client = TlsOptions::new().ca_pem(ca.cert_pem());
    let (got, seen) = exchange(&server, &client).await;
    assert_eq!(got.unwrap(), "ok");
    assert_eq!(seen.unwrap(), None, "no client certificate without mTLS");
}

#[tokio::test]
async fn wrong_ca_expired_and_wrong_name_are_refused() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let client = TlsOptions::new().ca_pem(ca.cert_pem());

    let (got, _) = exchange(&server_opts(&other, &["127.0.0.1"]), &client).await;
    let err = got.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "wrong CA: {err}");

    let expired = ca.issue_expired("server", &["127.0.0.1"]);
    let server = TlsOptions::new().cert_pem(&expired.cert_pem, &expired.key_pem);
    let err = exchange(&server, &client).await.0.unwrap_err();
    assert!(err.contains("certificate expired"), "expired: {err}");

    let err = exchange(&server_opts(&ca, &["10.1.2.3", "elsewhere"]), &client)
        .await
        .0
        .unwrap_err();
    assert!(err.contains("not valid for name"), "wrong name: {err}");

    // a server-name override matching a DNS SAN works for an IP-addressed node
    let named = client.clone().server_name("elsewhere");
    let got = exchange(&server_opts(&ca, &["10.1.2.3", "elsewhere"]), &named)
        .await
        .0;
    assert_eq!(got.unwrap(), "ok");

    // skipping verification reaches all of them
    let insecure = TlsOptions::new().insecure_skip_verify(true);
    let got = exchange(&server_opts(&other, &["10.1.2.3"]), &insecure)
        .await
        .0;
    assert_eq!(got.unwrap(), "ok");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let server = server_opts(&ca, &["127.0.0.1"]).client_ca_pem(ca.cert_pem());

    // no certificate: refused at the handshake
    let (got, seen) = exchange(&server, &TlsOptions::new().ca_pem(ca.cert_pem())).await;
    assert!(got.is_err(), "{got:?}");
    let err = seen.unwrap_err();
    assert!(err.contains("peer sent no certificates"), "{err}");

    // a certificate from another CA: refused
    let stranger = other.issue("stranger", &["spiffe://other/x"]);
    let client = TlsOptions::new()
        .ca_pem(ca.cert_pem())
        .cert_pem(&stranger.cert_pem, &stranger.key_pem);
    let (got, seen) = exchange(&server, &client).await;
    assert!(got.is_err(), "{got:?}");
    assert!(seen.unwrap_err().contains("UnknownIssuer"));

    // the CA's: accepted, and its identity seen by the server
    let orders = ca.issue(
        "orders",
        &[
            "orders.internal",
            "127.0.0.1",
            "spiffe://example.org/ns/prod/sa/orders",
        ],
    );
    let client = TlsOptions::new()
        .ca_pem(ca.cert_pem())
        .cert_pem(&orders.cert_pem, &orders.key_pem);
    let (got, seen) = exchange(&server, &client).await;
    assert_eq!(got.unwrap(), "ok");
    let id = seen.unwrap().expect("peer identity");
    assert_eq!(id.common_name.as_deref(), Some("orders"));
    assert!(id.subject.contains("CN=orders"), "{}", id.subject);
    assert_eq!(id.dns_names, ["orders.internal"]);
    assert_eq!(
        id.ip_addresses,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        id.spiffe_id.as_deref(),
        Some("spiffe://example.org/ns/prod/sa/orders")
    );
}

#[tokio::test]
async fn certificates_rotate_and_garbage_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let first = ca.issue("first", &["127.0.0.1"]);
    let (cert, key) = first.write(dir.path(), "server").unwrap();
    let opts = TlsOptions::new()
        .cert_files(&cert, &key)
        .reload_interval(Duration::ZERO);
    let server = opts.server(&[ALPN_HTTP1]).unwrap();
    let client = TlsOptions::new().ca_pem(ca.cert_pem()).client().unwrap();
    let served = |s: &ServerTls| PeerIdentity::from_der(&s.certificate()[0]).unwrap();
    assert_eq!(served(&server).common_name.as_deref(), Some("first"));

    // rotation: new files, picked up by the next handshake
    let second = ca.issue("second", &["127.0.0.1"]);
    second.write(dir.path(), "server").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let srv = tokio::spawn(serve_one(listener, server.clone()));
    assert_eq!(call(&addr, &client).await.unwrap(), "ok");
    srv.await.unwrap().unwrap();
    assert_eq!(served(&server).common_name.as_deref(), Some("second"));

    // garbage: the old certificate stays, and the error is reported
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let err = server.reload_now().unwrap_err();
    assert!(err.contains("server.crt"), "{err}");
    assert_eq!(served(&server).common_name.as_deref(), Some("second"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let srv = tokio::spawn(serve_one(listener, server.clone()));
    assert_eq!(call(&addr, &client).await.unwrap(), "ok");
    srv.await.unwrap().unwrap();

    // a key that does not match the certificate: refused the same way
    let third = ca.issue("third", &["127.0.0.1"]);
    std::fs::write(&cert, &third.cert_pem).unwrap();
    let err = server.reload_now().unwrap_err();
    assert!(err.contains("not a usable certificate and key"), "{err}");
    assert_eq!(served(&server).common_name.as_deref(), Some("second"));

    // both files good again: taken
    std::fs::write(&key, &third.key_pem).unwrap();
    server.reload_now().unwrap();
    assert_eq!(served(&server).common_name.as_deref(), Some("third"));
}

#[tokio::test]
async fn bad_configurations_are_clear_errors() {
    let err = TlsOptions::new().server(&[ALPN_HTTP1]).unwrap_err();
    assert!(err.to_string().contains("needs a certificate"), "{err}");
    let err = TlsOptions::new()
        .cert_files("/nonexistent/c.pem", "/nonexistent/k.pem")
        .server(&[ALPN_HTTP1])
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    let err = TlsOptions::new().ca_pem("garbage").client().unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    let ca = TestCa::new("ca");
    let a = ca.issue("a", &["127.0.0.1"]);
    let b = ca.issue("b", &["127.0.0.1"]);
    let err = TlsOptions::new()
        .cert_pem(&a.cert_pem, &b.key_pem)
        .server(&[ALPN_HTTP1])
        .unwrap_err();
    assert!(
        err.to_string().contains("not a usable certificate and key"),
        "{err}"
    );
}

#[tokio::test]
async fn self_signed_mode_serves_clients_that_skip_verification() {
    let server = TlsOptions::new().self_signed(true);
    let got = exchange(&server, &TlsOptions::new().insecure_skip_verify(true))
        .await
        .0;
    assert_eq!(got.unwrap(), "ok");
    let ca = TestCa::new("ca");
    let err = exchange(&server, &TlsOptions::new().ca_pem(ca.cert_pem()))
        .await
        .0
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
}
