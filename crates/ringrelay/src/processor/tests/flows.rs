//! Each call scenario yields exactly its DESIGN §3 activities.

use serde_json::json;

use crate::activity::{ActivityKind, ActivitySource};

use super::{acct, flow, run, set, summary};
use crate::processor::calllog::{CallLogInput, backfill_missed};
use crate::processor::derive::close_session;
use crate::processor::envelope::Notification;
use crate::processor::telephony::TelephonyEvent;

#[test]
fn the_real_outbound_flow_rings_answers_holds_resumes_and_ends_the_extension_party_only() {
    let (acts, state) = run(&flow("examples/telephony-flow-rc-to-pstn.json"));
    let p = "p-c23b203d62db4f6aaee00717bafa99be-1";
    assert_eq!(
        summary(&acts),
        set(&[
            &format!("call.ringing {p}:ringing"),
            &format!("call.answered {p}:answered"),
            &format!("call.held {p}:held:7"),
            &format!("call.resumed {p}:resumed:8"),
            &format!("call.ended {p}:ended"),
        ])
    );
    assert!(state.is_finished());
    let ended = acts
        .iter()
        .find(|a| a.kind == ActivityKind::CallEnded)
        .unwrap();
    assert_eq!(
        ended.key,
        format!("acme:s-c23b203d62db4f6aaee00717bafa99be:{p}:ended")
    );
    assert_eq!(ended.payload["data"]["direction"], "Outbound");
    assert_eq!(ended.payload["data"]["extension_id"], "809646016");
    assert_eq!(ended.payload["data"]["to"]["phone_number"], "+14083388064");
    assert_eq!(ended.payload["data"]["session_id"], "429182699016");
    assert_eq!(ended.source, ActivitySource::Webhook);
}

#[test]
fn an_answered_inbound_call_rings_answers_and_ends_and_is_not_missed() {
    let (acts, state) = run(&flow("scenarios/inbound-answered.json"));
    assert_eq!(
        summary(&acts),
        set(&[
            "call.ringing p-inans-2:ringing",
            "call.answered p-inans-2:answered",
            "call.ended p-inans-2:ended"
        ])
    );
    assert!(state.is_finished());
}

#[test]
fn an_unanswered_inbound_call_is_missed_only_once_the_whole_session_ends() {
    let events = flow("scenarios/inbound-missed.json");
    let (before_last, _) = run(&events[..events.len() - 1]);
    assert!(
        before_last
            .iter()
            .all(|a| a.kind != ActivityKind::CallMissed),
        "the caller is still on the line"
    );
    let (acts, state) = run(&events);
    assert_eq!(
        summary(&acts),
        set(&["call.ringing p-inmiss-2:ringing", "call.missed missed"])
    );
    let missed = acts
        .iter()
        .find(|a| a.kind == ActivityKind::CallMissed)
        .unwrap();
    assert_eq!(missed.key, "acme:s-inmiss:missed");
    assert_eq!(missed.payload["data"]["missed_reason"], "no_answer");
    assert_eq!(missed.payload["data"]["party_id"], "p-inmiss-2");
    assert!(state.is_finished());
}

#[test]
fn a_call_sent_to_voicemail_is_missed() {
    let (acts, _) = run(&flow("scenarios/inbound-voicemail.json"));
    assert_eq!(
        summary(&acts),
        set(&["call.ringing p-invm-2:ringing", "call.missed missed"])
    );
    let missed = acts
        .iter()
        .find(|a| a.kind == ActivityKind::CallMissed)
        .unwrap();
    assert_eq!(missed.payload["data"]["missed_reason"], "voicemail");
}

#[test]
fn a_queue_leg_handing_the_call_to_an_agent_who_answers_is_not_missed() {
    let (acts, _) = run(&flow("scenarios/inbound-queue-handoff.json"));
    assert_eq!(
        summary(&acts),
        set(&[
            "call.ringing p-inq-2:ringing",
            "call.ringing p-inq-3:ringing",
            "call.answered p-inq-3:answered",
            "call.ended p-inq-3:ended",
        ])
    );
}

#[test]
fn a_blind_transfer_is_transferred_then_the_new_party_rings_answers_and_ends() {
    let (acts, _) = run(&flow("scenarios/inbound-transfer.json"));
    assert_eq!(
        summary(&acts),
        set(&[
            "call.ringing p-inxfer-2:ringing",
            "call.answered p-inxfer-2:answered",
            "call.transferred p-inxfer-2:transferred",
            "call.ringing p-inxfer-3:ringing",
            "call.answered p-inxfer-3:answered",
            "call.ended p-inxfer-3:ended",
        ])
    );
}

#[test]
fn a_missed_call_from_the_live_flow_and_from_the_call_log_has_the_same_key_and_id() {
    let (acts, _) = run(&flow("scenarios/inbound-missed.json"));
    let live = acts
        .iter()
        .find(|a| a.kind == ActivityKind::CallMissed)
        .unwrap();
    let record = CallLogInput::from_value(&json!({
        "id": "Rec1", "sessionId": "4291800659", "telephonySessionId": "s-inmiss",
        "startTime": "2025-06-15T15:00:10.000Z", "duration": 30,
        "direction": "Inbound", "result": "Missed",
        "from": {"phoneNumber": "+14155550123"}, "to": {"phoneNumber": "+18003151571", "extensionId": "809646016"}
    }))
    .unwrap();
    let backfilled = backfill_missed(&record, &acct()).unwrap();
    assert_eq!(backfilled.key, live.key);
    assert_eq!(backfilled.id, live.id);
    assert_eq!(backfilled.source, ActivitySource::Backfill);
}

#[test]
fn an_outbound_call_nobody_answers_is_not_missed() {
    let mut events = flow("examples/telephony-flow-rc-to-pstn.json");
    events.retain(|e| !matches!(e.sequence, 5..=8));
    let (mut acts, mut state) = run(&events);
    acts.extend(close_session(&mut state, &acct()).activities);
    assert!(state.is_finished());
    assert!(acts.iter().all(|a| a.kind != ActivityKind::CallMissed));
    assert!(
        acts.iter().all(|a| a.kind != ActivityKind::CallEnded),
        "never answered"
    );
}

#[test]
fn the_real_inbound_flow_through_an_ivr_menu_is_answered_by_the_agent_and_not_missed() {
    let events = flow("examples/telephony-flow-pstn-to-rc.json");
    let ivr_gone = events.iter().position(|e| e.sequence == 5).unwrap();
    let (_, state) = run(&events[..=ivr_gone]);
    assert!(
        !state.is_finished(),
        "the caller is still connected to the IVR"
    );
    let (acts, state) = run(&events);
    let (ivr, agent) = (
        "p-718107795d564867a6f635fd81e89940-2",
        "p-718107795d564867a6f635fd81e89940-3",
    );
    assert_eq!(
        summary(&acts),
        set(&[
            &format!("call.ringing {ivr}:ringing"),
            &format!("call.ringing {agent}:ringing"),
            &format!("call.answered {agent}:answered"),
            &format!("call.held {agent}:held:9"),
            &format!("call.resumed {agent}:resumed:10"),
            &format!("call.ended {agent}:ended"),
        ])
    );
    assert!(state.is_finished());
    let answered = acts
        .iter()
        .find(|a| a.kind == ActivityKind::CallAnswered)
        .unwrap();
    assert_eq!(answered.payload["data"]["from"]["name"], "DIBYENDU ROY");
    assert_eq!(answered.payload["data"]["extension_id"], "809646016");
}

#[test]
fn the_real_extension_to_extension_flow_gives_both_extensions_their_activities() {
    let (acts, state) = run(&flow("examples/telephony-flow-rc-to-rc.json"));
    let (caller, callee) = (
        "p-f9badb80011344259059d6894a30ace2-1",
        "p-f9badb80011344259059d6894a30ace2-2",
    );
    assert_eq!(
        summary(&acts),
        set(&[
            &format!("call.ringing {caller}:ringing"),
            &format!("call.answered {caller}:answered"),
            &format!("call.held {caller}:held:7"),
            &format!("call.resumed {caller}:resumed:8"),
            &format!("call.ended {caller}:ended"),
            &format!("call.ringing {callee}:ringing"),
            &format!("call.answered {callee}:answered"),
            &format!("call.ended {callee}:ended"),
        ])
    );
    assert!(state.is_finished());
}

#[test]
fn an_internal_call_the_callee_never_answers_is_missed_even_though_the_caller_leg_was_answered() {
    // The real rc-to-rc flow up to the callee ringing, then both legs end: the caller's
    // Outbound party was Answered (seq 4) by RingCentral, not by the callee.
    let mut events: Vec<_> = flow("examples/telephony-flow-rc-to-rc.json")
        .into_iter()
        .filter(|e| e.sequence <= 5)
        .collect();
    let hang_up = |seq: i64, from: &TelephonyEvent| {
        let mut e = from.clone();
        e.sequence = seq;
        e.parties[0].status = crate::processor::telephony::StatusCode::Disconnected;
        e
    };
    let caller_end = hang_up(6, &events[0]);
    let callee_end = hang_up(7, &events[1]);
    events.extend([caller_end, callee_end]);
    let (acts, _) = run(&events);
    assert!(acts.iter().any(|a| a.kind == ActivityKind::CallMissed));
    assert!(
        acts.iter()
            .all(|a| a.kind != ActivityKind::CallEnded || a.key.contains("-1:"))
    );
}

#[test]
fn a_voicemail_is_a_missed_call_plus_a_voicemail_live_and_from_backfill_alike() {
    use crate::processor::messages::{VoicemailInput, voicemail_received};
    let (mut live, _) = run(&flow("scenarios/inbound-voicemail.json"));
    let n = Notification::parse(include_str!(
        "../../../../../fixtures/ringcentral/examples/voicemail-event.json"
    ))
    .unwrap();
    let vm = VoicemailInput::from_value(&n.body).unwrap();
    live.extend(voicemail_received(&vm, &acct(), ActivitySource::Webhook));
    let kinds: Vec<_> = live.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            ActivityKind::CallRinging,
            ActivityKind::CallMissed,
            ActivityKind::VoicemailReceived
        ]
    );

    let record = CallLogInput::from_value(&json!({
        "id": "Rec2", "sessionId": "4291800442", "telephonySessionId": "s-invm",
        "startTime": "2025-06-15T15:00:10.000Z", "duration": 27, "type": "Voice",
        "direction": "Inbound", "result": "Voicemail",
        "message": {"id": "82063400004", "type": "VoiceMail"}
    }))
    .unwrap();
    let mut from_store = n.body;
    from_store["id"] = json!(82_063_400_004_i64);
    let backfilled = [
        backfill_missed(&record, &acct()).unwrap(),
        voicemail_received(
            &VoicemailInput::from_value(&from_store).unwrap(),
            &acct(),
            ActivitySource::Backfill,
        )
        .unwrap(),
    ];
    for b in &backfilled {
        let twin = live.iter().find(|a| a.kind == b.kind).unwrap();
        assert_eq!((&twin.key, twin.id), (&b.key, b.id), "{}", b.kind);
    }
}
