//! Call-log records (API.md §5.1) → `call.logged`, `call.recording_ready`, and the
//! backfilled `call.missed` whose key equals the live one.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::account::AccountId;
use crate::activity::{Activity, ActivityKind, ActivitySource};

use super::derive::missed_key;
use super::lenient;
use super::messages::RecordError;
use super::telephony::{Direction, Endpoint};

/// A call-log record's recording (`{id, uri, type, contentUri}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingInput {
    /// Recording id.
    pub id: String,
    /// `Automatic` or `OnDemand`.
    pub kind: Option<String>,
    /// The media URI of the content.
    pub content_uri: Option<String>,
}

/// The fields of a call-log record (Simple or Detailed view, from `call-log`,
/// `call-log-sync` or a single-record GET) that activities need. Build it with
/// [`CallLogInput::from_value`] from one element of `records[]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallLogInput {
    /// Record id.
    pub id: String,
    /// Legacy `sessionId`.
    pub session_id: Option<String>,
    /// `telephonySessionId` (present in current records; the join key to live events).
    pub telephony_session_id: Option<String>,
    /// `partyId`, if sent.
    pub party_id: Option<String>,
    /// `startTime`.
    pub start_time: DateTime<Utc>,
    /// `duration` in seconds.
    pub duration_s: Option<i64>,
    /// `direction`.
    pub direction: Option<Direction>,
    /// `result` (`Accepted`, `Missed`, `Voicemail`, `In Progress`, …).
    pub result: Option<String>,
    /// Caller.
    pub from: Endpoint,
    /// Callee.
    pub to: Endpoint,
    /// The owning extension (`extension.id`), if sent.
    pub extension_id: Option<String>,
    /// The recording, if any.
    pub recording: Option<RecordingInput>,
    /// The record as received, kept under `data.rc`.
    pub raw: Value,
}

impl CallLogInput {
    /// Reads one call-log record.
    ///
    /// # Errors
    /// [`RecordError`] when it is not an object or lacks `id` or `startTime`.
    pub fn from_value(v: &Value) -> Result<Self, RecordError> {
        let obj = v.as_object().ok_or(RecordError::NotAnObject)?;
        let recording = obj.get("recording").and_then(|r| {
            Some(RecordingInput {
                id: lenient::id_string(r.get("id"))?,
                kind: lenient::text(r.get("type")),
                content_uri: lenient::text(r.get("contentUri")),
            })
        });
        Ok(Self {
            id: lenient::id_string(obj.get("id")).ok_or(RecordError::Missing("id"))?,
            session_id: lenient::id_string(obj.get("sessionId")),
            telephony_session_id: lenient::id_string(obj.get("telephonySessionId")),
            party_id: lenient::id_string(obj.get("partyId")),
            start_time: lenient::timestamp_field(obj.get("startTime"))
                .ok_or(RecordError::Missing("startTime"))?,
            duration_s: lenient::integer(obj.get("duration")),
            direction: obj
                .get("direction")
                .and_then(Value::as_str)
                .and_then(Direction::parse),
            result: lenient::text(obj.get("result")),
            from: Endpoint::from_value(obj.get("from")),
            to: Endpoint::from_value(obj.get("to")),
            extension_id: lenient::id_string(obj.get("extension").and_then(|e| e.get("id"))),
            recording,
            raw: v.clone(),
        })
    }

    /// Whether the call is over (its result is anything but `In Progress`).
    pub fn is_finished(&self) -> bool {
        self.result
            .as_deref()
            .is_some_and(|r| !lenient::same_word(r, "In Progress"))
    }

    /// Whether this is a voice call (`type` `Voice`, or absent); fax records are not calls.
    pub fn is_voice(&self) -> bool {
        lenient::text(self.raw.get("type")).is_none_or(|t| lenient::same_word(&t, "Voice"))
    }

    /// Whether this is an inbound call nobody answered (results `Missed`, `Voicemail`,
    /// `Sent to Voicemail`, `No Answer`, `Abandoned`).
    pub fn is_missed_inbound(&self) -> bool {
        const MISSED: [&str; 5] = [
            "Missed",
            "Voicemail",
            "Sent to Voicemail",
            "No Answer",
            "Abandoned",
        ];
        self.direction == Some(Direction::Inbound)
            && self
                .result
                .as_deref()
                .is_some_and(|r| MISSED.iter().any(|m| lenient::same_word(m, r)))
    }

    /// The call key (telephony session id, else `calllog:{id}`).
    fn call_key(&self) -> String {
        self.telephony_session_id
            .clone()
            .unwrap_or_else(|| format!("calllog:{}", self.id))
    }

    fn end_time(&self) -> DateTime<Utc> {
        self.start_time + chrono::Duration::seconds(self.duration_s.unwrap_or(0).max(0))
    }

    fn recording_json(&self) -> Value {
        self.recording.as_ref().map_or(
            Value::Null,
            |r| json!({"id": r.id, "type": r.kind, "content_uri": r.content_uri}),
        )
    }

    fn data(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert(
            "telephony_session_id".into(),
            json!(self.telephony_session_id),
        );
        d.insert("session_id".into(), json!(self.session_id));
        d.insert("party_id".into(), json!(self.party_id));
        d.insert(
            "direction".into(),
            json!(self.direction.map(Direction::as_str)),
        );
        d.insert("from".into(), self.from.to_json());
        d.insert("to".into(), self.to.to_json());
        let ext = self.extension_id.clone().or_else(|| match self.direction {
            Some(Direction::Inbound) => self.to.extension_id.clone(),
            _ => self.from.extension_id.clone(),
        });
        d.insert("extension_id".into(), json!(ext));
        d.insert(
            "call_log".into(),
            json!({
                "id": self.id,
                "start_time": self.start_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "duration_s": self.duration_s,
                "result": self.result,
                "recording": self.recording_json(),
            }),
        );
        d.insert("rc".into(), self.raw.clone());
        d
    }
}

/// The key of a record's `call.logged`: `{account}:calllog:{recordId}`.
pub fn logged_key(account: &AccountId, record_id: &str) -> String {
    format!("{account}:calllog:{record_id}")
}

/// `call.logged` for a finished voice record (`None` while it is `In Progress`, and for fax
/// records); it happened when the call ended (start + duration).
pub fn call_logged(
    record: &CallLogInput,
    account: &AccountId,
    source: ActivitySource,
) -> Option<Activity> {
    (record.is_finished() && record.is_voice()).then(|| {
        Activity::new(
            logged_key(account, &record.id),
            ActivityKind::CallLogged,
            account.clone(),
            record.call_key(),
            source,
            record.end_time(),
            record.data(),
        )
    })
}

/// `call.recording_ready` when `record` has a recording that the version already logged
/// (`previously_logged`, e.g. read back from the stored `call.logged`'s `data.rc`) did not
/// have. `None` when the record was never logged (its `call.logged` carries the recording),
/// or has no new recording. Key: `{account}:calllog:{recordId}:recording:{recordingId}`.
pub fn recording_ready(
    record: &CallLogInput,
    previously_logged: Option<&CallLogInput>,
    account: &AccountId,
    source: ActivitySource,
) -> Option<Activity> {
    let rec = record.recording.as_ref()?;
    let before = previously_logged?;
    if before.recording.as_ref().is_some_and(|b| b.id == rec.id) {
        return None;
    }
    Some(Activity::new(
        format!("{}:recording:{}", logged_key(account, &record.id), rec.id),
        ActivityKind::CallRecordingReady,
        account.clone(),
        record.call_key(),
        source,
        record.end_time(),
        record.data(),
    ))
}

/// The backfilled `call.missed` of a missed inbound record, keyed like the live one
/// (`{account}:{telephonySessionId}:missed`) so the store keeps one. A record without a
/// `telephonySessionId` (old Simple-view records) falls back to `session-{sessionId}`,
/// which cannot match a live key. `None` for calls that were not missed.
pub fn backfill_missed(record: &CallLogInput, account: &AccountId) -> Option<Activity> {
    if !record.is_missed_inbound() {
        return None;
    }
    let session = record
        .telephony_session_id
        .clone()
        .or_else(|| record.session_id.as_ref().map(|s| format!("session-{s}")))
        .unwrap_or_else(|| format!("calllog-{}", record.id));
    let voicemail = record
        .result
        .as_deref()
        .is_some_and(|r| r.to_ascii_lowercase().contains("voicemail"));
    let mut data = record.data();
    data.insert(
        "missed_reason".into(),
        if voicemail { "voicemail" } else { "no_answer" }.into(),
    );
    Some(Activity::new(
        missed_key(account, &session),
        ActivityKind::CallMissed,
        account.clone(),
        record.call_key(),
        ActivitySource::Backfill,
        record.end_time(),
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct() -> AccountId {
        AccountId::parse("acme").unwrap()
    }

    const WITH_RECORDING: &str = include_str!(
        "../../../../fixtures/ringcentral/examples/call-log-record-simple-with-recording.json"
    );

    fn record(v: &Value) -> CallLogInput {
        CallLogInput::from_value(v).unwrap()
    }

    #[test]
    fn a_finished_record_is_logged_with_its_recording() {
        let v: Value = serde_json::from_str(WITH_RECORDING).unwrap();
        let a = call_logged(&record(&v), &acct(), ActivitySource::Backfill).unwrap();
        assert_eq!(a.key, "acme:calllog:ASaxDDkSZ5s42MA");
        let cl = &a.payload["data"]["call_log"];
        assert_eq!(cl["duration_s"], 55);
        assert_eq!(cl["result"], "Accepted");
        assert_eq!(cl["recording"]["id"], "1662272004");
        assert_eq!(
            a.payload["timestamp"], "2023-06-06T23:08:15.000Z",
            "start + duration"
        );
    }

    #[test]
    fn every_record_of_the_real_sync_and_list_samples_reads() {
        for name in [
            "call-log-sync-fsync-response.json",
            "call-log-sync-isync-response.json",
            "call-log-list-simple.json",
        ] {
            let path = format!(
                "{}/../../fixtures/ringcentral/examples/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let records = v["records"].as_array().unwrap();
            assert!(!records.is_empty(), "{name}");
            for r in records {
                assert!(
                    call_logged(&record(r), &acct(), ActivitySource::Backfill).is_some(),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn an_in_progress_or_fax_record_is_not_logged() {
        let mut v: Value = serde_json::from_str(WITH_RECORDING).unwrap();
        v["result"] = "In Progress".into();
        assert!(call_logged(&record(&v), &acct(), ActivitySource::Backfill).is_none());
        v["result"] = "Received".into();
        v["type"] = "Fax".into();
        assert!(call_logged(&record(&v), &acct(), ActivitySource::Backfill).is_none());
    }

    #[test]
    fn recording_ready_fires_only_for_a_recording_new_since_the_logged_version() {
        let with: Value = serde_json::from_str(WITH_RECORDING).unwrap();
        let mut without = with.clone();
        without.as_object_mut().unwrap().remove("recording");
        let (with, without) = (record(&with), record(&without));
        let a = recording_ready(&with, Some(&without), &acct(), ActivitySource::Backfill).unwrap();
        assert_eq!(a.key, "acme:calllog:ASaxDDkSZ5s42MA:recording:1662272004");
        assert_eq!(a.payload["type"], "call.recording_ready");
        assert!(
            recording_ready(&with, None, &acct(), ActivitySource::Backfill).is_none(),
            "never logged"
        );
        assert!(
            recording_ready(&with, Some(&with), &acct(), ActivitySource::Backfill).is_none(),
            "already had it"
        );
        assert!(
            recording_ready(&without, Some(&without), &acct(), ActivitySource::Backfill).is_none()
        );
    }

    #[test]
    fn only_missed_inbound_records_backfill_a_missed_call() {
        let mut v: Value = serde_json::from_str(WITH_RECORDING).unwrap();
        assert!(backfill_missed(&record(&v), &acct()).is_none(), "Accepted");
        v["result"] = "Missed".into();
        v["telephonySessionId"] = "s-abc".into();
        let a = backfill_missed(&record(&v), &acct()).unwrap();
        assert_eq!(a.key, "acme:s-abc:missed");
        assert_eq!(a.source, ActivitySource::Backfill);
        v["direction"] = "Outbound".into();
        assert!(backfill_missed(&record(&v), &acct()).is_none());
        v["direction"] = "Inbound".into();
        v["result"] = "Voicemail".into();
        v.as_object_mut().unwrap().remove("telephonySessionId");
        let b = backfill_missed(&record(&v), &acct()).unwrap();
        assert_eq!(b.key, "acme:session-13916417004:missed");
        assert_eq!(b.payload["data"]["missed_reason"], "voicemail");
    }

    #[test]
    fn bad_records_are_errors() {
        assert_eq!(
            CallLogInput::from_value(&json!({"id": "x"})),
            Err(RecordError::Missing("startTime"))
        );
        assert_eq!(
            CallLogInput::from_value(&json!(null)),
            Err(RecordError::NotAnObject)
        );
    }
}
