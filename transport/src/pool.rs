//! A pool of idle client connections per address, for unary calls.
//!
//! Works like go-micro's pool: a LIFO stack of idle connections per address, a
//! connection older than the TTL (age since dial, not idle time) is closed instead of
//! reused, and a released connection is closed when its address already holds `size`
//! idle ones. Plain and TLS connections to one address are kept apart: a call that
//! dials with TLS ([`DialOptions::is_tls`]) only ever gets a TLS connection back,
//! and a plain call a plain one. Unlike go-micro, a connection the peer has closed is never handed out
//! ([`Socket::is_open`] is checked), the pool is keyed by the address as dialled (so
//! host names pool too), and a [`Pooled`] that is dropped without
//! [`release`](Pooled::release) is closed, so a cancelled call never returns a
//! half-used connection to the pool. Idle connections nobody takes (their address
//! left the registry, or is no longer called) are closed after
//! [`idle_timeout`](PoolOptions::idle_timeout) by a sweep task the pool owns: it
//! runs only while the pool holds idle connections, and stops when the pool is
//! cleared or dropped.
//!
//! ```
//! use std::sync::Arc;
//! use micro_transport::{DialOptions, MemoryTransport, Pool, PoolOptions, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro_transport::Result<()> {
//! let transport = MemoryTransport::new();
//! let _listener = transport.listen("svc").await?;
//! let pool = Pool::new(Arc::new(transport), PoolOptions::new().size(2));
//!
//! let conn = pool.get("svc", &DialOptions::default()).await?;
//! assert!(!conn.is_reused());
//! // ... send a request and read the response on `conn` ...
//! conn.release();
//! assert_eq!(pool.idle_count("svc"), 1);
//! assert!(pool.get("svc", &DialOptions::default()).await?.is_reused());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::{DialOptions, Result, Socket, Transport};

/// Options of a [`Pool`]; build with [`PoolOptions::new`] and the setters.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    size: usize,
    ttl: Duration,
    idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            size: 100,
            ttl: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

impl PoolOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most idle connections kept per address. Default: 100 (go-micro's
    /// `DefaultPoolSize`). 0 keeps none: every call dials.
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Longest a connection is used, counted from its dial. Default: 60 s (go-micro's
    /// `DefaultPoolTTL`); servers keep idle connections open longer than this (our
    /// HTTP transport: 5 min), so a pooled connection is retired before the server
    /// drops it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Longest a connection waits in the pool unused. Default: 90 s (below the
    /// servers' 5 min idle timeout). A periodic sweep closes idle connections past
    /// this or past the TTL, so connections to addresses nobody calls any more
    /// (nodes that left) do not stay open; it runs every half of the shorter of the
    /// two (at most every minute).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Whether a connection dialled at `created` and idle since `idle_since` may
    /// still be used at `now`.
    fn fresh(&self, created: Instant, idle_since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(created) < self.ttl
            && now.saturating_duration_since(idle_since) < self.idle_timeout
    }

    fn sweep_every(&self) -> Duration {
        (self.ttl.min(self.idle_timeout) / 2).clamp(Duration::from_millis(1), MAX_SWEEP_INTERVAL)
    }
}

/// The idle sweep runs at least this often while there are idle connections.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Idle client connections per address; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    opts: PoolOptions,
    idle: Mutex<Idle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.idle.get_mut().sweeper.take() {
            t.abort();
        }
    }
}

#[derive(Default)]
struct Idle {
    /// Plain connections by address, then TLS ones.
    by_addr: [HashMap<String, Vec<IdleConn>>; 2],
    /// Empty stacks are dropped when the map grows past this many addresses.
    prune_at: usize,
    /// Closes stale idle connections; runs while there are any.
    sweeper: Option<JoinHandle<()>>,
}

struct IdleConn {
    socket: Box<dyn Socket>,
    created: Instant,
    /// When it was released to the pool.
    idle_since: Instant,
}

/// Address count below which empty stacks are kept (no pruning work).
const PRUNE_MIN: usize = 64;

impl Pool {
    /// A pool dialling through `transport`.
    pub fn new(transport: Arc<dyn Transport>, opts: PoolOptions) -> Self {
        let idle = Idle {
            by_addr: Default::default(),
            prune_at: PRUNE_MIN,
            sweeper: None,
        };
        Self {
            inner: Arc::new(Inner {
                transport,
                opts,
                idle: Mutex::new(idle),
            }),
        }
    }

    /// The transport the pool dials with.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// A connection to `addr`: the most recently released idle one that is younger than
    /// the TTL, idle for less than the idle timeout and still open, or else a new one
    /// dialled with `opts`. Idle connections found stale on the way are closed.
    ///
    /// Cancelling the future while it dials abandons the dial; nothing is left open.
    pub async fn get(&self, addr: &str, opts: &DialOptions) -> Result<Pooled> {
        let tls = opts.is_tls();
        loop {
            let candidate = self.inner.idle.lock().by_addr[usize::from(tls)]
                .get_mut(addr)
                .and_then(Vec::pop);
            let Some(conn) = candidate else { break };
            let now = Instant::now();
            if self.inner.opts.fresh(conn.created, conn.idle_since, now) && conn.socket.is_open() {
                return Ok(self.pooled(addr, tls, conn.socket, conn.created, true));
            }
            tracing::trace!(addr, "closing stale pooled connection");
            // dropping the socket closes it
        }
        let socket = self.inner.transport.dial(addr, opts).await?;
        Ok(self.pooled(addr, tls, socket, Instant::now(), false))
    }

    fn pooled(
        &self,
        addr: &str,
        tls: bool,
        socket: Box<dyn Socket>,
        created: Instant,
        reused: bool,
    ) -> Pooled {
        Pooled {
            socket: Some(socket),
            addr: addr.to_owned(),
            tls,
            created,
            reused,
            pool: self.inner.clone(),
        }
    }

    /// Idle connections kept for `addr`, plain and TLS.
    pub fn idle_count(&self, addr: &str) -> usize {
        let idle = self.inner.idle.lock();
        idle.by_addr
            .iter()
            .map(|m| m.get(addr).map_or(0, Vec::len))
            .sum()
    }

    /// Idle connections kept for all addresses.
    pub fn idle_total(&self) -> usize {
        let idle = self.inner.idle.lock();
        idle.by_addr
            .iter()
            .flat_map(|m| m.values())
            .map(Vec::len)
            .sum()
    }

    /// Closes every idle connection and stops the sweep. Connections in use are
    /// unaffected (released later, they are kept as usual).
    pub fn clear(&self) {
        let (all, sweeper) = {
            let mut idle = self.inner.idle.lock();
            (std::mem::take(&mut idle.by_addr), idle.sweeper.take())
        };
        if let Some(t) = sweeper {
            t.abort();
        }
        drop(all); // closes them, outside the lock
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("transport", &self.inner.transport.name())
            .field("opts", &self.inner.opts)
            .field("idle", &self.idle_total())
            .finish()
    }
}

impl Inner {
    /// Keeps `socket` for reuse if there is room; otherwise it is closed.
    fn put(
        self: &Arc<Self>,
        addr: &mut String,
        tls: bool,
        socket: Box<dyn Socket>,
        created: Instant,
    ) {
        if self.opts.size == 0 || created.elapsed() >= self.opts.ttl || !socket.is_open() {
            return;
        }
        let rejected = {
            let mut idle = self.idle.lock();
            let idle = &mut *idle;
            let by_addr = &mut idle.by_addr[usize::from(tls)];
            let stack = match by_addr.get_mut(addr.as_str()) {
                Some(stack) => stack,
                None => {
                    if by_addr.len() >= idle.prune_at {
                        by_addr.retain(|_, stack| !stack.is_empty());
                        idle.prune_at = PRUNE_MIN.max(by_addr.len() * 2);
                    }
                    by_addr.entry(std::mem::take(addr)).or_default()
                }
            };
            if stack.len() >= self.opts.size {
                Some(socket)
            } else {
                stack.push(IdleConn {
                    socket,
                    created,
                    idle_since: Instant::now(),
                });
                if idle.sweeper.is_none() {
                    idle.sweeper = self.spawn_sweeper();
                }
                None
            }
        };
        drop(rejected); // closed outside the lock
    }

    /// Starts the sweep (on the current runtime; without one, stale connections
    /// are only closed when `get` finds them).
    fn spawn_sweeper(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let (pool, every) = (Arc::downgrade(self), self.opts.sweep_every());
        Some(rt.spawn(sweep(pool, every)))
    }

    /// Takes the stale idle connections out (and the empty stacks); returns them,
    /// and whether any idle connection is left.
    fn take_stale(&self) -> (Vec<IdleConn>, bool) {
        let now = Instant::now();
        let mut stale = Vec::new();
        let mut idle = self.idle.lock();
        for by_addr in &mut idle.by_addr {
            by_addr.retain(|_, stack| {
                let mut i = 0;
                while i < stack.len() {
                    let c = &stack[i];
                    if self.opts.fresh(c.created, c.idle_since, now) && c.socket.is_open() {
                        i += 1;
                    } else {
                        stale.push(stack.remove(i));
                    }
                }
                !stack.is_empty()
            });
        }
        let left = idle.by_addr.iter().any(|m| !m.is_empty());
        if !left {
            // Stops here, under the lock: a connection released from now on
            // starts a new sweep.
            idle.sweeper = None;
        }
        (stale, left)
    }
}

/// The sweep: every `every`, closes the idle connections past the TTL or the idle
/// timeout (or closed by the peer); ends when none is left or the pool is gone.
async fn sweep(pool: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else { return };
        let (stale, left) = inner.take_stale();
        if !stale.is_empty() {
            tracing::debug!(count = stale.len(), "closing idle pooled connections");
        }
        drop(stale); // closed outside the lock
        if !left {
            return;
        }
    }
}

/// A connection taken from a [`Pool`]. Dereferences to the [`Socket`].
///
/// Call [`release`](Pooled::release) when the call succeeded at the transport level
/// (the response was read in full) to return the connection for reuse. Dropping it
/// otherwise, or [`discard`](Pooled::discard)ing it, closes the connection.
pub struct Pooled {
    socket: Option<Box<dyn Socket>>,
    addr: String,
    tls: bool,
    created: Instant,
    reused: bool,
    pool: Arc<Inner>,
}

impl Pooled {
    /// The connection.
    pub fn socket(&self) -> &dyn Socket {
        &**self
    }

    /// The address it was taken for.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// When it was dialled.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Whether it was dialled with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether it came from the idle stack rather than a new dial.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Returns the connection to the pool for reuse; it is closed instead when it is
    /// past the TTL, no longer open, or its address already holds `size` idle ones.
    pub fn release(mut self) {
        if let Some(socket) = self.socket.take() {
            self.pool
                .put(&mut self.addr, self.tls, socket, self.created);
        }
    }

    /// Closes the connection (gracefully, unlike a plain drop).
    pub async fn discard(mut self) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
    }
}

impl Deref for Pooled {
    type Target = dyn Socket;

    fn deref(&self) -> &Self::Target {
        match &self.socket {
            Some(socket) => socket.as_ref(),
            // `socket` is only taken by `release` and `discard`, which consume `self`
            None => unreachable!("pooled connection used after release"),
        }
    }
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("created", &self.created)
            .field("reused", &self.reused)
            .finish()
    }
}
