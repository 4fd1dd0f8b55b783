//! Tokens shared between replicas (issue "Scale-out"): RingCentral's refresh tokens are
//! single-use and a refresh ends the previous access token's life early, so replicas that
//! each refreshed on their own would knock each other's tokens out and spend the Auth
//! group's 5 requests a minute. With a [`SharedTokens`] the token holder reads the token
//! the others stored and only calls the token endpoint while it holds the refresh lock.
//!
//! The client knows nothing of the store: `crate::cluster::tokens` implements this trait
//! on it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::Secret;

/// An access token and its refresh token, as stored for every replica.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token.
    pub access: Secret,
    /// When it expires.
    pub access_expires_at: DateTime<Utc>,
    /// The single-use refresh token.
    pub refresh: Option<Secret>,
    /// When the refresh token expires.
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// Why the shared token place failed (the holder then works on its own, and says so).
#[derive(Debug, thiserror::Error)]
#[error("shared tokens: {0}")]
pub struct SharedTokenError(pub String);

/// Where one account's tokens are shared, and the lock that makes refreshing
/// single-flight across replicas.
#[async_trait]
pub trait SharedTokens: Send + Sync + 'static {
    /// The stored pair, if any (only one obtained with the same credential).
    ///
    /// # Errors
    /// When the shared place cannot be read.
    async fn load(&self) -> Result<Option<TokenPair>, SharedTokenError>;

    /// Tries to become the one replica that refreshes now; `false` when another replica
    /// is refreshing (wait for its result with [`SharedTokens::load`]).
    ///
    /// # Errors
    /// When the lock cannot be taken for a reason other than another holder.
    async fn lock_refresh(&self) -> Result<bool, SharedTokenError>;

    /// Stores a new pair, only while the refresh lock is still held.
    ///
    /// # Errors
    /// When the lock was lost meanwhile (nothing is stored), or on a write failure.
    async fn save(&self, pair: &TokenPair) -> Result<(), SharedTokenError>;

    /// Gives the refresh lock up.
    async fn unlock_refresh(&self);

    /// How long to wait for another replica's refresh before giving up.
    fn refresh_wait(&self) -> std::time::Duration;
}
