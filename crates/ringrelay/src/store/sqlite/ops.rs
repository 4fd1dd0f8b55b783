//! The multi-statement SQLite writes (activities, claims, completions, leases, pruning),
//! each run inside the caller's transaction on the writer thread.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::rows::lease_row;
use super::sql_err;
use crate::store::codec::{
    self, ActivityColumns, completion, cursor_account, from_json, time, to_json, us,
};
use crate::store::{ClaimedDelivery, CursorUpdate, DeliveryResult, Lease, NewActivity, StoreError};

/// Rows removed per pruning transaction.
pub(super) const PRUNE_BATCH: i64 = 1000;

pub(super) fn set_cursor(t: &Transaction<'_>, u: &CursorUpdate) -> Result<(), StoreError> {
    t.execute(
        "INSERT INTO cursors (account, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (account, name) DO UPDATE SET value = excluded.value",
        params![cursor_account(u.account.as_ref()), u.name, u.value],
    )
    .map_err(sql_err)?;
    Ok(())
}

pub(super) fn insert_activity(
    t: &Transaction<'_>,
    n: &NewActivity,
    now: i64,
) -> Result<bool, StoreError> {
    let a = &n.activity;
    let changed = t
        .prepare_cached(
            "INSERT INTO activities (key, activity_id, account, call_key, kind, source,
                occurred_at, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (key) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                a.key,
                a.id.0.to_string(),
                a.account.as_str(),
                a.call_key,
                a.kind.as_str(),
                a.source.as_str(),
                us(a.occurred_at),
                to_json(&a.payload).map_err(|e| rusqlite::Error::ToSqlConversionFailure(
                    Box::new(std::io::Error::other(e.to_string()))
                ))?,
                now,
            ])
        })
        .map_err(sql_err)?;
    if changed == 0 {
        return Ok(false);
    }
    let activity = t.last_insert_rowid();
    let mut sinks: Vec<&String> = n.sinks.iter().collect();
    sinks.sort();
    sinks.dedup();
    for sink in sinks {
        t.prepare_cached(
            "INSERT INTO deliveries (activity, sink, account, call_key, state, due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5)",
        )
        .and_then(|mut s| s.execute(params![activity, sink, a.account.as_str(), a.call_key, now]))
        .map_err(sql_err)?;
    }
    Ok(true)
}

pub(super) fn claim(
    t: &Transaction<'_>,
    sink: &str,
    owner: &str,
    now: i64,
    lease_until: i64,
    n: i64,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let ids: Vec<i64> = {
        let mut stmt = t
            .prepare_cached(
                "SELECT d.id FROM deliveries d
                 WHERE d.sink = ?1 AND d.state IN ('pending', 'failed', 'in_flight')
                   AND d.due_at <= ?2
                   AND NOT EXISTS (SELECT 1 FROM deliveries e
                       WHERE e.sink = d.sink AND e.call_key = d.call_key
                         AND e.state IN ('pending', 'failed', 'in_flight') AND e.id < d.id)
                   AND NOT EXISTS (SELECT 1 FROM sinks s
                       WHERE s.name = ?1 AND s.disabled_reason IS NOT NULL)
                 ORDER BY d.due_at, d.id LIMIT ?3",
            )
            .map_err(sql_err)?;
        stmt.query_map(params![sink, now, n], |r| r.get(0))
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let claimed = t
            .prepare_cached(
                "UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1,
                    due_at = ?2, owner = ?3 WHERE id = ?1
                 RETURNING attempts, (SELECT json_array(a.activity_id, a.key, a.kind, a.account,
                    a.call_key, a.source, a.occurred_at, a.payload)
                    FROM activities a WHERE a.id = deliveries.activity)",
            )
            .and_then(|mut s| {
                s.query_row(params![id, lease_until, owner], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
            })
            .map_err(sql_err)?;
        let (attempts, cols) = claimed;
        let (aid, key, kind, acc, call_key, source, occurred_at, payload): (
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
            String,
        ) = from_json(&cols)?;
        out.push(ClaimedDelivery {
            id,
            sink: sink.to_owned(),
            activity: ActivityColumns {
                id: aid,
                key,
                kind,
                account: acc,
                call_key,
                source,
                occurred_at,
                payload,
            }
            .into_activity()?,
            attempt: codec::attempt(attempts),
            lease_until: time(lease_until)?,
        });
    }
    Ok(out)
}

pub(super) fn complete(
    t: &Transaction<'_>,
    id: i64,
    attempt: u32,
    now: DateTime<Utc>,
    result: &DeliveryResult,
) -> Result<(), StoreError> {
    let (state, due_at, error, status, delivered_at) = completion(result, now);
    let changed = t
        .execute(
            "UPDATE deliveries SET state = ?3, due_at = ?4, last_error = ?5, last_status = ?6,
                delivered_at = ?7, owner = NULL
             WHERE id = ?1 AND attempts = ?2 AND state = 'in_flight'",
            params![
                id,
                attempt,
                state.as_str(),
                due_at,
                error,
                status,
                delivered_at
            ],
        )
        .map_err(sql_err)?;
    if changed == 1 {
        return Ok(());
    }
    let found: Option<(String, i64)> = t
        .query_row(
            "SELECT state, attempts FROM deliveries WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql_err)?;
    match found {
        None => Err(StoreError::NotFound(format!("delivery {id}"))),
        Some((state, attempts)) => Err(StoreError::Conflict(format!(
            "delivery {id} is {state} at attempt {attempts}, not in flight at attempt {attempt}"
        ))),
    }
}

pub(super) fn acquire(
    t: &Transaction<'_>,
    name: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<Option<Lease>, StoreError> {
    let held = t
        .query_row(
            "SELECT owner, fence, expires_at FROM leases WHERE name = ?1",
            [name],
            lease_row,
        )
        .optional()
        .map_err(sql_err)?;
    let fence = match held {
        None => 1,
        Some((Some(o), fence, _)) if o == owner => fence,
        Some((Some(_), _, exp)) if exp > now => return Ok(None),
        Some((_, fence, _)) => fence + 1,
    };
    t.execute(
        "INSERT INTO leases (name, owner, fence, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, fence = excluded.fence,
            expires_at = excluded.expires_at",
        params![name, owner, fence, until],
    )
    .map_err(sql_err)?;
    Ok(Some(Lease {
        name: name.to_owned(),
        owner: owner.to_owned(),
        fence,
        expires_at: time(until)?,
    }))
}

pub(super) fn prune_batch(t: &Transaction<'_>, sql: &str, before: i64) -> Result<u64, StoreError> {
    let n = t
        .execute(sql, params![before, PRUNE_BATCH])
        .map_err(sql_err)?;
    Ok(n as u64)
}
