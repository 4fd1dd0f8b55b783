//! Telephony state → activities (DESIGN §3). Activities are computed from the whole
//! recorded state of a session and filtered by the keys already emitted, so each transition
//! is emitted once, whatever the order or repetition of the events.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::account::AccountId;
use crate::activity::{Activity, ActivityKind, ActivitySource};

use super::state::{Observation, PartyState, SessionState};
use super::telephony::{Direction, StatusCode, TelephonyEvent};

/// What applying one event produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Activities not emitted before, in the order they happened.
    pub activities: Vec<Activity>,
    /// Parties the event told something new about (empty for a duplicate).
    pub changed_parties: Vec<String>,
    /// Whether the whole session is over (stays true for later events of the session).
    pub finished: bool,
    /// Whether this very call made the session finished (time to schedule the call-log
    /// fetch for it, once).
    pub just_finished: bool,
}

/// The key of a session's `call.missed`; [`super::calllog::backfill_missed`] builds the same.
pub fn missed_key(account: &AccountId, telephony_session_id: &str) -> String {
    format!("{account}:{telephony_session_id}:missed")
}

/// An event was applied to the state of another session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event of telephony session {event} applied to the state of session {state}")]
pub struct SessionMismatch {
    /// The state's session.
    pub state: String,
    /// The event's session.
    pub event: String,
}

/// Records a telephony event in the session state and returns the activities it reveals.
/// Duplicates produce nothing; a late lower sequence never moves a party backwards but still
/// emits what it reveals (an Answered arriving after Disconnected yields `call.answered` and
/// `call.ended`, never `call.missed`). An empty (default) state takes the event's session.
///
/// # Errors
/// [`SessionMismatch`] when the state belongs to another telephony session (nothing changes).
pub fn apply_telephony(
    state: &mut SessionState,
    event: &TelephonyEvent,
    account: &AccountId,
) -> Result<Applied, SessionMismatch> {
    if state.telephony_session_id.is_empty() {
        state
            .telephony_session_id
            .clone_from(&event.telephony_session_id);
    } else if state.telephony_session_id != event.telephony_session_id {
        return Err(SessionMismatch {
            state: state.telephony_session_id.clone(),
            event: event.telephony_session_id.clone(),
        });
    }
    let was_finished = state.is_finished();
    let changed_parties = state.record(event);
    let mut applied = emit_new(state, account);
    applied.changed_parties = changed_parties;
    applied.just_finished = applied.finished && !was_finished;
    Ok(applied)
}

/// Judges the session as finished even with sequence gaps or unseen party starts (call it
/// when a session has been quiet long enough that missing events are lost, not late), and
/// returns what that reveals (typically `call.missed`).
pub fn close_session(state: &mut SessionState, account: &AccountId) -> Applied {
    let was_finished = state.is_finished();
    state.closed = true;
    let mut applied = emit_new(state, account);
    applied.just_finished = applied.finished && !was_finished;
    applied
}

fn emit_new(state: &mut SessionState, account: &AccountId) -> Applied {
    let mut all = derive_all(state, account);
    all.retain(|a| !state.emitted.contains(&a.key));
    all.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.key.cmp(&b.key)));
    for a in &all {
        state.emitted.insert(a.key.clone());
    }
    Applied {
        activities: all,
        changed_parties: Vec::new(),
        finished: state.is_finished(),
        just_finished: false,
    }
}

/// Every activity the state implies (emitted or not).
fn derive_all(state: &SessionState, account: &AccountId) -> Vec<Activity> {
    let mut out = Vec::new();
    for (pid, party) in state.parties.iter().filter(|(_, p)| p.is_extension()) {
        let ctx = PartyCtx {
            state,
            account,
            pid,
            party,
        };
        party_activities(&ctx, &mut out);
    }
    if let Some(a) = missed(state, account) {
        out.push(a);
    }
    out
}

struct PartyCtx<'a> {
    state: &'a SessionState,
    account: &'a AccountId,
    pid: &'a str,
    party: &'a PartyState,
}

impl PartyCtx<'_> {
    fn activity(&self, kind: ActivityKind, suffix: &str, seq: i64, obs: &Observation) -> Activity {
        let key = format!(
            "{}:{}:{}:{suffix}",
            self.account, self.state.telephony_session_id, self.pid
        );
        let mut data = call_data(self.state, Some((self.pid, self.party)));
        data.insert(
            "rc".into(),
            json!({"sequence": seq, "status": {"code": status_name(&obs.status), "reason": obs.reason}}),
        );
        Activity::new(
            key,
            kind,
            self.account.clone(),
            self.state.telephony_session_id.clone(),
            ActivitySource::Webhook,
            obs.at,
            data,
        )
    }
}

fn party_activities(ctx: &PartyCtx<'_>, out: &mut Vec<Activity>) {
    let obs: Vec<(i64, &Observation)> = ctx
        .party
        .observations
        .iter()
        .map(|(s, o)| (*s, o))
        .collect();
    let first = |f: &dyn Fn(&Observation) -> bool| obs.iter().find(|(_, o)| f(o)).copied();
    if let Some((s, o)) = first(&|o| matches!(o.status, StatusCode::Setup | StatusCode::Proceeding))
    {
        out.push(ctx.activity(ActivityKind::CallRinging, "ringing", s, o));
    }
    let answered = first(&|o| o.status == StatusCode::Answered);
    if let Some((s, o)) = answered {
        out.push(ctx.activity(ActivityKind::CallAnswered, "answered", s, o));
    }
    for ((_, prev), (s, o)) in obs.iter().zip(obs.iter().skip(1)) {
        if prev.status == StatusCode::Hold && o.status == StatusCode::Answered {
            out.push(ctx.activity(ActivityKind::CallResumed, &format!("resumed:{s}"), *s, o));
        }
    }
    for (s, o) in obs.iter().filter(|(_, o)| o.status == StatusCode::Hold) {
        out.push(ctx.activity(ActivityKind::CallHeld, &format!("held:{s}"), *s, o));
    }
    if let Some((s, o)) = first(&Observation::is_transfer) {
        out.push(ctx.activity(ActivityKind::CallTransferred, "transferred", s, o));
    }
    let ended = obs
        .iter()
        .find(|(s, o)| {
            o.status == StatusCode::Disconnected
                && !o.is_transfer()
                && answered.is_some_and(|(a, _)| a < *s)
        })
        .copied();
    if let Some((s, o)) = ended {
        out.push(ctx.activity(ActivityKind::CallEnded, "ended", s, o));
    }
}

/// Why a session counts as missed, and when.
fn missed_reason(state: &SessionState) -> Option<(&'static str, DateTime<Utc>)> {
    let all: Vec<_> = state.all_observations().collect();
    if let Some((_, _, o)) = all
        .iter()
        .find(|(_, _, o)| o.status == StatusCode::VoiceMail)
    {
        return Some(("voicemail", o.at));
    }
    if let Some((_, _, o)) = all.iter().find(|(_, _, o)| o.missed_call) {
        return Some(("missed_call", o.at));
    }
    let own_inbound = |p: &&PartyState| {
        p.is_extension() && !p.queue_call && p.direction != Some(Direction::Outbound)
    };
    let inbound = state
        .parties
        .values()
        .any(|p| p.is_extension() && p.direction == Some(Direction::Inbound));
    let answered = state.parties.values().filter(own_inbound).any(|p| {
        p.observations
            .values()
            .any(|o| o.status == StatusCode::Answered)
    });
    if inbound && !answered && state.is_finished() {
        let end = all.iter().map(|(_, _, o)| o.at).max()?;
        return Some(("no_answer", end));
    }
    None
}

fn missed(state: &SessionState, account: &AccountId) -> Option<Activity> {
    let (reason, at) = missed_reason(state)?;
    let party = state
        .parties
        .iter()
        .filter(|(_, p)| p.is_extension() && p.direction == Some(Direction::Inbound))
        .find(|(_, p)| !p.queue_call)
        .or_else(|| state.parties.iter().find(|(_, p)| p.is_extension()))
        .map(|(id, p)| (id.as_str(), p));
    let mut data = call_data(state, party);
    data.insert("missed_reason".into(), reason.into());
    Some(Activity::new(
        missed_key(account, &state.telephony_session_id),
        ActivityKind::CallMissed,
        account.clone(),
        state.telephony_session_id.clone(),
        ActivitySource::Webhook,
        at,
        data,
    ))
}

/// The DESIGN §3 call fields of `data`.
fn call_data(state: &SessionState, party: Option<(&str, &PartyState)>) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert(
        "telephony_session_id".into(),
        state.telephony_session_id.clone().into(),
    );
    data.insert("session_id".into(), json!(state.session_id));
    data.insert("party_id".into(), json!(party.map(|(id, _)| id)));
    let p = party.map(|(_, p)| p);
    data.insert(
        "direction".into(),
        json!(p.and_then(|p| p.direction).map(Direction::as_str)),
    );
    data.insert("from".into(), p.map_or(Value::Null, |p| p.from.to_json()));
    data.insert("to".into(), p.map_or(Value::Null, |p| p.to.to_json()));
    data.insert(
        "extension_id".into(),
        json!(p.and_then(|p| p.extension_id.clone())),
    );
    data
}

fn status_name(s: &StatusCode) -> String {
    match s {
        StatusCode::Other(raw) => raw.clone(),
        known => format!("{known:?}"),
    }
}
