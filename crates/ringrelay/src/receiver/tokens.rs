//! Which `Verification-Token` each account's notifications must carry, and which
//! subscription is the account's current one. The keeper sets both when it creates or
//! adopts a subscription; the previous token stays valid for a grace period so
//! notifications already in flight from the old subscription are not refused.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq as _;

use crate::account::AccountId;
use crate::config::Secret;

/// The result of checking a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// It matches the current token, or the previous one within the grace period.
    Valid,
    /// The request carried no `Verification-Token`.
    Missing,
    /// It carried a token that matches neither.
    Wrong,
    /// No token is known for the account yet (no subscription created or loaded).
    NotConfigured,
}

#[derive(Clone)]
struct Registered {
    subscription_id: String,
    token: Secret,
}

#[derive(Clone, Default)]
struct Entry {
    current: Option<Registered>,
    previous: Option<(Registered, DateTime<Utc>)>,
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct TokenRegistry {
    inner: Arc<RwLock<HashMap<AccountId, Entry>>>,
    grace: Duration,
}

impl std::fmt::Debug for TokenRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRegistry")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl TokenRegistry {
    /// An empty registry; a replaced token stays valid for `grace`.
    pub fn new(grace: std::time::Duration) -> Self {
        Self {
            inner: Arc::new(RwLock::new(HashMap::new())),
            grace: Duration::from_std(grace).unwrap_or_else(|_| Duration::minutes(10)),
        }
    }

    /// Makes `token` the account's current token for `subscription_id`; the one it
    /// replaces (if different) stays valid until `now + grace`.
    pub fn set(
        &self,
        account: &AccountId,
        subscription_id: &str,
        token: Secret,
        now: DateTime<Utc>,
    ) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry(account.clone()).or_default();
        let new = Registered {
            subscription_id: subscription_id.to_owned(),
            token,
        };
        if let Some(old) = entry.current.take() {
            let same = old.subscription_id == new.subscription_id
                && ct_eq(old.token.expose(), new.token.expose());
            if !same {
                entry.previous = Some((old, now + self.grace));
            }
        }
        entry.current = Some(new);
    }

    /// Forgets the account's tokens (its subscription was deleted for good).
    pub fn clear(&self, account: &AccountId) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(account);
    }

    /// Checks a presented token, in constant time per candidate.
    pub fn check(
        &self,
        account: &AccountId,
        presented: Option<&str>,
        now: DateTime<Utc>,
    ) -> TokenCheck {
        let map = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = map.get(account).filter(|e| e.current.is_some()) else {
            return TokenCheck::NotConfigured;
        };
        let Some(presented) = presented else {
            return TokenCheck::Missing;
        };
        let current = entry
            .current
            .as_ref()
            .is_some_and(|r| ct_eq(r.token.expose(), presented));
        let previous = entry
            .previous
            .as_ref()
            .is_some_and(|(r, until)| now <= *until && ct_eq(r.token.expose(), presented));
        if current || previous {
            TokenCheck::Valid
        } else {
            TokenCheck::Wrong
        }
    }

    /// The account's current subscription id, when one is registered.
    pub fn current_subscription(&self, account: &AccountId) -> Option<String> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(account)?
            .current
            .as_ref()
            .map(|r| r.subscription_id.clone())
    }

    /// Whether `subscription_id` is the account's current one, or its previous one
    /// within the grace period.
    pub fn is_known_subscription(
        &self,
        account: &AccountId,
        subscription_id: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let map = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(account).is_some_and(|e| {
            e.current
                .as_ref()
                .is_some_and(|r| r.subscription_id == subscription_id)
                || e.previous
                    .as_ref()
                    .is_some_and(|(r, until)| now <= *until && r.subscription_id == subscription_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> AccountId {
        AccountId::parse("acme").expect("slug")
    }

    #[test]
    fn current_previous_and_grace() {
        let reg = TokenRegistry::new(std::time::Duration::from_secs(600));
        let t0 = Utc::now();
        assert_eq!(reg.check(&acme(), Some("a"), t0), TokenCheck::NotConfigured);
        reg.set(&acme(), "sub-1", Secret::new("a"), t0);
        assert_eq!(reg.check(&acme(), Some("a"), t0), TokenCheck::Valid);
        assert_eq!(reg.check(&acme(), None, t0), TokenCheck::Missing);
        assert_eq!(reg.check(&acme(), Some("b"), t0), TokenCheck::Wrong);
        reg.set(&acme(), "sub-2", Secret::new("b"), t0);
        assert_eq!(reg.check(&acme(), Some("b"), t0), TokenCheck::Valid);
        assert_eq!(
            reg.check(&acme(), Some("a"), t0),
            TokenCheck::Valid,
            "grace"
        );
        assert!(reg.is_known_subscription(&acme(), "sub-1", t0));
        let later = t0 + Duration::minutes(11);
        assert_eq!(reg.check(&acme(), Some("a"), later), TokenCheck::Wrong);
        assert!(!reg.is_known_subscription(&acme(), "sub-1", later));
        assert_eq!(reg.current_subscription(&acme()).as_deref(), Some("sub-2"));
        reg.clear(&acme());
        assert_eq!(
            reg.check(&acme(), Some("b"), later),
            TokenCheck::NotConfigured
        );
    }

    #[test]
    fn setting_the_same_token_again_keeps_the_previous_one() {
        let reg = TokenRegistry::new(std::time::Duration::from_secs(600));
        let t0 = Utc::now();
        reg.set(&acme(), "sub-1", Secret::new("a"), t0);
        reg.set(&acme(), "sub-2", Secret::new("b"), t0);
        reg.set(&acme(), "sub-2", Secret::new("b"), t0);
        assert_eq!(reg.check(&acme(), Some("a"), t0), TokenCheck::Valid);
    }
}
