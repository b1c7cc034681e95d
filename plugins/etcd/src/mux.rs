//! One etcd watch stream per connection, shared by every watcher of the registry.
//!
//! etcd carries any number of watches on one gRPC `Watch` stream, each with its
//! own id; etcd's Go client shares a stream the same way. A stream of its own per
//! watcher costs about 23 KB of buffers and a much larger task, which a cache
//! watching a thousand services pays a thousand times. Here one task owns the
//! stream: a watcher asks it for a watch and gets the responses of that watch id
//! on a channel of its own; dropping the [`MuxWatch`] cancels the watch. When the
//! stream fails or closes, every watch on it ends (its channel closes) and each
//! watcher re-lists and asks again, which opens a new stream.
//!
//! Responses are handed to watchers without waiting, so a slow watcher never
//! holds the shared stream up; each watcher pauses its own watch (cancels it and
//! watches again later) when its reader falls behind. They travel boxed: a
//! channel allocates room for 32 of its items up front, per watch.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use etcd_client::{WatchOptions, WatchResponse, WatchStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::conn::Conn;

/// A watch id not known yet.
const PENDING: i64 = -1;
/// Cancelled before its id was known.
const CANCELLED: i64 = -2;

enum Cmd {
    Create {
        key: String,
        opts: WatchOptions,
        tx: mpsc::UnboundedSender<Box<WatchResponse>>,
        id: Arc<AtomicI64>,
    },
    Cancel(Arc<AtomicI64>),
}

/// The task that owns the shared stream; stopped when dropped.
pub(crate) struct Mux {
    cmd: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mux {
    /// Starts the task (needs a runtime). It holds the connection weakly, so it
    /// never keeps a dropped registry alive.
    pub(crate) fn start(conn: Weak<Conn>) -> Mux {
        let (cmd, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(conn, rx));
        Mux { cmd, task }
    }

    /// Watches `key` with `opts` on the shared stream. The first response is
    /// the creation; the channel closes when the watch or the stream ends.
    pub(crate) fn watch(&self, key: &str, opts: WatchOptions) -> MuxWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = Arc::new(AtomicI64::new(PENDING));
        let _ = self.cmd.send(Cmd::Create {
            key: key.to_owned(),
            opts,
            tx,
            id: id.clone(),
        });
        MuxWatch {
            rx,
            id,
            cmd: self.cmd.clone(),
        }
    }
}

/// One watch on the shared stream; dropping it cancels the watch.
pub(crate) struct MuxWatch {
    rx: mpsc::UnboundedReceiver<Box<WatchResponse>>,
    id: Arc<AtomicI64>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl MuxWatch {
    /// The next response of this watch; `None` once the watch or the stream
    /// ended.
    pub(crate) async fn message(&mut self) -> Option<WatchResponse> {
        self.rx.recv().await.map(|b| *b)
    }
}

impl Drop for MuxWatch {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Cancel(self.id.clone()));
    }
}

/// The stream and the watches on it.
#[derive(Default)]
struct Shared {
    stream: Option<WatchStream>,
    /// Created, waiting for etcd's answer (answers come in request order).
    pending: VecDeque<(mpsc::UnboundedSender<Box<WatchResponse>>, Arc<AtomicI64>)>,
    active: HashMap<i64, mpsc::UnboundedSender<Box<WatchResponse>>>,
}

impl Shared {
    /// Forgets the stream: every watch on it ends.
    fn reset(&mut self, why: &str) {
        if self.stream.take().is_some() {
            tracing::debug!(
                watches = self.active.len() + self.pending.len(),
                reason = why,
                "etcd registry: shared watch stream ended"
            );
        }
        self.pending.clear();
        self.active.clear();
    }

    async fn create(
        &mut self,
        conn: &Weak<Conn>,
        key: String,
        opts: WatchOptions,
        tx: mpsc::UnboundedSender<Box<WatchResponse>>,
        id: Arc<AtomicI64>,
    ) {
        if id.load(Ordering::Acquire) == CANCELLED {
            return;
        }
        match &mut self.stream {
            Some(s) => {
                if let Err(e) = s.watch(key, Some(opts)).await {
                    self.reset(&e.to_string());
                    return;
                }
            }
            None => {
                let Some(conn) = conn.upgrade() else { return };
                match conn.open_watch(&key, opts).await {
                    Ok(s) => self.stream = Some(s),
                    // The watcher sees its channel close and tries again.
                    Err(e) => {
                        tracing::debug!(error = %e, "etcd registry: cannot open the watch stream");
                        return;
                    }
                }
            }
        }
        self.pending.push_back((tx, id));
    }

    fn cancel(&mut self, id: &AtomicI64) -> Option<i64> {
        match id.swap(CANCELLED, Ordering::AcqRel) {
            PENDING | CANCELLED => None,
            known => self.active.remove(&known).map(|_| known),
        }
    }

    /// Hands one response to its watch; returns a watch id to cancel, if any.
    fn dispatch(&mut self, resp: WatchResponse) -> Option<i64> {
        let wid = resp.watch_id();
        if resp.created() {
            let (tx, id) = self.pending.pop_front()?;
            if id.swap(wid, Ordering::AcqRel) == CANCELLED {
                id.store(CANCELLED, Ordering::Release);
                return (!resp.canceled()).then_some(wid);
            }
            let canceled = resp.canceled();
            if tx.send(Box::new(resp)).is_ok() && !canceled {
                self.active.insert(wid, tx);
                return None;
            }
            return (!canceled).then_some(wid);
        }
        let canceled = resp.canceled();
        let tx = self.active.get(&wid)?;
        if tx.send(Box::new(resp)).is_err() {
            self.active.remove(&wid);
            return (!canceled).then_some(wid);
        }
        if canceled {
            self.active.remove(&wid);
        }
        None
    }
}

async fn run(conn: Weak<Conn>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut sh = Shared::default();
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Cmd::Create { key, opts, tx, id }) => sh.create(&conn, key, opts, tx, id).await,
                Some(Cmd::Cancel(id)) => {
                    if let Some(wid) = sh.cancel(&id) {
                        cancel(&mut sh, wid).await;
                    }
                }
            },
            msg = next(&mut sh.stream) => match msg {
                Ok(Some(resp)) => {
                    if let Some(wid) = sh.dispatch(resp) {
                        cancel(&mut sh, wid).await;
                    }
                }
                Ok(None) => sh.reset("closed"),
                Err(e) => sh.reset(&e.to_string()),
            },
        }
    }
}

/// The stream's next response; never ready without a stream.
async fn next(
    stream: &mut Option<WatchStream>,
) -> Result<Option<WatchResponse>, etcd_client::Error> {
    match stream {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

async fn cancel(sh: &mut Shared, wid: i64) {
    if let Some(s) = sh.stream.as_mut() {
        if let Err(e) = s.cancel(wid).await {
            sh.reset(&e.to_string());
        }
    }
}
