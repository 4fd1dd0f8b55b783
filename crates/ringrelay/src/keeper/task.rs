//! The per-account [`Keeper`] (`start` / `step` / `shutdown`) and the background task that
//! drives it ([`spawn`] → [`KeeperHandle`]).
//!
//! One keeper per account runs across all replicas: each step first takes or extends the
//! store lease `keeper:{account}`; a keeper that cannot hold it stands by, and one whose
//! lease changed hands (new fence) starts over as a newcomer would. Every write that acts on
//! RingCentral or the subscription record is preceded by that lease check.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use super::gaps::Ledger;
use super::plan::{self, Action, Desired, normalize_filter};
use super::{SubscriptionApi, TokenSink, explain};
use crate::account::AccountId;
use crate::config::{AccountSettings, Secret, Settings};
use crate::receiver::StrayReport;
use crate::ringcentral::{
    ApiError, Clock, CreateSubscription, Subscription, SubscriptionStatus, SystemClock,
};
use crate::store::{
    DisabledFilter, Gap, GapCause, Lease, Store, StoreError, SubscriptionRecord, chrono_duration,
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

/// A keeper's state for the status page and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperStatus {
    /// The account.
    pub account: AccountId,
    /// Covered or not.
    pub state: CoverageState,
    /// The kept subscription.
    pub subscription: Option<SubscriptionSummary>,
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

/// One account's subscription keeper.
pub struct Keeper {
    ctx: KeeperContext,
    ledger: Ledger,
    lease: Option<Lease>,
    backoff: Backoff,
    refused: Vec<DisabledFilter>,
    current: Option<Subscription>,
    token: Option<Secret>,
    /// The stored subscription id whose token is `token`.
    known_id: Option<String>,
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
            current: None,
            token: None,
            known_id: None,
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
                    .current
                    .as_ref()
                    .map_or(now + interval, |s| plan::renew_at(s, self.ctx.renew_before));
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
                let covered = self
                    .current
                    .as_ref()
                    .is_some_and(|s| s.status == SubscriptionStatus::Active && s.expires_at > now);
                let (since, cause) = match &self.current {
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
        self.status.subscription = self.current.as_ref().map(|s| SubscriptionSummary {
            id: s.id.clone(),
            status: s.status.to_string(),
            expires_at: s.expires_at,
            renew_at: plan::renew_at(s, self.ctx.renew_before),
        });
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

    /// The earlier of `planned` and the next silence check.
    fn next_wake(&self, planned: DateTime<Utc>) -> DateTime<Utc> {
        match self.silence_due() {
            Some(at) => planned.min(at),
            None => planned,
        }
    }

    fn silence_due(&self) -> Option<DateTime<Utc>> {
        let last = self.last_event?;
        if self.current.is_none() || self.silence_checked == Some(last) {
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

    /// Becoming the account's keeper: downtime gap, remembered refusals and token.
    async fn take_over(&mut self) -> Result<(), KeeperError> {
        self.ledger.on_start().await?;
        if let Some(record) = self.ctx.store.subscription(&self.ctx.account).await? {
            for f in record.disabled_filters {
                if !self.refused.iter().any(|r| r.filter == f.filter) {
                    self.refused.push(f);
                }
            }
            if let Some(token) = record.verification_token {
                let now = self.ctx.clock.now();
                self.ctx
                    .tokens
                    .set(&self.ctx.account, &record.id, token.clone(), now);
                self.token = Some(token);
                self.known_id = Some(record.id);
            }
        }
        Ok(())
    }

    fn desired(&self) -> Desired {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|r| normalize_filter(&r.filter))
            .collect();
        Desired {
            address: self.ctx.address.clone(),
            event_filters: self
                .ctx
                .event_filters
                .iter()
                .filter(|f| !refused.contains(&normalize_filter(f)))
                .cloned()
                .collect(),
            expires_in: self.ctx.expires_in,
            renew_before: self.ctx.renew_before,
        }
    }

    fn remember_refusals(&mut self, sub: &Subscription) {
        for d in &sub.disabled_filters {
            if !self.refused.iter().any(|r| r.filter == d.filter) {
                let reason = match &d.message {
                    Some(m) if !m.is_empty() => format!("{}: {m}", d.reason),
                    _ => d.reason.clone(),
                };
                self.refused.push(DisabledFilter {
                    filter: d.filter.clone(),
                    reason,
                });
            }
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
            if let Some(cur) = self.current.clone() {
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
        let known = self.token.as_ref().and(
            self.current
                .as_ref()
                .map(|c| c.id.clone())
                .or(self.known_id.clone()),
        );
        let mut p = plan::plan(&desired, &listed, known.as_deref(), now, self.last_event);
        // Ours was there and vanished: uncovered since it stopped delivering.
        if p.keep.is_none()
            && let (Some(prev), Some(u)) = (&self.current, p.uncovered.as_mut())
            && !listed.iter().any(|s| s.id == prev.id)
            && u.cause == GapCause::CreatedLate
        {
            let since = self.last_event.unwrap_or(now).min(prev.expires_at).min(now);
            *u = plan::Uncovered {
                since,
                cause: GapCause::Expired,
            };
        }
        // A first create opens no gap unless it fails (see `step`): nothing was missed yet.
        if let Some(u) = p.uncovered
            && u.cause != GapCause::CreatedLate
        {
            self.ledger.uncovered(u.since, u.cause).await?;
        }
        if let Some(keep) = &p.keep {
            self.remember_refusals(keep);
        }
        self.current = p.keep.clone();
        let force_renew = trigger == Trigger::Reminder;
        if force_renew
            && !p.actions.iter().any(|a| matches!(a, Action::Renew { .. }))
            && let Some(k) = &p.keep
        {
            p.actions.push(Action::Renew { id: k.id.clone() });
        }
        for action in p.actions {
            self.fence().await?;
            match action {
                Action::Delete { id, reason } => {
                    tracing::info!(account = %self.ctx.account, %id, ?reason, "deleting subscription");
                    match self.ctx.api.delete(&id).await {
                        Ok(()) | Err(ApiError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Action::Renew { id } => self.renew(&id, now).await?,
                Action::Create => self.create(&desired).await?,
            }
        }
        self.fence().await?;
        let Some(cur) = &self.current else {
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
            verification_token: self.token.clone(),
            event_filters: cur.event_filters.clone(),
            disabled_filters: self.refused.clone(),
            created_at: cur.created_at.unwrap_or(now),
            renewed_at: None,
            last_error: None,
        };
        self.ctx.store.upsert_subscription(&record).await?;
        self.ledger.covered(self.ctx.clock.now()).await?;
        Ok(StepState::Covered)
    }

    async fn renew(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), KeeperError> {
        match self.ctx.api.renew(id).await {
            Ok(s) if s.status == SubscriptionStatus::Active => {
                self.remember_refusals(&s);
                self.current = Some(s);
                Ok(())
            }
            Ok(s) => {
                tracing::warn!(account = %self.ctx.account, %id, status = %s.status, "renewal returned a non-Active subscription: recreating");
                self.ledger.uncovered(now, GapCause::RenewalFailed).await?;
                match self.ctx.api.delete(id).await {
                    Ok(()) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                self.current = None;
                self.create(&self.desired()).await
            }
            Err(ApiError::NotFound { .. }) => {
                tracing::warn!(account = %self.ctx.account, %id, "renewal found no subscription: recreating");
                let since = self.current.as_ref().map_or(now, |c| c.expires_at.min(now));
                self.ledger
                    .uncovered(since, GapCause::RenewalFailed)
                    .await?;
                self.current = None;
                self.create(&self.desired()).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the subscription, dropping refused filters (SUB-508) and deleting our own
    /// strays on SUB-505.
    async fn create(&mut self, desired: &Desired) -> Result<(), KeeperError> {
        let mut filters = desired.event_filters.clone();
        let mut limit_retried = false;
        loop {
            let token = new_token();
            let request = CreateSubscription {
                event_filters: filters.clone(),
                address: desired.address.clone(),
                expires_in: desired.expires_in,
                verification_token: Some(token.clone()),
            };
            match self.ctx.api.create(&request).await {
                Ok(sub) => {
                    tracing::info!(account = %self.ctx.account, id = %sub.id, "subscription created");
                    self.remember_refusals(&sub);
                    let now = self.ctx.clock.now();
                    self.ctx
                        .tokens
                        .set(&self.ctx.account, &sub.id, token.clone(), now);
                    self.token = Some(token);
                    self.current = Some(sub);
                    return Ok(());
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
                    tracing::warn!(account = %self.ctx.account, %filter, "filter refused: subscribing without it");
                    self.refused.push(DisabledFilter {
                        filter,
                        reason: format!("SUB-508: {message}"),
                    });
                }
                Err(ApiError::SubscriptionLimit { message }) => {
                    if limit_retried {
                        return Err(ApiError::SubscriptionLimit { message }.into());
                    }
                    limit_retried = true;
                    let listed = self.ctx.api.list().await?;
                    let mut ours: Vec<&Subscription> = listed
                        .iter()
                        .filter(|s| plan::is_ours(s, &desired.address))
                        .collect();
                    if ours.is_empty() {
                        return Err(KeeperError::LimitByOthers {
                            count: listed.len(),
                        });
                    }
                    ours.sort_by_key(|s| s.created_at);
                    for s in ours {
                        self.fence().await?;
                        tracing::info!(account = %self.ctx.account, id = %s.id, "SUB-505: deleting our stray");
                        match self.ctx.api.delete(&s.id).await {
                            Ok(()) | Err(ApiError::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
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
    loop {
        let wake = keeper.next_wake(outcome.next_wake);
        let wait = (wake - clock.now()).to_std().unwrap_or(Duration::ZERO);
        let trigger = tokio::select! {
            () = stop.cancelled() => break,
            () = clock.sleep(wait) => Trigger::Timer,
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
