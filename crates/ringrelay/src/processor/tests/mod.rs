//! Tests of the telephony state machine (DESIGN §3) over the real flows in
//! `fixtures/ringcentral/examples/` and the synthetic flows in `fixtures/ringcentral/scenarios/`:
//! [`flows`] checks each scenario's activities, [`order`] checks delivery order, duplicates
//! and lost events.

mod flows;
mod order;

use std::collections::BTreeSet;

use crate::account::AccountId;
use crate::activity::Activity;

use super::derive::apply_telephony;
use super::envelope::{EventPath, Notification};
use super::state::SessionState;
use super::telephony::TelephonyEvent;

pub(super) fn acct() -> AccountId {
    AccountId::parse("acme").unwrap()
}

pub(super) fn flow(rel: &str) -> Vec<TelephonyEvent> {
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
pub(super) fn run(events: &[TelephonyEvent]) -> (Vec<Activity>, SessionState) {
    let mut state = SessionState::default();
    let mut out = Vec::new();
    for e in events {
        out.extend(apply_telephony(&mut state, e, &acct()).unwrap().activities);
    }
    (out, state)
}

/// `kind key-suffix` for each activity, e.g. `call.answered p-…-2:answered`.
pub(super) fn summary(acts: &[Activity]) -> BTreeSet<String> {
    acts.iter()
        .map(|a| {
            let tail = a.key.splitn(3, ':').nth(2).unwrap_or_default();
            format!("{} {tail}", a.kind)
        })
        .collect()
}

pub(super) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The flow as an extension-level subscription sees it: only the extensions' parties, with
/// consecutive sequences.
pub(super) fn extensions_only(rel: &str) -> Vec<TelephonyEvent> {
    let mut events: Vec<_> = flow(rel)
        .into_iter()
        .filter(|e| e.parties.iter().all(|p| p.extension_id.is_some()))
        .collect();
    for (seq, e) in (1..).zip(events.iter_mut()) {
        e.sequence = seq;
    }
    events
}
