//! Pure planning: from what the account wants and what RingCentral lists, decide which
//! subscriptions to keep, renew, delete and whether to create one. No I/O, no clock.

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

/// Default for `keeper.max_filters_per_subscription`. RingCentral documents no maximum
/// number of filters per subscription (API.md §2.6, UNCONFIRMED); 500 keeps a request body
/// around 30 KB and still covers 30 × 499 ≈ 15 000 extensions within the subscription limit.
pub const DEFAULT_MAX_FILTERS: usize = 500;

const API_PREFIX: &str = "/restapi/v1.0/";

/// The voicemail filter of one extension, as ringrelay requests it.
pub fn extension_voicemail_filter(extension: &str) -> String {
    format!("{API_PREFIX}account/~/extension/{extension}/voicemail")
}

/// The extension id of a per-extension voicemail filter
/// (`/restapi/v1.0/account/{account}/extension/{numeric id}/voicemail`), as requested or
/// as RingCentral lists it; `None` for any other filter (including `extension/~`).
pub fn voicemail_extension(filter: &str) -> Option<&str> {
    let rest = filter.strip_prefix(API_PREFIX)?;
    let mut parts = rest.split('/');
    let (Some("account"), Some(_), Some("extension"), Some(ext), Some("voicemail"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit())).then_some(ext)
}

/// Whether `filter` is the renewal reminder (`/restapi/v1.0/subscription/~?…`).
pub fn is_reminder(filter: &str) -> bool {
    filter.starts_with("/restapi/v1.0/subscription/")
}

/// Orders extension ids numerically (shorter first, then lexically), so packing is the
/// same on every replica and across restarts.
fn ext_order(a: &String, b: &String) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// The comparison key of a filter when extensions are packed: per-extension voicemail
/// filters keep their extension id, every other filter is [`normalize_filter`]ed.
fn set_key(filter: &str) -> String {
    match voicemail_extension(filter) {
        Some(ext) => extension_voicemail_filter(ext),
        None => normalize_filter(filter),
    }
}

/// The most subscriptions of `subs` that share one filter (the renewal reminder aside):
/// above 1, those events arrive that many times. Subscriptions that split the extensions'
/// voicemail filters between them share none.
pub fn overlap(subs: &[&Subscription]) -> usize {
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for s in subs {
        let keys: BTreeSet<String> = s
            .event_filters
            .iter()
            .filter(|f| !is_reminder(f))
            .map(|f| set_key(f))
            .collect();
        for k in keys {
            *counts.entry(k).or_default() += 1;
        }
    }
    counts.into_values().max().unwrap_or(0)
}

/// What the account wants across all its subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSet {
    /// Our webhook URL for the account.
    pub address: String,
    /// The account-level filters (configured ones plus the reminder, minus refused ones),
    /// carried by the first subscription.
    pub account_filters: Vec<String>,
    /// The renewal reminder, carried by every further subscription too.
    pub reminder: Option<String>,
    /// The covered extensions (one voicemail filter each). Empty: one subscription with
    /// `account_filters` only, exactly as [`plan`] keeps it.
    pub extensions: Vec<String>,
    /// At most this many filters per subscription.
    pub max_filters: usize,
    /// Requested lifetime.
    pub expires_in: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
}

impl DesiredSet {
    /// The single-subscription view ([`plan`]'s input).
    pub fn single(&self) -> Desired {
        Desired {
            address: self.address.clone(),
            event_filters: self.account_filters.clone(),
            expires_in: self.expires_in,
            renew_before: self.renew_before,
        }
    }

    /// How many extension filters the subscription at `slot` can carry.
    pub fn capacity(&self, slot: usize) -> usize {
        let fixed = if slot == 0 {
            self.account_filters.len()
        } else {
            usize::from(self.reminder.is_some())
        };
        self.max_filters.saturating_sub(fixed)
    }

    /// The full filter list of the subscription at `slot` carrying `extensions`.
    pub fn filters_for(&self, slot: usize, extensions: &[String]) -> Vec<String> {
        let mut out = if slot == 0 {
            self.account_filters.clone()
        } else {
            Vec::new()
        };
        out.extend(extensions.iter().map(|e| extension_voicemail_filter(e)));
        if slot > 0
            && let Some(r) = &self.reminder
        {
            out.push(r.clone());
        }
        out
    }
}

/// A subscription whose verification token the keeper holds, in slot order (the first
/// carries the account-level filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub id: String,
    /// How it looked when the keeper last saw it (`None` after a restart).
    pub last: Option<Subscription>,
}

/// What to do with one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotAction {
    /// Nothing: Active, filters right, renewal not due.
    Keep,
    /// Renew (`POST …/renew`).
    Renew,
    /// Replace the filter list (`PUT` with the full list, which also renews).
    Update,
    /// Create a subscription for this slot.
    Create,
}

/// One subscription of the account as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPlan {
    /// The valid listed subscription kept for the slot; `None` when one is created.
    pub existing: Option<Subscription>,
    /// The extensions whose voicemail filters it carries, in numeric order.
    pub extensions: Vec<String>,
    /// The full filter list it must have.
    pub filters: Vec<String>,
    /// What to do.
    pub action: SlotAction,
}

/// A part of the account that is not covered, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncoveredPart {
    /// Start and cause.
    pub uncovered: Uncovered,
    /// The extensions concerned (a voicemail-only subscription was lost); `None` when the
    /// whole account is (the first subscription was lost).
    pub extensions: Option<Vec<String>>,
}

/// Extensions left out because the subscriptions they need exceed RingCentral's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    /// Subscriptions the packing needs.
    pub needed: usize,
    /// Subscriptions ringrelay may have (the limit minus foreign ones).
    pub allowed: usize,
    /// The extensions left without a voicemail filter.
    pub extensions: Vec<String>,
}

/// The outcome of planning all of an account's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPlan {
    /// The slots, first one carrying the account-level filters.
    pub slots: Vec<SlotPlan>,
    /// Subscriptions to delete first, with why.
    pub deletes: Vec<(String, DeleteReason)>,
    /// What is not covered now (gaps to record).
    pub uncovered: Vec<UncoveredPart>,
    /// Subscriptions listed that are not ours (never touched).
    pub foreign: usize,
    /// As [`Plan::limit_blocked`] (single-subscription mode).
    pub limit_blocked: Option<usize>,
    /// Set when the packing needs more subscriptions than the limit allows.
    pub over_limit: Option<OverLimit>,
}

/// Start and cause of the gap a lost subscription leaves (see [`plan`]).
fn lost(
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

/// The extensions a listed subscription carries (applied and disabled filters).
pub fn extensions_of(sub: &Subscription) -> Vec<String> {
    let mut out: Vec<String> = sub
        .event_filters
        .iter()
        .map(String::as_str)
        .chain(sub.disabled_filters.iter().map(|d| d.filter.as_str()))
        .filter_map(voicemail_extension)
        .map(str::to_owned)
        .collect();
    out.sort_by(ext_order);
    out.dedup();
    out
}

/// Whether `sub`'s filters are `desired` when extensions are packed (per-extension
/// voicemail filters compared by extension id; applied ⊆ desired ⊆ applied ∪ disabled).
pub fn set_filters_match(sub: &Subscription, desired: &[String]) -> bool {
    let want: BTreeSet<String> = desired.iter().map(|f| set_key(f)).collect();
    let applied: BTreeSet<String> = sub.event_filters.iter().map(|f| set_key(f)).collect();
    let disabled: BTreeSet<String> = sub
        .disabled_filters
        .iter()
        .map(|f| set_key(&f.filter))
        .collect();
    applied.iter().all(|f| want.contains(f))
        && want
            .iter()
            .all(|f| applied.contains(f) || disabled.contains(f))
}

/// Plans every subscription of the account. With no extensions this is [`plan`] for the
/// first held subscription (today's single subscription; others held are duplicates).
/// With extensions, their voicemail filters are packed into as few subscriptions as
/// possible, each at most `max_filters` filters, the first also carrying the account-level
/// filters and every one the reminder. Packing is stable: each held subscription keeps
/// the extensions it carries; removed extensions leave their subscription (one `PUT`),
/// new ones go to the first subscription with room (one `PUT`), or to a new one. A
/// subscription left without extensions is deleted; when removals leave more than one
/// subscription's worth of room, the last subscription's extensions move into the
/// earlier ones and it is deleted. A lost subscription (not Active, expired, vanished) is
/// recreated with the same extensions, and what it covered is reported uncovered.
pub fn plan_set(
    desired: &DesiredSet,
    listed: &[Subscription],
    held: &[Held],
    now: DateTime<Utc>,
    last_event: Option<DateTime<Utc>>,
) -> SetPlan {
    if desired.extensions.is_empty() {
        return single(desired, listed, held, now, last_event);
    }
    let (ours, foreign): (Vec<&Subscription>, Vec<&Subscription>) =
        listed.iter().partition(|s| is_ours(s, &desired.address));
    let mut deletes = Vec::new();
    let mut uncovered = Vec::new();
    // (existing, extensions) per slot, from what we hold.
    let mut slots: Vec<(Option<Subscription>, Vec<String>)> = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let held: Vec<&Held> = held.iter().filter(|h| seen_ids.insert(&h.id)).collect();
    for (i, h) in held.iter().enumerate() {
        let scope = |exts: &[String]| (i > 0).then(|| exts.to_vec());
        match ours.iter().find(|s| s.id == h.id) {
            Some(sub) => {
                let exts = extensions_of(sub);
                let reason = if sub.status != SubscriptionStatus::Active {
                    Some(DeleteReason::NotActive(sub.status.to_string()))
                } else if sub.expires_at <= now {
                    Some(DeleteReason::Expired)
                } else {
                    None
                };
                match reason {
                    None => slots.push((Some((*sub).clone()), exts)),
                    Some(reason) => {
                        if let Some(u) = lost(sub, &reason, now, last_event) {
                            uncovered.push(UncoveredPart {
                                uncovered: u,
                                extensions: scope(&exts),
                            });
                        }
                        deletes.push((sub.id.clone(), reason));
                        slots.push((None, exts));
                    }
                }
            }
            None => {
                // Ours was there and vanished: uncovered since it stopped delivering.
                let exts = h.last.as_ref().map(extensions_of).unwrap_or_default();
                if let Some(prev) = &h.last {
                    let since = last_event.unwrap_or(now).min(prev.expires_at).min(now);
                    uncovered.push(UncoveredPart {
                        uncovered: Uncovered {
                            since,
                            cause: GapCause::Expired,
                        },
                        extensions: scope(&exts),
                    });
                }
                slots.push((None, exts));
            }
        }
    }
    if slots.is_empty() {
        slots.push((None, Vec::new()));
    }
    for sub in &ours {
        if !held.iter().any(|h| h.id == sub.id) {
            deletes.push((sub.id.clone(), DeleteReason::Duplicate));
        }
    }
    // Keep what each slot carries, minus removed extensions and repeats.
    let want: BTreeSet<&String> = desired.extensions.iter().collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    for (i, (_, exts)) in slots.iter_mut().enumerate() {
        exts.retain(|e| want.contains(e) && placed.insert(e.clone()));
        let cap = desired.capacity(i);
        while exts.len() > cap {
            if let Some(e) = exts.pop() {
                pending.push(e);
            }
        }
    }
    pending.extend(
        desired
            .extensions
            .iter()
            .filter(|e| !placed.contains(*e))
            .cloned(),
    );
    pending.sort_by(ext_order);
    pending.dedup();
    let mut left_out = Vec::new();
    for e in pending {
        match (0..slots.len()).find(|&i| slots[i].1.len() < desired.capacity(i)) {
            Some(i) => insert_sorted(&mut slots[i].1, e),
            None if desired.capacity(slots.len()) > 0 => slots.push((None, vec![e])),
            None => left_out.push(e),
        }
    }
    // Subscriptions left without extensions go (never the first).
    let mut i = 1;
    while i < slots.len() {
        if slots[i].1.is_empty() {
            let (existing, _) = slots.remove(i);
            if let Some(s) = existing {
                deletes.push((s.id, DeleteReason::Emptied));
            }
        } else {
            i += 1;
        }
    }
    compact(desired, &mut slots, &mut deletes);
    let allowed = SUBSCRIPTION_LIMIT.saturating_sub(foreign.len()).max(1);
    let mut over_limit = None;
    if slots.len() > allowed || !left_out.is_empty() {
        let needed = slots.len() + usize::from(!left_out.is_empty());
        let mut extensions = left_out;
        // Only slots still to create can be beyond the limit: listed ones count in it.
        while slots.len() > allowed {
            let Some(i) = slots.iter().rposition(|s| s.0.is_none()).filter(|&i| i > 0) else {
                break;
            };
            extensions.extend(slots.remove(i).1);
        }
        extensions.sort_by(ext_order);
        over_limit = Some(OverLimit {
            needed,
            allowed,
            extensions,
        });
    }
    let slots = slots
        .into_iter()
        .enumerate()
        .map(|(i, (existing, extensions))| {
            let filters = desired.filters_for(i, &extensions);
            let action = match &existing {
                None => SlotAction::Create,
                Some(s) if !set_filters_match(s, &filters) => SlotAction::Update,
                Some(s) if renew_at(s, desired.renew_before) <= now => SlotAction::Renew,
                Some(_) => SlotAction::Keep,
            };
            SlotPlan {
                existing,
                extensions,
                filters,
                action,
            }
        })
        .collect();
    SetPlan {
        slots,
        deletes,
        uncovered,
        foreign: foreign.len(),
        limit_blocked: None,
        over_limit,
    }
}

fn insert_sorted(v: &mut Vec<String>, e: String) {
    let at = v.partition_point(|x| ext_order(x, &e).is_lt());
    v.insert(at, e);
}

/// How many subscriptions `n` extensions need at least.
fn minimum(desired: &DesiredSet, n: usize) -> usize {
    let first = desired.capacity(0).min(n);
    let rest = n - first;
    let per = desired.capacity(1).max(1);
    1 + rest.div_ceil(per)
}

/// Moves the last subscription's extensions into earlier ones while more than one
/// subscription's worth of room is free.
fn compact(
    desired: &DesiredSet,
    slots: &mut Vec<(Option<Subscription>, Vec<String>)>,
    deletes: &mut Vec<(String, DeleteReason)>,
) {
    loop {
        let n: usize = slots.iter().map(|s| s.1.len()).sum();
        if slots.len() <= minimum(desired, n) + 1 {
            return;
        }
        let Some((existing, exts)) = slots.pop() else {
            return;
        };
        let mut unplaced = Vec::new();
        for e in exts {
            match (0..slots.len()).find(|&i| slots[i].1.len() < desired.capacity(i)) {
                Some(i) => insert_sorted(&mut slots[i].1, e),
                None => unplaced.push(e),
            }
        }
        if !unplaced.is_empty() {
            slots.push((existing, unplaced));
            return;
        }
        if let Some(s) = existing {
            deletes.push((s.id, DeleteReason::Emptied));
        }
    }
}

/// Single-subscription mode: [`plan`] for the first held subscription.
fn single(
    desired: &DesiredSet,
    listed: &[Subscription],
    held: &[Held],
    now: DateTime<Utc>,
    last_event: Option<DateTime<Utc>>,
) -> SetPlan {
    let d = desired.single();
    let first = held.first();
    let mut p = plan(&d, listed, first.map(|h| h.id.as_str()), now, last_event);
    // Ours was there and vanished: uncovered since it stopped delivering.
    if p.keep.is_none()
        && let (Some(prev), Some(u)) = (first.and_then(|h| h.last.as_ref()), p.uncovered.as_mut())
        && !listed.iter().any(|s| s.id == prev.id)
        && u.cause == GapCause::CreatedLate
    {
        let since = last_event.unwrap_or(now).min(prev.expires_at).min(now);
        *u = Uncovered {
            since,
            cause: GapCause::Expired,
        };
    }
    let mut deletes = Vec::new();
    let mut action = SlotAction::Keep;
    for a in p.actions {
        match a {
            Action::Delete { id, reason } => deletes.push((id, reason)),
            Action::Renew { .. } => action = SlotAction::Renew,
            Action::Create => action = SlotAction::Create,
        }
    }
    SetPlan {
        slots: vec![SlotPlan {
            existing: p.keep,
            extensions: Vec::new(),
            filters: d.event_filters,
            action,
        }],
        deletes,
        uncovered: p
            .uncovered
            .map(|u| UncoveredPart {
                uncovered: u,
                extensions: None,
            })
            .into_iter()
            .collect(),
        foreign: p.foreign,
        limit_blocked: p.limit_blocked,
        over_limit: None,
    }
}

#[cfg(test)]
mod tests {
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

    fn sub(id: &str, address: &str, expires_in_h: i64, now: DateTime<Utc>) -> Subscription {
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

    const SESSIONS: &str = "/restapi/v1.0/account/~/telephony/sessions";
    const CALL_LOG: &str = "/restapi/v1.0/account/~/extension/~/call-log";
    const REMINDER: &str = "/restapi/v1.0/subscription/~?threshold=172800&interval=43200";

    fn exts(range: std::ops::Range<u32>) -> Vec<String> {
        range
            .map(|i| format!("{}", 62_295_327_000u64 + u64::from(i)))
            .collect()
    }

    fn set(extensions: Vec<String>, max: usize) -> DesiredSet {
        DesiredSet {
            address: "https://r/webhooks/ringcentral/a".into(),
            account_filters: vec![SESSIONS.into(), CALL_LOG.into(), REMINDER.into()],
            reminder: Some(REMINDER.into()),
            extensions,
            max_filters: max,
            expires_in: Duration::from_secs(7 * 86_400),
            renew_before: Duration::from_secs(56 * 3600),
        }
    }

    /// What RingCentral would list after carrying out `p` (ids `s0`, `s1`, …, account
    /// ids expanded), and the held list.
    fn carry_out(
        d: &DesiredSet,
        p: &SetPlan,
        now: DateTime<Utc>,
    ) -> (Vec<Subscription>, Vec<Held>) {
        let mut listed = Vec::new();
        for (i, slot) in p.slots.iter().enumerate() {
            let id = slot.existing.as_ref().map_or_else(
                || format!("new{i}-{}", slot.extensions.len()),
                |e| e.id.clone(),
            );
            let mut s = sub(&id, &d.address, 150, now);
            s.event_filters = slot
                .filters
                .iter()
                .map(|f| f.replace("account/~", "account/37439510"))
                .collect();
            listed.push(s);
        }
        let held = listed
            .iter()
            .map(|s| Held {
                id: s.id.clone(),
                last: Some(s.clone()),
            })
            .collect();
        (listed, held)
    }

    fn changed(p: &SetPlan) -> usize {
        p.slots
            .iter()
            .filter(|s| s.action != SlotAction::Keep)
            .count()
            + p.deletes.len()
    }

    #[test]
    fn voicemail_filters_name_their_extension() {
        assert_eq!(
            voicemail_extension("/restapi/v1.0/account/~/extension/62295327001/voicemail"),
            Some("62295327001")
        );
        assert_eq!(
            voicemail_extension("/restapi/v1.0/account/37439510/extension/7/voicemail"),
            Some("7")
        );
        assert_eq!(
            voicemail_extension("/restapi/v1.0/account/~/extension/~/voicemail"),
            None
        );
        assert_eq!(
            voicemail_extension("/restapi/v1.0/account/~/extension/7/call-log"),
            None
        );
        assert_eq!(voicemail_extension(SESSIONS), None);
        assert_eq!(
            voicemail_extension(&extension_voicemail_filter("42")),
            Some("42")
        );
    }

    #[test]
    fn packed_subscriptions_do_not_overlap_but_duplicates_do() {
        let now = Utc::now();
        let d = set(exts(0..100), 50);
        let (listed, _) = carry_out(&d, &plan_set(&d, &[], &[], now, None), now);
        let refs: Vec<&Subscription> = listed.iter().collect();
        assert_eq!(refs.len(), 3);
        assert_eq!(overlap(&refs), 1, "only the reminder is shared");
        let twice = [&listed[0], &listed[1], &listed[0]];
        assert_eq!(overlap(&twice), 2);
        assert_eq!(overlap(&[]), 0);
    }

    #[test]
    fn two_hundred_extensions_are_packed_into_the_fewest_subscriptions() {
        let now = Utc::now();
        let d = set(exts(0..200), 50);
        let p = plan_set(&d, &[], &[], now, None);
        // 47 in the first (3 account-level filters), 49 in each further one.
        assert_eq!(p.slots.len(), 5, "47 + 49 + 49 + 49 + 6");
        assert!(p.over_limit.is_none() && p.deletes.is_empty());
        let mut seen = Vec::new();
        for (i, slot) in p.slots.iter().enumerate() {
            assert_eq!(slot.action, SlotAction::Create);
            assert!(slot.filters.len() <= 50, "slot {i}: {}", slot.filters.len());
            assert!(slot.filters.iter().any(|f| f == REMINDER), "slot {i}");
            assert_eq!(slot.filters.iter().any(|f| f == SESSIONS), i == 0);
            seen.extend(slot.extensions.iter().cloned());
        }
        assert_eq!(p.slots[0].extensions.len(), 47);
        assert_eq!(seen, exts(0..200), "each exactly once, in order");
    }

    #[test]
    fn adding_or_removing_one_extension_changes_one_subscription() {
        let now = Utc::now();
        let d = set(exts(0..200), 50);
        let p = plan_set(&d, &[], &[], now, None);
        let (listed, held) = carry_out(&d, &p, now);
        let steady = plan_set(&d, &listed, &held, now, None);
        assert_eq!(changed(&steady), 0, "{steady:?}");

        // Remove one from the third subscription: one PUT there.
        let mut fewer = exts(0..200);
        let gone = fewer.remove(120);
        let p = plan_set(&set(fewer.clone(), 50), &listed, &held, now, None);
        assert_eq!(changed(&p), 1);
        let updated: Vec<usize> = (0..p.slots.len())
            .filter(|&i| p.slots[i].action == SlotAction::Update)
            .collect();
        assert_eq!(updated, vec![2]);
        assert!(!p.slots[2].extensions.contains(&gone));
        assert!(
            !p.slots[2]
                .filters
                .contains(&extension_voicemail_filter(&gone))
        );

        // Then add a new one: it fills that hole (one PUT), nothing else moves.
        let d2 = set(fewer.clone(), 50);
        let (listed2, held2) = carry_out(&d2, &p, now);
        let mut more = fewer;
        more.push("62295328999".into());
        let p = plan_set(&set(more, 50), &listed2, &held2, now, None);
        assert_eq!(changed(&p), 1, "{p:?}");
        assert_eq!(p.slots[2].action, SlotAction::Update);
        assert!(p.slots[2].extensions.contains(&"62295328999".to_owned()));
    }

    #[test]
    fn a_new_extension_with_every_subscription_full_gets_a_new_one() {
        let now = Utc::now();
        let d = set(exts(0..96), 50); // 47 + 49: both full
        let p = plan_set(&d, &[], &[], now, None);
        assert_eq!(p.slots.len(), 2);
        let (listed, held) = carry_out(&d, &p, now);
        let p = plan_set(&set(exts(0..97), 50), &listed, &held, now, None);
        assert_eq!(changed(&p), 1);
        assert_eq!(p.slots.len(), 3);
        assert_eq!(p.slots[2].action, SlotAction::Create);
        assert_eq!(p.slots[2].extensions, exts(96..97));
        assert_eq!(p.slots[2].filters.len(), 2, "the filter and the reminder");
    }

    #[test]
    fn an_emptied_subscription_is_deleted_and_many_removals_compact() {
        let now = Utc::now();
        let d = set(exts(0..150), 50); // 47 + 49 + 49 + 5
        let p = plan_set(&d, &[], &[], now, None);
        assert_eq!(p.slots.len(), 4);
        let (listed, held) = carry_out(&d, &p, now);
        let last_id = listed[3].id.clone();
        // The last one's five extensions go: it is deleted, nothing else changes.
        let p = plan_set(&set(exts(0..145), 50), &listed, &held, now, None);
        assert_eq!(p.slots.len(), 3);
        assert_eq!(p.deletes, vec![(last_id, DeleteReason::Emptied)]);
        assert_eq!(changed(&p), 1);
        // Removing most of the first three: their room exceeds a whole subscription, so
        // the last one's extensions move into the first and it is deleted.
        let mut few = exts(0..10);
        few.extend(exts(100..140));
        let p = plan_set(&set(few.clone(), 50), &listed, &held, now, None);
        assert_eq!(p.slots.len(), 2, "{p:?}");
        let mut seen: Vec<String> = p.slots.iter().flat_map(|s| s.extensions.clone()).collect();
        seen.sort_by(ext_order);
        assert_eq!(seen, few);
        assert!(p.slots.iter().all(|s| s.filters.len() <= 50));
    }

    #[test]
    fn the_subscription_limit_leaves_extensions_out_and_says_why() {
        let now = Utc::now();
        let foreign: Vec<Subscription> = (0..27)
            .map(|i| sub(&format!("f{i}"), "https://elsewhere/x", 100, now))
            .collect();
        let d = set(exts(0..200), 50);
        let p = plan_set(&d, &foreign, &[], now, None);
        assert_eq!(p.slots.len(), 3, "30 - 27 foreign");
        let over = p.over_limit.unwrap();
        assert_eq!((over.needed, over.allowed), (5, 3));
        assert_eq!(over.extensions, exts(145..200));
        // A lowered max moves the overflow out of full subscriptions, not everything.
        let p = plan_set(&set(exts(0..10), 50), &[], &[], now, None);
        let (listed, held) = carry_out(&set(exts(0..10), 50), &p, now);
        let p = plan_set(&set(exts(0..10), 8), &listed, &held, now, None);
        assert_eq!(p.slots[0].extensions, exts(0..5));
        assert_eq!(p.slots[1].extensions, exts(5..10));
        assert_eq!(p.slots[1].action, SlotAction::Create);
    }

    #[test]
    fn a_blacklisted_voicemail_subscription_alone_is_recreated_with_its_extensions() {
        let now = Utc::now();
        let d = set(exts(0..200), 50);
        let p = plan_set(&d, &[], &[], now, None);
        let (mut listed, held) = carry_out(&d, &p, now);
        listed[3].status = SubscriptionStatus::Blacklisted;
        let id = listed[3].id.clone();
        let carried = p.slots[3].extensions.clone();
        let last = now - chrono::Duration::minutes(3);
        let p = plan_set(&d, &listed, &held, now, Some(last));
        assert_eq!(
            p.deletes,
            vec![(id, DeleteReason::NotActive("Blacklisted".into()))]
        );
        assert_eq!(changed(&p), 2, "delete + create");
        assert_eq!(p.slots[3].action, SlotAction::Create);
        assert_eq!(p.slots[3].extensions, carried);
        assert_eq!(p.uncovered.len(), 1);
        assert_eq!(p.uncovered[0].extensions.as_ref(), Some(&carried));
        assert_eq!(p.uncovered[0].uncovered.cause, GapCause::Blacklisted);
        assert_eq!(p.uncovered[0].uncovered.since, last);
        // The first one lost: the whole account is concerned.
        let (mut listed, held) = carry_out(&d, &plan_set(&d, &[], &[], now, None), now);
        listed[0].expires_at = now - chrono::Duration::minutes(1);
        let p = plan_set(&d, &listed, &held, now, None);
        assert_eq!(p.slots[0].action, SlotAction::Create);
        assert_eq!(p.uncovered[0].extensions, None);
    }

    #[test]
    fn without_extensions_one_subscription_is_kept_as_before() {
        let now = Utc::now();
        let d = set(Vec::new(), 50);
        let mut kept = sub("k", &d.address, 100, now);
        kept.event_filters = d
            .account_filters
            .iter()
            .map(|f| f.replace("account/~", "account/1"))
            .collect();
        let extra = sub("x", &d.address, 100, now);
        let held = [
            Held {
                id: "k".into(),
                last: None,
            },
            Held {
                id: "x".into(),
                last: None,
            },
        ];
        let p = plan_set(&d, &[kept.clone(), extra], &held, now, None);
        assert_eq!(p.slots.len(), 1);
        assert_eq!(p.slots[0].action, SlotAction::Keep);
        assert_eq!(p.slots[0].existing.as_ref(), Some(&kept));
        // The voicemail-only one from packed times goes (its filters are not wanted).
        assert_eq!(p.deletes, vec![("x".into(), DeleteReason::FiltersChanged)]);
        // The same as `plan`.
        let single = plan(&d.single(), &[kept], Some("k"), now, None);
        assert!(single.actions.is_empty());
    }

    #[test]
    fn turning_on_extensions_updates_the_existing_subscription_in_place() {
        let now = Utc::now();
        let mut legacy = set(Vec::new(), 50);
        legacy
            .account_filters
            .insert(1, "/restapi/v1.0/account/~/extension/~/voicemail".into());
        let mut s = sub("k", &legacy.address, 100, now);
        // RingCentral lists `extension/~` expanded to the JWT user's extension.
        s.event_filters = legacy
            .account_filters
            .iter()
            .map(|f| {
                f.replace("account/~", "account/1")
                    .replace("extension/~", "extension/62295327000")
            })
            .collect();
        let held = [Held {
            id: "k".into(),
            last: None,
        }];
        let d = set(exts(0..10), 50);
        let p = plan_set(&d, std::slice::from_ref(&s), &held, now, None);
        assert_eq!(p.slots.len(), 1);
        assert_eq!(p.slots[0].action, SlotAction::Update);
        assert_eq!(p.slots[0].extensions, exts(0..10));
        assert!(p.deletes.is_empty());
    }
}
