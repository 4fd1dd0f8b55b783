//! The processor loop: reads the inbox in order from its stored position, derives
//! activities with the pure [`crate::processor`] core, and writes them, their deliveries
//! and the new position in one transaction. Telephony session state is saved after that
//! commit, so a crash in between only makes the next run derive the same activities again,
//! which the store's unique keys absorb.
//!
//! Across replicas one processor works at a time: with [`Processor::with_lease`] a pass
//! runs only while this replica holds the `processor` lease, and its commit (activities,
//! deliveries, cursor) is fenced by it, so a processor that lost the lease (paused past it,
//! partitioned) cannot move the cursor or add activities. The others stand by and take
//! the lease once it lapses.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{PipelineEvent, SinkRouter, emit_fenced};
use crate::account::AccountId;
use crate::activity::{Activity, ActivitySource};
use crate::cluster::HeldLease;
use crate::processor::derive::apply_telephony;
use crate::processor::envelope::{EventPath, Notification};
use crate::processor::messages::{VoicemailInput, new_voicemail_ids, voicemail_received};
use crate::processor::state::SessionState;
use crate::processor::telephony::TelephonyEvent;
use crate::store::{CursorUpdate, Store, StoreError};

/// Another replica holds the processor lease.
struct StandingBy;

/// The cursor holding the last processed inbox `seq`.
pub const CURSOR: &str = "processor.inbox_seq";

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Inbox rows read.
    pub rows: usize,
    /// Activities newly stored.
    pub activities: usize,
    /// Rows skipped (unknown event kinds, unreadable bodies), kept in the inbox.
    pub skipped: usize,
    /// Another replica holds the processor lease: nothing was done.
    pub standby: bool,
}

/// Inbox → activities.
pub struct Processor {
    store: Arc<dyn Store>,
    router: SinkRouter,
    events: Option<mpsc::UnboundedSender<PipelineEvent>>,
    delivery_wakeup: Option<Arc<Notify>>,
    batch: usize,
    lease: Option<tokio::sync::Mutex<HeldLease>>,
}

fn skip(account: &AccountId, seq: i64, why: &'static str, detail: &str) {
    metrics::counter!("ringrelay_inbox_skipped_total", "reason" => why).increment(1);
    tracing::warn!(%account, seq, reason = why, detail, "inbox row skipped (kept in the inbox)");
}

impl Processor {
    /// A processor writing through `store`, routing activities to sinks with `router`.
    pub fn new(store: Arc<dyn Store>, router: SinkRouter) -> Self {
        Self {
            store,
            router,
            events: None,
            delivery_wakeup: None,
            batch: 256,
            lease: None,
        }
    }

    /// Works only while holding `lease` (the `processor` lease), renewing it as passes
    /// run, with every commit fenced by it.
    #[must_use]
    pub fn with_lease(mut self, lease: HeldLease) -> Self {
        self.lease = Some(tokio::sync::Mutex::new(lease));
        self
    }

    /// The lease to write under: `Ok(None)` without a lease, `Err(StandingBy)` while
    /// another replica holds it.
    async fn fence(&self) -> Result<Option<crate::store::Lease>, StandingBy> {
        let Some(lease) = &self.lease else {
            return Ok(None);
        };
        let mut lease = lease.lock().await;
        match lease.tend_if_due().await {
            Ok(true) => lease.current().cloned().map(Some).ok_or(StandingBy),
            Ok(false) => Err(StandingBy),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the processor lease");
                lease.current().cloned().map(Some).ok_or(StandingBy)
            }
        }
    }

    async fn lost_lease(&self) {
        if let Some(lease) = &self.lease {
            lease.lock().await.lost();
        }
    }

    /// Whether this processor still holds its lease (always, without one).
    async fn holds_lease(&self) -> bool {
        match &self.lease {
            None => true,
            Some(l) => l.lock().await.current().is_some(),
        }
    }

    fn renew_period(&self) -> Duration {
        self.lease
            .as_ref()
            .and_then(|l| l.try_lock().ok().map(|l| l.timing().renew))
            .unwrap_or(Duration::from_secs(1))
    }

    /// Reports finished calls, voicemail changes and renewal reminders here.
    #[must_use]
    pub fn with_events(mut self, events: mpsc::UnboundedSender<PipelineEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Notifies `wakeup` whenever new activities (hence deliveries) are stored, so idle
    /// delivery workers start at once.
    #[must_use]
    pub fn with_delivery_wakeup(mut self, wakeup: Arc<Notify>) -> Self {
        self.delivery_wakeup = Some(wakeup);
        self
    }

    /// The inbox position processed so far.
    ///
    /// # Errors
    /// The store's error.
    pub async fn position(&self) -> Result<i64, StoreError> {
        Ok(self
            .store
            .cursor(None, CURSOR)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Processes one batch of the inbox; `rows == 0` when it was empty.
    ///
    /// # Errors
    /// The store's error; nothing of the batch is committed then.
    pub async fn pass(&self) -> Result<PassReport, StoreError> {
        let Ok(fence) = self.fence().await else {
            return Ok(PassReport {
                standby: true,
                ..PassReport::default()
            });
        };
        let after = self.position().await?;
        let rows = self.store.inbox_after(after, self.batch).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(PassReport::default());
        };
        let mut report = PassReport {
            rows: rows.len(),
            ..PassReport::default()
        };
        let mut sessions: HashMap<(AccountId, String), SessionState> = HashMap::new();
        let mut changed: HashSet<(AccountId, String)> = HashSet::new();
        let mut activities: Vec<Activity> = Vec::new();
        let mut events: Vec<PipelineEvent> = Vec::new();

        for row in &rows {
            let notification = match Notification::parse(&row.body) {
                Ok(n) => n,
                Err(e) => {
                    skip(&row.account, row.seq, "unreadable", &e.to_string());
                    report.skipped += 1;
                    continue;
                }
            };
            match notification.path() {
                EventPath::Telephony { .. } => {
                    let mut event = match TelephonyEvent::from_body(&notification.body) {
                        Ok(e) => e,
                        Err(e) => {
                            skip(&row.account, row.seq, "bad_telephony", &e.to_string());
                            report.skipped += 1;
                            continue;
                        }
                    };
                    if event.event_time.is_none() {
                        event.event_time = notification.timestamp.or(Some(row.received_at));
                    }
                    let key = (row.account.clone(), event.telephony_session_id.clone());
                    if !sessions.contains_key(&key) {
                        let loaded = self
                            .store
                            .load_telephony(&row.account, &event.telephony_session_id)
                            .await?
                            .and_then(|v| serde_json::from_value::<SessionState>(v).ok())
                            .unwrap_or_else(|| SessionState::new(&event.telephony_session_id));
                        sessions.insert(key.clone(), loaded);
                    }
                    let Some(state) = sessions.get_mut(&key) else {
                        continue;
                    };
                    let applied = match apply_telephony(state, &event, &row.account) {
                        Ok(a) => a,
                        Err(e) => {
                            skip(&row.account, row.seq, "session_mismatch", &e.to_string());
                            report.skipped += 1;
                            continue;
                        }
                    };
                    activities.extend(applied.activities);
                    if applied.just_finished {
                        let extension_ids = state
                            .parties
                            .values()
                            .filter_map(|p| p.extension_id.clone())
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect();
                        events.push(PipelineEvent::CallFinished {
                            account: row.account.clone(),
                            telephony_session_id: event.telephony_session_id.clone(),
                            extension_ids,
                        });
                    }
                    changed.insert(key);
                }
                EventPath::Voicemail { extension_id } => {
                    match VoicemailInput::from_value(&notification.body) {
                        Ok(vm) => activities.extend(voicemail_received(
                            &vm,
                            &row.account,
                            ActivitySource::Webhook,
                        )),
                        Err(_) => events.push(PipelineEvent::VoicemailChanged {
                            account: row.account.clone(),
                            extension_id,
                        }),
                    }
                }
                EventPath::MessageStore { extension_id } => {
                    if new_voicemail_ids(&notification.body).0 {
                        events.push(PipelineEvent::VoicemailChanged {
                            account: row.account.clone(),
                            extension_id,
                        });
                    }
                }
                EventPath::ExtensionList => events.push(PipelineEvent::ExtensionsChanged {
                    account: row.account.clone(),
                }),
                EventPath::RenewalReminder => events.push(PipelineEvent::RenewalReminder {
                    account: row.account.clone(),
                }),
                EventPath::CallLog | EventPath::Other => {
                    skip(&row.account, row.seq, "unknown_event", &notification.event);
                    report.skipped += 1;
                }
            }
        }

        report.activities = match emit_fenced(
            self.store.as_ref(),
            &self.router,
            activities,
            Some(CursorUpdate {
                account: None,
                name: CURSOR.to_owned(),
                value: last.to_string(),
            }),
            fence.as_ref(),
        )
        .await
        {
            Ok(n) => n,
            Err(StoreError::Conflict(why)) if fence.is_some() => {
                tracing::warn!(reason = %why, "processor lease lost: the batch was not committed");
                self.lost_lease().await;
                return Ok(PassReport {
                    standby: true,
                    ..PassReport::default()
                });
            }
            Err(e) => return Err(e),
        };
        // The batch is committed; a processor that lost its lease since leaves the session
        // state to the new holder (which re-derives from its own reading).
        if !self.holds_lease().await {
            return Ok(report);
        }
        let now = Utc::now();
        for key in changed {
            if let Some(state) = sessions.get(&key) {
                let value = serde_json::to_value(state)
                    .map_err(|e| StoreError::Other(format!("session state: {e}")))?;
                self.store
                    .save_telephony(&key.0, &key.1, &value, now)
                    .await?;
            }
        }
        if let Some(tx) = &self.events {
            for e in events {
                let _ = tx.send(e);
            }
        }
        if report.activities > 0
            && let Some(w) = &self.delivery_wakeup
        {
            w.notify_waiters();
        }
        metrics::gauge!("ringrelay_processor_position").set(last as f64);
        Ok(report)
    }

    /// Processes until the inbox is empty.
    ///
    /// # Errors
    /// The store's error.
    pub async fn drain(&self) -> Result<PassReport, StoreError> {
        let mut total = PassReport::default();
        loop {
            let r = self.pass().await?;
            if r.standby {
                total.standby = true;
            }
            if r.rows == 0 {
                return Ok(total);
            }
            total.rows += r.rows;
            total.activities += r.activities;
            total.skipped += r.skipped;
        }
    }

    /// Runs until `shutdown`: drains the inbox whenever `wake` is notified, and at least
    /// every `poll`. Store failures are logged and retried after a pause. With a lease, a
    /// standby tries to take it every renew period, and the lease is released on shutdown.
    pub async fn run(self, shutdown: CancellationToken, wake: Arc<Notify>, poll: Duration) {
        self.run_loop(&shutdown, &wake, poll).await;
        if let Some(lease) = &self.lease
            && let Err(e) = lease.lock().await.release().await
        {
            tracing::warn!(error = %e, "could not release the processor lease");
        }
    }

    async fn run_loop(&self, shutdown: &CancellationToken, wake: &Notify, poll: Duration) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.drain().await {
                Ok(r) if r.standby => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(self.renew_period()) => {}
                    }
                    continue;
                }
                Ok(r) => {
                    backoff = Duration::from_millis(100);
                    if r.rows > 0 {
                        tracing::debug!(
                            rows = r.rows,
                            activities = r.activities,
                            "inbox processed"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "processor pass failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }
}
