//! Retry delays after failures: exponential, capped, with jitter so that many accounts
//! failing together (RingCentral down) do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with "equal jitter": each delay is between half and all of
/// `min(max, base * 2^failures)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// Consecutive failures recorded since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.fail_with(&mut rand::rng())
    }

    /// As [`Backoff::fail`], with the caller's random source (for tests).
    pub fn fail_with(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        let extra_ms = u64::try_from(ceiling.saturating_sub(half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rng.random_range(0..=extra_ms))
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered_within_bounds() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        let mut rng = rand::rng();
        let d1 = b.fail_with(&mut rng);
        assert!(
            d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(10),
            "{d1:?}"
        );
        let d2 = b.fail_with(&mut rng);
        assert!(
            d2 >= Duration::from_secs(10) && d2 <= Duration::from_secs(20),
            "{d2:?}"
        );
        let d3 = b.fail_with(&mut rng);
        assert!(
            d3 >= Duration::from_secs(20) && d3 <= Duration::from_secs(40),
            "{d3:?}"
        );
        for _ in 0..29 {
            let d = b.fail_with(&mut rng);
            assert!(
                d >= Duration::from_secs(30) && d <= Duration::from_secs(60),
                "{d:?}"
            );
        }
        assert_eq!(b.failures(), 32);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(10));
    }

    #[test]
    fn jitter_spreads_retries() {
        let mut delays = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(600));
            delays.insert(b.fail());
        }
        assert!(
            delays.len() > 1,
            "20 accounts must not all retry at the same instant"
        );
    }
}
