//! The RingCentral notification envelope (`{uuid, event, timestamp, subscriptionId, ownerId,
//! body}`, API.md §4.1) and the classification of its `event` path.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::lenient;

/// Why a notification could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The text is not JSON.
    #[error("notification is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object.
    #[error("notification is not a JSON object")]
    NotAnObject,
    /// The `event` path is missing.
    #[error("notification has no `event` path")]
    MissingEvent,
}

/// One parsed notification envelope; the body is kept raw for the typed readers.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The notification id (`uuid`), if any.
    pub uuid: Option<String>,
    /// The `event` path (the filter it matched, see [`EventPath::classify`]).
    pub event: String,
    /// When RingCentral sent it, if readable.
    pub timestamp: Option<DateTime<Utc>>,
    /// The subscription that delivered it.
    pub subscription_id: Option<String>,
    /// The subscription owner's extension id.
    pub owner_id: Option<String>,
    /// The event body (`Value::Null` when absent).
    pub body: Value,
}

impl Notification {
    /// Parses a notification as delivered to the webhook, also the `pn_apns`-wrapped form of
    /// the guide's examples (API.md §4.1), where `event` and `timestamp` sit inside it.
    ///
    /// # Errors
    /// [`EnvelopeError`] when the text is not a JSON object with an `event` path.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let v: Value = serde_json::from_str(text)?;
        Self::from_value(&v)
    }

    /// Like [`Notification::parse`], from an already parsed value.
    ///
    /// # Errors
    /// [`EnvelopeError`] when the value is not an object with an `event` path.
    pub fn from_value(v: &Value) -> Result<Self, EnvelopeError> {
        let obj = v.as_object().ok_or(EnvelopeError::NotAnObject)?;
        let apns = obj.get("pn_apns").and_then(Value::as_object);
        let pick = |name: &str| obj.get(name).or_else(|| apns.and_then(|a| a.get(name)));
        let event = lenient::text(pick("event")).ok_or(EnvelopeError::MissingEvent)?;
        Ok(Self {
            uuid: lenient::id_string(pick("uuid")),
            event,
            timestamp: lenient::timestamp_field(pick("timestamp")),
            subscription_id: lenient::text(pick("subscriptionId")),
            owner_id: lenient::id_string(pick("ownerId")),
            body: obj.get("body").cloned().unwrap_or(Value::Null),
        })
    }

    /// The kind of event, from its path.
    pub fn path(&self) -> EventPath {
        EventPath::classify(&self.event)
    }
}

/// What an `event` path is about. The telephony path is the extension path when the party
/// belongs to an extension and the account path otherwise (API.md §4.1), so classification
/// goes by the path's shape, never by equality with the subscribed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventPath {
    /// A telephony session event (account or extension level).
    Telephony {
        /// The extension in the path, if it is the extension form.
        extension_id: Option<String>,
    },
    /// A voicemail message event (`…/extension/{id}/voicemail`).
    Voicemail {
        /// The extension in the path (`~` kept as given).
        extension_id: Option<String>,
    },
    /// A message-store change event (`…/message-store`, any query).
    MessageStore {
        /// The extension in the path (`~` kept as given).
        extension_id: Option<String>,
    },
    /// A call-log path (RingCentral documents no such filter; kept for completeness).
    CallLog,
    /// The subscription renewal reminder (`/restapi/v1.0/subscription/~?threshold=…`).
    RenewalReminder,
    /// The account's extension list changed (`/restapi/v1.0/account/{id}/extension`).
    ExtensionList,
    /// Anything else.
    Other,
}

impl EventPath {
    /// Classifies an `event` path.
    pub fn classify(path: &str) -> Self {
        let (path, _query) = path.split_once('?').unwrap_or((path, ""));
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match segs.as_slice() {
            ["restapi", _version, "subscription", ..] => return Self::RenewalReminder,
            ["restapi", _version, "account", _account, rest @ ..] => rest,
            _ => return Self::Other,
        };
        let (extension_id, tail) = match rest {
            ["extension"] => return Self::ExtensionList,
            ["extension", ext, tail @ ..] => (Some((*ext).to_owned()), tail),
            tail => (None, tail),
        };
        match tail {
            ["telephony", "sessions"] => Self::Telephony { extension_id },
            ["voicemail"] => Self::Voicemail { extension_id },
            ["message-store"] => Self::MessageStore { extension_id },
            ["call-log"] => Self::CallLog,
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let path = format!(
            "{}/../../fixtures/ringcentral/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn telephony_paths_classify_at_account_and_extension_level() {
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/809646016/telephony/sessions"),
            EventPath::Telephony { extension_id: None }
        );
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/1/extension/2/telephony/sessions"),
            EventPath::Telephony {
                extension_id: Some("2".into())
            }
        );
    }

    #[test]
    fn the_extension_list_path_classifies_apart_from_extension_paths() {
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/37439510/extension"),
            EventPath::ExtensionList
        );
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/~/extension/"),
            EventPath::ExtensionList
        );
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/~/extension/7/presence"),
            EventPath::Other
        );
    }

    #[test]
    fn other_paths_classify_by_shape() {
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/~/extension/9/message-store?type=VoiceMail"),
            EventPath::MessageStore {
                extension_id: Some("9".into())
            }
        );
        assert_eq!(
            EventPath::classify("/restapi/v1.0/subscription/~?threshold=60&interval=15"),
            EventPath::RenewalReminder
        );
        assert_eq!(
            EventPath::classify("/restapi/v1.0/account/~/presence"),
            EventPath::Other
        );
        assert_eq!(EventPath::classify(""), EventPath::Other);
    }

    #[test]
    fn the_real_samples_parse() {
        let vm = Notification::parse(&example("voicemail-event.json")).unwrap();
        assert!(matches!(vm.path(), EventPath::Voicemail { .. }));
        assert_eq!(vm.owner_id.as_deref(), Some("823476228762"));
        let ms = Notification::parse(&example("message-store-event.json")).unwrap();
        assert!(matches!(ms.path(), EventPath::MessageStore { .. }));
        assert!(ms.timestamp.is_some(), "offset without a colon is read");
        let t = Notification::parse(&example("telephony-session-setup-inbound.json")).unwrap();
        assert!(matches!(t.path(), EventPath::Telephony { .. }));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(matches!(
            Notification::parse("{"),
            Err(EnvelopeError::Json(_))
        ));
        assert!(matches!(
            Notification::parse("[]"),
            Err(EnvelopeError::NotAnObject)
        ));
        assert!(matches!(
            Notification::parse("{}"),
            Err(EnvelopeError::MissingEvent)
        ));
        let wrapped =
            r#"{"pn_apns":{"event":"/restapi/v1.0/account/1/telephony/sessions"},"body":{}}"#;
        assert!(matches!(
            Notification::parse(wrapped).unwrap().path(),
            EventPath::Telephony { .. }
        ));
    }
}
