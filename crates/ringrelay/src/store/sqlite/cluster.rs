//! What several replicas share, on SQLite: the lease list, fenced activity writes and the
//! shared OAuth tokens. (An SQLite store serves one process, but the same code paths run
//! on it, so a single replica behaves like a cluster of one.)

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::ops::{insert_activity, set_cursor};
use super::sql_err;
use crate::config::Secret;
use crate::store::codec::{account, opt_time, time, us};
use crate::store::{AppendOutcome, CursorUpdate, Lease, NewActivity, StoreError, StoredTokens};

/// Fails with `Conflict` unless `fence` is still held (same owner and fence).
pub(super) fn check_fence(t: &Transaction<'_>, fence: &Lease) -> Result<(), StoreError> {
    let held = t
        .query_row(
            "SELECT 1 FROM leases WHERE name = ?1 AND owner = ?2 AND fence = ?3",
            params![fence.name, fence.owner, fence.fence],
            |_| Ok(()),
        )
        .optional()
        .map_err(sql_err)?;
    held.ok_or_else(|| {
        StoreError::Conflict(format!(
            "lease {} is no longer held by {} with fence {}",
            fence.name, fence.owner, fence.fence
        ))
    })
}

pub(super) fn leases(c: &Connection) -> Result<Vec<Lease>, StoreError> {
    let mut s = c
        .prepare(
            "SELECT name, owner, fence, expires_at FROM leases WHERE owner IS NOT NULL
             ORDER BY name",
        )
        .map_err(sql_err)?;
    let rows = s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (name, owner, fence, expires_at) = row.map_err(sql_err)?;
        out.push(Lease {
            name,
            owner,
            fence,
            expires_at: time(expires_at)?,
        });
    }
    Ok(out)
}

pub(super) fn renew_leases(
    t: &Transaction<'_>,
    owner: &str,
    prefix: &str,
    until: i64,
) -> Result<Vec<Lease>, StoreError> {
    t.execute(
        "UPDATE leases SET expires_at = ?3
         WHERE owner = ?1 AND substr(name, 1, length(?2)) = ?2",
        params![owner, prefix, until],
    )
    .map_err(sql_err)?;
    let mut s = t
        .prepare(
            "SELECT name, fence FROM leases
             WHERE owner = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
        )
        .map_err(sql_err)?;
    let rows = s
        .query_map(params![owner, prefix], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (name, fence) = row.map_err(sql_err)?;
        out.push(Lease {
            name,
            owner: owner.to_owned(),
            fence,
            expires_at: time(until)?,
        });
    }
    Ok(out)
}

pub(super) fn insert_fenced(
    t: &Transaction<'_>,
    activities: &[NewActivity],
    processed: Option<&CursorUpdate>,
    fence: &Lease,
    now: i64,
) -> Result<Vec<AppendOutcome>, StoreError> {
    check_fence(t, fence)?;
    let mut out = Vec::with_capacity(activities.len());
    for a in activities {
        out.push(if insert_activity(t, a, now)? {
            AppendOutcome::Stored
        } else {
            AppendOutcome::Duplicate
        });
    }
    if let Some(u) = processed {
        set_cursor(t, u)?;
    }
    Ok(out)
}

pub(super) fn oauth_tokens(c: &Connection, acc: &str) -> Result<Option<StoredTokens>, StoreError> {
    type Row = (
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<i64>,
        i64,
        String,
    );
    let row: Option<Row> = c
        .query_row(
            "SELECT account, credential, access_token, access_expires_at, refresh_token,
                refresh_expires_at, updated_at, updated_by
             FROM oauth_tokens WHERE account = ?1",
            [acc],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .optional()
        .map_err(sql_err)?;
    let Some((acc, credential, access, access_exp, refresh, refresh_exp, at, by)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredTokens {
        account: account(&acc)?,
        credential,
        access_token: Secret::new(access),
        access_expires_at: time(access_exp)?,
        refresh_token: refresh.map(Secret::new),
        refresh_expires_at: opt_time(refresh_exp)?,
        updated_at: time(at)?,
        updated_by: by,
    }))
}

pub(super) fn save_oauth_tokens(
    t: &Transaction<'_>,
    s: &StoredTokens,
    fence: &Lease,
) -> Result<(), StoreError> {
    check_fence(t, fence)?;
    t.execute(
        "INSERT INTO oauth_tokens (account, credential, access_token, access_expires_at,
            refresh_token, refresh_expires_at, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (account) DO UPDATE SET credential = excluded.credential,
            access_token = excluded.access_token,
            access_expires_at = excluded.access_expires_at,
            refresh_token = excluded.refresh_token,
            refresh_expires_at = excluded.refresh_expires_at,
            updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        params![
            s.account.as_str(),
            s.credential,
            s.access_token.expose(),
            us(s.access_expires_at),
            s.refresh_token.as_ref().map(Secret::expose),
            s.refresh_expires_at.map(us),
            us(s.updated_at),
            s.updated_by,
        ],
    )
    .map_err(sql_err)?;
    Ok(())
}
