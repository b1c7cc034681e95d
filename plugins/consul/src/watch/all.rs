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
//! twice, and a change after them has a later index that the next answer shows. A
//! catalog change the tag lists do not show (an instance added with the same tags,
//! a new port) and a change of a node-level check (such as `serfHealth`) cannot be
//! pinned to a service, so then every service is read again, as after a failed or
//! reset query. A service whose read fails is retried with backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use micro_registry::WatchEvent;
use tokio::sync::mpsc;

use super::service::{log_failure, read};
use super::{Blocking, Snapshot, deliver, diff, snapshot};
use crate::api::HealthCheck;
use crate::client::{Client, Query, Reply};
use crate::{ConsulOptions, Error};

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
        let mut snaps = BTreeMap::new();
        for name in catalog.keys() {
            let (_, inst) = read(&client, name, Query::read(false)).await?;
            snaps.insert(name.clone(), snapshot(inst));
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
                tokio::select! {
                    (st, res) = cq => Woke::Catalog(st, res),
                    (st, res) = hq => Woke::Checks(st, res),
                    _ = sleep_opt(retry_in) => Woke::Retry,
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
            }
            dirty.append(&mut self.retry);
            let events = tokio::select! {
                events = self.refresh(dirty) => events,
                _ = tx.closed() => return,
            };
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
            // Something changed that the tag lists do not show.
            dirty.extend(catalog.keys().cloned());
        }
        self.catalog = catalog;
        dirty
    }

    /// Applies a checks answer with index `index`; returns the services to read
    /// again: those with a check modified after the previous answer, or removed.
    fn checks_changed(&mut self, checks: Checks, index: Option<u64>) -> BTreeSet<String> {
        let mut dirty = BTreeSet::new();
        let mut all = false;
        match (self.checks_index, index) {
            (Some(prev), Some(now)) if now >= prev => {
                for (service, modified) in checks.values() {
                    if *modified > prev {
                        all |= service.is_empty();
                        dirty.insert(service.clone());
                    }
                }
                for (key, (service, _)) in &self.checks {
                    if !checks.contains_key(key) {
                        all |= service.is_empty();
                        dirty.insert(service.clone());
                    }
                }
            }
            // First answer after a failure, or the index went backwards: nothing
            // to compare with.
            _ => all = true,
        }
        dirty.remove("");
        if all {
            dirty.extend(self.catalog.keys().cloned());
        }
        self.checks = checks;
        self.checks_index = index;
        dirty
    }

    /// Reads `dirty` services again and returns the events; services whose read
    /// fails are kept for a retry.
    async fn refresh(&mut self, dirty: BTreeSet<String>) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        let mut failed = false;
        for name in dirty {
            let new = if self.catalog.contains_key(&name) {
                match read(&self.client, &name, Query::read(false)).await {
                    Ok((_, inst)) => snapshot(inst),
                    Err(e) => {
                        failed = true;
                        log_failure(&name, self.retry_failures + 1, &e);
                        self.retry.insert(name);
                        continue;
                    }
                }
            } else {
                Snapshot::default()
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

/// What woke the watch up.
enum Woke {
    Catalog(Blocking, Result<Reply, Error>),
    Checks(Blocking, Result<Reply, Error>),
    Retry,
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
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
