//! The per-account [`Keeper`] (`start` / `step` / `shutdown`) and the background task that
//! drives it ([`spawn`] → [`KeeperHandle`]).
//!
//! One keeper per account runs across all replicas: each step first takes or extends the
//! store lease `keeper:{account}`; a keeper that cannot hold it stands by, and one whose
//! lease changed hands (new fence) starts over as a newcomer would. Every write that acts on
//! RingCentral or the subscription record is preceded by that lease check.
//!
//! The lease is timed by [`LeaseTiming`] (its own clock, TTL and renew period): the task
//! renews it every renew period between steps (with a fair share, through the replica's
//! batch renewal: no write of its own), and a standby tries to take it as often, so a dead
//! replica's accounts move within the TTL. [`KeeperHandle::lease`] tells the account's
//! sync whether this replica holds it.
//!
//! The keeper holds one subscription, or several when it follows covered extensions
//! ([`KeeperContext::extensions`]): the first is stored as the account's subscription
//! record, the others (ids and tokens, in order) in the store cursor
//! [`EXTRA_SUBSCRIPTIONS_CURSOR`]. A change of the covered extensions wakes the task.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::gaps::Ledger;
use super::pack::{self, SlotAction};
use super::plan::{self, normalize_filter};
use super::{SubscriptionApi, TokenSink, explain};
use crate::account::AccountId;
use crate::cluster::LeaseTiming;
use crate::cluster::share::Renewal;
use crate::config::{AccountSettings, Secret, Settings};
use crate::ringcentral::{ApiError, Clock, Subscription, SubscriptionStatus, SystemClock};
use crate::store::{DisabledFilter, GapCause, Lease, Store, StoreError, chrono_duration};

mod actions;
mod desired;
mod held;
mod run;
mod status;

use held::stored;
pub use held::{EXTRA_SUBSCRIPTIONS_CURSOR, stored_tokens};
pub use run::{
    Command, KeeperHandle, follow_coverage, map_extensions, spawn, voicemail_extensions,
};
use status::summary;
pub use status::{CoverageState, ExtensionCoverage, KeeperStatus, SubscriptionSummary};

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
    /// configured `extension/~/voicemail` filter. `Some(vec![])` (or no channel): one
    /// subscription with `event_filters` (today's behaviour). `None` on the channel: not
    /// known yet (discovery has not answered): the keeper keeps the extensions its
    /// subscriptions carry, so a restart does not tear packed subscriptions down. See
    /// [`map_extensions`] and [`follow_coverage`].
    pub extensions: Option<watch::Receiver<Option<Vec<String>>>>,
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
    /// How the `keeper:{account}` lease is timed (its TTL, renew period and clock).
    pub lease: LeaseTiming,
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
            lease: LeaseTiming::from_settings(&settings.cluster),
        }
    }

    /// The same context with another lease timing.
    #[must_use]
    pub fn with_lease_timing(mut self, lease: LeaseTiming) -> Self {
        self.lease = lease;
        self
    }

    /// The same context following these covered extensions (see
    /// [`KeeperContext::extensions`]).
    #[must_use]
    pub fn with_extensions(mut self, extensions: watch::Receiver<Option<Vec<String>>>) -> Self {
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
        self.lease.ttl
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
    over_limit: Option<pack::OverLimit>,
    /// The extensions the last reconcile planned for.
    planned_extensions: Vec<String>,
    /// What the extras cursor holds (to skip rewriting it unchanged).
    saved_extras: Option<String>,
    last_event: Option<DateTime<Utc>>,
    silence_checked: Option<DateTime<Utc>>,
    status: KeeperStatus,
    lease_watch: watch::Sender<Option<Lease>>,
    /// When the lease was taken (lease clock, after the acquisition returned).
    lease_taken_at: Option<DateTime<Utc>>,
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

/// The account's own voicemail filter, replaced by per-extension ones when extensions are
/// covered.
const OWN_VOICEMAIL: &str = "/restapi/v1.0/account/~/extension/~/voicemail";

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
            lease_watch: watch::channel(None).0,
            lease_taken_at: None,
        }
    }

    /// Sees the account's lease as this keeper holds it (`None` while another replica
    /// does, or before the first step).
    pub fn lease_watch(&self) -> watch::Receiver<Option<Lease>> {
        self.lease_watch.subscribe()
    }

    fn publish_lease(&self) {
        if *self.lease_watch.borrow() != self.lease {
            self.lease_watch.send_replace(self.lease.clone());
        }
    }

    /// Gives the lease up because this replica keeps more than its share: a heartbeat
    /// first (so the next keeper's downtime gap starts now), then the release.
    async fn hand_over(&mut self, lease: Lease) {
        tracing::info!(account = %self.ctx.account, "handing the account over: this replica keeps more than its share");
        if self.status.state == CoverageState::Covered
            && let Err(e) = self.ledger.heartbeat(self.ctx.clock.now()).await
        {
            tracing::warn!(account = %self.ctx.account, error = %e, "could not record the heartbeat before handing over");
        }
        if let Err(e) = self.ctx.store.release_lease(&lease).await {
            tracing::warn!(account = %self.ctx.account, error = %e, "could not release the keeper lease");
        }
        self.lease = None;
    }

    /// Between steps: renews the lease when held (with a fair share, reads it from the
    /// replica's batch renewal instead). `true` when a step should run now (the lease was
    /// lost to another replica, or this keeper stands by and may take it).
    pub async fn tend_lease(&mut self) -> bool {
        let Some(held) = self.lease.clone() else {
            return true;
        };
        let now = self.ctx.lease.now();
        let share = self.ctx.lease.share.clone();
        let batch = share
            .as_ref()
            .map_or(Renewal::Unknown, |s| s.renewal(&held, self.lease_taken_at));
        let result = match batch {
            Renewal::Renewed(lease) => Ok(lease),
            Renewal::Gone => Err(StoreError::Conflict("taken by another replica".to_owned())),
            Renewal::Unknown => {
                self.ctx
                    .store
                    .renew_lease(&held, now, self.ctx.lease_ttl())
                    .await
            }
        };
        let step = match result {
            Ok(lease) if share.as_ref().is_some_and(|s| s.give_up_one()) => {
                self.hand_over(lease).await;
                true
            }
            Ok(lease) => {
                self.lease = Some(lease);
                false
            }
            Err(StoreError::Conflict(_)) => {
                tracing::warn!(account = %self.ctx.account, "keeper lease lost to another replica");
                if let Some(s) = &share {
                    s.lost();
                }
                self.lease = None;
                true
            }
            Err(e) => {
                tracing::warn!(account = %self.ctx.account, error = %e, "could not renew the keeper lease");
                false
            }
        };
        self.publish_lease();
        step
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
        self.publish_lease();
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
            .flat_map(pack::extensions_of)
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
        self.lease_watch.send_replace(None);
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if self.status.state == CoverageState::Covered {
            self.ledger.heartbeat(self.ctx.clock.now()).await?;
        }
        self.ctx.store.release_lease(lease).await
    }
    /// Takes or extends the lease. `Ok(None)`: another owner holds it.
    async fn hold_lease(&mut self) -> Result<Option<String>, KeeperError> {
        let now = self.ctx.lease.now();
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
        let share = self.ctx.lease.share.clone();
        if share.as_ref().is_some_and(|s| !s.may_take()) {
            return Ok(Some(
                "another replica (this one keeps its share)".to_owned(),
            ));
        }
        match self
            .ctx
            .store
            .acquire_lease(&name, &self.ctx.owner, now, ttl)
            .await?
        {
            Some(lease) => {
                self.lease = Some(lease);
                self.lease_taken_at = Some(self.ctx.lease.now());
                if let Some(s) = &share {
                    s.took();
                }
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
        let now = self.ctx.lease.now();
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

    async fn try_step(
        &mut self,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<StepState, KeeperError> {
        if let Some(holder) = self.hold_lease().await? {
            return Ok(StepState::Standby(holder));
        }
        if trigger == Trigger::Timer && self.silence_due().is_some_and(|at| at <= now) {
            self.silence_check(now).await?;
        }
        let listed = self.ctx.api.list().await?;
        let desired = self.desired(&listed);
        self.planned_extensions.clone_from(&desired.extensions);
        let packed = !desired.extensions.is_empty();
        let held: Vec<pack::Held> = self
            .held
            .iter()
            .map(|h| pack::Held {
                id: h.id.clone(),
                last: h.sub.clone(),
            })
            .collect();
        let mut p = pack::plan_set(&desired, &listed, &held, now, self.last_event);
        self.record_uncovered(&mut p.uncovered).await?;
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
        self.execute(p, now, packed).await?;
        self.fence().await?;
        self.save(now).await?;
        self.ledger.covered(self.ctx.clock.now()).await?;
        Ok(StepState::Covered)
    }

    /// Silent for too long: reads the first subscription back (the reconcile that follows
    /// repairs what is found).
    async fn silence_check(&mut self, now: DateTime<Utc>) -> Result<(), KeeperError> {
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
        Ok(())
    }

    /// Records the gaps the plan found, earliest first (the ledger keeps the start of an
    /// open gap).
    async fn record_uncovered(
        &mut self,
        uncovered: &mut [pack::UncoveredPart],
    ) -> Result<(), KeeperError> {
        // A first create opens no gap unless it fails (see `step`): nothing was missed yet.
        // The earliest start first: the ledger keeps the start of an open gap.
        uncovered.sort_by_key(|u| u.uncovered.since);
        for part in uncovered.iter() {
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
        Ok(())
    }
}

enum StepState {
    Covered,
    Standby(String),
}
