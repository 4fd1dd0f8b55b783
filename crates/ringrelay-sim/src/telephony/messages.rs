//! The message store (`API.md` §5.4): `GET …/extension/{id}/message-store` (voicemail
//! only in this simulator; other `messageType` values list nothing), `…/{messageId}`, and
//! `…/message-sync` (FSync/ISync; an expired token or too many changes answers `MSG-333`
//! "full synchronization is required").

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::query::{Paging, Params};
use super::render::{page, rc_time};
use super::sync::SyncToken;
use super::{MessageEntry, TelephonyState};
use crate::error::ApiError;

/// At most this many changes are returned by an ISync before MSG-333 is answered.
pub const SYNC_LIMIT: usize = 250;
const TYPES: &[&str] = &["Fax", "SMS", "VoiceMail", "Pager"];

fn mailbox<'a>(
    state: &'a TelephonyState,
    account_id: &str,
    extension_id: &'a str,
    now: DateTime<Utc>,
) -> Vec<&'a MessageEntry> {
    let mut v: Vec<&MessageEntry> = state
        .account(account_id)
        .map(|a| a.messages.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|m| m.extension_id == extension_id && m.creation_time <= now)
        .collect();
    v.sort_by(|a, b| b.creation_time.cmp(&a.creation_time).then(b.id.cmp(&a.id)));
    v
}

fn wants_voicemail(params: &Params) -> Result<bool, ApiError> {
    let types = params.all("messageType");
    if types.iter().any(|t| !TYPES.contains(t)) {
        return Err(ApiError::invalid_parameter("messageType"));
    }
    Ok(types.is_empty() || types.contains(&"VoiceMail"))
}

fn base(state: &TelephonyState, account_id: &str, extension_id: &str) -> String {
    format!(
        "{}/restapi/v1.0/account/{account_id}/extension/{extension_id}",
        state.base_url
    )
}

/// `GET …/message-store`: messages created in `[dateFrom, dateTo]` (default: the 24 h
/// before `dateTo`, which defaults to now), newest first, paged.
///
/// # Errors
/// `CMN-101` (400) naming a bad `messageType`, `dateFrom`, `dateTo`, `perPage` or `page`.
pub fn list(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account_id: &str,
    extension_id: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let voicemail = wants_voicemail(params)?;
    let date_to = params.date("dateTo")?.unwrap_or(now);
    let date_from = params
        .date("dateFrom")?
        .unwrap_or(date_to - Duration::hours(24));
    let paging = Paging::from_params(params)?;
    let records: Vec<Value> = mailbox(state, account_id, extension_id, now)
        .into_iter()
        .filter(|m| voicemail && m.creation_time >= date_from && m.creation_time <= date_to)
        .map(|m| m.record.clone())
        .collect();
    let url = format!("{}/message-store", base(state, account_id, extension_id));
    Ok(page(&url, params, paging, records))
}

/// `GET …/message-store/{messageId}`.
///
/// # Errors
/// `CMN-102` (404) when the mailbox has no such message.
pub fn get(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account_id: &str,
    extension_id: &str,
    message_id: &str,
) -> Result<Value, ApiError> {
    mailbox(state, account_id, extension_id, now)
        .into_iter()
        .find(|m| m.id.to_string() == message_id)
        .map(|m| m.record.clone())
        .ok_or_else(|| ApiError::not_found("messageId"))
}

/// `GET …/message-sync`. FSync returns the mailbox's messages since `dateFrom` (up to
/// `recordCount`); ISync returns the messages created or changed since the token's time
/// less 5 s (RingCentral overlaps windows by 5 s). Both return a fresh token.
///
/// # Errors
/// `CMN-101` (400) for bad parameters or a token that is not this mailbox's; `CMN-100`
/// for ISync without `syncToken`; `MSG-333` (400) "full synchronization is required"
/// for a token from before [`TelephonyState::reset_message_store`] or more than 250
/// changes since the token.
pub fn sync(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account_id: &str,
    extension_id: &str,
    params: &Params,
) -> Result<Value, ApiError> {
    let sync_type = params.choice("syncType", &["FSync", "ISync"], "FSync")?;
    let voicemail = wants_voicemail(params)?;
    let record_count = params.int("recordCount", 1, 1000)?;
    let epoch = state.account(account_id).map_or(0, |a| a.message_epoch);
    let scope = format!("/restapi/v1.0/account/{account_id}/extension/{extension_id}");
    let all = mailbox(state, account_id, extension_id, now)
        .into_iter()
        .filter(|_| voicemail);
    let chosen: Vec<&MessageEntry> = if sync_type == "FSync" {
        let date_from = params.date("dateFrom")?;
        let date_to = params.date("dateTo")?.unwrap_or(now);
        all.filter(|m| date_from.is_none_or(|f| m.creation_time >= f) && m.creation_time <= date_to)
            .take(usize::try_from(record_count.unwrap_or(1000)).unwrap_or(1000))
            .collect()
    } else {
        let raw = params.get("syncToken").ok_or_else(|| {
            ApiError::new(400, "CMN-100", "Parameter [syncToken] is required")
                .with_parameter("syncToken")
        })?;
        let token = SyncToken::decode(raw)
            .filter(|t| t.kind == "msg" && t.account_id == account_id && t.scope == scope)
            .ok_or_else(|| ApiError::invalid_parameter("syncToken"))?;
        let full_sync = || {
            ApiError::new(400, "MSG-333", "Full synchronization is required")
                .with_parameter("syncToken")
        };
        if token.epoch != epoch {
            return Err(full_sync());
        }
        let since = token.time - Duration::seconds(5);
        let changed: Vec<_> = all.filter(|m| m.last_modified > since).collect();
        if changed.len() > SYNC_LIMIT {
            return Err(full_sync());
        }
        changed
    };
    let token = SyncToken {
        kind: "msg".into(),
        account_id: account_id.to_owned(),
        scope: scope.clone(),
        epoch,
        time: now,
    };
    Ok(json!({
        "uri": format!("{}{scope}/message-sync?{}", state.base_url, serde_urlencoded::to_string(params.pairs()).unwrap_or_default()),
        "records": chosen.into_iter().map(|m| m.record.clone()).collect::<Vec<_>>(),
        "syncInfo": { "syncType": sync_type, "syncToken": token.encode(), "syncTime": rc_time(now) },
    }))
}
