//! The middleware in front of every RingCentral API route: scripted faults, per-user
//! rate limits with RingCentral's headers and penalty, and the request log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use crate::error::ApiError;
use crate::ratelimit::{Decision, Group};
use crate::state::{Fault, RequestRecord, SimState};

const MAX_BODY: usize = 1024 * 1024;

fn take_fault(state: &SimState, method: &str, path: &str) -> Option<Fault> {
    let mut inner = state.lock();
    let i = inner.faults.iter().position(|f| {
        f.times > 0
            && path.starts_with(&f.path)
            && f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    })?;
    let fault = inner.faults[i].clone();
    inner.faults[i].times -= 1;
    if inner.faults[i].times == 0 {
        inner.faults.remove(i);
    }
    Some(fault)
}

fn fault_response(f: &Fault) -> Response {
    let message = match f.error_code.as_str() {
        "CMN-201" => "Service Temporary Unavailable",
        "CMN-203" => "Internal Server Error",
        _ => "Simulated failure",
    };
    ApiError::new(f.status, &f.error_code, message).into_response()
}

/// Who is calling, for rate limiting: the token's user, the JWT's or refresh token's user
/// on the token endpoint, else the app (Basic client id), else "anonymous".
async fn user_key(state: &SimState, request: Request) -> (Request, String) {
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    if let Some(token) = bearer {
        let key = state
            .user_key_of_token(&token)
            .unwrap_or_else(|| "anonymous".to_owned());
        return (request, key);
    }
    let basic = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|h| format!("client:{h}"))
        .unwrap_or_else(|| "anonymous".to_owned());
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let key = form
        .get("assertion")
        .and_then(|jwt| state.config.accounts.iter().position(|a| &a.jwt == jwt))
        .map(|i| state.user_key(i))
        .or_else(|| {
            form.get("refresh_token")
                .and_then(|t| state.user_key_of_token(t))
        })
        .unwrap_or(basic);
    (Request::from_parts(parts, Body::from(bytes)), key)
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// The middleware function.
pub(crate) async fn gate(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let full = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), ToString::to_string);
    let Some(group) = Group::of(&method, &path) else {
        return next.run(request).await;
    };
    let arrived = state.now();
    let response = if let Some(f) = take_fault(&state, &method, &path) {
        if f.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(f.delay_ms)).await;
        }
        fault_response(&f)
    } else {
        let (request, key) = user_key(&state, request).await;
        let limits = &state.config.rate_limits;
        let decision = state.lock().limiter.check(&key, group, limits, arrived);
        let window = limits.window.as_secs().to_string();
        match decision {
            Decision::Limited {
                limit,
                retry_after_secs,
            } => {
                state.lock().too_many_requests += 1;
                let mut r = ApiError::new(429, "CMN-301", "Request rate exceeded").into_response();
                set(&mut r, "Retry-After", &retry_after_secs.to_string());
                set(&mut r, "X-Rate-Limit-Group", group.header_name());
                set(&mut r, "X-Rate-Limit-Limit", &limit.to_string());
                set(&mut r, "X-Rate-Limit-Remaining", "0");
                set(&mut r, "X-Rate-Limit-Window", &window);
                r
            }
            Decision::Allowed { limit, remaining } => {
                let mut r = next.run(request).await;
                set(&mut r, "X-Rate-Limit-Group", group.header_name());
                set(&mut r, "X-Rate-Limit-Limit", &limit.to_string());
                set(&mut r, "X-Rate-Limit-Remaining", &remaining.to_string());
                set(&mut r, "X-Rate-Limit-Window", &window);
                r
            }
        }
    };
    state.lock().requests.push(RequestRecord {
        at: arrived,
        method,
        path: full,
        status: response.status().as_u16(),
    });
    response
}
