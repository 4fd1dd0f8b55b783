//! The simulator's injectable clock: real time plus an offset that tests advance.
//!
//! Every time-dependent rule of the simulator (token and subscription expiry, rate-limit
//! windows and penalties, blacklisting after sustained failure, call-log lag) asks this
//! clock, so a test can run days of RingCentral time in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// A shared, cloneable clock. `now()` is the wall clock plus an offset that only grows.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock that starts at the real current time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The simulated current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves simulated time forward by `by` (negative durations are ignored).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// How far simulated time is ahead of the wall clock.
    pub fn offset(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_for_every_clone() {
        let clock = SimClock::new();
        let other = clock.clone();
        let before = other.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(other.now() - before >= Duration::seconds(3600));
    }
}
