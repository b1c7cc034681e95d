//! An in-process transport for tests and embedded use.
//!
//! [`MemoryTransport`] handles share one address space: a listener registered through
//! one clone is reachable by dialling through any other. A connection is a pair of
//! bounded channels (64 messages each way), so a slow reader holds back its sender as
//! a full TCP window would.
//!
//! ```
//! use micro_transport::{DialOptions, MemoryTransport, Message, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro_transport::Result<()> {
//! let transport = MemoryTransport::new();
//! let listener = transport.listen("greeter").await?;
//! let client = transport.dial("greeter", &DialOptions::default()).await?;
//! let server = listener.accept().await?;
//!
//! client.send(&Message::new(Default::default(), "hello")).await?;
//! assert_eq!(server.recv().await?.body, "hello");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::{DialOptions, Error, Listener, Message, Result, Socket, Transport};

/// Messages buffered per direction of a connection.
const CHANNEL_CAPACITY: usize = 64;
/// Connections waiting to be accepted per listener.
const BACKLOG: usize = 128;

/// The in-process transport (`name()` = `"memory"`); see the [module docs](self).
///
/// Cheap to clone; clones share one address space.
#[derive(Clone, Debug, Default)]
pub struct MemoryTransport {
    space: Arc<Space>,
}

#[derive(Debug, Default)]
struct Space {
    listeners: Mutex<HashMap<String, Entry>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    backlog: mpsc::Sender<MemorySocket>,
}

impl MemoryTransport {
    /// A new, empty address space.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_id(&self) -> u64 {
        self.space.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    /// Connects to a listening address; an unknown address fails with
    /// [`Error::Connect`]. Waits (up to `opts.connect_timeout`) while the listener's
    /// backlog is full.
    async fn dial(&self, addr: &str, opts: &DialOptions) -> Result<Box<dyn Socket>> {
        let refused = || Error::Connect {
            addr: addr.to_owned(),
            source: io::ErrorKind::ConnectionRefused.into(),
        };
        let backlog = self
            .space
            .listeners
            .lock()
            .get(addr)
            .map(|e| e.backlog.clone());
        let backlog = backlog.ok_or_else(refused)?;
        let local = format!("memory:client-{}", self.next_id());
        let (client, server) = pair(local, addr.to_owned());
        match tokio::time::timeout(opts.connect_timeout, backlog.send(server)).await {
            Ok(Ok(())) => Ok(Box::new(client)),
            Ok(Err(_)) => Err(refused()),
            Err(_) => Err(Error::Connect {
                addr: addr.to_owned(),
                source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            }),
        }
    }

    /// Listens on `addr`, any non-empty name. `""`, `":0"` or any `host:0` gets a
    /// fresh address `memory:<n>`. A name already listened on fails with
    /// [`Error::Listen`]; dropping the listener frees it.
    async fn listen(&self, addr: &str) -> Result<Box<dyn Listener>> {
        let id = self.next_id();
        let addr = if addr.is_empty() || addr.ends_with(":0") {
            format!("memory:{id}")
        } else {
            addr.to_owned()
        };
        let (tx, rx) = mpsc::channel(BACKLOG);
        {
            let mut listeners = self.space.listeners.lock();
            if listeners.contains_key(&addr) {
                let source = io::ErrorKind::AddrInUse.into();
                return Err(Error::Listen { addr, source });
            }
            listeners.insert(addr.clone(), Entry { id, backlog: tx });
        }
        Ok(Box::new(MemoryListener {
            space: self.space.clone(),
            id,
            addr,
            backlog: tokio::sync::Mutex::new(rx),
        }))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// A listening address in a [`MemoryTransport`].
#[derive(Debug)]
struct MemoryListener {
    space: Arc<Space>,
    id: u64,
    addr: String,
    backlog: tokio::sync::Mutex<mpsc::Receiver<MemorySocket>>,
}

#[async_trait]
impl Listener for MemoryListener {
    fn addr(&self) -> String {
        self.addr.clone()
    }

    async fn accept(&self) -> Result<Box<dyn Socket>> {
        let mut backlog = self.backlog.lock().await;
        // the sender lives in the address map until this listener drops
        let socket = backlog.recv().await.ok_or(Error::Closed)?;
        Ok(Box::new(socket))
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut listeners = self.space.listeners.lock();
        if listeners.get(&self.addr).is_some_and(|e| e.id == self.id) {
            listeners.remove(&self.addr);
        }
    }
}

/// Closing state of one end of a connection.
#[derive(Debug, Default)]
struct End {
    closed: AtomicBool,
    notify: Notify,
}

impl End {
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// One end of an in-memory connection.
#[derive(Debug)]
struct MemorySocket {
    tx: mpsc::Sender<Message>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Message>>,
    me: Arc<End>,
    peer: Arc<End>,
    local: String,
    remote: String,
}

/// A connected pair: (client end, server end).
fn pair(client_addr: String, server_addr: String) -> (MemorySocket, MemorySocket) {
    let (to_server, from_client) = mpsc::channel(CHANNEL_CAPACITY);
    let (to_client, from_server) = mpsc::channel(CHANNEL_CAPACITY);
    let client_end = Arc::new(End::default());
    let server_end = Arc::new(End::default());
    let client = MemorySocket {
        tx: to_server,
        rx: tokio::sync::Mutex::new(from_server),
        me: client_end.clone(),
        peer: server_end.clone(),
        local: client_addr.clone(),
        remote: server_addr.clone(),
    };
    let server = MemorySocket {
        tx: to_client,
        rx: tokio::sync::Mutex::new(from_client),
        me: server_end,
        peer: client_end,
        local: server_addr,
        remote: client_addr,
    };
    (client, server)
}

impl MemorySocket {
    /// Runs `fut` until it finishes or either end closes.
    async fn until_closed<F: Future>(&self, fut: F) -> Option<F::Output> {
        let mut mine = pin!(self.me.notify.notified());
        let mut theirs = pin!(self.peer.notify.notified());
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            let woken = mine.as_mut().poll(cx).is_ready() | theirs.as_mut().poll(cx).is_ready();
            if woken || self.me.is_closed() || self.peer.is_closed() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}

#[async_trait]
impl Socket for MemorySocket {
    async fn send(&self, msg: &Message) -> Result<()> {
        if self.me.is_closed() || self.peer.is_closed() {
            return Err(Error::Closed);
        }
        match self.until_closed(self.tx.send(msg.clone())).await {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) | None => Err(Error::Closed),
        }
    }

    /// Messages the peer sent before it closed are still delivered; then
    /// [`Error::Closed`].
    async fn recv(&self) -> Result<Message> {
        if self.me.is_closed() {
            return Err(Error::Closed);
        }
        let mut rx = self
            .until_closed(self.rx.lock())
            .await
            .ok_or(Error::Closed)?;
        loop {
            match rx.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(Error::Closed),
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if self.me.is_closed() || self.peer.is_closed() {
                return Err(Error::Closed);
            }
            match self.until_closed(rx.recv()).await {
                Some(Some(msg)) => return Ok(msg),
                Some(None) => return Err(Error::Closed),
                None if self.me.is_closed() => return Err(Error::Closed),
                // the peer closed meanwhile: deliver what is left, then report the close
                None => {}
            }
        }
    }

    async fn close(&self) {
        self.me.close();
    }

    fn local_addr(&self) -> &str {
        &self.local
    }

    fn remote_addr(&self) -> &str {
        &self.remote
    }

    fn is_open(&self) -> bool {
        !self.me.is_closed() && !self.peer.is_closed() && !self.tx.is_closed()
    }
}

impl Drop for MemorySocket {
    fn drop(&mut self) {
        self.me.close();
    }
}
