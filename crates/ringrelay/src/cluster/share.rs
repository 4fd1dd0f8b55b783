//! Spreading accounts over replicas. Each running replica holds a `replica:{id}` lease
//! (its membership, renewed every renew period); a replica's fair share is the number of
//! accounts divided by the live members, rounded up. A keeper takes a free account lease
//! only while its replica holds fewer than its share, and a replica holding more than its
//! share gives leases up one at a time (heartbeat first, so the new keeper's downtime gap
//! is short), so a replica that joins gets accounts without anyone dying.
//!
//! The replica also renews all its account leases at once (one statement per renew
//! period, [`FairShare::renew_all`]) and keeps the result here: an account's keeper reads
//! its renewed lease from it instead of writing on its own, so idle bookkeeping is one
//! write per replica per period, not one per account.
//!
//! No account is left unkept: if every live replica held its share or more, together
//! they would hold every account. A dead replica's membership lapses with its other
//! leases, so the survivors' shares grow in time to take its accounts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::lease::{HeldLease, LeaseTiming};
use crate::store::{Lease, Store, StoreError};

/// The prefix of membership leases.
pub const MEMBER_PREFIX: &str = "replica:";

#[derive(Debug, Default)]
struct Counts {
    replicas: usize,
    mine: usize,
}

/// The account leases as last renewed together.
#[derive(Debug, Default)]
struct Book {
    /// When the batch renewal was sent (lease clock).
    at: Option<DateTime<Utc>>,
    leases: HashMap<String, Lease>,
}

/// What the last batch renewal says of one held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed, as it is now.
    Renewed(Lease),
    /// Not ours any more (another replica took it).
    Gone,
    /// No batch renewal ran since the lease was taken: renew it on its own.
    Unknown,
}

/// This replica's view of its fair share of accounts, and its account leases as last
/// renewed together.
#[derive(Debug)]
pub struct FairShare {
    owner: String,
    total: usize,
    counts: Mutex<Counts>,
    book: Mutex<Book>,
}

impl FairShare {
    /// The share of `owner` among `total` accounts (alone until [`FairShare::refresh`]).
    pub fn new(owner: impl Into<String>, total: usize) -> Self {
        Self {
            owner: owner.into(),
            total,
            counts: Mutex::default(),
            book: Mutex::default(),
        }
    }

    /// Renews every account lease this replica holds, in one statement, and records the
    /// result for the keepers ([`FairShare::renewal`]).
    ///
    /// # Errors
    /// The store's error (the previous record stays: its leases lapse as they would).
    pub async fn renew_all(
        &self,
        store: &dyn Store,
        timing: &LeaseTiming,
    ) -> Result<(), StoreError> {
        let at = timing.now();
        let leases = store
            .renew_leases(&self.owner, "keeper:", at, timing.ttl)
            .await?;
        let mut book = self
            .book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        book.at = Some(at);
        book.leases = leases.into_iter().map(|l| (l.name.clone(), l)).collect();
        Ok(())
    }

    /// What the last batch renewal says of `held`, taken at `taken_at` (after its
    /// acquisition returned, on the lease clock).
    pub fn renewal(&self, held: &Lease, taken_at: Option<DateTime<Utc>>) -> Renewal {
        let book = self
            .book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (book.at, taken_at) {
            (Some(at), Some(taken)) if at > taken => match book.leases.get(&held.name) {
                Some(l) if l.fence == held.fence => Renewal::Renewed(l.clone()),
                _ => Renewal::Gone,
            },
            _ => Renewal::Unknown,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fair(&self, c: &Counts) -> usize {
        self.total.div_ceil(c.replicas.max(1))
    }

    /// How many accounts this replica should keep.
    pub fn share(&self) -> usize {
        self.fair(&self.counts())
    }

    /// Whether this replica may take one more account.
    pub fn may_take(&self) -> bool {
        let c = self.counts();
        c.mine < self.fair(&c)
    }

    /// Counts an account lease taken.
    pub fn took(&self) {
        self.counts().mine += 1;
    }

    /// Counts an account lease lost to another replica.
    pub fn lost(&self) {
        let mut c = self.counts();
        c.mine = c.mine.saturating_sub(1);
    }

    /// `true` (and counted as given up) when this replica holds more than its share: the
    /// caller releases one account lease.
    pub fn give_up_one(&self) -> bool {
        let mut c = self.counts();
        if c.mine > self.fair(&c) {
            c.mine -= 1;
            true
        } else {
            false
        }
    }

    /// Recounts the live members and this replica's live account leases.
    ///
    /// # Errors
    /// The store's error.
    pub async fn refresh(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        let leases = store.leases().await?;
        let live = leases.iter().filter(|l| l.expires_at > now);
        let (mut replicas, mut mine) = (0, 0);
        for l in live {
            if l.name.starts_with(MEMBER_PREFIX) {
                replicas += 1;
            } else if l.name.starts_with("keeper:") && l.owner == self.owner {
                mine += 1;
            }
        }
        *self.counts() = Counts { replicas, mine };
        Ok(())
    }
}

/// Registers `owner` as a member now, so its first keepers count it (a failure is only
/// logged: the membership loop retries).
pub async fn join(member: &mut HeldLease, share: &FairShare, store: &dyn Store) {
    match member.tend().await {
        Ok(_) => {
            if let Err(e) = share.refresh(store, member.timing().now()).await {
                tracing::warn!(error = %e, "could not count the cluster's replicas");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not register this replica"),
    }
}

/// Keeps the membership lease and the share counts fresh twice per renew period, and
/// renews this replica's account leases (with `timing`'s TTL) once per period, until
/// `stop`; then leaves (releases the membership, so the others' shares grow at once).
pub async fn membership_loop(
    store: Arc<dyn Store>,
    mut member: HeldLease,
    share: Arc<FairShare>,
    timing: LeaseTiming,
    stop: CancellationToken,
) {
    // Twice per renew period: a dead replica's membership is noticed soon after it lapses;
    // the account leases are renewed once per period.
    let every = timing.renew / 2;
    let mut tick: u64 = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        tick += 1;
        if tick % 2 == 1
            && let Err(e) = share.renew_all(store.as_ref(), &timing).await
        {
            tracing::warn!(error = %e, "could not renew this replica's account leases");
        }
        join(&mut member, &share, store.as_ref()).await;
    }
    if let Err(e) = member.release().await {
        tracing::warn!(error = %e, "could not release the membership lease");
    }
}

/// The membership lease of `owner`. It lasts one renew period less than the account
/// leases, so a dead replica stops counting no later than its account leases lapse, and
/// the survivors' shares have grown by the time those leases are free. (The account
/// leases themselves are renewed with the full TTL by [`membership_loop`].)
pub fn member(store: Arc<dyn Store>, owner: &str, timing: LeaseTiming) -> HeldLease {
    let mut timing = timing;
    timing.ttl = timing.ttl.saturating_sub(timing.renew).max(timing.renew);
    HeldLease::new(store, format!("{MEMBER_PREFIX}{owner}"), owner, timing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(total: usize, replicas: usize, mine: usize) -> FairShare {
        let s = FairShare::new("r1", total);
        *s.counts() = Counts { replicas, mine };
        s
    }

    #[tokio::test]
    async fn keepers_read_their_lease_from_the_batch_renewal_taken_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(
            &crate::config::StoreUrl::Sqlite(dir.path().join("s.db")),
            &crate::store::OpenOptions::default(),
        )
        .await
        .expect("store");
        let timing = LeaseTiming::default();
        let share = FairShare::new("r1", 2);
        let now = timing.now();
        let a = store
            .acquire_lease("keeper:a", "r1", now, timing.ttl)
            .await
            .unwrap()
            .unwrap();
        let taken = Some(timing.now());
        assert_eq!(share.renewal(&a, taken), Renewal::Unknown, "no batch yet");
        share.renew_all(store.as_ref(), &timing).await.unwrap();
        match share.renewal(&a, taken) {
            Renewal::Renewed(l) => assert!(l.expires_at >= a.expires_at && l.fence == a.fence),
            other => panic!("{other:?}"),
        }
        // Taken after the batch ran: unknown until the next one.
        assert_eq!(
            share.renewal(&a, Some(timing.now() + chrono::Duration::seconds(1))),
            Renewal::Unknown
        );
        // Another replica took it (it lapsed): the next batch says so.
        let later = timing.now() + chrono::Duration::seconds(31);
        store
            .acquire_lease("keeper:a", "r2", later, timing.ttl)
            .await
            .unwrap()
            .unwrap();
        share.renew_all(store.as_ref(), &timing).await.unwrap();
        assert_eq!(share.renewal(&a, taken), Renewal::Gone);
    }

    #[test]
    fn alone_a_replica_keeps_every_account() {
        let s = FairShare::new("r1", 30);
        assert_eq!(s.share(), 30);
        assert!(s.may_take());
    }

    #[test]
    fn the_share_is_rounded_up_so_every_account_is_kept() {
        assert_eq!(counted(30, 3, 0).share(), 10);
        assert_eq!(counted(31, 3, 0).share(), 11);
        assert_eq!(counted(2, 3, 0).share(), 1);
    }

    #[test]
    fn a_replica_at_its_share_takes_no_more_and_one_above_gives_up_one_at_a_time() {
        let s = counted(30, 3, 10);
        assert!(!s.may_take());
        assert!(!s.give_up_one());
        let s = counted(30, 3, 12);
        assert!(s.give_up_one());
        assert!(s.give_up_one());
        assert!(!s.give_up_one(), "down to the share");
        s.lost();
        assert!(s.may_take());
        s.took();
        assert!(!s.may_take());
    }
}
