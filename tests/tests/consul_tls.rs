//! HTTPS to Consul: certificates are verified by default (against the system's
//! roots, or the CA file given), skipping verification takes an explicit option,
//! and a client certificate is presented to an agent that demands one. Watches,
//! whose blocking queries run on connections of their own, verify and present
//! the same way.

use std::time::Duration;

use micro_consul::ConsulOptions;
use micro_registry::{Action, Error, Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::consul::{AgentOptions, ConsulAgent};

fn svc(id: &str) -> ServiceRecord {
    ServiceRecord {
        name: "tls".into(),
        version: "1".into(),
        nodes: vec![Node::new(id, "127.0.0.1:7800")],
        ..Default::default()
    }
}

async fn round_trip(reg: &impl Registry, id: &str) {
    reg.register(&svc(id), &RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .expect("register over https");
    let found = reg.get_service("tls").await.expect("get over https");
    assert!(found.iter().flat_map(|s| &s.nodes).any(|n| n.id == id));
    reg.deregister(&svc(id))
        .await
        .expect("deregister over https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_by_default() {
    let agent = ConsulAgent::start_with(AgentOptions::new().tls()).await;
    let https = agent.https_address().unwrap();

    // The agent's CA is not among the system's roots: refused.
    let default = ConsulOptions::new().address(&https).build().unwrap();
    let err = default.get_service("tls").await.unwrap_err();
    println!("default verification: {err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // Trusting the agent's CA: works.
    let with_ca = ConsulOptions::new()
        .address(&https)
        .ca_file(agent.ca_file().unwrap())
        .build()
        .unwrap();
    round_trip(&with_ca, "tls-ca").await;

    // `secure` turns an address without a scheme into HTTPS.
    let port = https.rsplit(':').next().unwrap();
    let secure = ConsulOptions::new()
        .address(format!("127.0.0.1:{port}"))
        .secure(true)
        .ca_file(agent.ca_file().unwrap())
        .build()
        .unwrap();
    assert!(secure.agent_url().starts_with("https://"));
    round_trip(&secure, "tls-secure").await;

    // Explicitly insecure: works without the CA.
    let insecure = ConsulOptions::new()
        .address(&https)
        .insecure_skip_verify(true)
        .build()
        .unwrap();
    round_trip(&insecure, "tls-insecure").await;

    // A CA that did not sign the agent's certificate: refused.
    let other = ConsulAgent::start_with(AgentOptions::new().tls()).await;
    let wrong_ca = ConsulOptions::new()
        .address(&https)
        .ca_file(other.ca_file().unwrap())
        .build()
        .unwrap();
    assert!(wrong_ca.get_service("tls").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_is_presented() {
    let agent = ConsulAgent::start_with(AgentOptions::new().tls().verify_clients()).await;
    let https = agent.https_address().unwrap();
    let no_cert = ConsulOptions::new()
        .address(&https)
        .ca_file(agent.ca_file().unwrap())
        .build()
        .unwrap();
    let err = no_cert.get_service("tls").await.unwrap_err();
    println!("no client certificate: {err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    // With TLS 1.3 the client's side of the handshake completes before the agent
    // checks for a certificate, so what the client sees depends on timing: the
    // agent's `CertificateRequired` alert, or a connection closed before the
    // request could be written. Either way the call is refused, never answered.
    let text = err.to_string();
    assert!(
        text.to_ascii_lowercase().contains("certificate")
            || text.contains("not ready")
            || text.contains("closed")
            || text.contains("reset"),
        "{err}"
    );

    let (cert, key) = agent.client_cert().unwrap();
    let with_cert = ConsulOptions::new()
        .address(&https)
        .ca_file(agent.ca_file().unwrap())
        .client_cert(cert, key)
        .build()
        .unwrap();
    round_trip(&with_cert, "tls-client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_verify_and_present_certificates() {
    let agent = ConsulAgent::start_with(AgentOptions::new().tls().verify_clients()).await;
    let https = agent.https_address().unwrap();
    let (cert, key) = agent.client_cert().unwrap();
    let reg = ConsulOptions::new()
        .address(&https)
        .ca_file(agent.ca_file().unwrap())
        .client_cert(cert.clone(), key.clone())
        .build()
        .unwrap();
    let mut w = reg
        .watch(&WatchOptions::service("tls"))
        .await
        .expect("watch over https with a client certificate");
    reg.register(
        &svc("tls-watched"),
        &RegisterOptions::ttl(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(20), w.next())
        .await
        .expect("an event within 20 s")
        .unwrap();
    assert_eq!(ev.action, Action::Create);
    assert_eq!(ev.service.nodes[0].id, "tls-watched");
    reg.deregister(&svc("tls-watched")).await.unwrap();

    // A CA that did not sign the agent's certificate: the watch does not start.
    let other = ConsulAgent::start_with(AgentOptions::new().tls()).await;
    let wrong_ca = ConsulOptions::new()
        .address(&https)
        .ca_file(other.ca_file().unwrap())
        .client_cert(cert, key)
        .build()
        .unwrap();
    let err = wrong_ca
        .watch(&WatchOptions::service("tls"))
        .await
        .err()
        .expect("a watch through an unverified agent fails");
    println!("watch with the wrong CA: {err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(
        err.to_string().to_ascii_lowercase().contains("certificate"),
        "{err}"
    );
}
