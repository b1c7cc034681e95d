//! The HTTP broker over TLS: subscribers served over https and registered with
//! `secure=true`, deliveries verified, mutual TLS with the publisher's identity in
//! the event, and refused publishers that cost nothing but their own delivery.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use common::{Collector, opts, raw, status_of, wait_for, wait_subscribers};
use micro_broker::{Broker, Envelope, HttpBroker, SubscribeOptions};
use micro_registry::{MemoryRegistry, Registry};
use micro_tls::TlsOptions;
use micro_tls::testing::TestCa;

fn server_tls(ca: &TestCa, cn: &str) -> TlsOptions {
    let id = ca.issue(cn, &["127.0.0.1", "localhost"]);
    TlsOptions::new()
        .cert_pem(&id.cert_pem, &id.key_pem)
        .ca_pem(ca.cert_pem())
}

fn with_tls(registry: &Arc<MemoryRegistry>, tls: TlsOptions) -> HttpBroker {
    HttpBroker::with_options(opts(registry).retry_attempts(0).tls(tls))
}

#[tokio::test]
async fn events_travel_over_https_to_secure_subscribers() {
    let registry = Arc::new(MemoryRegistry::new());
    let ca = TestCa::new("ca");
    let sub = with_tls(&registry, server_tls(&ca, "sub"));
    let got = Collector::new();
    let s = sub
        .subscribe("orders", got.handler(), SubscribeOptions::default())
        .await
        .unwrap();
    // registered as go-micro's secure broker does
    let record = &registry.get_service("micro.http.broker").await.unwrap()[0];
    assert_eq!(
        record.nodes[0].metadata.get("secure").map(String::as_str),
        Some("true")
    );

    // a publisher trusting the CA delivers; a plain one (system roots) cannot
    let publisher = with_tls(&registry, TlsOptions::new().ca_pem(ca.cert_pem()));
    wait_subscribers(&publisher, "orders", 1).await;
    publisher
        .publish("orders", Envelope::new("one"))
        .await
        .unwrap();
    wait_for("the event", || got.count() == 1).await;
    assert_eq!(got.bodies(), ["one"]);
    assert!(
        got.events()[0].peer_identity().is_none(),
        "no client certificate"
    );
    assert_eq!(publisher.stats().delivered, 1);

    // plain HTTP to the https port: Go's 400, and the subscriber keeps serving
    let resp = raw(
        &sub.address(),
        b"POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(status_of(&resp), "HTTP/1.0 400 Bad Request", "{resp}");
    assert!(
        resp.contains("Client sent an HTTP request to an HTTPS server"),
        "{resp}"
    );
    publisher
        .publish("orders", Envelope::new("two"))
        .await
        .unwrap();
    wait_for("the second event", || got.count() == 2).await;

    s.unsubscribe().await.unwrap();
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn an_untrusted_subscriber_gets_nothing() {
    let registry = Arc::new(MemoryRegistry::new());
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let sub = with_tls(&registry, server_tls(&other, "sub"));
    let got = Collector::new();
    let _s = sub
        .subscribe("orders", got.handler(), SubscribeOptions::default())
        .await
        .unwrap();
    let publisher = with_tls(&registry, TlsOptions::new().ca_pem(ca.cert_pem()));
    wait_subscribers(&publisher, "orders", 1).await;
    publisher
        .publish("orders", Envelope::new("secret"))
        .await
        .unwrap();
    wait_for("the failed delivery", || publisher.stats().dropped == 1).await;
    assert!(publisher.stats().failed_attempts >= 1);
    assert_eq!(publisher.stats().delivered, 0);
    assert_eq!(got.count(), 0);
    assert_eq!(sub.stats().received, 0);
}

#[tokio::test]
async fn mutual_tls_puts_the_publisher_identity_in_the_event() {
    let registry = Arc::new(MemoryRegistry::new());
    let ca = TestCa::new("ca");
    let other = TestCa::new("other");
    let sub = with_tls(
        &registry,
        server_tls(&ca, "sub").client_ca_pem(ca.cert_pem()),
    );
    let got = Collector::new();
    let _s = sub
        .subscribe("orders", got.handler(), SubscribeOptions::queue("q"))
        .await
        .unwrap();

    // a publisher with the CA's certificate: delivered, identity seen
    let billing = with_tls(&registry, server_tls(&ca, "billing"));
    wait_subscribers(&billing, "orders", 1).await;
    billing
        .publish("orders", Envelope::new("paid"))
        .await
        .unwrap();
    wait_for("the event", || got.count() == 1).await;
    let id = got.events()[0]
        .peer_identity()
        .cloned()
        .expect("publisher identity");
    assert_eq!(id.common_name.as_deref(), Some("billing"));

    // without a certificate, or with one from another CA: refused at the handshake
    for stranger in [TlsOptions::new().ca_pem(ca.cert_pem()), {
        let id = other.issue("stranger", &["127.0.0.1"]);
        TlsOptions::new()
            .ca_pem(ca.cert_pem())
            .cert_pem(&id.cert_pem, &id.key_pem)
    }] {
        let publisher = with_tls(&registry, stranger);
        wait_subscribers(&publisher, "orders", 1).await;
        publisher
            .publish("orders", Envelope::new("forged"))
            .await
            .unwrap();
        wait_for("the refused delivery", || publisher.stats().dropped == 1).await;
        assert_eq!(publisher.stats().delivered, 0);
        publisher.disconnect().await.unwrap();
    }
    // the subscriber still serves the trusted publisher
    billing
        .publish("orders", Envelope::new("again"))
        .await
        .unwrap();
    wait_for("the next event", || got.count() == 2).await;
    assert_eq!(got.bodies(), ["paid", "again"]);
}
