//! go-micro's `TestHTTPTransportCloseWhenRecv`, and closing in general: a pending
//! `recv` returns promptly when its socket is closed, and later calls fail with
//! `Closed`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{echo_server, expect_err, serve, within};
use micro_transport::{DialOptions, Error, Header, HttpTransport, Message, Socket, Transport};

#[tokio::test]
async fn closing_the_client_while_recv_is_pending() {
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let client: Arc<dyn Socket> = Arc::from(
        within(transport.dial(&server.addr, &DialOptions::default()))
            .await
            .unwrap(),
    );

    // one exchange first, so the connection is really in use
    within(client.send(&Message::new(Header::new(), "a")))
        .await
        .unwrap();
    assert_eq!(within(client.recv()).await.unwrap().body, "a");

    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.recv().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!pending.is_finished());
    within(client.close()).await;
    let res = within(pending).await.unwrap();
    assert!(matches!(res, Err(Error::Closed)), "{res:?}");
    assert!(!client.is_open());
    assert!(matches!(
        within(client.send(&Message::default())).await,
        Err(Error::Closed)
    ));
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));
    // closing twice is harmless
    within(client.close()).await;
}

#[tokio::test]
async fn closing_a_server_socket_while_recv_is_pending() {
    let transport = HttpTransport::new();
    let listener = transport.listen("127.0.0.1:0").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(listener, move |socket| {
        let tx = tx.clone();
        async move {
            let pending = {
                let socket = socket.clone();
                tokio::spawn(async move { socket.recv().await })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            socket.close().await;
            let _ = tx.send(pending.await.map(|r| r.map(|_| ())));
        }
    });
    let client = within(transport.dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    let res = within(rx.recv()).await.unwrap().unwrap();
    assert!(matches!(res, Err(Error::Closed)), "{res:?}");
    // the client sees the server's close
    assert!(matches!(within(client.recv()).await, Err(Error::Closed)));
}

#[tokio::test]
async fn dropping_the_listener_keeps_accepted_sockets() {
    let transport = HttpTransport::new();
    let listener = transport.listen("127.0.0.1:0").await.unwrap();
    let addr = listener.addr();
    let client = within(transport.dial(&addr, &DialOptions::default()))
        .await
        .unwrap();
    let socket = within(listener.accept()).await.unwrap();
    assert_eq!(socket.remote_addr(), client.local_addr());
    assert_eq!(socket.local_addr(), client.remote_addr());
    drop(listener);

    within(client.send(&Message::new(Header::new(), "still here")))
        .await
        .unwrap();
    let msg = within(socket.recv()).await.unwrap();
    within(socket.send(&msg)).await.unwrap();
    assert_eq!(within(client.recv()).await.unwrap().body, "still here");
    // but nobody accepts new connections
    let err = expect_err(within(transport.dial(&addr, &DialOptions::default())).await);
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}
