//! One named lease held by a loop: taken when free, renewed every `renew`, given up when
//! another replica took it. Lease times come from their own clock (the wall clock by
//! default), never from the simulator's, which tests move in jumps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::ClusterSettings;
use crate::ringcentral::{Clock, SystemClock};
use crate::store::{Lease, Store, StoreError, chrono_duration};

/// How leases are timed.
#[derive(Debug, Clone)]
pub struct LeaseTiming {
    /// A lease lapses unless renewed within this time.
    pub ttl: Duration,
    /// How often a held lease is renewed and a free one tried.
    pub renew: Duration,
    /// The clock lease expiry is written and compared in (all replicas must share it: the
    /// wall clock in production).
    pub clock: Arc<dyn Clock>,
    /// This replica's fair share of accounts, when several replicas spread them (`None`:
    /// take every free account lease).
    pub share: Option<Arc<super::FairShare>>,
}

impl Default for LeaseTiming {
    /// 30 s TTL, renewed every 10 s, on the wall clock (the `[cluster]` defaults).
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            renew: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
            share: None,
        }
    }
}

impl LeaseTiming {
    /// The configured timing, on the wall clock.
    pub fn from_settings(settings: &ClusterSettings) -> Self {
        Self {
            ttl: settings.lease_ttl,
            renew: settings.lease_renew,
            clock: Arc::new(SystemClock),
            share: None,
        }
    }

    /// The same timing, taking account leases only up to `share`.
    #[must_use]
    pub fn with_share(mut self, share: Arc<super::FairShare>) -> Self {
        self.share = Some(share);
        self
    }

    /// The same timing on another clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, on the lease clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// Whether `lease` is held and not yet lapsed at `now`.
pub fn is_live(lease: Option<&Lease>, now: DateTime<Utc>) -> bool {
    lease.is_some_and(|l| l.expires_at > now)
}

/// A named lease one loop holds (or waits for).
pub struct HeldLease {
    store: Arc<dyn Store>,
    name: String,
    owner: String,
    timing: LeaseTiming,
    held: Option<Lease>,
    renewed_at: Option<DateTime<Utc>>,
    watch: watch::Sender<Option<Lease>>,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl HeldLease {
    /// Lease `name` for `owner`, not taken yet.
    pub fn new(
        store: Arc<dyn Store>,
        name: impl Into<String>,
        owner: impl Into<String>,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            store,
            name: name.into(),
            owner: owner.into(),
            timing,
            held: None,
            renewed_at: None,
            watch: watch::channel(None).0,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timing.
    pub fn timing(&self) -> &LeaseTiming {
        &self.timing
    }

    /// The lease as last taken or renewed, while it has not lapsed.
    pub fn current(&self) -> Option<&Lease> {
        self.held
            .as_ref()
            .filter(|l| l.expires_at > self.timing.now())
    }

    /// Sees every change of the held lease (`None` while not held).
    pub fn watch(&self) -> watch::Receiver<Option<Lease>> {
        self.watch.subscribe()
    }

    fn set(&mut self, lease: Option<Lease>) {
        if self.held != lease {
            self.watch.send_replace(lease.clone());
        }
        self.held = lease;
    }

    /// Takes the lease when free, or renews it when held; `true` while held. A renewal
    /// that finds the lease taken by another replica forgets it (and tries to take it
    /// back only once it lapses).
    ///
    /// # Errors
    /// The store's error (the lease is kept as it was: it may still be held).
    pub async fn tend(&mut self) -> Result<bool, StoreError> {
        let now = self.timing.now();
        if let Some(held) = self.held.clone() {
            match self.store.renew_lease(&held, now, self.timing.ttl).await {
                Ok(lease) => {
                    self.renewed_at = Some(now);
                    self.set(Some(lease));
                    return Ok(true);
                }
                Err(StoreError::Conflict(_)) => {
                    tracing::warn!(lease = %self.name, owner = %self.owner, "lease lost to another replica");
                    self.set(None);
                }
                Err(e) => return Err(e),
            }
        }
        let taken = self
            .store
            .acquire_lease(&self.name, &self.owner, now, self.timing.ttl)
            .await?;
        if taken.is_some() {
            tracing::info!(lease = %self.name, owner = %self.owner, "lease taken");
            self.renewed_at = Some(now);
        }
        let held = taken.is_some();
        self.set(taken);
        Ok(held)
    }

    /// [`HeldLease::tend`] when the last renewal is `renew` old or more (or nothing is
    /// held); otherwise whether the lease is still live.
    ///
    /// # Errors
    /// The store's error.
    pub async fn tend_if_due(&mut self) -> Result<bool, StoreError> {
        let now = self.timing.now();
        let due = self
            .renewed_at
            .is_none_or(|at| now - at >= chrono_duration(self.timing.renew));
        if due || self.current().is_none() {
            self.tend().await
        } else {
            Ok(true)
        }
    }

    /// Forgets the lease after a fenced write found it taken.
    pub fn lost(&mut self) {
        if self.held.is_some() {
            tracing::warn!(lease = %self.name, owner = %self.owner, "lease lost to another replica");
        }
        self.set(None);
    }

    /// Gives the lease up (graceful shutdown), so a standby takes it at once.
    ///
    /// # Errors
    /// The store's error.
    pub async fn release(&mut self) -> Result<(), StoreError> {
        if let Some(held) = self.held.take() {
            self.watch.send_replace(None);
            self.store.release_lease(&held).await?;
        }
        Ok(())
    }
}
