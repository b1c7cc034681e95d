//! TLS between our services and real go-micro programs (v4.11 and v5.30), through
//! etcd, both ways, for calls and for events. One CA made by the test signs a
//! certificate for each side; Go programs get it the way a go-micro user gives it
//! (`transport.Secure(true)`, `transport.TLSConfig`, `broker.Secure(true)`,
//! `broker.TLSConfig`; the peers' `--secure`, `--tls-*` flags).
//!
//! * A Go client with our CA and its certificate calls our server, which requires
//!   client certificates and sees the Go program's identity; without a
//!   certificate it is refused. With an explicit skip-verify config it reaches a
//!   server that does not require client certificates. go-micro's *RPC* client does
//!   not skip verification by default (v4.11 and v5.30 dial with
//!   `InsecureSkipVerify: false` unless a TLS config says otherwise): with `--secure`
//!   alone it refuses our certificate, which the test checks.
//! * Our client (dialling every node with TLS: go-micro servers do not say they
//!   serve TLS) calls a Go TLS server, with and without mutual TLS.
//! * A Go publisher delivers over https to our TLS subscriber (with its certificate,
//!   identity seen; and with go-micro's default broker client, which skips
//!   verification), and our publisher delivers over https to a Go `Secure` subscriber
//!   that registers `secure=true`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use examples::{CallRequest, CallResponse, ExampleEvent};
use micro::server::{Handler, Routes, Subscriber};
use micro::tls::TlsOptions;
use micro::tls::testing::TestCa;
use micro::{Context, RpcError, Service};
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    GoProc, GoVersion, Recorder, Registries, RegistryKind, our_server, poll, retry_lost, run,
};
use serde_json::{Value, json};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);

/// The test PKI, as files for the Go programs and PEM for us.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    /// Our certificate and key (CN `rust`).
    rust: (PathBuf, PathBuf),
    /// The Go programs' (CN `go`).
    go: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("interop");
        let ca_file = ca.write(dir.path(), "ca").expect("write ca");
        let sans = ["127.0.0.1", "localhost"];
        let rust = ca
            .issue("rust", &sans)
            .write(dir.path(), "rust")
            .expect("rust");
        let go = ca.issue("go", &sans).write(dir.path(), "go").expect("go");
        Pki {
            _dir: dir,
            ca_file,
            rust,
            go,
        }
    }

    /// Our options: our certificate, the CA for servers.
    fn ours(&self) -> TlsOptions {
        TlsOptions::new()
            .cert_files(&self.rust.0, &self.rust.1)
            .ca_file(&self.ca_file)
    }

    /// The Go flags: the CA, and the Go certificate.
    fn go_flags(&self) -> Vec<String> {
        vec![
            "--tls-ca".into(),
            self.ca_file.display().to_string(),
            "--tls-cert".into(),
            self.go.0.display().to_string(),
            "--tls-key".into(),
            self.go.1.display().to_string(),
        ]
    }
}

/// `Helloworld.Call` answering with the caller's certificate common name.
struct Helloworld;

impl Helloworld {
    async fn call(&self, ctx: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        let cn = ctx
            .peer_identity()
            .and_then(|id| id.common_name.clone())
            .unwrap_or_else(|| "anonymous".into());
        Ok(CallResponse {
            msg: format!("Hello {} from {cn}", req.name),
        })
    }
}

impl Handler for Helloworld {
    const NAME: &'static str = "Helloworld";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_both_ways_with_go_micro() {
    init_tracing();
    let registries = Registries::start().await;
    let pki = Arc::new(Pki::new());
    let tasks: Vec<_> = GoVersion::ALL
        .into_iter()
        .map(|go| {
            let (registries, pki) = (registries.clone(), pki.clone());
            (go, tokio::spawn(scenario(registries, pki, go)))
        })
        .collect();
    let mut failed = Vec::new();
    for (go, task) in tasks {
        match task.await {
            Ok(()) => eprintln!("PASS tls with {} / etcd", go.label()),
            Err(e) => {
                eprintln!("FAIL tls with {} / etcd: {e}", go.label());
                failed.push(format!("{}: {e}", go.label()));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

async fn scenario(registries: Arc<Registries>, pki: Arc<Pki>, go: GoVersion) {
    let base = registries.go_args(RegistryKind::Etcd);
    let registry = registries.registry(RegistryKind::Etcd);
    go_client_calls_our_server(go, &base, &registry, &pki).await;
    our_client_calls_go_server(go, &base, &registry, &pki).await;
    go_publisher_to_our_subscriber(go, &base, &registry, &pki).await;
    our_publisher_to_go_subscriber(go, &base, &registry, &pki).await;
}

/// Runs the Go client's `call` against `service` with `extra` flags.
async fn go_call(
    go: GoVersion,
    base: &[String],
    service: &str,
    extra: &[String],
) -> micro_tests::harness::gomicro::GoOutput {
    let mut args: Vec<String> = vec!["call".into()];
    args.extend(base.iter().cloned());
    args.extend([
        "--service".into(),
        service.into(),
        "--name".into(),
        "Go".into(),
    ]);
    args.extend(extra.iter().cloned());
    run(go, "client", &args, LIMIT).await
}

async fn go_client_calls_our_server(
    go: GoVersion,
    base: &[String],
    registry: &Arc<dyn micro::registry::Registry>,
    pki: &Pki,
) {
    // mutual TLS: the Go client presents its certificate, our handler sees it
    let name = format!("rust-tls-mtls-{}", go.key());
    let service = our_server(&name, registry.clone())
        .tls(pki.ours().client_ca_file(&pki.ca_file))
        .handle(Helloworld)
        .build()
        .expect("build");
    service.start().await.expect("start");
    let out = go_call(go, base, &name, &pki.go_flags())
        .await
        .expect_code(0);
    assert_eq!(out, vec![json!({"msg": "Hello Go from go"})]);

    // without a client certificate: refused at the handshake
    let ca_only = ["--tls-ca".to_owned(), pki.ca_file.display().to_string()];
    let out = go_call(go, base, &name, &ca_only).await;
    let lines = out.expect_code(1);
    assert!(
        lines.first().is_some_and(|l| l.get("error").is_some()),
        "{}",
        out.context()
    );
    service.stop().await.expect("stop");

    // TLS without client certificates: a Go client that skips verification
    // reaches it; one with go-micro's default RPC settings verifies against the
    // system's roots and refuses our certificate
    let name = format!("rust-tls-{}", go.key());
    let service = our_server(&name, registry.clone())
        .tls(pki.ours())
        .handle(Helloworld)
        .build()
        .expect("build");
    service.start().await.expect("start");
    let skip = ["--secure".to_owned(), "--insecure-skip-verify".to_owned()];
    let out = go_call(go, base, &name, &skip).await.expect_code(0);
    assert_eq!(out, vec![json!({"msg": "Hello Go from anonymous"})]);
    let out = go_call(go, base, &name, &["--secure".to_owned()]).await;
    let lines = out.expect_code(1);
    let text = lines.first().map(Value::to_string).unwrap_or_default();
    assert!(
        text.contains("certificate") || text.contains("x509"),
        "go-micro's default RPC client verifies: {}",
        out.context()
    );
    // and a plain Go client fails: v5 reports Go's own answer from our TLS port
    // (400, "Client sent an HTTP request to an HTTPS server."); v4.11's client
    // reports the closed connection as "EOF"
    let out = go_call(go, base, &name, &[]).await;
    let lines = out.expect_code(1);
    let text = lines.first().map(Value::to_string).unwrap_or_default();
    eprintln!("[{}] plain Go client: {text}", go.label());
    if go == GoVersion::V5 {
        assert!(
            text.contains("HTTP request to an HTTPS server"),
            "plain Go client: {}",
            out.context()
        );
    }
    service.stop().await.expect("stop");
}

async fn our_client_calls_go_server(
    go: GoVersion,
    base: &[String],
    registry: &Arc<dyn micro::registry::Registry>,
    pki: &Pki,
) {
    for mutual in [false, true] {
        let name = format!(
            "go-tls-{}-{}",
            go.key(),
            if mutual { "mtls" } else { "tls" }
        );
        let mut args = base.to_vec();
        args.extend(["--name".into(), name.clone()]);
        args.extend(pki.go_flags());
        if mutual {
            args.extend(["--tls-client-ca".into(), pki.ca_file.display().to_string()]);
        }
        let mut server = GoProc::spawn(go, "server", &args);
        let ready = server.ready(LIMIT).await;
        // go-micro servers do not advertise TLS: the client dials every node with it
        let caller = our_server(&format!("rust-caller-{name}"), registry.clone())
            .tls(pki.ours().dial_all(true))
            .build()
            .expect("build caller");
        let req = CallRequest {
            name: "Rust".into(),
        };
        let rsp: CallResponse = retry_lost(&name, || {
            caller.client().request(&name, "Helloworld.Call").call(&req)
        })
        .await
        .unwrap_or_else(|e| panic!("call Go TLS server at {}: {e}", ready.address));
        assert_eq!(rsp.msg, "Hello Rust");

        // without our certificate the mutual-TLS Go server refuses us; without
        // the CA no Go server is trusted
        let refused: Vec<TlsOptions> = if mutual {
            vec![TlsOptions::new().ca_file(&pki.ca_file).dial_all(true)]
        } else {
            vec![
                TlsOptions::new()
                    .ca_pem(TestCa::new("stranger").cert_pem())
                    .dial_all(true),
            ]
        };
        for tls in refused {
            let stranger = our_server(&format!("rust-stranger-{name}"), registry.clone())
                .tls(tls)
                .client_options(|o| o.retries(0))
                .build()
                .expect("build");
            let err = stranger
                .client()
                .request(&name, "Helloworld.Call")
                .call::<_, CallResponse>(&req)
                .await
                .expect_err("refused");
            assert_eq!(err.id(), "go.micro.client.transport", "{err:?}");
            eprintln!("[{}] refused as expected: {}", go.label(), err.detail());
            stranger.stop().await.expect("stop");
        }
        caller.stop().await.expect("stop caller");
        let (by_itself, out) = server.terminate(LIMIT).await;
        assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
    }
}

/// (event, the publisher's certificate common name).
type Got = Recorder<(ExampleEvent, String)>;

fn recording(topic: &str, got: &Got) -> Subscriber {
    let got = got.clone();
    Subscriber::new(topic, move |ctx: Context, ev: ExampleEvent| {
        let got = got.clone();
        async move {
            let cn = ctx
                .peer_identity()
                .and_then(|id| id.common_name.clone())
                .unwrap_or_default();
            got.push((ev, cn));
            Ok::<(), RpcError>(())
        }
    })
}

async fn go_publish(go: GoVersion, base: &[String], topic: &str, extra: &[String]) {
    let mut args = base.to_vec();
    args.extend(["--topic".into(), topic.into(), "--count".into(), "2".into()]);
    args.extend(extra.iter().cloned());
    let out = run(go, "publisher", &args, LIMIT).await;
    let lines = out.expect_code(0);
    assert_eq!(lines.len(), 2, "{}", out.context());
}

async fn go_publisher_to_our_subscriber(
    go: GoVersion,
    base: &[String],
    registry: &Arc<dyn micro::registry::Registry>,
    pki: &Pki,
) {
    // mutual TLS: the Go publisher's certificate is seen by our subscriber
    let topic = format!("interop.tls.{}.go-to-rust", go.key());
    let got = Got::new();
    let service: Service = our_server(&format!("rust-tls-sub-{}", go.key()), registry.clone())
        .tls(pki.ours().client_ca_file(&pki.ca_file))
        .subscribe(recording(&topic, &got))
        .build()
        .expect("build");
    service.start().await.expect("start");
    let mut flags = vec!["--secure".to_owned()];
    flags.extend(pki.go_flags());
    go_publish(go, base, &topic, &flags).await;
    let all = got.wait_for(LIMIT, |g| g.len() >= 2).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, cn)| cn == "go"), "{all:?}");
    service.stop().await.expect("stop");

    // go-micro's default broker client (Secure, no TLS config) skips verification
    // and reaches our TLS subscriber (no client certificates required)
    let topic = format!("interop.tls.{}.go-default", go.key());
    let got = Got::new();
    let service: Service = our_server(&format!("rust-tls-sub2-{}", go.key()), registry.clone())
        .tls(pki.ours())
        .subscribe(recording(&topic, &got))
        .build()
        .expect("build");
    service.start().await.expect("start");
    go_publish(go, base, &topic, &["--secure".to_owned()]).await;
    let all = got.wait_for(LIMIT, |g| g.len() >= 2).await;
    assert!(all.iter().all(|(_, cn)| cn.is_empty()), "{all:?}");
    service.stop().await.expect("stop");
}

async fn our_publisher_to_go_subscriber(
    go: GoVersion,
    base: &[String],
    registry: &Arc<dyn micro::registry::Registry>,
    pki: &Pki,
) {
    let topic = format!("interop.tls.{}.rust-to-go", go.key());
    let mut args = base.to_vec();
    args.extend(["--topic".into(), topic.clone(), "--secure".into()]);
    args.extend(pki.go_flags());
    let mut sub = GoProc::spawn(go, "subscriber", &args);
    let ready = sub.ready(LIMIT).await;
    // go-micro's Secure broker registers secure=true
    let node = poll(LIMIT, || async {
        let services = registry.get_service("micro.http.broker").await.ok()?;
        services
            .into_iter()
            .flat_map(|s| s.nodes)
            .find(|n| n.id == ready.node_id)
    })
    .await
    .expect("Go subscriber registered")
    .0;
    assert_eq!(
        node.metadata.get("secure").map(String::as_str),
        Some("true")
    );

    let publisher = our_server(&format!("rust-tls-pub-{}", go.key()), registry.clone())
        .tls(pki.ours())
        .build()
        .expect("build");
    let ev = ExampleEvent {
        id: format!("tls-{}", go.key()),
        timestamp: 1,
        message: "over https".into(),
    };
    publisher
        .client()
        .publish_event(&topic, &ev)
        .await
        .expect("publish");
    let line = sub.next_json(LIMIT).await;
    assert_eq!(line["body"]["id"], json!(ev.id), "{line}");
    assert_eq!(line["body"]["message"], json!("over https"), "{line}");
    publisher.stop().await.expect("stop");
    let (by_itself, out) = sub.terminate(LIMIT).await;
    assert!(
        by_itself,
        "Go subscriber ignored SIGTERM: {}",
        out.context()
    );
}
