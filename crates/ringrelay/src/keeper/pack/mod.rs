//! Several subscriptions per account: the covered extensions' voicemail filters packed
//! into as few subscriptions as `keeper.max_filters_per_subscription` allows, stably (one
//! extension more or less changes one subscription), within RingCentral's subscription
//! limit. Pure, like [`super::plan`], which keeps the single-subscription case.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plan::{
    Action, DeleteReason, Desired, SUBSCRIPTION_LIMIT, Uncovered, is_ours, lost, normalize_filter,
    plan, renew_at,
};
use crate::ringcentral::{Subscription, SubscriptionStatus};
use crate::store::GapCause;

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
    let mut start = from_held(&ours, held, now, last_event);
    let left_out = assign(desired, &mut start.slots);
    drop_empty(&mut start.slots, &mut start.deletes);
    compact(desired, &mut start.slots, &mut start.deletes);
    let allowed = SUBSCRIPTION_LIMIT.saturating_sub(foreign.len()).max(1);
    let over_limit = limit(&mut start.slots, allowed, left_out);
    let slots = start
        .slots
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
        deletes: start.deletes,
        uncovered: start.uncovered,
        foreign: foreign.len(),
        limit_blocked: None,
        over_limit,
    }
}

/// A slot being planned: the valid subscription kept for it (none: one is created) and
/// the extensions it carries.
type Slot = (Option<Subscription>, Vec<String>);

/// The slots as held, with what must go and what is not covered.
struct Start {
    slots: Vec<Slot>,
    deletes: Vec<(String, DeleteReason)>,
    uncovered: Vec<UncoveredPart>,
}

/// One slot per held subscription, in order: kept when valid, else deleted (when listed)
/// and recreated with the same extensions, its loss reported. Ours not held are deleted.
fn from_held(
    ours: &[&Subscription],
    held: &[Held],
    now: DateTime<Utc>,
    last_event: Option<DateTime<Utc>>,
) -> Start {
    let mut start = Start {
        slots: Vec::new(),
        deletes: Vec::new(),
        uncovered: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let held: Vec<&Held> = held.iter().filter(|h| seen.insert(&h.id)).collect();
    for (i, h) in held.iter().enumerate() {
        // Losing the first subscription concerns the whole account.
        let scope = |exts: &[String]| (i > 0).then(|| exts.to_vec());
        let Some(sub) = ours.iter().find(|s| s.id == h.id) else {
            // Ours was there and vanished: uncovered since it stopped delivering.
            let exts = h.last.as_ref().map(extensions_of).unwrap_or_default();
            if let Some(prev) = &h.last {
                let since = last_event.unwrap_or(now).min(prev.expires_at).min(now);
                start.uncovered.push(UncoveredPart {
                    uncovered: Uncovered {
                        since,
                        cause: GapCause::Expired,
                    },
                    extensions: scope(&exts),
                });
            }
            start.slots.push((None, exts));
            continue;
        };
        let exts = extensions_of(sub);
        let reason = if sub.status != SubscriptionStatus::Active {
            DeleteReason::NotActive(sub.status.to_string())
        } else if sub.expires_at <= now {
            DeleteReason::Expired
        } else {
            start.slots.push((Some((*sub).clone()), exts));
            continue;
        };
        if let Some(u) = lost(sub, &reason, now, last_event) {
            start.uncovered.push(UncoveredPart {
                uncovered: u,
                extensions: scope(&exts),
            });
        }
        start.deletes.push((sub.id.clone(), reason));
        start.slots.push((None, exts));
    }
    if start.slots.is_empty() {
        start.slots.push((None, Vec::new()));
    }
    for sub in ours {
        if !held.iter().any(|h| h.id == sub.id) {
            start
                .deletes
                .push((sub.id.clone(), DeleteReason::Duplicate));
        }
    }
    start
}

/// Each slot keeps what it carries, minus removed extensions, repeats and what exceeds its
/// capacity; the rest go to the first slot with room, or to new slots. Returns the
/// extensions no slot can take (only when a new slot would have no room at all).
fn assign(desired: &DesiredSet, slots: &mut Vec<Slot>) -> Vec<String> {
    let want: BTreeSet<&String> = desired.extensions.iter().collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    for (i, (_, exts)) in slots.iter_mut().enumerate() {
        exts.retain(|e| want.contains(e) && placed.insert(e.clone()));
        let cap = desired.capacity(i);
        if exts.len() > cap {
            pending.extend(exts.drain(cap..));
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
    left_out
}

/// Slots left without extensions go (never the first).
fn drop_empty(slots: &mut Vec<Slot>, deletes: &mut Vec<(String, DeleteReason)>) {
    let mut i = 1;
    while i < slots.len() {
        if slots[i].1.is_empty() {
            if let (Some(s), _) = slots.remove(i) {
                deletes.push((s.id, DeleteReason::Emptied));
            }
        } else {
            i += 1;
        }
    }
}

/// Keeps at most `allowed` slots (only slots still to create are dropped: listed ones
/// already count in RingCentral's limit) and reports the extensions left out.
fn limit(slots: &mut Vec<Slot>, allowed: usize, left_out: Vec<String>) -> Option<OverLimit> {
    if slots.len() <= allowed && left_out.is_empty() {
        return None;
    }
    let needed = slots.len() + usize::from(!left_out.is_empty());
    let mut extensions = left_out;
    while slots.len() > allowed {
        let Some(i) = slots.iter().rposition(|s| s.0.is_none()).filter(|&i| i > 0) else {
            break;
        };
        extensions.extend(slots.remove(i).1);
    }
    extensions.sort_by(ext_order);
    Some(OverLimit {
        needed,
        allowed,
        extensions,
    })
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
fn compact(desired: &DesiredSet, slots: &mut Vec<Slot>, deletes: &mut Vec<(String, DeleteReason)>) {
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
mod tests;
