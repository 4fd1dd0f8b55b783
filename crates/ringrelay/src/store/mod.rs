//! Persistence: one [`Store`] trait (`Arc<dyn Store>`) with domain-typed methods, an SQLite
//! backend (the embedded default) and a PostgreSQL backend (for several replicas).
//!
//! This file holds the contract other modules build on; the store issue extends it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::AccountId;

/// Why a store call failed, in the cases callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A write conflicts with what is stored (e.g. a lost lease or a unique key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store cannot take the call now (connection lost, ingest queue full); retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("store error: {0}")]
    Other(String),
}

/// A notification as received from RingCentral, to be appended to the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The account whose webhook URL received it.
    pub account: AccountId,
    /// The envelope's `subscriptionId`, when present.
    pub subscription_id: Option<String>,
    /// The envelope's `uuid`: the de-duplication key.
    pub uuid: String,
    /// The envelope's `event` path.
    pub event: String,
    /// The envelope's `timestamp`, when present and parseable.
    pub timestamp: Option<DateTime<Utc>>,
    /// When ringrelay received it.
    pub received_at: DateTime<Utc>,
    /// The raw body, exactly as received.
    pub body: String,
    /// Set when the subscription id is not one the account currently owns.
    pub unknown_subscription: bool,
}

/// What an inbox append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The notification was new and is now committed.
    Stored,
    /// A notification with the same `uuid` was already stored; nothing was written.
    Duplicate,
}

/// The one persistence interface. Every method is durable when it returns `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends a notification to the inbox through group commit; returns only after the
    /// batch holding it is committed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store is down or the ingest queue is full.
    async fn append_inbox(
        &self,
        notification: NewNotification,
    ) -> Result<AppendOutcome, StoreError>;
}
