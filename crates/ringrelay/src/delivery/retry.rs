//! The retry policy (DESIGN §4): 2xx delivered; 410 disables the sink; 429 and 503 honour
//! `Retry-After` (bounded); other failures follow the sink's schedule with jitter, then the
//! delivery is dead-lettered. Plus [`SinkHealth`], the per-sink circuit breaker that
//! disables a sink failing continuously for `disable_after` (Svix's rule, default 5 days).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::AttemptOutcome;
use crate::config::SinkSettings;
use crate::store::chrono_duration;

/// The default jitter: each scheduled delay is moved by up to ±20 %.
pub const DEFAULT_JITTER: f64 = 0.2;
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The sink accepted it.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Give up: the schedule is exhausted.
    Dead,
    /// The sink answered 410 Gone: disable it (the delivery stays open for a later enable).
    DisableSink,
}

/// A sink's retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first, second, … failed attempt; after the last, dead-letter.
    pub schedule: Vec<Duration>,
    /// Fraction (0 to 1) by which a scheduled delay is randomly moved either way.
    pub jitter: f64,
    /// Failing continuously this long disables the sink.
    pub disable_after: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The policy configured for a sink (default jitter and `Retry-After` bound).
    pub fn from_settings(settings: &SinkSettings) -> Self {
        Self {
            schedule: settings.retry_schedule.clone(),
            jitter: DEFAULT_JITTER,
            disable_after: settings.disable_after,
            max_retry_after: MAX_RETRY_AFTER,
        }
    }

    /// Decides what follows attempt `attempt` (1 for the first) that ended with `outcome`
    /// at `now`. `unit` is a random number in `[0, 1)` for the jitter (pass `0.5` for none),
    /// so the decision itself is deterministic and testable with simulated time.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Decision {
        let retry_after = match outcome {
            AttemptOutcome::Delivered => return Decision::Delivered,
            AttemptOutcome::Gone => return Decision::DisableSink,
            AttemptOutcome::Failed {
                status,
                retry_after,
                ..
            } => match status {
                Some(429 | 503) => *retry_after,
                _ => None,
            },
        };
        let index = attempt.max(1) as usize - 1;
        let Some(scheduled) = self.schedule.get(index).copied() else {
            return Decision::Dead;
        };
        let delay = match retry_after {
            // The receiver said when; never earlier than that, and only bounded later.
            Some(asked) => asked.min(self.max_retry_after).max(Duration::from_secs(1)),
            None => self.jittered(scheduled, unit),
        };
        Decision::RetryAt(now + chrono_duration(delay))
    }

    fn jittered(&self, delay: Duration, unit: f64) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + jitter * (2.0 * unit - 1.0);
        delay.mul_f64(factor.max(0.0))
    }
}

/// Parses an HTTP `Retry-After` value: delay seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.to_utc();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Tracks whether a sink keeps failing, for the circuit breaker: after a failure the worker
/// only probes with one delivery at a time, and a sink failing continuously for
/// `disable_after` is disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkHealth {
    failing_since: Option<DateTime<Utc>>,
    consecutive_failures: u32,
}

impl SinkHealth {
    /// Records a success: the sink is healthy again.
    pub fn success(&mut self) {
        self.failing_since = None;
        self.consecutive_failures = 0;
    }

    /// Records a failure at `now`; `true` when the sink has now been failing continuously
    /// for at least `disable_after` and should be disabled.
    pub fn failure(&mut self, now: DateTime<Utc>, disable_after: Duration) -> bool {
        let since = *self.failing_since.get_or_insert(now);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        now - since >= chrono_duration(disable_after)
    }

    /// Whether the last attempt failed (the breaker is open: probe one at a time).
    pub fn is_failing(&self) -> bool {
        self.failing_since.is_some()
    }

    /// Failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How long the worker waits before its next claim while the sink is failing:
    /// doubles per failure from 100 ms up to 30 s; zero when healthy.
    pub fn backoff(&self) -> Duration {
        if self.consecutive_failures == 0 {
            return Duration::ZERO;
        }
        let exp = self.consecutive_failures.min(10) - 1;
        Duration::from_millis(100 * (1u64 << exp)).min(Duration::from_secs(30))
    }
}
