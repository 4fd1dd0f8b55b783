//! Which `Verification-Token` each account's notifications must carry, and which
//! subscriptions are the account's current ones. An account may have several active
//! subscriptions (its extensions' voicemail filters spread over them), each with its own
//! token. The keeper registers each one when it creates or adopts it and retires the ones
//! it deletes; a replaced or retired token stays valid for a grace period so notifications
//! already in flight from the old subscription are not refused.
//!
//! With several replicas, another replica's keeper may create a subscription: the
//! receiver then re-reads the account's stored subscriptions ([`TokenRegistry::learn`])
//! when a presented token is unknown, at most once per [`RELOAD_EVERY`] per account.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq as _;

use crate::account::AccountId;
use crate::config::Secret;

/// How often, at most, one account's stored tokens are re-read after a failed check.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Current tokens, one per subscription id, in registration order.
    current: Vec<Registered>,
    /// Replaced or retired tokens, each valid until its time.
    previous: Vec<(Registered, DateTime<Utc>)>,
}

impl Entry {
    fn retire(&mut self, old: Registered, until: DateTime<Utc>, now: DateTime<Utc>) {
        self.previous.retain(|(_, u)| now <= *u);
        self.previous.push((old, until));
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct TokenRegistry {
    inner: Arc<RwLock<HashMap<AccountId, Entry>>>,
    grace: Duration,
    reloads: Arc<std::sync::Mutex<HashMap<AccountId, std::time::Instant>>>,
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
            reloads: Arc::default(),
        }
    }

    /// Whether the account's stored tokens may be re-read now (at most once per
    /// [`RELOAD_EVERY`]); a `true` answer counts as the re-read.
    pub fn reload_due(&self, account: &AccountId) -> bool {
        let now = std::time::Instant::now();
        let mut map = self
            .reloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(account) {
            Some(at) if now.duration_since(*at) < RELOAD_EVERY => false,
            _ => {
                map.insert(account.clone(), now);
                true
            }
        }
    }

    /// Learns a subscription's token read from the store (another replica's keeper
    /// stored it): it becomes current for `subscription_id` unless it is already a
    /// current token or a replaced one within its grace (a stored record may lag what
    /// this replica's keeper just set or retired).
    pub fn learn(
        &self,
        account: &AccountId,
        subscription_id: &str,
        token: Secret,
        now: DateTime<Utc>,
    ) {
        {
            let map = self
                .inner
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = map.get(account) {
                let mut known = false;
                for r in &e.current {
                    known |= ct_eq(r.token.expose(), token.expose());
                }
                for (r, until) in &e.previous {
                    known |= ct_eq(r.token.expose(), token.expose()) & (now <= *until);
                }
                if known {
                    return;
                }
            }
        }
        self.set(account, subscription_id, token, now);
    }

    /// Makes `token` the current token of the account's subscription `subscription_id`
    /// (other subscriptions' tokens stay current); the token it replaces for that
    /// subscription (if different) stays valid until `now + grace`.
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
        if let Some(i) = entry
            .current
            .iter()
            .position(|r| r.subscription_id == new.subscription_id)
        {
            let old = entry.current.remove(i);
            if !ct_eq(old.token.expose(), new.token.expose()) {
                entry.retire(old, now + self.grace, now);
            }
        }
        entry.current.push(new);
    }

    /// The account's subscription `subscription_id` is gone (deleted or replaced): its
    /// token stops being current and stays valid until `now + grace`. Returns whether it
    /// was current.
    pub fn retire(&self, account: &AccountId, subscription_id: &str, now: DateTime<Utc>) -> bool {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = map.get_mut(account) else {
            return false;
        };
        let Some(i) = entry
            .current
            .iter()
            .position(|r| r.subscription_id == subscription_id)
        else {
            return false;
        };
        let old = entry.current.remove(i);
        entry.retire(old, now + self.grace, now);
        true
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
        // Configured while a token is current, or a retired one is still in its grace.
        let live =
            |e: &&Entry| !e.current.is_empty() || e.previous.iter().any(|(_, until)| now <= *until);
        let Some(entry) = map.get(account).filter(live) else {
            return TokenCheck::NotConfigured;
        };
        let Some(presented) = presented else {
            return TokenCheck::Missing;
        };
        // Compare with every candidate (no early exit), each in constant time.
        let mut valid = false;
        for r in &entry.current {
            valid |= ct_eq(r.token.expose(), presented);
        }
        for (r, until) in &entry.previous {
            valid |= ct_eq(r.token.expose(), presented) & (now <= *until);
        }
        if valid {
            TokenCheck::Valid
        } else {
            TokenCheck::Wrong
        }
    }

    /// The account's most recently registered current subscription id, when one is
    /// registered (with a single subscription: the current one).
    pub fn current_subscription(&self, account: &AccountId) -> Option<String> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(account)?
            .current
            .last()
            .map(|r| r.subscription_id.clone())
    }

    /// Every current subscription id of the account, in registration order.
    pub fn current_subscriptions(&self, account: &AccountId) -> Vec<String> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(account).map_or_else(Vec::new, |e| {
            e.current
                .iter()
                .map(|r| r.subscription_id.clone())
                .collect()
        })
    }

    /// Whether `subscription_id` is one of the account's current ones, or a replaced or
    /// retired one within the grace period.
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
                .iter()
                .any(|r| r.subscription_id == subscription_id)
                || e.previous
                    .iter()
                    .any(|(r, until)| now <= *until && r.subscription_id == subscription_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learned_token_becomes_current_unless_already_known() {
        let reg = TokenRegistry::new(std::time::Duration::from_secs(600));
        let t0 = Utc::now();
        reg.learn(&acme(), "sub-1", Secret::new("a"), t0);
        assert_eq!(reg.check(&acme(), Some("a"), t0), TokenCheck::Valid);
        reg.set(&acme(), "sub-1", Secret::new("b"), t0);
        // The stored record still has sub-1's old token: learning it must not make it
        // current again over the newer one.
        reg.learn(&acme(), "sub-1", Secret::new("a"), t0);
        reg.retire(&acme(), "sub-1", t0);
        let later = t0 + Duration::minutes(11);
        assert_eq!(
            reg.check(&acme(), Some("a"), later),
            TokenCheck::NotConfigured
        );
        // A subscription another replica created is learned.
        reg.learn(&acme(), "sub-2", Secret::new("c"), later);
        assert_eq!(reg.check(&acme(), Some("c"), later), TokenCheck::Valid);
        assert!(reg.is_known_subscription(&acme(), "sub-2", later));
    }

    #[test]
    fn reloads_are_rate_limited_per_account() {
        let reg = TokenRegistry::new(std::time::Duration::from_secs(600));
        let other = AccountId::parse("other").expect("slug");
        assert!(reg.reload_due(&acme()));
        assert!(!reg.reload_due(&acme()));
        assert!(reg.reload_due(&other));
    }

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
        assert!(reg.retire(&acme(), "sub-1", t0));
        assert!(!reg.retire(&acme(), "sub-1", t0), "already retired");
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
        reg.set(&acme(), "sub-1", Secret::new("b"), t0);
        reg.set(&acme(), "sub-1", Secret::new("b"), t0);
        assert_eq!(reg.check(&acme(), Some("a"), t0), TokenCheck::Valid);
        let later = t0 + Duration::minutes(11);
        assert_eq!(reg.check(&acme(), Some("a"), later), TokenCheck::Wrong);
        assert_eq!(reg.check(&acme(), Some("b"), later), TokenCheck::Valid);
    }

    #[test]
    fn several_subscriptions_are_current_at_once_each_with_its_token() {
        let reg = TokenRegistry::new(std::time::Duration::from_secs(600));
        let t0 = Utc::now();
        for i in 0..5 {
            reg.set(
                &acme(),
                &format!("sub-{i}"),
                Secret::new(format!("t{i}")),
                t0,
            );
        }
        let much_later = t0 + Duration::days(30);
        for i in 0..5 {
            assert_eq!(
                reg.check(&acme(), Some(&format!("t{i}")), much_later),
                TokenCheck::Valid
            );
            assert!(reg.is_known_subscription(&acme(), &format!("sub-{i}"), much_later));
        }
        assert_eq!(reg.check(&acme(), Some("t9"), t0), TokenCheck::Wrong);
        assert!(!reg.is_known_subscription(&acme(), "sub-9", t0), "a stray");
        assert_eq!(reg.current_subscriptions(&acme()).len(), 5);
        assert_eq!(reg.current_subscription(&acme()).as_deref(), Some("sub-4"));
        // One of them is recreated: its old token and id only last the grace period.
        reg.retire(&acme(), "sub-2", t0);
        reg.set(&acme(), "sub-5", Secret::new("t5"), t0);
        assert_eq!(reg.check(&acme(), Some("t2"), t0), TokenCheck::Valid);
        assert_eq!(
            reg.check(&acme(), Some("t2"), much_later),
            TokenCheck::Wrong
        );
        assert!(!reg.is_known_subscription(&acme(), "sub-2", much_later));
        assert_eq!(
            reg.check(&acme(), Some("t5"), much_later),
            TokenCheck::Valid
        );
        assert_eq!(
            reg.check(&acme(), Some("t0"), much_later),
            TokenCheck::Valid
        );
        // Retiring every one: in-flight notifications pass during the grace period, and
        // after it the account has no token at all.
        for id in reg.current_subscriptions(&acme()) {
            reg.retire(&acme(), &id, much_later);
        }
        assert_eq!(
            reg.check(&acme(), Some("t0"), much_later),
            TokenCheck::Valid
        );
        assert_eq!(
            reg.check(&acme(), Some("t0"), much_later + Duration::minutes(11)),
            TokenCheck::NotConfigured
        );
    }
}
