//! Call-log sync and message sync (API.md §5.2, §5.4): FSync to start, ISync with the
//! returned token after that, and a fresh FSync whenever RingCentral says the token is no
//! longer usable (more than 250 changes, call log reset, MSG-333).

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::RingCentral;
use super::call_log::{CallLogRecord, CallLogScope, parse_record, rc_time};
use super::error::ApiError;
use super::governor::{ApiGroup, Priority};
use super::http::{ApiRequest, decode};
use super::lenient;
use super::messages::{VoicemailMessage, parse_message};
use super::subscriptions::path_segment;

/// The most records a call-log FSync may ask for.
pub const MAX_RECORD_COUNT: u32 = 250;

/// What a sync returned.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult<T> {
    /// New or changed records.
    pub records: Vec<T>,
    /// The token for the next ISync.
    pub sync_token: String,
    /// RingCentral's `syncTime`.
    pub sync_time: Option<DateTime<Utc>>,
    /// Whether this was a full sync (asked for, or forced by a dead token).
    pub full: bool,
}

/// A call-log sync request.
#[derive(Debug, Clone)]
pub struct CallLogSync {
    /// Whose log.
    pub scope: CallLogScope,
    /// The token of the previous sync; `None` starts with an FSync.
    pub sync_token: Option<String>,
    /// FSync start (RingCentral allows the last 30 days).
    pub date_from: Option<DateTime<Utc>>,
    /// Records per FSync (1–250; mandatory for FSync).
    pub record_count: u32,
    /// Live or backfill.
    pub priority: Priority,
}

/// A message (voicemail) sync request.
#[derive(Debug, Clone)]
pub struct MessageSync {
    /// The extension (`~` for the authorised user).
    pub extension_id: String,
    /// The token of the previous sync; `None` starts with an FSync.
    pub sync_token: Option<String>,
    /// FSync start.
    pub date_from: Option<DateTime<Utc>>,
    /// Records per FSync.
    pub record_count: u32,
    /// Live or backfill.
    pub priority: Priority,
}

#[derive(Deserialize)]
struct WireSync {
    #[serde(default)]
    records: Vec<serde_json::Value>,
    #[serde(rename = "syncInfo")]
    sync_info: WireSyncInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSyncInfo {
    sync_token: String,
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    sync_time: Option<DateTime<Utc>>,
}

/// Parses a sync response with `parse` for each record.
pub(crate) fn parse_sync<T>(
    body: &[u8],
    what: &'static str,
    full: bool,
    parse: impl Fn(serde_json::Value) -> Result<T, ApiError>,
) -> Result<SyncResult<T>, ApiError> {
    let w: WireSync = decode(body, what)?;
    let records = w.records.into_iter().map(parse).collect::<Result<_, _>>()?;
    Ok(SyncResult {
        records,
        sync_token: w.sync_info.sync_token,
        sync_time: w.sync_info.sync_time,
        full,
    })
}

impl RingCentral {
    /// Call-log sync (Heavy group, Detailed view): ISync when a token is given, falling
    /// back to FSync when RingCentral refuses the token; FSync otherwise.
    ///
    /// # Errors
    /// Any [`ApiError`] other than the handled "full sync required".
    #[tracing::instrument(skip_all, fields(account = %self.account(), incremental = req.sync_token.is_some()))]
    pub async fn call_log_sync(
        &self,
        req: &CallLogSync,
    ) -> Result<SyncResult<CallLogRecord>, ApiError> {
        if !(1..=MAX_RECORD_COUNT).contains(&req.record_count) {
            return Err(ApiError::InvalidInput(format!(
                "recordCount {} is not in 1..={MAX_RECORD_COUNT}",
                req.record_count
            )));
        }
        let base = ApiRequest::new(
            Method::GET,
            req.scope.path("call-log-sync")?,
            ApiGroup::Heavy,
        )
        .priority(req.priority)
        .query("view", "Detailed");
        self.sync(
            base,
            req.sync_token.as_deref(),
            req.record_count,
            req.date_from,
            "call-log sync",
            parse_record,
        )
        .await
    }

    /// Message sync for voicemails (Light group): ISync when a token is given, FSync when
    /// there is none or RingCentral demands one (MSG-333).
    ///
    /// # Errors
    /// Any [`ApiError`] other than the handled "full sync required".
    #[tracing::instrument(skip_all, fields(account = %self.account(), incremental = req.sync_token.is_some()))]
    pub async fn message_sync(
        &self,
        req: &MessageSync,
    ) -> Result<SyncResult<VoicemailMessage>, ApiError> {
        if req.record_count == 0 {
            return Err(ApiError::InvalidInput(
                "recordCount must be at least 1".into(),
            ));
        }
        let path = format!(
            "/restapi/v1.0/account/~/extension/{}/message-sync",
            path_segment(&req.extension_id)?
        );
        let base = ApiRequest::new(Method::GET, path, ApiGroup::Light)
            .priority(req.priority)
            .query("messageType", "VoiceMail");
        self.sync(
            base,
            req.sync_token.as_deref(),
            req.record_count,
            req.date_from,
            "message sync",
            parse_message,
        )
        .await
    }

    /// The sync protocol both syncs share: ISync with `token` when there is one; an FSync
    /// (`recordCount`, optional `dateFrom`) when there is none or RingCentral refuses it.
    async fn sync<T>(
        &self,
        base: ApiRequest,
        token: Option<&str>,
        record_count: u32,
        date_from: Option<DateTime<Utc>>,
        what: &'static str,
        parse: impl Fn(serde_json::Value) -> Result<T, ApiError>,
    ) -> Result<SyncResult<T>, ApiError> {
        if let Some(token) = token {
            let isync = base
                .clone()
                .query("syncType", "ISync")
                .query("syncToken", token);
            match self.execute(&isync).await {
                Ok(body) => return parse_sync(&body, what, false, parse),
                Err(ApiError::FullSyncRequired { code, .. }) => {
                    tracing::info!(%code, what, "sync token refused; running a full sync");
                }
                Err(e) => return Err(e),
            }
        }
        let mut fsync = base
            .query("syncType", "FSync")
            .query("recordCount", record_count);
        if let Some(from) = date_from {
            fsync = fsync.query("dateFrom", rc_time(from));
        }
        parse_sync(&self.execute(&fsync).await?, what, true, parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../fixtures/ringcentral/examples/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture exists")
    }

    #[test]
    fn fsync_and_isync_responses_parse_with_their_tokens() {
        for (name, n) in [
            ("call-log-sync-fsync-response.json", None),
            ("call-log-sync-isync-response.json", Some(1)),
        ] {
            let r = parse_sync(&fixture(name), "t", false, parse_record).unwrap();
            assert!(!r.sync_token.is_empty(), "{name}");
            assert!(r.sync_time.is_some(), "{name}");
            if let Some(n) = n {
                assert_eq!(r.records.len(), n);
            }
        }
    }

    #[test]
    fn a_sync_body_without_sync_info_is_a_decode_error() {
        let err = parse_sync(br#"{"records":[]}"#, "t", true, parse_record).unwrap_err();
        assert!(err.to_string().contains("syncInfo"), "{err}");
    }
}
