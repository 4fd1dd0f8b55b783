//! Where the keeper keeps the subscriptions it holds: the first as the account's
//! subscription record, the others (ids and verification tokens, in order) in a store
//! cursor, so a restart or another replica keeps them instead of recreating them.

use chrono::{DateTime, Utc};

use super::{Keeper, KeeperError};
use crate::config::Secret;
use crate::store::{CursorUpdate, Store, StoreError, SubscriptionRecord};

/// The store cursor holding the account's further subscriptions (ids and tokens, in
/// slot order; the first one is the store's subscription record).
pub const EXTRA_SUBSCRIPTIONS_CURSOR: &str = "keeper.subscriptions";

/// One entry of [`EXTRA_SUBSCRIPTIONS_CURSOR`].
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSub {
    id: String,
    token: String,
}

/// The ids and verification tokens of every subscription the keeper of `record`'s
/// account holds, the record's own first, then those of [`EXTRA_SUBSCRIPTIONS_CURSOR`] (for
/// registering them with the receiver at start).
///
/// # Errors
/// On a store failure.
pub async fn stored_tokens(
    store: &dyn Store,
    record: &SubscriptionRecord,
) -> Result<Vec<(String, Secret)>, StoreError> {
    Ok(stored(store, record).await?.0)
}

/// [`stored_tokens`] and the raw extras cursor.
pub(super) async fn stored(
    store: &dyn Store,
    record: &SubscriptionRecord,
) -> Result<(Vec<(String, Secret)>, Option<String>), StoreError> {
    let Some(token) = &record.verification_token else {
        return Ok((Vec::new(), None));
    };
    let mut out = vec![(record.id.clone(), token.clone())];
    let extras = store
        .cursor(Some(&record.account), EXTRA_SUBSCRIPTIONS_CURSOR)
        .await?;
    if let Some(json) = &extras {
        match serde_json::from_str::<Vec<SavedSub>>(json) {
            Ok(saved) => out.extend(saved.into_iter().map(|s| (s.id, Secret::new(s.token)))),
            Err(e) => {
                tracing::warn!(account = %record.account, error = %e, "unreadable extra subscriptions cursor: their subscriptions will be replaced");
            }
        }
    }
    Ok((out, extras))
}

impl Keeper {
    /// Stores the first subscription as the account's record and the others in the
    /// extras cursor.
    pub(super) async fn save(&mut self, now: DateTime<Utc>) -> Result<(), KeeperError> {
        let Some((first, rest)) = self.held.split_first() else {
            return Err(KeeperError::Store(StoreError::Other(
                "no subscription after reconcile".to_owned(),
            )));
        };
        let Some(cur) = &first.sub else {
            return Err(KeeperError::Store(StoreError::Other(
                "no subscription after reconcile".to_owned(),
            )));
        };
        let record = SubscriptionRecord {
            account: self.ctx.account.clone(),
            id: cur.id.clone(),
            status: cur.status.to_string(),
            expires_at: cur.expires_at,
            address: self.ctx.address.clone(),
            verification_token: Some(first.token.clone()),
            event_filters: cur.event_filters.clone(),
            disabled_filters: self.refused.clone(),
            created_at: cur.created_at.unwrap_or(now),
            renewed_at: None,
            last_error: None,
        };
        self.ctx.store.upsert_subscription(&record).await?;
        let saved: Vec<SavedSub> = rest
            .iter()
            .map(|h| SavedSub {
                id: h.id.clone(),
                token: h.token.expose().to_owned(),
            })
            .collect();
        let json = serde_json::to_string(&saved)
            .map_err(|e| KeeperError::Store(StoreError::Other(e.to_string())))?;
        let unchanged = self.saved_extras.as_deref() == Some(json.as_str())
            || (self.saved_extras.is_none() && saved.is_empty());
        if !unchanged {
            self.ctx
                .store
                .set_cursor(&CursorUpdate {
                    account: Some(self.ctx.account.clone()),
                    name: EXTRA_SUBSCRIPTIONS_CURSOR.to_owned(),
                    value: json.clone(),
                })
                .await?;
            self.saved_extras = Some(json);
        }
        Ok(())
    }
}
