//! The control API under `/sim/…`, so the standalone simulator is scriptable by hand or
//! from another process (see `docs/simulator.md`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::directory::{ExtensionKind, ExtensionStatus, SimPermissions};
use crate::error::ApiError;
use crate::state::{DropRule, Fault, SimState, rc_time};
use crate::telephony::CallScenario;
use crate::{delivery, extensions};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Calls {
    account_id: Option<String>,
    scenario: Option<CallScenario>,
    random: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Advance {
    seconds: u64,
}

#[derive(Debug, Deserialize)]
struct Drop {
    count: Option<u32>,
    seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inject {
    account_id: Option<String>,
    event: String,
    body: Value,
}

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/sim/clock", get(clock))
        .route("/sim/advance", post(advance))
        .route("/sim/tick", post(tick))
        .route("/sim/faults", post(add_fault).delete(clear_faults))
        .route("/sim/subscriptions", get(subscriptions))
        .route("/sim/subscriptions/{id}/blacklist", post(blacklist))
        .route("/sim/drop-deliveries", post(drop_deliveries))
        .route("/sim/inject", post(inject))
        .route("/sim/requests", get(requests))
        .route("/sim/deliveries", get(deliveries))
        .route("/sim/accounts", get(accounts))
        .route("/sim/accounts/{account}/extensions", post(add_extension))
        .route(
            "/sim/accounts/{account}/extensions/{extension}",
            axum::routing::patch(change_extension).delete(remove_extension),
        )
        .route(
            "/sim/accounts/{account}/permissions",
            axum::routing::put(set_permissions),
        )
        .route("/sim/calls", post(calls))
        .route("/sim/complete-calls", post(complete_calls))
}

async fn clock(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "now": rc_time(state.now()), "offsetSeconds": state.clock.offset().as_secs() }))
}

async fn advance(State(state): State<Arc<SimState>>, Json(a): Json<Advance>) -> Json<Value> {
    state
        .clock
        .advance(std::time::Duration::from_secs(a.seconds));
    let sent = delivery::tick(&state).await;
    Json(json!({ "now": rc_time(state.now()), "remindersSent": sent.len() }))
}

async fn tick(State(state): State<Arc<SimState>>) -> Json<Value> {
    let sent = delivery::tick(&state).await;
    Json(json!({ "now": rc_time(state.now()), "remindersSent": sent.len() }))
}

async fn add_fault(State(state): State<Arc<SimState>>, Json(f): Json<Fault>) -> StatusCode {
    state.lock().faults.push(f);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn subscriptions(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "records": crate::subscriptions::snapshot(&state, "") }))
}

async fn blacklist(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    if delivery::blacklist(&state, &id, "Blacklisted by the simulator's control API") {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::not_found("subscriptionId").into_response()
    }
}

async fn drop_deliveries(State(state): State<Arc<SimState>>, Json(d): Json<Drop>) -> Response {
    let rule = match (d.count, d.seconds) {
        (Some(n), None) => DropRule::Count(n),
        (None, Some(s)) => DropRule::Until(
            state.now() + chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000)),
        ),
        _ => {
            return ApiError::new(400, "CMN-101", "Give exactly one of count or seconds")
                .into_response();
        }
    };
    state.lock().drop = Some(rule);
    StatusCode::NO_CONTENT.into_response()
}

async fn inject(State(state): State<Arc<SimState>>, Json(i): Json<Inject>) -> Response {
    let account = match &i.account_id {
        None => Some(0),
        Some(id) => state.config.accounts.iter().position(|a| &a.id == id),
    };
    let Some(account) = account else {
        return ApiError::not_found("accountId").into_response();
    };
    let sent = delivery::deliver(&state, account, &i.event, &i.body).await;
    Json(json!({ "deliveries": sent })).into_response()
}

async fn requests(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "records": state.lock().requests }))
}

async fn deliveries(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({ "records": state.lock().deliveries }))
}

async fn accounts(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({
        "clientId": state.config.client_id,
        "clientSecret": state.config.client_secret,
        "accounts": state.accounts(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewExtension {
    kind: Option<ExtensionKind>,
    name: Option<String>,
    status: Option<ExtensionStatus>,
}

#[derive(Debug, Deserialize)]
struct ChangeExtension {
    status: ExtensionStatus,
}

async fn add_extension(
    State(state): State<Arc<SimState>>,
    Path(account): Path<String>,
    Json(n): Json<NewExtension>,
) -> Response {
    let Ok(index) = extensions::account_index(&state, &account) else {
        return ApiError::not_found("accountId").into_response();
    };
    let kind = n.kind.unwrap_or(ExtensionKind::User);
    let mut ext = state
        .account(index)
        .next_extension(kind, n.name.as_deref().unwrap_or("New Extension"));
    ext.status = n.status.unwrap_or_default();
    match extensions::add(&state, &account, ext).await {
        Ok(ext) => (StatusCode::CREATED, Json(json!(ext))).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn change_extension(
    State(state): State<Arc<SimState>>,
    Path((account, extension)): Path<(String, String)>,
    Json(c): Json<ChangeExtension>,
) -> Response {
    match extensions::set_status(&state, &account, &extension, c.status).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn remove_extension(
    State(state): State<Arc<SimState>>,
    Path((account, extension)): Path<(String, String)>,
) -> Response {
    match extensions::remove(&state, &account, &extension).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn set_permissions(
    State(state): State<Arc<SimState>>,
    Path(account): Path<String>,
    Json(p): Json<SimPermissions>,
) -> Response {
    match extensions::set_permissions(&state, &account, p) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn calls(State(state): State<Arc<SimState>>, Json(c): Json<Calls>) -> Response {
    let started = match (c.random, c.scenario) {
        (Some(n), None) => crate::calls::start_random_calls(&state, n.min(10_000)),
        (None, Some(scenario)) => {
            let account = match &c.account_id {
                None => Some(0),
                Some(id) => state.config.accounts.iter().position(|a| &a.id == id),
            };
            let Some(account) = account else {
                return ApiError::not_found("accountId").into_response();
            };
            match crate::calls::start_call(&state, account, scenario, state.now()) {
                Ok(call) => vec![call],
                Err(e) => return e.into_response(),
            }
        }
        _ => {
            return ApiError::new(400, "CMN-101", "Give exactly one of scenario or random")
                .into_response();
        }
    };
    let sent = delivery::tick(&state).await;
    let sessions: Vec<_> = started
        .iter()
        .map(|c| {
            json!({
                "telephonySessionId": c.telephony_session_id,
                "scenario": c.scenario,
                "endedAt": rc_time(c.ended_at),
                "callLogVisibleAt": rc_time(c.call_log_visible_at),
            })
        })
        .collect();
    Json(json!({ "calls": sessions, "deliveriesNow": sent.len() })).into_response()
}

async fn complete_calls(State(state): State<Arc<SimState>>) -> Json<Value> {
    let now = state.now();
    if let Some(last) = crate::calls::last_pending(&state)
        && let Ok(gap) = (last - now).to_std()
    {
        state
            .clock
            .advance(gap + std::time::Duration::from_millis(1));
    }
    let sent = delivery::tick(&state).await;
    Json(json!({ "now": rc_time(state.now()), "deliveries": sent.len() }))
}
