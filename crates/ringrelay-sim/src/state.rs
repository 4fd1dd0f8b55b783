//! The simulator's shared state: OAuth sessions, subscriptions, scripted faults and the
//! logs tests inspect. One mutex, never held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::directory::SimAccount;
use crate::error::ApiError;
use crate::ratelimit::Limiter;
use crate::telephony::TelephonyState;

/// One OAuth session: the live access and refresh token of one login.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub account: usize,
    pub access_token: String,
    pub access_expires: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires: DateTime<Utc>,
    pub created: DateTime<Utc>,
}

/// Why a subscription is not delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlacklistedData {
    /// When it was blacklisted (ISO 8601).
    pub blacklisted_at: String,
    /// RingCentral-worded reason.
    pub reason: String,
}

/// A filter the subscription accepted but does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledFilter {
    /// The filter as expanded.
    pub filter: String,
    /// Short reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// The renewal-reminder filter's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reminder {
    pub filter: String,
    pub threshold: i64,
    pub interval: i64,
    pub last_sent: Option<DateTime<Utc>>,
}

/// One webhook subscription as the simulator keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub account: usize,
    pub filters: Vec<String>,
    pub disabled: Vec<DisabledFilter>,
    pub address: String,
    pub verification_token: Option<String>,
    pub created: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub lifetime_secs: i64,
    pub blacklisted: Option<BlacklistedData>,
    pub failing_since: Option<DateTime<Utc>>,
    pub reminder: Option<Reminder>,
}

/// A scripted failure: the next `times` requests whose path starts with `path` (and whose
/// method matches, if given) get `status` with RingCentral's error body for `error_code`,
/// after an optional real-time `delay_ms` (a long delay simulates a timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// HTTP method to match (`None` matches any).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match, e.g. `/restapi/v1.0/subscription`.
    pub path: String,
    /// Status to answer.
    pub status: u16,
    /// RingCentral error code in the body, e.g. `CMN-201`.
    #[serde(default = "default_fault_code")]
    pub error_code: String,
    /// How many requests it applies to.
    #[serde(default = "default_times")]
    pub times: u32,
    /// Real-time delay before answering, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

fn default_fault_code() -> String {
    "CMN-201".to_owned()
}

fn default_times() -> u32 {
    1
}

impl Fault {
    /// A fault answering `status` (`CMN-201` body) to the next `times` requests under `path`.
    pub fn status(path: &str, status: u16, times: u32) -> Self {
        Self {
            method: None,
            path: path.to_owned(),
            status,
            error_code: default_fault_code(),
            times,
            delay_ms: 0,
        }
    }

    /// Matches only this method.
    #[must_use]
    pub fn with_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Answers after this real-time delay (to make a client time out).
    #[must_use]
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Uses this RingCentral error code in the body.
    #[must_use]
    pub fn with_code(mut self, code: &str) -> Self {
        self.error_code = code.to_owned();
        self
    }
}

/// How many webhook deliveries to drop (simulated lost notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropDeliveries {
    /// The next `n` deliveries.
    Count(u32),
    /// Every delivery for this long of simulated time from now.
    For(std::time::Duration),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum DropRule {
    Count(u32),
    Until(DateTime<Utc>),
}

/// One API request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Simulated time it arrived.
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Status answered.
    pub status: u16,
}

/// One webhook POST the simulator made (or dropped) and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Simulated time of the attempt.
    pub at: DateTime<Utc>,
    /// Subscription delivered for.
    pub subscription_id: String,
    /// Where it was POSTed.
    pub address: String,
    /// The envelope's `event`.
    pub event: String,
    /// The envelope's `uuid`.
    pub uuid: String,
    /// The answer's status, if any answer came.
    pub status: Option<u16>,
    /// The transport error (refused, timeout), if any.
    pub error: Option<String>,
    /// True when the drop knob swallowed it (never sent).
    pub dropped: bool,
    /// The whole envelope.
    pub envelope: serde_json::Value,
}

impl DeliveryRecord {
    /// True when the endpoint answered 200.
    pub fn succeeded(&self) -> bool {
        self.status == Some(200)
    }
}

/// One call of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Simulated time.
    pub at: DateTime<Utc>,
    /// The `grant_type` sent (empty if none).
    pub grant_type: String,
    /// Status answered.
    pub status: u16,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub sessions: Vec<Session>,
    pub subscriptions: Vec<Subscription>,
    pub limiter: Limiter,
    pub faults: Vec<Fault>,
    pub drop: Option<DropRule>,
    pub requests: Vec<RequestRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    pub token_requests: Vec<TokenRequest>,
    pub too_many_requests: u64,
    /// Notifications scheduled for later (call events), delivered by `tick` when due.
    pub pending: Vec<Pending>,
}

/// A notification waiting for its simulated time.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub at: DateTime<Utc>,
    pub account: usize,
    pub event: String,
    pub body: serde_json::Value,
}

/// State shared by the server, the background work and the handle.
#[derive(Debug)]
pub(crate) struct SimState {
    pub config: SimConfig,
    pub clock: SimClock,
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>`, for `uri` fields.
    base_url: String,
    inner: Mutex<Inner>,
    telephony: Mutex<TelephonyState>,
    /// The live accounts: `config.accounts` as changed at runtime (extensions added,
    /// disabled, removed; permissions changed). Never held with another lock.
    directory: Mutex<Vec<SimAccount>>,
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub account: usize,
}

impl SimState {
    pub fn new(config: SimConfig, base_url: &str) -> anyhow::Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let accounts = config.accounts.clone();
        Ok(Arc::new(Self {
            clock: config.clock.clone(),
            config,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            inner: Mutex::new(Inner::default()),
            telephony: Mutex::new(TelephonyState::new(base_url, rand::random())),
            directory: Mutex::new(accounts),
        }))
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a simulator bug; keep serving anyway.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn telephony(&self) -> MutexGuard<'_, TelephonyState> {
        self.telephony
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The simulator's base URL (for `uri` fields).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The live state of account `index` (a snapshot).
    pub fn account(&self, index: usize) -> SimAccount {
        self.directory()[index].clone()
    }

    /// The live accounts (a snapshot).
    pub fn accounts(&self) -> Vec<SimAccount> {
        self.directory().clone()
    }

    /// Changes account `index` in the live directory.
    pub fn update_account<T>(&self, index: usize, f: impl FnOnce(&mut SimAccount) -> T) -> T {
        f(&mut self.directory()[index])
    }

    fn directory(&self) -> MutexGuard<'_, Vec<SimAccount>> {
        self.directory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Resolves `Authorization: Bearer …` to the caller.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::new(401, "OAU-151", "Authorization method not supported"))?;
        let now = self.now();
        let inner = self.lock();
        let session = inner
            .sessions
            .iter()
            .find(|s| s.access_token == token)
            .ok_or_else(|| ApiError::new(401, "OAU-129", "Access token corrupted"))?;
        if session.access_expires <= now {
            return Err(ApiError::new(401, "OAU-128", "Access token expired"));
        }
        Ok(Caller {
            account: session.account,
        })
    }

    /// The rate-limit key of a bearer token, if it is a live one.
    pub fn user_key_of_token(&self, token: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sessions
            .iter()
            .find(|s| s.access_token == token || s.refresh_token == token)
            .map(|s| self.user_key(s.account))
    }

    /// The rate-limit key of an account's owner user.
    pub fn user_key(&self, account: usize) -> String {
        self.config.accounts.get(account).map_or_else(
            || format!("account-{account}"),
            |a| format!("{}:{}", a.id, a.owner().id),
        )
    }
}

/// Formats a time as RingCentral does in JSON (`2026-01-01T00:00:00.000Z`).
pub(crate) fn rc_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
