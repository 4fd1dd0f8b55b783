//! What several replicas share, on PostgreSQL: the lease list, fenced activity writes and
//! the shared OAuth tokens. A fenced write takes a share lock on the lease row in its own
//! transaction, so a concurrent takeover (an `UPDATE` of that row) waits for the commit
//! and a write after a takeover fails: the fence check and the write are one unit.

use chrono::Utc;

use super::rows::get;
use super::{PostgresStore, pg_err};
use crate::config::Secret;
use crate::store::codec::{account, cursor_account, opt_time, time, us};
use crate::store::{AppendOutcome, CursorUpdate, Lease, NewActivity, StoreError, StoredTokens};

/// Fails with `Conflict` unless `fence` is still held (same owner and fence); the row stays
/// share-locked until the transaction ends.
async fn check_fence(
    t: &deadpool_postgres::Transaction<'_>,
    fence: &Lease,
) -> Result<(), StoreError> {
    let held = t
        .query_opt(
            "SELECT 1 FROM leases WHERE name = $1 AND owner = $2 AND fence = $3 FOR SHARE",
            &[&fence.name, &fence.owner, &fence.fence],
        )
        .await
        .map_err(pg_err)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(format!(
            "lease {} is no longer held by {} with fence {}",
            fence.name, fence.owner, fence.fence
        ))),
    }
}

impl PostgresStore {
    pub(super) async fn cluster_leases(&self) -> Result<Vec<Lease>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT name, owner, fence, expires_at FROM leases WHERE owner IS NOT NULL
                 ORDER BY name",
                &[],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(Lease {
                    name: get(r, 0)?,
                    owner: get(r, 1)?,
                    fence: get(r, 2)?,
                    expires_at: time(get(r, 3)?)?,
                })
            })
            .collect()
    }

    pub(super) async fn renew_owned_leases(
        &self,
        owner: &str,
        prefix: &str,
        until: i64,
    ) -> Result<Vec<Lease>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "UPDATE leases SET expires_at = $3
                 WHERE owner = $1 AND left(name, length($2)) = $2
                 RETURNING name, fence",
                &[&owner, &prefix, &until],
            )
            .await
            .map_err(pg_err)?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(Lease {
                    name: get(r, 0)?,
                    owner: owner.to_owned(),
                    fence: get(r, 1)?,
                    expires_at: time(until)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(super) async fn insert_fenced(
        &self,
        activities: &[NewActivity],
        processed: Option<&CursorUpdate>,
        fence: &Lease,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let now = us(Utc::now());
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(pg_err)?;
        check_fence(&t, fence).await?;
        let mut out = Vec::with_capacity(activities.len());
        for a in activities {
            out.push(if Self::insert_activity(&t, a, now).await? {
                AppendOutcome::Stored
            } else {
                AppendOutcome::Duplicate
            });
        }
        if let Some(u) = processed {
            t.execute(
                "INSERT INTO cursors (account, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
                &[&cursor_account(u.account.as_ref()), &u.name, &u.value],
            )
            .await
            .map_err(pg_err)?;
        }
        t.commit().await.map_err(pg_err)?;
        Ok(out)
    }

    pub(super) async fn load_oauth_tokens(
        &self,
        acc: &str,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT account, credential, access_token, access_expires_at, refresh_token,
                    refresh_expires_at, updated_at, updated_by
                 FROM oauth_tokens WHERE account = $1",
                &[&acc],
            )
            .await
            .map_err(pg_err)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(StoredTokens {
            account: account(get(&r, 0)?)?,
            credential: get(&r, 1)?,
            access_token: Secret::new(get::<String>(&r, 2)?),
            access_expires_at: time(get(&r, 3)?)?,
            refresh_token: get::<Option<String>>(&r, 4)?.map(Secret::new),
            refresh_expires_at: opt_time(get(&r, 5)?)?,
            updated_at: time(get(&r, 6)?)?,
            updated_by: get(&r, 7)?,
        }))
    }

    pub(super) async fn store_oauth_tokens(
        &self,
        s: &StoredTokens,
        fence: &Lease,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(pg_err)?;
        check_fence(&t, fence).await?;
        t.execute(
            "INSERT INTO oauth_tokens (account, credential, access_token, access_expires_at,
                refresh_token, refresh_expires_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (account) DO UPDATE SET credential = excluded.credential,
                access_token = excluded.access_token,
                access_expires_at = excluded.access_expires_at,
                refresh_token = excluded.refresh_token,
                refresh_expires_at = excluded.refresh_expires_at,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            &[
                &s.account.as_str(),
                &s.credential,
                &s.access_token.expose(),
                &us(s.access_expires_at),
                &s.refresh_token.as_ref().map(Secret::expose),
                &s.refresh_expires_at.map(us),
                &us(s.updated_at),
                &s.updated_by,
            ],
        )
        .await
        .map_err(pg_err)?;
        t.commit().await.map_err(pg_err)?;
        Ok(())
    }
}
