//! Out-of-order, duplicated and lost events converge to the same activities.

use std::collections::BTreeSet;

use serde_json::json;

use crate::activity::ActivityKind;

use super::{acct, extensions_only, flow, run, set, summary};
use crate::processor::derive::{apply_telephony, close_session};
use crate::processor::state::SessionState;
use crate::processor::telephony::TelephonyEvent;

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
        crate::processor::telephony::StatusCode::Disconnected
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
