//! The heartbeat of one node registered with a TTL check: passes the check when
//! nobody did for half the TTL and registers the node again when the agent lost
//! it (refused the pass). A pass that got no answer is tried again after a
//! pause that doubles from 100 ms up to the interval.
//!
//! It is a safety net for owners that register less often than the TTL needs: a
//! registration that passes the check (every 30 s for a server, a third of its
//! 90 s TTL) pushes the next beat back, so a node renewed by its owner costs the
//! agent one check update per interval, not two.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;

/// Shortest pause between two beats.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// What a heartbeat needs to know about its node; updated by each registration.
#[derive(Debug)]
pub(crate) struct Beat {
    /// The registration body sent when the agent lost the node.
    pub(crate) body: Bytes,
    /// Longest time without a pass before the heartbeat passes the check.
    pub(crate) interval: Duration,
    /// When the check was last passed (or the node registered), by anyone.
    pub(crate) last: Instant,
}

impl Beat {
    /// A beat for a node just registered (its check passing) with `ttl`: half
    /// the TTL between passes, within the third-to-half that keeps TTL checks
    /// from flapping, and longer than a server's interval of a third.
    pub(crate) fn new(body: Bytes, ttl: Duration) -> Beat {
        Beat {
            body,
            interval: (ttl / 2).max(MIN_INTERVAL),
            last: Instant::now(),
        }
    }
}

/// A running heartbeat task.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    pub(crate) beat: Arc<Mutex<Beat>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Starts the heartbeat of node `id` (needs a tokio runtime).
    pub(crate) fn start(client: Arc<Client>, id: String, beat: Beat) -> Heartbeat {
        let beat = Arc::new(Mutex::new(beat));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(client, id, beat.clone(), stopped));
        Heartbeat { beat, stop, task }
    }

    pub(crate) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// The owner passed the check: the next beat is due an interval from now.
    pub(crate) fn passed(&self) {
        self.beat.lock().last = Instant::now();
    }

    /// Stops the task and waits for it: a request it has in flight is allowed to
    /// finish (up to `limit`), so that no late re-registration can follow a
    /// deregistration.
    pub(crate) async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the task without waiting (for `Drop`).
    pub(crate) fn abort(&self) {
        self.task.abort();
    }
}

async fn run(
    client: Arc<Client>,
    id: String,
    beat: Arc<Mutex<Beat>>,
    mut stopped: watch::Receiver<bool>,
) {
    let check = format!("service:{id}");
    let mut failures: u32 = 0;
    loop {
        let (interval, last) = {
            let b = beat.lock();
            (b.interval, b.last)
        };
        // A little early rather than late: up to 10 % of jitter below the pause.
        let due = if failures == 0 {
            last + interval.mul_f64(0.9 + fastrand::f64() * 0.1)
        } else {
            let retry = Duration::from_millis(100)
                .saturating_mul(1 << failures.saturating_sub(1).min(10))
                .min(interval);
            Instant::now() + retry.mul_f64(0.9 + fastrand::f64() * 0.1)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        // The owner passed the check meanwhile: wait an interval from then.
        if failures == 0 && beat.lock().last > last {
            continue;
        }
        let passed = client.put(&["agent", "check", "pass", &check], None).await;
        let pass_err = match passed {
            Ok(_) => {
                failures = 0;
                beat.lock().last = Instant::now();
                continue;
            }
            // The agent lost the node: register it again, below.
            Err(e) if e.is_refusal() => e,
            // No answer (or an ACL refusal): pass again after a pause, without
            // adding a full registration to the load of an agent slow or away.
            Err(e) => {
                failed(&id, &mut failures, &e);
                continue;
            }
        };
        let body = beat.lock().body.clone();
        match client
            .put(&["agent", "service", "register"], Some(body))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %id, reason = %pass_err, "consul: registered the node again");
                failures = 0;
                beat.lock().last = Instant::now();
            }
            Err(e) => failed(&id, &mut failures, &e),
        }
    }
}

/// Counts a failed beat; logs the first of a series as a warning.
fn failed(id: &str, failures: &mut u32, e: &crate::Error) {
    *failures = failures.saturating_add(1);
    if *failures == 1 {
        tracing::warn!(node = %id, error = %e, "consul: heartbeat failed; retrying");
    } else {
        tracing::debug!(node = %id, failures, error = %e, "consul: heartbeat failed again");
    }
}
