//! Voicemail: the voicemail event body and the message-store record (same shape, API.md
//! §4.4/§5.4) → `voicemail.received`; the message-store event → which ids to fetch.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::account::AccountId;
use crate::activity::{Activity, ActivityKind, ActivitySource};

use super::lenient;
use super::telephony::Endpoint;

/// Why a record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The record is not a JSON object.
    #[error("record is not a JSON object")]
    NotAnObject,
    /// A required field is missing or unreadable.
    #[error("record has no usable `{0}`")]
    Missing(&'static str),
}

/// A voicemail, from a voicemail event body or a message-store record: the fields
/// `voicemail.received` needs. Build it with [`VoicemailInput::from_value`] from either.
#[derive(Clone, Debug, PartialEq)]
pub struct VoicemailInput {
    /// Message id (`id`, string or number).
    pub message_id: String,
    /// `type` (`VoiceMail` in practice, `Voicemail` in the spec).
    pub message_type: Option<String>,
    /// The caller.
    pub from: Endpoint,
    /// `creationTime`.
    pub created_at: DateTime<Utc>,
    /// `vmDuration` of the audio attachment, in seconds.
    pub duration_s: Option<i64>,
    /// `vmTranscriptionStatus`.
    pub transcription_status: Option<String>,
    /// `availability` (`Alive`, `Deleted`, `Purged`).
    pub availability: Option<String>,
    /// The record as received, kept under `data.rc`.
    pub raw: Value,
}

impl VoicemailInput {
    /// Reads a voicemail event body or message-store record.
    ///
    /// # Errors
    /// [`RecordError`] when it is not an object or lacks `id` or `creationTime`.
    pub fn from_value(v: &Value) -> Result<Self, RecordError> {
        let obj = v.as_object().ok_or(RecordError::NotAnObject)?;
        let audio = obj
            .get("attachments")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter().find(|x| {
                    x.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| lenient::same_word(t, "AudioRecording"))
                })
            });
        Ok(Self {
            message_id: lenient::id_string(obj.get("id")).ok_or(RecordError::Missing("id"))?,
            message_type: lenient::text(obj.get("type")),
            from: Endpoint::from_value(obj.get("from")),
            created_at: lenient::timestamp_field(obj.get("creationTime"))
                .ok_or(RecordError::Missing("creationTime"))?,
            duration_s: lenient::integer(audio.and_then(|a| a.get("vmDuration"))),
            transcription_status: lenient::text(obj.get("vmTranscriptionStatus")),
            availability: lenient::text(obj.get("availability")),
            raw: v.clone(),
        })
    }

    /// Whether this is a voicemail at all (the message store also holds SMS, fax, pager).
    pub fn is_voicemail(&self) -> bool {
        self.message_type
            .as_deref()
            .is_none_or(|t| lenient::same_word(t, "VoiceMail"))
    }
}

/// The key of a voicemail's activity: `{account}:voicemail:{messageId}`, the same from the
/// event and from the message store.
pub fn voicemail_key(account: &AccountId, message_id: &str) -> String {
    format!("{account}:voicemail:{message_id}")
}

/// `voicemail.received` for a voicemail, or `None` when the record is not a voicemail or was
/// deleted or purged.
pub fn voicemail_received(
    vm: &VoicemailInput,
    account: &AccountId,
    source: ActivitySource,
) -> Option<Activity> {
    let gone = vm
        .availability
        .as_deref()
        .is_some_and(|a| !lenient::same_word(a, "Alive"));
    if !vm.is_voicemail() || gone {
        return None;
    }
    let mut data = Map::new();
    data.insert("message_id".into(), vm.message_id.clone().into());
    data.insert("from".into(), vm.from.to_json());
    data.insert("duration_s".into(), json!(vm.duration_s));
    data.insert(
        "transcription_status".into(),
        json!(vm.transcription_status),
    );
    data.insert("rc".into(), vm.raw.clone());
    Some(Activity::new(
        voicemail_key(account, &vm.message_id),
        ActivityKind::VoicemailReceived,
        account.clone(),
        format!("voicemail:{}", vm.message_id),
        source,
        vm.created_at,
        data,
    ))
}

/// From a message-store event body (API.md §4.5): whether it reports new voicemail, and the
/// new message ids it names (often none: then list the message store by date).
pub fn new_voicemail_ids(body: &Value) -> (bool, Vec<String>) {
    let mut any = false;
    let mut ids = Vec::new();
    for c in body
        .get("changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let is_vm = c
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| lenient::same_word(t, "VoiceMail"));
        if !is_vm {
            continue;
        }
        let listed: Vec<String> = c
            .get("newMessageIds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| lenient::id_string(Some(x)))
                    .collect()
            })
            .unwrap_or_default();
        any |= lenient::integer(c.get("newCount")).unwrap_or(0) > 0 || !listed.is_empty();
        ids.extend(listed);
    }
    (any, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::envelope::Notification;

    fn acct() -> AccountId {
        AccountId::parse("acme").unwrap()
    }

    const EVENT: &str =
        include_str!("../../../../fixtures/ringcentral/examples/voicemail-event.json");
    const RECORD: &str = include_str!(
        "../../../../fixtures/ringcentral/examples/message-store-voicemail-record.json"
    );

    #[test]
    fn the_voicemail_event_yields_voicemail_received() {
        let n = Notification::parse(EVENT).unwrap();
        let vm = VoicemailInput::from_value(&n.body).unwrap();
        let a = voicemail_received(&vm, &acct(), ActivitySource::Webhook).unwrap();
        assert_eq!(a.key, "acme:voicemail:82063400004");
        assert_eq!(a.payload["type"], "voicemail.received");
        assert_eq!(a.payload["data"]["duration_s"], 3);
        assert_eq!(a.payload["data"]["transcription_status"], "Completed");
        assert_eq!(a.payload["data"]["from"]["phone_number"], "+18664320079");
    }

    #[test]
    fn the_event_and_the_record_of_one_voicemail_share_a_key_and_id() {
        let rec: Value = serde_json::from_str(RECORD).unwrap();
        let mut ev = Notification::parse(EVENT).unwrap().body;
        ev["id"] = rec["id"].to_string().into(); // the event sends the id as a string
        let a = voicemail_received(
            &VoicemailInput::from_value(&ev).unwrap(),
            &acct(),
            ActivitySource::Webhook,
        )
        .unwrap();
        let b = voicemail_received(
            &VoicemailInput::from_value(&rec).unwrap(),
            &acct(),
            ActivitySource::Backfill,
        )
        .unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.id, b.id);
        assert_eq!(b.payload["data"]["duration_s"], 25);
    }

    #[test]
    fn non_voicemail_or_deleted_messages_yield_nothing_and_bad_records_are_errors() {
        let mut rec: Value = serde_json::from_str(RECORD).unwrap();
        rec["type"] = "SMS".into();
        assert!(
            voicemail_received(
                &VoicemailInput::from_value(&rec).unwrap(),
                &acct(),
                ActivitySource::Backfill
            )
            .is_none()
        );
        rec["type"] = "VoiceMail".into();
        rec["availability"] = "Purged".into();
        assert!(
            voicemail_received(
                &VoicemailInput::from_value(&rec).unwrap(),
                &acct(),
                ActivitySource::Backfill
            )
            .is_none()
        );
        assert_eq!(
            VoicemailInput::from_value(&json!({"id": 1})),
            Err(RecordError::Missing("creationTime"))
        );
        assert_eq!(
            VoicemailInput::from_value(&json!([])),
            Err(RecordError::NotAnObject)
        );
    }

    #[test]
    fn message_store_events_report_new_voicemail() {
        let ms = Notification::parse(include_str!(
            "../../../../fixtures/ringcentral/examples/message-store-event.json"
        ))
        .unwrap();
        assert_eq!(
            new_voicemail_ids(&ms.body),
            (false, vec![]),
            "the sample is SMS and pager only"
        );
        let body =
            json!({"changes": [{"type": "VoiceMail", "newCount": 1, "newMessageIds": [7, "8"]}]});
        assert_eq!(
            new_voicemail_ids(&body),
            (true, vec!["7".to_owned(), "8".to_owned()])
        );
    }
}
