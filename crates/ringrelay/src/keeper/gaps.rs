//! The coverage ledger: an account is covered while ringrelay runs and the account has an
//! Active subscription. Every other interval is a gap in the store, which the sync
//! backfills from the call log and message store.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::account::AccountId;
use crate::store::{Gap, GapCause, Store, StoreError};

/// One account's view of the ledger.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn Store>,
    account: AccountId,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger of `account` in `store`.
    pub fn new(store: Arc<dyn Store>, account: AccountId) -> Self {
        Self { store, account }
    }

    /// At start: if ringrelay was alive before (a liveness heartbeat exists), the time
    /// since that heartbeat was not covered; opens a `Downtime` gap from it. The gap closes
    /// when an Active subscription is confirmed.
    ///
    /// # Errors
    /// On a store failure.
    pub async fn on_start(&self) -> Result<Option<Gap>, StoreError> {
        match self.store.last_liveness(&self.account).await? {
            Some(last) => Ok(Some(
                self.store
                    .open_gap(&self.account, last, GapCause::Downtime)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// The account is not covered since `since` (idempotent while a gap is open).
    ///
    /// # Errors
    /// On a store failure.
    pub async fn uncovered(
        &self,
        since: DateTime<Utc>,
        cause: GapCause,
    ) -> Result<Gap, StoreError> {
        self.store.open_gap(&self.account, since, cause).await
    }

    /// An Active subscription was confirmed at `now`: closes the open gap, if any, and
    /// records a heartbeat.
    ///
    /// # Errors
    /// On a store failure.
    pub async fn covered(&self, now: DateTime<Utc>) -> Result<Option<Gap>, StoreError> {
        let closed = self.store.close_gap(&self.account, now).await?;
        self.store.record_liveness(&self.account, now).await?;
        Ok(closed)
    }

    /// Records that ringrelay is alive and covering at `now` (also at graceful shutdown,
    /// so the next start knows where the downtime began).
    ///
    /// # Errors
    /// On a store failure.
    pub async fn heartbeat(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.store.record_liveness(&self.account, now).await
    }

    /// The open gap, if any.
    ///
    /// # Errors
    /// On a store failure.
    pub async fn open_gap(&self) -> Result<Option<Gap>, StoreError> {
        Ok(self
            .store
            .gaps(Some(&self.account), None)
            .await?
            .into_iter()
            .find(|g| g.until.is_none()))
    }

    /// Every gap of the account ending at or after `since` (all when `None`), oldest first:
    /// what the sync backfills.
    ///
    /// # Errors
    /// On a store failure.
    pub async fn gaps(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Gap>, StoreError> {
        self.store.gaps(Some(&self.account), since).await
    }
}
