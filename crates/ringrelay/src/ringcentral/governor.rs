//! Client-side rate limiting per throttling group (API.md §6): a sliding-window budget per
//! group, corrected by the `X-Rate-Limit-*` headers, and a penalty after a 429 during which
//! nothing is sent in that group (a request sent during the penalty restarts it).
//! `Priority::Backfill` may use only part of a group's budget, so backfill never takes the
//! slots live work needs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::clock::Clock;

/// RingCentral's throttling groups (the spec's `x-throttling-group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiGroup {
    /// 50 requests/min by default: reads such as list/get/renew subscription, messages.
    Light,
    /// 40/min: create/update/delete subscription, message content.
    Medium,
    /// 10/min: everything call log.
    Heavy,
    /// 5/min: the token and revoke endpoints.
    Auth,
}

impl ApiGroup {
    const ALL: [Self; 4] = [Self::Light, Self::Medium, Self::Heavy, Self::Auth];

    fn index(self) -> usize {
        match self {
            Self::Light => 0,
            Self::Medium => 1,
            Self::Heavy => 2,
            Self::Auth => 3,
        }
    }
}

/// Who is asking: live work (renewals, sync after a call) or backfill of a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// May use the whole budget.
    Live,
    /// May use only [`GovernorSettings::backfill_share`] of it.
    Backfill,
}

/// A group's budget: `requests` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

/// The governor's limits (RingCentral's defaults unless an app has custom limits).
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorSettings {
    /// Light group.
    pub light: GroupLimit,
    /// Medium group.
    pub medium: GroupLimit,
    /// Heavy group.
    pub heavy: GroupLimit,
    /// Auth group.
    pub auth: GroupLimit,
    /// Share of each group's budget backfill may use (0 to 1; at least one request).
    pub backfill_share: f64,
    /// Penalty after a 429 without `Retry-After` (RingCentral says 30 s or more).
    pub default_penalty: Duration,
}

impl Default for GovernorSettings {
    fn default() -> Self {
        let per_minute = |requests| GroupLimit {
            requests,
            window: Duration::from_secs(60),
        };
        Self {
            light: per_minute(50),
            medium: per_minute(40),
            heavy: per_minute(10),
            auth: per_minute(5),
            backfill_share: 0.5,
            default_penalty: Duration::from_secs(30),
        }
    }
}

/// What the `X-Rate-Limit-*` headers of a response said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-Rate-Limit-Limit`.
    pub limit: Option<u32>,
    /// `X-Rate-Limit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-Rate-Limit-Window`, seconds.
    pub window: Option<Duration>,
}

impl RateLimitHeaders {
    /// Reads the headers (absent or unparsable ones are `None`).
    pub fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        Self {
            limit: num("x-rate-limit-limit"),
            remaining: num("x-rate-limit-remaining"),
            window: num("x-rate-limit-window").map(|s| Duration::from_secs(u64::from(s))),
        }
    }
}

/// One group's state: the pure part of the governor, unit-tested without a clock.
#[derive(Debug, Clone)]
struct GroupState {
    limit: GroupLimit,
    sent: VecDeque<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

impl GroupState {
    fn new(limit: GroupLimit) -> Self {
        Self {
            limit,
            sent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Takes a slot now (`Ok`) or says how long to wait before asking again.
    fn try_take(&mut self, now: DateTime<Utc>, cap: usize) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if until > now {
                return Err(positive(until - now));
            }
            self.blocked_until = None;
        }
        let window = self.limit.window;
        while self.sent.front().is_some_and(|t| later(*t, window) <= now) {
            self.sent.pop_front();
        }
        if self.sent.len() < cap {
            self.sent.push_back(now);
            return Ok(());
        }
        // The slot frees when the (len - cap + 1)-th oldest request leaves the window.
        let oldest = self.sent[self.sent.len() - cap];
        Err(positive(later(oldest, window) - now))
    }

    fn block(&mut self, until: DateTime<Utc>) {
        if self.blocked_until.is_none_or(|b| b < until) {
            self.blocked_until = Some(until);
        }
    }
}

/// `t + d`, saturating at the end of time instead of panicking.
fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn positive(d: chrono::Duration) -> Duration {
    d.to_std()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(1))
}

/// The rate-limit governor of one account (shared by all its callers).
#[derive(Debug)]
pub struct Governor {
    clock: Arc<dyn Clock>,
    backfill_share: f64,
    default_penalty: Duration,
    groups: Mutex<[GroupState; 4]>,
}

impl Governor {
    /// A governor with the given limits.
    pub fn new(settings: &GovernorSettings, clock: Arc<dyn Clock>) -> Self {
        let limit = |g| match g {
            ApiGroup::Light => settings.light,
            ApiGroup::Medium => settings.medium,
            ApiGroup::Heavy => settings.heavy,
            ApiGroup::Auth => settings.auth,
        };
        Self {
            clock,
            backfill_share: settings.backfill_share.clamp(0.0, 1.0),
            default_penalty: settings.default_penalty,
            groups: Mutex::new(ApiGroup::ALL.map(|g| GroupState::new(limit(g)))),
        }
    }

    /// The penalty to apply after a 429 without `Retry-After`.
    pub fn default_penalty(&self) -> Duration {
        self.default_penalty
    }

    fn cap(&self, limit: u32, priority: Priority) -> usize {
        let full = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        match priority {
            Priority::Live => full,
            Priority::Backfill => {
                let share = (f64::from(limit) * self.backfill_share).floor();
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "share is in [0, limit]"
                )]
                let n = share as usize;
                n.clamp(1, full)
            }
        }
    }

    /// Takes a slot in `group` now, or says how long to wait first.
    ///
    /// # Errors
    /// The wait, when the budget is spent or a penalty runs.
    pub fn try_acquire(&self, group: ApiGroup, priority: Priority) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut groups[group.index()];
        let cap = self.cap(state.limit.requests, priority);
        state.try_take(now, cap)
    }

    /// Waits (on the clock) until a request may be sent in `group`, and takes the slot.
    pub async fn acquire(&self, group: ApiGroup, priority: Priority) {
        // Bounded: each wait is until a slot frees; a bound guards against a clock that
        // never moves.
        for _ in 0..10_000 {
            match self.try_acquire(group, priority) {
                Ok(()) => return,
                Err(wait) => {
                    tracing::debug!(?group, ?priority, ?wait, "rate-limit budget: waiting");
                    self.clock.sleep(wait).await;
                }
            }
        }
        tracing::warn!(
            ?group,
            "rate-limit governor gave up waiting; sending anyway"
        );
    }

    /// Learns from a response's `X-Rate-Limit-*` headers: the server's limit and window
    /// replace the configured ones, and `Remaining: 0` blocks the group for a window.
    pub fn observe(&self, group: ApiGroup, headers: RateLimitHeaders) {
        let now = self.clock.now();
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut groups[group.index()];
        if let Some(limit) = headers.limit.filter(|l| *l > 0) {
            state.limit.requests = limit;
        }
        if let Some(window) = headers.window.filter(|w| !w.is_zero()) {
            state.limit.window = window;
        }
        if headers.remaining == Some(0) {
            let until = later(now, state.limit.window);
            state.block(until);
        }
    }

    /// Starts a penalty after a 429: nothing is sent in `group` for `retry_after`.
    pub fn penalize(&self, group: ApiGroup, retry_after: Duration) {
        let now = self.clock.now();
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups[group.index()].block(later(now, retry_after));
    }

    /// How long the current penalty or block of `group` still runs, if any.
    pub fn blocked_for(&self, group: ApiGroup) -> Option<Duration> {
        let now = self.clock.now();
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups[group.index()]
            .blocked_until
            .filter(|u| *u > now)
            .map(|u| positive(u - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ringcentral::clock::SystemClock;
    use ringrelay_sim::SimClock;

    fn heavy_governor(clock: Arc<dyn Clock>) -> Governor {
        Governor::new(&GovernorSettings::default(), clock)
    }

    #[test]
    fn a_group_allows_its_budget_per_window_then_says_how_long_to_wait() {
        let clock = SimClock::new();
        let g = heavy_governor(Arc::new(clock.clone()));
        for _ in 0..10 {
            g.try_acquire(ApiGroup::Heavy, Priority::Live).unwrap();
        }
        let wait = g.try_acquire(ApiGroup::Heavy, Priority::Live).unwrap_err();
        assert!(
            wait <= Duration::from_secs(60) && wait > Duration::from_secs(50),
            "{wait:?}"
        );
        // Other groups are counted separately.
        g.try_acquire(ApiGroup::Light, Priority::Live).unwrap();
        clock.advance(Duration::from_secs(61));
        g.try_acquire(ApiGroup::Heavy, Priority::Live).unwrap();
    }

    #[test]
    fn backfill_uses_only_its_share_so_live_work_still_has_slots() {
        let g = heavy_governor(Arc::new(SimClock::new()));
        for _ in 0..5 {
            g.try_acquire(ApiGroup::Heavy, Priority::Backfill).unwrap();
        }
        assert!(g.try_acquire(ApiGroup::Heavy, Priority::Backfill).is_err());
        for _ in 0..5 {
            g.try_acquire(ApiGroup::Heavy, Priority::Live).unwrap();
        }
        assert!(g.try_acquire(ApiGroup::Heavy, Priority::Live).is_err());
    }

    #[test]
    fn a_penalty_blocks_the_group_until_it_ends() {
        let clock = SimClock::new();
        let g = heavy_governor(Arc::new(clock.clone()));
        g.penalize(ApiGroup::Light, Duration::from_secs(45));
        let wait = g.try_acquire(ApiGroup::Light, Priority::Live).unwrap_err();
        assert!(wait > Duration::from_secs(40), "{wait:?}");
        assert!(g.blocked_for(ApiGroup::Light).is_some());
        g.try_acquire(ApiGroup::Medium, Priority::Live).unwrap();
        clock.advance(Duration::from_secs(46));
        g.try_acquire(ApiGroup::Light, Priority::Live).unwrap();
    }

    #[test]
    fn headers_set_the_limit_and_remaining_zero_blocks_for_a_window() {
        let clock = SimClock::new();
        let g = heavy_governor(Arc::new(clock.clone()));
        g.observe(
            ApiGroup::Medium,
            RateLimitHeaders {
                limit: Some(2),
                remaining: Some(1),
                window: Some(Duration::from_secs(10)),
            },
        );
        g.try_acquire(ApiGroup::Medium, Priority::Live).unwrap();
        g.try_acquire(ApiGroup::Medium, Priority::Live).unwrap();
        assert!(
            g.try_acquire(ApiGroup::Medium, Priority::Live).unwrap_err() <= Duration::from_secs(10)
        );
        clock.advance(Duration::from_secs(11));
        g.observe(
            ApiGroup::Medium,
            RateLimitHeaders {
                remaining: Some(0),
                ..RateLimitHeaders::default()
            },
        );
        assert!(g.blocked_for(ApiGroup::Medium).is_some());
    }

    #[test]
    fn absurd_penalties_and_windows_saturate_instead_of_panicking() {
        let g = heavy_governor(Arc::new(SimClock::new()));
        g.penalize(ApiGroup::Light, Duration::MAX);
        assert!(g.try_acquire(ApiGroup::Light, Priority::Live).is_err());
        g.observe(
            ApiGroup::Heavy,
            RateLimitHeaders {
                limit: Some(1),
                remaining: Some(0),
                window: Some(Duration::from_secs(u64::from(u32::MAX))),
            },
        );
        assert!(g.blocked_for(ApiGroup::Heavy).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_on_the_clock_for_the_next_slot() {
        let settings = GovernorSettings {
            auth: GroupLimit {
                requests: 1,
                window: Duration::from_secs(60),
            },
            ..GovernorSettings::default()
        };
        let g = Governor::new(&settings, Arc::new(SystemClock));
        let start = tokio::time::Instant::now();
        g.acquire(ApiGroup::Auth, Priority::Live).await;
        g.acquire(ApiGroup::Auth, Priority::Live).await;
        assert!(start.elapsed() >= Duration::from_secs(60));
    }
}
