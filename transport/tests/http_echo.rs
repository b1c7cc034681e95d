//! go-micro's `TestHTTPTransportCommunication`, and more: echo round trips over one
//! connection and over many at once.

mod common;

use common::{echo_server, within};
use micro_transport::{DialOptions, Header, HttpTransport, Message, Transport};

fn message(i: usize) -> Message {
    let mut header = Header::new();
    header.insert("Content-Type", "application/json");
    header.insert("Micro-Id", i.to_string());
    Message::new(header, format!(r#"{{"message": "Hello World {i}"}}"#))
}

#[tokio::test]
async fn echo_round_trips_on_one_connection() {
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let client = within(transport.dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    assert_eq!(client.remote_addr(), server.addr);
    assert!(client.local_addr().starts_with("127.0.0.1:"));

    for i in 0..200 {
        let msg = message(i);
        within(client.send(&msg)).await.unwrap();
        let reply = within(client.recv()).await.unwrap();
        assert_eq!(reply.body, msg.body);
        assert_eq!(reply.header.get("Micro-Id"), Some(i.to_string().as_str()));
        assert_eq!(reply.header.get("Content-Type"), Some("application/json"));
        assert!(client.is_open());
    }
}

#[tokio::test]
async fn empty_and_large_bodies() {
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let client = within(transport.dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    // empty, small, around the copy thresholds, and a few MiB
    for size in [
        0usize,
        1,
        16 * 1024,
        64 * 1024,
        64 * 1024 + 1,
        3 * 1024 * 1024,
    ] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let msg = Message::new(Header::new(), body);
        within(client.send(&msg)).await.unwrap();
        let reply = within(client.recv()).await.unwrap();
        assert_eq!(reply.body.len(), size);
        assert_eq!(reply.body, msg.body, "size {size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections() {
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..32 {
        let transport = transport.clone();
        let addr = server.addr.clone();
        clients.spawn(async move {
            let client = transport
                .dial(&addr, &DialOptions::default())
                .await
                .unwrap();
            for i in 0..100 {
                let msg = message(c * 1000 + i);
                client.send(&msg).await.unwrap();
                let reply = client.recv().await.unwrap();
                assert_eq!(reply.body, msg.body);
            }
            client.close().await;
        });
    }
    within(async {
        while let Some(done) = clients.join_next().await {
            done.expect("client task");
        }
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let client = within(transport.dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    for i in 0..20 {
        within(client.send(&message(i))).await.unwrap();
    }
    for i in 0..20 {
        let reply = within(client.recv()).await.unwrap();
        assert_eq!(reply.body, message(i).body);
    }
}
