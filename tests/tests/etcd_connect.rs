//! Connecting: lazily (building never fails because etcd is down; calls fail
//! with clear errors and work once etcd is up), with user and password (also
//! across an etcd restart, which invalidates tokens), and over TLS that verifies
//! the server against the given CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use micro_etcd::{EtcdRegistry, TlsConfig};
use micro_registry::{Error, RegisterOptions, Registry, WatchOptions};
use micro_tests::harness::etcd::{Etcd, ServerTls, init_tracing, node_service};
use micro_tests::harness::wait_until;

fn is_connection_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            registry: "etcd",
            ..
        } | Error::Timeout {
            registry: "etcd",
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_connection_and_clear_errors() {
    init_tracing();
    let mut etcd = Etcd::start().await.expect("etcd");
    etcd.stop().await;
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .timeout(Duration::from_secs(1))
        .build()
        .expect("building needs no etcd");
    let svc = node_service("lazy", "1", "lazy-1", "127.0.0.1:1");
    let ttl = RegisterOptions::ttl(Duration::from_secs(3));
    let err = reg.get_service("lazy").await.expect_err("etcd is down");
    assert!(is_connection_error(&err), "{err:?}");
    assert!(
        err.to_string().starts_with("etcd registry: get_service"),
        "{err}"
    );
    let err = reg.register(&svc, &ttl).await.expect_err("etcd is down");
    assert!(is_connection_error(&err), "{err:?}");
    assert!(is_connection_error(
        &reg.list_services().await.expect_err("down")
    ));
    let werr = reg
        .watch(&WatchOptions::all())
        .await
        .err()
        .expect("watch needs etcd");
    assert!(is_connection_error(&werr), "{werr:?}");

    etcd.restart().await.expect("restart");
    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { reg.register(&svc, &ttl).await.is_ok() },
    )
    .await;
    assert!(ok, "register works once etcd is up");
    assert_eq!(
        reg.get_service("lazy").await.expect("get")[0].nodes[0].id,
        "lazy-1"
    );
    reg.deregister(&svc).await.expect("deregister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    init_tracing();
    let mut etcd = Etcd::start().await.expect("etcd");
    {
        let mut c = etcd.client().await.expect("client");
        c.user_add("root", "rootpw", None).await.expect("user add");
        c.user_grant_role("root", "root").await.expect("grant");
        c.auth_enable().await.expect("auth enable");
    }
    let reg = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .auth("root", "rootpw")
        .build()
        .expect("registry");
    let svc = node_service("secret", "1", "secret-1", "127.0.0.1:1");
    let ttl = RegisterOptions::ttl(Duration::from_secs(3));
    reg.register(&svc, &ttl).await.expect("register with auth");
    assert!(reg.get_service("secret").await.is_ok());

    let anonymous = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .build()
        .expect("registry");
    let err = anonymous
        .get_service("secret")
        .await
        .expect_err("needs auth");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let wrong = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .auth("root", "nope")
        .build()
        .expect("registry");
    let err = wrong
        .get_service("secret")
        .await
        .expect_err("wrong password");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");

    // A restart invalidates the token; the registry authenticates again, and the
    // keeper keeps the lease alive meanwhile.
    etcd.stop().await;
    etcd.restart().await.expect("restart");
    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            reg.register(&svc, &ttl).await.is_ok() && reg.get_service("secret").await.is_ok()
        },
    )
    .await;
    assert!(ok, "registry works again after the restart");
    reg.deregister(&svc).await.expect("deregister");
}

/// Writes a CA and a server certificate for 127.0.0.1 signed by it into `dir`;
/// returns (ca, cert, key).
fn make_certs(
    dir: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("ext.cnf"),
    );
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").expect("ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (ca, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = make_certs(dir.path(), "good");
    let (other_ca, _, _) = make_certs(dir.path(), "other");
    let etcd = Etcd::start_tls(ServerTls {
        cert,
        key,
        client_ca: None,
    })
    .await
    .expect("etcd with tls");

    let trusted = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .tls(TlsConfig::new().ca_file(&ca))
        .build()
        .expect("registry");
    let svc = node_service("sealed", "1", "sealed-1", "127.0.0.1:1");
    let ok = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            trusted
                .register(&svc, &RegisterOptions::ttl(Duration::from_secs(3)))
                .await
                .is_ok()
        },
    )
    .await;
    assert!(
        ok,
        "register over TLS: {:?}",
        trusted.get_service("sealed").await
    );
    assert!(trusted.get_service("sealed").await.is_ok());

    // A certificate from another CA is refused.
    let untrusted = EtcdRegistry::builder()
        .endpoints(etcd.endpoints())
        .tls(TlsConfig::new().ca_file(&other_ca))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("registry");
    let err = untrusted
        .get_service("sealed")
        .await
        .expect_err("not trusted");
    assert!(is_connection_error(&err), "{err:?}");

    // https without a CA, and TLS without a CA, are refused up front.
    assert!(matches!(
        EtcdRegistry::builder().endpoints(etcd.endpoints()).build(),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        EtcdRegistry::builder()
            .endpoints(etcd.endpoints())
            .tls(TlsConfig::new())
            .build(),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        EtcdRegistry::builder()
            .endpoints(etcd.endpoints())
            .tls(TlsConfig::new().ca_file(dir.path().join("missing.pem")))
            .build(),
        Err(Error::Invalid(_))
    ));
    trusted.deregister(&svc).await.expect("deregister");
}
