//! `ApiError`: what a RingCentral call can fail with, one variant per case callers act on.
//!
//! Classification keys on `errors[0].errorCode`, falling back to the top-level `errorCode`
//! (real bodies carry both, and the top level may be symbolic, e.g. `InvalidParameter`),
//! never on `message`, which RingCentral may reword or localise (API.md §7,
//! [G:basics/errors]).

use std::time::Duration;

use serde::Deserialize;

use super::governor::ApiGroup;

/// A failed RingCentral call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The token endpoint refused the app's credentials or the JWT (`invalid_client`,
    /// `invalid_grant`, OAU-140/146…). Retrying will not help; the operator must fix config.
    #[error("RingCentral refused the credentials ({code}): {message}")]
    AuthRejected {
        /// `errors[0].errorCode`, else the OAuth `error`.
        code: String,
        /// RingCentral's explanation.
        message: String,
    },
    /// An API call got 401 even after one re-authentication.
    #[error("RingCentral answered 401 Unauthorized ({code}) after re-authenticating")]
    Unauthorized {
        /// The error code, e.g. `OAU-128`.
        code: String,
    },
    /// 403: a missing app or user permission (CMN-401, CMN-408, …).
    #[error("RingCentral answered 403 Forbidden ({code}): {message}")]
    Forbidden {
        /// The error code.
        code: String,
        /// RingCentral's explanation.
        message: String,
    },
    /// 404 (CMN-102): the resource is unknown or, for a subscription, expired and reaped.
    #[error("not found ({code}): {message}")]
    NotFound {
        /// The error code.
        code: String,
        /// RingCentral's explanation.
        message: String,
    },
    /// SUB-505: the app already has the maximum number of subscriptions for this user.
    #[error("subscription limit reached (SUB-505): {message}")]
    SubscriptionLimit {
        /// RingCentral's explanation.
        message: String,
    },
    /// SUB-508: RingCentral refused one or more event filters.
    #[error("event filters refused (SUB-508): {message}")]
    InvalidFilters {
        /// RingCentral's explanation, usually naming the filter.
        message: String,
    },
    /// SUB-520/524/525, or CMN-101 on `deliveryMode.address`: RingCentral could not
    /// validate our webhook address (the handshake failed or the URL is unacceptable).
    #[error("webhook address validation failed ({code}): {message}")]
    WebhookValidationFailed {
        /// The error code.
        code: String,
        /// RingCentral's explanation.
        message: String,
    },
    /// A sync token is no longer usable (CLG-101…105, MSG-333, "max sync record number
    /// limit is exceeded"): the caller must run a full sync.
    #[error("full synchronisation required ({code}): {message}")]
    FullSyncRequired {
        /// The error code.
        code: String,
        /// RingCentral's explanation.
        message: String,
    },
    /// Any other 4xx, e.g. CMN-101 invalid parameter.
    #[error("request rejected with {status} ({code}): {message}")]
    Validation {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// RingCentral's explanation.
        message: String,
        /// The offending parameter, when RingCentral names one.
        parameter: Option<String>,
    },
    /// 429, or a group penalty still running: nothing may be sent in `group` for
    /// `retry_after`.
    #[error("rate limited in the {group:?} group; retry after {retry_after:?}")]
    RateLimited {
        /// The throttling group.
        group: ApiGroup,
        /// How long to wait.
        retry_after: Duration,
    },
    /// 5xx.
    #[error("RingCentral server error {status} ({code})")]
    Server {
        /// HTTP status.
        status: u16,
        /// The error code, empty when the body had none.
        code: String,
    },
    /// The request did not complete: connection refused, reset, timed out.
    #[error("transport error: {0}")]
    Transport(String),
    /// A 2xx body that could not be understood.
    #[error("could not decode RingCentral's {what}: {message}")]
    Decode {
        /// Which response.
        what: &'static str,
        /// What was wrong, with the JSON path.
        message: String,
    },
    /// A caller passed something that cannot be sent (an id with `/`, a zero page size).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The client settings cannot work (bad URL, HTTP client setup).
    #[error("invalid RingCentral client settings: {0}")]
    Config(String),
}

impl ApiError {
    /// Whether the same request may succeed if sent again later (429, 5xx, transport).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }

    /// RingCentral's error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::AuthRejected { code, .. }
            | Self::Unauthorized { code }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::WebhookValidationFailed { code, .. }
            | Self::FullSyncRequired { code, .. }
            | Self::Validation { code, .. }
            | Self::Server { code, .. } => Some(code),
            Self::SubscriptionLimit { .. } => Some("SUB-505"),
            Self::InvalidFilters { .. } => Some("SUB-508"),
            Self::RateLimited { .. }
            | Self::Transport(_)
            | Self::Decode { .. }
            | Self::InvalidInput(_)
            | Self::Config(_) => None,
        }
    }

    /// Maps a non-2xx API answer (not 401/429, which the transport handles) to an error.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        let b = ErrorBody::parse(body);
        let code = b.code.clone();
        let message = b.message.clone();
        let on_address = b
            .parameter
            .as_deref()
            .is_some_and(|p| p.contains("address"));
        match (status, code.as_str()) {
            (_, "SUB-505") => Self::SubscriptionLimit { message },
            (_, "SUB-508") => Self::InvalidFilters { message },
            (_, "SUB-520" | "SUB-524" | "SUB-525") => {
                Self::WebhookValidationFailed { code, message }
            }
            (400, "CMN-101") if on_address => Self::WebhookValidationFailed { code, message },
            (400, c) if is_full_sync(c, b.parameter.as_deref()) => {
                Self::FullSyncRequired { code, message }
            }
            (401, _) => Self::Unauthorized { code },
            (403, _) => Self::Forbidden { code, message },
            (404, _) => Self::NotFound { code, message },
            (500..=599, _) => Self::Server { status, code },
            _ => Self::Validation {
                status,
                code,
                message,
                parameter: b.parameter,
            },
        }
    }

    /// Maps a non-2xx answer of the token endpoint.
    pub(crate) fn from_token_response(status: u16, body: &[u8]) -> Self {
        if status >= 500 {
            return Self::from_response(status, body);
        }
        let b = ErrorBody::parse(body);
        Self::AuthRejected {
            code: b.code,
            message: b.message,
        }
    }
}

/// Call-log sync answers 400 CLG-101…105 for a dead token, message sync MSG-333. The
/// "max sync record number limit is exceeded" case is documented only by its message
/// ("Parameter [syncToken] is invalid …"), so any 400 naming `syncToken` as its parameter
/// counts too.
fn is_full_sync(code: &str, parameter: Option<&str>) -> bool {
    matches!(
        code,
        "CLG-101" | "CLG-102" | "CLG-103" | "CLG-104" | "CLG-105" | "MSG-333"
    ) || parameter == Some("syncToken")
}

/// The useful part of an error body, tolerant of every shape RingCentral sends.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) parameter: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireError {
    error_code: Option<String>,
    message: Option<String>,
    parameter_name: Option<String>,
    errors: Vec<WireErrorItem>,
    // OAuth (RFC 6749) shape.
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireErrorItem {
    error_code: Option<String>,
    message: Option<String>,
    parameter_name: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        let Ok(w) = serde_json::from_slice::<WireError>(body) else {
            let text = String::from_utf8_lossy(body);
            return Self {
                code: String::new(),
                message: text.chars().take(200).collect(),
                parameter: None,
            };
        };
        let first = w.errors.into_iter().next().unwrap_or_default();
        Self {
            code: first
                .error_code
                .or(w.error_code)
                .or(w.error)
                .unwrap_or_default(),
            message: first
                .message
                .or(w.message)
                .or(w.error_description)
                .unwrap_or_default(),
            parameter: first.parameter_name.or(w.parameter_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../fixtures/ringcentral/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).expect("fixture exists")
    }

    #[test]
    fn the_code_comes_from_errors_zero_not_the_symbolic_top_level_code() {
        let e = ApiError::from_response(400, &fixture("error-cmn-101-expiresin-invalid.json"));
        assert_eq!(
            e,
            ApiError::Validation {
                status: 400,
                code: "CMN-101".into(),
                message: "Parameter [expiresIn] value is invalid".into(),
                parameter: Some("expiresIn".into()),
            }
        );
    }

    #[test]
    fn sub_505_is_the_subscription_limit() {
        let e = ApiError::from_response(403, &fixture("error-sub-505-subscription-limit.json"));
        assert!(matches!(e, ApiError::SubscriptionLimit { .. }), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn oauth_errors_become_auth_rejected_with_the_rc_code() {
        let e = ApiError::from_token_response(401, &fixture("oauth-error-invalid-client.json"));
        let ApiError::AuthRejected { code, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(code.starts_with("OAU-"), "{code}");
    }

    #[test]
    fn an_invalid_address_is_a_webhook_validation_failure() {
        let body = br#"{"errors":[{"errorCode":"CMN-101","message":"Parameter [deliveryMode.address] value is invalid","parameterName":"deliveryMode.address"}]}"#;
        let e = ApiError::from_response(400, body);
        assert!(
            matches!(e, ApiError::WebhookValidationFailed { .. }),
            "{e:?}"
        );
    }

    #[test]
    fn dead_sync_tokens_demand_a_full_sync() {
        let body = br#"{"errorCode":"CLG-104","message":"Parameter [syncToken] is invalid [Sync token expired, call log was reset]"}"#;
        let e = ApiError::from_response(400, body);
        assert!(matches!(e, ApiError::FullSyncRequired { .. }), "{e:?}");
    }

    #[test]
    fn server_errors_and_garbage_bodies_are_retryable_server_errors() {
        let e = ApiError::from_response(503, b"<html>busy</html>");
        assert_eq!(
            e,
            ApiError::Server {
                status: 503,
                code: String::new()
            }
        );
        assert!(e.is_retryable());
    }
}
