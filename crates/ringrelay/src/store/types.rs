//! The domain types the [`Store`](super::Store) trait speaks: rows as the rest of ringrelay
//! sees them, never as SQL sees them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::account::AccountId;
use crate::activity::Activity;
use crate::config::Secret;

/// How a backend is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Capacity of the queue in front of the group-commit writer (`server.ingest_queue`);
    /// when it is full, `append_inbox` answers [`StoreError::Unavailable`](super::StoreError).
    pub ingest_queue: usize,
    /// Most notifications one group-commit transaction holds.
    pub max_batch: usize,
    /// Connections (Postgres pool) or reader connections (SQLite).
    pub pool_size: usize,
    /// Run migrations while opening (`serve` does; tests may not).
    pub migrate: bool,
    /// SQLite: load the inbox's in-memory uuid dedup at once, in the background, rather
    /// than on the first append (`serve` does, so the first notification after a restart
    /// does not wait for it; CLI commands that never append do not pay for it).
    pub preload_dedup: bool,
}

impl OpenOptions {
    /// The options `serve` uses: the configured ingest queue, migrations at open.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            ingest_queue: settings.server.ingest_queue,
            preload_dedup: true,
            ..Self::default()
        }
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            ingest_queue: 4096,
            max_batch: 512,
            pool_size: 4,
            migrate: true,
            preload_dedup: false,
        }
    }
}

/// One account's inbox traffic (see [`Store::inbox_account_summary`](super::Store::inbox_account_summary)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxAccountSummary {
    /// When the account's newest notification was received (kept across pruning).
    pub last_received_at: Option<DateTime<Utc>>,
    /// Notifications received at or after the asked time.
    pub since_count: u64,
}

/// One stored inbox notification, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    /// Position in the inbox: strictly increasing in commit order, never reused.
    pub seq: i64,
    /// The account whose webhook URL received it.
    pub account: AccountId,
    /// The envelope's `subscriptionId`, when present.
    pub subscription_id: Option<String>,
    /// The envelope's `uuid`.
    pub uuid: String,
    /// The envelope's `event` path.
    pub event: String,
    /// The envelope's `timestamp`, when present.
    pub timestamp: Option<DateTime<Utc>>,
    /// When ringrelay received it.
    pub received_at: DateTime<Utc>,
    /// The raw body.
    pub body: String,
    /// Whether the subscription id was unknown to the account when received.
    pub unknown_subscription: bool,
}

/// Inbox counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    /// Rows stored now (after pruning).
    pub rows: u64,
    /// Appends answered `Duplicate` since the store was created.
    pub duplicates: u64,
    /// The highest `seq` ever stored (0 when empty).
    pub max_seq: i64,
}

/// The name of the processor's inbox position cursor (stored with no account).
pub const PROCESSOR_CURSOR: &str = "processor.inbox_seq";

/// A named cursor value to write, optionally scoped to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorUpdate {
    /// The account it belongs to; `None` for a global cursor such as [`PROCESSOR_CURSOR`].
    pub account: Option<AccountId>,
    /// The cursor's name (e.g. `call_log.sync_token`).
    pub name: String,
    /// The new value.
    pub value: String,
}

/// A derived activity and the sinks that must receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    /// The activity (its `key` is the de-duplication key).
    pub activity: Activity,
    /// Names of the sinks to create deliveries for (one delivery per sink).
    pub sinks: Vec<String>,
}

/// The state of one delivery (one activity to one sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Never attempted; due at its next-attempt time.
    Pending,
    /// Claimed by a worker whose lease has not expired.
    InFlight,
    /// Attempted, failed, and scheduled for another attempt.
    Failed,
    /// The sink accepted it.
    Delivered,
    /// Given up on; only [`Store::retry_delivery`](super::Store::retry_delivery) revives it.
    Dead,
}

impl DeliveryState {
    /// Every state, in display order.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::InFlight,
        Self::Failed,
        Self::Delivered,
        Self::Dead,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Whether the delivery still has to happen (it holds back later ones of its call).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::InFlight | Self::Failed)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state {s:?}"))
    }
}

/// A delivery handed to a worker by [`Store::claim_deliveries`](super::Store::claim_deliveries).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The delivery id.
    pub id: i64,
    /// The sink it goes to.
    pub sink: String,
    /// The activity to send.
    pub activity: Activity,
    /// This attempt's number (1 for the first); pass it back to `complete_delivery`.
    pub attempt: u32,
    /// Until when this worker holds the claim; after it another worker may claim it.
    pub lease_until: DateTime<Utc>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The sink accepted it.
    Delivered,
    /// It failed; try again at `at`.
    RetryAt {
        /// When the next attempt is due.
        at: DateTime<Utc>,
        /// What went wrong.
        error: String,
        /// The sink's HTTP status, when it answered.
        status: Option<u16>,
    },
    /// It failed for good.
    Dead {
        /// What went wrong.
        error: String,
        /// The sink's HTTP status, when it answered.
        status: Option<u16>,
    },
}

/// One delivery as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The delivery id.
    pub id: i64,
    /// The sink.
    pub sink: String,
    /// The activity's key.
    pub activity_key: String,
    /// The activity's id.
    pub activity_id: crate::activity::ActivityId,
    /// The activity's account.
    pub account: AccountId,
    /// The activity's call key.
    pub call_key: String,
    /// The activity's type (`call.answered`, …).
    pub kind: String,
    /// Current state.
    pub state: DeliveryState,
    /// Attempts made (claims) so far.
    pub attempts: u32,
    /// When the next attempt is due (pending, failed) or the lease ends (in flight).
    pub due_at: Option<DateTime<Utc>>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The sink's last HTTP status, if any.
    pub last_status: Option<u16>,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which deliveries `list_deliveries` returns (all fields optional filters), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this sink.
    pub sink: Option<String>,
    /// Only this account.
    pub account: Option<AccountId>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only ids below this one (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many (0 means 100).
    pub limit: usize,
}

/// How many deliveries a sink has in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    /// The sink.
    pub sink: String,
    /// The state.
    pub state: DeliveryState,
    /// How many.
    pub count: u64,
}

/// Whether a sink is enabled; a disabled sink gets no claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkState {
    /// The sink's name.
    pub sink: String,
    /// Why it is disabled; `None` when enabled.
    pub disabled_reason: Option<String>,
    /// When this state was set.
    pub changed_at: DateTime<Utc>,
}

/// A filter RingCentral disabled on a subscription, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DisabledFilter {
    /// The event filter.
    pub filter: String,
    /// RingCentral's reason.
    pub reason: String,
}

/// An account's RingCentral subscription, as last seen.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    /// The account.
    pub account: AccountId,
    /// RingCentral's subscription id.
    pub id: String,
    /// RingCentral's status (`Active`, `Suspended`, `Blacklisted`, …).
    pub status: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The webhook address it delivers to.
    pub address: String,
    /// The verification token RingCentral echoes (a secret).
    pub verification_token: Option<Secret>,
    /// The event filters requested.
    pub event_filters: Vec<String>,
    /// Filters RingCentral disabled.
    pub disabled_filters: Vec<DisabledFilter>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last renewed.
    pub renewed_at: Option<DateTime<Utc>>,
    /// The last error keeping it, if any.
    pub last_error: Option<String>,
}

impl PartialEq for SubscriptionRecord {
    fn eq(&self, o: &Self) -> bool {
        self.account == o.account
            && self.id == o.id
            && self.status == o.status
            && self.expires_at == o.expires_at
            && self.address == o.address
            && self.verification_token.as_ref().map(Secret::expose)
                == o.verification_token.as_ref().map(Secret::expose)
            && self.event_filters == o.event_filters
            && self.disabled_filters == o.disabled_filters
            && self.created_at == o.created_at
            && self.renewed_at == o.renewed_at
            && self.last_error == o.last_error
    }
}

/// Why coverage was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapCause {
    /// ringrelay was not running (found at start from the last liveness heartbeat).
    Downtime,
    /// The subscription expired.
    Expired,
    /// RingCentral blacklisted the webhook address.
    Blacklisted,
    /// Renewal failed.
    RenewalFailed,
    /// The subscription was created after the account was added (or re-created late).
    CreatedLate,
    /// RingCentral disabled some event filters.
    FiltersDisabled,
}

impl GapCause {
    /// Every cause.
    pub const ALL: [Self; 6] = [
        Self::Downtime,
        Self::Expired,
        Self::Blacklisted,
        Self::RenewalFailed,
        Self::CreatedLate,
        Self::FiltersDisabled,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downtime => "downtime",
            Self::Expired => "expired",
            Self::Blacklisted => "blacklisted",
            Self::RenewalFailed => "renewal_failed",
            Self::CreatedLate => "created_late",
            Self::FiltersDisabled => "filters_disabled",
        }
    }
}

impl fmt::Display for GapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GapCause {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown gap cause {s:?}"))
    }
}

/// Where a gap's backfill stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillState {
    /// Not yet backfilled (or the gap is still open).
    Pending,
    /// Backfilled.
    Done {
        /// Call-log records read.
        records: u64,
        /// Activities found (new or already known).
        activities: u64,
    },
    /// The backfill failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// A period an account was not covered by an Active subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The gap's id.
    pub id: i64,
    /// The account.
    pub account: AccountId,
    /// Start of the gap.
    pub from: DateTime<Utc>,
    /// End of the gap; `None` while it is open.
    pub until: Option<DateTime<Utc>>,
    /// Why.
    pub cause: GapCause,
    /// Backfill state.
    pub backfill: BackfillState,
    /// When the backfill state last changed.
    pub backfilled_at: Option<DateTime<Utc>>,
}

/// A named lease held by one owner, with a fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name (e.g. `keeper:acme`).
    pub name: String,
    /// Who holds it.
    pub owner: String,
    /// Fencing token: strictly increases each time the lease changes hands.
    pub fence: i64,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What a pruning step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Inbox rows removed.
    pub inbox: u64,
    /// Delivered deliveries removed.
    pub deliveries: u64,
    /// Activities removed (older than the inbox retention, with no delivery left).
    pub activities: u64,
}

/// One extension of an account as discovery last saw it, and whether ringrelay covers it
/// (subscribes to its voicemail and backfills its messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRecord {
    /// RingCentral's extension id.
    pub extension_id: String,
    /// Short extension number, when it has one.
    pub number: Option<String>,
    /// Display name.
    pub name: String,
    /// RingCentral's `type` (`User`, `Department`, …).
    pub kind: String,
    /// RingCentral's `status` (`Enabled`, `Disabled`, …).
    pub status: String,
    /// Whether it is covered.
    pub covered: bool,
    /// Why it is not covered (`None` when covered).
    pub reason: Option<String>,
}

/// An [`ExtensionRecord`] as stored, with when its row last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExtension {
    /// The extension.
    pub record: ExtensionRecord,
    /// When the row was added or last changed (unchanged rows keep their time).
    pub updated_at: DateTime<Utc>,
}

/// An account's OAuth tokens as shared by every replica (`oauth_tokens` table). They are
/// secrets kept in the database in plain text: whoever can read the database can call
/// RingCentral as the account until they expire (see `docs/scaling.md`).
#[derive(Debug, Clone)]
pub struct StoredTokens {
    /// The account.
    pub account: AccountId,
    /// Which credential obtained them (a hash of the client id and JWT, never the secrets
    /// themselves), so tokens of a replaced credential are not reused.
    pub credential: String,
    /// The access token.
    pub access_token: Secret,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// The single-use refresh token, when RingCentral gave one.
    pub refresh_token: Option<Secret>,
    /// When the refresh token expires.
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// When they were obtained.
    pub updated_at: DateTime<Utc>,
    /// The replica that obtained them.
    pub updated_by: String,
}
