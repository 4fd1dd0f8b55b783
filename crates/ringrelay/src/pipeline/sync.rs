//! Call-log and message-store sync per account: `call.logged`, `call.recording_ready`,
//! `call.missed` for calls whose live events were lost, and `voicemail.received`, all with
//! `source: "backfill"` and the same keys as their live twins.
//!
//! - [`AccountSync::call_log`]: call-log-sync ISync from the stored token (the client falls
//!   back to FSync when RingCentral refuses the token), after each call ends and on a timer.
//! - [`AccountSync::voicemail`]: the message store since the last voicemail seen.
//! - [`AccountSync::backfill`]: the call log (Detailed, account level) and message store
//!   over a window widened by the margin: what a coverage gap, or an operator, asks for.
//! - [`run_backfills`]: every closed gap in the ledger, backfilled once and marked done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{SinkRouter, emit};
use crate::account::AccountId;
use crate::activity::{Activity, ActivitySource};
use crate::processor::calllog::{
    CallLogInput, backfill_missed, call_logged, logged_key, recording_ready,
};
use crate::processor::messages::{VoicemailInput, voicemail_received};
use crate::ringcentral::call_log::{CallLogQuery, CallLogRecord, CallLogScope};
use crate::ringcentral::governor::Priority;
use crate::ringcentral::messages::VoicemailQuery;
use crate::ringcentral::sync::CallLogSync;
use crate::ringcentral::{ApiError, RingCentral};
use crate::store::{BackfillState, CursorUpdate, Store, StoreError};

/// The cursor holding the account's call-log-sync token.
pub const CALL_LOG_TOKEN: &str = "sync.call_log_token";
/// The cursor holding the newest voicemail time seen.
pub const VOICEMAIL_SINCE: &str = "sync.voicemail_since";

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// RingCentral refused or failed.
    #[error("RingCentral: {0}")]
    Api(#[from] ApiError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
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
}

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
        }
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

    /// Call-log-sync: ISync from the stored token (FSync over the last day the first
    /// time, or when RingCentral refuses the token).
    ///
    /// # Errors
    /// RingCentral's or the store's error; the token is only advanced after the
    /// activities are committed.
    pub async fn call_log(&self, priority: Priority) -> Result<SyncReport, SyncError> {
        let token = self
            .store
            .cursor(Some(&self.account), CALL_LOG_TOKEN)
            .await?;
        let result = self
            .client
            .call_log_sync(&CallLogSync {
                scope: CallLogScope::Account,
                sync_token: token,
                date_from: Some(self.now() - chrono::Duration::days(1)),
                record_count: crate::ringcentral::sync::MAX_RECORD_COUNT,
                priority,
            })
            .await?;
        let activities = self.records_to_activities(&result.records).await?;
        let emitted = emit(
            self.store.as_ref(),
            &self.router,
            activities,
            Some(CursorUpdate {
                account: Some(self.account.clone()),
                name: CALL_LOG_TOKEN.to_owned(),
                value: result.sync_token.clone(),
            }),
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
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        priority: Priority,
    ) -> Result<(Vec<Activity>, u64, Option<DateTime<Utc>>), SyncError> {
        let messages = self
            .client
            .voicemails(&VoicemailQuery {
                extension_id: "~".to_owned(),
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

    /// Voicemail since the newest one seen (minus the margin; the last day the first time).
    ///
    /// # Errors
    /// RingCentral's or the store's error.
    pub async fn voicemail(&self, priority: Priority) -> Result<SyncReport, SyncError> {
        let since = self
            .store
            .cursor(Some(&self.account), VOICEMAIL_SINCE)
            .await?
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map_or_else(
                || self.now() - chrono::Duration::days(1),
                |t| t.with_timezone(&Utc) - self.margin,
            );
        let (activities, read, newest) = self.voicemail_window(since, None, priority).await?;
        let cursor = newest.map(|t| CursorUpdate {
            account: Some(self.account.clone()),
            name: VOICEMAIL_SINCE.to_owned(),
            value: t.to_rfc3339(),
        });
        let emitted = emit(self.store.as_ref(), &self.router, activities, cursor).await?;
        Ok(SyncReport {
            call_log_records: 0,
            voicemails: read,
            activities_emitted: emitted as u64,
        })
    }

    /// Backfills `[from − margin, until + margin]` from the call log (Detailed view,
    /// account level) and the message store, at backfill priority.
    ///
    /// # Errors
    /// RingCentral's or the store's error.
    pub async fn backfill(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<SyncReport, SyncError> {
        let (from, until) = (from - self.margin, until + self.margin);
        let mut query = CallLogQuery::account(from, Some(until));
        query.priority = Priority::Backfill;
        let records = self.client.call_log(&query).await?;
        let mut activities = self.records_to_activities(&records).await?;
        let (vm, read, _) = self
            .voicemail_window(from, Some(until), Priority::Backfill)
            .await?;
        activities.extend(vm);
        let emitted = emit(self.store.as_ref(), &self.router, activities, None).await?;
        tracing::info!(account = %self.account, %from, %until, records = records.len(), voicemails = read, emitted, "backfill done");
        Ok(SyncReport {
            call_log_records: records.len() as u64,
            voicemails: read,
            activities_emitted: emitted as u64,
        })
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
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due: Vec<tokio::time::Instant> = Vec::new();
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
                    let work = async {
                        self.log_result("call log", self.call_log(Priority::Live).await);
                    };
                    if until_stopped(&shutdown, work).await.is_none() {
                        return;
                    }
                }
                t = triggers.recv() => match t {
                    None => return,
                    Some(SyncTrigger::CallFinished) => {
                        let now = tokio::time::Instant::now();
                        due.push(now + lag);
                        due.push(now + lag * 2);
                        due.sort();
                        due.dedup_by(|a, b| a.duration_since(*b) < Duration::from_secs(1));
                    }
                    Some(SyncTrigger::Voicemail) => {
                        let work = async {
                            self.log_result("voicemail", self.voicemail(Priority::Live).await);
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
            Ok(_) => {}
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTrigger {
    /// A call ended: its call-log record appears after the lag.
    CallFinished,
    /// The message store reported new voicemail.
    Voicemail,
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
        match sync.backfill(gap.from, until).await {
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
