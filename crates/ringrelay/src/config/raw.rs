//! The config file's shape as written (strings for durations and secrets), deserialized
//! strictly: an unknown key is an error that names it.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub server: RawServer,
    pub store: RawStore,
    pub log: RawLog,
    pub keeper: RawKeeper,
    pub sync: RawSync,
    pub cluster: RawCluster,
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub admin_token: String,
    pub max_body_bytes: u64,
    pub max_json_depth: u32,
    pub request_timeout: String,
    pub ingest_queue: u64,
    pub replica_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub url: String,
    pub inbox_retention: String,
    pub delivered_retention: String,
    pub prune_interval: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: String,
    pub level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeeper {
    pub reconcile_interval: String,
    pub silence_threshold: String,
    pub token_grace: String,
    pub extension_refresh: String,
    pub max_filters_per_subscription: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub interval: String,
    pub backfill_margin: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub lease_ttl: String,
    pub lease_renew: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub id: String,
    #[serde(default = "default_server")]
    pub server: String,
    pub client_id: String,
    pub client_secret: String,
    pub jwt: String,
    pub event_filters: Option<Vec<String>>,
    #[serde(default = "default_expires_in")]
    pub expires_in: String,
    #[serde(default)]
    pub renew_before: String,
    #[serde(default = "default_reminder_threshold")]
    pub reminder_threshold: String,
    #[serde(default = "default_reminder_interval")]
    pub reminder_interval: String,
    #[serde(default)]
    pub scope: Option<RawScope>,
}

/// `scope`: `"company"`, `"self"`, or a list of extension ids (strings or numbers).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawScope {
    Name(String),
    List(Vec<RawId>),
}

/// An extension id as written: `"62295327016"` or `62295327016`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawId {
    Text(String),
    Number(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: Option<String>,
    pub secret: Option<OneOrMany>,
    #[serde(default)]
    pub accounts: Vec<String>,
    pub types: Option<Vec<String>>,
    pub retry_schedule: Option<Vec<String>>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub allow_private: bool,
    pub disable_after: Option<String>,
    pub subject: Option<String>,
    pub stream: Option<String>,
    pub create_stream: Option<bool>,
    pub path: Option<String>,
}

/// A value given either as one string or as a list (sink secrets during a rotation).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn default_server() -> String {
    "https://platform.ringcentral.com".into()
}
fn default_expires_in() -> String {
    "7d".into()
}
fn default_reminder_threshold() -> String {
    "2d".into()
}
fn default_reminder_interval() -> String {
    "12h".into()
}
