//! Scenario tests of the telephony state machine (DESIGN §3) over the real flow in
//! `fixtures/ringcentral/examples/` and the synthetic flows in `fixtures/ringcentral/scenarios/`.

use std::collections::BTreeSet;

use serde_json::json;

use crate::account::AccountId;
use crate::activity::{Activity, ActivityKind, ActivitySource};

use super::calllog::{CallLogInput, backfill_missed};
use super::derive::{apply_telephony, close_session};
use super::envelope::{EventPath, Notification};
use super::state::SessionState;
use super::telephony::TelephonyEvent;

fn acct() -> AccountId {
    AccountId::parse("acme").unwrap()
}

fn flow(rel: &str) -> Vec<TelephonyEvent> {
    let path = format!(
        "{}/../../fixtures/ringcentral/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.iter()
        .map(|v| {
            let n = Notification::from_value(v).unwrap();
            assert!(matches!(n.path(), EventPath::Telephony { .. }));
            let mut e = TelephonyEvent::from_body(&n.body).unwrap();
            e.event_time = e.event_time.or(n.timestamp);
            e
        })
        .collect()
}

/// Applies events in order to a fresh state; returns every activity and the final state.
fn run(events: &[TelephonyEvent]) -> (Vec<Activity>, SessionState) {
    let mut state = SessionState::default();
    let mut out = Vec::new();
    for e in events {
        out.extend(apply_telephony(&mut state, e, &acct()).unwrap().activities);
    }
    (out, state)
}

/// `kind key-suffix` for each activity, e.g. `call.answered p-…-2:answered`.
fn summary(acts: &[Activity]) -> BTreeSet<String> {
    acts.iter()
        .map(|a| {
            let tail = a.key.splitn(3, ':').nth(2).unwrap_or_default();
            format!("{} {tail}", a.kind)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

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
fn duplicated_events_change_nothing_and_emit_nothing() {
    let events = flow("scenarios/inbound-answered.json");
    let mut state = SessionState::default();
    for e in &events {
        let first = apply_telephony(&mut state, e, &acct()).unwrap();
        assert_eq!(first.changed_parties.len(), 1);
        let again = apply_telephony(&mut state, e, &acct()).unwrap();
        assert!(again.activities.is_empty());
        assert!(again.changed_parties.is_empty());
    }
}

#[test]
fn an_answered_arriving_after_disconnected_still_yields_answered_and_ended_not_missed() {
    let mut events = flow("scenarios/inbound-answered.json");
    events.reverse();
    let (acts, state) = run(&events);
    assert_eq!(
        summary(&acts),
        set(&[
            "call.ringing p-inans-2:ringing",
            "call.answered p-inans-2:answered",
            "call.ended p-inans-2:ended"
        ])
    );
    let party = &state.parties["p-inans-2"];
    assert_eq!(
        party.latest().unwrap().1.status,
        super::telephony::StatusCode::Disconnected
    );
}

/// A small deterministic generator (no extra dependency): xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

#[test]
fn any_delivery_order_with_duplicates_emits_the_same_set_of_activities() {
    let scenarios = [
        ("examples/telephony-flow-rc-to-pstn.json", false),
        ("examples/telephony-flow-pstn-to-rc.json", false),
        ("examples/telephony-flow-rc-to-rc.json", false),
        ("scenarios/inbound-answered.json", false),
        ("scenarios/inbound-missed.json", true),
        ("scenarios/inbound-voicemail.json", true),
        ("scenarios/inbound-queue-handoff.json", false),
        ("scenarios/inbound-transfer.json", false),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, missed) in scenarios {
        let events = flow(name);
        let (expected, _) = run(&events);
        let expected: BTreeSet<_> = expected.iter().map(|a| (a.key.clone(), a.id)).collect();
        for round in 0..300 {
            let mut order = events.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for _ in 0..rng.below(3) {
                let dup = order[rng.below(order.len())].clone();
                order.insert(rng.below(order.len() + 1), dup);
            }
            let (acts, state) = run(&order);
            let got: BTreeSet<_> = acts.iter().map(|a| (a.key.clone(), a.id)).collect();
            assert_eq!(
                got.len(),
                acts.len(),
                "{name} round {round}: an activity was emitted twice"
            );
            assert_eq!(got, expected, "{name} round {round}");
            assert_eq!(
                acts.iter().any(|a| a.kind == ActivityKind::CallMissed),
                missed,
                "{name} round {round}"
            );
            assert!(state.is_finished(), "{name} round {round}");
        }
    }
}

#[test]
fn state_saved_as_json_mid_call_resumes_to_the_same_result() {
    let events = flow("examples/telephony-flow-rc-to-pstn.json");
    let (all, _) = run(&events);
    let (mut acts, state) = run(&events[..4]);
    let text = serde_json::to_string(&state).unwrap();
    let mut state: SessionState = serde_json::from_str(&text).unwrap();
    for e in &events[4..] {
        acts.extend(apply_telephony(&mut state, e, &acct()).unwrap().activities);
    }
    assert_eq!(acts, all);
}

#[test]
fn unknown_statuses_and_odd_bodies_do_not_panic_or_emit() {
    let mut state = SessionState::default();
    let weird = [
        json!({"telephonySessionId": "s-w", "sequence": 1, "parties": [{"id": "p-1", "extensionId": 5, "direction": "Sideways", "status": {"code": "Teleporting"}}]}),
        json!({"telephonySessionId": "s-w", "sequence": 2, "parties": [{"id": "p-1", "status": {}}]}),
        json!({"telephonySessionId": "s-w", "sequence": -9, "parties": "none"}),
        json!({"telephonySessionId": "s-w", "sequence": i64::MAX, "parties": [{"id": "p-2", "status": {"code": "Parked"}}]}),
    ];
    for body in &weird {
        let e = TelephonyEvent::from_body(body).unwrap();
        let applied = apply_telephony(&mut state, &e, &acct()).unwrap();
        assert!(applied.activities.is_empty(), "{body}");
    }
    assert!(!state.is_finished());
    assert!(state.has_gaps());
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
fn a_session_with_a_lost_event_is_judged_only_when_closed() {
    let mut events = flow("scenarios/inbound-missed.json");
    events.remove(2); // the caller's Proceeding never arrives
    let (acts, mut state) = run(&events);
    assert!(acts.iter().all(|a| a.kind != ActivityKind::CallMissed));
    assert!(!state.is_finished(), "a sequence gap may still be filled");
    let closed = close_session(&mut state, &acct());
    assert!(closed.finished);
    assert_eq!(summary(&closed.activities), set(&["call.missed missed"]));
    assert!(close_session(&mut state, &acct()).activities.is_empty());
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

/// The flow as an extension-level subscription sees it: only the extensions' parties, with
/// consecutive sequences.
fn extensions_only(rel: &str) -> Vec<TelephonyEvent> {
    let mut events: Vec<_> = flow(rel)
        .into_iter()
        .filter(|e| e.parties.iter().all(|p| p.extension_id.is_some()))
        .collect();
    for (seq, e) in (1..).zip(events.iter_mut()) {
        e.sequence = seq;
    }
    events
}

#[test]
fn a_hand_off_is_not_the_end_of_the_session_even_when_the_caller_is_not_seen() {
    for (name, hand_off_at) in [
        ("scenarios/inbound-queue-handoff.json", 2),
        ("scenarios/inbound-transfer.json", 3),
    ] {
        let events = extensions_only(name);
        let (acts, state) = run(&events[..hand_off_at]);
        assert!(!state.is_finished(), "{name}: a new party is about to join");
        assert!(
            acts.iter().all(|a| a.kind != ActivityKind::CallMissed),
            "{name}"
        );
        let (acts, state) = run(&events);
        assert!(state.is_finished(), "{name}");
        assert!(
            acts.iter().all(|a| a.kind != ActivityKind::CallMissed),
            "{name}"
        );
    }
}

#[test]
fn an_event_of_another_session_is_refused_and_changes_nothing() {
    let events = flow("scenarios/inbound-answered.json");
    let (_, mut state) = run(&events[..2]);
    let before = state.clone();
    let mut other = events[2].clone();
    other.telephony_session_id = "s-other".into();
    let err = apply_telephony(&mut state, &other, &acct()).unwrap_err();
    assert_eq!(err.event, "s-other");
    assert_eq!(state, before);
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
        e.parties[0].status = super::telephony::StatusCode::Disconnected;
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
fn just_finished_is_reported_once_per_session() {
    let events = flow("examples/telephony-flow-pstn-to-rc.json");
    let mut state = SessionState::default();
    let mut flags = Vec::new();
    for e in events.iter().chain(events.iter()) {
        flags.push(
            apply_telephony(&mut state, e, &acct())
                .unwrap()
                .just_finished,
        );
    }
    assert_eq!(flags.iter().filter(|f| **f).count(), 1);
    assert!(
        flags[events.len() - 1],
        "the caller's hang-up ends the session"
    );
}

#[test]
fn a_voicemail_is_a_missed_call_plus_a_voicemail_live_and_from_backfill_alike() {
    use super::messages::{VoicemailInput, voicemail_received};
    let (mut live, _) = run(&flow("scenarios/inbound-voicemail.json"));
    let n = Notification::parse(include_str!(
        "../../../../fixtures/ringcentral/examples/voicemail-event.json"
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
