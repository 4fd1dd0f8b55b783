//! Who holds what: the processor lease and each account's keeper lease, read from the
//! store (so any replica, and `ringrelay status` without a running server, can show it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::PROCESSOR_LEASE;
use crate::account::AccountId;
use crate::store::{Store, StoreError};

/// One lease's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseOwner {
    /// The replica holding it.
    pub owner: String,
    /// Its fencing token.
    pub fence: i64,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whether it had not lapsed at the time of reading (a lapsed one is taken over by the
    /// next replica that tries).
    pub live: bool,
}

/// The cluster's leases at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// The processor's holder.
    pub processor: Option<LeaseOwner>,
    /// Each account's keeper holder.
    pub keepers: BTreeMap<AccountId, LeaseOwner>,
}

/// Reads the leases as of `now` (on the lease clock).
///
/// # Errors
/// The store's error.
pub async fn ownership(store: &dyn Store, now: DateTime<Utc>) -> Result<Ownership, StoreError> {
    let mut out = Ownership::default();
    for lease in store.leases().await? {
        let owner = LeaseOwner {
            live: lease.expires_at > now,
            owner: lease.owner,
            fence: lease.fence,
            expires_at: lease.expires_at,
        };
        if lease.name == PROCESSOR_LEASE {
            out.processor = Some(owner);
        } else if let Some(account) = lease
            .name
            .strip_prefix("keeper:")
            .and_then(|a| AccountId::parse(a).ok())
        {
            out.keepers.insert(account, owner);
        }
    }
    Ok(out)
}
