//! The call log (API.md §5.1): account or extension level, by date window, Detailed view,
//! paged by following `navigation.nextPage.uri`, into domain [`CallLogRecord`]s that keep
//! RingCentral's own record in `raw`.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::RingCentral;
use super::error::ApiError;
use super::governor::{ApiGroup, Priority};
use super::http::{ApiRequest, decode};
use super::lenient::{self, lenient_enum};
use super::subscriptions::path_segment;

/// Most pages one listing follows before giving up (a server looping its links).
const MAX_PAGES: usize = 1_000;

lenient_enum! {
    /// Call direction.
    Direction {
        /// Into the account.
        Inbound => "Inbound",
        /// Out of the account.
        Outbound => "Outbound",
    }
}

lenient_enum! {
    /// A call's result (`CallResultEnum`); the many rarer values are kept as `Other`.
    CallResult {
        /// Answered (inbound).
        Accepted => "Accepted",
        /// Connected (outbound).
        CallConnected => "Call connected",
        /// Still running.
        InProgress => "In Progress",
        /// Missed.
        Missed => "Missed",
        /// Went to voicemail.
        Voicemail => "Voicemail",
        /// Sent to voicemail.
        SentToVoicemail => "Sent to Voicemail",
        /// Busy.
        Busy => "Busy",
        /// Rejected.
        Rejected => "Rejected",
        /// Not answered.
        NoAnswer => "No Answer",
        /// Caller hung up.
        HangUp => "Hang Up",
        /// Abandoned (e.g. in a queue).
        Abandoned => "Abandoned",
        /// Answered on another device.
        AnsweredElsewhere => "Answered Elsewhere",
        /// Unknown.
        Unknown => "Unknown",
    }
}

/// One side of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    /// E.164 number.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Short extension number.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub extension_number: Option<String>,
    /// The extension's id, when the party is one of the account's.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub extension_id: Option<String>,
    /// Caller-id name.
    #[serde(default)]
    pub name: Option<String>,
    /// Location text.
    #[serde(default)]
    pub location: Option<String>,
}

/// A call recording.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// Recording id.
    #[serde(deserialize_with = "lenient::id")]
    pub id: String,
    /// Metadata URI.
    #[serde(default)]
    pub uri: Option<String>,
    /// `Automatic` or `OnDemand`.
    #[serde(default, rename = "type")]
    pub recording_type: Option<String>,
    /// Where the audio is (media host).
    #[serde(default)]
    pub content_uri: Option<String>,
}

/// One leg of a Detailed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLogLeg {
    /// e.g. `PstnToSip`, `Accept`, `FindMe`.
    pub leg_type: Option<String>,
    /// Whether this is the master leg.
    pub master: bool,
    /// Start.
    pub start_time: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration_s: u64,
    /// Direction.
    pub direction: Option<Direction>,
    /// Result.
    pub result: Option<CallResult>,
    /// Caller.
    pub from: Option<Party>,
    /// Callee.
    pub to: Option<Party>,
    /// The extension the leg belongs to.
    pub extension_id: Option<String>,
    /// The leg's recording.
    pub recording: Option<Recording>,
}

/// A call-log record.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLogRecord {
    /// Record id.
    pub id: String,
    /// Legacy session id.
    pub session_id: Option<String>,
    /// Telephony session id: the key joining the record to telephony events.
    pub telephony_session_id: Option<String>,
    /// Start.
    pub start_time: DateTime<Utc>,
    /// Seconds.
    pub duration_s: u64,
    /// Direction.
    pub direction: Direction,
    /// Result (absent on some records).
    pub result: Option<CallResult>,
    /// `Voice` or `Fax`.
    pub call_type: Option<String>,
    /// e.g. `Phone Call`, `VoIP Call`.
    pub action: Option<String>,
    /// Caller.
    pub from: Option<Party>,
    /// Callee.
    pub to: Option<Party>,
    /// The extension the record belongs to.
    pub extension_id: Option<String>,
    /// The recording, when there is one.
    pub recording: Option<Recording>,
    /// The linked voicemail or fax message id.
    pub message_id: Option<String>,
    /// Deleted (ISync).
    pub deleted: bool,
    /// Last change.
    pub last_modified: Option<DateTime<Utc>>,
    /// Legs (Detailed view).
    pub legs: Vec<CallLogLeg>,
    /// RingCentral's record as received.
    pub raw: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    #[serde(deserialize_with = "lenient::id")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_id")]
    session_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_id")]
    telephony_session_id: Option<String>,
    #[serde(deserialize_with = "lenient::timestamp")]
    start_time: DateTime<Utc>,
    #[serde(default, deserialize_with = "lenient::opt_seconds")]
    duration: Option<u64>,
    direction: Direction,
    #[serde(default)]
    result: Option<CallResult>,
    #[serde(default, rename = "type")]
    call_type: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    to: Option<Party>,
    #[serde(default)]
    extension: Option<WireRef>,
    #[serde(default)]
    recording: Option<Recording>,
    #[serde(default)]
    message: Option<WireRef>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    last_modified_time: Option<DateTime<Utc>>,
    #[serde(default)]
    legs: Vec<WireLeg>,
}

#[derive(Deserialize)]
struct WireRef {
    #[serde(default, deserialize_with = "lenient::opt_id")]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLeg {
    #[serde(default)]
    leg_type: Option<String>,
    #[serde(default)]
    master: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::opt_seconds")]
    duration: Option<u64>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    result: Option<CallResult>,
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    to: Option<Party>,
    #[serde(default)]
    extension: Option<WireRef>,
    #[serde(default)]
    recording: Option<Recording>,
}

#[derive(Deserialize)]
struct WirePage {
    #[serde(default)]
    records: Vec<serde_json::Value>,
    #[serde(default)]
    navigation: Option<WireNavigation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNavigation {
    #[serde(default)]
    next_page: Option<WireLink>,
}

#[derive(Deserialize)]
struct WireLink {
    uri: String,
}

/// Parses one call-log record (as listed, synced or read singly).
///
/// # Errors
/// [`ApiError::Decode`] naming the JSON path of the problem.
pub fn parse_record(raw: serde_json::Value) -> Result<CallLogRecord, ApiError> {
    let w: WireRecord = serde_path_to_error::deserialize(&raw).map_err(|e| ApiError::Decode {
        what: "call-log record",
        message: e.to_string(),
    })?;
    Ok(CallLogRecord {
        id: w.id,
        session_id: w.session_id,
        telephony_session_id: w.telephony_session_id,
        start_time: w.start_time,
        duration_s: w.duration.unwrap_or(0),
        direction: w.direction,
        result: w.result,
        call_type: w.call_type,
        action: w.action,
        from: w.from,
        to: w.to,
        extension_id: w.extension.and_then(|e| e.id),
        recording: w.recording,
        message_id: w.message.and_then(|m| m.id),
        deleted: w.deleted.unwrap_or(false),
        last_modified: w.last_modified_time,
        legs: w.legs.into_iter().map(leg).collect(),
        raw,
    })
}

fn leg(w: WireLeg) -> CallLogLeg {
    CallLogLeg {
        leg_type: w.leg_type,
        master: w.master.unwrap_or(false),
        start_time: w.start_time,
        duration_s: w.duration.unwrap_or(0),
        direction: w.direction,
        result: w.result,
        from: w.from,
        to: w.to,
        extension_id: w.extension.and_then(|e| e.id),
        recording: w.recording,
    }
}

/// A list of records plus the link to the next page.
pub(crate) fn parse_page(
    body: &[u8],
    what: &'static str,
) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
    let page: WirePage = decode(body, what)?;
    let next = page.navigation.and_then(|n| n.next_page).map(|l| l.uri);
    Ok((page.records, next))
}

/// Whose call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallLogScope {
    /// The whole account (`/account/~/call-log`, needs `FullCompanyCallLog`).
    Account,
    /// One extension (`~` for the authorised user).
    Extension(String),
}

impl CallLogScope {
    pub(crate) fn path(&self, leaf: &str) -> Result<String, ApiError> {
        Ok(match self {
            Self::Account => format!("/restapi/v1.0/account/~/{leaf}"),
            Self::Extension(id) => format!(
                "/restapi/v1.0/account/~/extension/{}/{leaf}",
                path_segment(id)?
            ),
        })
    }
}

/// A call-log listing.
#[derive(Debug, Clone)]
pub struct CallLogQuery {
    /// Whose log.
    pub scope: CallLogScope,
    /// Window start (always sent: RingCentral's default is only the last 24 h).
    pub date_from: DateTime<Utc>,
    /// Window end (`None` = now).
    pub date_to: Option<DateTime<Utc>>,
    /// Records per page (1–1000).
    pub per_page: u32,
    /// Live (after a call) or backfill.
    pub priority: Priority,
}

impl CallLogQuery {
    /// The whole account's log over a window, 250 per page, live priority.
    pub fn account(date_from: DateTime<Utc>, date_to: Option<DateTime<Utc>>) -> Self {
        Self {
            scope: CallLogScope::Account,
            date_from,
            date_to,
            per_page: 250,
            priority: Priority::Live,
        }
    }
}

pub(crate) fn rc_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl RingCentral {
    /// Lists the call log over a window in the Detailed view, following every
    /// `navigation.nextPage.uri` (Heavy group, one request per page).
    ///
    /// # Errors
    /// Any [`ApiError`]; [`ApiError::Decode`] if a record cannot be read or paging never ends.
    #[tracing::instrument(skip_all, fields(account = %self.account(), scope = ?q.scope))]
    pub async fn call_log(&self, q: &CallLogQuery) -> Result<Vec<CallLogRecord>, ApiError> {
        check_per_page(q.per_page)?;
        let mut request = ApiRequest::new(Method::GET, q.scope.path("call-log")?, ApiGroup::Heavy)
            .priority(q.priority)
            .query("view", "Detailed")
            .query("dateFrom", rc_time(q.date_from))
            .query("perPage", q.per_page);
        if let Some(to) = q.date_to {
            request = request.query("dateTo", rc_time(to));
        }
        self.all_pages(request, ("call-log page", "call-log paging"), parse_record)
            .await
    }

    /// Runs `request` and follows every `navigation.nextPage.uri`, parsing each record with
    /// `parse` (at most [`MAX_PAGES`] pages; `what` names a page and the paging in errors).
    pub(crate) async fn all_pages<T>(
        &self,
        mut request: ApiRequest,
        what: (&'static str, &'static str),
        parse: impl Fn(serde_json::Value) -> Result<T, ApiError>,
    ) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let body = self.execute(&request).await?;
            let (records, next) = parse_page(&body, what.0)?;
            for raw in records {
                out.push(parse(raw)?);
            }
            match next {
                Some(uri) if uri != request.target || !request.query.is_empty() => {
                    request.target = uri;
                    request.query.clear();
                }
                _ => return Ok(out),
            }
        }
        Err(ApiError::Decode {
            what: what.1,
            message: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// `perPage` must be 1–1000.
pub(crate) fn check_per_page(per_page: u32) -> Result<(), ApiError> {
    if (1..=1000).contains(&per_page) {
        Ok(())
    } else {
        Err(ApiError::InvalidInput(format!(
            "perPage {per_page} is not in 1..=1000"
        )))
    }
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
    fn a_simple_list_parses_with_recordings_and_session_ids() {
        let (records, _) = parse_page(&fixture("call-log-list-simple.json"), "t").unwrap();
        let records: Vec<_> = records
            .into_iter()
            .map(|r| parse_record(r).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].direction, Direction::Inbound);
        assert_eq!(records[0].result, Some(CallResult::Accepted));
        assert_eq!(records[1].result, Some(CallResult::CallConnected));
        assert_eq!(records[0].duration_s, 194);
        assert!(records[0].recording.is_some());
        assert!(records[0].telephony_session_id.is_some());
        assert_eq!(records[0].raw["id"], "VgLcd1KWffJVzUA");
    }

    #[test]
    fn a_single_record_and_numeric_ids_parse() {
        let raw: serde_json::Value =
            serde_json::from_slice(&fixture("call-log-record-simple-with-recording.json")).unwrap();
        let r = parse_record(raw).unwrap();
        assert_eq!(r.session_id.as_deref(), Some("13916417004"));
        let raw = serde_json::json!({"id": 12, "sessionId": 34, "startTime": "2023-06-06T23:07:20+0000",
            "direction": "Sideways", "result": "Wrong Number", "extension": {"id": 99},
            "legs": [{"legType": "Accept", "master": true, "duration": 3}]});
        let r = parse_record(raw).unwrap();
        assert_eq!((r.id.as_str(), r.session_id.as_deref()), ("12", Some("34")));
        assert_eq!(r.direction, Direction::Other("Sideways".into()));
        assert_eq!(r.result, Some(CallResult::Other("Wrong Number".into())));
        assert_eq!(r.extension_id.as_deref(), Some("99"));
        assert!(r.legs[0].master);
    }

    #[test]
    fn a_record_without_a_start_time_is_a_decode_error_naming_the_field() {
        let err = parse_record(serde_json::json!({"id": "x", "direction": "Inbound"})).unwrap_err();
        assert!(err.to_string().contains("startTime"), "{err}");
    }
}
