//! What the simulated RingCentral knows about calls and voicemail: per account, the
//! calls the generator made, their call-log records (visible only after RingCentral's
//! 15–30 s lag), the voicemail messages of the message store, and the sync epochs that
//! make call-log-sync and message-sync tokens expire.
//!
//! Submodules:
//! - [`generator`]: realistic calls ([`CallScenario`]) producing timed telephony-session
//!   events, call-log records and voicemail, as `API.md` §4.3–4.5 and the real payloads in
//!   `fixtures/ringcentral/examples/` describe them.
//! - [`call_log`]: `GET …/call-log`, `…/call-log/{id}` and `…/call-log-sync`.
//! - [`messages`]: `GET …/message-store`, `…/message-store/{id}` and `…/message-sync`.
//! - [`routes`]: one entry point, [`handle_get`], that routes a request path to the above.
//!
//! The state is plain data: the platform keeps it in an `Arc<Mutex<TelephonyState>>` and
//! passes the simulated clock's `now` to every handler.

pub mod call_log;
pub mod generator;
pub mod messages;
pub(crate) mod query;
pub(crate) mod render;
pub mod routes;
mod sync;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::directory::SimAccount;
use crate::error::ApiError;

pub use generator::{
    CallScenario, GeneratedCall, GeneratedVoicemail, TimedEvent, generate_call, generate_call_to,
};
pub use query::Params;
pub use routes::handle_get;

/// Everything telephony the simulator holds, for every account.
#[derive(Debug)]
pub struct TelephonyState {
    /// Base URL the simulator answers on (e.g. `http://127.0.0.1:40123`), used in every
    /// `uri` of a record, a navigation link or an attachment.
    base_url: String,
    accounts: HashMap<String, AccountTelephony>,
    rng: StdRng,
    counter: u64,
}

/// One account's calls, call log, messages and sync epochs.
#[derive(Debug, Default, Clone)]
pub struct AccountTelephony {
    /// The calls generated so far, in generation order.
    pub calls: Vec<CallSummary>,
    /// Call-log records, one per extension involved in a call.
    pub call_log: Vec<CallLogEntry>,
    /// Message-store voicemail messages.
    pub messages: Vec<MessageEntry>,
    /// Bumped by [`TelephonyState::reset_call_log`]; tokens of older epochs are expired.
    pub call_log_epoch: u32,
    /// Bumped by [`TelephonyState::reset_message_store`]; tokens of older epochs are expired.
    pub message_epoch: u32,
}

/// A generated call, as the simulator remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    /// `telephonySessionId`, e.g. `s-c23b203d62db4f6aaee00717bafa99be`.
    pub telephony_session_id: String,
    /// Legacy `sessionId`, e.g. `429182699016`.
    pub session_id: String,
    /// The scenario played.
    pub scenario: CallScenario,
    /// When the first event happened.
    pub started_at: DateTime<Utc>,
    /// When the last party disconnected.
    pub ended_at: DateTime<Utc>,
}

/// One call-log record and where and when it is visible.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLogEntry {
    /// Record id, e.g. `VgLcd1KWffJVzUA`.
    pub id: String,
    /// The extension whose call log holds it.
    pub extension_id: String,
    /// The call's start.
    pub start_time: DateTime<Utc>,
    /// When the record appears in the call log (call end + 15–30 s, `API.md` §5.1).
    pub visible_at: DateTime<Utc>,
    /// The Detailed-view record without `uri` (added per request, it depends on the path).
    pub record: Value,
}

/// One message-store message (voicemail).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEntry {
    /// Message id (an int64 in message-store records).
    pub id: u64,
    /// The mailbox's extension.
    pub extension_id: String,
    /// `creationTime`; the message is visible from then on.
    pub creation_time: DateTime<Utc>,
    /// `lastModifiedTime`; message-sync ISync returns messages modified after the token.
    pub last_modified: DateTime<Utc>,
    /// The full message-store record (`GetMessageInfoResponse`), `uri` included.
    pub record: Value,
}

impl TelephonyState {
    /// An empty state whose random choices (durations, ids, lags) come from `seed`.
    pub fn new(base_url: impl Into<String>, seed: u64) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            accounts: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            counter: 0,
        }
    }

    /// The base URL used in `uri` fields.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Changes the base URL (e.g. once the server knows its port). Records already
    /// generated keep their old URIs.
    pub fn set_base_url(&mut self, base_url: impl Into<String>) {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
    }

    /// The account's telephony, if it has any.
    pub fn account(&self, account_id: &str) -> Option<&AccountTelephony> {
        self.accounts.get(account_id)
    }

    fn account_mut(&mut self, account_id: &str) -> &mut AccountTelephony {
        self.accounts.entry(account_id.to_owned()).or_default()
    }

    /// Makes every outstanding call-log-sync token of the account expire, as RingCentral
    /// does when "the call log was reset" (`API.md` §5.2: the server may demand an FSync
    /// at any time).
    pub fn reset_call_log(&mut self, account_id: &str) {
        self.account_mut(account_id).call_log_epoch += 1;
    }

    /// Makes every outstanding message-sync token of the account expire (MSG-333).
    pub fn reset_message_store(&mut self, account_id: &str) {
        self.account_mut(account_id).message_epoch += 1;
    }

    /// Marks a message `Read` (or `Unread`), updating `lastModifiedTime` so message-sync
    /// ISync reports it.
    ///
    /// # Errors
    /// `CMN-102` (404) when the account has no such message.
    pub fn set_message_read(
        &mut self,
        account_id: &str,
        message_id: u64,
        read: bool,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let msg = self
            .accounts
            .get_mut(account_id)
            .and_then(|a| a.messages.iter_mut().find(|m| m.id == message_id))
            .ok_or_else(|| ApiError::not_found("messageId"))?;
        msg.last_modified = now;
        msg.record["readStatus"] = Value::from(if read { "Read" } else { "Unread" });
        msg.record["lastModifiedTime"] = Value::from(render::rc_time(now));
        Ok(())
    }

    fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

/// Whose records a request asks for: the whole account's or one extension's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `…/account/{accountId}/…` (company call log).
    Account,
    /// `…/account/{accountId}/extension/{extensionId}/…`.
    Extension(String),
}

impl Scope {
    /// Resolves an `{extensionId}` path segment (`~` is the logged-in owner).
    ///
    /// # Errors
    /// `CMN-102` (404) when the account has no such extension.
    pub fn extension(account: &SimAccount, segment: &str) -> Result<Self, ApiError> {
        if segment == "~" {
            return Ok(Self::Extension(account.owner().id.clone()));
        }
        if account.extensions.iter().any(|e| e.id == segment) {
            Ok(Self::Extension(segment.to_owned()))
        } else {
            Err(ApiError::not_found("extensionId"))
        }
    }

    /// The path prefix of this scope, e.g. `/restapi/v1.0/account/1/extension/2`.
    pub fn path(&self, account_id: &str) -> String {
        match self {
            Self::Account => format!("/restapi/v1.0/account/{account_id}"),
            Self::Extension(ext) => format!("/restapi/v1.0/account/{account_id}/extension/{ext}"),
        }
    }

    fn includes(&self, extension_id: &str) -> bool {
        match self {
            Self::Account => true,
            Self::Extension(e) => e == extension_id,
        }
    }
}

#[cfg(test)]
mod generator_tests;
#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod schema_tests;
