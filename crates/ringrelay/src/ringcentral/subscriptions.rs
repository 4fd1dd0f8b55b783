//! Webhook subscriptions (API.md §2): create, list, read, renew (`POST …/renew`), update
//! (`PUT`), delete, and the domain [`Subscription`] they return.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::RingCentral;
use super::error::ApiError;
use super::governor::ApiGroup;
use super::http::{ApiRequest, decode};
use super::lenient::{self, lenient_enum};
use crate::config::Secret;

const BASE: &str = "/restapi/v1.0/subscription";

lenient_enum! {
    /// A subscription's status. Anything but `Active` means "not delivering" (the current
    /// spec knows only `Active` and `Blacklisted`; older ones had `Suspended`, a changelog
    /// `Blocked`).
    SubscriptionStatus {
        /// Delivering.
        Active => "Active",
        /// Suspended (older spec versions).
        Suspended => "Suspended",
        /// Blacklisted after delivery failures; it will not recover: recreate it.
        Blacklisted => "Blacklisted",
    }
}

/// A filter RingCentral accepted the subscription without (`disabledFilters`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DisabledFilter {
    /// The filter.
    pub filter: String,
    /// Why RingCentral did not apply it.
    #[serde(default)]
    pub reason: String,
    /// RingCentral's longer message, if any.
    #[serde(default)]
    pub message: Option<String>,
}

/// A webhook subscription as RingCentral reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription id (a UUID).
    pub id: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it expires; schedule renewals from this, not from `expiresIn`.
    pub expires_at: DateTime<Utc>,
    /// The webhook URL RingCentral posts to.
    pub address: Option<String>,
    /// `WebHook` for ours.
    pub transport_type: Option<String>,
    /// The applied filters, with `~` expanded to numeric ids by RingCentral.
    pub event_filters: Vec<String>,
    /// Filters RingCentral dropped (a 200 can still drop some).
    pub disabled_filters: Vec<DisabledFilter>,
    /// When and why it was blacklisted.
    pub blacklisted: Option<Blacklisted>,
    /// RingCentral never echoes the verification token (it is write-only), so this is
    /// `None` unless a server sends it anyway.
    pub verification_token: Option<String>,
}

/// `blacklistedData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blacklisted {
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// RingCentral's reason, e.g. "Webhook responses with code: [404], reason: [Not Found]".
    pub reason: String,
}

/// What to subscribe to.
#[derive(Debug, Clone)]
pub struct CreateSubscription {
    /// Event filters (at least one).
    pub event_filters: Vec<String>,
    /// Our webhook URL.
    pub address: String,
    /// Requested lifetime (top-level `expiresIn`; RingCentral may cap it).
    pub expires_in: Duration,
    /// Sent by RingCentral in the `Verification-Token` header of every delivery.
    pub verification_token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSubscription {
    #[serde(deserialize_with = "lenient::id")]
    id: String,
    status: SubscriptionStatus,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    creation_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::timestamp")]
    expiration_time: DateTime<Utc>,
    #[serde(default)]
    event_filters: Vec<String>,
    #[serde(default)]
    disabled_filters: Vec<DisabledFilter>,
    #[serde(default)]
    delivery_mode: Option<WireDeliveryMode>,
    #[serde(default)]
    blacklisted_data: Option<WireBlacklisted>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDeliveryMode {
    #[serde(default)]
    transport_type: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    verification_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBlacklisted {
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    blacklisted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct WireList {
    #[serde(default)]
    records: Vec<WireSubscription>,
}

impl From<WireSubscription> for Subscription {
    fn from(w: WireSubscription) -> Self {
        let mode = w.delivery_mode;
        let (transport_type, address, verification_token) = match mode {
            Some(m) => (m.transport_type, m.address, m.verification_token),
            None => (None, None, None),
        };
        Self {
            id: w.id,
            status: w.status,
            created_at: w.creation_time,
            expires_at: w.expiration_time,
            address,
            transport_type,
            event_filters: w.event_filters,
            disabled_filters: w.disabled_filters,
            blacklisted: w.blacklisted_data.map(|b| Blacklisted {
                at: b.blacklisted_at,
                reason: b.reason,
            }),
            verification_token,
        }
    }
}

/// Parses one `SubscriptionInfo` body.
///
/// # Errors
/// [`ApiError::Decode`] naming the JSON path of the problem.
pub fn parse_subscription(body: &[u8]) -> Result<Subscription, ApiError> {
    decode::<WireSubscription>(body, "subscription").map(Subscription::from)
}

/// Parses a `GET /subscription` body.
///
/// # Errors
/// [`ApiError::Decode`] naming the JSON path of the problem.
pub fn parse_subscription_list(body: &[u8]) -> Result<Vec<Subscription>, ApiError> {
    let list: WireList = decode(body, "subscription list")?;
    Ok(list.records.into_iter().map(Subscription::from).collect())
}

impl RingCentral {
    /// Creates a webhook subscription (Medium group). Check the result's
    /// `disabled_filters`: RingCentral may drop filters and still answer 200.
    ///
    /// # Errors
    /// [`ApiError::InvalidFilters`] (SUB-508), [`ApiError::WebhookValidationFailed`]
    /// (handshake or address refused), [`ApiError::SubscriptionLimit`] (SUB-505), …
    #[tracing::instrument(skip_all, fields(account = %self.account()))]
    pub async fn create_subscription(
        &self,
        req: &CreateSubscription,
    ) -> Result<Subscription, ApiError> {
        let mut delivery = json!({ "transportType": "WebHook", "address": req.address });
        if let Some(token) = &req.verification_token {
            delivery["verificationToken"] = json!(token.expose());
        }
        let body = json!({
            "eventFilters": req.event_filters,
            "deliveryMode": delivery,
            "expiresIn": req.expires_in.as_secs(),
        });
        let request = ApiRequest::new(Method::POST, BASE, ApiGroup::Medium).json(body);
        parse_subscription(&self.execute(&request).await?)
    }

    /// Lists this app's subscriptions for the authorised user (Light; at most 30, no paging).
    ///
    /// # Errors
    /// Any [`ApiError`].
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
        let request = ApiRequest::new(Method::GET, BASE, ApiGroup::Light);
        parse_subscription_list(&self.execute(&request).await?)
    }

    /// Reads one subscription (Light).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it is unknown or expired; any other [`ApiError`].
    pub async fn get_subscription(&self, id: &str) -> Result<Subscription, ApiError> {
        let request = ApiRequest::new(
            Method::GET,
            format!("{BASE}/{}", path_segment(id)?),
            ApiGroup::Light,
        );
        parse_subscription(&self.execute(&request).await?)
    }

    /// Renews with `POST …/{id}/renew` (Light), keeping the subscription's own lifetime.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it already expired; any other [`ApiError`].
    pub async fn renew_subscription(&self, id: &str) -> Result<Subscription, ApiError> {
        let path = format!("{BASE}/{}/renew", path_segment(id)?);
        let request = ApiRequest::new(Method::POST, path, ApiGroup::Light);
        parse_subscription(&self.execute(&request).await?)
    }

    /// Replaces the filters and optionally the lifetime with `PUT` (Medium); this also
    /// renews. The address cannot be changed: create a new subscription for that.
    ///
    /// # Errors
    /// [`ApiError::InvalidFilters`], [`ApiError::NotFound`], any other [`ApiError`].
    pub async fn update_subscription(
        &self,
        id: &str,
        event_filters: &[String],
        expires_in: Option<Duration>,
    ) -> Result<Subscription, ApiError> {
        let mut body = json!({ "eventFilters": event_filters });
        if let Some(e) = expires_in {
            body["expiresIn"] = json!(e.as_secs());
        }
        let request = ApiRequest::new(
            Method::PUT,
            format!("{BASE}/{}", path_segment(id)?),
            ApiGroup::Medium,
        )
        .json(body);
        parse_subscription(&self.execute(&request).await?)
    }

    /// Deletes a subscription (Medium; RingCentral answers 204).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when it is already gone; any other [`ApiError`].
    pub async fn delete_subscription(&self, id: &str) -> Result<(), ApiError> {
        let request = ApiRequest::new(
            Method::DELETE,
            format!("{BASE}/{}", path_segment(id)?),
            ApiGroup::Medium,
        );
        self.execute(&request).await.map(drop)
    }
}

/// An id placed in a URL path must not carry `/`, `?` or `#`.
pub(crate) fn path_segment(id: &str) -> Result<&str, ApiError> {
    if id.is_empty() || id.contains(['/', '?', '#', '%']) || id.chars().any(char::is_whitespace) {
        return Err(ApiError::InvalidInput(format!(
            "{id:?} is not a valid RingCentral id"
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../fixtures/ringcentral/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture exists")
    }

    #[test]
    fn a_create_response_parses_into_an_active_subscription() {
        let s = parse_subscription(&fixture("subscription-create-response-webhook.json")).unwrap();
        assert_eq!(s.status, SubscriptionStatus::Active);
        assert!(!s.event_filters.is_empty());
        assert!(s.address.is_some());
    }

    #[test]
    fn a_blacklisted_subscription_keeps_its_reason() {
        let list = parse_subscription_list(&fixture("subscription-list-blacklisted.json")).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, SubscriptionStatus::Blacklisted);
        let b = list[0].blacklisted.as_ref().unwrap();
        assert!(b.reason.contains("Read timed out"));
    }

    #[test]
    fn unknown_statuses_and_disabled_filters_are_kept() {
        let body = br#"{"id":"x","status":"Blocked","expirationTime":"2030-01-01T00:00:00.000+0000",
            "eventFilters":["/a"],"disabledFilters":[{"filter":"/b","reason":"not supported"}],"new":1}"#;
        let s = parse_subscription(body).unwrap();
        assert_eq!(s.status, SubscriptionStatus::Other("Blocked".into()));
        assert_eq!(s.disabled_filters[0].filter, "/b");
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        assert!(path_segment("../token").is_err());
        assert!(path_segment("a?b").is_err());
        assert_eq!(path_segment("1423e408-e25c").unwrap(), "1423e408-e25c");
    }
}
