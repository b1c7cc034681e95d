//! The cache's watch task: one per watched service, applying events to the entry.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use crate::{Error, Registry, WatchOptions};

/// Longest pause between two attempts to (re)start a failed watch.
/// The pause before re-establishing a failed watch: 100 ms doubling to 10 s.
const WATCH_BACKOFF: micro_util::Backoff =
    micro_util::Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

/// Watches `name` until the cache goes away, restarting the watch after failures
/// with jittered exponential backoff (100 ms doubling up to 10 s). Each time a watch
/// is established the service is read once more in the background, so a change made
/// before the watch ran is not missed; a lag invalidates the entry, so the next
/// lookup asks the registry.
pub(super) async fn run(cache: Weak<Inner>, registry: Arc<dyn Registry>, name: String) {
    let mut failures: u32 = 0;
    loop {
        // Spread the watches of many caches over time, as go-micro does.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..100))).await;
        match registry.watch(&WatchOptions::service(&name)).await {
            Ok(mut watcher) => {
                // Changes made before the watch was running (between the lookup that
                // started it and now, or while a failed watch was down) produced no
                // event: read the service once more, now that none can be missed.
                let res = registry.get_service(&name).await;
                {
                    let Some(inner) = cache.upgrade() else { return };
                    let now = Instant::now();
                    let mut entries = inner.entries.write();
                    if let Some(e) = entries.get_mut(&name) {
                        e.apply_lookup(res, now, &inner.opts, &name);
                    }
                }
                loop {
                    match watcher.next().await {
                        Ok(ev) => {
                            failures = 0;
                            let Some(inner) = cache.upgrade() else { return };
                            let now = Instant::now();
                            let mut entries = inner.entries.write();
                            if let Some(e) = entries.get_mut(&name) {
                                e.apply_event(&ev, now, inner.opts.ttl);
                            }
                        }
                        Err(Error::Lagged { missed }) => {
                            tracing::debug!(service = %name, missed, "registry watch lagged; re-reading");
                            let Some(inner) = cache.upgrade() else { return };
                            inner.invalidate(&name);
                        }
                        Err(e) => {
                            tracing::debug!(service = %name, error = %e, "registry watch ended");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(service = %name, error = %e, "registry watch failed to start");
            }
        }
        if cache.strong_count() == 0 {
            return;
        }
        failures = failures.saturating_add(1);
        let backoff = WATCH_BACKOFF.delay(failures);
        tokio::time::sleep(backoff).await;
    }
}
