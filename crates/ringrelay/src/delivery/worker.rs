//! The delivery worker (one per sink) and the operator actions over the store.
//!
//! A worker claims due deliveries of its sink from the store (the store's claim rule keeps
//! each call's activities in order and gives at most one open delivery per call), sends them
//! concurrently, asks the sink's [`RetryPolicy`](super::RetryPolicy) what follows, and
//! completes each with its attempt number (a stale worker whose lease expired cannot
//! overwrite a newer attempt). While the sink is failing, the worker probes one delivery at a
//! time with a growing pause (circuit breaker); a sink failing continuously for
//! `disable_after`, or answering 410 Gone, is disabled in the store with an alert.
//! Workers of different sinks are independent, so a dead sink never slows a healthy one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::retry::{Decision, SinkHealth};
use super::{AttemptOutcome, ConfiguredSink};
use crate::store::{
    ClaimedDelivery, Delivery, DeliveryFilter, DeliveryResult, DeliveryState, Store, StoreError,
};

/// The time source of a worker (injected, so tests can simulate time).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The reason stored when an operator pauses a sink.
pub const PAUSED_REASON: &str = "paused by operator";

/// Tuning of a worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Who claims (written to the store's lease; unique per process).
    pub owner: String,
    /// Most deliveries claimed and sent at once.
    pub batch: usize,
    /// How long a claim holds; must exceed the sink's attempt timeout.
    pub lease: Duration,
    /// Pause between claims when nothing is due.
    pub idle_poll: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            owner: format!("ringrelay-{}", std::process::id()),
            batch: 32,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// What one claim-and-send round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Deliveries claimed.
    pub claimed: usize,
    /// Delivered.
    pub delivered: usize,
    /// Failed and rescheduled.
    pub retried: usize,
    /// Dead-lettered.
    pub dead: usize,
    /// Whether the sink was disabled in this round.
    pub disabled: bool,
}

/// The worker of one sink.
pub struct Worker {
    store: Arc<dyn Store>,
    sink: ConfiguredSink,
    options: WorkerOptions,
    clock: Clock,
    health: SinkHealth,
    wakeup: Option<Arc<tokio::sync::Notify>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("sink", &self.sink)
            .field("options", &self.options)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker delivering `sink`'s deliveries from `store`.
    pub fn new(
        store: Arc<dyn Store>,
        sink: ConfiguredSink,
        options: WorkerOptions,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            sink,
            options,
            clock,
            health: SinkHealth::default(),
            wakeup: None,
        }
    }

    /// Wakes the idle worker when `wakeup` is notified (the processor notifies after it
    /// stores new deliveries), so a new activity does not wait for the next idle poll.
    #[must_use]
    pub fn with_wakeup(mut self, wakeup: Arc<tokio::sync::Notify>) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// The sink's health as the circuit breaker sees it.
    pub fn health(&self) -> &SinkHealth {
        &self.health
    }

    /// One round: claims due deliveries (one while the sink is failing), sends them
    /// concurrently and records each outcome.
    ///
    /// # Errors
    /// A store failure while claiming; failures while completing are logged (the lease
    /// expires and the delivery is claimed again).
    pub async fn run_once(&mut self) -> Result<RoundStats, StoreError> {
        let name = self.sink.name.clone();
        let limit = if self.health.is_failing() {
            1
        } else {
            self.options.batch.max(1)
        };
        let now = (self.clock)();
        let claimed = self
            .store
            .claim_deliveries(&name, &self.options.owner, now, limit, self.options.lease)
            .await?;
        let mut stats = RoundStats {
            claimed: claimed.len(),
            ..RoundStats::default()
        };
        if claimed.is_empty() {
            return Ok(stats);
        }
        let sink = Arc::clone(&self.sink.sink);
        let sends = claimed.iter().map(|d| {
            let sink = Arc::clone(&sink);
            async move {
                let started = Instant::now();
                let outcome = sink.send(&d.activity).await;
                (outcome, started.elapsed())
            }
        });
        let results = futures::future::join_all(sends).await;
        let mut completions = Vec::with_capacity(claimed.len());
        for (delivery, (outcome, took)) in claimed.iter().zip(results) {
            let result = self.record(delivery, &outcome, took, &mut stats).await;
            completions.push((delivery, result));
        }
        // Record the outcomes concurrently (each is its own store write).
        let now = (self.clock)();
        let store = &self.store;
        let writes = completions.into_iter().map(|(d, result)| async move {
            (
                d,
                store.complete_delivery(d.id, d.attempt, now, result).await,
            )
        });
        for (d, written) in futures::future::join_all(writes).await {
            if let Err(e) = written {
                tracing::warn!(sink = %name, delivery = d.id, error = %e, "cannot record the delivery outcome; it will be claimed again");
            }
        }
        Ok(stats)
    }

    async fn record(
        &mut self,
        delivery: &ClaimedDelivery,
        outcome: &AttemptOutcome,
        took: Duration,
        stats: &mut RoundStats,
    ) -> DeliveryResult {
        let name = self.sink.name.clone();
        let now = (self.clock)();
        metrics::counter!("ringrelay_delivery_attempts_total", "sink" => name.clone(), "outcome" => outcome.label())
            .increment(1);
        metrics::histogram!("ringrelay_delivery_attempt_seconds", "sink" => name.clone())
            .record(took.as_secs_f64());
        let decision =
            self.sink
                .policy
                .decide(delivery.attempt, outcome, now, rand::random::<f64>());
        let (status, error) = match outcome {
            AttemptOutcome::Failed { status, error, .. } => (*status, error.clone()),
            AttemptOutcome::Gone => (Some(410), "HTTP 410 Gone".to_owned()),
            AttemptOutcome::Delivered => (None, String::new()),
        };
        match decision {
            Decision::Delivered => {
                self.health.success();
                stats.delivered += 1;
                let lag = (now - delivery.activity.occurred_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!("ringrelay_delivery_lag_seconds", "sink" => name.clone())
                    .record(lag.as_secs_f64());
                DeliveryResult::Delivered
            }
            Decision::RetryAt(at) => {
                stats.retried += 1;
                self.failed(now, &error, stats).await;
                tracing::debug!(sink = %name, delivery = delivery.id, attempt = delivery.attempt, %at, %error, "delivery failed; will retry");
                DeliveryResult::RetryAt { at, error, status }
            }
            Decision::Dead => {
                stats.dead += 1;
                self.failed(now, &error, stats).await;
                metrics::counter!("ringrelay_delivery_dead_total", "sink" => name.clone())
                    .increment(1);
                tracing::warn!(sink = %name, delivery = delivery.id, attempt = delivery.attempt, %error, "delivery dead-lettered");
                DeliveryResult::Dead { error, status }
            }
            Decision::DisableSink => {
                self.disable(now, "the sink answered 410 Gone", stats).await;
                // Kept open: it goes out when an operator enables the sink again.
                let retry = self
                    .sink
                    .policy
                    .schedule
                    .first()
                    .copied()
                    .unwrap_or(Duration::from_secs(5));
                DeliveryResult::RetryAt {
                    at: now + crate::store::chrono_duration(retry),
                    error,
                    status,
                }
            }
        }
    }

    async fn failed(&mut self, now: DateTime<Utc>, error: &str, stats: &mut RoundStats) {
        if self.health.failure(now, self.sink.policy.disable_after) && !stats.disabled {
            let reason = format!(
                "failing continuously for {} (last error: {error})",
                humantime::format_duration(self.sink.policy.disable_after)
            );
            self.disable(now, &reason, stats).await;
        }
    }

    async fn disable(&mut self, now: DateTime<Utc>, reason: &str, stats: &mut RoundStats) {
        stats.disabled = true;
        tracing::error!(sink = %self.sink.name, %reason, alert = true, "sink disabled; enable it again with `ringrelay deliveries resume`");
        metrics::counter!("ringrelay_sink_disabled_total", "sink" => self.sink.name.clone())
            .increment(1);
        if let Err(e) = self
            .store
            .set_sink_disabled(&self.sink.name, Some(reason.to_owned()), now)
            .await
        {
            tracing::error!(sink = %self.sink.name, error = %e, "cannot record the sink as disabled");
        }
        self.health.success();
    }

    /// Runs rounds until `shutdown` is cancelled; a round in progress is finished first
    /// (sends are not cut off, so nothing is left half-recorded).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.sink.name.clone();
        tracing::info!(sink = %name, "delivery worker started");
        let mut backlog_at: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            if backlog_at.is_none_or(|t| t.elapsed() >= BACKLOG_EVERY) {
                backlog_at = Some(Instant::now());
                if let Err(e) = record_sink_backlog(self.store.as_ref(), &name).await {
                    tracing::debug!(sink = %name, error = %e, "cannot read the backlog");
                }
            }
            let (pause, idle) = match self.run_once().await {
                Ok(stats) if stats.claimed == 0 => (self.options.idle_poll, true),
                Ok(_) => (self.health.backoff(), false),
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, "cannot claim deliveries");
                    (self.options.idle_poll.max(Duration::from_secs(1)), false)
                }
            };
            if pause.is_zero() {
                continue;
            }
            let wakeup = self.wakeup.clone().filter(|_| idle);
            let woken = async move {
                match wakeup {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
                () = woken => {}
            }
        }
        tracing::info!(sink = %name, "delivery worker stopped");
    }
}

/// Starts one worker per sink on `tracker`; each stops when `shutdown` is cancelled and
/// wakes early when `wakeup` is notified (`notify_waiters` after storing deliveries).
pub fn spawn_all(
    store: &Arc<dyn Store>,
    sinks: Vec<ConfiguredSink>,
    options: &WorkerOptions,
    clock: &Clock,
    wakeup: &Arc<tokio::sync::Notify>,
    shutdown: &CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) {
    for sink in sinks {
        let worker = Worker::new(Arc::clone(store), sink, options.clone(), Arc::clone(clock))
            .with_wakeup(Arc::clone(wakeup));
        tracker.spawn(worker.run(shutdown.clone()));
    }
}

/// How often a running worker refreshes its sink's delivery gauges.
const BACKLOG_EVERY: Duration = Duration::from_secs(15);

async fn record_sink_backlog(store: &dyn Store, sink: &str) -> Result<(), StoreError> {
    let counts = store.delivery_counts().await?;
    for state in DeliveryState::ALL {
        let n = counts
            .iter()
            .find(|c| c.sink == sink && c.state == state)
            .map_or(0, |c| c.count);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("ringrelay_deliveries", "sink" => sink.to_owned(), "state" => state.as_str())
            .set(n as f64);
    }
    Ok(())
}

/// Publishes the delivery gauges (`ringrelay_deliveries{sink,state}`: backlog = pending +
/// failed + in flight, and the dead-letter count) of every sink.
///
/// # Errors
/// A store failure.
pub async fn record_backlog(store: &dyn Store) -> Result<(), StoreError> {
    for c in store.delivery_counts().await? {
        #[allow(clippy::cast_precision_loss)]
        let n = c.count as f64;
        metrics::gauge!("ringrelay_deliveries", "sink" => c.sink, "state" => c.state.as_str())
            .set(n);
    }
    Ok(())
}

// ----- operator actions (the CLI `ringrelay deliveries …` and the admin API call these) -----

/// Deliveries matching `filter`, newest first.
///
/// # Errors
/// A store failure.
pub async fn list(store: &dyn Store, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
    store.list_deliveries(filter).await
}

/// Makes one dead or failed delivery due now.
///
/// # Errors
/// [`StoreError::NotFound`] or [`StoreError::Conflict`] (it is not dead or failed).
pub async fn retry_one(store: &dyn Store, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    store.retry_delivery(id, now).await
}

/// Makes every dead delivery of `sink` due now; returns how many.
///
/// # Errors
/// A store failure (deliveries already revived stay revived).
pub async fn retry_dead(
    store: &dyn Store,
    sink: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut revived = 0;
    let mut before_id = None;
    loop {
        let page = store
            .list_deliveries(&DeliveryFilter {
                sink: Some(sink.to_owned()),
                state: Some(DeliveryState::Dead),
                before_id,
                limit: 500,
                ..DeliveryFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        for d in &page {
            match store.retry_delivery(d.id, now).await {
                Ok(()) => revived += 1,
                // Revived meanwhile by someone else: fine.
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(revived)
}

/// Sends again every activity `sink` already received that occurred at or after `since`
/// (same `webhook-id`, so receivers de-duplicate); returns how many.
///
/// # Errors
/// A store failure.
pub async fn replay(
    store: &dyn Store,
    sink: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    store.replay(sink, since, now).await
}

/// Pauses a sink: the workers claim nothing for it until [`resume`].
///
/// # Errors
/// A store failure.
pub async fn pause(store: &dyn Store, sink: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    store
        .set_sink_disabled(sink, Some(PAUSED_REASON.to_owned()), now)
        .await
}

/// Enables a paused or disabled sink again.
///
/// # Errors
/// A store failure.
pub async fn resume(store: &dyn Store, sink: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    store.set_sink_disabled(sink, None, now).await
}
