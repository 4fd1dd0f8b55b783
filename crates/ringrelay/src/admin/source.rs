//! [`StoreAdminSource`]: the [`AdminSource`] of ringrelay itself. It reads everything from
//! the store (so `ringrelay status` works from another host against the same database),
//! and, inside the running service, adds what only the running parts know: each keeper's
//! live status, the RingCentral clients (subscription listing and actions) and the sync
//! (hand-made backfills).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::model::{
    AccountStatus, DeliveryView, DisabledFilterView, ExtensionsView, GapView, Readiness,
    SinkStatus, StatusReport, SubscriptionView, UncoveredExtension,
};
use super::{AdminError, AdminSource, BackfillSummary, DeliveryQuery, SubscriptionAction};
use crate::account::AccountId;
use crate::config::{Settings, SinkKind};
use crate::delivery::worker;
use crate::keeper::{Command, CoverageState, KeeperHandle};
use crate::pipeline::sync::AccountSync;
use crate::ringcentral::{Clock, RingCentral, SystemClock};
use crate::store::{BackfillState, Delivery, DeliveryFilter, DeliveryState, Store, StoreError};

/// The running service's parts the admin surface can act through.
#[derive(Clone, Default)]
pub struct Runtime {
    /// Each account's keeper.
    pub keepers: Arc<HashMap<AccountId, KeeperHandle>>,
    /// Each account's RingCentral client.
    pub clients: HashMap<AccountId, RingCentral>,
    /// Each account's sync (for hand-made backfills).
    pub syncs: HashMap<AccountId, AccountSync>,
}

/// Status and actions over the store (and the running parts, when given).
#[derive(Clone)]
pub struct StoreAdminSource {
    store: Arc<dyn Store>,
    settings: Arc<Settings>,
    runtime: Option<Runtime>,
    clock: Arc<dyn Clock>,
}

fn store_err(e: StoreError) -> AdminError {
    match e {
        StoreError::NotFound(m) => AdminError::NotFound(m),
        StoreError::Conflict(m) => AdminError::Conflict(m),
        StoreError::Unavailable(m) => AdminError::Unavailable(format!("store unavailable: {m}")),
        StoreError::Other(m) => AdminError::Internal(m),
    }
}

fn sink_kind(kind: &SinkKind) -> &'static str {
    match kind {
        SinkKind::Webhook { .. } => "webhook",
        SinkKind::Nats { .. } => "nats",
        SinkKind::Jsonl { .. } => "jsonl",
    }
}

/// A delivery as the admin surface shows it.
pub fn delivery_view(d: &Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        sink: d.sink.clone(),
        account: d.account.to_string(),
        activity_id: d.activity_id.to_wire(),
        activity_type: d.kind.clone(),
        state: d.state.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: d.due_at.filter(|_| d.state.is_open()),
        last_error: d.last_error.clone(),
    }
}

impl StoreAdminSource {
    /// Over the store only (the CLI).
    pub fn new(store: Arc<dyn Store>, settings: Arc<Settings>) -> Self {
        Self {
            store,
            settings,
            runtime: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Inside the running service: the keepers, clients and syncs, and the clock
    /// RingCentral time is read from.
    #[must_use]
    pub fn with_runtime(mut self, runtime: Runtime, clock: Arc<dyn Clock>) -> Self {
        self.runtime = Some(runtime);
        self.clock = clock;
        self
    }

    fn account_id(&self, id: &str) -> Result<AccountId, AdminError> {
        self.settings
            .accounts
            .iter()
            .find(|a| a.id.as_str() == id)
            .map(|a| a.id.clone())
            .ok_or_else(|| AdminError::NotFound(format!("no account {id:?} is configured")))
    }

    fn sink_name(&self, name: &str) -> Result<String, AdminError> {
        self.settings
            .sinks
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.name.clone())
            .ok_or_else(|| AdminError::NotFound(format!("no sink {name:?} is configured")))
    }

    fn runtime(&self) -> Result<&Runtime, AdminError> {
        self.runtime.as_ref().ok_or_else(|| {
            AdminError::Unavailable(
                "this needs the running service: use the admin API of `ringrelay serve`".to_owned(),
            )
        })
    }

    async fn account_status(
        &self,
        account: &crate::config::AccountSettings,
        now: DateTime<Utc>,
    ) -> Result<AccountStatus, StoreError> {
        let id = &account.id;
        let record = self.store.subscription(id).await?;
        let mut gaps = self
            .store
            .gaps(Some(id), Some(now - Duration::days(7)))
            .await?;
        for open in self.store.gaps(Some(id), None).await? {
            if open.until.is_none() && !gaps.iter().any(|g| g.id == open.id) {
                gaps.push(open);
            }
        }
        gaps.sort_by_key(|g| std::cmp::Reverse(g.from));
        let traffic = self
            .store
            .inbox_account_summary(id, Utc::now() - Duration::hours(1))
            .await?;
        let mut problems = Vec::new();
        let keeper = self
            .runtime
            .as_ref()
            .and_then(|r| r.keepers.get(id))
            .map(KeeperHandle::status);
        match &keeper {
            Some(k) if k.state != CoverageState::Covered => problems.extend(k.explain(now)),
            // Covered, but extensions left out by the subscription limit say so.
            Some(k)
                if k.extensions
                    .as_ref()
                    .is_some_and(|e| e.over_limit.is_some()) =>
            {
                problems.extend(
                    k.explain(now)
                        .into_iter()
                        .filter(|l| l.starts_with("NOT covered")),
                );
            }
            Some(_) => {}
            None => match &record {
                None => problems
                    .push("no subscription yet: `ringrelay serve` creates one at start".to_owned()),
                Some(r) if !r.status.eq_ignore_ascii_case("active") => problems.push(format!(
                    "subscription {} is {}: the keeper recreates it",
                    r.id, r.status
                )),
                Some(r) if r.expires_at <= now => problems.push(format!(
                    "subscription {} expired at {}: the keeper recreates it",
                    r.id, r.expires_at
                )),
                Some(_) => {}
            },
        }
        for g in gaps.iter().filter(|g| g.until.is_none()) {
            problems.push(format!("not covered since {} ({})", g.from, g.cause));
        }
        for g in &gaps {
            if let BackfillState::Failed { error } = &g.backfill {
                problems.push(format!(
                    "backfill of the gap from {} failed: {error}",
                    g.from
                ));
            }
        }
        let credential_expires_at = self
            .runtime
            .as_ref()
            .and_then(|r| r.clients.get(id))
            .and_then(RingCentral::credential_expires_at);
        if let Some(at) = credential_expires_at
            && at - now < Duration::days(14)
        {
            problems.push(format!("the JWT credential expires on {at}: replace it"));
        }
        Ok(AccountStatus {
            id: id.to_string(),
            subscription: record.map(|r| SubscriptionView {
                id: r.id,
                status: r.status,
                expires_at: Some(r.expires_at),
                disabled_filters: r
                    .disabled_filters
                    .into_iter()
                    .map(|f| DisabledFilterView {
                        filter: f.filter,
                        reason: f.reason,
                    })
                    .collect(),
            }),
            last_event_at: traffic.last_received_at,
            events_last_hour: traffic.since_count,
            credential_expires_at,
            gaps: gaps
                .into_iter()
                .map(|g| {
                    let (done, activities) = match g.backfill {
                        BackfillState::Done { activities, .. } => (g.backfilled_at, activities),
                        _ => (None, 0),
                    };
                    GapView {
                        id: g.id,
                        from: g.from,
                        until: g.until,
                        reason: g.cause.to_string(),
                        backfilled_at: done,
                        backfilled_activities: activities,
                    }
                })
                .collect(),
            problems,
            keeper: None,
            extensions: self.extensions_view(id).await?,
        })
    }

    /// The account's stored extensions (discovery's last list) as operators see them.
    async fn extensions_view(&self, id: &AccountId) -> Result<Option<ExtensionsView>, StoreError> {
        let stored = self.store.extensions(id).await?;
        if stored.is_empty() {
            return Ok(None);
        }
        Ok(Some(ExtensionsView {
            total: stored.len(),
            covered: stored.iter().filter(|e| e.record.covered).count(),
            updated_at: stored.iter().map(|e| e.updated_at).max(),
            not_covered: stored
                .into_iter()
                .filter(|e| !e.record.covered)
                .map(|e| UncoveredExtension {
                    id: e.record.extension_id,
                    number: e.record.number,
                    name: e.record.name,
                    reason: e.record.reason.unwrap_or_else(|| "not covered".to_owned()),
                })
                .collect(),
        }))
    }
}

#[async_trait]
impl AdminSource for StoreAdminSource {
    async fn status(&self) -> Result<StatusReport, AdminError> {
        let now = self.clock.now();
        let mut accounts = Vec::new();
        for account in &self.settings.accounts {
            accounts.push(self.account_status(account, now).await.map_err(store_err)?);
        }
        // Leases are timed on the wall clock, whatever clock RingCentral calls use.
        let owners = crate::cluster::ownership(self.store.as_ref(), Utc::now())
            .await
            .map_err(store_err)?;
        let view = |o: &crate::cluster::LeaseOwner| super::model::LeaseView {
            owner: o.owner.clone(),
            expires_at: o.expires_at,
            live: o.live,
        };
        for a in &mut accounts {
            a.keeper = AccountId::parse(&a.id)
                .ok()
                .and_then(|id| owners.keepers.get(&id))
                .map(view);
        }
        let counts = self.store.delivery_counts().await.map_err(store_err)?;
        let states = self.store.sink_states().await.map_err(store_err)?;
        let sinks = self
            .settings
            .sinks
            .iter()
            .map(|s| {
                let n = |pred: &dyn Fn(DeliveryState) -> bool| -> u64 {
                    counts
                        .iter()
                        .filter(|c| c.sink == s.name && pred(c.state))
                        .map(|c| c.count)
                        .sum()
                };
                SinkStatus {
                    name: s.name.clone(),
                    kind: sink_kind(&s.kind).to_owned(),
                    disabled: states
                        .iter()
                        .find(|st| st.sink == s.name)
                        .and_then(|st| st.disabled_reason.clone()),
                    pending: n(&DeliveryState::is_open),
                    dead: n(&|st| st == DeliveryState::Dead),
                    delivered: n(&|st| st == DeliveryState::Delivered),
                }
            })
            .collect();
        Ok(StatusReport {
            generated_at: now,
            accounts,
            sinks,
            processor: owners.processor.as_ref().map(view),
        })
    }

    async fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if let Err(e) = self.store.ping().await {
            reasons.push(format!("store: {e}"));
        }
        for account in &self.settings.accounts {
            let id = &account.id;
            let live = self
                .runtime
                .as_ref()
                .and_then(|r| r.keepers.get(id))
                .map(KeeperHandle::status);
            match live {
                Some(k) => match k.state {
                    CoverageState::Covered | CoverageState::Standby { .. } => {}
                    CoverageState::Starting => reasons.push(format!("{id}: keeper starting")),
                    CoverageState::Uncovered => reasons.push(format!(
                        "{id}: {}",
                        k.explain(self.clock.now())
                            .first()
                            .cloned()
                            .unwrap_or_else(|| "no Active subscription".to_owned())
                    )),
                },
                None => match self.store.subscription(id).await {
                    Ok(Some(r)) if r.status.eq_ignore_ascii_case("active") => {}
                    Ok(Some(r)) => {
                        reasons.push(format!("{id}: subscription {} is {}", r.id, r.status));
                    }
                    Ok(None) => reasons.push(format!("{id}: no subscription")),
                    Err(e) => reasons.push(format!("{id}: {e}")),
                },
            }
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    async fn subscriptions(&self, account: &str) -> Result<serde_json::Value, AdminError> {
        let id = self.account_id(account)?;
        let client = self
            .runtime()?
            .clients
            .get(&id)
            .ok_or_else(|| AdminError::NotFound(format!("no client for {id}")))?;
        let address = self.settings.server.webhook_url(&id).to_string();
        let list = client
            .list_subscriptions()
            .await
            .map_err(|e| AdminError::Unavailable(format!("RingCentral: {e}")))?;
        Ok(serde_json::Value::Array(
            list.into_iter()
                .map(|s| {
                    json!({
                        "id": s.id,
                        "status": format!("{:?}", s.status),
                        "expires_at": s.expires_at,
                        "address": s.address,
                        "ours": s.address.as_deref() == Some(address.as_str()),
                        "event_filters": s.event_filters,
                        "disabled_filters": s.disabled_filters.iter().map(|f| json!({"filter": f.filter, "reason": f.reason})).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ))
    }

    async fn subscription_action(
        &self,
        account: &str,
        action: SubscriptionAction,
    ) -> Result<String, AdminError> {
        let id = self.account_id(account)?;
        let runtime = self.runtime()?;
        let keeper = runtime
            .keepers
            .get(&id)
            .ok_or_else(|| AdminError::NotFound(format!("no keeper for {id}")))?;
        match action {
            SubscriptionAction::Renew => {
                keeper.send(Command::Reminder);
                Ok(format!("{id}: renewal requested from the keeper"))
            }
            SubscriptionAction::Cleanup => {
                keeper.send(Command::Reconcile);
                Ok(format!(
                    "{id}: reconcile requested; the keeper deletes strays and non-Active subscriptions at our address"
                ))
            }
            SubscriptionAction::Recreate => {
                let current = self.store.subscription(&id).await.map_err(store_err)?;
                if let (Some(record), Some(client)) = (current, runtime.clients.get(&id)) {
                    match client.delete_subscription(&record.id).await {
                        Ok(()) | Err(crate::ringcentral::ApiError::NotFound { .. }) => {}
                        Err(e) => {
                            return Err(AdminError::Unavailable(format!(
                                "RingCentral refused to delete {}: {e}",
                                record.id
                            )));
                        }
                    }
                }
                keeper.send(Command::Reconcile);
                Ok(format!(
                    "{id}: subscription deleted; the keeper creates a new one now (the gap is recorded and backfilled)"
                ))
            }
        }
    }

    async fn backfill(
        &self,
        account: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BackfillSummary, AdminError> {
        let id = self.account_id(account)?;
        let sync = self
            .runtime()?
            .syncs
            .get(&id)
            .ok_or_else(|| AdminError::NotFound(format!("no sync for {id}")))?;
        if !sync.ready() {
            return Err(AdminError::Unavailable(format!(
                "{id}: extension discovery has not answered yet (this replica may not hold the \
                 account); retry in a moment"
            )));
        }
        let r = sync.backfill(since, until).await.map_err(|e| match e {
            crate::pipeline::sync::SyncError::Store(e) => store_err(e),
            crate::pipeline::sync::SyncError::Api(e) => {
                AdminError::Unavailable(format!("RingCentral: {e}"))
            }
            e @ crate::pipeline::sync::SyncError::NotHeld => AdminError::Unavailable(e.to_string()),
        })?;
        Ok(BackfillSummary {
            call_log_records: r.call_log_records,
            voicemails: r.voicemails,
            activities_emitted: r.activities_emitted,
        })
    }

    async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<DeliveryView>, AdminError> {
        let limit = query.limit.unwrap_or(100).clamp(1, 1000);
        let sink = match &query.sink {
            Some(s) => Some(self.sink_name(s)?),
            None => None,
        };
        let states: Vec<Option<DeliveryState>> = match query.state.as_deref() {
            None => vec![None],
            Some("pending") => vec![Some(DeliveryState::Pending), Some(DeliveryState::InFlight)],
            Some("delivered") => vec![Some(DeliveryState::Delivered)],
            Some("dead") => vec![Some(DeliveryState::Dead)],
            Some("failed") => vec![Some(DeliveryState::Failed), Some(DeliveryState::Dead)],
            Some(other) => {
                return Err(AdminError::BadRequest(format!(
                    "unknown state {other:?}: use pending, delivered, dead or failed"
                )));
            }
        };
        let mut out = Vec::new();
        for state in states {
            let filter = DeliveryFilter {
                sink: sink.clone(),
                state,
                limit,
                ..DeliveryFilter::default()
            };
            out.extend(
                self.store
                    .list_deliveries(&filter)
                    .await
                    .map_err(store_err)?
                    .iter()
                    .map(delivery_view),
            );
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn retry_delivery(&self, id: i64) -> Result<(), AdminError> {
        worker::retry_one(self.store.as_ref(), id, Utc::now())
            .await
            .map_err(store_err)
    }

    async fn replay(&self, sink: &str, since: DateTime<Utc>) -> Result<u64, AdminError> {
        let sink = self.sink_name(sink)?;
        worker::replay(self.store.as_ref(), &sink, since, Utc::now())
            .await
            .map_err(store_err)
    }

    async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), AdminError> {
        let sink = self.sink_name(sink)?;
        let now = Utc::now();
        if paused {
            worker::pause(self.store.as_ref(), &sink, now).await
        } else {
            worker::resume(self.store.as_ref(), &sink, now).await
        }
        .map_err(store_err)
    }
}
