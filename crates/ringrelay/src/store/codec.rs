//! Conversions shared by both backends: times are stored as microseconds since the Unix
//! epoch (`BIGINT`), enums and ids as text, JSON as text.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::account::AccountId;
use crate::activity::{Activity, ActivityId, ActivityKind, ActivitySource};

/// A time as stored (microseconds; finer precision is dropped).
pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time back.
pub(crate) fn time(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Other(format!("stored time {v} is out of range")))
}

/// An optional stored time back.
pub(crate) fn opt_time(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(time).transpose()
}

/// A stored account slug back.
pub(crate) fn account(s: &str) -> Result<AccountId, StoreError> {
    AccountId::parse(s).map_err(|e| StoreError::Other(format!("stored account: {e}")))
}

/// A stored enum value back, with `FromStr`.
pub(crate) fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(StoreError::Other)
}

/// JSON text to a value.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("stored JSON: {e}")))
}

/// A value to JSON text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(format!("encoding JSON: {e}")))
}

/// An HTTP status as stored.
pub(crate) fn status(v: Option<i64>) -> Option<u16> {
    v.and_then(|s| u16::try_from(s).ok())
}

/// A stored count back (never negative).
pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A stored attempt number back.
pub(crate) fn attempt(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// An SQL `LIMIT` from a caller's count.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The stored columns of an activity.
pub(crate) struct ActivityColumns {
    pub id: String,
    pub key: String,
    pub kind: String,
    pub account: String,
    pub call_key: String,
    pub source: String,
    pub occurred_at: i64,
    pub payload: String,
}

impl ActivityColumns {
    /// Rebuilds the activity.
    pub(crate) fn into_activity(self) -> Result<Activity, StoreError> {
        let id = ActivityId::parse(&self.id)
            .ok_or_else(|| StoreError::Other(format!("stored activity id {:?}", self.id)))?;
        let kind = ActivityKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Other(format!("stored activity type {:?}", self.kind)))?;
        let source = match self.source.as_str() {
            "webhook" => ActivitySource::Webhook,
            "backfill" => ActivitySource::Backfill,
            other => return Err(StoreError::Other(format!("stored source {other:?}"))),
        };
        Ok(Activity {
            id,
            key: self.key,
            kind,
            account: account(&self.account)?,
            call_key: self.call_key,
            source,
            occurred_at: time(self.occurred_at)?,
            payload: from_json(&self.payload)?,
        })
    }
}

/// The backfill columns (state, records, activities, error) of a gap back.
pub(crate) fn backfill(
    state: &str,
    records: i64,
    activities: i64,
    error: Option<String>,
) -> Result<super::BackfillState, StoreError> {
    use super::BackfillState;
    match state {
        "pending" => Ok(BackfillState::Pending),
        "done" => Ok(BackfillState::Done {
            records: count(records),
            activities: count(activities),
        }),
        "failed" => Ok(BackfillState::Failed {
            error: error.unwrap_or_default(),
        }),
        other => Err(StoreError::Other(format!(
            "stored backfill state {other:?}"
        ))),
    }
}

/// A backfill state as its columns (state, records, activities, error).
pub(crate) fn backfill_columns(
    s: &super::BackfillState,
) -> (&'static str, i64, i64, Option<String>) {
    use super::BackfillState;
    match s {
        BackfillState::Pending => ("pending", 0, 0, None),
        BackfillState::Done {
            records,
            activities,
        } => (
            "done",
            i64::try_from(*records).unwrap_or(i64::MAX),
            i64::try_from(*activities).unwrap_or(i64::MAX),
            None,
        ),
        BackfillState::Failed { error } => ("failed", 0, 0, Some(error.clone())),
    }
}

/// The cursor table's account column: `""` for a global cursor.
pub(crate) fn cursor_account(a: Option<&AccountId>) -> String {
    a.map(|a| a.as_str().to_owned()).unwrap_or_default()
}

/// The delivery state and columns a completed attempt writes:
/// (state, due_at, last_error, last_status, delivered_at).
pub(crate) fn completion(
    result: &super::DeliveryResult,
    now: DateTime<Utc>,
) -> (
    super::DeliveryState,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
) {
    use super::{DeliveryResult, DeliveryState};
    match result {
        DeliveryResult::Delivered => (DeliveryState::Delivered, None, None, None, Some(us(now))),
        DeliveryResult::RetryAt { at, error, status } => (
            DeliveryState::Failed,
            Some(us(*at)),
            Some(error.clone()),
            status.map(i64::from),
            None,
        ),
        DeliveryResult::Dead { error, status } => (
            DeliveryState::Dead,
            None,
            Some(error.clone()),
            status.map(i64::from),
            None,
        ),
    }
}
