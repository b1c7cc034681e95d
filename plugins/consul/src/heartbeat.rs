//! The heartbeat of one node registered with a TTL check: passes the check every
//! third of the TTL and registers the node again when the agent lost it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;

/// Shortest pause between two beats.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// What a heartbeat needs to know about its node; updated by each registration.
#[derive(Debug)]
pub(crate) struct Beat {
    /// The registration body sent when the agent lost the node.
    pub(crate) body: Bytes,
    /// Time between passes.
    pub(crate) interval: Duration,
}

impl Beat {
    pub(crate) fn new(body: Bytes, ttl: Duration) -> Beat {
        Beat {
            body,
            interval: (ttl / 3).max(MIN_INTERVAL),
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
        let interval = beat.lock().interval;
        let pause = if failures == 0 {
            interval
        } else {
            Duration::from_millis(100)
                .saturating_mul(1 << failures.saturating_sub(1).min(10))
                .min(interval)
        };
        // A little early rather than late: up to 10 % of jitter below the pause.
        let pause = pause.mul_f64(0.9 + fastrand::f64() * 0.1);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let passed = client.put(&["agent", "check", "pass", &check], None).await;
        let Err(pass_err) = passed else {
            failures = 0;
            continue;
        };
        let body = beat.lock().body.clone();
        match client
            .put(&["agent", "service", "register"], Some(body))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %id, reason = %pass_err, "consul: registered the node again");
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(node = %id, error = %e, "consul: heartbeat failed; retrying");
                } else {
                    tracing::debug!(node = %id, failures, error = %e, "consul: heartbeat failed again");
                }
            }
        }
    }
}
