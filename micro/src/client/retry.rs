//! Backoff and retry policies.

use std::sync::Arc;
use std::time::Duration;

use crate::RpcError;
use crate::wire::CLIENT_TRANSPORT_ID;

/// go-micro's backoff: `floor(n^e) × 100 ms` for attempt `n` up to 13, then 2 min.
/// 0 → 0, 1 → 100 ms, 2 → 600 ms, 3 → 1.9 s, 4 → 4.3 s, 5 → 7.9 s, ...
pub fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        return Duration::ZERO;
    }
    if attempt > 13 {
        return Duration::from_secs(120);
    }
    let steps = (attempt as f64).powf(std::f64::consts::E).floor() as u64;
    Duration::from_millis(steps * 100)
}

/// Decides whether a failed attempt is retried: gets the error and the number of
/// the attempt that failed (0 for the first).
pub type RetryPolicy = Arc<dyn Fn(&RpcError, u32) -> bool + Send + Sync>;

/// Whether `err` is a transport failure of the client: connecting, sending or
/// receiving failed (id `go.micro.client.transport`). Such a failure says the node
/// is unusable; an application error does not.
pub fn is_transport_error(err: &RpcError) -> bool {
    err.id == CLIENT_TRANSPORT_ID
}

/// The default policy: retry transport failures and timeouts (408).
///
/// go-micro v4 retries 408 and 500, v5 only 408; both treat a refused connection as
/// a 500. Retrying every 500 would repeat calls whose handler failed; retrying only
/// 408 would give up on a dead node. This policy retries exactly what says nothing
/// about the request itself: the node could not be reached or did not answer in time.
/// Note that a request whose connection broke after it was sent may have run: retries
/// give at-least-once, not exactly-once, delivery.
pub fn retry_on_transport_and_timeout() -> RetryPolicy {
    Arc::new(|err: &RpcError, _| is_transport_error(err) || err.code == 408)
}

/// Retries every failure.
pub fn retry_always() -> RetryPolicy {
    Arc::new(|_: &RpcError, _| true)
}

/// Never retries.
pub fn retry_never() -> RetryPolicy {
    Arc::new(|_: &RpcError, _| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_go_micro() {
        // go-micro's TestBackoff values, and the rest of its table.
        let ms: Vec<u128> = (0..=14).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            ms,
            [
                0, 100, 600, 1900, 4300, 7900, 13000, 19800, 28500, 39200, 52200, 67700, 85800,
                106600, 120000
            ]
        );
    }
}
