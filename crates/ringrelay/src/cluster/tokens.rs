//! [`SharedTokens`] on the store: the `oauth_tokens` row of the account, written only
//! under the `token:{account}` lease (fenced), so one replica at a time calls the token
//! endpoint and the others adopt what it stored.
//!
//! The tokens are secrets kept in the database in plain text (like the verification
//! tokens of subscriptions): anyone who can read the database can call RingCentral as the
//! account until they expire. They never reach a log line (`Secret` redacts them).

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use super::lease::LeaseTiming;
use super::token_lease;
use crate::account::AccountId;
use crate::config::AccountSettings;
use crate::ringcentral::{SharedTokenError, SharedTokens, TokenPair};
use crate::store::{Lease, Store, StoreError, StoredTokens};

/// One account's tokens in the store.
pub struct StoreTokens {
    store: Arc<dyn Store>,
    account: AccountId,
    credential: String,
    owner: String,
    timing: LeaseTiming,
    lock: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for StoreTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTokens")
            .field("account", &self.account)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// A fingerprint of the credential (client id and JWT), so tokens obtained with a
/// credential that has since been replaced are not used. It reveals neither secret.
pub fn credential_fingerprint(client_id: &str, jwt: &str) -> String {
    let mut h = Sha256::new();
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(jwt.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn err(e: StoreError) -> SharedTokenError {
    SharedTokenError(e.to_string())
}

impl StoreTokens {
    /// The tokens of `account`, refreshed by `owner` under leases timed by `timing`.
    pub fn new(
        store: Arc<dyn Store>,
        account: &AccountSettings,
        owner: impl Into<String>,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            store,
            account: account.id.clone(),
            credential: credential_fingerprint(&account.client_id, account.jwt.expose()),
            owner: owner.into(),
            timing,
            lock: Mutex::new(None),
        }
    }
}

#[async_trait]
impl SharedTokens for StoreTokens {
    async fn load(&self) -> Result<Option<TokenPair>, SharedTokenError> {
        let stored = self.store.oauth_tokens(&self.account).await.map_err(err)?;
        Ok(stored
            .filter(|s| s.credential == self.credential)
            .map(|s| TokenPair {
                access: s.access_token,
                access_expires_at: s.access_expires_at,
                refresh: s.refresh_token,
                refresh_expires_at: s.refresh_expires_at,
            }))
    }

    async fn lock_refresh(&self) -> Result<bool, SharedTokenError> {
        let lease = self
            .store
            .acquire_lease(
                &token_lease(&self.account),
                &self.owner,
                self.timing.now(),
                self.timing.ttl,
            )
            .await
            .map_err(err)?;
        let held = lease.is_some();
        *self.lock.lock().await = lease;
        Ok(held)
    }

    async fn save(&self, pair: &TokenPair) -> Result<(), SharedTokenError> {
        let lock = self.lock.lock().await;
        let Some(lease) = lock.as_ref() else {
            return Err(SharedTokenError("the refresh lock is not held".to_owned()));
        };
        let row = StoredTokens {
            account: self.account.clone(),
            credential: self.credential.clone(),
            access_token: pair.access.clone(),
            access_expires_at: pair.access_expires_at,
            refresh_token: pair.refresh.clone(),
            refresh_expires_at: pair.refresh_expires_at,
            updated_at: self.timing.now(),
            updated_by: self.owner.clone(),
        };
        self.store.save_oauth_tokens(&row, lease).await.map_err(err)
    }

    async fn unlock_refresh(&self) {
        if let Some(lease) = self.lock.lock().await.take()
            && let Err(e) = self.store.release_lease(&lease).await
        {
            tracing::warn!(account = %self.account, error = %e, "could not release the token lease");
        }
    }

    fn refresh_wait(&self) -> std::time::Duration {
        self.timing.ttl + std::time::Duration::from_secs(1)
    }
}
