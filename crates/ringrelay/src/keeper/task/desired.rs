//! What the keeper wants its subscriptions to carry: the configured account-level filters
//! (minus refused ones; the user's own voicemail filter gives way to the covered
//! extensions' ones) and the covered extensions, and what RingCentral refused.

use super::super::pack::{self, DesiredSet};
use super::super::plan::normalize_filter;
use super::{Keeper, OWN_VOICEMAIL};
use crate::ringcentral::Subscription;

/// RingCentral's extension-list event filter (extensions added, changed, removed).
pub const EXTENSION_LIST_FILTER: &str = "/restapi/v1.0/account/~/extension";
use crate::store::DisabledFilter;

impl Keeper {
    /// The covered extensions, numeric order, minus those whose filter was refused. While
    /// they are not known yet, the extensions the held subscriptions carry (`listed`),
    /// unless that is only the one voicemail filter of a single subscription (the JWT
    /// user's own, as `extension/~/voicemail` lists).
    pub(super) fn wanted_extensions(&self, listed: &[Subscription]) -> Vec<String> {
        let Some(rx) = &self.ctx.extensions else {
            return Vec::new();
        };
        let known = rx.borrow().clone();
        let ids = known.unwrap_or_else(|| {
            let held: Vec<&Subscription> = listed
                .iter()
                .filter(|s| self.held.iter().any(|h| h.id == s.id))
                .collect();
            let carried: Vec<String> = held.iter().flat_map(|s| pack::extensions_of(s)).collect();
            if held.len() > 1 || carried.len() > 1 {
                carried
            } else {
                Vec::new()
            }
        });
        let mut exts: Vec<String> = ids
            .into_iter()
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
            .filter(|e| {
                !self
                    .refused_extensions
                    .iter()
                    .any(|r| pack::voicemail_extension(&r.filter) == Some(e.as_str()))
            })
            .collect();
        exts.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        exts.dedup();
        exts
    }

    /// What the account's subscriptions should carry (`listed`: what RingCentral lists).
    pub(super) fn desired(&self, listed: &[Subscription]) -> DesiredSet {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|r| normalize_filter(&r.filter))
            .collect();
        let extensions = self.wanted_extensions(listed);
        let own_voicemail = normalize_filter(OWN_VOICEMAIL);
        let mut account_filters: Vec<String> = self
            .ctx
            .event_filters
            .iter()
            .filter(|f| {
                let n = normalize_filter(f);
                !refused.contains(&n) && (extensions.is_empty() || n != own_voicemail)
            })
            .cloned()
            .collect();
        // Covering other extensions means following the extension list: its change event
        // makes discovery refresh at once (an added extension is covered in seconds, not
        // at the next periodic refresh). Discovery only names other extensions after it
        // could list them, so the app has `ReadAccounts`, which the event needs.
        let list_filter = normalize_filter(EXTENSION_LIST_FILTER);
        if !extensions.is_empty()
            && !refused.contains(&list_filter)
            && !account_filters
                .iter()
                .any(|f| normalize_filter(f) == list_filter)
        {
            let at = account_filters
                .iter()
                .position(|f| pack::is_reminder(f))
                .unwrap_or(account_filters.len());
            account_filters.insert(at, EXTENSION_LIST_FILTER.to_owned());
        }
        let reminder = account_filters
            .iter()
            .find(|f| pack::is_reminder(f))
            .cloned();
        DesiredSet {
            address: self.ctx.address.clone(),
            account_filters,
            reminder,
            extensions,
            max_filters: self.ctx.max_filters_per_subscription,
            expires_in: self.ctx.expires_in,
            renew_before: self.ctx.renew_before,
        }
    }

    /// Remembers filters `sub` lists as disabled. With extensions packed, a disabled
    /// per-extension voicemail filter leaves that extension out (and is shown in status).
    pub(super) fn remember_refusals(&mut self, sub: &Subscription, packed: bool) {
        for d in &sub.disabled_filters {
            let list = if packed && pack::voicemail_extension(&d.filter).is_some() {
                &mut self.refused_extensions
            } else {
                &mut self.refused
            };
            if !list.iter().any(|r| r.filter == d.filter) {
                let reason = match &d.message {
                    Some(m) if !m.is_empty() => format!("{}: {m}", d.reason),
                    _ => d.reason.clone(),
                };
                list.push(DisabledFilter {
                    filter: d.filter.clone(),
                    reason,
                });
            }
        }
    }

    /// Records a SUB-508 refusal of `filter`.
    pub(super) fn refuse(&mut self, filter: String, message: &str) {
        tracing::warn!(account = %self.ctx.account, %filter, "filter refused: subscribing without it");
        let refusal = DisabledFilter {
            filter,
            reason: format!("SUB-508: {message}"),
        };
        if pack::voicemail_extension(&refusal.filter).is_some() {
            self.refused_extensions.push(refusal);
        } else {
            self.refused.push(refusal);
        }
    }
}
