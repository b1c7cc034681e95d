//! TLS through whole services: a secure service with mutual TLS and a plain one
//! in one registry, a client that calls both (each node as its record says), the
//! caller's certificate identity in the handler's and the subscriber's context,
//! and callers that cannot prove who they are refused with a clear error.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use micro::registry::{MemoryRegistry, Registry};
use micro::server::{Handler, Routes, Subscriber};
use micro::tls::TlsOptions;
use micro::tls::testing::TestCa;
use micro::{Context, RpcError, Service};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Empty {}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Who {
    cn: String,
    spiffe: String,
}

fn who(ctx: &Context) -> Who {
    ctx.peer_identity()
        .map(|id| Who {
            cn: id.common_name.clone().unwrap_or_default(),
            spiffe: id.spiffe_id.clone().unwrap_or_default(),
        })
        .unwrap_or_default()
}

struct Whoami;

impl Whoami {
    async fn call(&self, ctx: Context, _req: Empty) -> Result<Who, RpcError> {
        Ok(who(&ctx))
    }
}

impl Handler for Whoami {
    const NAME: &'static str = "Whoami";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call);
    }
}

/// A certificate of `ca` for `cn`, valid for loopback, with a SPIFFE ID.
fn identity(ca: &TestCa, cn: &str) -> TlsOptions {
    let id = ca.issue(
        cn,
        &[
            "127.0.0.1",
            "localhost",
            &format!("spiffe://test.local/{cn}"),
        ],
    );
    TlsOptions::new()
        .cert_pem(&id.cert_pem, &id.key_pem)
        .ca_pem(ca.cert_pem())
}

fn service(
    name: &str,
    registry: &Arc<dyn Registry>,
    tls: Option<TlsOptions>,
) -> micro::ServiceBuilder {
    let b = Service::builder(name)
        .registry(registry.clone())
        .address("127.0.0.1:0")
        .broker_address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(10))
        .client_options(|o| o.request_timeout(Duration::from_secs(5)).retries(0));
    match tls {
        Some(t) => b.tls(t),
        None => b,
    }
}

async fn call(client: &Service, svc: &str) -> Result<Who, RpcError> {
    client
        .client()
        .request(svc, "Whoami.Call")
        .call(&Empty {})
        .await
        .map_err(RpcError::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_and_plain_services_side_by_side() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let ca = TestCa::new("mesh");
    let other = TestCa::new("other");
    let audit: Arc<Mutex<Vec<Who>>> = Arc::default();
    let seen = audit.clone();
    let secure = service(
        "secure",
        &registry,
        Some(identity(&ca, "secure").client_ca_pem(ca.cert_pem())),
    )
    .handle(Whoami)
    .subscribe(Subscriber::new("audit", move |ctx: Context, _: Empty| {
        let seen = seen.clone();
        async move {
            seen.lock().push(who(&ctx));
            Ok::<(), RpcError>(())
        }
    }))
    .build()
    .unwrap();
    let plain = service("plain", &registry, None)
        .handle(Whoami)
        .build()
        .unwrap();
    secure.start().await.unwrap();
    plain.start().await.unwrap();

    // the records say which node serves TLS
    let rec = &registry.get_service("secure").await.unwrap()[0].nodes[0];
    assert_eq!(rec.metadata.get("secure").map(String::as_str), Some("true"));
    let rec = &registry.get_service("plain").await.unwrap()[0].nodes[0];
    assert_eq!(rec.metadata.get("secure"), None);

    // a caller with a certificate of the mesh CA reaches both; the secure
    // service's handler and subscriber see who it is
    let caller = service("caller", &registry, Some(identity(&ca, "caller")))
        .build()
        .unwrap();
    let got = call(&caller, "secure").await.unwrap();
    assert_eq!(got.cn, "caller");
    assert_eq!(got.spiffe, "spiffe://test.local/caller");
    assert_eq!(
        call(&caller, "plain").await.unwrap().cn,
        "",
        "plain: no identity"
    );
    caller
        .client()
        .publish_event("audit", &Empty {})
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while audit.lock().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        audit.lock().first().map(|w| w.cn.clone()),
        Some("caller".into())
    );

    // a caller that trusts the CA but has no certificate: refused at the handshake
    let anonymous = service(
        "anonymous",
        &registry,
        Some(TlsOptions::new().ca_pem(ca.cert_pem())),
    )
    .build()
    .unwrap();
    let err = call(&anonymous, "secure").await.unwrap_err();
    assert_eq!(err.id, "go.micro.client.transport", "{err:?}");
    assert!(err.detail.contains("CertificateRequired"), "{}", err.detail);
    assert_eq!(call(&anonymous, "plain").await.unwrap().cn, "");

    // a caller with another CA's certificate, which does not trust ours either
    let stranger = service("stranger", &registry, Some(identity(&other, "stranger")))
        .build()
        .unwrap();
    let err = call(&stranger, "secure").await.unwrap_err();
    assert!(err.detail.contains("UnknownIssuer"), "{}", err.detail);

    // a caller without TLS options verifies against the system roots: refused too
    let default = service("default", &registry, None).build().unwrap();
    let err = call(&default, "secure").await.unwrap_err();
    assert_eq!(err.id, "go.micro.client.transport", "{err:?}");
    // UnknownIssuer; or, on a machine without a system root store, no TLS client
    assert!(
        err.detail.contains("certificate") || err.detail.contains("TLS"),
        "{}",
        err.detail
    );

    // the secure service still serves its trusted caller
    assert_eq!(call(&caller, "secure").await.unwrap().cn, "caller");
    for s in [secure, plain, caller, anonymous, stranger, default] {
        s.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_options_come_from_the_environment_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("env");
    let ca_file = ca.write(dir.path(), "ca").unwrap();
    let (cert, key) = ca
        .issue("svc", &["127.0.0.1"])
        .write(dir.path(), "svc")
        .unwrap();
    let vars = [
        ("MICRO_TLS_CERT", cert.display().to_string()),
        ("MICRO_TLS_KEY", key.display().to_string()),
        ("MICRO_TLS_CA", ca_file.display().to_string()),
        ("MICRO_TLS_CLIENT_CA", ca_file.display().to_string()),
    ];
    let config = micro::config::Config::from_lookup(|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let tls = config.tls.clone().expect("tls options");
    assert!(tls.serves_tls() && tls.requires_client_cert());
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let svc = service("env", &registry, None)
        .config(config)
        .unwrap()
        .handle(Whoami)
        .build()
        .unwrap();
    svc.start().await.unwrap();
    // it calls itself with its own certificate
    assert_eq!(call(&svc, "env").await.unwrap().cn, "svc");
    svc.stop().await.unwrap();

    let bad = micro::config::Config::from_lookup(|k| {
        (k == "MICRO_TLS_INSECURE").then(|| "maybe".to_owned())
    })
    .unwrap_err();
    assert!(bad.to_string().contains("MICRO_TLS_INSECURE"), "{bad}");
}
