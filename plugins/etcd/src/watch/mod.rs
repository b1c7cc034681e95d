//! The watcher: an owned task that follows a prefix, keeps the set of records it
//! knows, turns every event of every watch response into registry events, and
//! re-lists after any interruption so its reader converges on etcd's state.
//!
//! The task never lets etcd's stream back up behind a slow reader (unread watch
//! data would hold HTTP/2 flow-control credit that the registry's other calls on
//! the same connection need): when a response does not fit in the reader's
//! buffer, it drops the stream, waits for the reader to catch up, and watches
//! again from the last revision it delivered, so etcd replays the rest from its
//! history (or, if that was compacted meanwhile, cancels and the task re-lists).

mod changes;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{GetResponse, WatchOptions as EtcdWatchOptions};
use micro_registry::{Error, Result, WatchEvent, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::records::decode_for;
use changes::{Known, Listed, Plan, Rec, diff};

/// Shortest and longest pause between attempts while etcd is unreachable.
const MIN_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Counters shared with the registry, for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct WatchStats {
    pub(crate) resyncs: std::sync::atomic::AtomicU64,
}

/// What a watch follows.
pub(crate) struct Spec {
    pub(crate) prefix: String,
    /// Only records of this service (the prefix may hold others: `a/b` and `a-b`).
    pub(crate) service: Option<String>,
    pub(crate) buffer: usize,
}

/// A watcher on an [`EtcdRegistry`](crate::EtcdRegistry).
pub(crate) struct EtcdWatcher {
    /// Events travel boxed: a channel allocates room for 32 items up front.
    rx: Option<mpsc::Receiver<Box<WatchEvent>>>,
    task: Option<JoinHandle<()>>,
}

impl EtcdWatcher {
    /// Lists the prefix (failing if etcd cannot be reached), then starts the task
    /// that watches from the listed revision on.
    pub(crate) async fn start(conn: Arc<Conn>, spec: Spec, stats: Arc<WatchStats>) -> Result<Self> {
        let (tx, rx) = mpsc::channel(spec.buffer);
        let mut follower = Follower {
            conn,
            spec,
            known: Known::new(),
            revision: 0,
            tx,
            stats,
        };
        let resp = follower.list().await?;
        let (revision, _, _) = follower.replace_known(&resp);
        follower.revision = revision;
        let task = tokio::spawn(follower.run());
        Ok(EtcdWatcher {
            rx: Some(rx),
            task: Some(task),
        })
    }
}

impl Drop for EtcdWatcher {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[async_trait]
impl Watcher for EtcdWatcher {
    async fn next(&mut self) -> Result<WatchEvent> {
        let rx = self.rx.as_mut().ok_or(Error::WatcherStopped)?;
        match rx.recv().await {
            Some(ev) => Ok(*ev),
            None => {
                self.stop();
                Err(Error::WatcherStopped)
            }
        }
    }

    fn stop(&mut self) {
        self.rx = None;
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The reader went away.
struct Gone;

/// Why a watch stream ended.
enum Interrupted {
    /// The reader went away.
    Gone,
    /// The reader has no room: resume from the last delivered revision once it
    /// has caught up.
    Overflow,
    /// Anything else: re-list.
    Resync(String),
}

struct Follower {
    conn: Arc<Conn>,
    spec: Spec,
    /// Every key under the prefix, with its record when it decodes (and belongs
    /// to the watched service).
    known: Known,
    /// The revision the reader has been given every change up to.
    revision: i64,
    tx: mpsc::Sender<Box<WatchEvent>>,
    stats: Arc<WatchStats>,
}

impl Follower {
    async fn run(mut self) {
        loop {
            match self.follow().await {
                Interrupted::Gone => return,
                Interrupted::Overflow => {
                    tracing::debug!(prefix = %self.spec.prefix, revision = self.revision, "etcd registry: watch reader is behind; pausing the watch");
                    // Wait until the reader has taken every buffered event.
                    match self.tx.reserve_many(self.tx.max_capacity()).await {
                        Ok(permits) => drop(permits),
                        Err(_) => return,
                    }
                }
                Interrupted::Resync(why) => {
                    tracing::debug!(prefix = %self.spec.prefix, reason = %why, "etcd registry: watch interrupted; re-listing");
                    match self.resync().await {
                        Ok(r) => self.revision = r,
                        Err(Gone) => return,
                    }
                }
            }
        }
    }

    /// Lists the prefix. The request's future is boxed: it is large (the gRPC
    /// call inside), and inline it would make every watcher's task that large
    /// for its whole life, not only while it lists.
    async fn list(&self) -> Result<GetResponse> {
        Box::pin(self.conn.get("watch", &self.spec.prefix, true)).await
    }

    /// Re-lists until it works, emitting the difference from what was known.
    /// Returns the listed revision.
    async fn resync(&mut self) -> Result<i64, Gone> {
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        let mut failures: u32 = 0;
        loop {
            match self.list().await {
                Ok(resp) => return self.rebuild_and_emit(resp).await,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(prefix = %self.spec.prefix, error = %e, "etcd registry: watch cannot re-list; retrying");
                    } else {
                        tracing::debug!(prefix = %self.spec.prefix, error = %e, failures, "etcd registry: watch still cannot re-list");
                    }
                    let base = MIN_RETRY
                        .saturating_mul(1 << failures.min(5))
                        .min(MAX_RETRY);
                    let wait = base.mul_f64(0.5 + fastrand::f64() / 2.0);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.tx.closed() => return Err(Gone),
                    }
                }
            }
        }
    }

    /// Replaces the known set with a listing; returns the listing's revision, the
    /// set known before and the listing's decoded records.
    fn replace_known(&mut self, resp: &GetResponse) -> (i64, Known, Listed) {
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut fresh = Known::with_capacity(resp.kvs().len());
        let mut listed = Listed::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let rec = decode_for(kv.key(), kv.value(), self.spec.service.as_deref());
            fresh.insert(
                kv.key().to_vec(),
                rec.as_ref().map(|s| Rec::new(kv.value(), s)),
            );
            if let Some(s) = rec {
                listed.insert(kv.key().to_vec(), s);
            }
        }
        (revision, std::mem::replace(&mut self.known, fresh), listed)
    }

    async fn rebuild_and_emit(&mut self, resp: GetResponse) -> Result<i64, Gone> {
        let (revision, old, listed) = self.replace_known(&resp);
        let events = diff(&old, &self.known, &listed);
        drop(listed);
        if !events.is_empty() {
            tracing::debug!(prefix = %self.spec.prefix, events = events.len(), "etcd registry: re-list found changes");
        }
        for ev in events {
            self.send(ev).await?;
        }
        Ok(revision)
    }

    async fn send(&self, ev: WatchEvent) -> Result<(), Gone> {
        self.tx.send(Box::new(ev)).await.map_err(|_| Gone)
    }

    /// Watches from the delivered revision on until the stream ends.
    async fn follow(&mut self) -> Interrupted {
        let opts = EtcdWatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(self.revision.saturating_add(1));
        let mut stream = self.conn.watch(&self.spec.prefix, opts);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = self.tx.closed() => return Interrupted::Gone,
            };
            let Some(resp) = msg else {
                return Interrupted::Resync("watch stream closed".into());
            };
            if resp.canceled() {
                let why = if resp.compact_revision() > 0 {
                    format!("compacted at revision {}", resp.compact_revision())
                } else {
                    format!("canceled: {}", resp.cancel_reason())
                };
                return Interrupted::Resync(why);
            }
            let plan = Plan::new(&self.known, resp.events(), self.spec.service.as_deref());
            let room = self.tx.capacity();
            // Put the response off unless it fits; one larger than the whole buffer
            // is delivered by waiting, as it would never fit.
            if plan.events.len() > room && room < self.tx.max_capacity() {
                return Interrupted::Overflow;
            }
            self.revision = self.revision.max(plan.revision);
            for ev in plan.commit(&mut self.known) {
                if self.send(ev).await.is_err() {
                    return Interrupted::Gone;
                }
            }
        }
    }
}
