//! The keeper: for each account, the Active webhook subscriptions whose address is ours
//! (one, or several when many extensions' voicemail filters are packed into them), each
//! renewed well before it expires, recreated when it is Blacklisted, missing or not
//! Active, updated (`PUT`) when the covered extensions change, and a coverage ledger of
//! every interval in which the account was not covered.
//!
//! - [`plan`]: pure decisions (create, renew, delete, keep) from what RingCentral lists.
//! - [`pack`]: the same for several subscriptions, packing extensions' voicemail filters.
//! - [`backoff`]: retry delays with jitter after failures.
//! - [`explain`]: plain-words explanations for `status` and `check`.
//! - [`gaps`]: the coverage ledger on top of the store.
//! - [`extensions`]: extension discovery: which extensions are covered (company scope),
//!   published on a watch channel.
//! - [`task`]: the per-account [`Keeper`] and its background task.
//!
//! The keeper talks to RingCentral through the [`SubscriptionApi`] trait (implemented for
//! [`RingCentral`]) and hands verification tokens to the receiver through [`TokenSink`].

pub mod backoff;
pub mod explain;
pub mod extensions;
pub mod gaps;
pub mod pack;
pub mod plan;
pub mod task;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::AccountId;
use crate::config::Secret;
use crate::receiver::TokenRegistry;
use crate::ringcentral::{ApiError, CreateSubscription, RingCentral, Subscription};

pub use task::{
    Command, CoverageState, EXTRA_SUBSCRIPTIONS_CURSOR, ExtensionCoverage, Keeper, KeeperContext,
    KeeperError, KeeperHandle, KeeperStatus, StepOutcome, follow_coverage, map_extensions, spawn,
    stored_tokens, voicemail_extensions,
};

/// The subscription calls the keeper makes (create, list, get, renew, delete).
#[async_trait]
pub trait SubscriptionApi: Send + Sync + 'static {
    /// Creates a webhook subscription.
    ///
    /// # Errors
    /// Any [`ApiError`] (SUB-505, SUB-508, handshake failure, …).
    async fn create(&self, request: &CreateSubscription) -> Result<Subscription, ApiError>;
    /// Lists this app's subscriptions for the account's user.
    ///
    /// # Errors
    /// Any [`ApiError`].
    async fn list(&self) -> Result<Vec<Subscription>, ApiError>;
    /// Reads one subscription.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it is gone; any other [`ApiError`].
    async fn get(&self, id: &str) -> Result<Subscription, ApiError>;
    /// Renews one subscription.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it already expired; any other [`ApiError`].
    async fn renew(&self, id: &str) -> Result<Subscription, ApiError>;
    /// Replaces one subscription's filters with `PUT` (the full list; this also renews
    /// it, for `expires_in`).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it is gone, [`ApiError::InvalidFilters`] (SUB-508); any
    /// other [`ApiError`].
    async fn update(
        &self,
        id: &str,
        event_filters: &[String],
        expires_in: Duration,
    ) -> Result<Subscription, ApiError>;
    /// Deletes one subscription.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it is already gone; any other [`ApiError`].
    async fn delete(&self, id: &str) -> Result<(), ApiError>;
}

#[async_trait]
impl SubscriptionApi for RingCentral {
    async fn create(&self, request: &CreateSubscription) -> Result<Subscription, ApiError> {
        self.create_subscription(request).await
    }

    async fn list(&self) -> Result<Vec<Subscription>, ApiError> {
        self.list_subscriptions().await
    }

    async fn get(&self, id: &str) -> Result<Subscription, ApiError> {
        self.get_subscription(id).await
    }

    async fn renew(&self, id: &str) -> Result<Subscription, ApiError> {
        self.renew_subscription(id).await
    }

    async fn update(
        &self,
        id: &str,
        event_filters: &[String],
        expires_in: Duration,
    ) -> Result<Subscription, ApiError> {
        self.update_subscription(id, event_filters, Some(expires_in))
            .await
    }

    async fn delete(&self, id: &str) -> Result<(), ApiError> {
        self.delete_subscription(id).await
    }
}

/// Where the keeper puts each subscription's verification token so the receiver accepts
/// it (implemented by the receiver's [`TokenRegistry`]).
pub trait TokenSink: Send + Sync + 'static {
    /// `token` is now the token of the account's subscription `subscription_id` (other
    /// subscriptions' tokens stay current); the one it replaces for that subscription
    /// stays valid for the sink's grace period.
    fn set(&self, account: &AccountId, subscription_id: &str, token: Secret, now: DateTime<Utc>);
    /// Subscription `subscription_id` of the account was deleted or replaced: its token
    /// stops being current (it stays valid for the sink's grace period).
    fn retire(&self, account: &AccountId, subscription_id: &str, now: DateTime<Utc>);
}

impl TokenSink for TokenRegistry {
    fn set(&self, account: &AccountId, subscription_id: &str, token: Secret, now: DateTime<Utc>) {
        TokenRegistry::set(self, account, subscription_id, token, now);
    }

    fn retire(&self, account: &AccountId, subscription_id: &str, now: DateTime<Utc>) {
        TokenRegistry::retire(self, account, subscription_id, now);
    }
}
