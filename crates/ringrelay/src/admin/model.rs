//! What operators see: the status report behind `ringrelay status`, `GET /api/v1/status`
//! and the status page, as plain serializable views (the same JSON everywhere).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything `ringrelay status --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// One entry per configured account, in config order.
    pub accounts: Vec<AccountStatus>,
    /// One entry per configured sink, in config order.
    pub sinks: Vec<SinkStatus>,
    /// The replica holding the processor lease (several replicas on one database).
    #[serde(default)]
    pub processor: Option<LeaseView>,
}

/// Which replica holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The replica (`server.replica_id`).
    pub owner: String,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whether it had not lapsed when the report was made.
    pub live: bool,
}

impl StatusReport {
    /// Whether every account is covered and no sink has dead deliveries or is disabled.
    pub fn healthy(&self) -> bool {
        self.accounts.iter().all(AccountStatus::covered)
            && self
                .sinks
                .iter()
                .all(|s| s.disabled.is_none() && s.dead == 0)
    }
}

/// One account's subscription, traffic and coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountStatus {
    /// The account slug.
    pub id: String,
    /// The subscription ringrelay keeps for it, when there is one.
    pub subscription: Option<SubscriptionView>,
    /// When the last notification for it was received.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Notifications received in the hour before `generated_at`.
    pub events_last_hour: u64,
    /// When the account's JWT credential itself expires (decoded from its `exp`).
    pub credential_expires_at: Option<DateTime<Utc>>,
    /// Coverage gaps, newest first (open ones and recent closed ones).
    pub gaps: Vec<GapView>,
    /// Plain-language problems; empty when all is well.
    pub problems: Vec<String>,
    /// The replica keeping the account (holding its `keeper:{account}` lease).
    #[serde(default)]
    pub keeper: Option<LeaseView>,
    /// Which of the account's extensions are covered, as extension discovery last stored
    /// it; `None` before discovery has listed them.
    #[serde(default)]
    pub extensions: Option<ExtensionsView>,
}

/// An account's extensions and their coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionsView {
    /// Extensions RingCentral lists for the account.
    pub total: usize,
    /// Extensions whose voicemail (and call log) ringrelay covers.
    pub covered: usize,
    /// When discovery last stored a change to the list.
    pub updated_at: Option<DateTime<Utc>>,
    /// The extensions not covered, each with why.
    pub not_covered: Vec<UncoveredExtension>,
}

impl ExtensionsView {
    /// The not-covered extensions counted by reason, most frequent first.
    pub fn reasons(&self) -> Vec<(String, usize)> {
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for e in &self.not_covered {
            *counts.entry(e.reason.as_str()).or_default() += 1;
        }
        let mut out: Vec<(String, usize)> =
            counts.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// `"163/200"`, with the reasons the rest are not covered.
    pub fn summary(&self) -> String {
        let mut line = format!("{}/{} extensions covered", self.covered, self.total);
        let reasons = self.reasons();
        if !reasons.is_empty() {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            line.push_str(&format!(" (not covered: {})", parts.join(", ")));
        }
        line
    }
}

/// An extension ringrelay does not cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UncoveredExtension {
    /// RingCentral's extension id.
    pub id: String,
    /// Its short number, when it has one.
    pub number: Option<String>,
    /// Its name.
    pub name: String,
    /// Why it is not covered (status, kind, permission, scope, subscription limit).
    pub reason: String,
}

impl AccountStatus {
    /// Covered: an Active subscription and no open gap.
    pub fn covered(&self) -> bool {
        self.subscription
            .as_ref()
            .is_some_and(|s| s.status.eq_ignore_ascii_case("active"))
            && self.gaps.iter().all(|g| g.until.is_some())
    }

    /// Gaps not yet closed.
    pub fn open_gaps(&self) -> usize {
        self.gaps.iter().filter(|g| g.until.is_none()).count()
    }

    /// Closed gaps whose backfill has not finished.
    pub fn pending_backfills(&self) -> usize {
        self.gaps
            .iter()
            .filter(|g| g.until.is_some() && g.backfilled_at.is_none())
            .count()
    }
}

/// The subscription as operators need to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// RingCentral's subscription id.
    pub id: String,
    /// `Active`, `Suspended`, `Blacklisted`, …, as RingCentral says.
    pub status: String,
    /// When RingCentral will expire it unless renewed.
    pub expires_at: Option<DateTime<Utc>>,
    /// Event filters RingCentral refused, with the reason.
    pub disabled_filters: Vec<DisabledFilterView>,
}

/// A refused event filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisabledFilterView {
    /// The filter.
    pub filter: String,
    /// Why RingCentral refused it.
    pub reason: String,
}

/// One interval in which the account was not covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapView {
    /// The gap's id in the coverage ledger.
    pub id: i64,
    /// Start of the uncovered interval.
    pub from: DateTime<Utc>,
    /// End of it; `None` while the gap is open.
    pub until: Option<DateTime<Utc>>,
    /// Why coverage was lost (blacklisted, expired, ringrelay down, …).
    pub reason: String,
    /// When the backfill of this gap finished.
    pub backfilled_at: Option<DateTime<Utc>>,
    /// Activities the backfill emitted.
    pub backfilled_activities: u64,
}

/// One sink's delivery counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// `webhook`, `nats` or `jsonl`.
    pub kind: String,
    /// Why the sink is disabled or paused, when it is.
    pub disabled: Option<String>,
    /// Deliveries waiting for their first attempt or their next retry.
    pub pending: u64,
    /// Deliveries dead-lettered (retry or replay them).
    pub dead: u64,
    /// Deliveries that succeeded (within the retention window).
    pub delivered: u64,
}

/// One delivery, as the deliveries list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The delivery id.
    pub id: i64,
    /// The sink it goes to.
    pub sink: String,
    /// The account of its activity.
    pub account: String,
    /// The activity id (`webhook-id`).
    pub activity_id: String,
    /// The activity type.
    pub activity_type: String,
    /// `pending`, `delivered`, `dead` or `cancelled`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, when there was one.
    pub last_error: Option<String>,
}

/// Readiness: the store answers and every account is covered, or the reasons it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// True when ready.
    pub ready: bool,
    /// What is not ready, in plain words.
    pub reasons: Vec<String>,
}
