//! Mapping SQLite rows to the store's domain types.

use rusqlite::{Connection, Row};

use super::sql_err;
use crate::config::Secret;
use crate::store::codec::{self, account, backfill, from_json, opt_time, parse, time};
use crate::store::{Delivery, Gap, GapCause, StoreError, SubscriptionRecord};

/// The columns `delivery_row` reads (`d` = deliveries, `a` = activities).
pub(super) const DELIVERY_COLUMNS: &str = "d.id, d.sink, a.key, a.activity_id, d.account, d.call_key, \
     a.kind, d.state, d.attempts, d.due_at, d.last_error, d.last_status, d.created_at, \
     d.delivered_at";

/// The columns `gap_row` reads.
pub(super) const GAP_COLUMNS: &str = "id, account, from_at, until_at, cause, backfill, records, found, backfill_error, backfilled_at";

pub(super) fn delivery_row(r: &Row<'_>) -> Result<Delivery, StoreError> {
    let g = |e| sql_err(e);
    let activity_id: String = r.get(3).map_err(g)?;
    Ok(Delivery {
        id: r.get(0).map_err(g)?,
        sink: r.get(1).map_err(g)?,
        activity_key: r.get(2).map_err(g)?,
        activity_id: crate::activity::ActivityId::parse(&activity_id)
            .ok_or_else(|| StoreError::Other(format!("stored activity id {activity_id:?}")))?,
        account: account(&r.get::<_, String>(4).map_err(g)?)?,
        call_key: r.get(5).map_err(g)?,
        kind: r.get(6).map_err(g)?,
        state: parse(&r.get::<_, String>(7).map_err(g)?)?,
        attempts: codec::attempt(r.get(8).map_err(g)?),
        due_at: opt_time(r.get(9).map_err(g)?)?,
        last_error: r.get(10).map_err(g)?,
        last_status: codec::status(r.get(11).map_err(g)?),
        created_at: time(r.get(12).map_err(g)?)?,
        delivered_at: opt_time(r.get(13).map_err(g)?)?,
    })
}

pub(super) fn gap_row(r: &Row<'_>) -> Result<Gap, StoreError> {
    let g = |e| sql_err(e);
    Ok(Gap {
        id: r.get(0).map_err(g)?,
        account: account(&r.get::<_, String>(1).map_err(g)?)?,
        from: time(r.get(2).map_err(g)?)?,
        until: opt_time(r.get(3).map_err(g)?)?,
        cause: parse::<GapCause>(&r.get::<_, String>(4).map_err(g)?)?,
        backfill: backfill(
            &r.get::<_, String>(5).map_err(g)?,
            r.get(6).map_err(g)?,
            r.get(7).map_err(g)?,
            r.get(8).map_err(g)?,
        )?,
        backfilled_at: opt_time(r.get(9).map_err(g)?)?,
    })
}

pub(super) fn subscription_row(r: &Row<'_>) -> Result<SubscriptionRecord, StoreError> {
    let g = |e| sql_err(e);
    Ok(SubscriptionRecord {
        account: account(&r.get::<_, String>(0).map_err(g)?)?,
        id: r.get(1).map_err(g)?,
        status: r.get(2).map_err(g)?,
        expires_at: time(r.get(3).map_err(g)?)?,
        address: r.get(4).map_err(g)?,
        verification_token: r.get::<_, Option<String>>(5).map_err(g)?.map(Secret::new),
        event_filters: from_json(&r.get::<_, String>(6).map_err(g)?)?,
        disabled_filters: from_json(&r.get::<_, String>(7).map_err(g)?)?,
        created_at: time(r.get(8).map_err(g)?)?,
        renewed_at: opt_time(r.get(9).map_err(g)?)?,
        last_error: r.get(10).map_err(g)?,
    })
}

pub(super) fn lease_row(r: &Row<'_>) -> rusqlite::Result<(Option<String>, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sql_err)? {
        out.push(map(r)?);
    }
    Ok(out)
}
