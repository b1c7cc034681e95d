//! The state of one stream of blocking queries: its index (handled as Consul's
//! documentation asks), its pace, its backoff after failures, and the connection
//! it owns.

use std::time::Duration;

use tokio::time::Instant;

use crate::Error;
use crate::client::{Client, Owned, Query, Reply};

/// First pause after a failed query.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest pause after failed queries.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One stream of blocking queries.
#[derive(Debug)]
pub(crate) struct Blocking {
    /// The index sent with the next query; 0 means "answer at once".
    index: u64,
    /// The index of the last answer.
    seen: Option<u64>,
    wait: Duration,
    min_interval: Duration,
    last_start: Option<Instant>,
    failures: u32,
    /// The stream's own connection (see [`Owned`]).
    conn: Owned,
}

impl Blocking {
    pub(crate) fn new(wait: Duration, min_interval: Duration) -> Blocking {
        Blocking {
            index: 0,
            seen: None,
            wait,
            min_interval,
            last_start: None,
            failures: 0,
            conn: Owned::default(),
        }
    }

    /// Sends the next query of the stream (`GET /v1/<path...>`, blocking once an
    /// index is known) on the stream's own connection. Record the outcome with
    /// [`answered`](Self::answered) or [`failed`](Self::failed).
    pub(crate) async fn get(&mut self, client: &Client, path: &[&str]) -> Result<Reply, Error> {
        let q = self.query(false);
        client.get_owned(&mut self.conn, path, q).await
    }

    /// Waits until the next query may start: at least `min_interval` after the
    /// previous start, and after the backoff when the last query failed.
    pub(crate) async fn pace(&mut self) {
        if let Some(last) = self.last_start {
            tokio::time::sleep_until(last + self.min_interval).await;
        }
        if self.failures > 0 {
            tokio::time::sleep(self.backoff()).await;
        }
        self.last_start = Some(Instant::now());
    }

    /// The query parameters: blocking on the index once one is known.
    pub(crate) fn query(&self, stale: bool) -> Query {
        Query {
            stale,
            dc: true,
            block: (self.index > 0).then_some((self.index, self.wait)),
        }
    }

    /// Records an answer's index; returns whether it differs from the last one
    /// (always true for the first answer).
    pub(crate) fn answered(&mut self, index: Option<u64>) -> bool {
        self.failures = 0;
        let idx = index.unwrap_or(0);
        let changed = self.seen != Some(idx);
        self.seen = Some(idx);
        self.index = if idx == 0 {
            // Consul should never answer 0, and 0 would never block: use 1, the
            // smallest index that does (as Consul's documentation asks).
            1
        } else if idx < self.index {
            // Went backwards (a restarted or different server): start over with a
            // non-blocking read, as Consul's documentation asks.
            0
        } else {
            idx
        };
        changed
    }

    /// Records a failure; returns how many in a row. The next query reads without
    /// blocking, and its answer counts as changed whatever its index (the server
    /// may have restarted and reached the same index with other data).
    pub(crate) fn failed(&mut self) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.index = 0;
        self.seen = None;
        self.failures
    }

    /// The pause before retrying: 100 ms doubling per failure up to 10 s, with
    /// jitter (between half and all of it).
    fn backoff(&self) -> Duration {
        micro_util::Backoff::new(BACKOFF_START, BACKOFF_MAX).delay(self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rules() {
        let mut b = Blocking::new(Duration::from_secs(1), Duration::ZERO);
        assert!(b.query(false).block.is_none());
        assert!(b.answered(Some(10)));
        assert_eq!(b.query(false).block, Some((10, Duration::from_secs(1))));
        assert!(!b.answered(Some(10)));
        // Backwards: reset to a non-blocking read, but not "changed" again when the
        // next answer carries the same index.
        assert!(b.answered(Some(5)));
        assert!(b.query(false).block.is_none());
        assert!(!b.answered(Some(5)));
        assert_eq!(b.query(false).block, Some((5, Duration::from_secs(1))));
        // Zero is never sent as a blocking index.
        let mut z = Blocking::new(Duration::from_secs(1), Duration::ZERO);
        z.answered(Some(0));
        assert_eq!(z.query(false).block, Some((1, Duration::from_secs(1))));
        z.answered(None);
        assert_eq!(z.query(false).block, Some((1, Duration::from_secs(1))));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Blocking::new(Duration::from_secs(1), Duration::ZERO);
        b.failed();
        let first = b.backoff();
        assert!(first >= Duration::from_millis(50) && first <= BACKOFF_START);
        for _ in 0..40 {
            b.failed();
        }
        let last = b.backoff();
        assert!(last >= BACKOFF_MAX / 2 && last <= BACKOFF_MAX);
        assert!(b.query(false).block.is_none());
        assert!(b.answered(Some(3)));
        assert_eq!(b.failures, 0);
        b.failed();
        assert!(
            b.answered(Some(3)),
            "the first answer after a failure counts as changed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pace_spaces_queries() {
        let mut b = Blocking::new(Duration::from_secs(1), Duration::from_millis(100));
        let t0 = Instant::now();
        b.pace().await;
        b.pace().await;
        b.pace().await;
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_millis(300));
    }
}
