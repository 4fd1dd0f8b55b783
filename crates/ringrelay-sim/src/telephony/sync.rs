//! Sync tokens for call-log-sync and message-sync. A token names the account, the scope,
//! the reset epoch and the sync time; a token from an older epoch is expired (the
//! simulator's "call log was reset"), a token for another account or scope, or one that
//! does not decode, is invalid.

use base64::Engine as _;
use chrono::{DateTime, Utc};

/// What a sync token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncToken {
    /// `clg` (call log) or `msg` (message store).
    pub kind: String,
    /// Account id.
    pub account_id: String,
    /// Scope path (see [`super::Scope::path`]).
    pub scope: String,
    /// Reset epoch at issue time.
    pub epoch: u32,
    /// The `syncTime` it was issued at.
    pub time: DateTime<Utc>,
}

impl SyncToken {
    /// The opaque string handed to the client.
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}|{}|{}|{}|{}",
            self.kind,
            self.account_id,
            self.scope,
            self.epoch,
            self.time.timestamp_millis()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a client's token; `None` when it is not one of ours.
    pub fn decode(token: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('|');
        let kind = parts.next()?.to_owned();
        let account_id = parts.next()?.to_owned();
        let scope = parts.next()?.to_owned();
        let epoch = parts.next()?.parse().ok()?;
        let time = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            kind,
            account_id,
            scope,
            epoch,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_garbage_does_not_decode() {
        let t = SyncToken {
            kind: "clg".into(),
            account_id: "1".into(),
            scope: "/restapi/v1.0/account/1".into(),
            epoch: 3,
            time: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
        };
        assert_eq!(SyncToken::decode(&t.encode()), Some(t));
        assert_eq!(SyncToken::decode("FAsDAwAAAT8KmvmABAAAAT8KnB54"), None);
        assert_eq!(SyncToken::decode("!!"), None);
    }
}
