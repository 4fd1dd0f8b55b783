//! One notification → the typed work it asks for: the seam between the inbox and the
//! pure readers (route on the event path's shape, API.md §4.1).

use super::envelope::{EventPath, Notification};
use super::messages::{RecordError, VoicemailInput, new_voicemail_ids};
use super::telephony::{TelephonyError, TelephonyEvent};

/// What a notification is, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Interpreted {
    /// A telephony session event (`event_time` falls back to the envelope `timestamp`):
    /// feed it to [`super::derive::apply_telephony`] with the state of its session.
    Telephony(TelephonyEvent),
    /// A voicemail event: feed it to [`super::messages::voicemail_received`].
    Voicemail(VoicemailInput),
    /// A message-store change: fetch the new voicemail records (by id, or list by date when
    /// no ids are named) if `has_new_voicemail`.
    MessageStore {
        /// The extension in the event path (`~` as given).
        extension_id: Option<String>,
        /// Whether a `VoiceMail` change reports new messages.
        has_new_voicemail: bool,
        /// The new voicemail ids it names (often none).
        message_ids: Vec<String>,
    },
    /// The subscription renewal reminder.
    RenewalReminder {
        /// The subscription to renew.
        subscription_id: Option<String>,
    },
    /// The account's extension list changed: refresh the covered extensions.
    ExtensionList,
    /// An event kind the processor does not handle (kept in the inbox, counted, skipped).
    Unknown {
        /// The event path.
        event: String,
    },
}

/// Why a notification of a known kind could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpretError {
    /// A telephony body is unreadable.
    #[error(transparent)]
    Telephony(#[from] TelephonyError),
    /// A voicemail body is unreadable.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Interprets a notification by its event path.
///
/// # Errors
/// [`InterpretError`] when a telephony or voicemail body lacks what it needs.
pub fn interpret(n: &Notification) -> Result<Interpreted, InterpretError> {
    Ok(match n.path() {
        EventPath::Telephony { .. } => {
            let mut e = TelephonyEvent::from_body(&n.body)?;
            e.event_time = e.event_time.or(n.timestamp);
            Interpreted::Telephony(e)
        }
        EventPath::Voicemail { .. } => Interpreted::Voicemail(VoicemailInput::from_value(&n.body)?),
        EventPath::MessageStore { extension_id } => {
            let (has_new_voicemail, message_ids) = new_voicemail_ids(&n.body);
            Interpreted::MessageStore {
                extension_id,
                has_new_voicemail,
                message_ids,
            }
        }
        EventPath::RenewalReminder => Interpreted::RenewalReminder {
            subscription_id: n.subscription_id.clone(),
        },
        EventPath::ExtensionList => Interpreted::ExtensionList,
        EventPath::CallLog | EventPath::Other => Interpreted::Unknown {
            event: n.event.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Interpreted, InterpretError> {
        interpret(&Notification::parse(text).unwrap())
    }

    #[test]
    fn each_real_sample_is_interpreted_by_its_path() {
        let t = parse(include_str!(
            "../../../../fixtures/ringcentral/examples/telephony-session-answered-outbound.json"
        ));
        assert!(matches!(t, Ok(Interpreted::Telephony(_))));
        let v = parse(include_str!(
            "../../../../fixtures/ringcentral/examples/voicemail-event.json"
        ));
        assert!(matches!(v, Ok(Interpreted::Voicemail(_))));
        let m = parse(include_str!(
            "../../../../fixtures/ringcentral/examples/message-store-event.json"
        ));
        assert_eq!(
            m,
            Ok(Interpreted::MessageStore {
                extension_id: Some("406149828004".into()),
                has_new_voicemail: false,
                message_ids: vec![],
            })
        );
    }

    #[test]
    fn reminders_unknown_kinds_and_broken_bodies_are_told_apart() {
        let r = parse(
            r#"{"event":"/restapi/v1.0/subscription/~?threshold=60&interval=15","subscriptionId":"s1","body":{"expiresIn":50}}"#,
        );
        assert_eq!(
            r,
            Ok(Interpreted::RenewalReminder {
                subscription_id: Some("s1".into())
            })
        );
        let u = parse(r#"{"event":"/restapi/v1.0/account/~/extension/~/presence","body":{}}"#);
        assert!(matches!(u, Ok(Interpreted::Unknown { .. })));
        let bad = parse(
            r#"{"event":"/restapi/v1.0/account/1/telephony/sessions","body":{"sequence":1}}"#,
        );
        assert_eq!(
            bad,
            Err(InterpretError::Telephony(TelephonyError::Missing(
                "telephonySessionId"
            )))
        );
        let no_time = parse(
            r#"{"event":"/restapi/v1.0/account/1/telephony/sessions","timestamp":"2020-01-01T00:00:00Z","body":{"sequence":1,"telephonySessionId":"s-1"}}"#,
        );
        match no_time {
            Ok(Interpreted::Telephony(e)) => assert!(e.event_time.is_some()),
            other => panic!("unexpected {other:?}"),
        }
    }
}
