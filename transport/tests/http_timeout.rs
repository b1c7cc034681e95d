//! go-micro's `TestHTTPTransportTimeout`: with the transport's per-message `timeout`
//! option, a receive that gets nothing fails with a timeout, on both sides.

mod common;

use std::time::{Duration, Instant};

use common::{expect_err, serve, within};
use micro_transport::{
    DialOptions, Error, Header, HttpTransport, HttpTransportOptions, Message, Transport,
};

fn with_timeout(ms: u64) -> HttpTransport {
    HttpTransport::with_options(HttpTransportOptions::new().timeout(Duration::from_millis(ms)))
}

#[tokio::test]
async fn server_recv_deadline_fires() {
    let transport = with_timeout(100);
    let listener = transport.listen("127.0.0.1:0").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(listener, move |socket| {
        let tx = tx.clone();
        async move {
            // the first message arrives; the second never does
            let first = socket.recv().await;
            let start = Instant::now();
            let second = socket.recv().await;
            let _ = tx.send((first.is_ok(), second, start.elapsed()));
        }
    });
    let client = within(HttpTransport::new().dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    within(client.send(&Message::new(Header::new(), "{}")))
        .await
        .unwrap();
    let (first_ok, second, waited) = within(rx.recv()).await.unwrap();
    assert!(first_ok);
    assert!(matches!(second, Err(Error::Timeout)), "{second:?}");
    assert!(waited >= Duration::from_millis(100));
    // the server dropped the connection after the error
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn client_recv_deadline_fires() {
    // a server that reads requests and never answers
    let listener = HttpTransport::new().listen("127.0.0.1:0").await.unwrap();
    let server = serve(listener, |socket| async move {
        while socket.recv().await.is_ok() {}
    });
    let client = within(with_timeout(100).dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    within(client.send(&Message::new(Header::new(), "{}")))
        .await
        .unwrap();
    let start = Instant::now();
    let err = within(client.recv()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(!err.is_connection_error());
    assert!(start.elapsed() >= Duration::from_millis(100));
    // a timed-out exchange leaves the connection out of step: it is not reused
    assert!(!client.is_open());
}

#[tokio::test]
async fn deadlines_apply_per_message() {
    // every exchange is quicker than the deadline, even though all of them together
    // take much longer
    let transport = with_timeout(300);
    let listener = transport.listen("127.0.0.1:0").await.unwrap();
    let server = serve(listener, common::echo);
    let client = within(transport.dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    for _ in 0..5 {
        within(client.send(&Message::new(Header::new(), "x")))
            .await
            .unwrap();
        assert_eq!(within(client.recv()).await.unwrap().body, "x");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connect_failures_name_the_address() {
    // a port nobody listens on: bind one, note it, free it
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = expect_err(within(HttpTransport::new().dial(&addr, &DialOptions::default())).await);
    assert!(
        matches!(&err, Error::Connect { addr: a, .. } if *a == addr),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("connect to {addr} failed"));
    assert!(err.is_connection_error());

    for bad in ["no-port", "[::1", "127.0.0.1:99999"] {
        let err = expect_err(within(HttpTransport::new().dial(bad, &DialOptions::default())).await);
        assert!(
            matches!(err, Error::InvalidAddress { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn huge_timeouts_mean_no_deadline() {
    let opts = HttpTransportOptions::new()
        .limits(micro_transport::Limits {
            header_read_timeout: Duration::MAX.into(),
            body_read_timeout: Duration::MAX.into(),
            idle_timeout: Duration::MAX.into(),
            ..Default::default()
        })
        .timeout(Duration::MAX);
    let transport = HttpTransport::with_options(opts);
    let listener = transport.listen("127.0.0.1:0").await.expect("listen");
    let server = serve(listener, common::echo);
    let dial = DialOptions {
        connect_timeout: Duration::MAX,
        ..DialOptions::default()
    };
    let client = within(transport.dial(&server.addr, &dial)).await.unwrap();
    // the body arrives in two pieces, so the header and body timers are armed too
    within(client.send(&Message::new(Header::new(), vec![7u8; 200_000])))
        .await
        .unwrap();
    assert_eq!(within(client.recv()).await.unwrap().body.len(), 200_000);
}
