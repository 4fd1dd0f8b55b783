//! The message store (API.md §5.4): voicemails over a date window, paged by
//! `navigation.nextPage.uri`, into domain [`VoicemailMessage`]s.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::RingCentral;
use super::call_log::{Direction, Party, rc_time};
use super::error::ApiError;
use super::governor::{ApiGroup, Priority};
use super::lenient::{self, lenient_enum};
use super::subscriptions::path_segment;

lenient_enum! {
    /// `vmTranscriptionStatus`.
    TranscriptionStatus {
        /// No transcription.
        NotAvailable => "NotAvailable",
        /// Being transcribed.
        InProgress => "InProgress",
        /// Timed out.
        TimedOut => "TimedOut",
        /// Done.
        Completed => "Completed",
        /// Partly done.
        CompletedPartially => "CompletedPartially",
        /// Failed.
        Failed => "Failed",
        /// Unknown.
        Unknown => "Unknown",
    }
}

lenient_enum! {
    /// `availability` of a message.
    Availability {
        /// Present.
        Alive => "Alive",
        /// Deleted (recoverable).
        Deleted => "Deleted",
        /// Purged.
        Purged => "Purged",
    }
}

lenient_enum! {
    /// `type` of a message (`VoiceMail` in the store, `Voicemail` in events: both match).
    MessageType {
        /// Voicemail.
        VoiceMail => "VoiceMail",
        /// Fax.
        Fax => "Fax",
        /// SMS.
        Sms => "SMS",
        /// Pager.
        Pager => "Pager",
    }
}

/// A voicemail from the message store or message sync.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailMessage {
    /// Message id.
    pub id: String,
    /// The message type (voicemail unless a caller asked for others).
    pub message_type: Option<MessageType>,
    /// Caller.
    pub from: Option<Party>,
    /// Recipients.
    pub to: Vec<Party>,
    /// Audio length in seconds (`vmDuration` of the audio attachment).
    pub duration_s: Option<u64>,
    /// Transcription state.
    pub transcription_status: TranscriptionStatus,
    /// When it was left; absent on deleted stubs from message sync.
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    pub last_modified: Option<DateTime<Utc>>,
    /// `Alive`, `Deleted`, `Purged`.
    pub availability: Option<Availability>,
    /// Direction.
    pub direction: Option<Direction>,
    /// RingCentral's record as received.
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(deserialize_with = "lenient::id")]
    id: String,
    #[serde(default, rename = "type")]
    message_type: Option<MessageType>,
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    to: Vec<Party>,
    #[serde(default)]
    attachments: Vec<WireAttachment>,
    #[serde(default)]
    vm_transcription_status: Option<TranscriptionStatus>,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    creation_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    last_modified_time: Option<DateTime<Utc>>,
    #[serde(default)]
    availability: Option<Availability>,
    #[serde(default)]
    direction: Option<Direction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttachment {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_seconds")]
    vm_duration: Option<u64>,
}

/// Parses one message-store record.
///
/// # Errors
/// [`ApiError::Decode`] naming the JSON path of the problem.
pub fn parse_message(raw: serde_json::Value) -> Result<VoicemailMessage, ApiError> {
    let w: WireMessage = serde_path_to_error::deserialize(&raw).map_err(|e| ApiError::Decode {
        what: "message record",
        message: e.to_string(),
    })?;
    let duration_s = w
        .attachments
        .iter()
        .find(|a| a.kind.as_deref() == Some("AudioRecording"))
        .or(w.attachments.first())
        .and_then(|a| a.vm_duration);
    Ok(VoicemailMessage {
        id: w.id,
        message_type: w.message_type,
        from: w.from,
        to: w.to,
        duration_s,
        transcription_status: w
            .vm_transcription_status
            .unwrap_or(TranscriptionStatus::NotAvailable),
        created_at: w.creation_time,
        last_modified: w.last_modified_time,
        availability: w.availability,
        direction: w.direction,
        raw,
    })
}

/// A voicemail listing.
#[derive(Debug, Clone)]
pub struct VoicemailQuery {
    /// The extension (`~` for the authorised user).
    pub extension_id: String,
    /// Window start (always sent: the default is only the last 24 h).
    pub date_from: DateTime<Utc>,
    /// Window end (`None` = now).
    pub date_to: Option<DateTime<Utc>>,
    /// Records per page (1–1000).
    pub per_page: u32,
    /// Live or backfill.
    pub priority: Priority,
}

impl RingCentral {
    /// Lists voicemails over a window, following every `navigation.nextPage.uri`
    /// (Light group).
    ///
    /// # Errors
    /// Any [`ApiError`]; [`ApiError::Decode`] if a record cannot be read or paging never ends.
    #[tracing::instrument(skip_all, fields(account = %self.account()))]
    pub async fn voicemails(&self, q: &VoicemailQuery) -> Result<Vec<VoicemailMessage>, ApiError> {
        super::call_log::check_per_page(q.per_page)?;
        let path = format!(
            "/restapi/v1.0/account/~/extension/{}/message-store",
            path_segment(&q.extension_id)?
        );
        let mut request = super::http::ApiRequest::new(Method::GET, path, ApiGroup::Light)
            .priority(q.priority)
            .query("messageType", "VoiceMail")
            .query("dateFrom", rc_time(q.date_from))
            .query("perPage", q.per_page);
        if let Some(to) = q.date_to {
            request = request.query("dateTo", rc_time(to));
        }
        self.all_pages(
            request,
            ("message-store page", "message-store paging"),
            parse_message,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let bytes = std::fs::read(format!(
            "{}/../../fixtures/ringcentral/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture exists");
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_message_store_voicemail_parses_with_its_numeric_id_and_duration() {
        let m = parse_message(fixture("message-store-voicemail-record.json")).unwrap();
        assert_eq!(m.id, "402406985008");
        assert_eq!(m.message_type, Some(MessageType::VoiceMail));
        assert_eq!(m.duration_s, Some(25));
        assert_eq!(m.transcription_status, TranscriptionStatus::NotAvailable);
        assert!(m.created_at.is_some());
    }

    #[test]
    fn a_voicemail_event_body_parses_too() {
        let event = fixture("voicemail-event.json");
        let m = parse_message(event["body"].clone()).unwrap();
        assert_eq!(m.message_type, Some(MessageType::VoiceMail));
        assert!(m.from.is_some());
    }

    #[test]
    fn a_deleted_stub_from_message_sync_parses() {
        let m = parse_message(serde_json::json!({"id": 5, "availability": "Purged"})).unwrap();
        assert_eq!(m.availability, Some(Availability::Purged));
        assert_eq!(m.created_at, None);
    }
}
