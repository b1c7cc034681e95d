//! The keeper: one task per shared lease ([`Group`](crate::lease::Group)),
//! renewing it over one long-lived keepalive stream (a new stream only when the
//! lease changes or the stream breaks), re-creating every record on a new lease as
//! soon as etcd says the lease is gone, and after a renewal finishing what an
//! outage left undone (keys a rewrite missed, deletes that failed).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::conn::{Conn, etcd_lease_not_found, lease_not_found};
use crate::lease::{GroupRef, Lease, Repair, Stats};

/// Shortest pause between renewals and between retries.
const MIN_PERIOD: Duration = Duration::from_millis(200);
/// Longest pause between two retries while etcd is unreachable.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Why a keepalive stream ended.
enum End {
    /// The registry changed the lease: renew the new one.
    Changed,
    /// The slot is gone: stop.
    Closed,
    /// etcd says the lease does not exist.
    Lost,
    /// The stream failed or could not be opened; the lease may still exist.
    Broken(String),
}

/// Counts an open stream for as long as it lives.
struct Open<'a>(&'a Stats);

impl<'a> Open<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.active_streams.fetch_add(1, Ordering::Relaxed);
        stats.opened_streams.fetch_add(1, Ordering::Relaxed);
        Open(stats)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs until the group goes away or the task is aborted.
pub(crate) async fn run(
    conn: Arc<Conn>,
    group: GroupRef,
    mut lease_rx: watch::Receiver<Lease>,
    stats: Arc<Stats>,
) {
    let mut failures: u32 = 0;
    loop {
        let lease = *lease_rx.borrow_and_update();
        if lease.id == 0 {
            if lease_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        match keep(&conn, lease, &mut lease_rx, &group, &stats).await {
            End::Changed => failures = 0,
            End::Closed => return,
            End::Lost => {
                let Some(g) = group.upgrade() else { return };
                match g.relocate(&conn, lease, &stats).await {
                    Ok(Repair::Done) => failures = 0,
                    Ok(Repair::Superseded | Repair::Empty) => {
                        // Someone else's fix, or nothing left to renew: follow
                        // the current lease (wait while it is still the lost one).
                        drop(g);
                        if lease_rx.borrow().id == lease.id && lease_rx.changed().await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(lease = lease.id, error = %e, "etcd registry: re-registration on a new lease failed; retrying");
                        drop(g);
                        failures = failures.saturating_add(1);
                        if pause(&mut lease_rx, backoff(failures, lease))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            End::Broken(why) => {
                failures = failures.saturating_add(1);
                let log = failures == 1;
                if log {
                    tracing::warn!(lease = lease.id, error = %why, "etcd registry: keepalive interrupted; retrying");
                } else {
                    tracing::debug!(lease = lease.id, error = %why, failures, "etcd registry: keepalive still failing");
                }
                if pause(&mut lease_rx, backoff(failures, lease))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Waits `d`, or less if the lease changes. Errs when the slot is gone.
async fn pause(rx: &mut watch::Receiver<Lease>, d: Duration) -> Result<(), ()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        changed = rx.changed() => changed.map_err(drop),
    }
}

/// Jittered exponential backoff from 200 ms, at most a third of the TTL (and 2 s),
/// so a lease that survived an outage is renewed before it runs out.
fn backoff(failures: u32, lease: Lease) -> Duration {
    let cap = renew_period(lease).min(MAX_RETRY);
    micro_util::Backoff::new(MIN_PERIOD, cap)
        .delay(failures)
        .max(MIN_PERIOD / 2)
}

/// Renew every third of the granted TTL, like etcd's own clients.
/// The longest renewal period (a lease of years renews yearly: no overflow).
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

fn renew_period(lease: Lease) -> Duration {
    let ttl_ms = u64::try_from(lease.ttl.max(1))
        .unwrap_or(1)
        .saturating_mul(1000);
    Duration::from_millis(ttl_ms / 3).max(MIN_PERIOD)
}

/// Renews `lease` over one stream until something ends it.
async fn keep(
    conn: &Conn,
    lease: Lease,
    rx: &mut watch::Receiver<Lease>,
    group: &GroupRef,
    stats: &Stats,
) -> End {
    let (mut keeper, mut stream) = match conn.keep_alive(lease.id).await {
        Ok(s) => s,
        Err(e) if lease_not_found(&e) => return End::Lost,
        Err(e) => return End::Broken(e.to_string()),
    };
    let _open = Open::new(stats);
    let period = renew_period(lease);
    let mut tick = tokio::time::interval_at(
        Instant::now() + period.min(MAX_PERIOD),
        period.min(MAX_PERIOD),
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the oldest unanswered renewal was sent.
    let mut waiting: Option<Instant> = None;
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
                if rx.borrow_and_update().id != lease.id {
                    return End::Changed;
                }
            }
            _ = tick.tick() => {
                if waiting.is_some_and(|t| t.elapsed() > conn.timeout()) {
                    return End::Broken("no keepalive answer in time".into());
                }
                if let Err(e) = keeper.keep_alive().await {
                    return End::Broken(e.to_string());
                }
                waiting.get_or_insert_with(Instant::now);
            }
            msg = stream.message() => match msg {
                Ok(Some(r)) if r.ttl() <= 0 => return End::Lost,
                Ok(Some(_)) => {
                    waiting = None;
                    if let Some(g) = group.upgrade().filter(|g| g.untidy()) {
                        g.tidy(conn).await;
                    }
                }
                Ok(None) => return End::Broken("keepalive stream closed".into()),
                Err(e) if etcd_lease_not_found(&e) => return End::Lost,
                Err(e) => return End::Broken(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let l = Lease { id: 1, ttl: 3 };
        assert_eq!(renew_period(l), Duration::from_secs(1));
        assert_eq!(
            renew_period(Lease { id: 1, ttl: 90 }),
            Duration::from_secs(30)
        );
        for f in 1..20 {
            let b = backoff(f, l);
            assert!(b >= MIN_PERIOD / 2 && b <= Duration::from_secs(1), "{b:?}");
            assert!(backoff(f, Lease { id: 1, ttl: 90 }) <= MAX_RETRY);
        }
    }
}
