//! The retry rule and go-micro's backoff.

use std::time::Duration;

use super::error::CallErrorKind;

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

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Return the error.
    Fail,
    /// Try another node at once: the request was not sent, so no server did any
    /// work and there is nothing to back off from.
    RetryNow,
    /// Try another node after go-micro's backoff: the request was sent and may have
    /// run (timeout, connection lost).
    RetryAfterBackoff,
}

/// The retry rule (see [`CallErrorKind`]): an answer is final; a request that was
/// not sent is always tried again; a request sent but not answered is tried again
/// when the call is `retryable`.
pub(crate) fn verdict(kind: CallErrorKind, retryable: bool) -> Verdict {
    use CallErrorKind as K;
    match kind {
        K::Connect | K::Send | K::Rejected => Verdict::RetryNow,
        K::Timeout | K::Receive if retryable => Verdict::RetryAfterBackoff,
        _ => Verdict::Fail,
    }
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

    #[test]
    fn answers_are_final_and_unsent_requests_always_retried() {
        use CallErrorKind as K;
        for k in [
            K::Remote,
            K::BadReply,
            K::Decode,
            K::NotFound,
            K::Encode,
            K::Other,
        ] {
            assert_eq!(verdict(k, true), Verdict::Fail, "{k:?}");
        }
        for k in [K::Connect, K::Send, K::Rejected] {
            assert_eq!(verdict(k, false), Verdict::RetryNow, "{k:?}");
        }
        for k in [K::Timeout, K::Receive] {
            assert_eq!(verdict(k, true), Verdict::RetryAfterBackoff, "{k:?}");
            assert_eq!(verdict(k, false), Verdict::Fail, "{k:?}");
        }
    }
}
