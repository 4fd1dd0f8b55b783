//! The call generator: plays a [`CallScenario`] for one account and returns what
//! RingCentral would emit: telephony-session events (one party per event, a per-session
//! `sequence`, the extension event path for the account's extension parties and the
//! account path for PSTN parties, as in `telephony-flow-rc-to-pstn.json`), the call-log
//! record(s) that appear 15–30 s after the call ends (`API.md` §5.1), and for voicemail
//! the voicemail event, the message-store event and the message-store record.
//!
//! The generated records and messages are also stored in the [`TelephonyState`], so the
//! call-log and message-store endpoints serve them once their time has come.

mod parties;
mod records;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallSummary, TelephonyState};
use crate::directory::{ExtensionKind, ExtensionStatus, SimAccount, SimExtension};
use crate::error::ApiError;
use parties::{Party, Session};

/// The kinds of call the generator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallScenario {
    /// A PSTN caller rings an extension, which answers; both hang up.
    InboundAnswered,
    /// A PSTN caller rings an extension and gives up unanswered (`missedCall`).
    InboundMissed,
    /// Unanswered, the call goes to the extension's voicemail and a message is left.
    InboundVoicemail,
    /// An extension calls a PSTN number, which answers.
    OutboundAnswered,
    /// An inbound call answered by one extension and blind-transferred to another.
    Transferred,
    /// An outbound call put on hold and resumed.
    HoldResume,
}

impl CallScenario {
    /// Every scenario.
    pub const ALL: [Self; 6] = [
        Self::InboundAnswered,
        Self::InboundMissed,
        Self::InboundVoicemail,
        Self::OutboundAnswered,
        Self::Transferred,
        Self::HoldResume,
    ];
}

/// One telephony notification body and when RingCentral emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// When the notification is due (simulated time).
    pub at: DateTime<Utc>,
    /// The envelope's `event` path, e.g.
    /// `/restapi/v1.0/account/1/extension/2/telephony/sessions`.
    pub event: String,
    /// The notification `body`.
    pub body: Value,
}

/// The voicemail part of a call that went to voicemail.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedVoicemail {
    /// When the message exists and both events are due.
    pub at: DateTime<Utc>,
    /// The mailbox's extension id.
    pub extension_id: String,
    /// The message id.
    pub message_id: u64,
    /// `…/extension/{id}/voicemail` notification: (`event` path, body).
    pub voicemail_event: TimedEvent,
    /// `…/extension/{id}/message-store` notification (`MessageEventBody`).
    pub message_store_event: TimedEvent,
    /// The message-store record (`GetMessageInfoResponse`).
    pub message: Value,
}

/// What one generated call produces.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCall {
    /// The scenario played.
    pub scenario: CallScenario,
    /// `telephonySessionId`.
    pub telephony_session_id: String,
    /// Legacy `sessionId`.
    pub session_id: String,
    /// The telephony-session notifications, in `sequence` order.
    pub events: Vec<TimedEvent>,
    /// When the last party disconnected.
    pub ended_at: DateTime<Utc>,
    /// The call-log records (Detailed view, extension-path `uri`), one per extension
    /// involved.
    pub call_log: Vec<Value>,
    /// When the records appear in the call log: `ended_at` + 15–30 s.
    pub call_log_visible_at: DateTime<Utc>,
    /// The voicemail, for [`CallScenario::InboundVoicemail`].
    pub voicemail: Option<GeneratedVoicemail>,
}

impl GeneratedCall {
    /// Every notification the call causes, in time order: the telephony events, then
    /// (for voicemail) the voicemail and message-store events.
    pub fn notifications(&self) -> Vec<TimedEvent> {
        let mut all = self.events.clone();
        if let Some(vm) = &self.voicemail {
            all.push(vm.voicemail_event.clone());
            all.push(vm.message_store_event.clone());
        }
        all.sort_by_key(|e| e.at);
        all
    }

    /// The events in a delivery order that exercises out-of-order handling: with
    /// probability `swap_rate` each event trades places with its successor (the
    /// `sequence` numbers stay with their events), and with probability `duplicate_rate`
    /// an event is delivered twice. `at` stays non-decreasing.
    pub fn disordered(&self, seed: u64, swap_rate: f64, duplicate_rate: f64) -> Vec<TimedEvent> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let swap_rate = swap_rate.clamp(0.0, 1.0);
        let duplicate_rate = duplicate_rate.clamp(0.0, 1.0);
        let mut out = self.events.clone();
        let mut i = 0;
        while i + 1 < out.len() {
            if rng.random_bool(swap_rate) {
                let (at_a, at_b) = (out[i].at, out[i + 1].at);
                out.swap(i, i + 1);
                out[i].at = at_a;
                out[i + 1].at = at_b;
                i += 2;
            } else {
                i += 1;
            }
        }
        let mut with_dups = Vec::with_capacity(out.len() * 2);
        for ev in out {
            let dup = rng.random_bool(duplicate_rate);
            with_dups.push(ev.clone());
            if dup {
                with_dups.push(ev);
            }
        }
        with_dups
    }
}

/// Plays `scenario` on `account` starting at `start`, stores its call-log record(s) and
/// voicemail in `state`, and returns everything RingCentral would emit. The callee (or
/// caller, or voicemail box) is a random enabled user, so calls spread over
/// every user of a large account.
///
/// # Errors
/// `CMN-101` (400) when the account lacks the extensions the scenario needs (an enabled
/// user extension; two for [`CallScenario::Transferred`]).
pub fn generate_call(
    state: &mut TelephonyState,
    account: &SimAccount,
    scenario: CallScenario,
    start: DateTime<Utc>,
) -> Result<GeneratedCall, ApiError> {
    generate_call_to(state, account, scenario, start, None)
}

/// Whether the generator may use `e` in `scenario`: an enabled user; or, as the fixed
/// `target` of a voicemail call, any enabled extension with a mailbox.
fn fits(scenario: CallScenario, e: &SimExtension, target: Option<&str>) -> bool {
    e.status == ExtensionStatus::Enabled
        && (e.kind == ExtensionKind::User
            || (scenario == CallScenario::InboundVoicemail
                && target == Some(e.id.as_str())
                && e.kind.takes_voicemail()))
}

/// Like [`generate_call`], with the main extension (the callee, caller, voicemail box, or
/// the first of a transfer) fixed to `target` when given. A voicemail call may target any
/// enabled extension with a mailbox (`ExtensionKind::takes_voicemail`: users, call queues,
/// voicemail extensions); other scenarios need an enabled user.
///
/// # Errors
/// As [`generate_call`]; `CMN-101` naming `extensionId` when `target` is not an enabled
/// extension of the account that fits the scenario.
pub fn generate_call_to(
    state: &mut TelephonyState,
    account: &SimAccount,
    scenario: CallScenario,
    start: DateTime<Utc>,
    target: Option<&str>,
) -> Result<GeneratedCall, ApiError> {
    let mut users: Vec<&SimExtension> = account
        .extensions
        .iter()
        .filter(|e| fits(scenario, e, target))
        .collect();
    let needed = if scenario == CallScenario::Transferred {
        2
    } else {
        1
    };
    if users.len() < needed {
        return Err(ApiError::new(
            400,
            "CMN-101",
            format!(
                "Account [{}] needs {needed} enabled extension(s) for scenario {scenario:?}",
                account.id
            ),
        )
        .with_parameter("scenario"));
    }
    users.shuffle(&mut state.rng);
    if let Some(target) = target {
        let at = users.iter().position(|e| e.id == target).ok_or_else(|| {
            ApiError::new(
                400,
                "CMN-101",
                format!("Extension [{target}] cannot take part in scenario {scenario:?}"),
            )
            .with_parameter("extensionId")
        })?;
        users.swap(0, at);
    }
    let mut session = Session::new(state, account, start);
    let pstn_number = format!("+1415555{:04}", state.rng.random_range(1000..10_000));
    let plan = play(state, &mut session, scenario, &users, &pstn_number);
    let lag = Duration::milliseconds(state.rng.random_range(15_000..=30_000));
    let visible_at = plan.ended_at + lag;
    let voicemail = match &plan.voicemail_from {
        Some(vm) => Some(records::voicemail(state, account, vm, plan.ended_at)),
        None => None,
    };
    let call_log = records::call_log(state, account, &session, &plan, voicemail.as_ref());
    let account_state = state.account_mut(&account.id);
    for (ext, record) in &call_log {
        account_state.call_log.push(super::CallLogEntry {
            id: record["id"].as_str().unwrap_or_default().to_owned(),
            extension_id: ext.clone(),
            start_time: start,
            visible_at,
            record: record.clone(),
        });
    }
    if let Some(vm) = &voicemail {
        account_state.messages.push(super::MessageEntry {
            id: vm.message_id,
            extension_id: vm.extension_id.clone(),
            creation_time: vm.at,
            last_modified: vm.at,
            record: vm.message.clone(),
        });
    }
    account_state.calls.push(CallSummary {
        telephony_session_id: session.telephony_session_id.clone(),
        session_id: session.session_id.clone(),
        scenario,
        started_at: start,
        ended_at: plan.ended_at,
    });
    let base = state.base_url.clone();
    Ok(GeneratedCall {
        scenario,
        telephony_session_id: session.telephony_session_id.clone(),
        session_id: session.session_id.clone(),
        events: session.events,
        ended_at: plan.ended_at,
        call_log: call_log
            .into_iter()
            .map(|(ext, mut r)| {
                let id = r["id"].as_str().unwrap_or_default().to_owned();
                r["uri"] = Value::from(format!(
                    "{base}/restapi/v1.0/account/{}/extension/{ext}/call-log/{id}?view=Detailed",
                    account.id
                ));
                r
            })
            .collect(),
        call_log_visible_at: visible_at,
        voicemail,
    })
}

/// What a played scenario leaves for the records: who took part and how it ended.
pub(crate) struct Plan {
    /// Extension legs: (extension, party, call-log `result`, `reason`).
    pub legs: Vec<(SimExtension, Party, &'static str, Option<&'static str>)>,
    /// The PSTN party.
    pub pstn: Party,
    /// `Inbound` or `Outbound`, from the account's point of view.
    pub direction: &'static str,
    /// When each leg was answered (for durations), per leg; `None` if never.
    pub answered_at: Vec<Option<DateTime<Utc>>>,
    pub ended_at: DateTime<Utc>,
    pub recorded: bool,
    /// For voicemail: (mailbox extension, caller number, message length in s).
    pub voicemail_from: Option<(SimExtension, String, i64)>,
}

fn secs(state: &mut TelephonyState, lo: i64, hi: i64) -> Duration {
    Duration::milliseconds(state.rng.random_range(lo * 1000..=hi * 1000))
}

fn play(
    state: &mut TelephonyState,
    s: &mut Session,
    scenario: CallScenario,
    users: &[&SimExtension],
    pstn_number: &str,
) -> Plan {
    let ext = users[0].clone();
    let inbound = !matches!(
        scenario,
        CallScenario::OutboundAnswered | CallScenario::HoldResume
    );
    let (pstn, party) = if inbound {
        s.inbound_parties(&ext, pstn_number)
    } else {
        s.outbound_parties(&ext, pstn_number)
    };
    let mut plan = Plan {
        legs: Vec::new(),
        pstn: pstn.clone(),
        direction: if inbound { "Inbound" } else { "Outbound" },
        answered_at: Vec::new(),
        ended_at: s.now,
        recorded: matches!(
            scenario,
            CallScenario::InboundAnswered | CallScenario::HoldResume
        ),
        voicemail_from: None,
    };
    // Ringing: the caller's leg first, then the callee's (as the real flows show).
    let (first, second) = if inbound {
        (&pstn, &party)
    } else {
        (&party, &pstn)
    };
    s.emit(first, "Setup", None);
    s.step(Duration::milliseconds(40));
    s.emit(second, if inbound { "Setup" } else { "Proceeding" }, None);
    s.step(Duration::milliseconds(300));
    s.emit(first, "Proceeding", None);
    if inbound {
        s.step(Duration::milliseconds(40));
        s.emit(second, "Proceeding", None);
    }
    let ring = secs(state, 3, 12);
    match scenario {
        CallScenario::InboundMissed => {
            s.step(secs(state, 20, 35));
            s.emit(&pstn, "Disconnected", None);
            s.step(Duration::milliseconds(60));
            s.emit_missed(&party, "Disconnected", None);
            plan.legs.push((ext, party, "Missed", None));
            plan.answered_at.push(None);
        }
        CallScenario::InboundVoicemail => {
            s.step(secs(state, 20, 30));
            s.emit_missed(&party, "VoiceMail", None);
            let talk = secs(state, 8, 40);
            s.step(talk);
            s.emit(&pstn, "Disconnected", None);
            s.step(Duration::milliseconds(60));
            s.emit_missed(&party, "Disconnected", None);
            plan.voicemail_from = Some((ext.clone(), pstn_number.to_owned(), talk.num_seconds()));
            plan.legs.push((ext, party, "Voicemail", None));
            plan.answered_at.push(None);
        }
        CallScenario::Transferred => {
            s.step(ring);
            s.answer(second, first);
            plan.answered_at.push(Some(s.now));
            s.step(secs(state, 10, 60));
            s.emit(&party, "Disconnected", Some("BlindTransfer"));
            let target = users[1].clone();
            let new_party = s.transfer_party(&target, pstn_number);
            s.step(Duration::milliseconds(200));
            s.emit(&new_party, "Setup", None);
            s.step(Duration::milliseconds(300));
            s.emit(&new_party, "Proceeding", None);
            s.step(secs(state, 2, 8));
            s.emit(&new_party, "Answered", None);
            plan.answered_at.push(Some(s.now));
            s.step(secs(state, 20, 240));
            s.hang_up(&new_party, &pstn);
            plan.legs.push((ext, party, "Accepted", None));
            plan.legs.push((target, new_party, "Accepted", None));
        }
        CallScenario::InboundAnswered
        | CallScenario::OutboundAnswered
        | CallScenario::HoldResume => {
            s.step(ring);
            s.answer(second, first);
            plan.answered_at.push(Some(s.now));
            s.step(secs(state, 20, 300));
            if scenario == CallScenario::HoldResume {
                s.emit(&party, "Hold", None);
                s.step(secs(state, 10, 90));
                s.emit(&party, "Answered", None);
                s.step(secs(state, 10, 120));
            }
            s.hang_up(&party, &pstn);
            let result = if inbound {
                "Accepted"
            } else {
                "Call connected"
            };
            plan.legs.push((ext, party, result, None));
        }
    }
    plan.ended_at = s.now;
    plan
}
