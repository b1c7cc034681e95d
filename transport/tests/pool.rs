//! go-micro's `TestClientPool` (sizes 0 and 2), and the rules that make reuse safe:
//! LIFO order, the TTL, never handing out a closed connection, and closing what is
//! dropped without release.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{echo, echo_server, serve, within};
use micro_transport::{
    DialOptions, Header, HttpTransport, HttpTransportOptions, MemoryTransport, Message, Pool,
    PoolOptions, Pooled, Transport,
};

async fn call(conn: &Pooled, body: &str) {
    within(conn.send(&Message::new(Header::new(), body.to_owned())))
        .await
        .expect("send");
    assert_eq!(within(conn.recv()).await.expect("recv").body, body);
}

async fn pool_of_size(size: usize) {
    let transport = HttpTransport::new();
    let listener = transport.listen("127.0.0.1:0").await.expect("listen");
    let server = serve(listener, echo);
    let pool = Pool::new(Arc::new(transport), PoolOptions::new().size(size));
    let opts = DialOptions::default();

    for i in 0..10 {
        let conn = within(pool.get(&server.addr, &opts))
            .await
            .expect("pool get");
        assert_eq!(conn.is_reused(), size > 0 && i > 0, "call {i}");
        call(&conn, &format!("call {i}")).await;
        conn.release();
        assert!(pool.idle_count(&server.addr) <= size);
    }
    // several at once: the pool keeps at most `size` of them afterwards
    let mut held = Vec::new();
    for i in 0..4 {
        let conn = within(pool.get(&server.addr, &opts))
            .await
            .expect("pool get");
        call(&conn, &format!("held {i}")).await;
        held.push(conn);
    }
    assert_eq!(pool.idle_count(&server.addr), 0);
    for conn in held {
        conn.release();
    }
    assert_eq!(pool.idle_count(&server.addr), size.min(4));
    assert_eq!(pool.idle_total(), size.min(4));
    pool.clear();
    assert_eq!(pool.idle_total(), 0);
}

#[tokio::test]
async fn pool_size_0_never_keeps() {
    pool_of_size(0).await;
}

#[tokio::test]
async fn pool_size_2_keeps_two() {
    pool_of_size(2).await;
}

#[tokio::test]
async fn idle_connections_are_taken_last_in_first_out() {
    let transport = MemoryTransport::new();
    let _server = serve(transport.listen("svc").await.unwrap(), echo);
    let pool = Pool::new(Arc::new(transport), PoolOptions::new());
    let opts = DialOptions::default();
    let a = within(pool.get("svc", &opts)).await.unwrap();
    let b = within(pool.get("svc", &opts)).await.unwrap();
    let (a_addr, b_addr) = (a.local_addr().to_owned(), b.local_addr().to_owned());
    assert_ne!(a_addr, b_addr);
    a.release();
    b.release();
    let first = within(pool.get("svc", &opts)).await.unwrap();
    assert_eq!(first.local_addr(), b_addr);
    let second = within(pool.get("svc", &opts)).await.unwrap();
    assert_eq!(second.local_addr(), a_addr);
    assert!(first.is_reused() && second.is_reused());
    assert_eq!(first.addr(), "svc");
}

#[tokio::test]
async fn the_ttl_retires_connections() {
    let transport = MemoryTransport::new();
    let _server = serve(transport.listen("svc").await.unwrap(), echo);
    let pool = Pool::new(
        Arc::new(transport),
        PoolOptions::new().ttl(Duration::from_millis(100)),
    );
    let opts = DialOptions::default();
    let conn = within(pool.get("svc", &opts)).await.unwrap();
    call(&conn, "a").await;
    conn.release();
    assert_eq!(pool.idle_count("svc"), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let conn = within(pool.get("svc", &opts)).await.unwrap();
    assert!(!conn.is_reused(), "a connection past its TTL was reused");
    assert_eq!(
        pool.idle_count("svc"),
        0,
        "the stale connection was not dropped"
    );
    // released past its TTL: closed instead of kept
    let old = conn;
    tokio::time::sleep(Duration::from_millis(150)).await;
    old.release();
    assert_eq!(pool.idle_count("svc"), 0);
}

#[tokio::test]
async fn closed_connections_are_not_reused() {
    let transport = MemoryTransport::new();
    let listener = transport.listen("svc").await.unwrap();
    let pool = Pool::new(Arc::new(transport), PoolOptions::new());
    let opts = DialOptions::default();

    // the server closes a connection that sits idle in the pool
    let conn = within(pool.get("svc", &opts)).await.unwrap();
    let server_side = within(listener.accept()).await.unwrap();
    conn.release();
    assert_eq!(pool.idle_count("svc"), 1);
    within(server_side.close()).await;
    let conn = within(pool.get("svc", &opts)).await.unwrap();
    assert!(!conn.is_reused());
    assert!(conn.is_open());
    let _server_side = within(listener.accept()).await.unwrap();

    // a connection that closed during the call is not put back
    within(_server_side.close()).await;
    conn.release();
    assert_eq!(pool.idle_count("svc"), 0);
}

#[tokio::test]
async fn http_connection_close_is_not_pooled_and_idle_closes_are_noticed() {
    let opts = HttpTransportOptions::new().limits(micro_transport::Limits {
        idle_timeout: Duration::from_millis(100).into(),
        ..Default::default()
    });
    let listener = HttpTransport::with_options(opts)
        .listen("127.0.0.1:0")
        .await
        .unwrap();
    let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let server = serve(listener, move |socket| {
        let tx = tx.clone();
        async move {
            echo(socket).await;
            let _ = tx.send(());
        }
    });
    let pool = Pool::new(Arc::new(HttpTransport::new()), PoolOptions::new());
    let dial = DialOptions::default();

    // the request asks the server to close after answering
    let conn = within(pool.get(&server.addr, &dial)).await.unwrap();
    let mut header = Header::new();
    header.insert("Connection", "close");
    within(conn.send(&Message::new(header, "bye")))
        .await
        .unwrap();
    assert_eq!(within(conn.recv()).await.unwrap().body, "bye");
    conn.release();
    assert_eq!(pool.idle_count(&server.addr), 0);
    within(ended.recv()).await.unwrap();

    // the server closes an idle pooled connection: the next get dials afresh
    let conn = within(pool.get(&server.addr, &dial)).await.unwrap();
    call(&conn, "x").await;
    conn.release();
    assert_eq!(pool.idle_count(&server.addr), 1);
    within(ended.recv()).await.unwrap(); // the server's idle timeout fired
    // the server sent FIN before it reported; give the client's reactor a moment
    tokio::time::sleep(Duration::from_millis(50)).await;
    let conn = within(pool.get(&server.addr, &dial)).await.unwrap();
    assert!(
        !conn.is_reused(),
        "a connection the server closed was reused"
    );
    call(&conn, "fresh").await;
}

#[tokio::test]
async fn dropped_or_discarded_connections_are_closed() {
    let transport = MemoryTransport::new();
    let listener = transport.listen("svc").await.unwrap();
    let pool = Pool::new(Arc::new(transport), PoolOptions::new());
    let opts = DialOptions::default();

    // a cancelled call: the Pooled is dropped mid-way
    let conn = within(pool.get("svc", &opts)).await.unwrap();
    let server_side = within(listener.accept()).await.unwrap();
    within(conn.send(&Message::new(Header::new(), "half")))
        .await
        .unwrap();
    drop(conn);
    assert_eq!(pool.idle_count("svc"), 0);
    assert_eq!(within(server_side.recv()).await.unwrap().body, "half");
    assert!(matches!(
        within(server_side.recv()).await,
        Err(micro_transport::Error::Closed)
    ));

    let conn = within(pool.get("svc", &opts)).await.unwrap();
    let server_side = within(listener.accept()).await.unwrap();
    within(conn.discard()).await;
    assert!(matches!(
        within(server_side.recv()).await,
        Err(micro_transport::Error::Closed)
    ));
    assert_eq!(pool.idle_count("svc"), 0);
}

#[tokio::test]
async fn idle_connections_to_addresses_nobody_calls_are_closed_after_the_idle_timeout() {
    // Two nodes; calls go on to the second only (the first left the registry).
    // The first one's pooled connection is closed by the pool's sweep, with no
    // `get` or `release` for its address, and the server sees it close.
    let transport = HttpTransport::new();
    let gone = transport.listen("127.0.0.1:0").await.unwrap();
    let used = echo_server(&transport).await;
    let pool = Pool::new(
        Arc::new(transport),
        PoolOptions::new().idle_timeout(Duration::from_millis(300)),
    );
    let opts = DialOptions::default();
    let conn = within(pool.get(&gone.addr(), &opts)).await.unwrap();
    let server_side = within(gone.accept()).await.unwrap();
    conn.release();
    assert_eq!(pool.idle_count(&gone.addr()), 1);
    let started = std::time::Instant::now();
    // The server sees the pooled connection close (recv fails) well within the
    // test's limit: idle timeout plus one sweep interval.
    let closed = within(server_side.recv()).await;
    assert!(closed.is_err(), "the server read a request: {closed:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(pool.idle_count(&gone.addr()), 0);

    // A connection in steady use is kept: each call finds it idle for less than
    // the timeout and reuses it.
    let mut first = None;
    for i in 0..8 {
        let conn = within(pool.get(&used.addr, &opts)).await.unwrap();
        call(&conn, &format!("call {i}")).await;
        let local = conn.local_addr().to_owned();
        assert_eq!(
            first.get_or_insert_with(|| local.clone()),
            &local,
            "call {i}"
        );
        conn.release();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Left alone, it goes too, and the sweep ends with the last idle connection.
    within(async {
        while pool.idle_total() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn clearing_or_dropping_the_pool_stops_its_sweep() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let transport = MemoryTransport::new();
    // dials complete without accepting: no server task
    let _listener = transport.listen("svc").await.unwrap();
    let base = metrics.num_alive_tasks();
    let pool = Pool::new(Arc::new(transport), PoolOptions::new());
    let opts = DialOptions::default();
    within(pool.get("svc", &opts)).await.unwrap().release();
    assert_eq!(metrics.num_alive_tasks(), base + 1, "the sweep runs");
    pool.clear();
    within(async {
        while metrics.num_alive_tasks() > base {
            tokio::task::yield_now().await;
        }
    })
    .await;
    within(pool.get("svc", &opts)).await.unwrap().release();
    assert!(metrics.num_alive_tasks() > base);
    drop(pool);
    within(async {
        while metrics.num_alive_tasks() > base {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
