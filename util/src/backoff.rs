//! [`Backoff`]: the pause before retrying something that failed.

use std::time::Duration;

/// Exponential backoff with jitter: `start` after the first failure, doubling with
/// each further one up to `max`, and with jitter each pause is drawn between half
/// and all of that (so that many retriers do not move in step).
///
/// ```
/// use std::time::Duration;
/// use micro_util::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).without_jitter();
/// assert_eq!(b.delay(1), Duration::from_millis(100));
/// assert_eq!(b.delay(4), Duration::from_millis(800));
/// assert_eq!(b.delay(1000), Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    jitter: bool,
}

impl Backoff {
    /// From `start`, doubling up to `max`, with jitter.
    pub const fn new(start: Duration, max: Duration) -> Self {
        Backoff {
            start,
            max,
            jitter: true,
        }
    }

    /// Exact pauses (for tests, and for waits nothing else competes with).
    pub const fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The same backoff capped at `max` instead.
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// The pause after `failures` consecutive failures (0 counts as 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let full = self.start.saturating_mul(1u32 << exp).min(self.max);
        if self.jitter {
            full.mul_f64(0.5 + fastrand::f64() * 0.5)
        } else {
            full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        for n in 0..100 {
            let d = b.delay(n);
            let full = b.without_jitter().delay(n);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?} of {full:?}");
        }
        assert_eq!(b.without_jitter().delay(0), Duration::from_millis(200));
        assert_eq!(b.without_jitter().delay(2), Duration::from_millis(400));
        assert_eq!(b.without_jitter().delay(u32::MAX), Duration::from_secs(10));
        let huge = Backoff::new(Duration::MAX, Duration::MAX).without_jitter();
        assert_eq!(huge.delay(40), Duration::MAX);
    }
}
