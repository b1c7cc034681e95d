//! Listening: go-micro's `TestHTTPTransportPortRange` and
//! `TestHttpTransportListenerNetListener`, address forms, and bind failures.

mod common;

use common::{echo, expect_err, serve, within};
use micro_transport::{DialOptions, Error, Header, HttpTransport, Message, Transport};

async fn round_trip(addr: &str) {
    let client = within(HttpTransport::new().dial(addr, &DialOptions::default()))
        .await
        .expect("dial");
    within(client.send(&Message::new(Header::new(), "hi")))
        .await
        .expect("send");
    assert_eq!(within(client.recv()).await.expect("recv").body, "hi");
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .expect("host:port")
        .1
        .parse()
        .expect("host:port")
}

/// A port with `n` free ports after it (checked at the time of the call), taken
/// below Linux's ephemeral range (32768 and up), where the outgoing connections of
/// a busy test run would otherwise occupy most runs of consecutive ports.
fn free_run(n: u16) -> u16 {
    for attempt in 0..2000u32 {
        let base = 20_000 + ((attempt * 7919 + std::process::id()) % 10_000) as u16;
        if (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {n} free ports found between 20000 and 30000");
}

#[tokio::test]
async fn port_ranges_bind_the_first_free_port() {
    let transport = HttpTransport::new();
    let base = free_run(5);
    let range = format!("127.0.0.1:{base}-{}", base + 4);
    let first = within(transport.listen(&range)).await.unwrap();
    let second = within(transport.listen(&range)).await.unwrap();
    let (p1, p2) = (port_of(&first.addr()), port_of(&second.addr()));
    assert!((base..=base + 4).contains(&p1), "{p1}");
    assert!(p2 > p1 && p2 <= base + 4, "{p1} then {p2}");
    let _server = serve(second, echo);
    round_trip(&format!("127.0.0.1:{p2}")).await;

    // a range with no free port left fails with the last bind error
    let taken = format!("127.0.0.1:{p1}-{p1}");
    let err = expect_err(within(transport.listen(&taken)).await);
    assert!(
        matches!(&err, Error::Listen { addr, .. } if *addr == taken),
        "{err:?}"
    );

    for bad in [
        "127.0.0.1:9-8",
        "127.0.0.1:a-b",
        "127.0.0.1",
        "127.0.0.1:70000",
    ] {
        let err = expect_err(within(transport.listen(bad)).await);
        assert!(
            matches!(err, Error::InvalidAddress { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn port_zero_and_address_forms() {
    let transport = HttpTransport::new();
    let listener = within(transport.listen("127.0.0.1:0")).await.unwrap();
    let addr = listener.addr();
    assert!(
        addr.starts_with("127.0.0.1:") && port_of(&addr) != 0,
        "{addr}"
    );
    assert_eq!(transport.name(), "http");

    // an empty host listens on every IPv4 interface
    let any = within(transport.listen(":0")).await.unwrap();
    assert!(any.addr().starts_with("0.0.0.0:"), "{}", any.addr());
    let port = port_of(&any.addr());
    let _server = serve(any, echo);
    round_trip(&format!("127.0.0.1:{port}")).await;
    round_trip(&format!(":{port}")).await; // dialling an empty host means this machine

    // IPv6 loopback, where the machine has it
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = within(transport.listen("[::1]:0")).await.unwrap();
        assert!(v6.addr().starts_with("[::1]:"), "{}", v6.addr());
        let addr = v6.addr();
        let _server = serve(v6, echo);
        round_trip(&addr).await;
    }
}

#[tokio::test]
async fn listening_on_a_supplied_std_listener() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let expected = std_listener.local_addr().unwrap().to_string();
    let listener = HttpTransport::new()
        .listener_from_std(std_listener)
        .unwrap();
    assert_eq!(listener.addr(), expected);
    let _server = serve(listener, echo);
    for _ in 0..3 {
        round_trip(&expected).await;
    }
}

#[test]
fn a_std_listener_outside_a_runtime_is_an_error() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = expect_err(HttpTransport::new().listener_from_std(std_listener));
    assert!(matches!(err, Error::Listen { .. }), "{err:?}");
}

#[tokio::test]
async fn a_port_in_use_fails_to_listen() {
    let transport = HttpTransport::new();
    let first = within(transport.listen("127.0.0.1:0")).await.unwrap();
    let err = expect_err(within(transport.listen(&first.addr())).await);
    assert!(
        matches!(&err, Error::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("listen on {} failed", first.addr())
    );
}
