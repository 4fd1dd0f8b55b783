//! Carrying out a slot's plan: renew, update (`PUT`), recreate, create, with SUB-508 and
//! SUB-505 handling.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::super::pack::{self, SetPlan, SlotAction, SlotPlan};
use super::super::plan;
use super::{HeldSub, Keeper, KeeperError, mentions, new_token};
use crate::config::Secret;
use crate::ringcentral::{ApiError, CreateSubscription, Subscription, SubscriptionStatus};
use crate::store::GapCause;

impl Keeper {
    /// Carries out a plan: deletes first, then each slot in order. On a failure, what is
    /// held so far stays held (and stored, when the first subscription is there).
    pub(super) async fn execute(
        &mut self,
        p: SetPlan,
        now: DateTime<Utc>,
        packed: bool,
    ) -> Result<(), KeeperError> {
        let tokens: HashMap<String, Secret> = self
            .held
            .iter()
            .map(|h| (h.id.clone(), h.token.clone()))
            .collect();
        // Until the actions are done, only the valid subscriptions count as held.
        self.held = p
            .slots
            .iter()
            .filter_map(|slot| {
                let s = slot.existing.as_ref()?;
                tokens.get(&s.id).map(|t| HeldSub {
                    id: s.id.clone(),
                    token: t.clone(),
                    sub: Some(s.clone()),
                })
            })
            .collect();
        for (id, reason) in &p.deletes {
            self.fence().await?;
            tracing::info!(account = %self.ctx.account, %id, ?reason, "deleting subscription");
            match self.ctx.api.delete(id).await {
                Ok(()) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            self.ctx
                .tokens
                .retire(&self.ctx.account, id, self.ctx.clock.now());
        }
        // Our subscriptions in use: never deleted to make room for a create.
        let mut in_use: BTreeSet<String> = p
            .slots
            .iter()
            .filter_map(|s| s.existing.as_ref().map(|e| e.id.clone()))
            .collect();
        let mut next: Vec<HeldSub> = Vec::new();
        let mut failure = None;
        for slot in p.slots {
            if failure.is_some() {
                // Keep holding what was not touched.
                if let Some(s) = slot.existing
                    && let Some(token) = tokens.get(&s.id)
                {
                    next.push(HeldSub {
                        id: s.id.clone(),
                        token: token.clone(),
                        sub: Some(s),
                    });
                }
                continue;
            }
            match self.apply(slot, &tokens, &in_use, now, packed).await {
                Ok(h) => {
                    in_use.insert(h.id.clone());
                    next.push(h);
                }
                Err((e, kept)) => {
                    next.extend(kept);
                    failure = Some(e);
                }
            }
        }
        // Tokens of subscriptions no longer held (gone without a delete of ours) stop
        // being current.
        for id in tokens.keys() {
            if !next.iter().any(|h| &h.id == id) {
                self.ctx
                    .tokens
                    .retire(&self.ctx.account, id, self.ctx.clock.now());
            }
        }
        self.held = next;
        if let Some(e) = failure {
            // Keep what was created (its token) across a restart, if the lease is ours.
            if self.primary().is_some()
                && self.fence().await.is_ok()
                && let Err(save) = self.save(now).await
            {
                tracing::warn!(account = %self.ctx.account, error = %save, "could not store the subscriptions after a failed step");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Carries out one slot's action. On failure, the subscription still held (if any)
    /// comes back with the error.
    pub(super) async fn apply(
        &mut self,
        slot: SlotPlan,
        tokens: &HashMap<String, Secret>,
        in_use: &BTreeSet<String>,
        now: DateTime<Utc>,
        packed: bool,
    ) -> Result<HeldSub, (KeeperError, Option<HeldSub>)> {
        let held = slot.existing.as_ref().and_then(|s| {
            tokens.get(&s.id).map(|t| HeldSub {
                id: s.id.clone(),
                token: t.clone(),
                sub: Some(s.clone()),
            })
        });
        if let Err(e) = self.fence().await {
            return Err((e, held));
        }
        let Some(held) = held else {
            return self
                .create(&slot.filters, in_use)
                .await
                .map_err(|e| (e, None));
        };
        let result = match slot.action {
            SlotAction::Keep => return Ok(held),
            SlotAction::Renew => self.ctx.api.renew(&held.id).await,
            SlotAction::Update | SlotAction::Create => {
                self.update(&held.id, &slot.filters, packed).await
            }
        };
        match result {
            Ok(s) if s.status == SubscriptionStatus::Active => {
                self.remember_refusals(&s, packed);
                Ok(HeldSub {
                    sub: Some(s),
                    ..held
                })
            }
            Ok(s) => {
                tracing::warn!(account = %self.ctx.account, id = %held.id, status = %s.status, "renewal returned a non-Active subscription: recreating");
                self.replace(&held, now, &slot, in_use).await
            }
            Err(ApiError::NotFound { .. }) => {
                tracing::warn!(account = %self.ctx.account, id = %held.id, "renewal found no subscription: recreating");
                self.replace(&held, now, &slot, in_use).await
            }
            Err(e) => Err((e.into(), Some(held))),
        }
    }

    /// A renewal or update failed for good: gap, delete, new subscription.
    async fn replace(
        &mut self,
        held: &HeldSub,
        now: DateTime<Utc>,
        slot: &SlotPlan,
        in_use: &BTreeSet<String>,
    ) -> Result<HeldSub, (KeeperError, Option<HeldSub>)> {
        let since = held.sub.as_ref().map_or(now, |c| c.expires_at.min(now));
        if !slot.extensions.is_empty() && slot.existing.is_some() {
            tracing::warn!(account = %self.ctx.account, extensions = slot.extensions.len(), "recording an account-wide gap for a voicemail subscription");
        }
        let fail = |e: KeeperError| (e, None);
        self.ledger
            .uncovered(since, GapCause::RenewalFailed)
            .await
            .map_err(|e| fail(e.into()))?;
        match self.ctx.api.delete(&held.id).await {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(fail(e.into())),
        }
        self.ctx
            .tokens
            .retire(&self.ctx.account, &held.id, self.ctx.clock.now());
        self.create(&slot.filters, in_use).await.map_err(fail)
    }

    /// Replaces a subscription's filters (`PUT`, which also renews), dropping refused
    /// filters (SUB-508).
    async fn update(
        &mut self,
        id: &str,
        filters: &[String],
        packed: bool,
    ) -> Result<Subscription, ApiError> {
        let mut filters = filters.to_vec();
        loop {
            match self.ctx.api.update(id, &filters, self.ctx.expires_in).await {
                Ok(s) => {
                    tracing::info!(account = %self.ctx.account, %id, filters = filters.len(), "subscription filters updated");
                    self.remember_refusals(&s, packed);
                    return Ok(s);
                }
                Err(ApiError::InvalidFilters { message }) => {
                    if !self.drop_refused(&mut filters, &message) {
                        return Err(ApiError::InvalidFilters { message });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After a SUB-508: removes from `filters` the one the message names and records the
    /// refusal; `false` when none is named (or it is the last one), so the error stands.
    fn drop_refused(&mut self, filters: &mut Vec<String>, message: &str) -> bool {
        let Some(i) = filters
            .iter()
            .position(|f| mentions(message, f))
            .filter(|_| filters.len() > 1)
        else {
            return false;
        };
        let filter = filters.remove(i);
        self.refuse(filter, message);
        true
    }

    /// Creates a subscription with `filters`, dropping refused filters (SUB-508) and
    /// deleting our strays (not `in_use`) on SUB-505.
    async fn create(
        &mut self,
        filters: &[String],
        in_use: &BTreeSet<String>,
    ) -> Result<HeldSub, KeeperError> {
        let mut filters = filters.to_vec();
        let mut limit_retried = false;
        loop {
            let token = new_token();
            let request = CreateSubscription {
                event_filters: filters.clone(),
                address: self.ctx.address.clone(),
                expires_in: self.ctx.expires_in,
                verification_token: Some(token.clone()),
            };
            match self.ctx.api.create(&request).await {
                Ok(sub) => {
                    tracing::info!(account = %self.ctx.account, id = %sub.id, filters = filters.len(), "subscription created");
                    let packed = filters
                        .iter()
                        .any(|f| pack::voicemail_extension(f).is_some());
                    self.remember_refusals(&sub, packed);
                    let now = self.ctx.clock.now();
                    self.ctx
                        .tokens
                        .set(&self.ctx.account, &sub.id, token.clone(), now);
                    return Ok(HeldSub {
                        id: sub.id.clone(),
                        token,
                        sub: Some(sub),
                    });
                }
                Err(ApiError::InvalidFilters { message }) => {
                    if !self.drop_refused(&mut filters, &message) {
                        return Err(ApiError::InvalidFilters { message }.into());
                    }
                }
                Err(ApiError::SubscriptionLimit { message }) => {
                    if limit_retried {
                        return Err(ApiError::SubscriptionLimit { message }.into());
                    }
                    limit_retried = true;
                    let listed = self.ctx.api.list().await?;
                    let mut ours: Vec<&Subscription> = listed
                        .iter()
                        .filter(|s| plan::is_ours(s, &self.ctx.address))
                        .collect();
                    if ours.is_empty() {
                        return Err(KeeperError::LimitByOthers {
                            count: listed.len(),
                        });
                    }
                    ours.retain(|s| !in_use.contains(&s.id));
                    if ours.is_empty() {
                        return Err(ApiError::SubscriptionLimit { message }.into());
                    }
                    ours.sort_by_key(|s| s.created_at);
                    for s in ours {
                        self.fence().await?;
                        tracing::info!(account = %self.ctx.account, id = %s.id, "SUB-505: deleting our stray");
                        match self.ctx.api.delete(&s.id).await {
                            Ok(()) | Err(ApiError::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                        self.ctx
                            .tokens
                            .retire(&self.ctx.account, &s.id, self.ctx.clock.now());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
