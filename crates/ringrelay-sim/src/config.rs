//! The simulator's settings: who exists, token lifetimes, limits and delivery knobs.
//!
//! Defaults are RingCentral's documented values (see `docs/simulator.md` and the fact
//! sheet's sections 1, 2.6, 3.3 and 6); tests scale them down.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::SimClock;
use crate::directory::SimAccount;

/// Per-group request limits (RingCentral's "usage plan groups").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// When false, no request is ever limited (headers are still sent).
    pub enabled: bool,
    /// Light group: requests per window per user and app (RingCentral: 50).
    pub light: u32,
    /// Medium group (RingCentral: 40).
    pub medium: u32,
    /// Heavy group (RingCentral: 10).
    pub heavy: u32,
    /// Auth group: the token and revoke endpoints (RingCentral: 5).
    pub auth: u32,
    /// The counting window (RingCentral: 60 s of simulated time).
    pub window: Duration,
    /// The penalty after a 429; every request sent during it restarts it (RingCentral: 60 s).
    pub penalty: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            light: 50,
            medium: 40,
            heavy: 10,
            auth: 5,
            window: Duration::from_secs(60),
            penalty: Duration::from_secs(60),
        }
    }
}

/// What the simulator does with the (undocumented) `…/extension/~/call-log` event filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CallLogFilter {
    /// Accept the create but list the filter in `disabledFilters` (the default).
    #[default]
    Disabled,
    /// Reject the create with 400 SUB-508, like any unknown filter.
    Rejected,
}

/// Everything [`crate::Sim::start`] needs. Build with [`SimConfig::default`] and the
/// `with_*` methods.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The simulated accounts (default: one generated account "acme" with 4 extensions).
    pub accounts: Vec<SimAccount>,
    /// Port on 127.0.0.1; `None` picks an ephemeral one.
    pub port: Option<u16>,
    /// The app's client id (checked in the Basic header of the OAuth endpoints).
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// Access-token lifetime (`expires_in`; RingCentral default 3600 s).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (RingCentral default 604800 s).
    pub refresh_token_ttl: Duration,
    /// Parallel OAuth sessions per user before the oldest dies (RingCentral: "usually five").
    pub max_sessions_per_user: usize,
    /// Request limits.
    pub rate_limits: RateLimits,
    /// Subscriptions per user per app before 403 SUB-505 (RingCentral: 30).
    pub max_subscriptions: usize,
    /// Event filters per subscription (the reminder included) beyond which a create or
    /// `PUT` is refused with 400 CMN-101 on `eventFilters`. RingCentral documents no such
    /// limit, so the default is `None` (unlimited); tests set one to exercise packing.
    pub max_filters_per_subscription: Option<usize>,
    /// How long the validation handshake may take, in real time (RingCentral: 3000 ms).
    pub handshake_timeout: Duration,
    /// How long one webhook delivery may take, in real time, before it counts as failed.
    pub delivery_timeout: Duration,
    /// Simulated time of sustained delivery failure before blacklisting (RingCentral: 10 min).
    pub blacklist_after: Duration,
    /// Handling of the call-log event filter.
    pub call_log_filter: CallLogFilter,
    /// Probability (0..=1) that a delivered notification is POSTed a second time.
    pub duplicate_rate: f64,
    /// Probability (0..=1) that two neighbouring events of a generated call swap places
    /// (RingCentral delivers telephony events out of order, fact sheet §3.3).
    pub reorder_rate: f64,
    /// Simulated delay between a call event happening and its delivery.
    pub delivery_delay: Duration,
    /// The clock every time rule asks.
    pub clock: SimClock,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            accounts: vec![SimAccount::generated(0, 4)],
            port: None,
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(604_800),
            max_sessions_per_user: 5,
            rate_limits: RateLimits::default(),
            max_subscriptions: 30,
            max_filters_per_subscription: None,
            handshake_timeout: Duration::from_secs(3),
            delivery_timeout: Duration::from_secs(3),
            blacklist_after: Duration::from_secs(600),
            call_log_filter: CallLogFilter::Disabled,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            delivery_delay: Duration::ZERO,
            clock: SimClock::new(),
        }
    }
}

impl SimConfig {
    /// Uses these accounts instead of the generated one.
    #[must_use]
    pub fn with_accounts(mut self, accounts: Vec<SimAccount>) -> Self {
        self.accounts = accounts;
        self
    }

    /// Listens on this port.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Uses these rate limits.
    #[must_use]
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Sets the access-token lifetime.
    #[must_use]
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Shares this clock.
    #[must_use]
    pub fn with_clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the real-time handshake and delivery timeouts (tests shorten them).
    #[must_use]
    pub fn with_timeouts(mut self, handshake: Duration, delivery: Duration) -> Self {
        self.handshake_timeout = handshake;
        self.delivery_timeout = delivery;
        self
    }
}
