//! go-micro's `TestHTTPTransportMultipleSendWhenRecv`: one task receives while others
//! send on the same socket; and streams, where one request gets several responses.

mod common;

use std::sync::Arc;

use common::{echo_server, serve, within};
use micro_transport::{DialOptions, Header, HttpTransport, Message, Socket, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sends_while_receiving() {
    const SENDERS: usize = 8;
    const EACH: usize = 50;
    let transport = HttpTransport::new();
    let server = echo_server(&transport).await;
    let client: Arc<dyn Socket> = Arc::from(
        within(transport.dial(&server.addr, &DialOptions::default()))
            .await
            .unwrap(),
    );

    let receiver = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut bodies = Vec::with_capacity(SENDERS * EACH);
            for _ in 0..SENDERS * EACH {
                bodies.push(client.recv().await.expect("recv").body);
            }
            bodies
        })
    };
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let client = client.clone();
        senders.spawn(async move {
            for i in 0..EACH {
                let mut header = Header::new();
                header.insert("Micro-Stream", s.to_string());
                client
                    .send(&Message::new(header, format!("{s}:{i}")))
                    .await
                    .expect("send");
            }
        });
    }
    within(async {
        while let Some(done) = senders.join_next().await {
            done.expect("sender");
        }
    })
    .await;
    let mut bodies = within(receiver).await.unwrap();
    // every message came back whole, and each sender's messages in its order
    bodies.sort_by_key(|b| {
        let text = std::str::from_utf8(b).unwrap().to_owned();
        let (s, i) = text.split_once(':').unwrap();
        (s.parse::<usize>().unwrap(), i.parse::<usize>().unwrap())
    });
    let expected: Vec<String> = (0..SENDERS)
        .flat_map(|s| (0..EACH).map(move |i| format!("{s}:{i}")))
        .collect();
    let got: Vec<String> = bodies
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_stream_gets_several_responses_per_request() {
    let listener = HttpTransport::new().listen("127.0.0.1:0").await.unwrap();
    // a server stream: each request is answered with three messages
    let server = serve(listener, |socket| async move {
        while let Ok(req) = socket.recv().await {
            for part in 0..3 {
                let mut header = Header::new();
                header.insert("Micro-Stream", req.header.get("Micro-Stream").unwrap_or(""));
                header.insert("X-Part", part.to_string());
                if socket
                    .send(&Message::new(header, format!("part {part}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let client = within(HttpTransport::new().dial(&server.addr, &DialOptions::default()))
        .await
        .unwrap();
    for round in 0..3 {
        let mut header = Header::new();
        header.insert("Micro-Stream", round.to_string());
        within(client.send(&Message::new(header, "go")))
            .await
            .unwrap();
        for part in 0..3 {
            let msg = within(client.recv()).await.unwrap();
            assert_eq!(msg.body, format!("part {part}"));
            assert_eq!(msg.header.get("X-Part"), Some(part.to_string().as_str()));
            assert_eq!(
                msg.header.get("Micro-Stream"),
                Some(round.to_string().as_str())
            );
        }
    }
}
