//! `POST /restapi/oauth/token` (JWT bearer and refresh grants) and
//! `POST /restapi/oauth/revoke`, with RingCentral's session rules (fact sheet §1):
//! Basic client auth, single-use refresh tokens that invalidate the previous access token,
//! at most N live sessions per user (the oldest dies), revoke kills the whole session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::state::{Session, SimState, TokenRequest};

/// The JWT bearer grant type.
pub const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An OAuth error answer: RFC 6749 `error`/`error_description` plus RingCentral's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// RFC 6749 error, e.g. `invalid_client`.
    pub error: &'static str,
    /// RingCentral code, e.g. `OAU-123`.
    pub code: &'static str,
    /// Description.
    pub description: &'static str,
}

impl OAuthError {
    const fn new(
        status: u16,
        error: &'static str,
        code: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            status,
            error,
            code,
            description,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": self.error,
            "error_description": self.description,
            "errors": [{ "errorCode": self.code, "message": self.description }],
        })
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }
}

const NO_CLIENT: OAuthError = OAuthError::new(
    401,
    "invalid_client",
    "OAU-123",
    "Client authentication is required",
);
const BAD_CLIENT: OAuthError = OAuthError::new(
    401,
    "invalid_client",
    "OAU-146",
    "Invalid client credentials",
);
const BAD_JWT: OAuthError = OAuthError::new(
    400,
    "invalid_grant",
    "OAU-140",
    "Invalid resource owner credentials",
);
const BAD_REFRESH: OAuthError = OAuthError::new(400, "invalid_grant", "OAU-211", "Token not found");
const BAD_GRANT: OAuthError = OAuthError::new(
    400,
    "unsupported_grant_type",
    "OAU-250",
    "Unsupported grant type",
);
const NO_TOKEN: OAuthError = OAuthError::new(
    400,
    "invalid_request",
    "OAU-101",
    "Parameter [token] is missing",
);

/// Checks `Authorization: Basic base64(id:secret)` against the configured app.
fn check_client(state: &SimState, headers: &HeaderMap) -> Result<(), OAuthError> {
    use base64::Engine as _;
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(NO_CLIENT)?;
    let encoded = header.strip_prefix("Basic ").ok_or(NO_CLIENT)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| BAD_CLIENT)?;
    let text = String::from_utf8(decoded).map_err(|_| BAD_CLIENT)?;
    let (id, secret) = text.split_once(':').ok_or(BAD_CLIENT)?;
    if id == state.config.client_id && secret == state.config.client_secret {
        Ok(())
    } else {
        Err(BAD_CLIENT)
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// `POST /restapi/oauth/token`.
pub(crate) async fn token(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let result = issue(&state, &headers, &form, &grant);
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status,
    };
    let now = state.now();
    state.lock().token_requests.push(TokenRequest {
        at: now,
        grant_type: grant,
        status,
    });
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

fn issue(
    state: &SimState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    grant: &str,
) -> Result<serde_json::Value, OAuthError> {
    check_client(state, headers)?;
    match grant {
        JWT_GRANT => {
            let assertion = form.get("assertion").ok_or(BAD_JWT)?;
            let account = state
                .config
                .accounts
                .iter()
                .position(|a| &a.jwt == assertion)
                .ok_or(BAD_JWT)?;
            Ok(open_session(state, account))
        }
        "refresh_token" => {
            let refresh = form.get("refresh_token").ok_or(BAD_REFRESH)?;
            refresh_session(state, refresh)
        }
        _ => Err(BAD_GRANT),
    }
}

fn token_body(
    state: &SimState,
    s: &Session,
    now: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let owner = state.config.accounts[s.account].owner().id.clone();
    json!({
        "access_token": s.access_token,
        "token_type": "bearer",
        "expires_in": (s.access_expires - now).num_seconds(),
        "refresh_token": s.refresh_token,
        "refresh_token_expires_in": (s.refresh_expires - now).num_seconds(),
        "scope": "CallControl ReadAccounts ReadCallLog ReadMessages ReadPresence SubscriptionWebhook",
        "owner_id": owner,
        "endpoint_id": format!("sim-endpoint-{}", s.account),
        "session_id": s.id,
    })
}

fn lifetimes(state: &SimState) -> (chrono::Duration, chrono::Duration) {
    let access = chrono::Duration::from_std(state.config.access_token_ttl)
        .unwrap_or(chrono::Duration::hours(1));
    let refresh = chrono::Duration::from_std(state.config.refresh_token_ttl)
        .unwrap_or(chrono::Duration::days(7));
    (access, refresh)
}

fn open_session(state: &SimState, account: usize) -> serde_json::Value {
    let now = state.now();
    let (access, refresh) = lifetimes(state);
    let session = Session {
        id: format!("{}", rand::random::<u64>() % 10_000_000_000),
        account,
        access_token: random_token("SIMAT"),
        access_expires: now + access,
        refresh_token: random_token("SIMRT"),
        refresh_expires: now + refresh,
        created: now,
    };
    let body = token_body(state, &session, now);
    let mut inner = state.lock();
    inner.sessions.retain(|s| s.refresh_expires > now);
    inner.sessions.push(session);
    // "the application reached the limit (usually five) of parallel active sessions for the
    // same user": the oldest session dies.
    let max = state.config.max_sessions_per_user.max(1);
    while inner
        .sessions
        .iter()
        .filter(|s| s.account == account)
        .count()
        > max
    {
        if let Some(oldest) = inner
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.account == account)
            .min_by_key(|(_, s)| s.created)
            .map(|(i, _)| i)
        {
            inner.sessions.remove(oldest);
        }
    }
    body
}

fn refresh_session(state: &SimState, refresh: &str) -> Result<serde_json::Value, OAuthError> {
    let now = state.now();
    let (access, refresh_ttl) = lifetimes(state);
    let mut inner = state.lock();
    let session = inner
        .sessions
        .iter_mut()
        .find(|s| s.refresh_token == refresh && s.refresh_expires > now)
        .ok_or(BAD_REFRESH)?;
    // Single use: a new pair replaces both; the old access token stops working at once.
    session.access_token = random_token("SIMAT");
    session.access_expires = now + access;
    session.refresh_token = random_token("SIMRT");
    session.refresh_expires = now + refresh_ttl;
    let snapshot = session.clone();
    drop(inner);
    Ok(token_body(state, &snapshot, now))
}

/// `POST /restapi/oauth/revoke`: ends the whole session of the given token.
pub(crate) async fn revoke(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    if let Err(e) = check_client(&state, &headers) {
        return e.into_response();
    }
    let mut form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if let Some(q) = query.0 {
        let from_query: HashMap<String, String> =
            serde_urlencoded::from_str(&q).unwrap_or_default();
        for (k, v) in from_query {
            form.entry(k).or_insert(v);
        }
    }
    let Some(token) = form.get("token") else {
        return NO_TOKEN.into_response();
    };
    state
        .lock()
        .sessions
        .retain(|s| &s.access_token != token && &s.refresh_token != token);
    StatusCode::OK.into_response()
}
