//! Pure planning: from what the account wants and what RingCentral lists, decide which
//! subscriptions to keep, renew, delete and whether to create one. [`plan`] keeps the
//! account's single subscription; [`super::pack`] builds on it for several. No I/O, no
//! clock.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ringcentral::{Subscription, SubscriptionStatus};
use crate::store::GapCause;

/// RingCentral's per-user, per-app subscription limit (API.md: 30, SUB-505 beyond).
pub const SUBSCRIPTION_LIMIT: usize = 30;

/// What the account's subscription should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Our webhook URL for the account.
    pub address: String,
    /// The filters to subscribe to (configured ones plus the reminder, minus refused ones).
    pub event_filters: Vec<String>,
    /// Requested lifetime.
    pub expires_in: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
}

/// Why a subscription is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// It is not `Active` (Blacklisted, Suspended, Blocked, …).
    NotActive(String),
    /// Its expiration time has passed.
    Expired,
    /// Its filters are not the configured ones.
    FiltersChanged,
    /// Another valid subscription of ours is kept instead.
    Duplicate,
    /// It carries no extension any more (or its extensions moved to earlier ones).
    Emptied,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete a subscription of ours.
    Delete {
        /// Its id.
        id: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Renew the kept subscription.
    Renew {
        /// Its id.
        id: String,
    },
    /// Create a new subscription.
    Create,
}

/// Why the account is not covered right now, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncovered {
    /// Start of the uncovered interval.
    pub since: DateTime<Utc>,
    /// Why.
    pub cause: GapCause,
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The subscription kept, if one is valid.
    pub keep: Option<Subscription>,
    /// What to do, deletes first.
    pub actions: Vec<Action>,
    /// Set when no valid subscription of ours exists.
    pub uncovered: Option<Uncovered>,
    /// Subscriptions listed that are not ours (never touched).
    pub foreign: usize,
    /// Set when a create would hit the subscription limit even after our deletes: the
    /// number of subscriptions that would remain.
    pub limit_blocked: Option<usize>,
}

/// Replaces numeric account/extension ids (RingCentral expands `~`) with `~`, so applied
/// filters compare with configured ones.
pub fn normalize_filter(filter: &str) -> String {
    let (path, query) = match filter.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (filter, None),
    };
    let mut out = Vec::new();
    let mut prev = "";
    for seg in path.split('/') {
        let is_id = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
        if is_id && matches!(prev, "account" | "extension" | "subscription") {
            out.push("~");
        } else {
            out.push(seg);
        }
        prev = seg;
    }
    let mut s = out.join("/");
    if let Some(q) = query {
        let mut parts: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        s.push('?');
        s.push_str(&parts.join("&"));
    }
    s
}

/// Whether `sub`'s filters (applied plus disabled) are the desired ones.
pub fn filters_match(sub: &Subscription, desired: &[String]) -> bool {
    let want: BTreeSet<String> = desired.iter().map(|f| normalize_filter(f)).collect();
    let applied: BTreeSet<String> = sub
        .event_filters
        .iter()
        .map(|f| normalize_filter(f))
        .collect();
    let disabled: BTreeSet<String> = sub
        .disabled_filters
        .iter()
        .map(|f| normalize_filter(&f.filter))
        .collect();
    applied.iter().all(|f| want.contains(f))
        && want
            .iter()
            .all(|f| applied.contains(f) || disabled.contains(f))
}

/// Whether `sub` points at `address`.
pub fn is_ours(sub: &Subscription, address: &str) -> bool {
    sub.address
        .as_deref()
        .is_some_and(|a| a.trim_end_matches('/') == address.trim_end_matches('/'))
}

/// When `sub` should be renewed.
pub fn renew_at(sub: &Subscription, renew_before: Duration) -> DateTime<Utc> {
    sub.expires_at - crate::store::chrono_duration(renew_before)
}

fn problem(sub: &Subscription, now: DateTime<Utc>, desired: &Desired) -> Option<DeleteReason> {
    if sub.status != SubscriptionStatus::Active {
        return Some(DeleteReason::NotActive(sub.status.to_string()));
    }
    if sub.expires_at <= now {
        return Some(DeleteReason::Expired);
    }
    if !filters_match(sub, &desired.event_filters) {
        return Some(DeleteReason::FiltersChanged);
    }
    None
}

/// Decides what to do. `known` is the subscription whose verification token we hold (the
/// store's record): RingCentral never echoes tokens, so only that one can be kept; every
/// other subscription at our address is a stray or duplicate and is deleted. `last_event`
/// (the last notification seen) bounds the start of a blacklisting gap: the earlier of it
/// and `blacklistedAt`.
pub fn plan(
    desired: &Desired,
    listed: &[Subscription],
    known: Option<&str>,
    now: DateTime<Utc>,
    last_event: Option<DateTime<Utc>>,
) -> Plan {
    let (ours, foreign): (Vec<&Subscription>, Vec<&Subscription>) =
        listed.iter().partition(|s| is_ours(s, &desired.address));
    let mut valid: Vec<&Subscription> = Vec::new();
    let mut actions = Vec::new();
    let mut uncovered: Option<Uncovered> = None;
    for sub in &ours {
        match problem(sub, now, desired) {
            None => valid.push(sub),
            Some(reason) => {
                if let Some(u) = lost(sub, &reason, now, last_event)
                    && uncovered.is_none_or(|c| u.since < c.since)
                {
                    uncovered = Some(u);
                }
                actions.push(Action::Delete {
                    id: sub.id.clone(),
                    reason,
                });
            }
        }
    }
    // Keep the one whose token we hold, if it is valid.
    valid.sort_by_key(|s| (s.created_at, s.expires_at));
    let keep = valid
        .iter()
        .position(|s| Some(s.id.as_str()) == known)
        .map(|i| valid.remove(i).clone());
    for dup in valid {
        actions.push(Action::Delete {
            id: dup.id.clone(),
            reason: DeleteReason::Duplicate,
        });
    }
    let mut limit_blocked = None;
    match &keep {
        Some(k) => {
            if renew_at(k, desired.renew_before) <= now {
                actions.push(Action::Renew { id: k.id.clone() });
            }
            uncovered = None;
        }
        None => {
            let remaining = listed.len() - actions.len();
            if remaining >= SUBSCRIPTION_LIMIT {
                limit_blocked = Some(remaining);
            }
            actions.push(Action::Create);
            if uncovered.is_none() {
                uncovered = Some(Uncovered {
                    since: now,
                    cause: GapCause::CreatedLate,
                });
            }
        }
    }
    Plan {
        keep,
        actions,
        uncovered,
        foreign: foreign.len(),
        limit_blocked,
    }
}

/// Start and cause of the gap a lost subscription leaves (see [`plan`]).
pub(super) fn lost(
    sub: &Subscription,
    reason: &DeleteReason,
    now: DateTime<Utc>,
    last_event: Option<DateTime<Utc>>,
) -> Option<Uncovered> {
    match reason {
        DeleteReason::NotActive(_) => {
            let cause = if sub.status == SubscriptionStatus::Blacklisted {
                GapCause::Blacklisted
            } else {
                GapCause::Expired
            };
            let at = sub.blacklisted.as_ref().and_then(|b| b.at);
            let since = match (at, last_event) {
                (Some(a), Some(e)) => a.min(e),
                (Some(a), None) => a,
                (None, Some(e)) => e.min(now),
                (None, None) => now,
            };
            Some(Uncovered { since, cause })
        }
        DeleteReason::Expired => Some(Uncovered {
            since: sub.expires_at,
            cause: GapCause::Expired,
        }),
        DeleteReason::FiltersChanged | DeleteReason::Duplicate | DeleteReason::Emptied => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn expanded_ids_compare_equal_to_tildes() {
        assert_eq!(
            normalize_filter("/restapi/v1.0/account/37439510/extension/12/voicemail"),
            "/restapi/v1.0/account/~/extension/~/voicemail"
        );
        assert_eq!(
            normalize_filter("/restapi/v1.0/subscription/~?interval=1&threshold=2"),
            normalize_filter("/restapi/v1.0/subscription/~?threshold=2&interval=1")
        );
        assert_ne!(
            normalize_filter("/restapi/v1.0/account/~/telephony/sessions"),
            normalize_filter("/restapi/v1.0/account/~/extension/~/voicemail")
        );
    }

    /// An Active subscription of ours for the planning tests (also the packing's).
    pub(crate) fn sub(
        id: &str,
        address: &str,
        expires_in_h: i64,
        now: DateTime<Utc>,
    ) -> Subscription {
        Subscription {
            id: id.into(),
            status: SubscriptionStatus::Active,
            created_at: Some(now),
            expires_at: now + chrono::Duration::hours(expires_in_h),
            address: Some(address.into()),
            transport_type: Some("WebHook".into()),
            event_filters: vec!["/restapi/v1.0/account/1/telephony/sessions".into()],
            disabled_filters: Vec::new(),
            blacklisted: None,
            verification_token: None,
        }
    }

    fn desired() -> Desired {
        Desired {
            address: "https://r/webhooks/ringcentral/a".into(),
            event_filters: vec!["/restapi/v1.0/account/~/telephony/sessions".into()],
            expires_in: Duration::from_secs(7 * 86_400),
            renew_before: Duration::from_secs(56 * 3600),
        }
    }

    #[test]
    fn the_known_subscription_is_renewed_only_inside_the_renewal_window() {
        let now = Utc::now();
        let d = desired();
        let fresh = [sub("k", &d.address, 100, now)];
        let p = plan(&d, &fresh, Some("k"), now, None);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.uncovered.is_none());
        let due = [sub("k", &d.address, 50, now)];
        let p = plan(&d, &due, Some("k"), now, None);
        assert_eq!(p.actions, vec![Action::Renew { id: "k".into() }]);
    }

    #[test]
    fn an_expired_one_is_deleted_and_uncovered_since_its_expiry() {
        let now = Utc::now();
        let d = desired();
        let gone = [sub("k", &d.address, -2, now)];
        let p = plan(&d, &gone, Some("k"), now, None);
        assert_eq!(p.actions.len(), 2);
        assert_eq!(p.actions[1], Action::Create);
        let u = p.uncovered.unwrap();
        assert_eq!(u.cause, GapCause::Expired);
        assert_eq!(u.since, now - chrono::Duration::hours(2));
    }

    #[test]
    fn a_full_limit_of_foreign_subscriptions_is_flagged_before_creating() {
        let now = Utc::now();
        let d = desired();
        let listed: Vec<Subscription> = (0..SUBSCRIPTION_LIMIT)
            .map(|i| sub(&format!("f{i}"), "https://elsewhere/x", 100, now))
            .collect();
        let p = plan(&d, &listed, None, now, None);
        assert_eq!(p.foreign, SUBSCRIPTION_LIMIT);
        assert_eq!(p.limit_blocked, Some(SUBSCRIPTION_LIMIT));
        assert_eq!(p.actions, vec![Action::Create]);
    }
}
