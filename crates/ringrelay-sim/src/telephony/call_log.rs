//! The call log (`API.md` §5.1, §5.2): `GET …/call-log` (list with dateFrom/dateTo,
//! view, direction/type filters and paging), `…/call-log/{id}`, and `…/call-log-sync`
//! (FSync/ISync with sync tokens). A record is visible only once its lag has passed.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::query::{Paging, Params};
use super::render::{page, rc_time};
use super::sync::SyncToken;
use super::{CallLogEntry, Scope, TelephonyState};
use crate::directory::SimAccount;
use crate::error::ApiError;

/// The call-log-sync record limit (`recordCount` max; ISync change limit).
pub const SYNC_LIMIT: usize = 250;

fn render(
    state: &TelephonyState,
    account_id: &str,
    scope: &Scope,
    e: &CallLogEntry,
    view: &str,
) -> Value {
    let mut r = e.record.clone();
    if view != "Detailed"
        && let Some(obj) = r.as_object_mut()
    {
        obj.remove("legs");
    }
    let prefix = match scope {
        Scope::Account => Scope::Account.path(account_id),
        Scope::Extension(_) => Scope::Extension(e.extension_id.clone()).path(account_id),
    };
    r["uri"] = json!(format!(
        "{}{prefix}/call-log/{}?view={view}",
        state.base_url, e.id
    ));
    r
}

fn visible<'a>(
    state: &'a TelephonyState,
    account_id: &str,
    scope: &'a Scope,
    now: DateTime<Utc>,
) -> impl Iterator<Item = &'a CallLogEntry> {
    state
        .account(account_id)
        .map(|a| a.call_log.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(move |e| e.visible_at <= now && scope.includes(&e.extension_id))
}

fn newest_first(mut v: Vec<&CallLogEntry>) -> Vec<&CallLogEntry> {
    v.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    v
}

/// `GET …/call-log`.
///
/// # Errors
/// `CMN-101` (400) naming a bad `dateFrom`, `dateTo`, `view`, `perPage`, `page`,
/// `direction` or `type`.
pub fn list(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account: &SimAccount,
    scope: &Scope,
    params: &Params,
) -> Result<Value, ApiError> {
    let view = params.choice("view", &["Simple", "Detailed"], "Simple")?;
    let date_to = params.date("dateTo")?.unwrap_or(now);
    let date_from = params
        .date("dateFrom")?
        .unwrap_or(date_to - Duration::hours(24));
    let paging = Paging::from_params(params)?;
    let directions = checked(params, "direction", &["Inbound", "Outbound"])?;
    let types = checked(params, "type", &["Voice", "Fax"])?;
    let records: Vec<Value> = newest_first(
        visible(state, &account.id, scope, now)
            .filter(|e| e.start_time >= date_from && e.start_time <= date_to)
            .filter(|e| matches_any(&directions, &e.record["direction"]))
            .filter(|e| matches_any(&types, &e.record["type"]))
            .collect(),
    )
    .into_iter()
    .map(|e| render(state, &account.id, scope, e, view))
    .collect();
    let url = format!("{}{}/call-log", state.base_url, scope.path(&account.id));
    Ok(page(&url, params, paging, records))
}

fn checked<'a>(params: &'a Params, key: &str, allowed: &[&str]) -> Result<Vec<&'a str>, ApiError> {
    let values = params.all(key);
    if values.iter().all(|v| allowed.contains(v)) {
        Ok(values)
    } else {
        Err(ApiError::invalid_parameter(key))
    }
}

fn matches_any(wanted: &[&str], value: &Value) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| value.as_str() == Some(*w))
}

/// `GET …/call-log/{callRecordId}` (`view` honoured).
///
/// # Errors
/// `CMN-102` (404) when no visible record has that id in the scope; `CMN-101` for a bad
/// `view`.
pub fn get(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account: &SimAccount,
    scope: &Scope,
    record_id: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let view = params.choice("view", &["Simple", "Detailed"], "Simple")?;
    visible(state, &account.id, scope, now)
        .find(|e| e.id == record_id)
        .map(|e| render(state, &account.id, scope, e, view))
        .ok_or_else(|| ApiError::not_found("callRecordId"))
}

/// `GET …/call-log-sync`. FSync needs `recordCount` (1–250) and returns the newest
/// records since `dateFrom` (at most 30 days back); ISync returns the records that
/// appeared since the token's `syncTime`, newest first, plus older ones up to
/// `recordCount`. Both return a fresh token.
///
/// # Errors
/// - `CMN-101` (400) for a bad `syncType`, `recordCount`, `dateFrom`, `statusGroup`, or a
///   `syncToken` that is not a token of this account and endpoint;
/// - `CMN-100` (400) for FSync without `recordCount` or ISync without `syncToken`;
/// - `CLG-104` (400) "Parameter [syncToken] is invalid [Sync token expired, call log was
///   reset]" after [`TelephonyState::reset_call_log`];
/// - `CLG-104` (400) "… [max sync record number limit is exceeded]" when more than 250
///   records appeared since the token: the client must FSync again (`API.md` §5.2).
pub fn sync(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account: &SimAccount,
    scope: &Scope,
    params: &Params,
) -> Result<Value, ApiError> {
    let sync_type = params.choice("syncType", &["FSync", "ISync"], "FSync")?;
    let view = params.choice("view", &["Simple", "Detailed"], "Simple")?;
    let missed_only = match params.all("statusGroup").as_slice() {
        [] | ["All"] => false,
        ["Missed"] => true,
        _ => return Err(ApiError::invalid_parameter("statusGroup")),
    };
    let record_count = params.int("recordCount", 1, SYNC_LIMIT as u64)?;
    let epoch = state.account(&account.id).map_or(0, |a| a.call_log_epoch);
    let scope_path = scope.path(&account.id);
    let pool: Vec<&CallLogEntry> = newest_first(
        visible(state, &account.id, scope, now)
            .filter(|e| {
                !missed_only || matches!(e.record["result"].as_str(), Some("Missed" | "Voicemail"))
            })
            .collect(),
    );
    let chosen: Vec<&CallLogEntry> = if sync_type == "FSync" {
        let count = record_count.ok_or_else(|| {
            ApiError::new(400, "CMN-100", "Parameter [recordCount] is required")
                .with_parameter("recordCount")
        })?;
        let oldest = now - Duration::days(30);
        let date_from = params.date("dateFrom")?.unwrap_or(oldest);
        if date_from < oldest {
            return Err(ApiError::invalid_parameter("dateFrom"));
        }
        pool.into_iter()
            .filter(|e| e.start_time >= date_from)
            .take(usize::try_from(count).unwrap_or(SYNC_LIMIT))
            .collect()
    } else {
        let since = check_token(params, &account.id, &scope_path, epoch)?;
        let (new, old): (Vec<_>, Vec<_>) = pool.into_iter().partition(|e| e.visible_at > since);
        if new.len() > SYNC_LIMIT {
            return Err(ApiError::new(
                400,
                "CLG-104",
                "Parameter [syncToken] is invalid [max sync record number limit is exceeded]",
            )
            .with_parameter("syncToken"));
        }
        let extra = usize::try_from(record_count.unwrap_or(0))
            .unwrap_or(0)
            .saturating_sub(new.len());
        new.into_iter().chain(old.into_iter().take(extra)).collect()
    };
    let token = SyncToken {
        kind: "clg".into(),
        account_id: account.id.clone(),
        scope: scope_path.clone(),
        epoch,
        time: now,
    };
    Ok(json!({
        "uri": format!("{}{scope_path}/call-log-sync?{}", state.base_url, serde_urlencoded::to_string(params.pairs()).unwrap_or_default()),
        "records": chosen.into_iter().map(|e| render(state, &account.id, scope, e, view)).collect::<Vec<_>>(),
        "syncInfo": { "syncType": sync_type, "syncToken": token.encode(), "syncTime": rc_time(now) },
    }))
}

fn check_token(
    params: &Params,
    account_id: &str,
    scope: &str,
    epoch: u32,
) -> Result<DateTime<Utc>, ApiError> {
    let raw = params.get("syncToken").ok_or_else(|| {
        ApiError::new(400, "CMN-100", "Parameter [syncToken] is required")
            .with_parameter("syncToken")
    })?;
    let token = SyncToken::decode(raw)
        .filter(|t| t.kind == "clg" && t.account_id == account_id && t.scope == scope)
        .ok_or_else(|| ApiError::invalid_parameter("syncToken"))?;
    if token.epoch != epoch {
        return Err(ApiError::new(
            400,
            "CLG-104",
            "Parameter [syncToken] is invalid [Sync token expired, call log was reset]",
        )
        .with_parameter("syncToken"));
    }
    Ok(token.time)
}
