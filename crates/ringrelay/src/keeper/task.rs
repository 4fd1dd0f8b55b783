//! The per-account [`Keeper`] (`start` / `step` / `shutdown`) and the background task that
//! drives it ([`spawn`] → [`KeeperHandle`]).
//!
//! One keeper per account runs across all replicas: each step first takes or extends the
//! store lease `keeper:{account}`; a keeper that cannot hold it stands by, and one whose
//! lease changed hands (new fence) starts over as a newcomer would. Every write that acts on
//! RingCentral or the subscription record is preceded by that lease check.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::gaps::Ledger;
use super::plan::{self, DesiredSet, SlotAction, SlotPlan, normalize_filter};
use super::{SubscriptionApi, TokenSink, explain};
use crate::account::AccountId;
use crate::config::{AccountSettings, Secret, Settings};
use crate::receiver::StrayReport;
use crate::ringcentral::{
    ApiError, Clock, CreateSubscription, Subscription, SubscriptionStatus, SystemClock,
};
use crate::store::{
    CursorUpdate, DisabledFilter, Gap, GapCause, Lease, Store, StoreError, SubscriptionRecord,
    chrono_duration,
};

/// Length of a generated verification token (RingCentral allows up to 64 characters).
const TOKEN_LEN: usize = 48;

/// Why a step could not finish (recorded in the status and retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// A RingCentral call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another replica took the account's lease.
    #[error("another replica took over this account")]
    LeaseLost,
    /// SUB-505 while no subscription of ours is left to delete.
    #[error(
        "RingCentral's subscription limit is reached by {count} subscriptions that are not \
         ringrelay's for this account (other apps or other addresses under the same JWT user); \
         ringrelay will not delete them: remove some, or use another JWT user"
    )]
    LimitByOthers {
        /// How many subscriptions the user has.
        count: usize,
    },
}

/// Everything one keeper needs.
#[derive(Clone)]
pub struct KeeperContext {
    /// The account.
    pub account: AccountId,
    /// Our webhook URL for the account.
    pub address: String,
    /// The configured filters, including the renewal reminder.
    pub event_filters: Vec<String>,
    /// The covered extensions (ids), when the account covers more than the JWT user: one
    /// voicemail filter each, packed into as few subscriptions as possible, replacing the
    /// configured `extension/~/voicemail` filter. `None`, or an empty list: one
    /// subscription with `event_filters` (today's behaviour). See [`map_extensions`].
    pub extensions: Option<watch::Receiver<Vec<String>>>,
    /// At most this many filters per subscription (`keeper.max_filters_per_subscription`).
    pub max_filters_per_subscription: usize,
    /// Requested subscription lifetime.
    pub expires_in: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
    /// Reconcile period.
    pub reconcile_interval: Duration,
    /// Silence after which the subscription is read back.
    pub silence_threshold: Duration,
    /// First retry delay after a failure (doubling up to `reconcile_interval`).
    pub retry_base: Duration,
    /// The spawned task waits a random time up to this before its first step, so many
    /// accounts do not create, list and renew in the same second.
    pub start_spread: Duration,
    /// RingCentral's subscription calls.
    pub api: Arc<dyn SubscriptionApi>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where verification tokens go (the receiver).
    pub tokens: Arc<dyn TokenSink>,
    /// This replica's name, for the lease.
    pub owner: String,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeeperContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperContext")
            .field("account", &self.account)
            .field("address", &self.address)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl KeeperContext {
    /// A context from the settings, on the wall clock.
    pub fn new(
        settings: &Settings,
        account: &AccountSettings,
        api: Arc<dyn SubscriptionApi>,
        store: Arc<dyn Store>,
        tokens: Arc<dyn TokenSink>,
        owner: impl Into<String>,
    ) -> Self {
        let mut event_filters = account.event_filters.clone();
        if let Some(r) = account.reminder_filter() {
            event_filters.push(r);
        }
        Self {
            account: account.id.clone(),
            address: settings.server.webhook_url(&account.id).to_string(),
            event_filters,
            extensions: None,
            max_filters_per_subscription: settings.keeper.max_filters_per_subscription,
            expires_in: account.expires_in,
            renew_before: account.renew_before,
            reconcile_interval: settings.keeper.reconcile_interval,
            silence_threshold: settings.keeper.silence_threshold,
            retry_base: Duration::from_secs(5),
            start_spread: (settings.keeper.reconcile_interval / 10).min(Duration::from_secs(30)),
            api,
            store,
            tokens,
            owner: owner.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same context following these covered extensions (see
    /// [`KeeperContext::extensions`]).
    #[must_use]
    pub fn with_extensions(mut self, extensions: watch::Receiver<Vec<String>>) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// The same context on another clock (the simulator's).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn lease_name(&self) -> String {
        format!("keeper:{}", self.account)
    }

    fn lease_ttl(&self) -> Duration {
        (self.reconcile_interval * 3).max(Duration::from_secs(30))
    }
}

/// Whether the account is covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverageState {
    /// Not checked yet.
    Starting,
    /// An Active subscription of ours is confirmed.
    Covered,
    /// No Active subscription (a gap is open).
    Uncovered,
    /// Another replica holds the account's lease.
    Standby {
        /// The lease holder, when known.
        holder: String,
    },
}

/// The kept subscription, as shown in `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSummary {
    /// Its id.
    pub id: String,
    /// Its status.
    pub status: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When the keeper renews it.
    pub renew_at: DateTime<Utc>,
}

/// How the account's extensions are covered by voicemail filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionCoverage {
    /// Extensions the last reconcile set out to cover (minus those whose filter
    /// RingCentral had refused before it).
    pub wanted: usize,
    /// Extensions whose voicemail filter an Active subscription carries.
    pub covered: usize,
    /// Subscriptions the account uses.
    pub subscriptions: usize,
    /// The configured maximum of filters per subscription.
    pub max_filters_per_subscription: usize,
    /// Set when RingCentral's subscription limit leaves extensions out.
    pub over_limit: Option<plan::OverLimit>,
}

/// A keeper's state for the status page and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperStatus {
    /// The account.
    pub account: AccountId,
    /// Covered or not.
    pub state: CoverageState,
    /// The kept subscription (the first one, carrying the account-level filters).
    pub subscription: Option<SubscriptionSummary>,
    /// Every kept subscription, the first one first.
    pub subscriptions: Vec<SubscriptionSummary>,
    /// The extensions' voicemail coverage; `None` when only the account's own filters
    /// are kept.
    pub extensions: Option<ExtensionCoverage>,
    /// Filters RingCentral refused, with why.
    pub refused_filters: Vec<DisabledFilter>,
    /// The last failure, in plain words; `None` after a success.
    pub last_error: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
    /// When the keeper acts next.
    pub next_attempt: Option<DateTime<Utc>>,
    /// The open coverage gap, if any.
    pub open_gap: Option<Gap>,
    /// When this status was computed.
    pub checked_at: Option<DateTime<Utc>>,
}

impl KeeperStatus {
    fn starting(account: AccountId) -> Self {
        Self {
            account,
            state: CoverageState::Starting,
            subscription: None,
            subscriptions: Vec::new(),
            extensions: None,
            refused_filters: Vec::new(),
            last_error: None,
            failures: 0,
            next_attempt: None,
            open_gap: None,
            checked_at: None,
        }
    }

    /// The status in plain words, as of `now`.
    pub fn explain(&self, now: DateTime<Utc>) -> Vec<String> {
        explain::status(self, now)
    }
}

/// What started a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The periodic timer (also runs the silence check when due).
    Timer,
    /// An on-demand reconcile (command, stray report).
    Reconcile,
    /// A renewal-reminder event arrived: renew now.
    Reminder,
}

/// What a step left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Covered, uncovered or standing by.
    pub state: CoverageState,
    /// When the keeper wants to run again.
    pub next_wake: DateTime<Utc>,
}

/// A subscription whose verification token the keeper holds.
#[derive(Clone)]
struct HeldSub {
    id: String,
    token: Secret,
    /// How it looked when last seen (`None` after a restart, until listed).
    sub: Option<Subscription>,
}

/// One account's subscription keeper.
pub struct Keeper {
    ctx: KeeperContext,
    ledger: Ledger,
    lease: Option<Lease>,
    backoff: Backoff,
    /// Account-level filters RingCentral refused.
    refused: Vec<DisabledFilter>,
    /// Per-extension voicemail filters RingCentral refused (those extensions are left out).
    refused_extensions: Vec<DisabledFilter>,
    /// The subscriptions we hold tokens for, in slot order (the first carries the
    /// account-level filters).
    held: Vec<HeldSub>,
    /// Extensions left out by the subscription limit.
    over_limit: Option<plan::OverLimit>,
    /// The extensions the last reconcile planned for.
    planned_extensions: Vec<String>,
    /// What the extras cursor holds (to skip rewriting it unchanged).
    saved_extras: Option<String>,
    last_event: Option<DateTime<Utc>>,
    silence_checked: Option<DateTime<Utc>>,
    status: KeeperStatus,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("account", &self.ctx.account)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn new_token() -> Secret {
    let token: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(TOKEN_LEN)
        .map(char::from)
        .collect();
    Secret::new(token)
}

fn mentions(message: &str, filter: &str) -> bool {
    let path = filter.split('?').next().unwrap_or(filter);
    message.contains(filter) || message.contains(path) || message.contains(&normalize_filter(path))
}

/// The store cursor holding the account's further subscriptions (ids and tokens, in
/// slot order; the first one is the store's subscription record).
pub const EXTRA_SUBSCRIPTIONS_CURSOR: &str = "keeper.subscriptions";

/// One entry of [`EXTRA_SUBSCRIPTIONS_CURSOR`].
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSub {
    id: String,
    token: String,
}

/// The ids and verification tokens of every subscription the keeper of `record`'s
/// account holds, the record's own first, then those of [`EXTRA_SUBSCRIPTIONS_CURSOR`] (for
/// registering them with the receiver at start).
///
/// # Errors
/// On a store failure.
pub async fn stored_tokens(
    store: &dyn Store,
    record: &SubscriptionRecord,
) -> Result<Vec<(String, Secret)>, StoreError> {
    Ok(stored(store, record).await?.0)
}

/// [`stored_tokens`] and the raw extras cursor.
async fn stored(
    store: &dyn Store,
    record: &SubscriptionRecord,
) -> Result<(Vec<(String, Secret)>, Option<String>), StoreError> {
    let Some(token) = &record.verification_token else {
        return Ok((Vec::new(), None));
    };
    let mut out = vec![(record.id.clone(), token.clone())];
    let extras = store
        .cursor(Some(&record.account), EXTRA_SUBSCRIPTIONS_CURSOR)
        .await?;
    if let Some(json) = &extras {
        match serde_json::from_str::<Vec<SavedSub>>(json) {
            Ok(saved) => out.extend(saved.into_iter().map(|s| (s.id, Secret::new(s.token)))),
            Err(e) => {
                tracing::warn!(account = %record.account, error = %e, "unreadable extra subscriptions cursor: their subscriptions will be replaced");
            }
        }
    }
    Ok((out, extras))
}

/// The account's own voicemail filter, replaced by per-extension ones when extensions are
/// covered.
const OWN_VOICEMAIL: &str = "/restapi/v1.0/account/~/extension/~/voicemail";

fn summary(s: &Subscription, renew_before: Duration) -> SubscriptionSummary {
    SubscriptionSummary {
        id: s.id.clone(),
        status: s.status.to_string(),
        expires_at: s.expires_at,
        renew_at: plan::renew_at(s, renew_before),
    }
}

impl Keeper {
    /// A keeper that has not started yet.
    pub fn new(ctx: KeeperContext) -> Self {
        let ledger = Ledger::new(Arc::clone(&ctx.store), ctx.account.clone());
        let backoff = Backoff::new(ctx.retry_base, ctx.reconcile_interval);
        let status = KeeperStatus::starting(ctx.account.clone());
        Self {
            ctx,
            ledger,
            lease: None,
            backoff,
            refused: Vec::new(),
            refused_extensions: Vec::new(),
            held: Vec::new(),
            over_limit: None,
            planned_extensions: Vec::new(),
            saved_extras: None,
            last_event: None,
            silence_checked: None,
            status,
        }
    }

    /// The latest status.
    pub fn status(&self) -> &KeeperStatus {
        &self.status
    }

    /// The account's coverage ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Notes that a notification for the account arrived at `at` (silence detection, and
    /// the start of a blacklisting gap).
    pub fn note_event(&mut self, at: DateTime<Utc>) {
        if self.last_event.is_none_or(|e| at > e) {
            self.last_event = Some(at);
        }
    }

    /// Starts: takes the lease, records the downtime since the last heartbeat as a gap,
    /// and reconciles.
    pub async fn start(&mut self) -> StepOutcome {
        self.step(Trigger::Reconcile).await
    }

    /// The first subscription (account-level filters), as last seen.
    fn primary(&self) -> Option<&Subscription> {
        self.held.first().and_then(|h| h.sub.as_ref())
    }

    /// Runs one reconcile (or renewal, or silence check), recording failures and backoff.
    pub async fn step(&mut self, trigger: Trigger) -> StepOutcome {
        let started = self.ctx.clock.now();
        let result = self.try_step(trigger, started).await;
        let now = self.ctx.clock.now();
        let interval = chrono_duration(self.ctx.reconcile_interval);
        let next_wake = match result {
            Ok(StepState::Standby(holder)) => {
                self.status.state = CoverageState::Standby { holder };
                self.status.last_error = None;
                now + interval
            }
            Ok(StepState::Covered) => {
                self.backoff.reset();
                self.status.state = CoverageState::Covered;
                self.status.last_error = None;
                let renew = self
                    .held
                    .iter()
                    .filter_map(|h| h.sub.as_ref())
                    .map(|s| plan::renew_at(s, self.ctx.renew_before))
                    .min()
                    .unwrap_or(now + interval);
                (now + interval).min(renew.max(now))
            }
            Err(e) => {
                let text = match &e {
                    KeeperError::Api(api) => explain::api_error(api, &self.ctx.address),
                    other => other.to_string(),
                };
                tracing::warn!(account = %self.ctx.account, error = %text, "keeper step failed");
                self.status.last_error = Some(text);
                if matches!(e, KeeperError::LeaseLost) {
                    self.lease = None;
                }
                let primary = self.primary();
                let covered = primary
                    .is_some_and(|s| s.status == SubscriptionStatus::Active && s.expires_at > now);
                let (since, cause) = match primary {
                    Some(s) if s.expires_at <= now => (s.expires_at, GapCause::Expired),
                    _ => (started, GapCause::CreatedLate),
                };
                if !covered
                    && self.lease.is_some()
                    && let Err(e) = self.ledger.uncovered(since, cause).await
                {
                    tracing::warn!(account = %self.ctx.account, error = %e, "could not record the coverage gap");
                }
                self.status.state = if covered {
                    CoverageState::Covered
                } else {
                    CoverageState::Uncovered
                };
                now + chrono_duration(self.backoff.fail())
            }
        };
        self.status.failures = self.backoff.failures();
        self.status.refused_filters.clone_from(&self.refused);
        self.status
            .refused_filters
            .extend(self.refused_extensions.iter().cloned());
        self.status.subscription = self.primary().map(|s| summary(s, self.ctx.renew_before));
        self.status.subscriptions = self
            .held
            .iter()
            .filter_map(|h| h.sub.as_ref())
            .map(|s| summary(s, self.ctx.renew_before))
            .collect();
        self.status.extensions = self.extension_coverage();
        if !matches!(self.status.state, CoverageState::Standby { .. })
            && let Ok(gap) = self.ledger.open_gap().await
        {
            self.status.open_gap = gap;
        }
        self.status.next_attempt = Some(next_wake);
        self.status.checked_at = Some(now);
        StepOutcome {
            state: self.status.state.clone(),
            next_wake: self.next_wake(next_wake),
        }
    }

    /// What the status says about the extensions' voicemail filters (as of the last
    /// reconcile; a change of the covered extensions since is picked up by the next).
    fn extension_coverage(&self) -> Option<ExtensionCoverage> {
        let wanted = &self.planned_extensions;
        if wanted.is_empty() {
            return None;
        }
        let carried: std::collections::BTreeSet<String> = self
            .held
            .iter()
            .filter_map(|h| h.sub.as_ref())
            .filter(|s| s.status == SubscriptionStatus::Active)
            .flat_map(plan::extensions_of)
            .collect();
        let covered = wanted.iter().filter(|e| carried.contains(*e)).count();
        Some(ExtensionCoverage {
            wanted: wanted.len(),
            covered,
            subscriptions: self.held.len(),
            max_filters_per_subscription: self.ctx.max_filters_per_subscription,
            over_limit: self.over_limit.clone(),
        })
    }

    /// The earlier of `planned` and the next silence check.
    fn next_wake(&self, planned: DateTime<Utc>) -> DateTime<Utc> {
        match self.silence_due() {
            Some(at) => planned.min(at),
            None => planned,
        }
    }

    fn silence_due(&self) -> Option<DateTime<Utc>> {
        let last = self.last_event?;
        if self.primary().is_none() || self.silence_checked == Some(last) {
            return None;
        }
        Some(last + chrono_duration(self.ctx.silence_threshold))
    }

    /// Stops: records a heartbeat when covered (so the next start knows where the
    /// downtime began) and releases the lease.
    ///
    /// # Errors
    /// On a store failure.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if self.status.state == CoverageState::Covered {
            self.ledger.heartbeat(self.ctx.clock.now()).await?;
        }
        self.ctx.store.release_lease(lease).await
    }
    /// Takes or extends the lease. `Ok(None)`: another owner holds it.
    async fn hold_lease(&mut self, now: DateTime<Utc>) -> Result<Option<String>, KeeperError> {
        let name = self.ctx.lease_name();
        let ttl = self.ctx.lease_ttl();
        if let Some(held) = &self.lease {
            match self.ctx.store.renew_lease(held, now, ttl).await {
                Ok(lease) => {
                    self.lease = Some(lease);
                    return Ok(None);
                }
                Err(StoreError::Conflict(_)) => self.lease = None,
                Err(e) => return Err(e.into()),
            }
        }
        match self
            .ctx
            .store
            .acquire_lease(&name, &self.ctx.owner, now, ttl)
            .await?
        {
            Some(lease) => {
                self.lease = Some(lease);
                self.take_over().await?;
                Ok(None)
            }
            None => Ok(Some("another replica".to_owned())),
        }
    }

    /// Fence check before acting: the lease must still be ours with the same fence.
    async fn fence(&mut self) -> Result<(), KeeperError> {
        let Some(held) = &self.lease else {
            return Err(KeeperError::LeaseLost);
        };
        let now = self.ctx.clock.now();
        match self
            .ctx
            .store
            .renew_lease(held, now, self.ctx.lease_ttl())
            .await
        {
            Ok(lease) => {
                self.lease = Some(lease);
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(KeeperError::LeaseLost),
            Err(e) => Err(e.into()),
        }
    }

    /// Becoming the account's keeper: downtime gap, remembered refusals and tokens (the
    /// subscription record holds the first subscription, the extras cursor the others).
    async fn take_over(&mut self) -> Result<(), KeeperError> {
        self.ledger.on_start().await?;
        let now = self.ctx.clock.now();
        let mut held = Vec::new();
        if let Some(record) = self.ctx.store.subscription(&self.ctx.account).await? {
            for f in &record.disabled_filters {
                if !self.refused.iter().any(|r| r.filter == f.filter) {
                    self.refused.push(f.clone());
                }
            }
            let (tokens, extras) = stored(self.ctx.store.as_ref(), &record).await?;
            held = tokens
                .into_iter()
                .map(|(id, token)| HeldSub {
                    id,
                    token,
                    sub: None,
                })
                .collect();
            self.saved_extras = extras;
        }
        for h in &held {
            self.ctx
                .tokens
                .set(&self.ctx.account, &h.id, h.token.clone(), now);
        }
        self.held = held;
        Ok(())
    }

    /// The covered extensions, numeric order, minus those whose filter was refused.
    fn wanted_extensions(&self) -> Vec<String> {
        let Some(rx) = &self.ctx.extensions else {
            return Vec::new();
        };
        let mut exts: Vec<String> = rx
            .borrow()
            .iter()
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
            .filter(|e| {
                !self
                    .refused_extensions
                    .iter()
                    .any(|r| plan::voicemail_extension(&r.filter) == Some(e.as_str()))
            })
            .cloned()
            .collect();
        exts.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        exts.dedup();
        exts
    }

    fn desired(&self) -> DesiredSet {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|r| normalize_filter(&r.filter))
            .collect();
        let extensions = self.wanted_extensions();
        let own_voicemail = normalize_filter(OWN_VOICEMAIL);
        let account_filters: Vec<String> = self
            .ctx
            .event_filters
            .iter()
            .filter(|f| {
                let n = normalize_filter(f);
                !refused.contains(&n) && (extensions.is_empty() || n != own_voicemail)
            })
            .cloned()
            .collect();
        let reminder = account_filters
            .iter()
            .find(|f| plan::is_reminder(f))
            .cloned();
        DesiredSet {
            address: self.ctx.address.clone(),
            account_filters,
            reminder,
            extensions,
            max_filters: self.ctx.max_filters_per_subscription,
            expires_in: self.ctx.expires_in,
            renew_before: self.ctx.renew_before,
        }
    }

    /// Remembers filters `sub` lists as disabled. With extensions packed, a disabled
    /// per-extension voicemail filter leaves that extension out (and is shown in status).
    fn remember_refusals(&mut self, sub: &Subscription, packed: bool) {
        for d in &sub.disabled_filters {
            let list = if packed && plan::voicemail_extension(&d.filter).is_some() {
                &mut self.refused_extensions
            } else {
                &mut self.refused
            };
            if !list.iter().any(|r| r.filter == d.filter) {
                let reason = match &d.message {
                    Some(m) if !m.is_empty() => format!("{}: {m}", d.reason),
                    _ => d.reason.clone(),
                };
                list.push(DisabledFilter {
                    filter: d.filter.clone(),
                    reason,
                });
            }
        }
    }

    /// Records a SUB-508 refusal of `filter`.
    fn refuse(&mut self, filter: String, message: &str) {
        tracing::warn!(account = %self.ctx.account, %filter, "filter refused: subscribing without it");
        let refusal = DisabledFilter {
            filter,
            reason: format!("SUB-508: {message}"),
        };
        if plan::voicemail_extension(&refusal.filter).is_some() {
            self.refused_extensions.push(refusal);
        } else {
            self.refused.push(refusal);
        }
    }

    async fn try_step(
        &mut self,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<StepState, KeeperError> {
        if let Some(holder) = self.hold_lease(now).await? {
            return Ok(StepState::Standby(holder));
        }
        if trigger == Trigger::Timer && self.silence_due().is_some_and(|at| at <= now) {
            self.silence_checked = self.last_event;
            if let Some(cur) = self.primary().cloned() {
                match self.ctx.api.get(&cur.id).await {
                    Ok(s) if s.status == SubscriptionStatus::Active && s.expires_at > now => {
                        tracing::info!(account = %self.ctx.account, "silent, but the subscription is Active");
                    }
                    Ok(_) | Err(ApiError::NotFound { .. }) => {
                        tracing::warn!(account = %self.ctx.account, "silent and the subscription is not Active: reconciling");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let listed = self.ctx.api.list().await?;
        let desired = self.desired();
        self.planned_extensions.clone_from(&desired.extensions);
        let packed = !desired.extensions.is_empty();
        let held: Vec<plan::Held> = self
            .held
            .iter()
            .map(|h| plan::Held {
                id: h.id.clone(),
                last: h.sub.clone(),
            })
            .collect();
        let mut p = plan::plan_set(&desired, &listed, &held, now, self.last_event);
        // A first create opens no gap unless it fails (see `step`): nothing was missed yet.
        // The earliest start first: the ledger keeps the start of an open gap.
        p.uncovered.sort_by_key(|u| u.uncovered.since);
        for part in &p.uncovered {
            let u = part.uncovered;
            if u.cause == GapCause::CreatedLate {
                continue;
            }
            if let Some(exts) = &part.extensions {
                // The ledger is per account: the gap is recorded account-wide.
                tracing::warn!(account = %self.ctx.account, cause = %u.cause, extensions = exts.len(), "a voicemail subscription was lost: recording an account-wide gap");
            }
            self.ledger.uncovered(u.since, u.cause).await?;
        }
        for slot in &p.slots {
            if let Some(s) = &slot.existing {
                self.remember_refusals(s, packed);
            }
        }
        if let Some(over) = &p.over_limit {
            tracing::warn!(account = %self.ctx.account, needed = over.needed, allowed = over.allowed, left_out = over.extensions.len(), "the subscription limit leaves extensions without a voicemail filter");
        }
        self.over_limit = p.over_limit.clone();
        if trigger == Trigger::Reminder {
            for slot in &mut p.slots {
                if slot.action == SlotAction::Keep {
                    slot.action = SlotAction::Renew;
                }
            }
        }
        let tokens: HashMap<String, Secret> = self
            .held
            .iter()
            .map(|h| (h.id.clone(), h.token.clone()))
            .collect();
        // Until the actions are done, only the valid subscriptions count as held.
        self.held = p
            .slots
            .iter()
            .filter_map(|slot| {
                let s = slot.existing.as_ref()?;
                tokens.get(&s.id).map(|t| HeldSub {
                    id: s.id.clone(),
                    token: t.clone(),
                    sub: Some(s.clone()),
                })
            })
            .collect();
        for (id, reason) in &p.deletes {
            self.fence().await?;
            tracing::info!(account = %self.ctx.account, %id, ?reason, "deleting subscription");
            match self.ctx.api.delete(id).await {
                Ok(()) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.ctx
                .tokens
                .retire(&self.ctx.account, id, self.ctx.clock.now());
        }
        // Our subscriptions in use: never deleted to make room for a create.
        let mut in_use: BTreeSet<String> = p
            .slots
            .iter()
            .filter_map(|s| s.existing.as_ref().map(|e| e.id.clone()))
            .collect();
        let mut next: Vec<HeldSub> = Vec::new();
        let mut failure = None;
        for slot in p.slots {
            if failure.is_some() {
                // Keep holding what was not touched.
                if let Some(s) = slot.existing
                    && let Some(token) = tokens.get(&s.id)
                {
                    next.push(HeldSub {
                        id: s.id.clone(),
                        token: token.clone(),
                        sub: Some(s),
                    });
                }
                continue;
            }
            match self.apply(slot, &tokens, &in_use, now, packed).await {
                Ok(h) => {
                    in_use.insert(h.id.clone());
                    next.push(h);
                }
                Err((e, kept)) => {
                    next.extend(kept);
                    failure = Some(e);
                }
            }
        }
        // Tokens of subscriptions no longer held (gone without a delete of ours) stop
        // being current.
        for id in tokens.keys() {
            if !next.iter().any(|h| &h.id == id) {
                self.ctx
                    .tokens
                    .retire(&self.ctx.account, id, self.ctx.clock.now());
            }
        }
        self.held = next;
        if let Some(e) = failure {
            // Keep what was created (its token) across a restart, if the lease is ours.
            if self.primary().is_some()
                && self.fence().await.is_ok()
                && let Err(save) = self.save(now).await
            {
                tracing::warn!(account = %self.ctx.account, error = %save, "could not store the subscriptions after a failed step");
            }
            return Err(e);
        }
        self.fence().await?;
        self.save(now).await?;
        self.ledger.covered(self.ctx.clock.now()).await?;
        Ok(StepState::Covered)
    }

    /// Stores the first subscription as the account's record and the others in the
    /// extras cursor.
    async fn save(&mut self, now: DateTime<Utc>) -> Result<(), KeeperError> {
        let Some((first, rest)) = self.held.split_first() else {
            return Err(KeeperError::Store(StoreError::Other(
                "no subscription after reconcile".to_owned(),
            )));
        };
        let Some(cur) = &first.sub else {
            return Err(KeeperError::Store(StoreError::Other(
                "no subscription after reconcile".to_owned(),
            )));
        };
        let record = SubscriptionRecord {
            account: self.ctx.account.clone(),
            id: cur.id.clone(),
            status: cur.status.to_string(),
            expires_at: cur.expires_at,
            address: self.ctx.address.clone(),
            verification_token: Some(first.token.clone()),
            event_filters: cur.event_filters.clone(),
            disabled_filters: self.refused.clone(),
            created_at: cur.created_at.unwrap_or(now),
            renewed_at: None,
            last_error: None,
        };
        self.ctx.store.upsert_subscription(&record).await?;
        let saved: Vec<SavedSub> = rest
            .iter()
            .map(|h| SavedSub {
                id: h.id.clone(),
                token: h.token.expose().to_owned(),
            })
            .collect();
        let json = serde_json::to_string(&saved)
            .map_err(|e| KeeperError::Store(StoreError::Other(e.to_string())))?;
        let unchanged = self.saved_extras.as_deref() == Some(json.as_str())
            || (self.saved_extras.is_none() && saved.is_empty());
        if !unchanged {
            self.ctx
                .store
                .set_cursor(&CursorUpdate {
                    account: Some(self.ctx.account.clone()),
                    name: EXTRA_SUBSCRIPTIONS_CURSOR.to_owned(),
                    value: json.clone(),
                })
                .await?;
            self.saved_extras = Some(json);
        }
        Ok(())
    }

    /// Carries out one slot's action. On failure, the subscription still held (if any)
    /// comes back with the error.
    async fn apply(
        &mut self,
        slot: SlotPlan,
        tokens: &HashMap<String, Secret>,
        in_use: &BTreeSet<String>,
        now: DateTime<Utc>,
        packed: bool,
    ) -> Result<HeldSub, (KeeperError, Option<HeldSub>)> {
        let held = slot.existing.as_ref().and_then(|s| {
            tokens.get(&s.id).map(|t| HeldSub {
                id: s.id.clone(),
                token: t.clone(),
                sub: Some(s.clone()),
            })
        });
        if let Err(e) = self.fence().await {
            return Err((e, held));
        }
        let Some(held) = held else {
            return self
                .create(&slot.filters, in_use)
                .await
                .map_err(|e| (e, None));
        };
        let result = match slot.action {
            SlotAction::Keep => return Ok(held),
            SlotAction::Renew => self.ctx.api.renew(&held.id).await,
            SlotAction::Update | SlotAction::Create => {
                self.update(&held.id, &slot.filters, packed).await
            }
        };
        match result {
            Ok(s) if s.status == SubscriptionStatus::Active => {
                self.remember_refusals(&s, packed);
                Ok(HeldSub {
                    sub: Some(s),
                    ..held
                })
            }
            Ok(s) => {
                tracing::warn!(account = %self.ctx.account, id = %held.id, status = %s.status, "renewal returned a non-Active subscription: recreating");
                self.replace(&held, now, &slot, in_use).await
            }
            Err(ApiError::NotFound { .. }) => {
                tracing::warn!(account = %self.ctx.account, id = %held.id, "renewal found no subscription: recreating");
                self.replace(&held, now, &slot, in_use).await
            }
            Err(e) => Err((e.into(), Some(held))),
        }
    }

    /// A renewal or update failed for good: gap, delete, new subscription.
    async fn replace(
        &mut self,
        held: &HeldSub,
        now: DateTime<Utc>,
        slot: &SlotPlan,
        in_use: &BTreeSet<String>,
    ) -> Result<HeldSub, (KeeperError, Option<HeldSub>)> {
        let since = held.sub.as_ref().map_or(now, |c| c.expires_at.min(now));
        if !slot.extensions.is_empty() && slot.existing.is_some() {
            tracing::warn!(account = %self.ctx.account, extensions = slot.extensions.len(), "recording an account-wide gap for a voicemail subscription");
        }
        let fail = |e: KeeperError| (e, None);
        self.ledger
            .uncovered(since, GapCause::RenewalFailed)
            .await
            .map_err(|e| fail(e.into()))?;
        match self.ctx.api.delete(&held.id).await {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(fail(e.into())),
        }
        self.ctx
            .tokens
            .retire(&self.ctx.account, &held.id, self.ctx.clock.now());
        self.create(&slot.filters, in_use).await.map_err(fail)
    }

    /// Replaces a subscription's filters (`PUT`, which also renews), dropping refused
    /// filters (SUB-508).
    async fn update(
        &mut self,
        id: &str,
        filters: &[String],
        packed: bool,
    ) -> Result<Subscription, ApiError> {
        let mut filters = filters.to_vec();
        loop {
            match self.ctx.api.update(id, &filters, self.ctx.expires_in).await {
                Ok(s) => {
                    tracing::info!(account = %self.ctx.account, %id, filters = filters.len(), "subscription filters updated");
                    self.remember_refusals(&s, packed);
                    return Ok(s);
                }
                Err(ApiError::InvalidFilters { message }) => {
                    let refused = filters
                        .iter()
                        .position(|f| mentions(&message, f))
                        .filter(|_| filters.len() > 1);
                    let Some(i) = refused else {
                        return Err(ApiError::InvalidFilters { message });
                    };
                    let filter = filters.remove(i);
                    self.refuse(filter, &message);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a subscription with `filters`, dropping refused filters (SUB-508) and
    /// deleting our strays (not `in_use`) on SUB-505.
    async fn create(
        &mut self,
        filters: &[String],
        in_use: &BTreeSet<String>,
    ) -> Result<HeldSub, KeeperError> {
        let mut filters = filters.to_vec();
        let mut limit_retried = false;
        loop {
            let token = new_token();
            let request = CreateSubscription {
                event_filters: filters.clone(),
                address: self.ctx.address.clone(),
                expires_in: self.ctx.expires_in,
                verification_token: Some(token.clone()),
            };
            match self.ctx.api.create(&request).await {
                Ok(sub) => {
                    tracing::info!(account = %self.ctx.account, id = %sub.id, filters = filters.len(), "subscription created");
                    let packed = filters
                        .iter()
                        .any(|f| plan::voicemail_extension(f).is_some());
                    self.remember_refusals(&sub, packed);
                    let now = self.ctx.clock.now();
                    self.ctx
                        .tokens
                        .set(&self.ctx.account, &sub.id, token.clone(), now);
                    return Ok(HeldSub {
                        id: sub.id.clone(),
                        token,
                        sub: Some(sub),
                    });
                }
                Err(ApiError::InvalidFilters { message }) => {
                    let refused = filters
                        .iter()
                        .position(|f| mentions(&message, f))
                        .filter(|_| filters.len() > 1);
                    let Some(i) = refused else {
                        return Err(ApiError::InvalidFilters { message }.into());
                    };
                    let filter = filters.remove(i);
                    self.refuse(filter, &message);
                }
                Err(ApiError::SubscriptionLimit { message }) => {
                    if limit_retried {
                        return Err(ApiError::SubscriptionLimit { message }.into());
                    }
                    limit_retried = true;
                    let listed = self.ctx.api.list().await?;
                    let mut ours: Vec<&Subscription> = listed
                        .iter()
                        .filter(|s| plan::is_ours(s, &self.ctx.address))
                        .collect();
                    if ours.is_empty() {
                        return Err(KeeperError::LimitByOthers {
                            count: listed.len(),
                        });
                    }
                    ours.retain(|s| !in_use.contains(&s.id));
                    if ours.is_empty() {
                        return Err(ApiError::SubscriptionLimit { message }.into());
                    }
                    ours.sort_by_key(|s| s.created_at);
                    for s in ours {
                        self.fence().await?;
                        tracing::info!(account = %self.ctx.account, id = %s.id, "SUB-505: deleting our stray");
                        match self.ctx.api.delete(&s.id).await {
                            Ok(()) | Err(ApiError::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                        self.ctx
                            .tokens
                            .retire(&self.ctx.account, &s.id, self.ctx.clock.now());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

enum StepState {
    Covered,
    Standby(String),
}

/// A command for a running keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reconcile now.
    Reconcile,
    /// A renewal-reminder event arrived: renew now.
    Reminder,
    /// A notification arrived from a subscription that is not the account's current one.
    Stray(StrayReport),
    /// A notification for the account arrived at this time.
    Event {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A running keeper.
#[derive(Debug)]
pub struct KeeperHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<KeeperStatus>,
    stop: tokio_util::sync::CancellationToken,
    join: JoinHandle<()>,
}

impl KeeperHandle {
    /// Sends a command; `false` when the keeper has stopped or its queue is full (a full
    /// queue already holds a pending reconcile, so dropping is harmless).
    pub fn send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// The latest status.
    pub fn status(&self) -> KeeperStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<KeeperStatus> {
        self.status.clone()
    }

    /// Stops the keeper (heartbeat, lease release) and waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "keeper task failed");
        }
    }
}

/// Maps any watch channel (e.g. extension discovery's coverage) to the covered extension
/// ids a keeper follows ([`KeeperContext::with_extensions`]). The forwarding task ends
/// when `source`'s sender is dropped or every receiver of the result is.
pub fn map_extensions<T, F>(
    mut source: watch::Receiver<T>,
    f: F,
) -> (watch::Receiver<Vec<String>>, JoinHandle<()>)
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Vec<String> + Send + 'static,
{
    let (tx, rx) = watch::channel(f(&source.borrow_and_update()));
    let join = tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let ids = f(&source.borrow_and_update());
                    tx.send_if_modified(|cur| {
                        if *cur == ids {
                            false
                        } else {
                            *cur = ids;
                            true
                        }
                    });
                }
                () = tx.closed() => return,
            }
        }
    });
    (rx, join)
}

/// Starts a keeper task for one account.
pub fn spawn(ctx: KeeperContext) -> KeeperHandle {
    let (tx, rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(KeeperStatus::starting(ctx.account.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let join = tokio::spawn(Box::pin(run(Keeper::new(ctx), rx, status_tx, stop.clone())));
    KeeperHandle {
        commands: tx,
        status: status_rx,
        stop,
        join,
    }
}

async fn run(
    mut keeper: Keeper,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<KeeperStatus>,
    stop: tokio_util::sync::CancellationToken,
) {
    let clock = Arc::clone(&keeper.ctx.clock);
    let spread = u64::try_from(keeper.ctx.start_spread.as_millis()).unwrap_or(u64::MAX);
    if spread > 0 {
        let delay = Duration::from_millis(rand::rng().random_range(0..=spread));
        tokio::select! {
            () = stop.cancelled() => return,
            () = clock.sleep(delay) => {}
        }
    }
    let mut outcome = tokio::select! {
        () = stop.cancelled() => return,
        o = keeper.start() => o,
    };
    status.send_replace(keeper.status().clone());
    let mut extensions = keeper.ctx.extensions.clone();
    loop {
        let wake = keeper.next_wake(outcome.next_wake);
        let wait = (wake - clock.now()).to_std().unwrap_or(Duration::ZERO);
        let changed = async {
            match extensions.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let trigger = tokio::select! {
            () = stop.cancelled() => break,
            () = clock.sleep(wait) => Trigger::Timer,
            still = changed => {
                if !still {
                    // The publisher is gone: keep the last list, stop watching.
                    extensions = None;
                }
                Trigger::Reconcile
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Reconcile | Command::Stray(_)) => Trigger::Reconcile,
                Some(Command::Reminder) => Trigger::Reminder,
                Some(Command::Event { at }) => {
                    keeper.note_event(at);
                    continue;
                }
            },
        };
        outcome = keeper.step(trigger).await;
        status.send_replace(keeper.status().clone());
    }
    if let Err(e) = keeper.shutdown().await {
        tracing::warn!(error = %e, "keeper shutdown could not record its heartbeat");
    }
}
