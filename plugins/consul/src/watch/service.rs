//! The watch of one service: blocking queries on `/v1/health/service/<name>`.

use std::sync::Arc;

use micro_registry::WatchEvent;
use tokio::sync::mpsc;

use super::{Blocking, Snapshot, deliver, diff, snapshot};
use crate::client::{Client, Query};
use crate::health::{Instance, instances};
use crate::{ConsulOptions, Error};

/// Reads the healthy instances of `name` with query `q`; returns the answer's
/// index and the instances.
pub(super) async fn read(
    client: &Client,
    name: &str,
    q: Query,
) -> Result<(Option<u64>, Vec<Instance>), Error> {
    let reply = client.get(&["health", "service", name], q).await?;
    Ok((reply.index, instances(name, &reply)?))
}

/// The next query of the watch of `name`, on the stream's own connection.
async fn next(
    client: &Client,
    state: &mut Blocking,
    name: &str,
) -> Result<(Option<u64>, Vec<Instance>), Error> {
    let reply = state.get(client, &["health", "service", name]).await?;
    Ok((reply.index, instances(name, &reply)?))
}

pub(super) struct ServiceWatch {
    client: Arc<Client>,
    name: String,
    state: Blocking,
    snap: Snapshot,
}

impl ServiceWatch {
    /// Reads the baseline.
    pub(super) async fn start(
        client: Arc<Client>,
        opts: &ConsulOptions,
        name: &str,
    ) -> Result<ServiceWatch, Error> {
        let mut state = Blocking::new(opts.watch_wait, opts.watch_min_interval);
        state.pace().await;
        let (index, inst) = next(&client, &mut state, name).await?;
        state.answered(index);
        Ok(ServiceWatch {
            client,
            name: name.to_owned(),
            state,
            snap: snapshot(inst),
        })
    }

    /// Runs until the watcher is gone.
    pub(super) async fn run(mut self, tx: mpsc::Sender<Box<WatchEvent>>) {
        loop {
            tokio::select! {
                _ = self.state.pace() => {}
                _ = tx.closed() => return,
            }
            let res = tokio::select! {
                res = next(&self.client, &mut self.state, &self.name) => res,
                _ = tx.closed() => return,
            };
            match res {
                Ok((index, inst)) => {
                    self.state.answered(index);
                    let new = snapshot(inst);
                    let events = diff(&self.snap, &new);
                    self.snap = new;
                    if !deliver(&tx, events).await {
                        return;
                    }
                }
                Err(e) => {
                    let n = self.state.failed();
                    log_failure(&self.name, n, &e);
                }
            }
        }
    }
}

/// Logs a failed watch query: a warning for the first of a series, then at debug
/// level so that a long outage does not flood the log.
pub(super) fn log_failure(what: &str, failures: u32, e: &Error) {
    if failures == 1 {
        tracing::warn!(watch = what, error = %e, "consul watch: query failed; retrying with backoff");
    } else {
        tracing::debug!(watch = what, failures, error = %e, "consul watch: query failed again");
    }
}
