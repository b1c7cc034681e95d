//! Registrations: what this process registered, node by node, and the work of
//! making etcd hold exactly that.
//!
//! Each registered node has a [`Slot`]: the value it should have, its TTL, the lease
//! it is attached to, and (when it has a TTL) a keeper task that renews that lease
//! over one long-lived stream and re-creates the record when the lease is lost.
//! Writes for one node are serialised by the slot's lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use micro_registry::{Error, Result};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::{Conn, lease_not_found};
use crate::keepalive;

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
    /// A new lease was granted and the record written on it.
    Done,
    /// The node already moved to another lease (or lost its TTL).
    Superseded,
    /// The node was deregistered.
    Removed,
}

/// The keeper's handle on its slot: weak, so a forgotten keeper cannot keep a
/// deregistered node alive.
pub(crate) type SlotRef = Weak<Slot>;

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) active_streams: AtomicUsize,
    pub(crate) opened_streams: AtomicU64,
    pub(crate) regrants: AtomicU64,
}

/// The lease TTL to request for a registration TTL: whole seconds, rounded up so
/// a record never lives shorter than asked; `None` for no TTL (or a zero one).
/// etcd raises TTLs below its minimum (2 s with default settings) itself.
pub(crate) fn lease_seconds(ttl: Option<Duration>) -> Option<i64> {
    let ttl = ttl.filter(|t| !t.is_zero())?;
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    Some(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Every node this registry registered and has not deregistered.
#[derive(Default)]
pub(crate) struct Registrations {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    pub(crate) stats: Arc<Stats>,
}

pub(crate) struct Slot {
    pub(crate) key: String,
    state: tokio::sync::Mutex<State>,
    /// The keeper's view of the current lease.
    lease_tx: watch::Sender<Lease>,
    keeper: Mutex<Option<JoinHandle<()>>>,
    /// Set (under the registrations lock) when deregistered.
    removed: AtomicBool,
}

struct State {
    value: Vec<u8>,
    ttl: Option<i64>,
    lease: Lease,
    /// Whether the last write succeeded, so etcd should hold `value` on `lease`.
    written: bool,
}

impl Registrations {
    /// Makes etcd hold `value` at `key`, on a lease of `ttl` seconds.
    pub(crate) async fn register(
        &self,
        conn: &Arc<Conn>,
        key: &str,
        value: Vec<u8>,
        ttl: Option<i64>,
    ) -> Result<()> {
        // A slot deregistered while we waited for its lock is dead; take a fresh one.
        for _ in 0..8 {
            let slot = self.slot(key);
            let mut st = slot.state.lock().await;
            if slot.removed.load(Ordering::Acquire) {
                continue;
            }
            let res = slot.ensure(conn, &mut st, value, ttl, &self.stats).await;
            drop(st);
            if res.is_ok() {
                match ttl {
                    Some(_) => slot.start_keeper(conn, &self.stats),
                    None => slot.stop_keeper().await,
                }
            }
            return res;
        }
        Err(Error::Invalid(format!(
            "{key}: registration keeps being removed concurrently"
        )))
    }

    /// Forgets `key`, stops its keeper, deletes the record and revokes its lease.
    pub(crate) async fn deregister(&self, conn: &Conn, key: &str) -> Result<()> {
        let slot = {
            let mut slots = self.slots.lock();
            let slot = slots.remove(key);
            if let Some(s) = &slot {
                s.removed.store(true, Ordering::Release);
            }
            slot
        };
        let Some(slot) = slot else {
            // Not ours (or already gone): delete whatever is there, as go-micro does.
            return conn.delete("deregister", key).await.map(drop);
        };
        slot.stop_keeper().await;
        let st = slot.state.lock().await;
        let deleted = conn.delete("deregister", key).await;
        if st.lease.id != 0 {
            // The lease held only this record; revoking it ends it at once instead
            // of letting it run out. A failure is harmless: it expires by itself.
            if let Err(e) = conn.revoke("deregister", st.lease.id).await {
                if !lease_not_found(&e) {
                    tracing::debug!(key, lease = st.lease.id, error = %e, "etcd registry: lease revoke failed; it will expire");
                }
            }
        }
        deleted.map(drop)
    }

    /// Stops every keeper and waits for them (records stay until their leases end).
    pub(crate) async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> = self.slots.lock().values().cloned().collect();
        for s in slots {
            s.stop_keeper().await;
        }
    }

    /// Aborts every keeper without waiting (for drop).
    pub(crate) fn abort_all(&self) {
        for s in self.slots.lock().values() {
            if let Some(h) = s.keeper.lock().take() {
                h.abort();
            }
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    key: key.to_owned(),
                    state: tokio::sync::Mutex::new(State {
                        value: Vec::new(),
                        ttl: None,
                        lease: Lease::default(),
                        written: false,
                    }),
                    lease_tx: watch::Sender::new(Lease::default()),
                    keeper: Mutex::new(None),
                    removed: AtomicBool::new(false),
                })
            })
            .clone()
    }
}

impl Slot {
    /// Checks etcd with one serializable read when the record should already be
    /// there; writes it when it is missing, differs, or sits on another lease.
    async fn ensure(
        &self,
        conn: &Conn,
        st: &mut State,
        value: Vec<u8>,
        ttl: Option<i64>,
        stats: &Stats,
    ) -> Result<()> {
        if st.written && st.value == value && st.ttl == ttl {
            let resp = conn.get("register", &self.key, false).await?;
            match resp.kvs().first() {
                Some(kv) if kv.value() == value.as_slice() && kv.lease() == st.lease.id => {
                    return Ok(());
                }
                Some(kv) => {
                    tracing::info!(key = %self.key, lease = kv.lease(), "etcd registry: record changed behind our back; writing it again");
                }
                None => {
                    tracing::info!(key = %self.key, "etcd registry: record missing; writing it again");
                }
            }
        }
        self.write(conn, st, value, ttl, false, stats).await
    }

    /// Writes the record, reusing the current lease when the TTL is unchanged (and
    /// `fresh_lease` is false) and granting a new one when there is none or etcd
    /// no longer knows it.
    async fn write(
        &self,
        conn: &Conn,
        st: &mut State,
        value: Vec<u8>,
        ttl: Option<i64>,
        fresh_lease: bool,
        stats: &Stats,
    ) -> Result<()> {
        st.written = false;
        let old = st.lease;
        let lease = match ttl {
            None => {
                conn.put("register", &self.key, &value, 0).await?;
                Lease::default()
            }
            Some(secs) => {
                let reuse = !fresh_lease && old.id != 0 && st.ttl == ttl;
                let mut lease = if reuse {
                    old
                } else {
                    grant(conn, secs, stats).await?
                };
                match conn.put("register", &self.key, &value, lease.id).await {
                    Err(e) if reuse && lease_not_found(&e) => {
                        tracing::info!(key = %self.key, lease = old.id, "etcd registry: lease lost; granting a new one");
                        lease = grant(conn, secs, stats).await?;
                        conn.put("register", &self.key, &value, lease.id).await?;
                    }
                    res => res?,
                }
                lease
            }
        };
        st.value = value;
        st.ttl = ttl;
        st.lease = lease;
        st.written = true;
        self.lease_tx.send_replace(lease);
        if old.id != 0 && old.id != lease.id {
            // The record moved to another lease; the old one holds nothing now.
            if let Err(e) = conn.revoke("register", old.id).await {
                tracing::debug!(key = %self.key, lease = old.id, error = %e, "etcd registry: old lease not revoked; it will expire");
            }
        }
        Ok(())
    }

    /// Called by the keeper when etcd says `lost` is gone: grants a new lease and
    /// writes the record again, unless a register call already did. On failure
    /// the slot keeps `lost`, so the keeper tries again.
    pub(crate) async fn repair(&self, conn: &Conn, lost: Lease, stats: &Stats) -> Result<Repair> {
        let mut st = self.state.lock().await;
        if self.removed.load(Ordering::Acquire) {
            return Ok(Repair::Removed);
        }
        if st.lease.id != lost.id {
            return Ok(Repair::Superseded);
        }
        let (value, ttl) = (st.value.clone(), st.ttl);
        if ttl.is_none() {
            return Ok(Repair::Superseded);
        }
        self.write(conn, &mut st, value, ttl, true, stats).await?;
        Ok(Repair::Done)
    }

    /// The keeper's current lease.
    pub(crate) fn lease_rx(&self) -> watch::Receiver<Lease> {
        self.lease_tx.subscribe()
    }

    fn start_keeper(self: &Arc<Self>, conn: &Arc<Conn>, stats: &Arc<Stats>) {
        let mut k = self.keeper.lock();
        if self.removed.load(Ordering::Acquire) || k.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        *k = Some(tokio::spawn(keepalive::run(
            conn.clone(),
            Arc::downgrade(self),
            self.lease_rx(),
            stats.clone(),
        )));
    }

    async fn stop_keeper(&self) {
        let handle = self.keeper.lock().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
    }
}

async fn grant(conn: &Conn, secs: i64, stats: &Stats) -> Result<Lease> {
    let (id, ttl) = conn.grant("register", secs).await?;
    stats.regrants.fetch_add(1, Ordering::Relaxed);
    Ok(Lease { id, ttl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(lease_seconds(None), None);
        assert_eq!(lease_seconds(Some(Duration::ZERO)), None);
        assert_eq!(lease_seconds(Some(Duration::from_millis(1))), Some(1));
        assert_eq!(lease_seconds(Some(Duration::from_millis(1500))), Some(2));
        assert_eq!(lease_seconds(Some(Duration::from_secs(90))), Some(90));
    }
}
