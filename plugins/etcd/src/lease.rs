//! Shared leases: every key a registry registered with one TTL sits on one lease
//! (up to [`MAX_KEYS_PER_LEASE`] keys; more open another), renewed by one keeper
//! over one keepalive stream. A process with a thousand nodes therefore sends one
//! renewal per third of the TTL, not a thousand, and checks that its keys still
//! exist with one `LeaseTimeToLive` request (keys included) instead of a read per
//! key (a lease of a few keys checks each with a read, see [`DIRECT_CHECK_MAX`]).
//!
//! A [`Group`] owns the lease and the set of keys written on it with their
//! values, so that when etcd says the lease is gone (expired during an outage,
//! revoked by hand, etcd restarted without its data) a new lease is granted and
//! every key written on it again at once, in transactions of
//! [`WRITE_BATCH`](crate::conn::WRITE_BATCH) puts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use micro_registry::{Error, Result};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::{Conn, lease_not_found};
use crate::keepalive;

/// The most keys one lease holds. Bounds the answer of a key check (about 60
/// bytes per key) well below gRPC's 4 MiB default, and what one lost lease takes
/// down with it.
pub(crate) const MAX_KEYS_PER_LEASE: usize = 8192;

/// How long the answer of a key check serves later `register` calls of the same
/// lease. Whatever the number of keys, a lease is checked at most once per
/// this period; a key deleted behind the registry's back is written again by the
/// first `register` of it after the check that saw it missing.
pub(crate) const CHECK_REUSE: Duration = Duration::from_secs(1);

/// Up to this many keys on a lease, a `register` of an unchanged record checks
/// its own key with one serializable read (any member answers; a process with
/// one node, the usual case, makes one read per interval as before). Above it,
/// the lease's key list serves every key: `LeaseTimeToLive` is answered by the
/// leader, but once per [`CHECK_REUSE`] instead of once per key.
pub(crate) const DIRECT_CHECK_MAX: usize = 4;

/// A lease as the keeper sees it: id 0 means "none".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) id: i64,
    /// Seconds, as granted by etcd.
    pub(crate) ttl: i64,
}

/// What a keeper's repair did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// A new lease was granted and the keys written on it.
    Done,
    /// The group already moved to another lease.
    Superseded,
    /// The group holds no key any more: nothing to renew.
    Empty,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) active_streams: AtomicUsize,
    pub(crate) opened_streams: AtomicU64,
    pub(crate) regrants: AtomicU64,
    pub(crate) key_checks: AtomicU64,
}

/// One shared lease and the keys on it.
pub(crate) struct Group {
    /// The TTL asked for, in seconds.
    pub(crate) ttl: i64,
    state: tokio::sync::Mutex<GroupState>,
    /// `state.members.len()`, readable without the lock (placement).
    count: AtomicUsize,
    /// Some keys may be missing on the current lease (a rewrite failed): the
    /// keeper writes them after its next renewal.
    pending: AtomicBool,
    /// `!state.orphans.is_empty()`, readable without the lock.
    orphaned: AtomicBool,
    /// The keeper's view of the current lease.
    lease_tx: watch::Sender<Lease>,
    keeper: Mutex<Option<JoinHandle<()>>>,
    /// The last key check; the lock makes concurrent callers share one request.
    check: tokio::sync::Mutex<Option<Check>>,
}

struct GroupState {
    lease: Lease,
    /// Keys written on `lease`, with the value written.
    members: HashMap<String, Arc<[u8]>>,
    /// Keys deregistered whose delete failed: on a shared lease they would live
    /// as long as the process, so the keeper deletes them once etcd answers.
    orphans: HashSet<String>,
}

struct Check {
    lease: i64,
    /// When the request was sent (the answer may be older than it looks).
    at: Instant,
    keys: HashSet<Vec<u8>>,
}

impl Group {
    pub(crate) fn new(ttl: i64) -> Arc<Self> {
        Arc::new(Group {
            ttl,
            state: tokio::sync::Mutex::new(GroupState {
                lease: Lease::default(),
                members: HashMap::new(),
                orphans: HashSet::new(),
            }),
            count: AtomicUsize::new(0),
            pending: AtomicBool::new(false),
            orphaned: AtomicBool::new(false),
            lease_tx: watch::Sender::new(Lease::default()),
            keeper: Mutex::new(None),
            check: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether another key fits (approximate under concurrent registration).
    pub(crate) fn has_room(&self) -> bool {
        self.count.load(Ordering::Relaxed) < MAX_KEYS_PER_LEASE
    }

    /// Makes etcd hold `value` at `key` on this group's lease. A key already
    /// written with this value costs no write when the lease's last key check
    /// (at most [`CHECK_REUSE`] old, or made now) lists it.
    pub(crate) async fn hold(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        key: &str,
        value: &Arc<[u8]>,
        stats: &Arc<Stats>,
    ) -> Result<()> {
        for _ in 0..4 {
            let (lease, held, few) = {
                let mut st = self.state.lock().await;
                if st.orphans.remove(key) {
                    self.orphaned
                        .store(!st.orphans.is_empty(), Ordering::Release);
                }
                let lease = self.current(conn, &mut st, stats).await?;
                let held = st.members.get(key).is_some_and(|v| **v == **value);
                let few = st.members.len() <= DIRECT_CHECK_MAX;
                (lease, held && !self.pending.load(Ordering::Acquire), few)
            };
            // Renewing again after `shutdown` stopped the keeper.
            self.start_keeper(conn, stats);
            if held {
                let there = if few {
                    direct(conn, key, value, lease.id).await?
                } else {
                    self.attached(conn, lease.id, key, stats).await?
                };
                if there {
                    return Ok(());
                }
            }
            match conn.put("register", key, value, lease.id).await {
                Err(e) if lease_not_found(&e) => {
                    tracing::info!(
                        key,
                        lease = lease.id,
                        "etcd registry: lease lost; granting a new one"
                    );
                    self.relocate(conn, lease, stats).await?;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    let mut st = self.state.lock().await;
                    if st.lease.id != lease.id {
                        // The lease was replaced while we wrote: write on the new one.
                        continue;
                    }
                    if held {
                        tracing::info!(
                            key,
                            "etcd registry: record missing from its lease; written again"
                        );
                    }
                    if st.members.insert(key.to_owned(), value.clone()).is_none() {
                        self.count.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(st);
                    if let Some(c) = self.check.lock().await.as_mut() {
                        if c.lease == lease.id {
                            c.keys.insert(key.as_bytes().to_vec());
                        }
                    }
                    return Ok(());
                }
            }
        }
        Err(Error::Invalid(format!(
            "{key}: the lease keeps being replaced while registering"
        )))
    }

    /// Takes `key` off this group (deregistered, or moved to another TTL). When
    /// `delete_failed`, the key is still in etcd on this lease: the keeper deletes
    /// it later. The last key out revokes the lease and stops the keeper.
    pub(crate) async fn forget(&self, conn: &Conn, key: &str, delete_failed: bool) {
        let mut st = self.state.lock().await;
        if st.members.remove(key).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        if delete_failed && st.lease.id != 0 {
            st.orphans.insert(key.to_owned());
            self.orphaned.store(true, Ordering::Release);
        }
        if !st.members.is_empty() || st.lease.id == 0 {
            return;
        }
        let old = std::mem::take(&mut st.lease);
        self.lease_tx.send_replace(Lease::default());
        self.pending.store(false, Ordering::Release);
        let orphans = std::mem::take(&mut st.orphans);
        self.orphaned.store(false, Ordering::Release);
        self.stop_keeper().await;
        // Revoking deletes whatever is still attached (orphans included) and ends
        // the lease at once instead of letting it run out. A failure is harmless:
        // nothing renews it any more, so it expires by itself.
        if let Err(e) = conn.revoke("deregister", old.id).await {
            if !lease_not_found(&e) {
                tracing::debug!(lease = old.id, orphans = orphans.len(), error = %e, "etcd registry: lease revoke failed; it will expire");
            }
        }
    }

    /// The current lease, granted (and its keeper started) when there is none.
    /// A group without a lease holds no key (`forget` and `relocate` drop the
    /// lease only when the last key is gone), so there is nothing to rewrite.
    async fn current(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        st: &mut GroupState,
        stats: &Arc<Stats>,
    ) -> Result<Lease> {
        if st.lease.id == 0 {
            st.lease = grant(conn, self.ttl, stats).await?;
            self.lease_tx.send_replace(st.lease);
            self.start_keeper(conn, stats);
        }
        Ok(st.lease)
    }

    /// Whether the lease's keys (checked at most [`CHECK_REUSE`] ago, or now)
    /// include `key`. A lease etcd does not know holds nothing.
    async fn attached(&self, conn: &Conn, lease: i64, key: &str, stats: &Stats) -> Result<bool> {
        let mut check = self.check.lock().await;
        let fresh = check
            .as_ref()
            .is_some_and(|c| c.lease == lease && c.at.elapsed() < CHECK_REUSE);
        if !fresh {
            let at = Instant::now();
            stats.key_checks.fetch_add(1, Ordering::Relaxed);
            match conn.lease_keys("register", lease).await? {
                None => {
                    *check = None;
                    return Ok(false);
                }
                Some(keys) => *check = Some(Check { lease, at, keys }),
            }
        }
        Ok(check
            .as_ref()
            .is_some_and(|c| c.keys.contains(key.as_bytes())))
    }

    /// Called when etcd says `lost` is gone: grants a new lease and writes every
    /// key on it, unless someone already did. On a failed grant the group keeps
    /// `lost`, so the next attempt tries again.
    pub(crate) async fn relocate(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        lost: Lease,
        stats: &Arc<Stats>,
    ) -> Result<Repair> {
        let mut st = self.state.lock().await;
        if st.lease.id != lost.id {
            return Ok(Repair::Superseded);
        }
        st.orphans.clear(); // they went with the lease
        self.orphaned.store(false, Ordering::Release);
        if st.members.is_empty() {
            st.lease = Lease::default();
            self.lease_tx.send_replace(Lease::default());
            return Ok(Repair::Empty);
        }
        let lease = grant(conn, self.ttl, stats).await?;
        st.lease = lease;
        self.lease_tx.send_replace(lease);
        tracing::warn!(
            old = lost.id,
            new = lease.id,
            keys = st.members.len(),
            "etcd registry: lease lost; keys written again on a new one"
        );
        self.rewrite(conn, &mut st).await;
        Ok(Repair::Done)
    }

    /// Writes every member on the current lease; on failure leaves the group
    /// pending for the keeper.
    async fn rewrite(&self, conn: &Conn, st: &mut GroupState) {
        let kvs: Vec<(String, Arc<[u8]>)> = st
            .members
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let res = conn.put_all("register", &kvs, st.lease.id).await;
        if let Err(e) = &res {
            tracing::warn!(lease = st.lease.id, error = %e, "etcd registry: writing keys on the lease failed; retrying after the next renewal");
        }
        self.pending.store(res.is_err(), Ordering::Release);
    }

    /// The keeper's work after a renewal: keys a failed rewrite left out, and
    /// deregistered keys whose delete failed.
    pub(crate) async fn tidy(&self, conn: &Conn) {
        let mut st = self.state.lock().await;
        if self.pending.load(Ordering::Acquire) && st.lease.id != 0 {
            self.rewrite(conn, &mut st).await;
        }
        let lease = st.lease.id;
        let orphans: Vec<String> = st.orphans.iter().cloned().collect();
        for key in orphans {
            if conn
                .delete_on_lease("deregister", &key, lease)
                .await
                .is_err()
            {
                break;
            }
            st.orphans.remove(&key);
        }
        self.orphaned
            .store(!st.orphans.is_empty(), Ordering::Release);
    }

    /// Whether `tidy` has anything to do (cheap, for the keeper's loop).
    pub(crate) fn untidy(&self) -> bool {
        self.pending.load(Ordering::Acquire) || self.orphaned.load(Ordering::Acquire)
    }

    fn start_keeper(self: &Arc<Self>, conn: &Arc<Conn>, stats: &Arc<Stats>) {
        let mut k = self.keeper.lock();
        if k.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        *k = Some(tokio::spawn(keepalive::run(
            conn.clone(),
            Arc::downgrade(self),
            self.lease_tx.subscribe(),
            stats.clone(),
        )));
    }

    /// Stops the keeper and waits for it.
    pub(crate) async fn stop_keeper(&self) {
        let handle = self.keeper.lock().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }

    /// Aborts the keeper without waiting (for drop).
    pub(crate) fn abort_keeper(&self) {
        if let Some(h) = self.keeper.lock().take() {
            h.abort();
        }
    }
}

/// The keeper's handle on its group: weak, so a forgotten keeper cannot keep a
/// lease alive.
pub(crate) type GroupRef = Weak<Group>;

/// Whether etcd holds `value` at `key` on `lease`, by one serializable read.
async fn direct(conn: &Conn, key: &str, value: &[u8], lease: i64) -> Result<bool> {
    let resp = conn.get("register", key, false).await?;
    Ok(resp
        .kvs()
        .first()
        .is_some_and(|kv| kv.value() == value && kv.lease() == lease))
}

async fn grant(conn: &Conn, secs: i64, stats: &Stats) -> Result<Lease> {
    let (id, ttl) = conn.grant("register", secs).await?;
    stats.regrants.fetch_add(1, Ordering::Relaxed);
    Ok(Lease { id, ttl })
}
