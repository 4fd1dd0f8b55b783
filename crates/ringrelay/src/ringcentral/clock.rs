//! The clock the client asks for "now" and uses to wait, so tests and the demo can run on
//! the simulator's time instead of the wall clock.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A boxed future returned by [`Clock::sleep`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Time as the client sees it.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Waits `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// The wall clock and tokio's timer (so `tokio::time::pause()` works in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The simulator's clock. Sleeping *advances* simulated time by the duration and returns
/// at once (after yielding to the runtime), so a client that waits a 60 s rate-limit
/// penalty does so in microseconds of real time, and the simulator sees the next request
/// 60 s of its time later. Every sleeper moves the shared clock, so concurrent sleepers
/// add up; that is the right model for tests where one actor waits at a time.
impl Clock for ringrelay_sim::SimClock {
    fn now(&self) -> DateTime<Utc> {
        ringrelay_sim::SimClock::now(self)
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        self.advance(duration);
        Box::pin(tokio::task::yield_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeping_on_the_sim_clock_advances_simulated_time() {
        let clock = ringrelay_sim::SimClock::new();
        let before = Clock::now(&clock);
        Clock::sleep(&clock, Duration::from_secs(3600)).await;
        let moved = Clock::now(&clock) - before;
        assert!(moved >= chrono::Duration::seconds(3600), "{moved}");
    }
}
