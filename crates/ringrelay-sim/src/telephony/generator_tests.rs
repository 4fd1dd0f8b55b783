//! Unit tests of the call generator: every scenario's event sequence is consistent with
//! the real flows (one party per event, contiguous `sequence`, event paths by party
//! kind), with the scenario's status codes, call-log record(s) and voicemail.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::TelephonyState;
use super::generator::{CallScenario, GeneratedCall, generate_call};
use crate::clock::SimClock;
use crate::directory::SimAccount;

fn account() -> SimAccount {
    SimAccount::generated(0, 4)
}

fn play(scenario: CallScenario, seed: u64) -> (GeneratedCall, SimAccount, DateTime<Utc>) {
    let acc = account();
    let mut state = TelephonyState::new("http://127.0.0.1:9", seed);
    let start = SimClock::new().now();
    let call = generate_call(&mut state, &acc, scenario, start).expect("the account has users");
    (call, acc, start)
}

fn party(ev: &Value) -> &Value {
    &ev["parties"][0]
}

/// The status codes of the extension parties, in order, per party id.
fn codes_of(call: &GeneratedCall, party_id: &str) -> Vec<String> {
    call.events
        .iter()
        .map(|e| party(&e.body))
        .filter(|p| p["id"] == party_id)
        .map(|p| p["status"]["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn extension_party_ids(call: &GeneratedCall) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for e in &call.events {
        let p = party(&e.body);
        let id = p["id"].as_str().unwrap_or_default().to_owned();
        if p.get("extensionId").is_some() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[test]
fn every_scenario_produces_a_consistent_event_sequence() {
    for scenario in CallScenario::ALL {
        let (call, acc, start) = play(scenario, 7);
        assert!(call.events.len() >= 6, "{scenario:?} has too few events");
        assert_eq!(call.events[0].at, start, "{scenario:?}");
        for (i, ev) in call.events.iter().enumerate() {
            let b = &ev.body;
            assert_eq!(
                b["sequence"],
                i as u64 + 1,
                "{scenario:?}: sequence is contiguous"
            );
            assert_eq!(b["telephonySessionId"], call.telephony_session_id.as_str());
            assert_eq!(b["sessionId"], call.session_id.as_str());
            assert_eq!(
                b["parties"].as_array().map(Vec::len),
                Some(1),
                "one party per event"
            );
            assert_eq!(b["eventTime"], super::render::rc_time(ev.at));
            assert_eq!(party(b)["accountId"], acc.id.as_str());
            match party(b).get("extensionId").and_then(Value::as_str) {
                Some(ext) => assert_eq!(
                    ev.event,
                    format!(
                        "/restapi/v1.0/account/{}/extension/{ext}/telephony/sessions",
                        acc.id
                    )
                ),
                None => assert_eq!(
                    ev.event,
                    format!("/restapi/v1.0/account/{}/telephony/sessions", acc.id)
                ),
            }
            if i > 0 {
                assert!(
                    ev.at >= call.events[i - 1].at,
                    "{scenario:?}: time goes forward"
                );
            }
        }
        assert_eq!(
            call.ended_at,
            call.events.last().map(|e| e.at).unwrap_or(start)
        );
        let lag = call.call_log_visible_at - call.ended_at;
        assert!(
            lag >= Duration::seconds(15) && lag <= Duration::seconds(30),
            "{scenario:?}: lag {lag}"
        );
        // Every party's last status is a plain Disconnected, except a transferred leg.
        for pid in extension_party_ids(&call) {
            assert_eq!(
                codes_of(&call, &pid).last().map(String::as_str),
                Some("Disconnected")
            );
        }
    }
}

#[test]
fn inbound_answered_rings_answers_and_records() {
    let (call, _, _) = play(CallScenario::InboundAnswered, 1);
    let ids = extension_party_ids(&call);
    assert_eq!(ids.len(), 1);
    assert_eq!(
        codes_of(&call, &ids[0]),
        ["Setup", "Proceeding", "Answered", "Disconnected"]
    );
    assert_eq!(
        party(&call.events[0].body)["direction"],
        "Outbound",
        "the PSTN caller's leg"
    );
    assert!(party(&call.events[0].body).get("extensionId").is_none());
    assert_eq!(call.call_log.len(), 1);
    let rec = &call.call_log[0];
    assert_eq!(rec["result"], "Accepted");
    assert_eq!(rec["direction"], "Inbound");
    assert_eq!(rec["recording"]["type"], "Automatic");
    assert_eq!(
        rec["telephonySessionId"],
        call.telephony_session_id.as_str()
    );
    assert_eq!(rec["legs"][0]["legType"], "PstnToSip");
    assert!(call.voicemail.is_none());
}

#[test]
fn a_missed_call_is_marked_missed_and_never_answered() {
    let (call, _, _) = play(CallScenario::InboundMissed, 2);
    let ids = extension_party_ids(&call);
    assert_eq!(
        codes_of(&call, &ids[0]),
        ["Setup", "Proceeding", "Disconnected"]
    );
    let last = call
        .events
        .iter()
        .rev()
        .map(|e| party(&e.body))
        .find(|p| p["id"] == ids[0].as_str());
    assert_eq!(
        last.map(|p| p["missedCall"].clone()),
        Some(Value::Bool(true))
    );
    assert!(
        last.is_some_and(|p| p["status"].get("reason").is_none()),
        "a plain end, not a transfer"
    );
    assert_eq!(call.call_log[0]["result"], "Missed");
    assert!(call.call_log[0].get("recording").is_none());
}

#[test]
fn voicemail_leaves_a_message_linked_from_the_call_log() {
    let (call, acc, _) = play(CallScenario::InboundVoicemail, 3);
    let ids = extension_party_ids(&call);
    assert_eq!(
        codes_of(&call, &ids[0]),
        ["Setup", "Proceeding", "VoiceMail", "Disconnected"]
    );
    let vm = call.voicemail.as_ref().expect("a voicemail");
    assert!(vm.at > call.ended_at && vm.at < call.call_log_visible_at);
    assert_eq!(vm.message["type"], "VoiceMail");
    assert_eq!(
        vm.message["id"], vm.message_id,
        "int64 in the message store"
    );
    assert_eq!(
        vm.voicemail_event.body["id"],
        vm.message_id.to_string(),
        "a string in the event"
    );
    assert_eq!(
        vm.voicemail_event.event,
        format!(
            "/restapi/v1.0/account/{}/extension/{}/voicemail",
            acc.id, vm.extension_id
        )
    );
    assert!(vm.voicemail_event.body.get("telephonySessionId").is_none());
    let updated = vm.message_store_event.body["lastUpdated"]
        .as_str()
        .unwrap_or_default();
    assert!(updated.ends_with("+0000"), "{updated}");
    assert_eq!(
        vm.message_store_event.body["changes"][0]["newMessageIds"][0],
        vm.message_id
    );
    let rec = &call.call_log[0];
    assert_eq!(rec["result"], "Voicemail");
    assert_eq!(rec["message"]["id"], vm.message_id.to_string());
    assert_eq!(rec["message"]["type"], "VoiceMail");
    let all = call.notifications();
    assert_eq!(all.len(), call.events.len() + 2);
    assert_eq!(
        all.last().map(|e| e.event.ends_with("/message-store")),
        Some(true)
    );
}

#[test]
fn outbound_and_hold_resume_follow_the_real_outbound_flow() {
    let (call, _, _) = play(CallScenario::OutboundAnswered, 4);
    let ids = extension_party_ids(&call);
    assert_eq!(
        codes_of(&call, &ids[0]),
        ["Setup", "Proceeding", "Answered", "Disconnected"]
    );
    assert_eq!(party(&call.events[0].body)["direction"], "Outbound");
    assert!(
        party(&call.events[0].body)["from"]
            .get("deviceId")
            .is_some()
    );
    assert_eq!(call.call_log[0]["result"], "Call connected");
    assert_eq!(call.call_log[0]["action"], "VoIP Call");

    let (call, _, _) = play(CallScenario::HoldResume, 4);
    let ids = extension_party_ids(&call);
    assert_eq!(
        codes_of(&call, &ids[0]),
        [
            "Setup",
            "Proceeding",
            "Answered",
            "Hold",
            "Answered",
            "Disconnected"
        ]
    );
}

#[test]
fn a_transfer_ends_the_first_leg_with_a_reason_and_rings_a_second_extension() {
    let (call, _, _) = play(CallScenario::Transferred, 5);
    let ids = extension_party_ids(&call);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        codes_of(&call, &ids[0]),
        ["Setup", "Proceeding", "Answered", "Disconnected"]
    );
    let first_end = call
        .events
        .iter()
        .map(|e| party(&e.body))
        .rfind(|p| p["id"] == ids[0].as_str())
        .map(|p| p["status"]["reason"].clone());
    assert_eq!(first_end, Some(Value::from("BlindTransfer")));
    assert_eq!(
        codes_of(&call, &ids[1]),
        ["Setup", "Proceeding", "Answered", "Disconnected"]
    );
    let ext_of = |pid: &str| {
        call.events
            .iter()
            .map(|e| party(&e.body))
            .find(|p| p["id"] == pid)
            .map(|p| p["extensionId"].clone())
    };
    assert_ne!(ext_of(&ids[0]), ext_of(&ids[1]));
    assert_eq!(call.call_log.len(), 2);
    assert_eq!(call.call_log[1]["legs"][0]["legType"], "TransferCall");
}

#[test]
fn transfer_needs_two_users_and_says_so() {
    let acc = SimAccount::generated(0, 1);
    let mut state = TelephonyState::new("http://127.0.0.1:9", 0);
    let err = generate_call(&mut state, &acc, CallScenario::Transferred, Utc::now()).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (400, "CMN-101"));
    assert!(
        state.account(&acc.id).is_none(),
        "nothing stored for a failed call"
    );
}

#[test]
fn the_same_seed_generates_the_same_call() {
    let start = Utc::now();
    let run = || {
        let mut state = TelephonyState::new("http://127.0.0.1:9", 42);
        generate_call(&mut state, &account(), CallScenario::HoldResume, start).map(|c| c.events)
    };
    assert_eq!(run(), run());
}

#[test]
fn disordered_delivery_swaps_and_duplicates_but_keeps_every_event() {
    let (call, _, _) = play(CallScenario::InboundAnswered, 6);
    let seqs = |evs: &[super::TimedEvent]| {
        evs.iter()
            .map(|e| e.body["sequence"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let swapped = call.disordered(1, 1.0, 0.0);
    assert_eq!(swapped.len(), call.events.len());
    assert_ne!(seqs(&swapped), seqs(&call.events), "order changed");
    let mut sorted = seqs(&swapped);
    sorted.sort_unstable();
    assert_eq!(sorted, seqs(&call.events), "no event lost");
    assert!(
        swapped.windows(2).all(|w| w[0].at <= w[1].at),
        "delivery times stay ordered"
    );
    let doubled = call.disordered(1, 0.0, 1.0);
    assert_eq!(doubled.len(), call.events.len() * 2);
    assert_eq!(call.disordered(1, 0.0, 0.0), call.events);
}
