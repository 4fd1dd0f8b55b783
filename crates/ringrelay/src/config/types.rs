//! The typed settings, and the step that turns the raw file into them while collecting
//! every problem with its key.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::raw::{OneOrMany, RawAccount, RawCluster, RawConfig, RawId, RawScope, RawSink};
use super::{ConfigError, DEFAULT_EVENT_FILTERS, Problem, Secret};
use crate::account::AccountId;

/// RingCentral's maximum webhook subscription lifetime (10 years), per the spec's
/// `UpdateSubscriptionRequest.expiresIn`.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(315_360_000);

/// The default retry schedule of sinks (DESIGN §4).
pub const DEFAULT_RETRY_SCHEDULE: [&str; 7] = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"];

/// All settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP server.
    pub server: ServerSettings,
    /// The store.
    pub store: StoreSettings,
    /// Logging.
    pub log: LogSettings,
    /// Subscription keeping.
    pub keeper: KeeperSettings,
    /// Call-log and message-store sync.
    pub sync: SyncSettings,
    /// Leases between replicas.
    pub cluster: ClusterSettings,
    /// The customer accounts.
    pub accounts: Vec<AccountSettings>,
    /// The activity sinks.
    pub sinks: Vec<SinkSettings>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The public base URL RingCentral posts to.
    pub public_url: Url,
    /// Admin API bearer token; `None` turns the admin API off.
    pub admin_token: Option<Secret>,
    /// Largest accepted webhook body.
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting.
    pub max_json_depth: usize,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Capacity of the queue in front of the group-commit writer.
    pub ingest_queue: usize,
    /// This replica's name in leases and `status`; `None`: host name and process id.
    pub replica_id: Option<String>,
}

impl ServerSettings {
    /// The webhook address RingCentral is given for `account`.
    pub fn webhook_url(&self, account: &AccountId) -> Url {
        let base = self.public_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/webhooks/ringcentral/{account}")).expect("valid base URL")
    }
}

/// `[store]`.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which backend, and where.
    pub url: StoreUrl,
    /// Age after which inbox rows are pruned.
    pub inbox_retention: Duration,
    /// Age after which delivered deliveries are pruned.
    pub delivered_retention: Duration,
    /// How often pruning runs.
    pub prune_interval: Duration,
}

/// A store location, chosen by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://path`: an embedded SQLite file.
    Sqlite(std::path::PathBuf),
    /// `postgres://…`: a PostgreSQL connection string (it may hold a password, so it is
    /// never logged whole).
    Postgres(String),
}

impl StoreUrl {
    /// Parses `sqlite://…` or `postgres://…` / `postgresql://…`.
    ///
    /// # Errors
    /// A message naming the accepted schemes.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://ringrelay.db".into());
            }
            return Ok(Self::Sqlite(path.into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        Err(format!(
            "unsupported store URL {s:?}: use sqlite://path/to/file.db or postgres://user:pass@host/db"
        ))
    }

    /// A description safe to print: the SQLite path, or the Postgres host and database
    /// without the user or password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(conn) => url::Url::parse(conn).map_or_else(
                |_| "postgres://[unparseable]".to_owned(),
                |u| format!("postgres://{}{}", u.host_str().unwrap_or("?"), u.path()),
            ),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A tracing filter directive.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[keeper]`.
#[derive(Debug, Clone)]
pub struct KeeperSettings {
    /// Reconcile period.
    pub reconcile_interval: Duration,
    /// Silence after which the subscription is read back.
    pub silence_threshold: Duration,
    /// How long the previous verification token stays valid.
    pub token_grace: Duration,
    /// How often each account's extension list is fetched again (company coverage).
    pub extension_refresh: Duration,
    /// At most this many event filters per subscription (RingCentral documents no
    /// maximum: UNCONFIRMED).
    pub max_filters_per_subscription: usize,
}

/// `[cluster]`: the leases that make one replica the keeper of an account, the processor,
/// or the refresher of an account's token.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// How long a lease lasts unless renewed: a dead replica's accounts are taken over
    /// after at most this long.
    pub lease_ttl: Duration,
    /// How often a held lease is renewed (and a standby replica tries to take a free one).
    pub lease_renew: Duration,
}

/// `[sync]`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Periodic sync interval.
    pub interval: Duration,
    /// Margin around gaps.
    pub backfill_margin: Duration,
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// The slug.
    pub id: AccountId,
    /// RingCentral's API base URL.
    pub server: Url,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Secret,
    /// The JWT credential.
    pub jwt: Secret,
    /// Event filters for the subscription (without the renewal reminder).
    pub event_filters: Vec<String>,
    /// Requested subscription lifetime.
    pub expires_in: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
    /// Renewal-reminder `(threshold, interval)`, or `None` for no reminder filter.
    pub reminder: Option<(Duration, Duration)>,
    /// Which extensions ringrelay covers (default [`Scope::Company`]).
    pub scope: Scope,
}

/// Which of an account's extensions ringrelay covers (`scope` in `[[accounts]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every enabled extension that can take voicemail, when the token's permissions
    /// allow it (otherwise discovery falls back to [`Scope::SelfOnly`] with a warning).
    #[default]
    Company,
    /// Only the JWT's own extension.
    SelfOnly,
    /// These extension ids (each still must be enabled, take voicemail and be permitted).
    Extensions(Vec<String>),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Company => f.write_str("company"),
            Self::SelfOnly => f.write_str("self"),
            Self::Extensions(ids) => write!(f, "[{}]", ids.join(", ")),
        }
    }
}

impl AccountSettings {
    /// The renewal-reminder filter, e.g. `/restapi/v1.0/subscription/~?threshold=172800&interval=43200`.
    pub fn reminder_filter(&self) -> Option<String> {
        self.reminder.map(|(t, i)| {
            format!(
                "/restapi/v1.0/subscription/~?threshold={}&interval={}",
                t.as_secs(),
                i.as_secs()
            )
        })
    }
}

/// One `[[sinks]]` entry.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Unique name.
    pub name: String,
    /// Destination.
    pub kind: SinkKind,
    /// Only these accounts (empty = all).
    pub accounts: Vec<AccountId>,
    /// Activity type globs.
    pub types: Vec<String>,
    /// Delays between attempts; after the last, the delivery is dead-lettered.
    pub retry_schedule: Vec<Duration>,
    /// Failing continuously this long disables the sink.
    pub disable_after: Duration,
}

/// Where a sink sends activities.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// An HTTP endpoint with Standard Webhooks signatures.
    Webhook {
        /// Target URL.
        url: Url,
        /// `whsec_…` secrets; more than one while a secret rotates (all sign).
        secrets: Vec<Secret>,
        /// Per-attempt timeout.
        timeout: Duration,
        /// Allow loopback/private/link-local targets.
        allow_private: bool,
    },
    /// A NATS JetStream subject.
    Nats {
        /// Server URL.
        url: String,
        /// Subject template with `{account}` and `{type}`.
        subject: String,
        /// Stream name.
        stream: String,
        /// Create the stream when missing.
        create_stream: bool,
    },
    /// One JSON line per activity to a file or standard output (`-`).
    Jsonl {
        /// File path or `-`.
        path: String,
    },
}

/// `keeper.max_filters_per_subscription`: at least 2 (a filter and the renewal reminder),
/// at most 10 000 (a request body of about 600 KB).
fn max_filters(c: &mut Check<'_>, raw: u64) -> usize {
    const RANGE: std::ops::RangeInclusive<u64> = 2..=10_000;
    if RANGE.contains(&raw) {
        usize::try_from(raw).unwrap_or(crate::keeper::pack::DEFAULT_MAX_FILTERS)
    } else {
        c.fail(
            "keeper.max_filters_per_subscription",
            format!(
                "{raw} is out of range: use {}..={} (each subscription carries the renewal \
                 reminder and at least one other filter)",
                RANGE.start(),
                RANGE.end()
            ),
        );
        crate::keeper::pack::DEFAULT_MAX_FILTERS
    }
}

/// Collects problems while raw values are converted.
struct Check<'a> {
    env: &'a HashMap<String, String>,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, raw: &str) -> Duration {
        humantime::parse_duration(raw).unwrap_or_else(|e| {
            self.fail(
                key,
                format!("{raw:?} is not a duration ({e}); write e.g. \"30s\", \"5m\", \"7d\""),
            );
            Duration::ZERO
        })
    }

    fn secret(&mut self, key: &str, raw: &str) -> Secret {
        Secret::resolve(raw, self.env).unwrap_or_else(|e| {
            self.fail(key, e);
            Secret::new("")
        })
    }

    fn url(&mut self, key: &str, raw: &str) -> Url {
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(_) => {
                self.fail(key, format!("{raw:?} must be an http:// or https:// URL"));
                Url::parse("http://invalid.invalid").unwrap()
            }
            Err(e) => {
                self.fail(key, format!("{raw:?} is not a URL ({e})"));
                Url::parse("http://invalid.invalid").unwrap()
            }
        }
    }
}

pub(super) fn build(
    raw: RawConfig,
    env: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    let mut c = Check {
        env,
        problems: Vec::new(),
    };
    let s = &raw.server;
    let listen = s.listen.parse().unwrap_or_else(|e| {
        c.fail(
            "server.listen",
            format!(
                "{:?} is not host:port ({e}), e.g. \"0.0.0.0:8080\"",
                s.listen
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let admin_token =
        (!s.admin_token.is_empty()).then(|| c.secret("server.admin_token", &s.admin_token));
    let server = ServerSettings {
        listen,
        public_url: c.url("server.public_url", &s.public_url),
        admin_token: admin_token.filter(|t| !t.is_empty()),
        max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
        max_json_depth: s.max_json_depth as usize,
        request_timeout: c.duration("server.request_timeout", &s.request_timeout),
        ingest_queue: usize::try_from(s.ingest_queue).unwrap_or(usize::MAX).max(1),
        replica_id: replica_id(&mut c, &s.replica_id),
    };
    let store = StoreSettings {
        url: StoreUrl::parse(&raw.store.url).unwrap_or_else(|e| {
            c.fail("store.url", e);
            StoreUrl::Sqlite("ringrelay.db".into())
        }),
        inbox_retention: c.duration("store.inbox_retention", &raw.store.inbox_retention),
        delivered_retention: c
            .duration("store.delivered_retention", &raw.store.delivered_retention),
        prune_interval: c.duration("store.prune_interval", &raw.store.prune_interval),
    };
    let format = match raw.log.format.as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            c.fail(
                "log.format",
                format!("{other:?} is not a log format; use \"pretty\" or \"json\""),
            );
            LogFormat::Pretty
        }
    };
    let log = LogSettings {
        format,
        level: raw.log.level.clone(),
    };
    let keeper = KeeperSettings {
        reconcile_interval: c.duration("keeper.reconcile_interval", &raw.keeper.reconcile_interval),
        silence_threshold: c.duration("keeper.silence_threshold", &raw.keeper.silence_threshold),
        token_grace: c.duration("keeper.token_grace", &raw.keeper.token_grace),
        extension_refresh: c.duration("keeper.extension_refresh", &raw.keeper.extension_refresh),
        max_filters_per_subscription: max_filters(&mut c, raw.keeper.max_filters_per_subscription),
    };
    if keeper.extension_refresh < Duration::from_secs(60) {
        c.fail(
            "keeper.extension_refresh",
            "must be at least 1m (the extension list is in RingCentral's Medium group, 40 requests a minute)",
        );
    }
    let sync = SyncSettings {
        interval: c.duration("sync.interval", &raw.sync.interval),
        backfill_margin: c.duration("sync.backfill_margin", &raw.sync.backfill_margin),
    };
    let cluster = build_cluster(&mut c, &raw.cluster);
    let accounts: Vec<_> = raw
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| build_account(&mut c, i, a))
        .collect();
    let known: HashSet<&AccountId> = accounts.iter().map(|a| &a.id).collect();
    let mut seen = HashSet::new();
    for (i, a) in accounts.iter().enumerate() {
        if !seen.insert(a.id.clone()) {
            c.fail(
                format!("accounts[{i}].id"),
                format!("account {} is listed twice", a.id),
            );
        }
    }
    let sinks: Vec<_> = raw
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| build_sink(&mut c, i, s, &known))
        .collect();
    let mut names = HashSet::new();
    for (i, s) in sinks.iter().enumerate() {
        if !names.insert(s.name.clone()) {
            c.fail(
                format!("sinks[{i}].name"),
                format!("sink name {:?} is used twice", s.name),
            );
        }
    }
    if c.problems.is_empty() {
        Ok(Settings {
            server,
            store,
            log,
            keeper,
            sync,
            cluster,
            accounts,
            sinks,
        })
    } else {
        Err(ConfigError {
            problems: c.problems,
        })
    }
}

/// `server.replica_id`: empty means "host name and process id"; otherwise 1–128 visible
/// ASCII characters (it is shown in `status` and stored in lease rows).
fn replica_id(c: &mut Check<'_>, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    if raw.len() > 128 || !raw.chars().all(|ch| ch.is_ascii_graphic()) {
        c.fail(
            "server.replica_id",
            format!(
                "{raw:?} must be 1 to 128 visible ASCII characters without spaces \
                 (or empty for host name and process id)"
            ),
        );
    }
    Some(raw.to_owned())
}

fn build_cluster(c: &mut Check<'_>, raw: &RawCluster) -> ClusterSettings {
    let lease_ttl = c.duration("cluster.lease_ttl", &raw.lease_ttl);
    let lease_renew = c.duration("cluster.lease_renew", &raw.lease_renew);
    if lease_renew.is_zero() {
        c.fail("cluster.lease_renew", "must be longer than zero");
    } else if lease_ttl < lease_renew * 2 {
        c.fail(
            "cluster.lease_ttl",
            format!(
                "{} must be at least twice cluster.lease_renew ({}), so one late renewal \
                 does not lose a lease",
                raw.lease_ttl, raw.lease_renew
            ),
        );
    }
    ClusterSettings {
        lease_ttl,
        lease_renew,
    }
}

fn build_account(c: &mut Check<'_>, i: usize, a: &RawAccount) -> AccountSettings {
    let key = |k: &str| format!("accounts[{i}].{k}");
    let id = AccountId::parse(&a.id).unwrap_or_else(|e| {
        c.fail(key("id"), e.to_string());
        AccountId::parse("invalid").unwrap()
    });
    if a.client_id.trim().is_empty() {
        c.fail(
            key("client_id"),
            "is empty; copy the app's Client ID from RingCentral's developer console",
        );
    }
    let expires_in = c.duration(&key("expires_in"), &a.expires_in);
    if expires_in < Duration::from_secs(60) || expires_in > MAX_EXPIRES_IN {
        c.fail(
            key("expires_in"),
            "must be between 1m and 3650d (RingCentral's maximum, 315360000 s)",
        );
    }
    let renew_before = if a.renew_before.is_empty() {
        expires_in / 3
    } else {
        c.duration(&key("renew_before"), &a.renew_before)
    };
    if renew_before >= expires_in && !expires_in.is_zero() {
        c.fail(key("renew_before"), "must be shorter than expires_in");
    }
    let reminder = if a.reminder_threshold.is_empty() || a.reminder_interval.is_empty() {
        None
    } else {
        let t = c.duration(&key("reminder_threshold"), &a.reminder_threshold);
        let iv = c.duration(&key("reminder_interval"), &a.reminder_interval);
        // RingCentral: threshold ≤ ½ the subscription TTL, interval ≤ ½ threshold (API.md §3.4).
        if t > expires_in / 2 {
            c.fail(
                key("reminder_threshold"),
                "must be at most half of expires_in (RingCentral's rule)",
            );
        }
        if iv > t / 2 {
            c.fail(
                key("reminder_interval"),
                "must be at most half of reminder_threshold (RingCentral's rule)",
            );
        }
        Some((t, iv))
    };
    let event_filters = a.event_filters.clone().unwrap_or_else(|| {
        DEFAULT_EVENT_FILTERS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    if event_filters.is_empty() {
        c.fail(
            key("event_filters"),
            "is empty; remove it to use the defaults",
        );
    }
    for (j, f) in event_filters.iter().enumerate() {
        if !f.starts_with("/restapi/") {
            c.fail(
                format!("accounts[{i}].event_filters[{j}]"),
                format!("{f:?} must start with /restapi/"),
            );
        }
    }
    let scope = build_scope(c, &key("scope"), a.scope.as_ref());
    AccountSettings {
        id,
        scope,
        server: c.url(&key("server"), &a.server),
        client_id: a.client_id.clone(),
        client_secret: c.secret(&key("client_secret"), &a.client_secret),
        jwt: c.secret(&key("jwt"), &a.jwt),
        event_filters,
        expires_in,
        renew_before,
        reminder,
    }
}

fn build_sink(
    c: &mut Check<'_>,
    i: usize,
    s: &RawSink,
    known: &HashSet<&AccountId>,
) -> SinkSettings {
    let key = |k: &str| format!("sinks[{i}].{k}");
    if s.name.is_empty() {
        c.fail(key("name"), "is empty; give every sink a name");
    }
    let mut accounts = Vec::new();
    for (j, a) in s.accounts.iter().enumerate() {
        match AccountId::parse(a) {
            Ok(id) if known.contains(&id) => accounts.push(id),
            Ok(id) => c.fail(
                format!("sinks[{i}].accounts[{j}]"),
                format!("no [[accounts]] entry has id {id}"),
            ),
            Err(e) => c.fail(format!("sinks[{i}].accounts[{j}]"), e.to_string()),
        }
    }
    let types = s.types.clone().unwrap_or_else(|| vec!["*".into()]);
    for (j, t) in types.iter().enumerate() {
        if let Err(e) = globset::Glob::new(t) {
            c.fail(
                format!("sinks[{i}].types[{j}]"),
                format!("{t:?} is not a glob ({e})"),
            );
        }
    }
    let schedule_raw: Vec<String> = s.retry_schedule.clone().unwrap_or_else(|| {
        DEFAULT_RETRY_SCHEDULE
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    let retry_schedule = schedule_raw
        .iter()
        .enumerate()
        .map(|(j, d)| c.duration(&format!("sinks[{i}].retry_schedule[{j}]"), d))
        .collect();
    let disable_after = c.duration(
        &key("disable_after"),
        s.disable_after.as_deref().unwrap_or("5d"),
    );
    let kind = match s.kind.as_str() {
        "webhook" => {
            let url = match &s.url {
                Some(u) => c.url(&key("url"), u),
                None => {
                    c.fail(key("url"), "is required for type = \"webhook\"");
                    Url::parse("http://invalid.invalid").unwrap()
                }
            };
            let raws = match &s.secret {
                Some(OneOrMany::One(v)) => vec![v.clone()],
                Some(OneOrMany::Many(v)) => v.clone(),
                None => Vec::new(),
            };
            if raws.is_empty() {
                c.fail(
                    key("secret"),
                    "is required for type = \"webhook\" (a whsec_… secret)",
                );
            }
            let secrets: Vec<Secret> = raws.iter().map(|r| c.secret(&key("secret"), r)).collect();
            for sec in &secrets {
                if !sec.is_empty() && !sec.expose().starts_with("whsec_") {
                    c.fail(
                        key("secret"),
                        "must start with whsec_ (Standard Webhooks secret format)",
                    );
                }
            }
            let timeout = c.duration(&key("timeout"), s.timeout.as_deref().unwrap_or("15s"));
            SinkKind::Webhook {
                url,
                secrets,
                timeout,
                allow_private: s.allow_private,
            }
        }
        "nats" => SinkKind::Nats {
            url: s
                .url
                .clone()
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            subject: s
                .subject
                .clone()
                .unwrap_or_else(|| "ringrelay.{account}.{type}".into()),
            stream: s.stream.clone().unwrap_or_else(|| "RINGRELAY".into()),
            create_stream: s.create_stream.unwrap_or(false),
        },
        "jsonl" => SinkKind::Jsonl {
            path: s.path.clone().unwrap_or_else(|| "-".into()),
        },
        other => {
            c.fail(
                key("type"),
                format!("{other:?} is not a sink type; use \"webhook\", \"nats\" or \"jsonl\""),
            );
            SinkKind::Jsonl { path: "-".into() }
        }
    };
    SinkSettings {
        name: s.name.clone(),
        kind,
        accounts,
        types,
        retry_schedule,
        disable_after,
    }
}

fn build_scope(c: &mut Check<'_>, key: &str, raw: Option<&RawScope>) -> Scope {
    match raw {
        None => Scope::Company,
        Some(RawScope::Name(name)) => match name.as_str() {
            "company" => Scope::Company,
            "self" => Scope::SelfOnly,
            other => {
                c.fail(
                    key,
                    format!(
                        "{other:?} is not a scope; use \"company\", \"self\" or a list of extension ids"
                    ),
                );
                Scope::Company
            }
        },
        Some(RawScope::List(ids)) => {
            if ids.is_empty() {
                c.fail(
                    key,
                    "is an empty list; list extension ids, or use \"self\" or \"company\"",
                );
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for (j, id) in ids.iter().enumerate() {
                let text = match id {
                    RawId::Text(t) => t.trim().to_owned(),
                    RawId::Number(n) => n.to_string(),
                };
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    c.fail(
                        format!("{key}[{j}]"),
                        format!("{text:?} is not an extension id (RingCentral's are numeric, e.g. \"62295327016\")"),
                    );
                } else if !seen.insert(text.clone()) {
                    c.fail(
                        format!("{key}[{j}]"),
                        format!("extension {text} is listed twice"),
                    );
                } else {
                    out.push(text);
                }
            }
            Scope::Extensions(out)
        }
    }
}
