//! Per-session telephony state: every observation of every party, keyed by `sequence`, so
//! out-of-order and duplicated events converge to the same state (serde-serializable, to be
//! saved as JSON per `telephonySessionId`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::telephony::{Direction, Endpoint, StatusCode, TelephonyEvent, is_transfer_reason};

/// What one event said about one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// `status.code`.
    pub status: StatusCode,
    /// `status.reason`, if any.
    pub reason: Option<String>,
    /// `missedCall` as sent with this status.
    pub missed_call: bool,
    /// When (the event's `eventTime`, or the best fallback).
    pub at: DateTime<Utc>,
}

impl Observation {
    /// A transfer: `Gone` or `Disconnected` with a transfer reason (API.md §4.3).
    pub fn is_transfer(&self) -> bool {
        matches!(self.status, StatusCode::Gone | StatusCode::Disconnected)
            && self.reason.as_deref().is_some_and(is_transfer_reason)
    }
}

/// Everything known about one party of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyState {
    /// The account's extension; `None` for external (PSTN) parties.
    pub extension_id: Option<String>,
    /// Direction relative to the party.
    pub direction: Option<Direction>,
    /// Caller, as of the highest sequence seen.
    pub from: Endpoint,
    /// Callee, as of the highest sequence seen.
    pub to: Endpoint,
    /// Whether RingCentral marked it a queue leg (`queueCall`).
    pub queue_call: bool,
    /// Observations by `sequence`.
    pub observations: BTreeMap<i64, Observation>,
}

impl PartyState {
    /// The current status: the observation with the highest sequence (a late lower sequence
    /// never moves a party backwards).
    pub fn latest(&self) -> Option<(i64, &Observation)> {
        self.observations.iter().next_back().map(|(s, o)| (*s, o))
    }

    /// Whether this is one of the account's own parties.
    pub fn is_extension(&self) -> bool {
        self.extension_id.is_some()
    }

    /// Whether the party's first states were seen (anything but a terminal status): a
    /// party seen only as Disconnected may have lost its Answered in flight.
    pub fn is_started(&self) -> bool {
        self.observations.values().any(|o| !o.status.is_terminal())
    }
}

/// Everything known about one telephony session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// `telephonySessionId`.
    pub telephony_session_id: String,
    /// The legacy `sessionId`, once seen.
    pub session_id: Option<String>,
    /// Parties by party id.
    pub parties: BTreeMap<String, PartyState>,
    /// Keys of the activities already emitted for this session.
    pub emitted: BTreeSet<String>,
    /// Set by [`crate::processor::derive::close_session`]: judge the session as finished even
    /// with sequence gaps.
    pub closed: bool,
}

impl SessionState {
    /// An empty state for a session.
    pub fn new(telephony_session_id: &str) -> Self {
        Self {
            telephony_session_id: telephony_session_id.to_owned(),
            ..Self::default()
        }
    }

    /// Records an event; returns the ids of the parties it told something new about (empty
    /// for a duplicate). An event without `eventTime` is stamped with the latest time known
    /// for the session (or the Unix epoch when nothing is known).
    pub fn record(&mut self, event: &TelephonyEvent) -> Vec<String> {
        if self.session_id.is_none() {
            self.session_id.clone_from(&event.session_id);
        }
        let at = event
            .event_time
            .or_else(|| self.all_observations().map(|(_, _, o)| o.at).max())
            .unwrap_or(DateTime::UNIX_EPOCH);
        let mut changed = Vec::new();
        for p in &event.parties {
            let entry = self
                .parties
                .entry(p.id.clone())
                .or_insert_with(|| PartyState {
                    extension_id: None,
                    direction: None,
                    from: Endpoint::default(),
                    to: Endpoint::default(),
                    queue_call: false,
                    observations: BTreeMap::new(),
                });
            let newest = entry.latest().is_none_or(|(s, _)| event.sequence >= s);
            if newest {
                entry.from = p.from.clone();
                entry.to = p.to.clone();
            }
            if entry.extension_id.is_none() {
                entry.extension_id.clone_from(&p.extension_id);
            }
            entry.direction = entry.direction.or(p.direction);
            entry.queue_call |= p.queue_call;
            let obs = Observation {
                status: p.status.clone(),
                reason: p.reason.clone(),
                missed_call: p.missed_call,
                at,
            };
            if let std::collections::btree_map::Entry::Vacant(slot) =
                entry.observations.entry(event.sequence)
            {
                slot.insert(obs);
                changed.push(p.id.clone());
            }
        }
        changed
    }

    /// Every observation as `(party id, sequence, observation)`.
    pub fn all_observations(&self) -> impl Iterator<Item = (&str, i64, &Observation)> {
        self.parties.iter().flat_map(|(id, p)| {
            p.observations
                .iter()
                .map(move |(s, o)| (id.as_str(), *s, o))
        })
    }

    /// Whether a sequence between the lowest and highest seen is missing (an event is
    /// still in flight, or was lost).
    pub fn has_gaps(&self) -> bool {
        let seqs: BTreeSet<i64> = self.all_observations().map(|(_, s, _)| s).collect();
        match (seqs.first(), seqs.last()) {
            (Some(lo), Some(hi)) => u128::from(hi.abs_diff(*lo)) + 1 != seqs.len() as u128,
            _ => false,
        }
    }

    /// Whether the whole session is over: every known party's latest status is terminal,
    /// and the last event is not a hand-off (a transfer, or a queue leg leaving the call to
    /// an agent) after which a new party joins. Unless [`Self::closed`], it also needs no
    /// sequence gaps and every party's start seen, so a late event cannot change the verdict.
    pub fn is_finished(&self) -> bool {
        let all_terminal = !self.parties.is_empty()
            && self
                .parties
                .values()
                .all(|p| p.latest().is_some_and(|(_, o)| o.status.is_terminal()));
        if !all_terminal {
            return false;
        }
        if self.closed {
            return true;
        }
        let last = self
            .parties
            .values()
            .filter_map(|p| p.latest().map(|(s, o)| (s, p, o)))
            .max_by_key(|(s, _, _)| *s);
        let hand_off = last.is_some_and(|(_, p, o)| o.is_transfer() || p.queue_call);
        !hand_off && !self.has_gaps() && self.parties.values().all(PartyState::is_started)
    }
}
