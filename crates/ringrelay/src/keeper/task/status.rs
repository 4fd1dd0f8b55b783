//! What a keeper shows in `status` and `check`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::super::{explain, pack, plan};
use crate::account::AccountId;
use crate::ringcentral::Subscription;
use crate::store::{DisabledFilter, Gap};

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

/// How the account's extensions are covered by voicemail filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionCoverage {
    /// Extensions the last reconcile set out to cover (minus those whose filter
    /// RingCentral had refused before it).
    pub wanted: usize,
    /// Extensions whose voicemail filter an Active subscription carries.
    pub covered: usize,
    /// Subscriptions the account uses.
    pub subscriptions: usize,
    /// The configured maximum of filters per subscription.
    pub max_filters_per_subscription: usize,
    /// Set when RingCentral's subscription limit leaves extensions out.
    pub over_limit: Option<pack::OverLimit>,
}

/// A keeper's state for the status page and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperStatus {
    /// The account.
    pub account: AccountId,
    /// Covered or not.
    pub state: CoverageState,
    /// The kept subscription (the first one, carrying the account-level filters).
    pub subscription: Option<SubscriptionSummary>,
    /// Every kept subscription, the first one first.
    pub subscriptions: Vec<SubscriptionSummary>,
    /// The extensions' voicemail coverage; `None` when only the account's own filters
    /// are kept.
    pub extensions: Option<ExtensionCoverage>,
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
    pub(super) fn starting(account: AccountId) -> Self {
        Self {
            account,
            state: CoverageState::Starting,
            subscription: None,
            subscriptions: Vec::new(),
            extensions: None,
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

/// A subscription as `status` shows it.
pub(super) fn summary(s: &Subscription, renew_before: Duration) -> SubscriptionSummary {
    SubscriptionSummary {
        id: s.id.clone(),
        status: s.status.to_string(),
        expires_at: s.expires_at,
        renew_at: plan::renew_at(s, renew_before),
    }
}
