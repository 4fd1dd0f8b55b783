//! Telephony-session event building: the session ids, the parties (the account's
//! extension parties carry `extensionId` and are reported on the extension event path;
//! PSTN parties have no `extensionId` and go to the account path) and the `sequence`
//! counter that orders one session's events.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::TimedEvent;
use crate::directory::{SimAccount, SimExtension};
use crate::telephony::TelephonyState;
use crate::telephony::render::rc_time;

/// One party of the session.
#[derive(Debug, Clone, PartialEq)]
pub struct Party {
    pub id: String,
    pub extension_id: Option<String>,
    pub direction: &'static str,
    pub from: Value,
    pub to: Value,
}

/// A session being played: ids, the clock of the call, the sequence and the events.
pub struct Session {
    pub account_id: String,
    pub telephony_session_id: String,
    pub session_id: String,
    server_id: String,
    pub now: DateTime<Utc>,
    sequence: u64,
    parties: u32,
    pub events: Vec<TimedEvent>,
}

impl Session {
    pub fn new(state: &mut TelephonyState, account: &SimAccount, start: DateTime<Utc>) -> Self {
        let hex: String = (0..32)
            .map(|_| char::from_digit(state.rng.random_range(0..16), 16).unwrap_or('0'))
            .collect();
        let n = state.next_counter();
        Self {
            account_id: account.id.clone(),
            telephony_session_id: format!("s-{hex}"),
            session_id: format!("{}016", 429_182_000 + n),
            server_id: "10.13.22.243.TAM".to_owned(),
            now: start,
            sequence: 0,
            parties: 0,
            events: Vec::new(),
        }
    }

    fn party_id(&mut self) -> String {
        self.parties += 1;
        format!("p-{}-{}", &self.telephony_session_id[2..], self.parties)
    }

    /// Advances the call's clock.
    pub fn step(&mut self, by: Duration) {
        self.now += by;
    }

    /// A PSTN caller (Outbound party, no `extensionId`) ringing `ext` (Inbound party).
    pub fn inbound_parties(&mut self, ext: &SimExtension, caller: &str) -> (Party, Party) {
        let pstn = Party {
            id: self.party_id(),
            extension_id: None,
            direction: "Outbound",
            from: json!({ "phoneNumber": caller }),
            to: json!({ "phoneNumber": ext.phone_number }),
        };
        let callee = self.extension_party(ext, caller);
        (pstn, callee)
    }

    /// An extension party receiving the PSTN `caller` (used for transfers too).
    fn extension_party(&mut self, ext: &SimExtension, caller: &str) -> Party {
        Party {
            id: self.party_id(),
            extension_id: Some(ext.id.clone()),
            direction: "Inbound",
            from: json!({ "phoneNumber": caller }),
            to: json!({ "phoneNumber": ext.phone_number, "name": ext.name, "extensionId": ext.id }),
        }
    }

    /// The new party of a blind transfer to `target`.
    pub fn transfer_party(&mut self, target: &SimExtension, caller: &str) -> Party {
        self.extension_party(target, caller)
    }

    /// `ext` (Outbound party, with its device) calling `callee` (Inbound PSTN party).
    pub fn outbound_parties(&mut self, ext: &SimExtension, callee: &str) -> (Party, Party) {
        let device = format!("2100{}", &ext.id[ext.id.len().saturating_sub(8)..]);
        let caller = Party {
            id: self.party_id(),
            extension_id: Some(ext.id.clone()),
            direction: "Outbound",
            from: json!({ "phoneNumber": ext.phone_number, "extensionId": ext.id, "deviceId": device }),
            to: json!({ "phoneNumber": callee }),
        };
        let pstn = Party {
            id: self.party_id(),
            extension_id: None,
            direction: "Inbound",
            from: json!({ "phoneNumber": ext.phone_number, "name": ext.name, "extensionId": ext.id }),
            to: json!({ "phoneNumber": callee }),
        };
        (pstn, caller)
    }

    /// Emits one event for `party` with status `code` (and `reason`).
    pub fn emit(&mut self, party: &Party, code: &str, reason: Option<&str>) {
        self.push(party, code, reason, false);
    }

    /// Like [`Self::emit`] with `missedCall: true`.
    pub fn emit_missed(&mut self, party: &Party, code: &str, reason: Option<&str>) {
        self.push(party, code, reason, true);
    }

    /// Callee answers, then the caller's leg reports Answered 50 ms later.
    pub fn answer(&mut self, callee: &Party, caller: &Party) {
        self.emit(callee, "Answered", None);
        self.step(Duration::milliseconds(50));
        self.emit(caller, "Answered", None);
    }

    /// `first` hangs up, the other leg follows 60 ms later.
    pub fn hang_up(&mut self, first: &Party, second: &Party) {
        self.emit(first, "Disconnected", None);
        self.step(Duration::milliseconds(60));
        self.emit(second, "Disconnected", None);
    }

    fn push(&mut self, party: &Party, code: &str, reason: Option<&str>, missed: bool) {
        self.sequence += 1;
        let mut status = json!({ "code": code, "rcc": false });
        if let Some(r) = reason {
            status["reason"] = json!(r);
        }
        let mut p = json!({
            "accountId": self.account_id,
            "id": party.id,
            "direction": party.direction,
            "to": party.to,
            "from": party.from,
            "status": status,
            "park": {},
            "missedCall": missed,
            "standAlone": false,
            "muted": false,
        });
        let event = match &party.extension_id {
            Some(ext) => {
                p["extensionId"] = json!(ext);
                format!(
                    "/restapi/v1.0/account/{}/extension/{ext}/telephony/sessions",
                    self.account_id
                )
            }
            None => format!(
                "/restapi/v1.0/account/{}/telephony/sessions",
                self.account_id
            ),
        };
        let body = json!({
            "sequence": self.sequence,
            "sessionId": self.session_id,
            "telephonySessionId": self.telephony_session_id,
            "serverId": self.server_id,
            "eventTime": rc_time(self.now),
            "parties": [p],
            "origin": { "type": "Call" },
        });
        self.events.push(TimedEvent {
            at: self.now,
            event,
            body,
        });
    }
}
