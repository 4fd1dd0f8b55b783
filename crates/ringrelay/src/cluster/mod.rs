//! Several replicas on one database (issue "Scale-out"): PostgreSQL is the coordination
//! engine, through named lease rows with fencing tokens ([`Store::acquire_lease`]).
//!
//! - [`lease`]: [`LeaseTiming`] (TTL, renew period, the clock leases are timed by) and
//!   [`HeldLease`], one named lease a loop takes, renews and checks (the processor's).
//! - [`tokens`]: the account's OAuth tokens in the store, refreshed by one replica at a
//!   time under the `token:{account}` lease, read by the others.
//! - [`owners`]: who holds what, for `ringrelay status` and the admin API.
//! - [`share`]: membership leases and each replica's fair share of accounts, so accounts
//!   spread over the replicas (also onto one that joins later).
//!
//! Which lease guards what:
//!
//! | lease | held by | guards |
//! |---|---|---|
//! | `keeper:{account}` | the account's keeper | subscription calls, the coverage ledger, the account's call-log / voicemail sync and gap backfill |
//! | `processor` | one processor | the inbox cursor and the activities it derives |
//! | `token:{account}` | a replica refreshing the token | the token endpoint and the stored tokens |
//! | `replica:{id}` | each running replica | its membership (counted for fair shares) |
//!
//! [`Store::acquire_lease`]: crate::store::Store::acquire_lease

pub mod lease;
pub mod owners;
pub mod share;
pub mod tokens;

pub use lease::{HeldLease, LeaseTiming, is_live};
pub use owners::{LeaseOwner, Ownership, ownership};
pub use share::FairShare;
pub use tokens::StoreTokens;

/// The processor's lease name.
pub const PROCESSOR_LEASE: &str = "processor";

/// The keeper lease name of `account`.
pub fn keeper_lease(account: &crate::account::AccountId) -> String {
    format!("keeper:{account}")
}

/// The token-refresh lease name of `account`.
pub fn token_lease(account: &crate::account::AccountId) -> String {
    format!("token:{account}")
}
