//! The operator surface over HTTP: `GET /healthz`, `GET /readyz`, `GET /metrics`, the admin
//! API under `/api/v1/` (bearer token), and the status page at `/` (login form + cookie).
//!
//! Everything here reads and acts through [`AdminSource`], which the application
//! implements over the store, the keepers, the sync and the deliverer; so this module
//! holds the HTTP contract and the rendering, and nothing about how the data is kept.

pub mod auth;
pub mod metrics;
pub mod model;
pub mod render;
pub mod source;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use auth::{AdminAuth, AuthOutcome};
pub use model::{
    AccountStatus, DeliveryView, DisabledFilterView, ExtensionsView, GapView, LeaseView, Readiness,
    SinkStatus, StatusReport, SubscriptionView, UncoveredExtension,
};
pub use source::{Runtime, StoreAdminSource};

/// The admin API's OpenAPI document (also in `docs/admin-api.openapi.json`).
pub const OPENAPI: &str = include_str!("../../../../docs/admin-api.openapi.json");

/// Why an admin action failed; each maps to one HTTP status with a reason.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The account, sink or delivery does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong (400), with what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// The action conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// A dependency (store, RingCentral) cannot answer now (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DeliveryQuery {
    /// Only this sink.
    pub sink: Option<String>,
    /// Only these states: `pending`, `delivered`, `dead`, or `failed` (pending with at
    /// least one failed attempt, and dead).
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<usize>,
}

/// A hand-made subscription action (`ringrelay subscriptions …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionAction {
    /// Renew the current subscription now.
    Renew,
    /// Delete it and create a new one.
    Recreate,
    /// Delete strays and non-Active subscriptions pointing at our address.
    Cleanup,
}

/// What a backfill found and emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillSummary {
    /// Call-log records read.
    pub call_log_records: u64,
    /// Voicemail messages read.
    pub voicemails: u64,
    /// Activities newly emitted (already-known ones are not counted).
    pub activities_emitted: u64,
}

/// What the admin surface reads and acts on.
#[async_trait]
pub trait AdminSource: Send + Sync + 'static {
    /// The whole status report.
    async fn status(&self) -> Result<StatusReport, AdminError>;
    /// Readiness for `/readyz`.
    async fn readiness(&self) -> Readiness;
    /// The subscriptions RingCentral lists for the account, as JSON.
    async fn subscriptions(&self, account: &str) -> Result<serde_json::Value, AdminError>;
    /// Runs a subscription action and says what it did.
    async fn subscription_action(
        &self,
        account: &str,
        action: SubscriptionAction,
    ) -> Result<String, AdminError>;
    /// Backfills `[since, until]` of the account now.
    async fn backfill(
        &self,
        account: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BackfillSummary, AdminError>;
    /// Lists deliveries.
    async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<DeliveryView>, AdminError>;
    /// Makes one dead or waiting delivery due now.
    async fn retry_delivery(&self, id: i64) -> Result<(), AdminError>;
    /// Sends every activity of the sink since `since` again; returns how many.
    async fn replay(&self, sink: &str, since: DateTime<Utc>) -> Result<u64, AdminError>;
    /// Pauses (or resumes) a sink.
    async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), AdminError>;
}

/// What the admin router needs.
#[derive(Clone)]
pub struct AdminState {
    /// The data and actions.
    pub source: Arc<dyn AdminSource>,
    /// The admin token check.
    pub auth: AdminAuth,
}

/// The operator routes: health, readiness, metrics, the admin API and the status page.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/status", get(api_status))
        .route("/accounts", get(api_accounts))
        .route("/accounts/{account}", get(api_account))
        .route("/accounts/{account}/coverage", get(api_coverage))
        .route("/accounts/{account}/subscriptions", get(api_subscriptions))
        .route(
            "/accounts/{account}/subscription/{action}",
            post(api_subscription_action),
        )
        .route("/accounts/{account}/backfill", post(api_backfill))
        .route("/deliveries", get(api_deliveries))
        .route("/deliveries/{id}/retry", post(api_retry))
        .route("/sinks/{sink}/replay", post(api_replay))
        .route("/sinks/{sink}/pause", post(api_pause))
        .route("/sinks/{sink}/resume", post(api_resume))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .route("/openapi.json", get(openapi));
    let ui = Router::new()
        .route("/", get(page))
        .route("/ui/deliveries/{id}/retry", post(page_retry))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_login));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .nest("/api/v1", api)
        .merge(ui)
        .with_state(state)
}

async fn require_bearer(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    match state.auth.check(req.headers()) {
        AuthOutcome::Allowed => next.run(req).await,
        AuthOutcome::Disabled => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "the admin API is off: set server.admin_token to turn it on"})),
        )
            .into_response(),
        outcome => {
            let reason = if outcome == AuthOutcome::Missing {
                "missing Authorization: Bearer <admin_token>"
            } else {
                "wrong admin token"
            };
            tracing::warn!(path = %req.uri().path(), reason, "admin API request refused");
            (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": reason })),
            )
                .into_response()
        }
    }
}

async fn require_login(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    match state.auth.check(req.headers()) {
        AuthOutcome::Allowed => next.run(req).await,
        AuthOutcome::Disabled => (
            StatusCode::NOT_FOUND,
            Html(
                "<p>The status page is off: set <code>server.admin_token</code> to turn it on.</p>",
            ),
        )
            .into_response(),
        _ => (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response(),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.source.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let Some(handle) = metrics::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed in this process\n",
        )
            .into_response();
    };
    if let Ok(report) = state.source.status().await {
        metrics::publish_status(&report);
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn api_status(State(state): State<AdminState>) -> Result<Json<StatusReport>, AdminError> {
    Ok(Json(state.source.status().await?))
}

async fn api_accounts(
    State(state): State<AdminState>,
) -> Result<Json<Vec<AccountStatus>>, AdminError> {
    Ok(Json(state.source.status().await?.accounts))
}

async fn find_account(state: &AdminState, id: &str) -> Result<AccountStatus, AdminError> {
    state
        .source
        .status()
        .await?
        .accounts
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| AdminError::NotFound(format!("no account {id:?} is configured")))
}

async fn api_account(
    State(state): State<AdminState>,
    Path(account): Path<String>,
) -> Result<Json<AccountStatus>, AdminError> {
    Ok(Json(find_account(&state, &account).await?))
}

async fn api_coverage(
    State(state): State<AdminState>,
    Path(account): Path<String>,
) -> Result<Json<Vec<GapView>>, AdminError> {
    Ok(Json(find_account(&state, &account).await?.gaps))
}

async fn api_subscriptions(
    State(state): State<AdminState>,
    Path(account): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    Ok(Json(state.source.subscriptions(&account).await?))
}

async fn api_subscription_action(
    State(state): State<AdminState>,
    Path((account, action)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let action = match action.as_str() {
        "renew" => SubscriptionAction::Renew,
        "recreate" => SubscriptionAction::Recreate,
        "cleanup" => SubscriptionAction::Cleanup,
        other => {
            return Err(AdminError::NotFound(format!(
                "unknown subscription action {other:?}: use renew, recreate or cleanup"
            )));
        }
    };
    let done = state.source.subscription_action(&account, action).await?;
    Ok(Json(json!({ "result": done })))
}

/// A time in a request: RFC 3339, or a duration ago such as `2h` or `30m`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| now - d)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-11-28T09:00:00Z) or a duration ago (2h, 30m)"
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    since: String,
    until: Option<String>,
}

async fn api_backfill(
    State(state): State<AdminState>,
    Path(account): Path<String>,
    body: Option<Json<BackfillBody>>,
) -> Result<Json<BackfillSummary>, AdminError> {
    let Some(Json(body)) = body else {
        return Err(AdminError::BadRequest(
            "send a JSON body {\"since\": \"2h\"} or {\"since\": RFC3339, \"until\": RFC3339}"
                .to_owned(),
        ));
    };
    let now = Utc::now();
    let since = parse_time(&body.since, now).map_err(AdminError::BadRequest)?;
    let until = match &body.until {
        Some(u) => parse_time(u, now).map_err(AdminError::BadRequest)?,
        None => now,
    };
    if since >= until {
        return Err(AdminError::BadRequest(format!(
            "since ({since}) must be before until ({until})"
        )));
    }
    Ok(Json(state.source.backfill(&account, since, until).await?))
}

async fn api_deliveries(
    State(state): State<AdminState>,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    if let Some(s) = &query.state
        && !matches!(s.as_str(), "pending" | "delivered" | "dead" | "failed")
    {
        return Err(AdminError::BadRequest(format!(
            "unknown state {s:?}: use pending, delivered, dead or failed"
        )));
    }
    Ok(Json(state.source.deliveries(query).await?))
}

async fn api_retry(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AdminError::BadRequest(format!("{id:?} is not a delivery id")))?;
    state.source.retry_delivery(id).await?;
    Ok(Json(json!({ "retried": id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    since: String,
}

async fn api_replay(
    State(state): State<AdminState>,
    Path(sink): Path<String>,
    body: Option<Json<ReplayBody>>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Some(Json(body)) = body else {
        return Err(AdminError::BadRequest(
            "send a JSON body {\"since\": \"2h\"} or {\"since\": RFC3339}".to_owned(),
        ));
    };
    let since = parse_time(&body.since, Utc::now()).map_err(AdminError::BadRequest)?;
    let n = state.source.replay(&sink, since).await?;
    Ok(Json(json!({ "sink": sink, "replayed": n })))
}

async fn api_pause(
    State(state): State<AdminState>,
    Path(sink): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    state.source.set_sink_paused(&sink, true).await?;
    Ok(Json(json!({ "sink": sink, "paused": true })))
}

async fn api_resume(
    State(state): State<AdminState>,
    Path(sink): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    state.source.set_sink_paused(&sink, false).await?;
    Ok(Json(json!({ "sink": sink, "paused": false })))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn page(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let report = state.source.status().await?;
    let failed = state
        .source
        .deliveries(DeliveryQuery {
            state: Some("failed".to_owned()),
            limit: Some(50),
            ..DeliveryQuery::default()
        })
        .await?;
    Ok(no_store(
        Html(render::status_page(&report, &failed)).into_response(),
    ))
}

async fn page_retry(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return AdminError::BadRequest(format!("{id:?} is not a delivery id")).into_response();
    };
    match state.source.retry_delivery(id).await {
        Ok(()) => (StatusCode::SEE_OTHER, [(LOCATION, "/")]).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login_form(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if state.auth.check(&headers) == AuthOutcome::Allowed {
        return (StatusCode::SEE_OTHER, [(LOCATION, "/")]).into_response();
    }
    no_store(Html(render::login_page(None)).into_response())
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<AdminState>, Form(form): Form<LoginForm>) -> Response {
    match state.auth.check_token(form.token.trim()) {
        AuthOutcome::Allowed => {
            let cookie = state.auth.login_cookie().unwrap_or_default();
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, "/".to_owned()), (SET_COOKIE, cookie)],
            )
                .into_response()
        }
        AuthOutcome::Disabled => (
            StatusCode::NOT_FOUND,
            Html("<p>The status page is off: set <code>server.admin_token</code>.</p>"),
        )
            .into_response(),
        _ => {
            tracing::warn!("status page login with a wrong token");
            (
                StatusCode::UNAUTHORIZED,
                Html(render::login_page(Some("Wrong token."))),
            )
                .into_response()
        }
    }
}

async fn logout(State(state): State<AdminState>) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/login".to_owned()),
            (SET_COOKIE, state.auth.logout_cookie()),
        ],
    )
        .into_response()
}
