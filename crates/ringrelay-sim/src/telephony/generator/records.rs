//! The records a played call leaves: call-log records (`CallLogRecord`, Detailed view with
//! `legs`, `recording` when recorded, `message` when it went to voicemail) and the
//! voicemail message with its two notifications. Spellings follow the real payloads:
//! message-store `type` is `VoiceMail` with an int64 `id`, the voicemail event's `id` is
//! a string, the message-store event's `lastUpdated` has a `+0000` offset (`API.md` §4.4,
//! §4.5, §5.4).

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::parties::Session;
use super::{GeneratedVoicemail, Plan, TimedEvent};
use crate::directory::{SimAccount, SimExtension};
use crate::telephony::TelephonyState;
use crate::telephony::render::{rc_time, rc_time_offset};

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn record_id(state: &mut TelephonyState) -> String {
    (0..15)
        .map(|_| char::from(ID_CHARS[state.rng.random_range(0..ID_CHARS.len())]))
        .collect()
}

/// The call-log records of a played call, one per extension leg: (extension id, record
/// without `uri`).
pub fn call_log(
    state: &mut TelephonyState,
    account: &SimAccount,
    session: &Session,
    plan: &Plan,
    voicemail: Option<&GeneratedVoicemail>,
) -> Vec<(String, Value)> {
    let start = session.events.first().map_or(plan.ended_at, |e| e.at);
    let base = state.base_url.clone();
    let acc = &account.id;
    let mut out = Vec::new();
    for (i, (ext, party, result, reason)) in plan.legs.iter().enumerate() {
        let answered = plan.answered_at.get(i).copied().flatten();
        let duration = plan.ended_at - start;
        let ext_party = json!({ "phoneNumber": ext.phone_number, "extensionNumber": ext.number, "extensionId": ext.id, "name": ext.name });
        let pstn_party = json!({ "phoneNumber": plan.pstn.to["phoneNumber"].clone() });
        let (from, to) = if plan.direction == "Inbound" {
            (
                json!({ "phoneNumber": plan.pstn.from["phoneNumber"].clone() }),
                ext_party,
            )
        } else {
            (ext_party, pstn_party)
        };
        let mut record = json!({
            "id": record_id(state),
            "sessionId": session.session_id,
            "telephonySessionId": session.telephony_session_id,
            "partyId": party.id,
            "startTime": rc_time(start),
            "duration": duration.num_seconds(),
            "durationMs": duration.num_milliseconds(),
            "type": "Voice",
            "internalType": "Local",
            "direction": plan.direction,
            "action": if plan.direction == "Inbound" { "Phone Call" } else { "VoIP Call" },
            "result": result,
            "to": to,
            "from": from,
            "extension": { "id": ext.id.parse::<u64>().map_or_else(|_| json!(ext.id), |n| json!(n)),
                           "uri": format!("{base}/restapi/v1.0/account/{acc}/extension/{}", ext.id) },
            "transport": "PSTN",
            "lastModifiedTime": rc_time(plan.ended_at + Duration::seconds(2)),
            "billing": { "costIncluded": 0.0, "costPurchased": 0.0 },
            "finished": true,
        });
        if let Some(r) = reason {
            record["reason"] = json!(r);
        }
        if answered.is_some() && plan.recorded {
            let rid = state.next_counter() + 1_662_272_000;
            record["recording"] = json!({
                "id": rid.to_string(),
                "uri": format!("{base}/restapi/v1.0/account/{acc}/recording/{rid}"),
                "type": "Automatic",
                "contentUri": format!("{base}/restapi/v1.0/account/{acc}/recording/{rid}/content"),
            });
        }
        if let Some(vm) = voicemail.filter(|vm| vm.extension_id == ext.id) {
            record["message"] = json!({
                "id": vm.message_id.to_string(),
                "type": "VoiceMail",
                "uri": format!("{base}/restapi/v1.0/account/{acc}/extension/{}/message-store/{}", ext.id, vm.message_id),
            });
        }
        add_transfer_links(&mut record, plan, i);
        let leg_type = match (plan.direction, i) {
            (_, 1..) => "TransferCall",
            ("Inbound", _) => "PstnToSip",
            _ => "SipToPstnMetered",
        };
        let mut leg = record.clone();
        if let Some(obj) = leg.as_object_mut() {
            for k in [
                "id",
                "sessionId",
                "lastModifiedTime",
                "billing",
                "finished",
                "recording",
                "message",
            ] {
                obj.remove(k);
            }
        }
        leg["legType"] = json!(leg_type);
        leg["master"] = json!(true);
        record["legs"] = json!([leg]);
        out.push((ext.id.clone(), record));
    }
    out
}

fn add_transfer_links(record: &mut Value, plan: &Plan, i: usize) {
    if plan.legs.len() < 2 {
        return;
    }
    let link = json!({ "telephonySessionId": record["telephonySessionId"].clone() });
    if i == 0 {
        record["transferTarget"] = link;
    } else {
        record["transferee"] = link;
    }
}

/// The voicemail left on `mailbox` by `caller`, `length` seconds long, finished at `ended`.
pub fn voicemail(
    state: &mut TelephonyState,
    account: &SimAccount,
    (mailbox, caller, length): &(SimExtension, String, i64),
    ended: DateTime<Utc>,
) -> GeneratedVoicemail {
    let at = ended + Duration::milliseconds(state.rng.random_range(1_000..=4_000));
    let id = 82_063_400_004 + state.next_counter() * 1000;
    let base = &state.base_url;
    let acc = &account.id;
    let ext = &mailbox.id;
    let msg_uri = format!("{base}/restapi/v1.0/account/{acc}/extension/{ext}/message-store/{id}");
    let attachment = |id_value: Value| {
        json!({
            "id": id_value,
            "uri": format!("{msg_uri}/content/{id}"),
            "type": "AudioRecording",
            "contentType": "audio/x-wav",
            "vmDuration": length,
        })
    };
    let to = json!([{ "name": mailbox.name, "phoneNumber": mailbox.phone_number, "extensionNumber": mailbox.number }]);
    let from = json!({ "phoneNumber": caller });
    let message = json!({
        "uri": msg_uri,
        "id": id,
        "type": "VoiceMail",
        "to": to,
        "from": from,
        "creationTime": rc_time(at),
        "readStatus": "Unread",
        "priority": "Normal",
        "attachments": [attachment(json!(id))],
        "direction": "Inbound",
        "availability": "Alive",
        "messageStatus": "Received",
        "lastModifiedTime": rc_time(at),
        "vmTranscriptionStatus": "NotAvailable",
    });
    let event_body = json!({
        "id": id.to_string(),
        "to": to,
        "from": from,
        "type": "VoiceMail",
        "creationTime": rc_time(at),
        "readStatus": "Unread",
        "priority": "Normal",
        "attachments": [attachment(json!(id.to_string()))],
        "direction": "Inbound",
        "availability": "Alive",
        "messageStatus": "Received",
        "lastModifiedTime": rc_time(at),
        "vmTranscriptionStatus": "NotAvailable",
    });
    let store_body = json!({
        "accountId": acc,
        "extensionId": ext,
        "lastUpdated": rc_time_offset(at),
        "changes": [{ "type": "VoiceMail", "newCount": 1, "updatedCount": 0, "newMessageIds": [id] }],
    });
    GeneratedVoicemail {
        at,
        extension_id: ext.clone(),
        message_id: id,
        voicemail_event: TimedEvent {
            at,
            event: format!("/restapi/v1.0/account/{acc}/extension/{ext}/voicemail"),
            body: event_body,
        },
        message_store_event: TimedEvent {
            at,
            event: format!("/restapi/v1.0/account/{acc}/extension/{ext}/message-store"),
            body: store_body,
        },
        message,
    }
}
