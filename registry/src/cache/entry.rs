//! One cached service: what the registry last said, and the rules that turn lookups
//! and watch events into the node set callers get.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{CacheOptions, Snapshot, log_stale};
use crate::{Action, Error, Result, ServiceRecord, WatchEvent};

/// A point in time no entry reaches (a century).
const FAR: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// The cache's knowledge of one service name.
pub(super) struct Entry {
    /// The node set the registry last reported (may be empty).
    current: Snapshot,
    /// The last non-empty node set, served during the empty grace.
    last_good: Option<Snapshot>,
    /// Since when `current` has been empty although `last_good` exists.
    empty_since: Option<Instant>,
    /// The last lookup's error, while the registry is failing.
    error: Option<Error>,
    /// Until when the entry is served without asking the registry.
    pub(super) expires: Instant,
    /// Set when events may have been lost: only a lookup makes the entry fresh
    /// again, events alone no longer do.
    pub(super) needs_lookup: bool,
    /// When the name was last looked up, in the cache's clock (milliseconds from
    /// its epoch); written under the read lock, hence atomic.
    last_used: AtomicU64,
}

impl Entry {
    /// An entry with nothing in it yet, used at `clock`.
    pub(super) fn new(now: Instant, clock: u64) -> Self {
        Entry {
            current: Snapshot::default(),
            last_good: None,
            empty_since: None,
            error: None,
            expires: now,
            needs_lookup: false,
            last_used: AtomicU64::new(clock),
        }
    }

    /// Records a lookup of the name at `clock`.
    pub(super) fn touch(&self, clock: u64) {
        self.last_used.fetch_max(clock, Ordering::Relaxed);
    }

    /// When the name was last looked up.
    pub(super) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// What a caller gets now.
    pub(super) fn serve(&self, now: Instant, grace: Duration) -> Result<Snapshot> {
        if !self.current.is_empty() {
            return Ok(self.current.clone());
        }
        if let (Some(good), Some(since)) = (&self.last_good, self.empty_since) {
            if now.saturating_duration_since(since) < grace {
                return Ok(good.clone());
            }
        }
        match &self.error {
            Some(e) if self.last_good.is_none() => Err(e.clone()),
            _ => Err(Error::NotFound),
        }
    }

    /// Applies a registry lookup; returns whether the name should now be watched.
    pub(super) fn apply_lookup(
        &mut self,
        res: Result<Vec<ServiceRecord>>,
        now: Instant,
        opts: &CacheOptions,
        name: &str,
    ) -> bool {
        if !matches!(res, Err(ref e) if !e.is_not_found()) {
            self.needs_lookup = false;
        }
        match res {
            Ok(services) => {
                let services: Vec<ServiceRecord> = services
                    .into_iter()
                    .filter(|s| !s.nodes.is_empty())
                    .collect();
                self.error = None;
                if services.is_empty() {
                    self.set_current(Snapshot::default(), now);
                    self.expires = now + opts.not_found_ttl;
                    false
                } else {
                    self.set_current(Snapshot::new(services), now);
                    self.expires = now + opts.ttl;
                    true
                }
            }
            Err(Error::NotFound) => {
                self.error = None;
                self.set_current(Snapshot::default(), now);
                self.expires = now + opts.not_found_ttl;
                false
            }
            Err(e) => {
                if !self.current.is_empty() || self.last_good.is_some() {
                    log_stale(name, &e);
                }
                self.error = Some(e);
                self.expires = now + opts.min_retry_interval;
                false
            }
        }
    }

    /// Applies a watch event with go-micro's merge rules: create and update replace
    /// the event's version, keeping cached nodes the event does not mention; delete
    /// removes the event's nodes from its version. Returns false when the event was
    /// ignored (the cache holds no node set for the name to merge into).
    pub(super) fn apply_event(&mut self, ev: &WatchEvent, now: Instant, ttl: Duration) -> bool {
        if self.current.is_empty() {
            if ev.action != Action::Delete {
                // The service (re)appeared: a partial event is not a node set, so
                // let the next lookup read the whole of it.
                self.expires = now;
            }
            return false;
        }
        let mut services = self.current.to_vec();
        let pos = services
            .iter()
            .position(|s| s.version == ev.service.version);
        match ev.action {
            Action::Create | Action::Update => match pos {
                None => services.push(ev.service.clone()),
                Some(i) => {
                    let mut merged = ev.service.clone();
                    for old in &services[i].nodes {
                        if !merged.nodes.iter().any(|n| n.id == old.id) {
                            merged.nodes.push(old.clone());
                        }
                    }
                    services[i] = merged;
                }
            },
            Action::Delete => {
                if let Some(i) = pos {
                    services[i]
                        .nodes
                        .retain(|n| !ev.service.nodes.iter().any(|d| d.id == n.id));
                    if services[i].nodes.is_empty() {
                        services.remove(i);
                    }
                }
            }
        }
        self.set_current(Snapshot::new(services), now);
        self.expires = if self.current.is_empty() || self.needs_lookup {
            now
        } else {
            // a TTL too long for the clock: the entry never expires by age
            now.checked_add(ttl).unwrap_or_else(|| now + FAR)
        };
        true
    }

    /// Marks the entry as possibly incomplete: the next caller asks the registry.
    pub(super) fn invalidate(&mut self, now: Instant) {
        self.expires = now;
        self.needs_lookup = true;
    }

    fn set_current(&mut self, snapshot: Snapshot, now: Instant) {
        if snapshot.is_empty() {
            if !self.current.is_empty() {
                self.last_good = Some(self.current.clone());
            }
            if self.last_good.is_some() && self.empty_since.is_none() {
                self.empty_since = Some(now);
            }
        } else {
            self.last_good = None;
            self.empty_since = None;
        }
        self.current = snapshot;
    }
}
