//! The request executor every typed call goes through: rate-limit slot, bearer token,
//! timeout, `X-Rate-Limit-*` bookkeeping, 429 penalty, 401 → one re-auth and one retry,
//! and bounded retries for 5xx and transport errors.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use super::RingCentral;
use super::error::ApiError;
use super::governor::{ApiGroup, Priority, RateLimitHeaders};

/// One API request, before it is sent.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    /// A path (`/restapi/v1.0/...`) or an absolute URI from `navigation.nextPage.uri`.
    pub(crate) target: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<serde_json::Value>,
    pub(crate) group: ApiGroup,
    pub(crate) priority: Priority,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, target: impl Into<String>, group: ApiGroup) -> Self {
        Self {
            method,
            target: target.into(),
            query: Vec::new(),
            body: None,
            group,
            priority: Priority::Live,
        }
    }

    pub(crate) fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
}

enum Failure {
    Unauthorized(String),
    /// Getting a token failed; the token holder already retried 5xx and transport errors,
    /// so only a rate limit is worth another round here.
    Token(ApiError),
    Other(ApiError),
}

impl RingCentral {
    /// Sends `req` and returns the 2xx body.
    pub(crate) async fn execute(&self, req: &ApiRequest) -> Result<bytes::Bytes, ApiError> {
        let url = self.resolve(&req.target)?;
        let mut attempts = 0;
        let mut reauthenticated = false;
        loop {
            let failure = match self.send_once(req, &url).await {
                Ok(body) => return Ok(body),
                Err(f) => f,
            };
            let err = match failure {
                Failure::Unauthorized(_) if !reauthenticated => {
                    reauthenticated = true;
                    tracing::info!("401 from RingCentral; re-authenticating once");
                    continue;
                }
                Failure::Unauthorized(code) => ApiError::Unauthorized { code },
                Failure::Token(e) if !matches!(e, ApiError::RateLimited { .. }) => return Err(e),
                Failure::Token(e) | Failure::Other(e) => e,
            };
            attempts += 1;
            match self
                .inner
                .retry
                .next_delay(attempts, &err, rand::random::<f64>())
            {
                Some(wait) => {
                    tracing::warn!(error = %err, ?wait, attempts, "RingCentral call failed; retrying");
                    self.inner.clock.sleep(wait).await;
                }
                None => return Err(err),
            }
        }
    }

    async fn send_once(&self, req: &ApiRequest, url: &Url) -> Result<bytes::Bytes, Failure> {
        let inner = &self.inner;
        let token = inner.auth.access_token().await.map_err(Failure::Token)?;
        inner.governor.acquire(req.group, req.priority).await;
        let mut builder = inner
            .http
            .request(req.method.clone(), url.clone())
            .bearer_auth(token.expose())
            .query(&req.query);
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        inner
            .governor
            .observe(req.group, RateLimitHeaders::from_headers(&headers));
        let body = response.bytes().await.map_err(transport)?;
        match status {
            200..=299 => Ok(body),
            401 => {
                inner.auth.invalidate(&token).await;
                let code = super::error::ErrorBody::parse(&body).code;
                Err(Failure::Unauthorized(code))
            }
            429 => {
                let wait =
                    retry_after(&headers).unwrap_or_else(|| inner.governor.default_penalty());
                inner.governor.penalize(req.group, wait);
                Err(Failure::Other(ApiError::RateLimited {
                    group: req.group,
                    retry_after: wait,
                }))
            }
            _ => Err(Failure::Other(ApiError::from_response(status, &body))),
        }
    }

    /// Joins a path to the server URL; an absolute URI (a `nextPage` link) keeps only its
    /// path and query, so the bearer token is never sent to another host.
    fn resolve(&self, target: &str) -> Result<Url, ApiError> {
        let server = &self.inner.settings.server;
        let relative = match Url::parse(target) {
            Ok(abs) => match abs.query() {
                Some(q) => format!("{}?{q}", abs.path()),
                None => abs.path().to_owned(),
            },
            Err(_) => target.to_owned(),
        };
        server
            .join(&relative)
            .map_err(|e| ApiError::Config(format!("cannot build a URL from {target:?}: {e}")))
    }
}

fn transport(e: reqwest::Error) -> Failure {
    Failure::Other(ApiError::Transport(e.without_url().to_string()))
}

/// Decodes a JSON body, naming the JSON path of the first problem.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], what: &'static str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
        ApiError::Decode {
            what,
            message: e.to_string(),
        }
    })
}

/// The longest `Retry-After` honoured (RingCentral's penalties are 60 s; a larger value
/// is a broken header, not a reason to stop an account for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (RingCentral sends seconds; an HTTP date is not used),
/// capped at an hour.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}
