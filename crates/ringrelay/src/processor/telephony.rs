//! The typed telephony session event (`TelephonySessionsEventBody`, API.md §4.3): one
//! session, a `sequence`, and (in practice) one party per event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient;

/// Why a telephony body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TelephonyError {
    /// The body is not a JSON object.
    #[error("telephony body is not a JSON object")]
    NotAnObject,
    /// A required field is missing or of the wrong type.
    #[error("telephony body has no usable `{0}`")]
    Missing(&'static str),
}

/// A party status code. RingCentral's spec and guide spell some differently (`VoiceMail` /
/// `Voicemail`, `VoiceMailScreening` / `VMScreening`), so parsing ignores case, and unknown
/// codes are kept rather than rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusCode {
    /// Outbound call being set up.
    Setup,
    /// Ringing.
    Proceeding,
    /// Connected.
    Answered,
    /// The party's leg ended.
    Disconnected,
    /// Transferred or bridged to another session (`peerId`).
    Gone,
    /// Parked.
    Parked,
    /// On hold.
    Hold,
    /// Sent to voicemail.
    VoiceMail,
    /// Receiving a fax.
    FaxReceive,
    /// `Tds`.
    Tds,
    /// Voicemail screening.
    VoiceMailScreening,
    /// A code this version does not know, as sent.
    Other(String),
}

impl StatusCode {
    /// Parses a status code leniently.
    pub fn parse(code: &str) -> Self {
        const KNOWN: [(&str, StatusCode); 12] = [
            ("Setup", StatusCode::Setup),
            ("Proceeding", StatusCode::Proceeding),
            ("Answered", StatusCode::Answered),
            ("Disconnected", StatusCode::Disconnected),
            ("Gone", StatusCode::Gone),
            ("Parked", StatusCode::Parked),
            ("Hold", StatusCode::Hold),
            ("VoiceMail", StatusCode::VoiceMail),
            ("FaxReceive", StatusCode::FaxReceive),
            ("Tds", StatusCode::Tds),
            ("VoiceMailScreening", StatusCode::VoiceMailScreening),
            ("VMScreening", StatusCode::VoiceMailScreening),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| lenient::same_word(name, code))
            .map_or_else(|| StatusCode::Other(code.to_owned()), |(_, c)| c)
    }

    /// Whether the party's leg is over (`Disconnected` or `Gone`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Disconnected | Self::Gone)
    }
}

/// `status.reason` values that mean the party was transferred (API.md §4.3).
const TRANSFER_REASONS: [&str; 4] = [
    "BlindTransfer",
    "AttendedTransfer",
    "RccTransfer",
    "DtmfTransfer",
];

/// Whether a `status.reason` is a transfer reason.
pub fn is_transfer_reason(reason: &str) -> bool {
    TRANSFER_REASONS
        .iter()
        .any(|r| lenient::same_word(r, reason))
}

/// Call direction relative to the party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Coming in to the party.
    Inbound,
    /// Going out from the party.
    Outbound,
}

impl Direction {
    /// Parses `Inbound` / `Outbound` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        if lenient::same_word(s, "Inbound") {
            Some(Self::Inbound)
        } else if lenient::same_word(s, "Outbound") {
            Some(Self::Outbound)
        } else {
            None
        }
    }

    /// The wire form (`Inbound` / `Outbound`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "Inbound",
            Self::Outbound => "Outbound",
        }
    }
}

/// One end of a call (`from` / `to`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// E.164 number, or an extension number like `102`.
    pub phone_number: Option<String>,
    /// Caller-id or extension name.
    pub name: Option<String>,
    /// The extension id when the end is one of the account's extensions.
    pub extension_id: Option<String>,
}

impl Endpoint {
    /// Reads an endpoint object (missing → empty).
    pub fn from_value(v: Option<&Value>) -> Self {
        let get = |k: &str| v.and_then(|v| v.get(k));
        Self {
            phone_number: lenient::text(get("phoneNumber")),
            name: lenient::text(get("name")),
            extension_id: lenient::id_string(get("extensionId"))
                .or_else(|| lenient::id_string(get("extension").and_then(|e| e.get("id")))),
        }
    }

    /// The DESIGN §3 form: `{phone_number, name, extension_id}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "phone_number": self.phone_number,
            "name": self.name,
            "extension_id": self.extension_id,
        })
    }
}

/// One party in a telephony event.
#[derive(Clone, Debug, PartialEq)]
pub struct Party {
    /// Party id (`p-…`).
    pub id: String,
    /// The account's extension, absent for external (PSTN) parties.
    pub extension_id: Option<String>,
    /// Direction relative to the party.
    pub direction: Option<Direction>,
    /// Caller.
    pub from: Endpoint,
    /// Callee.
    pub to: Endpoint,
    /// `status.code`.
    pub status: StatusCode,
    /// `status.reason`, if any.
    pub reason: Option<String>,
    /// `missedCall`.
    pub missed_call: bool,
    /// `queueCall`.
    pub queue_call: bool,
}

/// A telephony session event body.
#[derive(Clone, Debug, PartialEq)]
pub struct TelephonyEvent {
    /// Per-session order; events can arrive out of order.
    pub sequence: i64,
    /// The legacy session id (the call log's `sessionId`).
    pub session_id: Option<String>,
    /// The telephony session id (`s-…`).
    pub telephony_session_id: String,
    /// `eventTime`, if readable.
    pub event_time: Option<DateTime<Utc>>,
    /// The parties (one per event in every real sample).
    pub parties: Vec<Party>,
}

impl TelephonyEvent {
    /// Reads a telephony body. Parties without an id are skipped; a missing `eventTime` is
    /// left `None` (callers fall back to the envelope `timestamp`).
    ///
    /// # Errors
    /// [`TelephonyError`] when the body is not an object or lacks `telephonySessionId` or
    /// `sequence`.
    pub fn from_body(body: &Value) -> Result<Self, TelephonyError> {
        let obj = body.as_object().ok_or(TelephonyError::NotAnObject)?;
        let telephony_session_id = lenient::id_string(obj.get("telephonySessionId"))
            .ok_or(TelephonyError::Missing("telephonySessionId"))?;
        let sequence =
            lenient::integer(obj.get("sequence")).ok_or(TelephonyError::Missing("sequence"))?;
        let parties = obj
            .get("parties")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(party).collect())
            .unwrap_or_default();
        Ok(Self {
            sequence,
            session_id: lenient::id_string(obj.get("sessionId")),
            telephony_session_id,
            event_time: lenient::timestamp_field(obj.get("eventTime")),
            parties,
        })
    }
}

fn party(v: &Value) -> Option<Party> {
    let status = v.get("status");
    Some(Party {
        id: lenient::id_string(v.get("id"))?,
        extension_id: lenient::id_string(v.get("extensionId")),
        direction: v
            .get("direction")
            .and_then(Value::as_str)
            .and_then(Direction::parse),
        from: Endpoint::from_value(v.get("from")),
        to: Endpoint::from_value(v.get("to")),
        status: StatusCode::parse(
            status
                .and_then(|s| s.get("code"))
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
        reason: lenient::text(status.and_then(|s| s.get("reason"))),
        missed_call: lenient::flag(v.get("missedCall")),
        queue_call: lenient::flag(v.get("queueCall")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_codes_parse_in_every_spelling_and_keep_unknown_ones() {
        assert_eq!(StatusCode::parse("Voicemail"), StatusCode::VoiceMail);
        assert_eq!(
            StatusCode::parse("VMScreening"),
            StatusCode::VoiceMailScreening
        );
        assert_eq!(StatusCode::parse("answered"), StatusCode::Answered);
        assert_eq!(
            StatusCode::parse("Teleporting"),
            StatusCode::Other("Teleporting".into())
        );
        assert!(is_transfer_reason("BlindTransfer"));
        assert!(!is_transfer_reason("CallFinished"));
    }

    #[test]
    fn the_real_inbound_setup_sample_reads() {
        let text = include_str!(
            "../../../../fixtures/ringcentral/examples/telephony-session-setup-inbound.json"
        );
        let n = super::super::envelope::Notification::parse(text).unwrap();
        let e = TelephonyEvent::from_body(&n.body).unwrap();
        assert!(!e.parties.is_empty());
        assert!(e.telephony_session_id.len() > 2);
        assert_eq!(e.parties[0].status, StatusCode::Setup);
    }

    #[test]
    fn a_body_without_a_session_or_sequence_is_an_error() {
        assert_eq!(
            TelephonyEvent::from_body(&json!({"sequence": 1})),
            Err(TelephonyError::Missing("telephonySessionId"))
        );
        assert_eq!(
            TelephonyEvent::from_body(&json!({"telephonySessionId": "s-1"})),
            Err(TelephonyError::Missing("sequence"))
        );
        assert_eq!(
            TelephonyEvent::from_body(&json!(3)),
            Err(TelephonyError::NotAnObject)
        );
        let e = TelephonyEvent::from_body(&json!({
            "telephonySessionId": "s-1", "sequence": "4",
            "parties": [{"status": {"code": "Answered"}}, {"id": "p-1"}]
        }))
        .unwrap();
        assert_eq!(e.parties.len(), 1, "a party without an id is skipped");
        assert_eq!(e.parties[0].status, StatusCode::Other(String::new()));
    }
}
