//! The activity: what every sink receives (DESIGN §3), and how its identity is derived.
//!
//! An activity is identified by its *key*, a deterministic string such as
//! `acme:s-abc:p-1:answered` or `acme:calllog:Vg1`. The activity *id* (also the Standard
//! Webhooks `webhook-id`) is a UUIDv5 of the key, so a re-derived activity (live, then again
//! from a backfill or a replay) always has the same id and receivers can drop repeats.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::account::AccountId;

/// The namespace of activity ids (a fixed random UUID; changing it changes every id).
const ACTIVITY_NAMESPACE: uuid::Uuid = uuid::uuid!("6f1c9a52-5d0e-4f57-9a7b-2f4b0c3e8d11");

/// The kinds of activity, with their wire names (`call.ringing`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ActivityKind {
    /// An extension's party first reaches Setup or Proceeding.
    #[serde(rename = "call.ringing")]
    CallRinging,
    /// An extension's party reaches Answered.
    #[serde(rename = "call.answered")]
    CallAnswered,
    /// A party is put on hold.
    #[serde(rename = "call.held")]
    CallHeld,
    /// A party is answered again after a hold.
    #[serde(rename = "call.resumed")]
    CallResumed,
    /// A party is Gone (or Disconnected) with a transfer reason.
    #[serde(rename = "call.transferred")]
    CallTransferred,
    /// An extension's party reaches Disconnected after being answered.
    #[serde(rename = "call.ended")]
    CallEnded,
    /// An inbound call ended without any of the account's parties answering.
    #[serde(rename = "call.missed")]
    CallMissed,
    /// The call-log record of a finished call.
    #[serde(rename = "call.logged")]
    CallLogged,
    /// A recording appeared on an already logged call-log record.
    #[serde(rename = "call.recording_ready")]
    CallRecordingReady,
    /// A new voicemail.
    #[serde(rename = "voicemail.received")]
    VoicemailReceived,
}

impl ActivityKind {
    /// Every kind, in the order of DESIGN §3.
    pub const ALL: [ActivityKind; 10] = [
        Self::CallRinging,
        Self::CallAnswered,
        Self::CallHeld,
        Self::CallResumed,
        Self::CallTransferred,
        Self::CallEnded,
        Self::CallMissed,
        Self::CallLogged,
        Self::CallRecordingReady,
        Self::VoicemailReceived,
    ];

    /// The wire name, e.g. `call.answered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallRinging => "call.ringing",
            Self::CallAnswered => "call.answered",
            Self::CallHeld => "call.held",
            Self::CallResumed => "call.resumed",
            Self::CallTransferred => "call.transferred",
            Self::CallEnded => "call.ended",
            Self::CallMissed => "call.missed",
            Self::CallLogged => "call.logged",
            Self::CallRecordingReady => "call.recording_ready",
            Self::VoicemailReceived => "voicemail.received",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an activity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivitySource {
    /// Derived from a notification RingCentral pushed.
    Webhook,
    /// Derived from the call log or message store (sync or gap backfill).
    Backfill,
}

impl ActivitySource {
    /// The wire name (`webhook` or `backfill`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Backfill => "backfill",
        }
    }
}

/// The stable id of an activity: UUIDv5 of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActivityId(pub uuid::Uuid);

impl ActivityId {
    /// The id for an activity key; the same key always gives the same id.
    pub fn from_key(key: &str) -> Self {
        Self(uuid::Uuid::new_v5(&ACTIVITY_NAMESPACE, key.as_bytes()))
    }

    /// The id as `msg_…` text, the form used in `webhook-id` and `data.id`.
    pub fn to_wire(self) -> String {
        format!("msg_{}", self.0.simple())
    }

    /// Parses the `msg_…` form (or a bare UUID).
    pub fn parse(s: &str) -> Option<Self> {
        let raw = s.strip_prefix("msg_").unwrap_or(s);
        uuid::Uuid::parse_str(raw).ok().map(Self)
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

/// One derived activity, ready to be stored with its deliveries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Stable id, derived from `key`.
    pub id: ActivityId,
    /// The deterministic activity key (unique in the store).
    pub key: String,
    /// What happened.
    pub kind: ActivityKind,
    /// Whose account.
    pub account: AccountId,
    /// Groups a call's activities for per-call delivery order (e.g. the telephony session id,
    /// or `voicemail:{id}` for a voicemail that is not tied to a call).
    pub call_key: String,
    /// Live or backfilled.
    pub source: ActivitySource,
    /// When it happened at RingCentral.
    pub occurred_at: DateTime<Utc>,
    /// The Standard Webhooks payload sent to sinks: `{"type", "timestamp", "data"}`.
    pub payload: serde_json::Value,
}

impl Activity {
    /// Builds an activity from its key and `data` object; fills `data.id`, `data.account`,
    /// `data.source` and `data.occurred_at`, and wraps it in the `{type, timestamp, data}`
    /// envelope.
    pub fn new(
        key: String,
        kind: ActivityKind,
        account: AccountId,
        call_key: String,
        source: ActivitySource,
        occurred_at: DateTime<Utc>,
        mut data: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        let id = ActivityId::from_key(&key);
        let ts = occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        data.insert("id".into(), id.to_wire().into());
        data.insert("account".into(), account.as_str().into());
        data.insert("source".into(), source.as_str().into());
        data.insert("occurred_at".into(), ts.clone().into());
        let payload = serde_json::json!({ "type": kind.as_str(), "timestamp": ts, "data": data });
        Self {
            id,
            key,
            kind,
            account,
            call_key,
            source,
            occurred_at,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_always_gives_the_same_id_and_different_keys_differ() {
        let a = ActivityId::from_key("acme:s-1:p-1:answered");
        assert_eq!(a, ActivityId::from_key("acme:s-1:p-1:answered"));
        assert_ne!(a, ActivityId::from_key("acme:s-1:p-1:ended"));
        assert_eq!(ActivityId::parse(&a.to_wire()), Some(a));
    }

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for k in ActivityKind::ALL {
            assert_eq!(ActivityKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn new_fills_the_envelope_and_the_common_data_fields() {
        let acct = AccountId::parse("acme").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let a = Activity::new(
            "acme:voicemail:1".into(),
            ActivityKind::VoicemailReceived,
            acct,
            "voicemail:1".into(),
            ActivitySource::Backfill,
            at,
            serde_json::Map::new(),
        );
        assert_eq!(a.payload["type"], "voicemail.received");
        assert_eq!(a.payload["timestamp"], "2026-01-02T03:04:05.000Z");
        assert_eq!(a.payload["data"]["id"], a.id.to_wire());
        assert_eq!(a.payload["data"]["source"], "backfill");
        assert_eq!(a.payload["data"]["account"], "acme");
    }
}
