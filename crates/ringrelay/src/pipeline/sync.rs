//! Call-log and message-store sync per account: `call.logged`, `call.recording_ready`,
//! `call.missed` for calls whose live events were lost, and `voicemail.received`, all with
//! `source: "backfill"` and the same keys as their live twins.
//!
//! What is read follows the account's [`SyncScope`] (published by extension discovery): the
//! message store of every covered extension, and the call log at account level when the
//! token may read it (`FullCompanyCallLog`), else each covered extension's call log.
//!
//! - [`AccountSync::call_log`]: call-log-sync ISync from the stored token (the client falls
//!   back to FSync when RingCentral refuses the token), after each call ends (for the
//!   extensions that took part) and on a timer (a few extensions per tick, in rotation,
//!   when the log is read per extension: the call log is RingCentral's Heavy group).
//! - [`AccountSync::voicemail`]: the message store since the last voicemail seen, per
//!   extension; the timer reads a few extensions per tick in rotation, a message-store
//!   event reads its extension at once.
//! - [`AccountSync::backfill`]: the call log (Detailed) and every covered message store
//!   over a window widened by the margin: what a coverage gap, or an operator, asks for.
//!   [`AccountSync::backfill_gap`] does it step by step (one extension per step), each step
//!   committed with its progress, so a long backfill continues where it stopped after a
//!   restart.
//! - [`run_backfills`]: every closed gap in the ledger, backfilled once and marked done.
//!
//! Across replicas, an account's sync runs where its keeper runs: with
//! [`AccountSync::with_lease`] the timed and event-driven syncs and the gap backfill run
//! only while this replica holds the account's `keeper:{account}` lease, and their writes
//! (activities, sync cursors, backfill progress) are fenced by it. A backfill an operator
//! asks for runs anywhere.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{SinkRouter, emit_fenced};
use crate::account::AccountId;
use crate::activity::{Activity, ActivitySource};
use crate::cluster::is_live;
use crate::processor::calllog::{
    CallLogInput, backfill_missed, call_logged, logged_key, recording_ready,
};
use crate::processor::messages::{VoicemailInput, voicemail_received};
use crate::ringcentral::call_log::{CallLogQuery, CallLogRecord, CallLogScope};
use crate::ringcentral::governor::Priority;
use crate::ringcentral::messages::VoicemailQuery;
use crate::ringcentral::sync::CallLogSync;
use crate::ringcentral::{ApiError, Clock, RingCentral};
use crate::store::{BackfillState, CursorUpdate, Lease, Store, StoreError};

/// The cursor holding the account's call-log-sync token.
pub const CALL_LOG_TOKEN: &str = "sync.call_log_token";
/// The cursor holding the newest voicemail time seen.
pub const VOICEMAIL_SINCE: &str = "sync.voicemail_since";
/// Prefix of the cursor holding a gap backfill's progress (`backfill.progress.{gap id}`).
pub const BACKFILL_PROGRESS: &str = "backfill.progress";
/// Message stores read per timer tick when many extensions are covered (Light group).
pub const VOICEMAIL_PER_TICK: usize = 10;
/// Extension call logs read per timer tick when the log is read per extension (Heavy).
pub const CALL_LOG_PER_TICK: usize = 2;

/// What an account's sync reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncScope {
    /// The extensions whose message stores are read (and whose call logs, without the
    /// company call log); `~` is the JWT user's own extension.
    pub extensions: Vec<String>,
    /// The token may read the account-level call log (`FullCompanyCallLog`).
    pub company_call_log: bool,
    /// Whether this is known (extension discovery has answered at least once): until it
    /// is, the sync waits and gap backfills are held back, so a backfill never runs on a
    /// scope narrower than the account's.
    pub settled: bool,
}

impl Default for SyncScope {
    /// The JWT user's message store and the account's call log.
    fn default() -> Self {
        Self {
            extensions: vec!["~".to_owned()],
            company_call_log: true,
            settled: true,
        }
    }
}

impl SyncScope {
    /// The covered extensions in a stable order (numeric ids by value), without repeats.
    fn ordered(&self) -> Vec<String> {
        let set: BTreeSet<(usize, &str)> = self
            .extensions
            .iter()
            .map(|e| (e.len(), e.as_str()))
            .collect();
        set.into_iter().map(|(_, e)| e.to_owned()).collect()
    }

    /// Which of `ids` (the extensions a call or an event named) are covered; the JWT
    /// user's `~` stands for them when it is the only extension covered.
    fn covered_among(&self, ids: &[String]) -> Vec<String> {
        if self.extensions.len() == 1 && self.extensions[0] == "~" {
            return self.extensions.clone();
        }
        let covered: BTreeSet<&String> = self.extensions.iter().collect();
        let mut out: Vec<String> = ids
            .iter()
            .filter(|i| covered.contains(i))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn per_extension_cursor(base: &str, extension: &str) -> String {
    if extension == "~" {
        base.to_owned()
    } else {
        format!("{base}.{extension}")
    }
}

/// How far a gap's backfill got (stored as JSON in its progress cursor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// `false` while the call log is being read; `true` once the message stores are.
    voicemail_phase: bool,
    /// The last extension whose step is committed in this phase.
    after: Option<String>,
    /// Call-log records and voicemails read, and activities emitted, by the committed steps.
    call_log_records: u64,
    voicemails: u64,
    activities: u64,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// RingCentral refused or failed.
    #[error("RingCentral: {0}")]
    Api(#[from] ApiError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Another replica keeps this account (holds its `keeper:{account}` lease).
    #[error("another replica keeps this account")]
    NotHeld,
}

/// What a sync or backfill read and emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Call-log records read.
    pub call_log_records: u64,
    /// Voicemail messages read.
    pub voicemails: u64,
    /// Activities newly stored.
    pub activities_emitted: u64,
}

impl std::ops::AddAssign for SyncReport {
    fn add_assign(&mut self, o: Self) {
        self.call_log_records += o.call_log_records;
        self.voicemails += o.voicemails;
        self.activities_emitted += o.activities_emitted;
    }
}

/// One account's sync.
#[derive(Clone)]
pub struct AccountSync {
    account: AccountId,
    client: RingCentral,
    store: Arc<dyn Store>,
    router: SinkRouter,
    margin: chrono::Duration,
    scope: watch::Receiver<SyncScope>,
    voicemail_turn: Arc<AtomicUsize>,
    call_log_turn: Arc<AtomicUsize>,
    gate: Option<LeaseGate>,
}

/// The account keeper's lease as this replica holds it, and the clock it is timed by.
type LeaseGate = (watch::Receiver<Option<Lease>>, Arc<dyn Clock>);

impl AccountSync {
    /// Sync for `client`'s account; gaps are widened by `margin` on both sides.
    pub fn new(
        client: RingCentral,
        store: Arc<dyn Store>,
        router: SinkRouter,
        margin: Duration,
    ) -> Self {
        Self {
            account: client.account().clone(),
            client,
            store,
            router,
            margin: chrono::Duration::from_std(margin)
                .unwrap_or_else(|_| chrono::Duration::minutes(2)),
            scope: watch::channel(SyncScope::default()).1,
            voicemail_turn: Arc::new(AtomicUsize::new(0)),
            call_log_turn: Arc::new(AtomicUsize::new(0)),
            gate: None,
        }
    }

    /// Runs the syncs and gap backfills only while `lease` (the account keeper's, see
    /// [`crate::keeper::KeeperHandle::lease`]) is held and not lapsed on `clock`, and
    /// fences their writes with it.
    #[must_use]
    pub fn with_lease(
        mut self,
        lease: watch::Receiver<Option<Lease>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        self.gate = Some((lease, clock));
        self
    }

    /// The lease to write under: `Ok(None)` when not gated.
    ///
    /// # Errors
    /// [`SyncError::NotHeld`] while another replica keeps the account.
    pub fn fence(&self) -> Result<Option<Lease>, SyncError> {
        let Some((lease, clock)) = &self.gate else {
            return Ok(None);
        };
        let lease = lease.borrow().clone();
        if is_live(lease.as_ref(), clock.now()) {
            Ok(lease)
        } else {
            Err(SyncError::NotHeld)
        }
    }

    /// Whether this replica runs the account's sync now.
    pub fn holds_lease(&self) -> bool {
        self.fence().is_ok()
    }

    /// The same sync following `scope` (extension discovery's output) instead of the
    /// default (the JWT user's message store and the account's call log).
    #[must_use]
    pub fn with_scope(mut self, scope: watch::Receiver<SyncScope>) -> Self {
        self.scope = scope;
        self
    }

    /// What the sync reads now.
    pub fn scope(&self) -> SyncScope {
        self.scope.borrow().clone()
    }

    /// Whether the scope is known (see [`SyncScope::settled`]).
    pub fn ready(&self) -> bool {
        self.scope.borrow().settled
    }

    /// Up to `n` of `all`, the next ones in rotation (all of them when there are few).
    fn rotation(turn: &AtomicUsize, all: &[String], n: usize) -> Vec<String> {
        if all.len() <= n {
            return all.to_vec();
        }
        let start = turn.fetch_add(n, Ordering::Relaxed) % all.len();
        all.iter().cycle().skip(start).take(n).cloned().collect()
    }

    /// The account.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    fn now(&self) -> DateTime<Utc> {
        self.client.clock().now()
    }

    /// Activities for call-log records: `call.missed` for missed inbound calls, `call.logged`
    /// for finished records, and `call.recording_ready` when a record already logged (as its
    /// stored `call.logged` shows) has gained a recording.
    async fn records_to_activities(
        &self,
        records: &[CallLogRecord],
    ) -> Result<Vec<Activity>, StoreError> {
        let mut activities = Vec::new();
        for record in records {
            let input = match CallLogInput::from_value(&record.raw) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(account = %self.account, record = %record.id, error = %e, "call-log record skipped");
                    continue;
                }
            };
            activities.extend(backfill_missed(&input, &self.account));
            if !input.is_finished() {
                continue;
            }
            let logged = self
                .store
                .activity_payload(&logged_key(&self.account, &input.id))
                .await?
                .and_then(|p| CallLogInput::from_value(&p["data"]["rc"]).ok());
            match &logged {
                None => {
                    activities.extend(call_logged(&input, &self.account, ActivitySource::Backfill));
                }
                Some(prev) => activities.extend(recording_ready(
                    &input,
                    Some(prev),
                    &self.account,
                    ActivitySource::Backfill,
                )),
            }
        }
        Ok(activities)
    }

    /// Call-log-sync: the account's log with the company call log, else the next few
    /// covered extensions' logs in rotation.
    ///
    /// # Errors
    /// RingCentral's or the store's error (the first one; the steps before it are kept).
    pub async fn call_log(&self, priority: Priority) -> Result<SyncReport, SyncError> {
        let scope = self.scope();
        if scope.company_call_log {
            return self.call_log_sync(CallLogScope::Account, priority).await;
        }
        let batch = Self::rotation(&self.call_log_turn, &scope.ordered(), CALL_LOG_PER_TICK);
        self.extension_call_logs(&batch, priority).await
    }

    /// Call-log-sync after a call: the account's log with the company call log, else the
    /// logs of the covered extensions among `extension_ids`.
    ///
    /// # Errors
    /// RingCentral's or the store's error.
    pub async fn call_log_after_call(
        &self,
        extension_ids: &[String],
        priority: Priority,
    ) -> Result<SyncReport, SyncError> {
        let scope = self.scope();
        if scope.company_call_log {
            return self.call_log_sync(CallLogScope::Account, priority).await;
        }
        self.extension_call_logs(&scope.covered_among(extension_ids), priority)
            .await
    }

    async fn extension_call_logs(
        &self,
        extensions: &[String],
        priority: Priority,
    ) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        for ext in extensions {
            report += self
                .call_log_sync(CallLogScope::Extension(ext.clone()), priority)
                .await?;
        }
        Ok(report)
    }

    /// One call-log-sync: ISync from the stored token (FSync over the last day the first
    /// time, or when RingCentral refuses the token).
    async fn call_log_sync(
        &self,
        scope: CallLogScope,
        priority: Priority,
    ) -> Result<SyncReport, SyncError> {
        let fence = self.fence()?;
        let cursor = match &scope {
            CallLogScope::Account => CALL_LOG_TOKEN.to_owned(),
            CallLogScope::Extension(ext) => per_extension_cursor(CALL_LOG_TOKEN, ext),
        };
        let token = self.store.cursor(Some(&self.account), &cursor).await?;
        let result = self
            .client
            .call_log_sync(&CallLogSync {
                scope,
                sync_token: token,
                date_from: Some(self.now() - chrono::Duration::days(1)),
                record_count: crate::ringcentral::sync::MAX_RECORD_COUNT,
                priority,
            })
            .await?;
        let activities = self.records_to_activities(&result.records).await?;
        let emitted = emit_fenced(
            self.store.as_ref(),
            &self.router,
            activities,
            Some(CursorUpdate {
                account: Some(self.account.clone()),
                name: cursor,
                value: result.sync_token.clone(),
            }),
            fence.as_ref(),
        )
        .await?;
        Ok(SyncReport {
            call_log_records: result.records.len() as u64,
            voicemails: 0,
            activities_emitted: emitted as u64,
        })
    }

    async fn voicemail_window(
        &self,
        extension: &str,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        priority: Priority,
    ) -> Result<(Vec<Activity>, u64, Option<DateTime<Utc>>), SyncError> {
        let messages = self
            .client
            .voicemails(&VoicemailQuery {
                extension_id: extension.to_owned(),
                date_from: from,
                date_to: until,
                per_page: 250,
                priority,
            })
            .await?;
        let mut newest = None;
        let mut activities = Vec::new();
        for m in &messages {
            match VoicemailInput::from_value(&m.raw) {
                Ok(vm) => {
                    newest = newest.max(Some(vm.created_at));
                    activities.extend(voicemail_received(
                        &vm,
                        &self.account,
                        ActivitySource::Backfill,
                    ));
                }
                Err(e) => {
                    tracing::warn!(account = %self.account, message = %m.id, error = %e, "voicemail record skipped");
                }
            }
        }
        Ok((activities, messages.len() as u64, newest))
    }

    /// Voicemail of the next few covered extensions in rotation (all of them when few are
    /// covered).
    ///
    /// # Errors
    /// RingCentral's or the store's error (the first one; the steps before it are kept).
    pub async fn voicemail(&self, priority: Priority) -> Result<SyncReport, SyncError> {
        let batch = Self::rotation(
            &self.voicemail_turn,
            &self.scope().ordered(),
            VOICEMAIL_PER_TICK,
        );
        let mut report = SyncReport::default();
        for ext in &batch {
            report += self.voicemail_of(ext, priority).await?;
        }
        Ok(report)
    }

    /// Voicemail of the extension an event named (`None`, or one not covered while only
    /// `~` is: the JWT user's), when it is covered.
    ///
    /// # Errors
    /// RingCentral's or the store's error.
    pub async fn voicemail_after_event(
        &self,
        extension_id: Option<&str>,
        priority: Priority,
    ) -> Result<SyncReport, SyncError> {
        let scope = self.scope();
        let named: Vec<String> = extension_id.map(str::to_owned).into_iter().collect();
        let targets = match extension_id {
            Some("~") | None => scope.covered_among(&[]).into_iter().take(1).collect(),
            Some(_) => scope.covered_among(&named),
        };
        let mut report = SyncReport::default();
        for ext in &targets {
            report += self.voicemail_of(ext, priority).await?;
        }
        Ok(report)
    }

    /// One extension's voicemail since the newest one seen (minus the margin; the last day
    /// the first time).
    async fn voicemail_of(
        &self,
        extension: &str,
        priority: Priority,
    ) -> Result<SyncReport, SyncError> {
        let fence = self.fence()?;
        let cursor = per_extension_cursor(VOICEMAIL_SINCE, extension);
        let since = self
            .store
            .cursor(Some(&self.account), &cursor)
            .await?
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map_or_else(
                || self.now() - chrono::Duration::days(1),
                |t| t.with_timezone(&Utc) - self.margin,
            );
        let (activities, read, newest) = self
            .voicemail_window(extension, since, None, priority)
            .await?;
        let cursor = newest.map(|t| CursorUpdate {
            account: Some(self.account.clone()),
            name: cursor,
            value: t.to_rfc3339(),
        });
        let emitted = emit_fenced(
            self.store.as_ref(),
            &self.router,
            activities,
            cursor,
            fence.as_ref(),
        )
        .await?;
        Ok(SyncReport {
            call_log_records: 0,
            voicemails: read,
            activities_emitted: emitted as u64,
        })
    }

    /// Backfills `[from − margin, until + margin]` from the call log (Detailed view) and
    /// every covered message store, at backfill priority, in one go (an operator's request;
    /// a gap's backfill is [`AccountSync::backfill_gap`]).
    ///
    /// # Errors
    /// RingCentral's or the store's error.
    pub async fn backfill(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SyncReport, SyncError> {
        self.backfill_steps(None, from, until, None).await
    }

    /// [`AccountSync::backfill`] for gap `gap_id`, resumable: each step (the account's call
    /// log, or one extension's call log or message store) commits its activities together
    /// with the gap's progress, and a later call continues after the last committed step.
    ///
    /// With a lease gate, only while the lease is held, each step fenced by it.
    ///
    /// # Errors
    /// RingCentral's or the store's error; the steps before it stay committed;
    /// [`SyncError::NotHeld`] while another replica keeps the account.
    pub async fn backfill_gap(
        &self,
        gap_id: i64,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SyncReport, SyncError> {
        let fence = self.fence()?;
        self.backfill_steps(
            Some(format!("{BACKFILL_PROGRESS}.{gap_id}")),
            from,
            until,
            fence.as_ref(),
        )
        .await
    }

    async fn backfill_steps(
        &self,
        progress_cursor: Option<String>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        fence: Option<&Lease>,
    ) -> Result<SyncReport, SyncError> {
        let (from, until) = (from - self.margin, until + self.margin);
        let scope = self.scope();
        let extensions = scope.ordered();
        let mut progress = match &progress_cursor {
            Some(name) => self
                .store
                .cursor(Some(&self.account), name)
                .await?
                .and_then(|v| serde_json::from_str::<Progress>(&v).ok())
                .unwrap_or_default(),
            None => Progress::default(),
        };
        if progress != Progress::default() {
            tracing::info!(account = %self.account, after = ?progress.after, voicemail_phase = progress.voicemail_phase, "backfill resumes");
        }
        let remaining = |after: &Option<String>| -> Vec<String> {
            extensions
                .iter()
                .filter(|e| {
                    after
                        .as_ref()
                        .is_none_or(|a| (e.len(), e.as_str()) > (a.len(), a.as_str()))
                })
                .cloned()
                .collect()
        };
        if !progress.voicemail_phase {
            let steps: Vec<Option<String>> = if scope.company_call_log {
                vec![None]
            } else {
                remaining(&progress.after).into_iter().map(Some).collect()
            };
            for ext in steps {
                let mut query = CallLogQuery::account(from, Some(until));
                query.priority = Priority::Backfill;
                if let Some(ext) = &ext {
                    query.scope = CallLogScope::Extension(ext.clone());
                }
                let records = self.client.call_log(&query).await?;
                let activities = self.records_to_activities(&records).await?;
                progress.call_log_records += records.len() as u64;
                progress.after.clone_from(&ext);
                if ext.is_none() {
                    progress.voicemail_phase = true;
                }
                progress.activities += self
                    .emit_step(activities, progress_cursor.as_ref(), &progress, fence)
                    .await?;
            }
            progress.voicemail_phase = true;
            progress.after = None;
        }
        for ext in remaining(&progress.after) {
            let (activities, read, _) = self
                .voicemail_window(&ext, from, Some(until), Priority::Backfill)
                .await?;
            progress.voicemails += read;
            progress.after = Some(ext);
            progress.activities += self
                .emit_step(activities, progress_cursor.as_ref(), &progress, fence)
                .await?;
        }
        let report = SyncReport {
            call_log_records: progress.call_log_records,
            voicemails: progress.voicemails,
            activities_emitted: progress.activities,
        };
        tracing::info!(
            account = %self.account, %from, %until,
            extensions = extensions.len(),
            company_call_log = scope.company_call_log,
            records = report.call_log_records,
            voicemails = report.voicemails,
            emitted = report.activities_emitted,
            "backfill done"
        );
        Ok(report)
    }

    /// Commits one backfill step's activities with the progress (when resumable).
    async fn emit_step(
        &self,
        activities: Vec<Activity>,
        cursor: Option<&String>,
        progress: &Progress,
        fence: Option<&Lease>,
    ) -> Result<u64, SyncError> {
        let update = cursor.map(|name| CursorUpdate {
            account: Some(self.account.clone()),
            name: name.clone(),
            value: serde_json::to_string(progress).unwrap_or_default(),
        });
        Ok(emit_fenced(self.store.as_ref(), &self.router, activities, update, fence).await? as u64)
    }

    /// Runs until `shutdown`: a call-log sync and a voicemail sync every `interval`, a
    /// call-log sync `lag` after each call ends (and again `2 × lag` later, as the call log
    /// may not show it yet), and a voicemail sync whenever asked.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        mut triggers: mpsc::UnboundedReceiver<SyncTrigger>,
        interval: Duration,
        lag: Duration,
    ) {
        let mut scope = self.scope.clone();
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = scope.wait_for(|s| s.settled) => if r.is_err() {
                tracing::warn!(account = %self.account, "extension discovery stopped before it answered; the sync does not start");
                return;
            },
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due: Vec<tokio::time::Instant> = Vec::new();
        // The extensions of the calls that ended since the due syncs were planned.
        let mut called: BTreeSet<String> = BTreeSet::new();
        loop {
            let next_due = due.iter().min().copied();
            let wait_due = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    let work = async {
                        self.log_result("call log", self.call_log(Priority::Live).await);
                        self.log_result("voicemail", self.voicemail(Priority::Live).await);
                    };
                    if until_stopped(&shutdown, work).await.is_none() {
                        return;
                    }
                }
                () = wait_due => {
                    let now = tokio::time::Instant::now();
                    due.retain(|t| *t > now);
                    let extensions: Vec<String> = called.iter().cloned().collect();
                    if due.is_empty() {
                        called.clear();
                    }
                    let work = async {
                        self.log_result(
                            "call log",
                            self.call_log_after_call(&extensions, Priority::Live).await,
                        );
                    };
                    if until_stopped(&shutdown, work).await.is_none() {
                        return;
                    }
                }
                t = triggers.recv() => match t {
                    None => return,
                    Some(SyncTrigger::CallFinished { extension_ids }) => {
                        called.extend(extension_ids);
                        let now = tokio::time::Instant::now();
                        due.push(now + lag);
                        due.push(now + lag * 2);
                        due.sort();
                        due.dedup_by(|a, b| a.duration_since(*b) < Duration::from_secs(1));
                    }
                    Some(SyncTrigger::Voicemail { extension_id }) => {
                        let work = async {
                            self.log_result(
                                "voicemail",
                                self.voicemail_after_event(extension_id.as_deref(), Priority::Live)
                                    .await,
                            );
                        };
                        if until_stopped(&shutdown, work).await.is_none() {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn log_result(&self, what: &str, r: Result<SyncReport, SyncError>) {
        match r {
            Ok(r) if r.activities_emitted > 0 => {
                tracing::info!(account = %self.account, what, emitted = r.activities_emitted, "sync emitted activities");
            }
            Ok(_) | Err(SyncError::NotHeld) => {}
            Err(e) => {
                metrics::counter!("ringrelay_sync_failures_total", "account" => self.account.to_string()).increment(1);
                tracing::warn!(account = %self.account, what, error = %e, "sync failed; the next one retries");
            }
        }
    }
}

/// Runs `work` unless `shutdown` fires first (then `None`: the work is dropped, which is
/// safe because every step commits its activities and its cursor together).
pub async fn until_stopped<T>(
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        () = shutdown.cancelled() => None,
        r = work => Some(r),
    }
}

/// Why an account's sync should run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncTrigger {
    /// A call ended: its call-log record appears after the lag.
    CallFinished {
        /// The account's extensions that took part.
        extension_ids: Vec<String>,
    },
    /// The message store reported new voicemail.
    Voicemail {
        /// The extension whose message store changed, when the event named it.
        extension_id: Option<String>,
    },
}

/// Backfills every closed gap of the ledger that is not yet backfilled; returns how many
/// gaps were done.
///
/// # Errors
/// The store's error when listing gaps; a failed backfill is recorded on its gap.
pub async fn run_backfills(
    store: &dyn Store,
    syncs: &[AccountSync],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut done = 0;
    for gap in store.gaps_to_backfill(32).await? {
        let Some(until) = gap.until else { continue };
        let Some(sync) = syncs.iter().find(|s| s.account() == &gap.account) else {
            continue;
        };
        // Only the replica keeping the account backfills its gaps (once, fenced).
        if !sync.holds_lease() {
            continue;
        }
        if !sync.ready() {
            tracing::debug!(account = %gap.account, gap = gap.id, "backfill waits for extension discovery");
            continue;
        }
        match sync.backfill_gap(gap.id, gap.from, until).await {
            Ok(r) => {
                store
                    .mark_gap_backfilled(
                        gap.id,
                        BackfillState::Done {
                            records: r.call_log_records + r.voicemails,
                            activities: r.activities_emitted,
                        },
                        now,
                    )
                    .await?;
                metrics::counter!("ringrelay_backfills_total", "account" => gap.account.to_string()).increment(1);
                done += 1;
            }
            Err(e) => {
                tracing::warn!(account = %gap.account, gap = gap.id, error = %e, "gap backfill failed; will retry");
                if matches!(e, SyncError::Api(ref api) if !api.is_retryable()) {
                    store
                        .mark_gap_backfilled(
                            gap.id,
                            BackfillState::Failed {
                                error: e.to_string(),
                            },
                            now,
                        )
                        .await?;
                }
            }
        }
    }
    Ok(done)
}

/// Runs [`run_backfills`] every `every` until `shutdown`.
pub async fn backfill_loop(
    store: Arc<dyn Store>,
    syncs: Vec<AccountSync>,
    shutdown: CancellationToken,
    every: Duration,
) {
    loop {
        let now = syncs.first().map_or_else(Utc::now, AccountSync::now);
        match until_stopped(&shutdown, run_backfills(store.as_ref(), &syncs, now)).await {
            None => return,
            Some(Err(e)) => tracing::warn!(error = %e, "listing gaps to backfill failed"),
            Some(Ok(_)) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(ids: &[&str]) -> SyncScope {
        SyncScope {
            extensions: ids.iter().map(|s| (*s).to_owned()).collect(),
            company_call_log: true,
            settled: true,
        }
    }

    #[test]
    fn extensions_are_ordered_by_numeric_value_without_repeats() {
        assert_eq!(
            scope(&["100", "9", "25", "9"]).ordered(),
            vec!["9".to_owned(), "25".to_owned(), "100".to_owned()]
        );
    }

    #[test]
    fn only_covered_extensions_are_read_and_tilde_stands_for_the_user() {
        let company = scope(&["1", "2", "3"]);
        assert_eq!(
            company.covered_among(&["3".to_owned(), "7".to_owned(), "3".to_owned()]),
            vec!["3".to_owned()]
        );
        assert!(company.covered_among(&[]).is_empty());
        let own = SyncScope::default();
        assert_eq!(own.covered_among(&["42".to_owned()]), vec!["~".to_owned()]);
    }

    #[test]
    fn rotation_takes_the_next_few_and_wraps() {
        let all: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        let turn = AtomicUsize::new(0);
        assert_eq!(AccountSync::rotation(&turn, &all, 2), vec!["1", "2"]);
        assert_eq!(AccountSync::rotation(&turn, &all, 2), vec!["3", "4"]);
        assert_eq!(AccountSync::rotation(&turn, &all, 2), vec!["5", "1"]);
        assert_eq!(
            AccountSync::rotation(&turn, &all, 9),
            all,
            "few: all of them"
        );
    }

    #[test]
    fn per_extension_cursors_keep_the_old_names_for_the_user() {
        assert_eq!(per_extension_cursor(VOICEMAIL_SINCE, "~"), VOICEMAIL_SINCE);
        assert_eq!(
            per_extension_cursor(CALL_LOG_TOKEN, "62295327001"),
            "sync.call_log_token.62295327001"
        );
    }
}
