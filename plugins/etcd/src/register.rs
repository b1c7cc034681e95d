//! Registrations: what this process registered, node by node, and the work of
//! making etcd hold exactly that.
//!
//! Each registered node has a [`Slot`]: the value it should have, its TTL and,
//! when it has a TTL, the shared lease [`Group`] it sits on (see
//! [`crate::lease`]). Writes for one node are serialised by the slot's lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use micro_registry::{Error, Result};
use parking_lot::Mutex;

use crate::conn::Conn;
use crate::lease::{Group, Stats};

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

/// Every node this registry registered and has not deregistered, and the
/// leases they share.
#[derive(Default)]
pub(crate) struct Registrations {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    groups: Mutex<Vec<Arc<Group>>>,
    pub(crate) stats: Arc<Stats>,
}

pub(crate) struct Slot {
    state: tokio::sync::Mutex<State>,
    /// Set (under the registrations lock) when deregistered.
    removed: AtomicBool,
}

struct State {
    value: Arc<[u8]>,
    ttl: Option<i64>,
    /// The lease group holding the key (when it has a TTL).
    group: Option<Arc<Group>>,
    /// Whether the last write succeeded, so etcd should hold `value`.
    written: bool,
}

impl Registrations {
    /// Makes etcd hold `value` at `key`, on a lease of `ttl` seconds shared with
    /// this registry's other keys of that TTL.
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
            let value: Arc<[u8]> = if *st.value == *value {
                st.value.clone()
            } else {
                value.into()
            };
            let unchanged = st.written && st.ttl.is_none() && *st.value == *value;
            st.written = false;
            let old = st.group.take();
            let group = match ttl {
                None => {
                    if let Err(e) = plain(conn, key, &value, unchanged).await {
                        st.group = old;
                        return Err(e);
                    }
                    None
                }
                Some(secs) => {
                    let group = match &old {
                        Some(g) if g.ttl == secs => g.clone(),
                        _ => self.group_for(secs),
                    };
                    if let Err(e) = group.hold(conn, key, &value, &self.stats).await {
                        st.group = old;
                        return Err(e);
                    }
                    Some(group)
                }
            };
            if let Some(o) = old.filter(|o| !group.as_ref().is_some_and(|g| Arc::ptr_eq(o, g))) {
                // The key moved to another lease (or to none): the old one lets go.
                o.forget(conn, key, false).await;
            }
            st.group = group;
            st.value = value;
            st.ttl = ttl;
            st.written = true;
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{key}: registration keeps being removed concurrently"
        )))
    }

    /// Forgets `key` and deletes the record; the last key of a lease revokes it.
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
        // Under the slot's lock, so a registration in flight finishes first and
        // its write cannot land after the delete.
        let mut st = slot.state.lock().await;
        let deleted = conn.delete("deregister", key).await.map(drop);
        if let Some(g) = st.group.take() {
            g.forget(conn, key, deleted.is_err()).await;
        }
        deleted
    }

    /// Stops every keeper and waits for them (records stay until their leases end).
    pub(crate) async fn shutdown(&self) {
        let groups: Vec<Arc<Group>> = self.groups.lock().clone();
        for g in groups {
            g.stop_keeper().await;
        }
    }

    /// Aborts every keeper without waiting (for drop).
    pub(crate) fn abort_all(&self) {
        for g in self.groups.lock().iter() {
            g.abort_keeper();
        }
    }

    /// A group of this TTL with room for another key.
    fn group_for(&self, secs: i64) -> Arc<Group> {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.iter().find(|g| g.ttl == secs && g.has_room()) {
            return g.clone();
        }
        let g = Group::new(secs);
        groups.push(g.clone());
        g
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    state: tokio::sync::Mutex::new(State {
                        value: Arc::from(Vec::new()),
                        ttl: None,
                        group: None,
                        written: false,
                    }),
                    removed: AtomicBool::new(false),
                })
            })
            .clone()
    }
}

/// A record without a lease: one serializable read when it should already be
/// there, a write when it is missing, differs, or sits on a lease.
async fn plain(conn: &Conn, key: &str, value: &[u8], written: bool) -> Result<()> {
    if written {
        let resp = conn.get("register", key, false).await?;
        match resp.kvs().first() {
            Some(kv) if kv.value() == value && kv.lease() == 0 => return Ok(()),
            Some(kv) => {
                tracing::info!(
                    key,
                    lease = kv.lease(),
                    "etcd registry: record changed behind our back; writing it again"
                );
            }
            None => tracing::info!(key, "etcd registry: record missing; writing it again"),
        }
    }
    conn.put("register", key, value, 0).await
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
