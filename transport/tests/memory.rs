//! go-micro's `TestMemoryTransport` and `TestListener`, plus the closing and
//! back-pressure behaviour of in-memory connections.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{echo, expect_err, serve, within};
use micro_transport::{DialOptions, Error, Header, MemoryTransport, Message, Socket, Transport};

fn msg(body: &str) -> Message {
    let mut header = Header::new();
    header.insert("Content-Type", "application/json");
    Message::new(header, body.to_owned())
}

#[tokio::test]
async fn echo_round_trips() {
    let transport = MemoryTransport::new();
    assert_eq!(transport.name(), "memory");
    let listener = within(transport.listen("greeter")).await.unwrap();
    assert_eq!(listener.addr(), "greeter");
    let _server = serve(listener, echo);
    let client = within(transport.dial("greeter", &DialOptions::default()))
        .await
        .unwrap();
    assert_eq!(client.remote_addr(), "greeter");
    for i in 0..100 {
        let m = msg(&format!("{{\"n\":{i}}}"));
        within(client.send(&m)).await.unwrap();
        assert_eq!(within(client.recv()).await.unwrap(), m);
    }
}

#[tokio::test]
async fn listener_addresses() {
    let transport = MemoryTransport::new();
    let a = within(transport.listen(":0")).await.unwrap();
    let b = within(transport.listen("127.0.0.1:0")).await.unwrap();
    let c = within(transport.listen("")).await.unwrap();
    let addrs = [a.addr(), b.addr(), c.addr()];
    assert!(addrs.iter().all(|a| a.starts_with("memory:")), "{addrs:?}");
    assert!(addrs[0] != addrs[1] && addrs[1] != addrs[2] && addrs[0] != addrs[2]);

    // a taken name fails; the clone shares the address space
    let named = within(transport.listen("svc")).await.unwrap();
    let err = expect_err(within(transport.clone().listen("svc")).await);
    assert!(matches!(err, Error::Listen { .. }), "{err:?}");
    // a separate transport is a separate space
    let other = MemoryTransport::new();
    let err = expect_err(within(other.dial("svc", &DialOptions::default())).await);
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");

    // accepted sockets know both ends
    let client = within(transport.clone().dial("svc", &DialOptions::default()))
        .await
        .unwrap();
    let server = within(named.accept()).await.unwrap();
    assert_eq!(server.local_addr(), "svc");
    assert_eq!(server.remote_addr(), client.local_addr());

    // dropping the listener frees the name: dials fail, a new listen works
    drop(named);
    let err = expect_err(within(transport.dial("svc", &DialOptions::default())).await);
    assert!(err.is_connection_error());
    let again = within(transport.listen("svc")).await.unwrap();
    let _server = serve(again, echo);
    let client2 = within(transport.dial("svc", &DialOptions::default()))
        .await
        .unwrap();
    within(client2.send(&msg("x"))).await.unwrap();
    assert_eq!(within(client2.recv()).await.unwrap().body, "x");
    // the old connection is unaffected by its listener going away
    within(client.send(&msg("old"))).await.unwrap();
    assert_eq!(within(server.recv()).await.unwrap().body, "old");
}

#[tokio::test]
async fn close_reaches_the_other_side() {
    let transport = MemoryTransport::new();
    let listener = within(transport.listen("svc")).await.unwrap();
    let client = within(transport.dial("svc", &DialOptions::default()))
        .await
        .unwrap();
    let server = within(listener.accept()).await.unwrap();
    assert!(client.is_open() && server.is_open());

    // sent before the close: still delivered, then Closed
    within(client.send(&msg("last words"))).await.unwrap();
    within(client.close()).await;
    assert!(!client.is_open() && !server.is_open());
    assert_eq!(within(server.recv()).await.unwrap().body, "last words");
    assert!(matches!(within(server.recv()).await, Err(Error::Closed)));
    assert!(matches!(
        within(server.send(&msg("x"))).await,
        Err(Error::Closed)
    ));
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));

    // a pending recv returns when the peer closes, and when its own side closes
    let client: Arc<dyn Socket> = Arc::from(
        within(transport.dial("svc", &DialOptions::default()))
            .await
            .unwrap(),
    );
    let server: Arc<dyn Socket> = Arc::from(within(listener.accept()).await.unwrap());
    let pending_server = {
        let server = server.clone();
        tokio::spawn(async move { server.recv().await })
    };
    let pending_client = {
        let client = client.clone();
        tokio::spawn(async move { client.recv().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(client.close()).await;
    assert!(matches!(
        within(pending_server).await.unwrap(),
        Err(Error::Closed)
    ));
    assert!(matches!(
        within(pending_client).await.unwrap(),
        Err(Error::Closed)
    ));

    // dropping a socket closes it too
    let client = within(transport.dial("svc", &DialOptions::default()))
        .await
        .unwrap();
    let server = within(listener.accept()).await.unwrap();
    drop(client);
    assert!(matches!(within(server.recv()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_slow_reader_holds_back_the_sender() {
    let transport = MemoryTransport::new();
    let listener = within(transport.listen("svc")).await.unwrap();
    let client: Arc<dyn Socket> = Arc::from(
        within(transport.dial("svc", &DialOptions::default()))
            .await
            .unwrap(),
    );
    let server = within(listener.accept()).await.unwrap();
    for i in 0..64 {
        within(client.send(&msg(&i.to_string()))).await.unwrap();
    }
    let blocked = {
        let client = client.clone();
        tokio::spawn(async move { client.send(&msg("64")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !blocked.is_finished(),
        "the 65th message should wait for room"
    );
    assert_eq!(within(server.recv()).await.unwrap().body, "0");
    within(blocked).await.unwrap().unwrap();
    for i in 1..=64 {
        assert_eq!(within(server.recv()).await.unwrap().body, i.to_string());
    }
}
