//! The Subscriptions API (`/restapi/v1.0/subscription…`, fact sheet §2): create with the
//! validation handshake, list, read, update, renew, delete; `SubscriptionInfo` as the spec
//! shapes it; the per-user limit; expiry.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::CallLogFilter;
use crate::error::ApiError;
use crate::filters::{FilterOutcome, classify};
use crate::handshake::handshake;
use crate::state::{
    BlacklistedData, Caller, DisabledFilter, Reminder, SimState, Subscription, rc_time,
};

/// Default lifetime when `expiresIn` is omitted: 7 days.
pub const DEFAULT_EXPIRES_IN: i64 = 604_800;
/// The WebHook maximum; larger values are capped (as the 2020 observation showed).
pub const MAX_EXPIRES_IN: i64 = 315_360_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    event_filters: Option<Vec<String>>,
    delivery_mode: Option<DeliveryModeRequest>,
    expires_in: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryModeRequest {
    transport_type: Option<String>,
    address: Option<String>,
    verification_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    event_filters: Option<Vec<String>>,
    expires_in: Option<i64>,
}

/// The wire shape of `SubscriptionInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionInfo {
    uri: String,
    id: String,
    event_filters: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disabled_filters: Vec<DisabledFilter>,
    expiration_time: String,
    expires_in: i64,
    status: &'static str,
    creation_time: String,
    delivery_mode: DeliveryModeInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    blacklisted_data: Option<BlacklistedData>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryModeInfo {
    transport_type: &'static str,
    address: String,
    encryption: bool,
}

fn info(base: &str, s: &Subscription, now: DateTime<Utc>) -> serde_json::Value {
    let mut filters = s.filters.clone();
    if let Some(r) = &s.reminder {
        filters.push(r.filter.clone());
    }
    let value = SubscriptionInfo {
        uri: format!("{base}/restapi/v1.0/subscription/{}", s.id),
        id: s.id.clone(),
        event_filters: filters,
        disabled_filters: s.disabled.clone(),
        expiration_time: rc_time(s.expires_at),
        expires_in: (s.expires_at - now).num_seconds().max(0),
        status: if s.blacklisted.is_some() {
            "Blacklisted"
        } else {
            "Active"
        },
        creation_time: rc_time(s.created),
        delivery_mode: DeliveryModeInfo {
            transport_type: "WebHook",
            address: s.address.clone(),
            encryption: false,
        },
        blacklisted_data: s.blacklisted.clone(),
    };
    serde_json::to_value(value).unwrap_or_default()
}

fn base_url(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(String::new, |h| format!("http://{h}"))
}

fn caller(state: &SimState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    state.authenticate(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "CMN-103", format!("JSON can't be parsed: {e}")))
}

fn missing(name: &str) -> ApiError {
    ApiError::new(400, "CMN-100", format!("Parameter [{name}] is missing")).with_parameter(name)
}

fn lifetime(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_EXPIRES_IN),
        Some(n) if n < 1 => Err(ApiError::invalid_parameter("expiresIn")),
        Some(n) => Ok(n.min(MAX_EXPIRES_IN)),
    }
}

struct Filters {
    active: Vec<String>,
    disabled: Vec<DisabledFilter>,
    reminder: Option<Reminder>,
}

fn classify_all(
    state: &SimState,
    account: usize,
    requested: &[String],
    lifetime_secs: i64,
) -> Result<Filters, ApiError> {
    let acct = &state.account(account);
    let call_log_disabled = state.config.call_log_filter == CallLogFilter::Disabled;
    let mut out = Filters {
        active: Vec::new(),
        disabled: Vec::new(),
        reminder: None,
    };
    if requested.is_empty() {
        return Err(missing("eventFilters"));
    }
    if let Some(max) = state.config.max_filters_per_subscription
        && requested.len() > max
    {
        return Err(too_many_filters(requested.len(), max));
    }
    for f in requested {
        match classify(f, acct, call_log_disabled)? {
            FilterOutcome::Active(x) => out.active.push(x),
            FilterOutcome::Disabled(filter, reason) => out.disabled.push(DisabledFilter {
                message: format!("Event filter [{filter}] is not supported"),
                filter,
                reason,
            }),
            FilterOutcome::Reminder {
                filter,
                threshold,
                interval,
            } => {
                // threshold ≤ ½ TTL and interval ≤ ½ threshold (guide), else not applied.
                if threshold * 2 > lifetime_secs || interval * 2 > threshold {
                    out.disabled.push(DisabledFilter {
                        message: "threshold must be at most half the subscription lifetime \
                                  and interval at most half the threshold"
                            .to_owned(),
                        filter,
                        reason: "InvalidParameters".to_owned(),
                    });
                } else {
                    out.reminder = Some(Reminder {
                        filter,
                        threshold,
                        interval,
                        last_sent: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Drops expired subscriptions (RingCentral deletes them).
pub(crate) fn reap_expired(state: &SimState) {
    let now = state.now();
    state.lock().subscriptions.retain(|s| s.expires_at > now);
}

fn live_count(state: &SimState, account: usize) -> usize {
    reap_expired(state);
    state
        .lock()
        .subscriptions
        .iter()
        .filter(|s| s.account == account)
        .count()
}

/// The `max_filters_per_subscription` quirk: RingCentral's generic invalid-parameter
/// error (400 CMN-101), which it is seen answering for unacceptable `eventFilters`
/// ("Parameter [eventFilters] value is invalid", ringcentral-js issue #40); not SUB-508,
/// which names filters that are invalid on their own.
fn too_many_filters(count: usize, max: usize) -> ApiError {
    ApiError::new(
        400,
        "CMN-101",
        format!("Parameter [eventFilters] value is invalid: {count} filters, at most {max}"),
    )
    .with_parameter("eventFilters")
}

fn limit_exceeded() -> ApiError {
    ApiError::new(403, "SUB-505", "Subscriptions limit exceeded")
}

/// `POST /restapi/v1.0/subscription`.
pub(crate) async fn create(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let req: CreateRequest = parse_json(&body)?;
    let mode = req.delivery_mode.ok_or_else(|| missing("deliveryMode"))?;
    match mode.transport_type.as_deref() {
        Some("WebHook") => {}
        None => return Err(missing("deliveryMode.transportType")),
        Some(_) => return Err(ApiError::invalid_parameter("deliveryMode.transportType")),
    }
    let address = mode
        .address
        .ok_or_else(|| missing("deliveryMode.address"))?;
    let parsed = url::Url::parse(&address)
        .map_err(|_| ApiError::invalid_parameter("deliveryMode.address"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::invalid_parameter("deliveryMode.address"));
    }
    let secs = lifetime(req.expires_in)?;
    let filters = classify_all(
        &state,
        who.account,
        req.event_filters.as_deref().unwrap_or_default(),
        secs,
    )?;
    if live_count(&state, who.account) >= state.config.max_subscriptions {
        return Err(limit_exceeded());
    }
    handshake(&state, &address).await?;
    let now = state.now();
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        account: who.account,
        filters: filters.active,
        disabled: filters.disabled,
        address,
        verification_token: mode.verification_token,
        created: now,
        expires_at: now + chrono::Duration::seconds(secs),
        lifetime_secs: secs,
        blacklisted: None,
        failing_since: None,
        reminder: filters.reminder,
    };
    let body = info(&base_url(&headers), &sub, now);
    let mut inner = state.lock();
    // Re-check: another create may have finished during the handshake.
    if inner
        .subscriptions
        .iter()
        .filter(|s| s.account == who.account)
        .count()
        >= state.config.max_subscriptions
    {
        return Err(limit_exceeded());
    }
    inner.subscriptions.push(sub);
    Ok(Json(body))
}

/// `GET /restapi/v1.0/subscription`.
pub(crate) async fn list(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    reap_expired(&state);
    let base = base_url(&headers);
    let now = state.now();
    let records: Vec<_> = state
        .lock()
        .subscriptions
        .iter()
        .filter(|s| s.account == who.account)
        .map(|s| info(&base, s, now))
        .collect();
    Ok(Json(serde_json::json!({
        "uri": format!("{base}/restapi/v1.0/subscription"),
        "records": records,
    })))
}

fn with_subscription<T>(
    state: &SimState,
    who: &Caller,
    id: &str,
    f: impl FnOnce(&mut Subscription) -> T,
) -> Result<T, ApiError> {
    reap_expired(state);
    let mut inner = state.lock();
    let sub = inner
        .subscriptions
        .iter_mut()
        .find(|s| s.id == id && s.account == who.account)
        .ok_or_else(|| ApiError::not_found("subscriptionId"))?;
    Ok(f(sub))
}

/// `GET /restapi/v1.0/subscription/{id}`.
pub(crate) async fn read(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let now = state.now();
    let base = base_url(&headers);
    with_subscription(&state, &who, &id, |s| Json(info(&base, s, now)))
}

/// `POST /restapi/v1.0/subscription/{id}/renew`: keeps the subscription's own lifetime.
pub(crate) async fn renew(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let now = state.now();
    let base = base_url(&headers);
    with_subscription(&state, &who, &id, |s| {
        s.expires_at = now + chrono::Duration::seconds(s.lifetime_secs);
        if let Some(r) = &mut s.reminder {
            r.last_sent = None;
        }
        Json(info(&base, s, now))
    })
}

/// `PUT /restapi/v1.0/subscription/{id}`: an empty body renews with the default
/// lifetime; otherwise `eventFilters` is required and `expiresIn` optional (default
/// lifetime when absent); `deliveryMode` and other fields are ignored.
pub(crate) async fn update(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let empty = body.iter().all(u8::is_ascii_whitespace);
    let req: UpdateRequest = if empty {
        UpdateRequest {
            event_filters: None,
            expires_in: None,
        }
    } else {
        parse_json(&body)?
    };
    let secs = lifetime(req.expires_in)?;
    let filters = match (&req.event_filters, empty) {
        (Some(f), _) => Some(classify_all(&state, who.account, f, secs)?),
        (None, true) => None,
        (None, false) => return Err(missing("eventFilters")),
    };
    let now = state.now();
    let base = base_url(&headers);
    with_subscription(&state, &who, &id, |s| {
        s.lifetime_secs = secs;
        s.expires_at = now + chrono::Duration::seconds(secs);
        if let Some(f) = filters {
            s.filters = f.active;
            s.disabled = f.disabled;
            s.reminder = f.reminder;
        }
        Json(info(&base, s, now))
    })
}

/// `DELETE /restapi/v1.0/subscription/{id}`: 204.
pub(crate) async fn delete(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    with_subscription(&state, &who, &id, |_| ())?;
    state
        .lock()
        .subscriptions
        .retain(|s| !(s.id == id && s.account == who.account));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A snapshot of every live subscription as `SubscriptionInfo` JSON (for the handle).
pub(crate) fn snapshot(state: &SimState, base: &str) -> Vec<serde_json::Value> {
    reap_expired(state);
    let now = state.now();
    state
        .lock()
        .subscriptions
        .iter()
        .map(|s| info(base, s, now))
        .collect()
}
