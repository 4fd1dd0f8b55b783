//! The token holder of one account (API.md §1): the JWT bearer grant with Basic client
//! auth, one cached access token shared by every caller, refreshed on use once less than
//! `refresh_before` is left (proactive refresh on use; no background task), through the
//! single-use refresh token, falling back to a fresh JWT exchange when the refresh fails.
//! Concurrent callers wait for the one refresh in flight (single-flight: the refresh runs
//! under the state lock). Every token request takes an Auth-group slot (5/min).
//!
//! With [`SharedTokens`] (several replicas), the holder first adopts the token another
//! replica stored, and refreshes only under the cluster-wide refresh lock, storing the new
//! pair for the others; a replica that finds the lock taken waits for the stored result.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::clock::Clock;
use super::error::ApiError;
use super::governor::{ApiGroup, Governor, Priority, RateLimitHeaders};
use super::retry::RetryPolicy;
use super::shared::{SharedTokens, TokenPair};
use crate::config::Secret;

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Ten years: longer than any token RingCentral issues.
const MAX_TOKEN_LIFETIME_S: u64 = 315_360_000;

/// What the token holder needs to know.
#[derive(Clone)]
pub(crate) struct AuthConfig {
    pub(crate) server: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) jwt: Secret,
    pub(crate) refresh_before: Duration,
    pub(crate) retry: RetryPolicy,
}

#[derive(Default)]
struct TokenState {
    access: Option<(Secret, DateTime<Utc>)>,
    refresh: Option<(Secret, DateTime<Utc>)>,
    /// An access token RingCentral refused (401): never adopted again from the store.
    rejected: Option<Secret>,
}

/// One account's cached OAuth tokens.
pub(crate) struct TokenHolder {
    config: AuthConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    governor: Arc<Governor>,
    state: Mutex<TokenState>,
    credential_expires_at: Option<DateTime<Utc>>,
    shared: Option<Arc<dyn SharedTokens>>,
}

impl std::fmt::Debug for TokenHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHolder")
            .field("server", &self.config.server.as_str())
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenInfo {
    access_token: String,
    #[serde(default, deserialize_with = "super::lenient::opt_seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "super::lenient::opt_seconds")]
    refresh_token_expires_in: Option<u64>,
}

impl TokenHolder {
    pub(crate) fn new(
        config: AuthConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        governor: Arc<Governor>,
    ) -> Self {
        let credential_expires_at = jwt_expiry(config.jwt.expose());
        Self {
            config,
            http,
            clock,
            governor,
            state: Mutex::new(TokenState::default()),
            credential_expires_at,
            shared: None,
        }
    }

    /// Shares the tokens with other replicas through `shared` (`None`: this process only).
    pub(crate) fn with_shared(mut self, shared: Option<Arc<dyn SharedTokens>>) -> Self {
        self.shared = shared;
        self
    }

    /// When the JWT credential itself expires (its `exp` claim, decoded, not verified).
    pub(crate) fn credential_expires_at(&self) -> Option<DateTime<Utc>> {
        self.credential_expires_at
    }

    /// A valid access token, obtaining or refreshing it first if needed.
    pub(crate) async fn access_token(&self) -> Result<Secret, ApiError> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        if let Some(token) = self.fresh(&state, now) {
            return Ok(token);
        }
        if let Some(shared) = self.shared.clone() {
            return self.shared_access_token(&mut state, shared.as_ref()).await;
        }
        self.renew(&mut state, None).await
    }

    fn margin(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.refresh_before).unwrap_or(chrono::Duration::zero())
    }

    /// The cached access token while more than `refresh_before` is left.
    fn fresh(&self, state: &TokenState, now: DateTime<Utc>) -> Option<Secret> {
        state
            .access
            .as_ref()
            .filter(|(_, expires_at)| *expires_at - self.margin() > now)
            .map(|(token, _)| token.clone())
    }

    /// Obtains a new pair (refresh grant, or JWT exchange), preferring `refresh` (the
    /// newest stored refresh token) over the cached one.
    async fn renew(
        &self,
        state: &mut TokenState,
        refresh: Option<(Secret, DateTime<Utc>)>,
    ) -> Result<Secret, ApiError> {
        let now = self.clock.now();
        let cached = state.refresh.take();
        let refresh = refresh.or(cached).filter(|(_, until)| *until > now);
        match self.obtain(state, refresh).await {
            Ok(info) => Ok(self.store(state, info)),
            // A token that has not expired yet is still better than none.
            Err(e) => match &state.access {
                Some((token, expires_at)) if *expires_at > now && e.is_retryable() => {
                    tracing::warn!(error = %e, "proactive token refresh failed; using the current token");
                    Ok(token.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Adopts `pair` when its access token is fresh and not the one RingCentral refused.
    fn adopt(&self, state: &mut TokenState, pair: Option<TokenPair>) -> Option<Secret> {
        let pair = pair?;
        let now = self.clock.now();
        let refused = state
            .rejected
            .as_ref()
            .is_some_and(|r| r.expose() == pair.access.expose());
        if refused || pair.access_expires_at - self.margin() <= now {
            return None;
        }
        state.access = Some((pair.access.clone(), pair.access_expires_at));
        state.refresh = pair.refresh.zip(pair.refresh_expires_at);
        Some(pair.access)
    }

    /// The shared path: the stored token if fresh; else refresh under the cluster lock and
    /// store the result; else wait for the replica that holds the lock.
    async fn shared_access_token(
        &self,
        state: &mut TokenState,
        shared: &dyn SharedTokens,
    ) -> Result<Secret, ApiError> {
        let stored = match shared.load().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared token; working on our own");
                return self.renew(state, None).await;
            }
        };
        // A stored token that is due for refresh but not expired yet serves while another
        // replica refreshes.
        let unexpired = stored.as_ref().and_then(|p| {
            let refused = state
                .rejected
                .as_ref()
                .is_some_and(|r| r.expose() == p.access.expose());
            (!refused && p.access_expires_at > self.clock.now())
                .then(|| (p.access.clone(), p.access_expires_at))
        });
        if let Some(token) = self.adopt(state, stored) {
            return Ok(token);
        }
        match shared.lock_refresh().await {
            Ok(true) => {
                let result = self.refresh_under_lock(state, shared).await;
                shared.unlock_refresh().await;
                result
            }
            Ok(false) => match unexpired {
                Some((token, expires_at)) => {
                    state.access = Some((token.clone(), expires_at));
                    Ok(token)
                }
                None => self.wait_for_other(state, shared).await,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the token refresh lock; working on our own");
                self.renew(state, None).await
            }
        }
    }

    async fn refresh_under_lock(
        &self,
        state: &mut TokenState,
        shared: &dyn SharedTokens,
    ) -> Result<Secret, ApiError> {
        // Another replica may have stored a new pair between our read and the lock.
        let stored = shared.load().await.ok().flatten();
        let newest_refresh = stored
            .as_ref()
            .and_then(|p| p.refresh.clone().zip(p.refresh_expires_at));
        if let Some(token) = self.adopt(state, stored) {
            return Ok(token);
        }
        let before = state.access.as_ref().map(|(t, _)| t.expose().to_owned());
        let token = self.renew(state, newest_refresh).await?;
        if before.as_deref() == Some(token.expose()) {
            // The refresh failed and the current token is still used: nothing new to share
            // (and the stored refresh token must not be overwritten).
            return Ok(token);
        }
        let pair = TokenPair {
            access: token.clone(),
            access_expires_at: state
                .access
                .as_ref()
                .map_or_else(|| self.clock.now(), |(_, at)| *at),
            refresh: state.refresh.as_ref().map(|(t, _)| t.clone()),
            refresh_expires_at: state.refresh.as_ref().map(|(_, at)| *at),
        };
        if let Err(e) = shared.save(&pair).await {
            tracing::warn!(error = %e, "the refreshed token could not be shared");
        }
        Ok(token)
    }

    /// Another replica is refreshing and no unexpired token is at hand: poll the stored
    /// token until it is fresh (at most [`SharedTokens::refresh_wait`]).
    async fn wait_for_other(
        &self,
        state: &mut TokenState,
        shared: &dyn SharedTokens,
    ) -> Result<Secret, ApiError> {
        let step = std::time::Duration::from_millis(100);
        let rounds = (shared.refresh_wait().as_millis() / step.as_millis()).max(1);
        for _ in 0..rounds {
            // Real time: the other replica works in real time (a simulated clock's sleep
            // would only move simulated time).
            tokio::time::sleep(step).await;
            if let Some(token) = self.adopt(state, shared.load().await.ok().flatten()) {
                return Ok(token);
            }
        }
        let now = self.clock.now();
        match &state.access {
            Some((token, expires_at)) if *expires_at > now => Ok(token.clone()),
            _ => Err(ApiError::Transport(
                "another replica is refreshing the token and has not stored it yet".to_owned(),
            )),
        }
    }

    /// Refresh grant when there is a live refresh token, JWT exchange otherwise or when the
    /// refresh fails. A refresh refused by the rate limit was not used, so it is kept.
    async fn obtain(
        &self,
        state: &mut TokenState,
        refresh: Option<(Secret, DateTime<Utc>)>,
    ) -> Result<TokenInfo, ApiError> {
        let Some((token, until)) = refresh else {
            return self.jwt_exchange().await;
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", token.expose()),
        ];
        match self.grant(&form).await {
            Ok(info) => Ok(info),
            Err(e @ ApiError::RateLimited { .. }) => {
                state.refresh = Some((token, until));
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; exchanging the JWT again");
                self.jwt_exchange().await
            }
        }
    }

    /// Caches a fresh token pair and returns the access token.
    fn store(&self, state: &mut TokenState, info: TokenInfo) -> Secret {
        let now = self.clock.now();
        // Bounded so a nonsensical `expires_in` cannot overflow the date arithmetic.
        let secs = |s: Option<u64>, default: u64| {
            let s = s.unwrap_or(default).min(MAX_TOKEN_LIFETIME_S);
            chrono::Duration::seconds(i64::try_from(s).unwrap_or(0))
        };
        let token = Secret::new(info.access_token);
        state.access = Some((token.clone(), now + secs(info.expires_in, 3600)));
        state.rejected = None;
        state.refresh = info.refresh_token.map(|r| {
            (
                Secret::new(r),
                now + secs(info.refresh_token_expires_in, 604_800),
            )
        });
        token
    }

    /// Forgets `rejected` (an API call got 401 with it), so the next caller re-authenticates.
    pub(crate) async fn invalidate(&self, rejected: &Secret) {
        let mut state = self.state.lock().await;
        if state
            .access
            .as_ref()
            .is_some_and(|(t, _)| t.expose() == rejected.expose())
        {
            state.access = None;
        }
        state.rejected = Some(rejected.clone());
    }

    /// Revokes the OAuth session (all its tokens) and forgets the tokens. RingCentral
    /// advises ignoring revoke errors; the caller may log them.
    pub(crate) async fn revoke(&self) -> Result<(), ApiError> {
        let mut state = self.state.lock().await;
        if self.shared.is_some() {
            // Other replicas (and the next start) use the same tokens: only forget them.
            *state = TokenState::default();
            return Ok(());
        }
        let token = state
            .refresh
            .take()
            .map(|(t, _)| t)
            .or_else(|| state.access.as_ref().map(|(t, _)| t.clone()));
        state.access = None;
        let Some(token) = token else {
            return Ok(());
        };
        self.governor.acquire(ApiGroup::Auth, Priority::Live).await;
        let (status, _, body) = self
            .post_form("/restapi/oauth/revoke", &[("token", token.expose())])
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ApiError::from_token_response(status, &body))
        }
    }

    async fn jwt_exchange(&self) -> Result<TokenInfo, ApiError> {
        let jwt = self.config.jwt.clone();
        self.grant(&[("grant_type", JWT_GRANT), ("assertion", jwt.expose())])
            .await
    }

    /// One grant, with the retry policy for 5xx and transport errors.
    async fn grant(&self, form: &[(&str, &str)]) -> Result<TokenInfo, ApiError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.grant_once(form).await {
                Ok(info) => return Ok(info),
                Err(e) => e,
            };
            match self
                .config
                .retry
                .next_delay(attempts, &err, rand::random::<f64>())
            {
                Some(wait) if !matches!(err, ApiError::RateLimited { .. }) => {
                    tracing::warn!(error = %err, ?wait, "token request failed; retrying");
                    self.clock.sleep(wait).await;
                }
                _ => return Err(err),
            }
        }
    }

    async fn grant_once(&self, form: &[(&str, &str)]) -> Result<TokenInfo, ApiError> {
        self.governor.acquire(ApiGroup::Auth, Priority::Live).await;
        let (status, retry_after, body) = self.post_form("/restapi/oauth/token", form).await?;
        if status == 429 {
            let wait = retry_after.unwrap_or_else(|| self.governor.default_penalty());
            self.governor.penalize(ApiGroup::Auth, wait);
            return Err(ApiError::RateLimited {
                group: ApiGroup::Auth,
                retry_after: wait,
            });
        }
        if !(200..300).contains(&status) {
            return Err(ApiError::from_token_response(status, &body));
        }
        parse_token_info(&body)
    }

    async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Option<Duration>, bytes::Bytes), ApiError> {
        let url = self
            .config
            .server
            .join(path)
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose()),
            )
            .form(form)
            .send()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        self.governor.observe(
            ApiGroup::Auth,
            RateLimitHeaders::from_headers(response.headers()),
        );
        let retry_after = super::http::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        Ok((status, retry_after, body))
    }
}

/// Parses a token endpoint's 2xx body.
pub(crate) fn parse_token_info(body: &[u8]) -> Result<TokenInfo, ApiError> {
    super::http::decode(body, "token response")
}

/// The `exp` claim of a JWT, decoded without verifying the signature.
pub(crate) fn jwt_expiry(jwt: &str) -> Option<DateTime<Utc>> {
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<i64>,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.exp?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"RS256"}"#), b(claims))
    }

    #[test]
    fn the_credential_expiry_is_the_jwt_exp_claim() {
        let at = jwt_expiry(&jwt_with(r#"{"aud":"x","exp":1900000000}"#)).unwrap();
        assert_eq!(at.timestamp(), 1_900_000_000);
    }

    #[test]
    fn a_jwt_without_exp_or_not_a_jwt_has_no_expiry() {
        assert_eq!(jwt_expiry(&jwt_with(r#"{"aud":"x"}"#)), None);
        assert_eq!(jwt_expiry("opaque-credential"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }
}
