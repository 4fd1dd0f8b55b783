//! Webhook delivery (fact sheet §3.2–3.4): notification envelopes POSTed to matching
//! subscriptions with RingCentral's headers, blacklisting after sustained failure, no
//! redelivery, the drop and duplicate knobs, renewal reminders and expiry.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::filters::accepts;
use crate::state::{BlacklistedData, DeliveryRecord, DropRule, SimState, rc_time};
use crate::subscriptions::reap_expired;

/// Where one notification goes.
#[derive(Debug, Clone)]
struct Target {
    subscription_id: String,
    address: String,
    verification_token: Option<String>,
    owner_id: String,
}

fn target(state: &SimState, s: &crate::state::Subscription) -> Target {
    Target {
        subscription_id: s.id.clone(),
        address: s.address.clone(),
        verification_token: s.verification_token.clone(),
        owner_id: state.config.accounts[s.account].owner().id.clone(),
    }
}

fn envelope(t: &Target, event: &str, body: &Value, now: DateTime<Utc>) -> Value {
    json!({
        "uuid": format!("{}", rand::random::<u64>() >> 1),
        "event": event,
        "timestamp": rc_time(now),
        "subscriptionId": t.subscription_id,
        "ownerId": t.owner_id,
        "body": body,
    })
}

/// Delivers one notification with event path `event` to every active subscription of
/// `account` whose filters cover it, and returns what happened.
pub(crate) async fn deliver(
    state: &Arc<SimState>,
    account: usize,
    event: &str,
    body: &Value,
) -> Vec<DeliveryRecord> {
    reap_expired(state);
    let targets: Vec<Target> = state
        .lock()
        .subscriptions
        .iter()
        .filter(|s| s.account == account && s.blacklisted.is_none())
        .filter(|s| s.filters.iter().any(|f| accepts(f, event, body)))
        .map(|s| target(state, s))
        .collect();
    let mut out = Vec::new();
    for t in targets {
        out.push(send(state, &t, event, body).await);
        if state.config.duplicate_rate > 0.0 && rand::random::<f64>() < state.config.duplicate_rate
        {
            out.push(send(state, &t, event, body).await);
        }
    }
    out
}

fn take_drop(state: &SimState, now: DateTime<Utc>) -> bool {
    let mut inner = state.lock();
    match inner.drop {
        Some(DropRule::Count(n)) if n > 0 => {
            inner.drop = (n > 1).then_some(DropRule::Count(n - 1));
            true
        }
        Some(DropRule::Until(until)) if now < until => true,
        _ => {
            inner.drop = None;
            false
        }
    }
}

async fn send(state: &Arc<SimState>, t: &Target, event: &str, body: &Value) -> DeliveryRecord {
    let now = state.now();
    let env = envelope(t, event, body, now);
    let mut record = DeliveryRecord {
        at: now,
        subscription_id: t.subscription_id.clone(),
        address: t.address.clone(),
        event: event.to_owned(),
        uuid: env["uuid"].as_str().unwrap_or_default().to_owned(),
        status: None,
        error: None,
        dropped: false,
        envelope: env.clone(),
    };
    if take_drop(state, now) {
        record.dropped = true;
        state.lock().deliveries.push(record.clone());
        return record;
    }
    let mut request = state
        .http
        .post(&t.address)
        .header("Content-Type", "application/json; charset=UTF-8")
        .header("Accept", "application/json")
        .header("User-Agent", "RingCentral-Webhook/8.3")
        .timeout(state.config.delivery_timeout)
        .body(env.to_string());
    if let Some(token) = &t.verification_token {
        request = request.header("Verification-Token", token);
    }
    match request.send().await {
        Ok(response) => record.status = Some(response.status().as_u16()),
        Err(e) if e.is_timeout() => record.error = Some("Read timed out".to_owned()),
        Err(e) => record.error = Some(format!("Connection failed: {e}")),
    }
    record_outcome(state, &record);
    record
}

/// Tracks sustained failure: a subscription whose deliveries keep failing for
/// `blacklist_after` of simulated time becomes Blacklisted and receives nothing more.
fn record_outcome(state: &SimState, record: &DeliveryRecord) {
    let now = record.at;
    let limit =
        chrono::Duration::from_std(state.config.blacklist_after).unwrap_or(chrono::Duration::MAX);
    let mut inner = state.lock();
    inner.deliveries.push(record.clone());
    let Some(sub) = inner
        .subscriptions
        .iter_mut()
        .find(|s| s.id == record.subscription_id)
    else {
        return;
    };
    if record.succeeded() {
        sub.failing_since = None;
        return;
    }
    let since = *sub.failing_since.get_or_insert(now);
    if now - since >= limit && sub.blacklisted.is_none() {
        let reason = match (record.status, &record.error) {
            (Some(code), _) => format!(
                "Webhook responses with code: [{code}], reason: [{}]",
                axum::http::StatusCode::from_u16(code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Unknown")
            ),
            (None, Some(e)) => format!("I/O operation is failed. Details: [{e}]"),
            (None, None) => "I/O operation is failed".to_owned(),
        };
        sub.blacklisted = Some(BlacklistedData {
            blacklisted_at: rc_time(now),
            reason,
        });
    }
}

/// Forces a subscription to Blacklisted; false if it does not exist.
pub(crate) fn blacklist(state: &SimState, id: &str, reason: &str) -> bool {
    let now = state.now();
    let mut inner = state.lock();
    match inner.subscriptions.iter_mut().find(|s| s.id == id) {
        Some(s) => {
            s.blacklisted = Some(BlacklistedData {
                blacklisted_at: rc_time(now),
                reason: reason.to_owned(),
            });
            true
        }
        None => false,
    }
}

/// Runs the due time-driven work: scheduled call notifications are delivered, expired
/// subscriptions disappear and due renewal reminders are sent (event = the filter
/// verbatim, body `{"expiresIn": remaining}`). Returns the deliveries made.
pub(crate) async fn tick(state: &Arc<SimState>) -> Vec<DeliveryRecord> {
    let mut out = crate::calls::deliver_due(state).await;
    reap_expired(state);
    let now = state.now();
    let mut due = Vec::new();
    {
        let mut inner = state.lock();
        for s in &mut inner.subscriptions {
            if s.blacklisted.is_some() {
                continue;
            }
            let remaining = (s.expires_at - now).num_seconds();
            let Some(r) = &mut s.reminder else { continue };
            let interval_passed = r
                .last_sent
                .is_none_or(|last| (now - last).num_seconds() >= r.interval);
            if remaining <= r.threshold && interval_passed {
                r.last_sent = Some(now);
                due.push((r.filter.clone(), remaining, s.id.clone()));
            }
        }
    }
    for (filter, remaining, id) in due {
        let t = {
            let inner = state.lock();
            inner
                .subscriptions
                .iter()
                .find(|s| s.id == id)
                .map(|s| target(state, s))
        };
        if let Some(t) = t {
            out.push(send(state, &t, &filter, &json!({ "expiresIn": remaining })).await);
        }
    }
    out
}
