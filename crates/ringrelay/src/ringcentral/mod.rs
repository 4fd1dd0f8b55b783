//! The RingCentral API client: the only code that talks to RingCentral. It knows nothing
//! of the store, the receiver or sinks.
//!
//! One [`RingCentral`] per account (cheap to clone, shared by the keeper and the sync):
//! - [`auth`]: the token holder (JWT grant, single-flight refresh, revoke).
//! - [`governor`]: rate limiting per throttling group, live before backfill.
//! - [`retry`]: the retry policy and its pure `next_delay`.
//! - [`error`]: [`ApiError`], keyed on RingCentral's error codes.
//! - [`lenient`]: serde helpers for what RingCentral really sends.
//! - [`subscriptions`], [`call_log`], [`messages`], [`sync`], [`extensions`]: the typed
//!   calls and their domain types (wire types stay private).
//! - [`clock`]: injected time, so tests and the demo run on the simulator's clock.
//! - [`shared`]: tokens shared between replicas (single-flight refresh across a cluster).

pub mod auth;
pub mod call_log;
pub mod clock;
pub mod error;
pub mod extensions;
pub mod governor;
mod http;
pub mod lenient;
pub mod messages;
pub mod retry;
pub mod shared;
pub mod subscriptions;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::account::AccountId;
use crate::config::{AccountSettings, Secret};

pub use call_log::{
    CallLogLeg, CallLogQuery, CallLogRecord, CallLogScope, CallResult, Direction, Party, Recording,
};
pub use clock::{Clock, SystemClock};
pub use error::ApiError;
pub use extensions::{Extension, ExtensionKind, ExtensionStatus, GrantedPermission, Permissions};
pub use governor::{ApiGroup, GovernorSettings, GroupLimit, Priority};
pub use messages::{TranscriptionStatus, VoicemailMessage, VoicemailQuery};
pub use retry::RetryPolicy;
pub use shared::{SharedTokenError, SharedTokens, TokenPair};
pub use subscriptions::{CreateSubscription, DisabledFilter, Subscription, SubscriptionStatus};
pub use sync::{CallLogSync, MessageSync, SyncResult};

/// Everything one account's client needs.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The account slug (for logs).
    pub account: AccountId,
    /// RingCentral's API base URL.
    pub server: Url,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Secret,
    /// The JWT credential.
    pub jwt: Secret,
    /// Per-request time limit (connect + response).
    pub request_timeout: Duration,
    /// Refresh the access token once less than this is left.
    pub refresh_before: Duration,
    /// Retries for 429, 5xx and transport errors.
    pub retry: RetryPolicy,
    /// Rate-limit budgets.
    pub limits: GovernorSettings,
}

impl ClientSettings {
    /// The client settings of a configured account, with the documented defaults: 30 s
    /// request timeout, refresh 5 min before expiry, [`RetryPolicy::default`],
    /// RingCentral's default group limits.
    pub fn from_account(account: &AccountSettings) -> Self {
        Self {
            account: account.id.clone(),
            server: account.server.clone(),
            client_id: account.client_id.clone(),
            client_secret: account.client_secret.clone(),
            jwt: account.jwt.clone(),
            request_timeout: Duration::from_secs(30),
            refresh_before: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            limits: GovernorSettings::default(),
        }
    }
}

/// One account's RingCentral client. Clones share the token, the rate-limit state and the
/// connection pool.
#[derive(Clone)]
pub struct RingCentral {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientSettings,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    governor: Arc<governor::Governor>,
    auth: auth::TokenHolder,
    retry: RetryPolicy,
}

impl std::fmt::Debug for RingCentral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingCentral")
            .field("account", &self.inner.settings.account)
            .field("server", &self.inner.settings.server.as_str())
            .finish_non_exhaustive()
    }
}

impl RingCentral {
    /// A client on the wall clock.
    ///
    /// # Errors
    /// [`ApiError::Config`] when the HTTP client cannot be built.
    pub fn new(settings: ClientSettings) -> Result<Self, ApiError> {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// A client on the given clock (the simulator's in tests and the demo).
    ///
    /// # Errors
    /// [`ApiError::Config`] when the HTTP client cannot be built or the server URL cannot
    /// be a base.
    pub fn with_clock(settings: ClientSettings, clock: Arc<dyn Clock>) -> Result<Self, ApiError> {
        Self::with_shared_tokens(settings, clock, None)
    }

    /// A client on the given clock whose tokens are shared with other replicas through
    /// `shared` (see [`shared`]); `None` keeps them in this process only.
    ///
    /// # Errors
    /// As [`RingCentral::with_clock`].
    pub fn with_shared_tokens(
        settings: ClientSettings,
        clock: Arc<dyn Clock>,
        shared: Option<Arc<dyn SharedTokens>>,
    ) -> Result<Self, ApiError> {
        if settings.server.cannot_be_a_base() {
            return Err(ApiError::Config(format!(
                "server {} is not an http(s) base URL",
                settings.server
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ringrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let governor = Arc::new(governor::Governor::new(&settings.limits, clock.clone()));
        let auth = auth::TokenHolder::new(
            auth::AuthConfig {
                server: settings.server.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                jwt: settings.jwt.clone(),
                refresh_before: settings.refresh_before,
                retry: settings.retry,
            },
            http.clone(),
            clock.clone(),
            governor.clone(),
        )
        .with_shared(shared);
        Ok(Self {
            inner: Arc::new(Inner {
                retry: settings.retry,
                settings,
                http,
                clock,
                governor,
                auth,
            }),
        })
    }

    /// The account this client works for.
    pub fn account(&self) -> &AccountId {
        &self.inner.settings.account
    }

    /// The client's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The rate-limit governor (for status: which group is penalised).
    pub fn governor(&self) -> &governor::Governor {
        &self.inner.governor
    }

    /// Makes sure there is a valid access token (exchanging the JWT if needed). `check`
    /// uses it to test credentials.
    ///
    /// # Errors
    /// [`ApiError::AuthRejected`] for wrong credentials; 429/5xx/transport errors.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.inner.auth.access_token().await.map(drop)
    }

    /// When the JWT credential itself expires (its `exp` claim, decoded without
    /// verification), so operators can be warned days ahead. `None` for a credential
    /// without `exp` (RingCentral allows non-expiring ones) or one that is not a JWT.
    pub fn credential_expires_at(&self) -> Option<DateTime<Utc>> {
        self.inner.auth.credential_expires_at()
    }

    /// Revokes the OAuth session on shutdown. RingCentral advises ignoring a failure
    /// (log it, don't retry). A client whose tokens are shared with other replicas only
    /// forgets them here: the others (and the next start) keep using them.
    ///
    /// # Errors
    /// What the revoke endpoint answered.
    pub async fn revoke(&self) -> Result<(), ApiError> {
        self.inner.auth.revoke().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RingCentral example payload the client can receive parses into domain types;
    /// a new fixture must be classified here, so none is silently skipped.
    #[test]
    fn every_example_payload_the_client_receives_parses_into_domain_types() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/ringcentral/examples"
        );
        let mut parsed = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures dir") {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !name.ends_with(".json") {
                continue;
            }
            let body = std::fs::read(&path).expect("readable fixture");
            let value = || serde_json::from_slice::<serde_json::Value>(&body).expect("json");
            match name.as_str() {
                n if n.starts_with("call-log-sync-") => {
                    sync::parse_sync(&body, "t", true, call_log::parse_record).map(drop)
                }
                n if n.starts_with("call-log-list-") => {
                    call_log::parse_page(&body, "t").and_then(|(rs, _)| {
                        rs.into_iter()
                            .try_for_each(|r| call_log::parse_record(r).map(drop))
                    })
                }
                n if n.starts_with("call-log-record-") => call_log::parse_record(value()).map(drop),
                n if n.starts_with("message-store-voicemail-") => {
                    messages::parse_message(value()).map(drop)
                }
                "voicemail-event.json" => {
                    messages::parse_message(value()["body"].clone()).map(drop)
                }
                n if n.starts_with("subscription-list-") => {
                    subscriptions::parse_subscription_list(&body).map(drop)
                }
                n if n.starts_with("subscription-create-response") => {
                    subscriptions::parse_subscription(&body).map(drop)
                }
                n if n.starts_with("error-") || n.starts_with("oauth-error-") => {
                    let e = error::ErrorBody::parse(&body);
                    assert!(!e.code.is_empty() && !e.message.is_empty(), "{name}: {e:?}");
                    Ok(())
                }
                n if n.starts_with("oauth-token-response") => {
                    auth::parse_token_info(&body).map(drop)
                }
                // Webhook deliveries (the receiver's and processor's) and a request body.
                n if n.starts_with("telephony-")
                    || n == "message-store-event.json"
                    || n.starts_with("subscription-create-request") =>
                {
                    continue;
                }
                other => panic!("unclassified fixture {other}: add it to this test"),
            }
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            parsed += 1;
        }
        assert!(parsed >= 12, "only {parsed} fixtures parsed");
    }
}
