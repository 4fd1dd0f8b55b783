//! Persistence: one [`Store`] trait (`Arc<dyn Store>`) with domain-typed methods, an SQLite
//! backend (the embedded default) and a PostgreSQL backend (for several replicas).
//!
//! This file holds the contract: [`StoreError`], the [`Store`] trait, [`open`] and
//! [`migrate`]. The domain types are in [`types`] (re-exported here); the backends are
//! [`sqlite`] and [`postgres`]. `docs/storage.md` describes the schema and retention.

mod codec;
pub mod postgres;
pub mod sqlite;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::AccountId;
use crate::config::StoreUrl;

pub use types::*;

/// Why a store call failed, in the cases callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A write conflicts with what is stored (e.g. a lost lease or a unique key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store cannot take the call now (connection lost, ingest queue full); retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("store error: {0}")]
    Other(String),
}

/// A notification as received from RingCentral, to be appended to the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The account whose webhook URL received it.
    pub account: AccountId,
    /// The envelope's `subscriptionId`, when present.
    pub subscription_id: Option<String>,
    /// The envelope's `uuid`: the de-duplication key.
    pub uuid: String,
    /// The envelope's `event` path.
    pub event: String,
    /// The envelope's `timestamp`, when present and parseable.
    pub timestamp: Option<DateTime<Utc>>,
    /// When ringrelay received it.
    pub received_at: DateTime<Utc>,
    /// The raw body, exactly as received. Shared, so the receiver keeps the last reference
    /// and frees it on the thread that allocated it, not on the store's writer thread.
    pub body: Arc<str>,
    /// Set when the subscription id is not one the account currently owns.
    pub unknown_subscription: bool,
}

/// What an inbox append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The notification was new and is now committed.
    Stored,
    /// A notification with the same `uuid` was already stored; nothing was written.
    Duplicate,
}

/// The one persistence interface. Every method is durable when it returns `Ok`.
///
/// Times are passed in by the caller (time is injected), so tests need no clock.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ----- inbox -----

    /// Appends a notification to the inbox through group commit; returns only after the
    /// batch holding it is committed. A notification whose `uuid` is already stored is not
    /// written again: the answer is [`AppendOutcome::Duplicate`] and the duplicate counter
    /// grows.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store is down or the ingest queue is full.
    async fn append_inbox(
        &self,
        notification: NewNotification,
    ) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` inbox rows with `seq > after_seq`, in `seq` order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] on a backend failure.
    async fn inbox_after(&self, after_seq: i64, limit: usize) -> Result<Vec<InboxRow>, StoreError>;

    /// Inbox counters (rows, duplicates seen, highest seq).
    ///
    /// # Errors
    /// On a backend failure.
    async fn inbox_stats(&self) -> Result<InboxStats, StoreError>;

    /// The stored payload (`{type, timestamp, data}`) of the activity with this key, while
    /// it is retained; what was sent, e.g. to tell whether a logged call already had its
    /// recording.
    ///
    /// # Errors
    /// On a backend failure.
    async fn activity_payload(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// One account's traffic: when its newest notification was received, and how many
    /// were received at or after `since` (for `status` and the last-event metric).
    ///
    /// # Errors
    /// On a backend failure.
    async fn inbox_account_summary(
        &self,
        account: &AccountId,
        since: DateTime<Utc>,
    ) -> Result<InboxAccountSummary, StoreError>;

    // ----- activities and deliveries -----

    /// Stores activities and their deliveries, and moves `processed` (typically the
    /// [`PROCESSOR_CURSOR`]), all in one transaction. An activity whose key is already
    /// stored inserts nothing and creates no deliveries. The answer is aligned with the
    /// input: `Stored` for a new activity, `Duplicate` for a known key.
    ///
    /// # Errors
    /// On a backend failure (then nothing was written).
    async fn insert_activities(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Claims up to `limit` due deliveries of `sink` for `owner` until `now + lease`.
    /// A delivery is due when it is pending or failed with its next attempt at or before
    /// `now`, or in flight with an expired lease; and it is only given when no earlier
    /// (lower id) delivery of the same `(sink, call_key)` is still open, so each call's
    /// activities reach a sink in order. Each claim increments the attempt number. A
    /// disabled sink gets nothing. Concurrent claimers never get the same delivery.
    ///
    /// # Errors
    /// On a backend failure.
    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records how attempt `attempt` of delivery `id` ended.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the delivery is no longer in flight with that attempt
    /// (a stale worker whose lease expired and was re-claimed cannot overwrite);
    /// [`StoreError::NotFound`] when there is no such delivery.
    async fn complete_delivery(
        &self,
        id: i64,
        attempt: u32,
        now: DateTime<Utc>,
        result: DeliveryResult,
    ) -> Result<(), StoreError>;

    /// Deliveries matching `filter`, newest (highest id) first.
    ///
    /// # Errors
    /// On a backend failure.
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;

    /// Makes a dead (or failed) delivery due at `now` again.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such delivery; [`StoreError::Conflict`] when
    /// it is pending, in flight or delivered.
    async fn retry_delivery(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Makes every delivered delivery of `sink` whose activity occurred at or after `since`
    /// due at `now` again (a new attempt); returns how many.
    ///
    /// # Errors
    /// On a backend failure.
    async fn replay(
        &self,
        sink: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Delivery counts per sink and state (states with no delivery are left out).
    ///
    /// # Errors
    /// On a backend failure.
    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError>;

    /// Disables `sink` with `reason` (`Some`) or enables it (`None`).
    ///
    /// # Errors
    /// On a backend failure.
    async fn set_sink_disabled(
        &self,
        sink: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Every sink whose state was ever set (a sink never set is enabled).
    ///
    /// # Errors
    /// On a backend failure.
    async fn sink_states(&self) -> Result<Vec<SinkState>, StoreError>;

    // ----- subscriptions -----

    /// Creates or replaces the account's subscription record.
    ///
    /// # Errors
    /// On a backend failure.
    async fn upsert_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError>;

    /// The account's subscription record, if any.
    ///
    /// # Errors
    /// On a backend failure.
    async fn subscription(
        &self,
        account: &AccountId,
    ) -> Result<Option<SubscriptionRecord>, StoreError>;

    /// Every subscription record, by account.
    ///
    /// # Errors
    /// On a backend failure.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Removes the account's subscription record; `false` when there was none.
    ///
    /// # Errors
    /// On a backend failure.
    async fn delete_subscription(&self, account: &AccountId) -> Result<bool, StoreError>;

    // ----- coverage ledger -----

    /// Opens a coverage gap for `account` starting at `from`. Idempotent: while a gap is
    /// open, the open gap is returned unchanged.
    ///
    /// # Errors
    /// On a backend failure.
    async fn open_gap(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        cause: GapCause,
    ) -> Result<Gap, StoreError>;

    /// Closes the account's open gap at `until`; `None` when no gap was open.
    ///
    /// # Errors
    /// On a backend failure.
    async fn close_gap(
        &self,
        account: &AccountId,
        until: DateTime<Utc>,
    ) -> Result<Option<Gap>, StoreError>;

    /// The account's gaps (every account's when `None`) that end at or after `since`
    /// (open gaps always), oldest first.
    ///
    /// # Errors
    /// On a backend failure.
    async fn gaps(
        &self,
        account: Option<&AccountId>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Gap>, StoreError>;

    /// Closed gaps whose backfill is pending or failed, oldest first, at most `limit`.
    ///
    /// # Errors
    /// On a backend failure.
    async fn gaps_to_backfill(&self, limit: usize) -> Result<Vec<Gap>, StoreError>;

    /// Records a gap's backfill outcome (`Done` with counts, or `Failed`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such gap; [`StoreError::Conflict`] when it
    /// is still open.
    async fn mark_gap_backfilled(
        &self,
        id: i64,
        state: BackfillState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records that `account` was covered and ringrelay alive at `at` (a heartbeat).
    ///
    /// # Errors
    /// On a backend failure.
    async fn record_liveness(
        &self,
        account: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The last liveness heartbeat of `account`, so a restart can record the downtime.
    ///
    /// # Errors
    /// On a backend failure.
    async fn last_liveness(&self, account: &AccountId)
    -> Result<Option<DateTime<Utc>>, StoreError>;

    // ----- cursors -----

    /// A named cursor's value (`account` `None` for a global cursor).
    ///
    /// # Errors
    /// On a backend failure.
    async fn cursor(
        &self,
        account: Option<&AccountId>,
        name: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Sets a named cursor.
    ///
    /// # Errors
    /// On a backend failure.
    async fn set_cursor(&self, update: &CursorUpdate) -> Result<(), StoreError>;

    // ----- leases -----

    /// Takes lease `name` for `owner` until `now + ttl` when it is free, expired or
    /// already `owner`'s (then it is extended, same fence). A lease changing hands gets
    /// a higher fence. `None` when another owner holds it.
    ///
    /// # Errors
    /// On a backend failure.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extends a held lease to `now + ttl`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the lease is no longer held with that fence (it
    /// expired and was taken, or was released).
    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError>;

    /// Releases a held lease; a no-op when it is no longer held with that fence.
    ///
    /// # Errors
    /// On a backend failure.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    // ----- telephony state -----

    /// The processor's saved state for a telephony session.
    ///
    /// # Errors
    /// On a backend failure.
    async fn load_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Saves the processor's state for a telephony session.
    ///
    /// # Errors
    /// On a backend failure.
    async fn save_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
        state: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Forgets a telephony session's state; `false` when none was saved.
    ///
    /// # Errors
    /// On a backend failure.
    async fn delete_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
    ) -> Result<bool, StoreError>;

    // ----- upkeep -----

    /// Removes, in small batches, inbox rows received before `now - inbox_retention`,
    /// delivered deliveries delivered before `now - delivered_retention`, and activities
    /// older than the inbox retention with no delivery left.
    ///
    /// # Errors
    /// On a backend failure (batches already committed stay removed).
    async fn prune(
        &self,
        now: DateTime<Utc>,
        inbox_retention: Duration,
        delivered_retention: Duration,
    ) -> Result<PruneCounts, StoreError>;

    // ----- extensions -----

    /// Replaces the extension list of `account` with `extensions` in one transaction:
    /// rows not in the list are deleted, new or changed rows get `updated_at = now`,
    /// unchanged rows keep theirs. An id repeated in the list keeps its last values.
    ///
    /// # Errors
    /// On a backend failure.
    async fn replace_extensions(
        &self,
        account: &AccountId,
        extensions: &[ExtensionRecord],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The stored extensions of `account`, ordered by extension id.
    ///
    /// # Errors
    /// On a backend failure or an unreadable row.
    async fn extensions(&self, account: &AccountId) -> Result<Vec<StoredExtension>, StoreError>;

    /// Checks the store answers (for `/readyz`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    async fn ping(&self) -> Result<(), StoreError>;

    // ----- cluster (several replicas on one database) -----

    /// Every lease with an owner (held, or lapsed and not yet taken over), by name.
    ///
    /// # Errors
    /// On a backend failure.
    async fn leases(&self) -> Result<Vec<Lease>, StoreError>;

    /// Extends, in one statement, every lease `owner` holds whose name starts with
    /// `prefix` to `now + ttl`; returns them (a replica renewing all its account leases at
    /// once). A lease another owner took is not among them.
    ///
    /// # Errors
    /// On a backend failure.
    async fn renew_leases(
        &self,
        owner: &str,
        prefix: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError>;

    /// [`Store::insert_activities`], only while `fence` is still held (same owner and
    /// fence), checked in the same transaction: a replica that lost the lease cannot move
    /// the cursor or add activities.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the lease changed hands or was released (nothing is
    /// written); otherwise as [`Store::insert_activities`].
    async fn insert_activities_fenced(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
        fence: &Lease,
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// The account's shared OAuth tokens, if any were saved.
    ///
    /// # Errors
    /// On a backend failure.
    async fn oauth_tokens(&self, account: &AccountId) -> Result<Option<StoredTokens>, StoreError>;

    /// Saves the account's OAuth tokens, only while `fence` (the refresh lease) is held.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the lease changed hands or was released (nothing is
    /// written); on a backend failure.
    async fn save_oauth_tokens(
        &self,
        tokens: &StoredTokens,
        fence: &Lease,
    ) -> Result<(), StoreError>;
}

/// Opens the store at `url` (creating an SQLite file if missing), running migrations when
/// `options.migrate` is set.
///
/// # Errors
/// [`StoreError::Unavailable`] when the database cannot be reached; [`StoreError::Other`]
/// when a migration fails or the schema is newer than this build.
pub async fn open(url: &StoreUrl, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path, options).await?)),
        StoreUrl::Postgres(conn) => Ok(Arc::new(
            postgres::PostgresStore::open(conn, options).await?,
        )),
    }
}

/// Applies the store's migrations and returns the schema version now in place (for
/// `ringrelay migrate`).
///
/// # Errors
/// As [`open`].
pub async fn migrate(url: &StoreUrl) -> Result<i64, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => sqlite::migrate(path).await,
        StoreUrl::Postgres(conn) => postgres::migrate(conn).await,
    }
}

/// A caller waiting for its notification's group commit.
pub(crate) type AppendReply = tokio::sync::oneshot::Sender<Result<AppendOutcome, StoreError>>;

/// Answers every caller of one inbox batch with its outcome (or the batch's error: then
/// nothing of it was written) and records the batch in `/metrics`:
/// `ringrelay_inbox_commit_batch_size{store}` and `ringrelay_inbox_commit_seconds{store}`.
pub(crate) fn answer_batch(
    store: &'static str,
    replies: Vec<AppendReply>,
    result: Result<Vec<AppendOutcome>, StoreError>,
    started: std::time::Instant,
) {
    let size = replies.len();
    match result {
        Ok(outcomes) => {
            metrics::histogram!("ringrelay_inbox_commit_batch_size", "store" => store)
                .record(size as f64);
            metrics::histogram!("ringrelay_inbox_commit_seconds", "store" => store)
                .record(started.elapsed().as_secs_f64());
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            metrics::counter!("ringrelay_inbox_commit_failures_total", "store" => store)
                .increment(1);
            tracing::warn!(error = %e, batch = size, store, "inbox batch failed");
            for reply in replies {
                let _ = reply.send(Err(match &e {
                    StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                    other => StoreError::Other(other.to_string()),
                }));
            }
        }
    }
}

/// Converts a [`Duration`] to a chrono duration, saturating (a century is "forever").
pub(crate) fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::days(36_500))
}
