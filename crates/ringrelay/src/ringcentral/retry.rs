//! Retry policy as data plus a pure function: which failures are retried (429, 5xx,
//! transport), how long to wait (exponential backoff with jitter, or `Retry-After`), and
//! when to give up. RingCentral recommends 2 s initial, ×2, capped at 60 s (API.md §7).

use std::time::Duration;

use super::error::ApiError;

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `attempts` failed ones, or `None` to give up.
    ///
    /// `jitter` is a number in `[0, 1)`: the backoff is `base/2 + base/2 × jitter`, where
    /// `base = initial × 2^(attempts-1)` capped at `max_delay`. A rate limit waits exactly
    /// its `retry_after` (waiting less would restart RingCentral's penalty).
    pub fn next_delay(&self, attempts: u32, error: &ApiError, jitter: f64) -> Option<Duration> {
        if attempts >= self.max_attempts || !error.is_retryable() {
            return None;
        }
        if let ApiError::RateLimited { retry_after, .. } = error {
            return Some(*retry_after);
        }
        let exp = attempts.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max_delay);
        let half = base / 2;
        Some(half + half.mul_f64(jitter.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ringcentral::governor::ApiGroup;

    fn server() -> ApiError {
        ApiError::Server {
            status: 503,
            code: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_from_the_initial_delay_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::default()
        };
        let full = |n| p.next_delay(n, &server(), 1.0).unwrap();
        assert_eq!(full(1), Duration::from_secs(2));
        assert_eq!(full(2), Duration::from_secs(4));
        assert_eq!(full(3), Duration::from_secs(8));
        assert_eq!(full(9), Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_the_delay_over_the_upper_half() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.next_delay(2, &server(), 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(2, &server(), 0.5),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn a_rate_limit_waits_exactly_retry_after() {
        let e = ApiError::RateLimited {
            group: ApiGroup::Heavy,
            retry_after: Duration::from_secs(45),
        };
        assert_eq!(
            RetryPolicy::default().next_delay(1, &e, 0.9),
            Some(Duration::from_secs(45))
        );
    }

    #[test]
    fn attempts_are_bounded_and_client_errors_are_never_retried() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(4, &server(), 0.5), None);
        let e = ApiError::NotFound {
            code: "CMN-102".into(),
            message: String::new(),
        };
        assert_eq!(p.next_delay(1, &e, 0.5), None);
        assert!(
            p.next_delay(1, &ApiError::Transport("reset".into()), 0.5)
                .is_some()
        );
    }
}
