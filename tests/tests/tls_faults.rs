//! Bad input and faults around TLS, through whole services with real handshakes
//! on loopback: plain HTTP to a TLS port, a TLS hello to a plain port, an expired
//! certificate, a CA the caller does not trust, a certificate for another host, a
//! client certificate from another CA, and a certificate file replaced by garbage
//! during rotation. Each gets a clear error on the caller's side (or, for the
//! garbage file, an error in the log while the old certificate stays in use), and
//! the server keeps serving a trusted caller throughout.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use examples::{CallRequest, CallResponse};
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{Handler, Routes};
use micro::tls::testing::{Issued, TestCa};
use micro::tls::{PeerIdentity, TlsOptions};
use micro::transport::{DialOptions, Header, HttpTransport, Message, Transport};
use micro::{Context, RpcError, Service};
use micro_tests::harness::gomicro::our_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);

struct Helloworld;

impl Helloworld {
    async fn call(&self, _ctx: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        Ok(CallResponse {
            msg: format!("Hello {}", req.name),
        })
    }
}

impl Handler for Helloworld {
    const NAME: &'static str = "Helloworld";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call);
    }
}

fn pem(id: &Issued) -> TlsOptions {
    TlsOptions::new().cert_pem(&id.cert_pem, &id.key_pem)
}

async fn server(name: &str, registry: &Arc<dyn Registry>, tls: Option<TlsOptions>) -> Service {
    let b = our_server(name, registry.clone()).handle(Helloworld);
    let b = match tls {
        Some(t) => b.tls(t),
        None => b,
    };
    let s = b.build().expect("build");
    s.start().await.expect("start");
    s
}

fn caller(registry: &Arc<dyn Registry>, tls: TlsOptions) -> Service {
    our_server("caller", registry.clone())
        .tls(tls)
        .client_options(|o| o.retries(0).request_timeout(Duration::from_secs(5)))
        .build()
        .expect("build caller")
}

async fn call(caller: &Service, service: &str) -> Result<String, RpcError> {
    let req = CallRequest { name: "you".into() };
    tokio::time::timeout(
        LIMIT,
        caller
            .client()
            .request(service, "Helloworld.Call")
            .call::<_, CallResponse>(&req),
    )
    .await
    .expect("call in time")
    .map(|r| r.msg)
    .map_err(RpcError::from)
}

/// Asserts that the call fails at the transport with `words` in its detail.
async fn refused(caller: &Service, service: &str, words: &str) {
    let err = call(caller, service).await.expect_err("refused");
    assert_eq!(err.id, "go.micro.client.transport", "{err:?}");
    assert!(
        err.detail.contains(words),
        "want {words:?} in {:?}",
        err.detail
    );
    eprintln!("{service}: {}", err.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_peer_gets_a_clear_error_and_the_server_keeps_serving() {
    logs();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let ca = TestCa::new("mesh");
    let other = TestCa::new("other");
    let sans = ["127.0.0.1", "localhost"];
    let secure = server(
        "secure",
        &registry,
        Some(pem(&ca.issue("secure", &sans)).client_ca_pem(ca.cert_pem())),
    )
    .await;
    let trusted = caller(
        &registry,
        pem(&ca.issue("trusted", &sans)).ca_pem(ca.cert_pem()),
    );
    let serving = || async { assert_eq!(call(&trusted, "secure").await.unwrap(), "Hello you") };
    serving().await;
    let addr = registry.get_service("secure").await.unwrap()[0].nodes[0]
        .address
        .clone();

    // plain HTTP to the TLS port: our transport and a raw client get Go's 400
    let plain = HttpTransport::new()
        .dial(&addr, &DialOptions::default())
        .await
        .unwrap();
    plain
        .send(&Message::new(Header::new(), "{}"))
        .await
        .unwrap();
    let err = plain.recv().await.unwrap_err();
    assert_eq!(err.status_code(), Some(400), "{err}");
    assert!(
        err.to_string()
            .contains("Client sent an HTTP request to an HTTPS server")
    );
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, raw.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.0 400 Bad Request"));
    serving().await;

    // a client certificate from another CA, and none at all
    let stranger = caller(
        &registry,
        pem(&other.issue("stranger", &sans)).ca_pem(ca.cert_pem()),
    );
    refused(&stranger, "secure", "alert").await;
    let anonymous = caller(&registry, TlsOptions::new().ca_pem(ca.cert_pem()));
    refused(&anonymous, "secure", "CertificateRequired").await;
    serving().await;

    // the caller does not trust the server's CA
    let distrustful = caller(
        &registry,
        pem(&ca.issue("d", &sans)).ca_pem(other.cert_pem()),
    );
    refused(&distrustful, "secure", "UnknownIssuer").await;
    serving().await;

    // an expired server certificate, and one for another host
    let expired = server(
        "expired",
        &registry,
        Some(pem(&ca.issue_expired("x", &sans))),
    )
    .await;
    refused(&trusted, "expired", "certificate expired").await;
    let elsewhere = server(
        "elsewhere",
        &registry,
        Some(pem(&ca.issue("e", &["10.9.8.7", "elsewhere.internal"]))),
    )
    .await;
    refused(&trusted, "elsewhere", "not valid for name").await;
    serving().await;

    // a TLS hello to a plain port (a caller that dials every node with TLS)
    let _plain = server("plain", &registry, None).await;
    let tls_everywhere = caller(
        &registry,
        pem(&ca.issue("t", &sans))
            .ca_pem(ca.cert_pem())
            .dial_all(true),
    );
    refused(&tls_everywhere, "plain", "does not speak TLS").await;
    // while a caller dialling by the records reaches it in plain TCP
    assert_eq!(call(&trusted, "plain").await.unwrap(), "Hello you");
    serving().await;

    for s in [
        secure,
        expired,
        elsewhere,
        _plain,
        trusted,
        stranger,
        anonymous,
        distrustful,
        tls_everywhere,
    ] {
        s.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_during_rotation_keeps_the_old_certificate_and_logs_an_error() {
    let log = logs();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("rotation");
    let sans = ["127.0.0.1", "localhost"];
    let (cert, key) = ca
        .issue("first", &sans)
        .write(dir.path(), "server")
        .unwrap();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let opts = TlsOptions::new()
        .cert_files(&cert, &key)
        .reload_interval(Duration::from_millis(50));
    let svc = server("rotating", &registry, Some(opts)).await;
    let addr = registry.get_service("rotating").await.unwrap()[0].nodes[0]
        .address
        .clone();
    let client_tls = TlsOptions::new().ca_pem(ca.cert_pem()).client().unwrap();
    // the certificate a new connection is served
    let served = || {
        let (addr, tls) = (addr.clone(), client_tls.clone());
        async move {
            let dial = DialOptions {
                tls: Some(tls.into()),
                ..DialOptions::default()
            };
            let socket = HttpTransport::new().dial(&addr, &dial).await.unwrap();
            let id: Arc<PeerIdentity> = socket.peer_identity().unwrap();
            socket.close().await;
            id.common_name.clone().unwrap()
        }
    };
    assert_eq!(served().await, "first");
    let kept = caller(&registry, TlsOptions::new().ca_pem(ca.cert_pem()));
    assert_eq!(call(&kept, "rotating").await.unwrap(), "Hello you");

    // a good new certificate is picked up by the next handshakes
    ca.issue("second", &sans)
        .write(dir.path(), "server")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served().await, "second");

    // garbage: logged, the old certificate stays, callers keep being served
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64 !!\n").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(served().await, "second");
    let fresh = caller(&registry, TlsOptions::new().ca_pem(ca.cert_pem()));
    assert_eq!(call(&fresh, "rotating").await.unwrap(), "Hello you");
    assert_eq!(call(&kept, "rotating").await.unwrap(), "Hello you");
    let text = log.lock().unwrap().clone();
    assert!(
        text.contains("cannot be loaded; the previous certificate stays in use")
            && text.contains("server.crt"),
        "the error is logged: {text}"
    );
    for s in [svc, kept, fresh] {
        s.stop().await.expect("stop");
    }
}

/// Everything logged at warn and above in this test binary (both tests share it).
fn logs() -> Arc<Mutex<String>> {
    static LOG: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        log
    })
    .clone()
}

/// A log writer appending to a shared string (and to stderr, for the test output).
struct Sink(Arc<Mutex<String>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&String::from_utf8_lossy(buf));
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
