//! The platform side of the call generator: generated calls' notifications are scheduled
//! at their simulated times and delivered by `tick`, and the telephony `GET`s (call log,
//! call-log sync, message store, message sync) are routed to [`crate::telephony`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use rand::Rng as _;

use crate::delivery;
use crate::error::ApiError;
use crate::state::{DeliveryRecord, Pending, SimState};
use crate::telephony::{CallScenario, GeneratedCall, TimedEvent, generate_call_to, handle_get};

/// `GET /restapi/v1.0/account/…` for the telephony resources.
pub(crate) async fn telephony_get(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = state.authenticate(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )?;
    let account = &state.account(who.account);
    let now = state.now();
    if let Some(answer) =
        crate::extensions::handle_get(state.base_url(), account, uri.path(), uri.query())
    {
        return answer.map(Json);
    }
    let telephony = state.telephony();
    match handle_get(&telephony, now, account, uri.path(), uri.query()) {
        Some(result) => result.map(Json),
        None => Err(ApiError::new(404, "CMN-102", "Resource not found")),
    }
}

fn schedule(state: &SimState, account: usize, events: Vec<TimedEvent>) {
    let delay = chrono::Duration::from_std(state.config.delivery_delay).unwrap_or_default();
    let mut inner = state.lock();
    for e in events {
        inner.pending.push(Pending {
            at: e.at + delay,
            account,
            event: e.event,
            body: e.body,
        });
    }
}

/// Generates one call starting now on `account` and schedules its notifications.
pub(crate) fn start_call(
    state: &SimState,
    account: usize,
    scenario: CallScenario,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<GeneratedCall, ApiError> {
    start_call_to(state, account, scenario, start, None)
}

/// Like [`start_call`], to extension `target` (any extension of the scenario's kind when
/// `None`).
pub(crate) fn start_call_to(
    state: &SimState,
    account: usize,
    scenario: CallScenario,
    start: chrono::DateTime<chrono::Utc>,
    target: Option<&str>,
) -> Result<GeneratedCall, ApiError> {
    let acct = &state.account(account);
    let call = generate_call_to(&mut state.telephony(), acct, scenario, start, target)?;
    let mut events = if state.config.reorder_rate > 0.0 {
        call.disordered(rand::random(), state.config.reorder_rate, 0.0)
    } else {
        call.events.clone()
    };
    if let Some(vm) = &call.voicemail {
        events.push(vm.voicemail_event.clone());
        events.push(vm.message_store_event.clone());
    }
    schedule(state, account, events);
    Ok(call)
}

/// `n` calls of random scenarios on random accounts, starting a few seconds apart.
pub(crate) fn start_random_calls(state: &SimState, n: usize) -> Vec<GeneratedCall> {
    let mut rng = rand::rng();
    let mut at = state.now();
    let mut out = Vec::new();
    for _ in 0..n {
        let account = rng.random_range(0..state.config.accounts.len());
        let scenario = CallScenario::ALL[rng.random_range(0..CallScenario::ALL.len())];
        // An account without enough user extensions for a scenario just skips that call.
        if let Ok(call) = start_call(state, account, scenario, at) {
            out.push(call);
        }
        at += chrono::Duration::milliseconds(rng.random_range(1000..10_000));
    }
    out
}

/// Delivers every scheduled notification that is due, in time order.
pub(crate) async fn deliver_due(state: &Arc<SimState>) -> Vec<DeliveryRecord> {
    let now = state.now();
    let due: Vec<Pending> = {
        let mut inner = state.lock();
        let (mut due, later): (Vec<_>, Vec<_>) = inner.pending.drain(..).partition(|p| p.at <= now);
        inner.pending = later;
        // Stable: events at the same instant keep their (possibly disordered) order.
        due.sort_by_key(|p| p.at);
        due
    };
    let mut out = Vec::new();
    for p in due {
        out.extend(delivery::deliver(state, p.account, &p.event, &p.body).await);
    }
    out
}

/// The simulated time of the last scheduled notification, if any.
pub(crate) fn last_pending(state: &SimState) -> Option<chrono::DateTime<chrono::Utc>> {
    state.lock().pending.iter().map(|p| p.at).max()
}
