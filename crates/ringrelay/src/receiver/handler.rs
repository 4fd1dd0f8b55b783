//! The webhook handler: the order of checks is the order of the status codes' precedence.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::envelope::{self, EnvelopeError};
use super::{ReceiverState, StrayReport, TokenCheck};
use crate::account::AccountId;
use crate::store::{AppendOutcome, NewNotification, StoreError};

const VALIDATION_TOKEN: &str = "validation-token";
const VERIFICATION_TOKEN: &str = "verification-token";

fn count(account: &str, outcome: &'static str) {
    metrics::counter!("ringrelay_webhooks_total", "account" => account.to_owned(), "outcome" => outcome)
        .increment(1);
}

fn refuse(
    status: StatusCode,
    account: &str,
    outcome: &'static str,
    reason: String,
    peer: Option<SocketAddr>,
) -> Response {
    count(account, outcome);
    tracing::warn!(
        account,
        outcome,
        status = status.as_u16(),
        peer = peer.map(|p| p.to_string()),
        %reason,
        "webhook refused"
    );
    (status, Json(json!({ "error": reason }))).into_response()
}

fn json_ok(extra: Option<(&'static str, HeaderValue)>) -> Response {
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some((name, value)) = extra {
        resp.headers_mut().insert(name, value);
    }
    resp
}

/// `POST /webhooks/ringcentral/{account}`.
///
/// It takes the request whole (the `HeaderMap` and `Extensions` extractors would copy
/// them) and reads the body only once the account, token and content type are accepted.
pub(super) async fn webhook(
    State(state): State<ReceiverState>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| *p);
    let headers = std::mem::take(&mut parts.headers);
    let known = AccountId::parse(&account)
        .ok()
        .filter(|a| state.accounts.contains(a));
    let Some(account_id) = known else {
        return refuse(
            StatusCode::NOT_FOUND,
            "unknown",
            "unknown_account",
            format!("no account {account:?} is configured here"),
            peer,
        );
    };
    let account = account_id.as_str();

    // The validation handshake: echo the token, store nothing (API.md §3.1).
    if let Some(token) = headers.get(VALIDATION_TOKEN) {
        count(account, "handshake");
        tracing::info!(account, "answered the validation handshake");
        return json_ok(Some((VALIDATION_TOKEN, token.clone())));
    }

    let now = Utc::now();
    let presented = headers
        .get(VERIFICATION_TOKEN)
        .and_then(|v| v.to_str().ok());
    let mut check = state.tokens.check(&account_id, presented, now);
    if matches!(check, TokenCheck::Wrong | TokenCheck::NotConfigured)
        && state.tokens.reload_due(&account_id)
    {
        // Another replica's keeper may have created the subscription: re-read it.
        relearn(&state, &account_id, now).await;
        check = state.tokens.check(&account_id, presented, now);
    }
    match check {
        TokenCheck::Valid => {}
        TokenCheck::Missing => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                account,
                "token_missing",
                "missing Verification-Token header".to_owned(),
                peer,
            );
        }
        TokenCheck::Wrong => {
            return refuse(
                StatusCode::FORBIDDEN,
                account,
                "token_wrong",
                "Verification-Token does not match this account's subscription".to_owned(),
                peer,
            );
        }
        TokenCheck::NotConfigured => {
            return refuse(
                StatusCode::FORBIDDEN,
                account,
                "no_subscription",
                "no subscription is registered for this account yet".to_owned(),
                peer,
            );
        }
    }

    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            account,
            "content_type",
            "Content-Type must be application/json".to_owned(),
            peer,
        );
    }

    // The body limit (`DefaultBodyLimit`) travels in the request's extensions.
    let body: Result<Bytes, BytesRejection> =
        Bytes::from_request(Request::from_parts(parts, body), &()).await;
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                account,
                "too_large",
                format!(
                    "body larger than {} bytes (server.max_body_bytes)",
                    state.limits.max_body_bytes
                ),
                peer,
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                account,
                "unreadable",
                format!("cannot read the body: {}", e.body_text()),
                peer,
            );
        }
    };
    let envelope = match envelope::parse(&body, state.limits.max_json_depth) {
        Ok(e) => e,
        Err(e) => {
            let outcome = match e {
                EnvelopeError::TooDeep(_) => "too_deep",
                EnvelopeError::Malformed(_) => "malformed",
                EnvelopeError::Missing(_) => "incomplete",
            };
            return refuse(
                StatusCode::BAD_REQUEST,
                account,
                outcome,
                e.to_string(),
                peer,
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            account,
            "malformed",
            "body is not UTF-8".to_owned(),
            peer,
        );
    };

    let unknown_subscription = envelope
        .subscription_id
        .as_deref()
        .is_some_and(|id| !state.tokens.is_known_subscription(&account_id, id, now));
    let notification = NewNotification {
        account: account_id.clone(),
        subscription_id: envelope.subscription_id.clone(),
        uuid: envelope.uuid.clone(),
        event: envelope.event.clone(),
        timestamp: envelope.timestamp,
        received_at: now,
        body: text.into(),
        unknown_subscription,
    };
    // This handler drops the last reference to the body, after the reply: a 1 KB free on
    // the writer thread would cost every batch's callers (freeing memory another thread
    // allocated takes its arena's lock).
    let body = std::sync::Arc::clone(&notification.body);
    let appended = state.store.append_inbox(notification).await;
    drop(body);
    match appended {
        Ok(outcome) => {
            let label = match outcome {
                AppendOutcome::Stored => "stored",
                AppendOutcome::Duplicate => "duplicate",
            };
            count(account, label);
            metrics::histogram!("ringrelay_webhook_ack_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(account, uuid = %envelope.uuid, event = %envelope.event, outcome = label, "notification stored");
            if unknown_subscription
                && let (Some(tx), Some(id)) = (&state.strays, envelope.subscription_id)
            {
                tracing::warn!(account, subscription_id = %id, "notification from a subscription that is not ours now");
                let _ = tx.try_send(StrayReport {
                    account: account_id,
                    subscription_id: id,
                    received_at: now,
                });
            }
            json_ok(None)
        }
        Err(StoreError::Unavailable(reason)) => {
            count(account, "unavailable");
            tracing::error!(account, uuid = %envelope.uuid, %reason, "inbox unavailable; RingCentral will be asked to retry");
            let mut resp = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": format!("store unavailable: {reason}") })),
            )
                .into_response();
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Err(e) => {
            count(account, "store_error");
            tracing::error!(account, uuid = %envelope.uuid, error = %e, "inbox append failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "could not store the notification" })),
            )
                .into_response()
        }
    }
}

/// Re-reads the account's stored subscriptions (the record and the keeper's extra ones)
/// and learns their tokens (a failure is only logged: the request is then refused as it
/// would have been).
async fn relearn(state: &ReceiverState, account: &AccountId, now: chrono::DateTime<Utc>) {
    let stored = match state.store.subscription(account).await {
        Ok(Some(record)) => crate::keeper::stored_tokens(state.store.as_ref(), &record).await,
        Ok(None) => return,
        Err(e) => Err(e),
    };
    match stored {
        Ok(tokens) => {
            for (id, token) in tokens {
                state.tokens.learn(account, &id, token, now);
            }
        }
        Err(e) => {
            tracing::warn!(%account, error = %e, "could not re-read the stored subscription tokens");
        }
    }
}
