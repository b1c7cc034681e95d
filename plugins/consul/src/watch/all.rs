//! The watch of every service (go-micro's Consul registry cannot do this).
//!
//! Two blocking queries cover the whole datacenter, whatever the number of
//! services:
//!
//! * `/v1/catalog/services` moves when a service instance is registered,
//!   deregistered or changed (tags, address, port);
//! * `/v1/health/state/any` moves when a check is added, removed or changes status.
//!
//! When one of them answers with a new index, the services it points at are read
//! again with `/v1/health/service/<name>` and compared with what the watch knew:
//! services whose catalog tags changed or that appeared or disappeared, and services
//! with a check modified after the previous answer's index (or removed). Since
//! those reads happen after the answer, a change they already saw is simply seen
//! twice, and a change after them has a later index that the next answer shows.
//!
//! Most catalog changes do not show in the tag lists: an instance registered or
//! deregistered beside others with the same tags, which is every restart in a
//! go-micro mesh. Those are pinned by the checks query, which sees the instance's
//! check appear or go. What neither answer pins (a new port with the same tags and
//! checks, an instance without checks) needs every service read again. Reading
//! them all on each such change made the watch cost O(services) requests per change
//! (at 1 000 services and 1 % churn it never caught up), so a full re-read is owed
//! and done no sooner than [`ConsulOptions::watch_full_read_interval`] (1 s) and
//! nine times the last one's duration after the last one ([`FULL_READ_SHARE`]:
//! at most a tenth of the watch's time). A node-level check (such as `serfHealth`)
//! dirties the services with checks on that node and owes a full re-read too. A
//! failed or reset checks query has nothing to compare with and reads everything at
//! once. Reads of many services run [`PARALLEL_READS`] at a time; a service whose
//! read fails is retried with backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use micro_registry::WatchEvent;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::service::{log_failure, read};
use super::{Blocking, Snapshot, deliver, diff, snapshot};
use crate::api::HealthCheck;
use crate::client::{Client, Query, Reply};
use crate::health::Instance;
use crate::{ConsulOptions, Error};

/// Full re-reads may take at most one part in this many of the watch's time: the
/// next one starts no sooner than `FULL_READ_SHARE - 1` times the last one's
/// duration after it ended.
pub(crate) const FULL_READ_SHARE: u32 = 10;
/// Service reads at once when the watch reads many (the client's
/// `max_requests` bounds all of its requests on top of this).
pub(crate) const PARALLEL_READS: usize = 8;

/// Catalog content: service name to its tags (sorted, without duplicates: Consul
/// does not keep their order).
type Catalog = BTreeMap<String, BTreeSet<String>>;
/// Checks: (node, check id) to (service name, modify index).
type Checks = HashMap<(String, String), (String, u64)>;
type Pending = Pin<Box<dyn Future<Output = (Blocking, Result<Reply, Error>)> + Send>>;

pub(super) struct AllWatch {
    client: Arc<Client>,
    catalog_state: Option<Blocking>,
    checks_state: Option<Blocking>,
    catalog: Catalog,
    checks: Checks,
    /// The index of the checks answer `checks` came from; `None` after a failure.
    checks_index: Option<u64>,
    snaps: BTreeMap<String, Snapshot>,
    /// Services whose last read failed, and how many times in a row.
    retry: BTreeSet<String>,
    retry_failures: u32,
    /// A change no answer pinned to services: every service is to be read again.
    full_owed: bool,
    /// Everything is to be read at once (no checks answer to compare with).
    full_now: bool,
    /// The earliest start of the next owed full re-read.
    next_full: Instant,
    /// The least time between two full re-reads.
    full_interval: Duration,
}

impl AllWatch {
    /// Reads the baseline: the catalog, every check, and every service.
    pub(super) async fn start(
        client: Arc<Client>,
        opts: &ConsulOptions,
    ) -> Result<AllWatch, Error> {
        let mut catalog_state = Blocking::new(opts.watch_wait, opts.watch_min_interval);
        let mut checks_state = Blocking::new(opts.watch_wait, opts.watch_min_interval);
        let reply = catalog_state.get(&client, &["catalog", "services"]).await?;
        catalog_state.answered(reply.index);
        let catalog = parse_catalog(&reply)?;
        let reply = checks_state
            .get(&client, &["health", "state", "any"])
            .await?;
        checks_state.answered(reply.index);
        let checks = parse_checks(&reply)?;
        let checks_index = reply.index;
        let started = Instant::now();
        let mut snaps = BTreeMap::new();
        for (name, res) in read_many(&client, catalog.keys().cloned().collect()).await {
            snaps.insert(name, snapshot(res?));
        }
        Ok(AllWatch {
            client,
            catalog_state: Some(catalog_state),
            checks_state: Some(checks_state),
            catalog,
            checks,
            checks_index,
            snaps,
            retry: BTreeSet::new(),
            retry_failures: 0,
            full_owed: false,
            full_now: false,
            next_full: next_full_after(started, opts.watch_full_read_interval),
            full_interval: opts.watch_full_read_interval,
        })
    }

    /// Runs until the watcher is gone.
    pub(super) async fn run(mut self, tx: mpsc::Sender<Box<WatchEvent>>) {
        let mut catalog_q: Option<Pending> = None;
        let mut checks_q: Option<Pending> = None;
        loop {
            if let Some(st) = self.catalog_state.take() {
                catalog_q = Some(Box::pin(poll(
                    self.client.clone(),
                    st,
                    &["catalog", "services"],
                )));
            }
            if let Some(st) = self.checks_state.take() {
                checks_q = Some(Box::pin(poll(
                    self.client.clone(),
                    st,
                    &["health", "state", "any"],
                )));
            }
            let woke = {
                let (Some(cq), Some(hq)) = (catalog_q.as_mut(), checks_q.as_mut()) else {
                    return;
                };
                let retry_in = (!self.retry.is_empty()).then(|| retry_delay(self.retry_failures));
                let full_at = self.full_owed.then_some(self.next_full);
                tokio::select! {
                    (st, res) = cq => Woke::Catalog(st, res),
                    (st, res) = hq => Woke::Checks(st, res),
                    _ = sleep_opt(retry_in) => Woke::Retry,
                    _ = sleep_until_opt(full_at) => Woke::Full,
                    _ = tx.closed() => return,
                }
            };
            let mut dirty = BTreeSet::new();
            match woke {
                Woke::Catalog(mut st, res) => {
                    catalog_q = None;
                    match res.and_then(|r| Ok((r.index, parse_catalog(&r)?))) {
                        Ok((index, catalog)) => {
                            let moved = st.answered(index);
                            dirty = self.catalog_changed(catalog, moved);
                        }
                        Err(e) => log_failure("catalog", st.failed(), &e),
                    }
                    self.catalog_state = Some(st);
                }
                Woke::Checks(mut st, res) => {
                    checks_q = None;
                    match res.and_then(|r| Ok((r.index, parse_checks(&r)?))) {
                        Ok((index, checks)) => {
                            st.answered(index);
                            dirty = self.checks_changed(checks, index);
                        }
                        Err(e) => {
                            self.checks_index = None;
                            log_failure("checks", st.failed(), &e);
                        }
                    }
                    self.checks_state = Some(st);
                }
                Woke::Retry => {}
                Woke::Full => self.full_now = true,
            }
            dirty.append(&mut self.retry);
            let full = std::mem::take(&mut self.full_now);
            if full {
                dirty.extend(self.catalog.keys().cloned());
                self.full_owed = false;
            }
            let started = Instant::now();
            let events = tokio::select! {
                events = self.refresh(dirty) => events,
                _ = tx.closed() => return,
            };
            if full {
                self.next_full = next_full_after(started, self.full_interval);
            }
            if !deliver(&tx, events).await {
                return;
            }
        }
    }

    /// Applies a catalog answer; returns the services to read again.
    fn catalog_changed(&mut self, catalog: Catalog, moved: bool) -> BTreeSet<String> {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        for (name, tags) in &catalog {
            if self.catalog.get(name) != Some(tags) {
                dirty.insert(name.clone());
            }
        }
        dirty.extend(
            self.catalog
                .keys()
                .filter(|n| !catalog.contains_key(*n))
                .cloned(),
        );
        if dirty.is_empty() && moved {
            // Something changed that the tag lists do not show: the checks query
            // pins most such changes; what it cannot, the owed re-read finds.
            self.full_owed = true;
        }
        self.catalog = catalog;
        dirty
    }

    /// Applies a checks answer with index `index`; returns the services to read
    /// again: those with a check modified after the previous answer, or removed,
    /// and for a changed node-level check the services with checks on its node.
    fn checks_changed(&mut self, checks: Checks, index: Option<u64>) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        let mut nodes = BTreeSet::new();
        match (self.checks_index, index) {
            (Some(prev), Some(now)) if now >= prev => {
                let changed = checks
                    .iter()
                    .filter(|(_, (_, modified))| *modified > prev)
                    .chain(self.checks.iter().filter(|(k, _)| !checks.contains_key(*k)));
                for ((node, _), (service, _)) in changed {
                    if service.is_empty() {
                        nodes.insert(node.clone());
                    } else {
                        dirty.insert(service.clone());
                    }
                }
            }
            // First answer after a failure, or the index went backwards: nothing
            // to compare with.
            _ => self.full_now = true,
        }
        if !nodes.is_empty() {
            self.full_owed = true;
            for ((node, _), (service, _)) in self.checks.iter().chain(checks.iter()) {
                if !service.is_empty() && nodes.contains(node) {
                    dirty.insert(service.clone());
                }
            }
        }
        self.checks = checks;
        self.checks_index = index;
        dirty
    }

    /// Reads `dirty` services again and returns the events; services whose read
    /// fails are kept for a retry.
    async fn refresh(&mut self, dirty: BTreeSet<String>) -> Vec<WatchEvent> {
        let (listed, gone): (Vec<String>, Vec<String>) = dirty
            .into_iter()
            .partition(|name| self.catalog.contains_key(name));
        let mut answers = read_many(&self.client, listed).await;
        answers.extend(gone.into_iter().map(|name| (name, Ok(Vec::new()))));
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut events = Vec::new();
        let mut failed = false;
        for (name, res) in answers {
            let new = match res {
                Ok(inst) => snapshot(inst),
                Err(e) => {
                    failed = true;
                    log_failure(&name, self.retry_failures + 1, &e);
                    self.retry.insert(name);
                    continue;
                }
            };
            let old = self.snaps.remove(&name).unwrap_or_default();
            events.extend(diff(&old, &new));
            if !new.is_empty() || self.catalog.contains_key(&name) {
                self.snaps.insert(name, new);
            }
        }
        self.retry_failures = if failed {
            self.retry_failures.saturating_add(1)
        } else {
            0
        };
        events
    }
}

/// One paced blocking query; hands the stream state back with the answer.
async fn poll(
    client: Arc<Client>,
    mut st: Blocking,
    path: &'static [&'static str],
) -> (Blocking, Result<Reply, Error>) {
    st.pace().await;
    let res = st.get(&client, path).await;
    (st, res)
}

/// Reads `names`, at most [`PARALLEL_READS`] at once; answers in completion
/// order. The reads stop when the returned future is dropped.
async fn read_many(
    client: &Arc<Client>,
    names: Vec<String>,
) -> Vec<(String, Result<Vec<Instance>, Error>)> {
    let mut out = Vec::with_capacity(names.len());
    let mut names = names.into_iter();
    let mut reads = JoinSet::new();
    let mut running = HashMap::new();
    loop {
        while reads.len() < PARALLEL_READS {
            let Some(name) = names.next() else { break };
            let (client, key) = (client.clone(), name.clone());
            let id = reads
                .spawn(async move { read(&client, &key, Query::read(false)).await })
                .id();
            running.insert(id, name);
        }
        let Some(done) = reads.join_next_with_id().await else {
            return out;
        };
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(name) = running.remove(&id) else {
            continue;
        };
        let res = match done {
            Ok((_, res)) => res.map(|(_, inst)| inst),
            // Only a panic ends a read task early; the name is retried.
            Err(e) => Err(Error::Connection {
                url: format!("/v1/health/service/{name}"),
                reason: format!("service read task failed: {e}"),
                connecting: false,
                timed_out: false,
            }),
        };
        out.push((name, res));
    }
}

/// When the next owed full re-read may start, one that started at `started`
/// having just ended: `interval` after its start, and nine times its duration
/// after its end.
fn next_full_after(started: Instant, interval: Duration) -> Instant {
    let now = Instant::now();
    (started + interval).max(now + now.duration_since(started) * (FULL_READ_SHARE - 1))
}

/// What woke the watch up.
enum Woke {
    Catalog(Blocking, Result<Reply, Error>),
    Checks(Blocking, Result<Reply, Error>),
    Retry,
    Full,
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Retry delay for failed service reads: 100 ms doubling up to 10 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.saturating_sub(1).min(7))
        .min(Duration::from_secs(10))
}

fn parse_catalog(reply: &Reply) -> Result<Catalog, Error> {
    let raw: Option<BTreeMap<String, Option<Vec<String>>>> = reply.json()?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default().into_iter().collect()))
        .collect())
}

fn parse_checks(reply: &Reply) -> Result<Checks, Error> {
    let raw: Option<Vec<HealthCheck>> = reply.json()?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                (c.node.unwrap_or_default(), c.check_id.unwrap_or_default()),
                (
                    c.service_name.unwrap_or_default(),
                    c.modify_index.unwrap_or_default(),
                ),
            )
        })
        .collect())
}
