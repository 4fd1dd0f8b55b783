//! Mapping PostgreSQL rows to the store's domain types.

use tokio_postgres::Row;

use super::pg_err;
use crate::config::Secret;
use crate::store::codec::{
    self, ActivityColumns, account, backfill, from_json, opt_time, parse, time,
};
use crate::store::{ClaimedDelivery, Delivery, Gap, GapCause, StoreError, SubscriptionRecord};

pub(super) const DELIVERY_COLUMNS: &str = "d.id, d.sink, a.key, a.activity_id, d.account, d.call_key, \
     a.kind, d.state, d.attempts, d.due_at, d.last_error, d.last_status, d.created_at, \
     d.delivered_at";

pub(super) const GAP_COLUMNS: &str = "id, account, from_at, until_at, cause, backfill, records, found, backfill_error, backfilled_at";

pub(super) const SUBSCRIPTION_COLUMNS: &str = "account, id, status, expires_at, address, \
     verification_token, event_filters, disabled_filters, created_at, renewed_at, last_error";

pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    r.try_get(i).map_err(pg_err)
}

pub(super) fn delivery_row(r: &Row) -> Result<Delivery, StoreError> {
    let activity_id: String = get(r, 3)?;
    Ok(Delivery {
        id: get(r, 0)?,
        sink: get(r, 1)?,
        activity_key: get(r, 2)?,
        activity_id: crate::activity::ActivityId::parse(&activity_id)
            .ok_or_else(|| StoreError::Other(format!("stored activity id {activity_id:?}")))?,
        account: account(get(r, 4)?)?,
        call_key: get(r, 5)?,
        kind: get(r, 6)?,
        state: parse(get(r, 7)?)?,
        attempts: codec::attempt(get(r, 8)?),
        due_at: opt_time(get(r, 9)?)?,
        last_error: get(r, 10)?,
        last_status: codec::status(get(r, 11)?),
        created_at: time(get(r, 12)?)?,
        delivered_at: opt_time(get(r, 13)?)?,
    })
}

pub(super) fn gap_row(r: &Row) -> Result<Gap, StoreError> {
    Ok(Gap {
        id: get(r, 0)?,
        account: account(get(r, 1)?)?,
        from: time(get(r, 2)?)?,
        until: opt_time(get(r, 3)?)?,
        cause: parse::<GapCause>(get(r, 4)?)?,
        backfill: backfill(get(r, 5)?, get(r, 6)?, get(r, 7)?, get(r, 8)?)?,
        backfilled_at: opt_time(get(r, 9)?)?,
    })
}

pub(super) fn subscription_row(r: &Row) -> Result<SubscriptionRecord, StoreError> {
    Ok(SubscriptionRecord {
        account: account(get(r, 0)?)?,
        id: get(r, 1)?,
        status: get(r, 2)?,
        expires_at: time(get(r, 3)?)?,
        address: get(r, 4)?,
        verification_token: get::<Option<String>>(r, 5)?.map(Secret::new),
        event_filters: from_json(get(r, 6)?)?,
        disabled_filters: from_json(get(r, 7)?)?,
        created_at: time(get(r, 8)?)?,
        renewed_at: opt_time(get(r, 9)?)?,
        last_error: get(r, 10)?,
    })
}

pub(super) fn claimed_row(
    r: &Row,
    sink: &str,
    lease_until: i64,
) -> Result<ClaimedDelivery, StoreError> {
    Ok(ClaimedDelivery {
        id: get(r, 0)?,
        sink: sink.to_owned(),
        attempt: codec::attempt(get(r, 1)?),
        lease_until: time(lease_until)?,
        activity: ActivityColumns {
            id: get(r, 2)?,
            key: get(r, 3)?,
            kind: get(r, 4)?,
            account: get(r, 5)?,
            call_key: get(r, 6)?,
            source: get(r, 7)?,
            occurred_at: get(r, 8)?,
            payload: get(r, 9)?,
        }
        .into_activity()?,
    })
}

pub(super) fn rows<T>(
    rows: &[Row],
    map: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(map).collect()
}
