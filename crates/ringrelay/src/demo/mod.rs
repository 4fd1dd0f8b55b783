//! `ringrelay demo`: the whole system against the built-in RingCentral simulator.
//!
//! [`Demo::start`] starts the simulator (two accounts, duplicated and reordered deliveries),
//! the demo CRM ([`crm`]) and ringrelay itself (SQLite in a temporary directory, or any
//! store URL), wired by a generated config. [`Demo::play`] runs the scripted day on the
//! simulator's accelerated clock:
//!
//! 1. a round of calls of every scenario on both accounts (answered, missed, voicemail,
//!    outbound, hold, transfer), with duplicate and out-of-order webhook deliveries, then a
//!    few notifications posted again with the same `uuid` (stored once);
//! 2. time runs to the subscriptions' renewal window: the keeper renews them;
//! 3. RingCentral blacklists one account's subscription: the keeper repairs it;
//! 4. ringrelay stops, calls happen while it is down, a new ringrelay starts on the same
//!    store and port, calls go on, and the gap backfill covers the hole from the call log;
//! 5. an operator replay resends every activity: the CRM drops them all as duplicates.
//!
//! [`DemoReport`] then checks the invariants (every call reached the CRM, every activity
//! exactly once, nothing left undelivered) and renders the summary table.

pub mod crm;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use ringrelay_sim::{CallScenario, GeneratedCall, SimAccount, SimClock, SimConfig, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{AppOptions, Application};
use crate::cli::DemoArgs;
use crate::config::{self, Settings};
use crate::delivery;
use crate::ringcentral::Clock;
use crate::ringcentral::clock::SleepFuture;
use crate::store::{BackfillState, DeliveryFilter, DeliveryState, Store};

use crm::{CrmOptions, DemoCrm};

/// The sink name of the demo CRM.
pub const SINK: &str = "crm";

/// The secret ringrelay signs with and the demo CRM verifies with.
const SECRET: &str = "whsec_ZGVtby1zZWNyZXQtZm9yLXJpbmdyZWxheQ==";

/// How many already delivered notifications the demo posts again with the same `uuid`.
pub const RESENT: usize = 5;

/// The ringrelay account slugs of the two simulated accounts.
pub const ACCOUNTS: [&str; 2] = ["acme", "globex"];

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The store URL (`sqlite://…` or `postgres://…`); `None` = SQLite in `data` or a
    /// temporary directory.
    pub store_url: Option<String>,
    /// Where the SQLite file goes (default: a temporary directory, removed at the end).
    pub data: Option<PathBuf>,
    /// Calls of every scenario per account in each round.
    pub rounds: usize,
    /// How many of the CRM's first new deliveries fail (500/503) to show retries.
    pub crm_failures: usize,
    /// Probability that the simulator posts a notification twice.
    pub duplicate_rate: f64,
    /// Probability that two neighbouring events of a call swap places.
    pub reorder_rate: f64,
    /// The longest the demo waits for one step to settle.
    pub step_timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            store_url: None,
            data: None,
            rounds: 1,
            crm_failures: 6,
            duplicate_rate: 0.3,
            reorder_rate: 0.3,
            step_timeout: Duration::from_secs(30),
        }
    }
}

/// ringrelay's clock in the demo: the simulator's time (so call-log windows and expiry
/// agree with it), with real sleeps (the demo alone moves simulated time forward).
#[derive(Debug, Clone)]
struct DemoClock(SimClock);

impl Clock for DemoClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// One ringrelay instance running in the background.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("ringrelay did not stop within 30 s")?
            .context("ringrelay panicked")?
    }
}

/// A call the demo made and what the CRM must get for it.
#[derive(Debug, Clone)]
struct CallMade {
    account: &'static str,
    call: GeneratedCall,
}

impl CallMade {
    /// A voicemail was left: ringrelay covers every extension's mailbox (company scope,
    /// the default, with the simulator's administrator permissions).
    fn voicemail(&self) -> bool {
        self.call.voicemail.is_some()
    }

    fn missed(&self) -> bool {
        matches!(
            self.call.scenario,
            CallScenario::InboundMissed | CallScenario::InboundVoicemail
        )
    }
}

/// The demo's running parts.
pub struct Demo {
    options: DemoOptions,
    sim: SimHandle,
    crm: DemoCrm,
    settings: Settings,
    port: u16,
    store: Arc<dyn Store>,
    running: Option<Running>,
    calls: Vec<CallMade>,
    renewed: bool,
    repaired: bool,
    replayed: u64,
    resent_same_uuid: u64,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo").field("port", &self.port).finish()
    }
}

/// The demo's invariants, per account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The ringrelay account slug.
    pub account: String,
    /// Calls made.
    pub calls: usize,
    /// Activities ringrelay derived (each one delivery to the CRM).
    pub expected: usize,
    /// Distinct activities the CRM accepted.
    pub received: usize,
    /// Repeats the CRM dropped by `webhook-id`.
    pub duplicates_dropped: usize,
    /// Calls with no `call.logged` at the CRM, or a missed call without its one
    /// `call.missed`.
    pub calls_incomplete: usize,
    /// Activities accepted more than once, or accepted without being derived.
    pub unexpected: usize,
    /// Voicemails left (in any extension's mailbox) minus `voicemail.received` activities
    /// at the CRM.
    pub voicemails_missing: usize,
}

impl AccountSummary {
    /// Whether this account's invariants hold.
    pub fn ok(&self) -> bool {
        self.expected == self.received
            && self.calls_incomplete == 0
            && self.unexpected == 0
            && self.voicemails_missing == 0
            && self.calls > 0
    }
}

/// What the demo did and whether the invariants hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// Per account.
    pub accounts: Vec<AccountSummary>,
    /// Activities per `(account, type)` the CRM accepted.
    pub by_type: BTreeMap<(String, String), usize>,
    /// Webhook notifications stored (distinct).
    pub events_stored: u64,
    /// Webhook notifications dropped as duplicates by the receiver (same `uuid`).
    pub events_duplicated: u64,
    /// Notifications posted again with the same `uuid` (RingCentral retrying).
    pub events_resent_same_uuid: u64,
    /// Notifications the simulator posted twice (a new `uuid`, the same body): the
    /// processor derives nothing new from them.
    pub events_resent: usize,
    /// Deliveries the CRM refused on purpose (each retried).
    pub crm_refused: usize,
    /// CRM requests with a bad signature.
    pub bad_signatures: usize,
    /// Deliveries not delivered at the end (pending, failed or dead).
    pub undelivered: usize,
    /// Coverage gaps recorded.
    pub gaps: usize,
    /// Gaps backfilled.
    pub backfilled: usize,
    /// Activities resent by the operator replay.
    pub replayed: u64,
    /// The keeper renewed the subscriptions before they expired.
    pub renewed: bool,
    /// The keeper repaired the blacklisted subscription.
    pub repaired: bool,
}

impl DemoReport {
    /// Whether every invariant holds.
    pub fn ok(&self) -> bool {
        self.accounts.iter().all(AccountSummary::ok)
            && self.events_duplicated >= self.events_resent_same_uuid
            && self.undelivered == 0
            && self.bad_signatures == 0
            && self.renewed
            && self.repaired
            && self.gaps > 0
            && self.backfilled == self.gaps
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11}  result",
            "account",
            "calls",
            "expected",
            "received",
            "duplicates",
            "incomplete",
            "unexpected",
            "vm missing"
        );
        for a in &self.accounts {
            let _ = writeln!(
                out,
                "{:<8} {:>5} {:>9} {:>9} {:>11} {:>11} {:>11} {:>11}  {}",
                a.account,
                a.calls,
                a.expected,
                a.received,
                a.duplicates_dropped,
                a.calls_incomplete,
                a.unexpected,
                a.voicemails_missing,
                if a.ok() { "ok" } else { "FAILED" }
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "activities by type:");
        for ((account, kind), n) in &self.by_type {
            let _ = writeln!(out, "  {account:<8} {kind:<22} {n:>4}");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "webhook events stored {}, posted twice by RingCentral {}, duplicate events dropped {}, \
             CRM refusals retried {}, bad signatures {}, undelivered {}",
            self.events_stored,
            self.events_resent,
            self.events_duplicated,
            self.crm_refused,
            self.bad_signatures,
            self.undelivered
        );
        let _ = writeln!(
            out,
            "gaps {}, backfilled {}, renewed {}, blacklisting repaired {}, replayed {} (all dropped as duplicates)",
            self.gaps,
            self.backfilled,
            yes(self.renewed),
            yes(self.repaired),
            self.replayed
        );
        let _ = writeln!(
            out,
            "{}",
            if self.ok() {
                "RESULT: ok, every call reached the CRM, every activity exactly once"
            } else {
                "RESULT: FAILED, an invariant does not hold (see above)"
            }
        );
        out
    }
}

/// Notifications the simulator posted (successfully) more than once.
fn resent(sim: &SimHandle) -> usize {
    let ok: Vec<String> = sim
        .deliveries()
        .into_iter()
        .filter(|d| d.status == Some(200))
        .map(|d| format!("{}{}", d.subscription_id, d.envelope["body"]))
        .collect();
    let distinct: BTreeSet<&String> = ok.iter().collect();
    ok.len() - distinct.len()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `timeout`.
async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config_text(sim: &SimHandle, crm: &DemoCrm, port: u16, store_url: &str) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
admin_token = "demo"
[store]
url = "{store_url}"
[log]
level = "warn"
[keeper]
reconcile_interval = "1s"
silence_threshold = "1h"
token_grace = "10m"
[sync]
interval = "1m"
backfill_margin = "2m"
[[sinks]]
name = "{SINK}"
type = "webhook"
url = "{url}"
secret = "{SECRET}"
retry_schedule = ["100ms", "200ms", "400ms", "800ms", "1s", "1s", "1s", "1s"]
timeout = "5s"
allow_private = true
"#,
        url = crm.url()
    );
    for (slug, account) in ACCOUNTS.iter().zip(sim.accounts()) {
        let _ = write!(
            text,
            r#"
[[accounts]]
id = "{slug}"
server = "{server}"
client_id = "{client_id}"
client_secret = "{client_secret}"
jwt = "{jwt}"
expires_in = "1h"
reminder_interval = ""
"#,
            server = sim.base_url(),
            client_id = sim.config().client_id,
            client_secret = sim.config().client_secret,
            jwt = account.jwt,
        );
    }
    text
}

impl Demo {
    /// Starts the simulator, the demo CRM and ringrelay.
    ///
    /// # Errors
    /// When a part cannot start (a bad store URL, a port that cannot be bound).
    pub async fn start(options: DemoOptions) -> anyhow::Result<Self> {
        let mut config = SimConfig::default().with_accounts(vec![
            SimAccount::generated(0, 4),
            SimAccount::generated(1, 4),
        ]);
        config.duplicate_rate = options.duplicate_rate;
        config.reorder_rate = options.reorder_rate;
        config.rate_limits.enabled = false;
        let sim = ringrelay_sim::Sim::start(config).await?;
        let crm = DemoCrm::start(CrmOptions {
            secret: SECRET.to_owned(),
            fail_first: options.crm_failures,
        })
        .await?;
        let (store_url, tmp) = match (&options.store_url, &options.data) {
            (Some(url), _) => (url.clone(), None),
            (None, Some(dir)) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (
                    format!("sqlite://{}", dir.join("ringrelay.db").display()),
                    None,
                )
            }
            (None, None) => {
                let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
                let url = format!("sqlite://{}", tmp.path().join("ringrelay.db").display());
                (url, Some(tmp))
            }
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let text = config_text(&sim, &crm, port, &store_url);
        let settings = config::load(&text, &HashMap::new()).context("the demo's config")?;
        let (running, store) = launch(&settings, &sim, listener).await?;
        Ok(Self {
            options,
            sim,
            crm,
            settings,
            port,
            store,
            running: Some(running),
            calls: Vec::new(),
            renewed: false,
            repaired: false,
            replayed: 0,
            resent_same_uuid: 0,
            _tmp: tmp,
        })
    }

    /// The status page.
    pub fn status_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The calls made so far: the ringrelay account slug, the generated call, and whether
    /// it left a voicemail (in whichever extension's mailbox: all are covered).
    pub fn calls(&self) -> Vec<(&'static str, &GeneratedCall, bool)> {
        self.calls
            .iter()
            .map(|c| (c.account, &c.call, c.voicemail()))
            .collect()
    }

    /// The store ringrelay runs on.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// One progress line: calls made, events received, duplicates dropped, activities
    /// delivered, gaps, backfills.
    pub async fn progress(&self, step: &str) -> String {
        let inbox = self.store.inbox_stats().await.ok();
        let gaps = self.store.gaps(None, None).await.unwrap_or_default();
        let backfilled = gaps
            .iter()
            .filter(|g| matches!(g.backfill, BackfillState::Done { .. }))
            .count();
        let crm = self.crm.stats();
        format!(
            "[{step:<10}] calls {:>3} | events {:>4} | duplicates dropped {:>3} | delivered {:>4} | retried {:>2} | gaps {} | backfills {}",
            self.calls.len(),
            inbox.map_or(0, |i| i.rows),
            inbox.map_or(0, |i| i.duplicates) + (resent(&self.sim) + crm.duplicates) as u64,
            crm.accepted.len(),
            crm.refused,
            gaps.len(),
            backfilled,
        )
    }

    async fn make_calls(&mut self, say: &(dyn Fn(String) + Sync)) -> anyhow::Result<()> {
        for _ in 0..self.options.rounds {
            for scenario in CallScenario::ALL {
                for (slug, account) in ACCOUNTS.iter().zip(self.sim.accounts().to_vec()) {
                    let call = self.sim.run_call(&account.id, scenario).await?;
                    self.calls.push(CallMade {
                        account: slug,
                        call,
                    });
                    self.sim.complete_calls().await;
                    self.sim.advance(Duration::from_secs(30)).await;
                }
            }
        }
        // Let the call log catch up (it lags calls by 15–30 s).
        self.sim.advance(Duration::from_secs(40)).await;
        say(self.progress("calls").await);
        Ok(())
    }

    /// Waits until every delivery is delivered and every call is complete at the CRM.
    async fn settle(&self, say: &(dyn Fn(String) + Sync), step: &str) -> bool {
        let settled = wait_for(self.options.step_timeout, || async {
            let report = self.report().await.ok()?;
            (report.undelivered == 0
                && report.accounts.iter().all(|a| {
                    a.calls_incomplete == 0 && a.voicemails_missing == 0 && a.expected == a.received
                }))
            .then_some(())
        })
        .await
        .is_some();
        say(self.progress(step).await);
        settled
    }

    /// The account's Active subscription at the simulator: `(id, status, expirationTime)`.
    fn subscription_state(&self, account_index: usize) -> Option<(String, String, String)> {
        let suffix = format!("/webhooks/ringcentral/{}", ACCOUNTS.get(account_index)?);
        self.sim
            .subscriptions()
            .into_iter()
            .filter(|s| {
                s["deliveryMode"]["address"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&suffix))
            })
            .find(|s| s["status"].as_str() == Some("Active"))
            .map(|s| {
                (
                    s["id"].as_str().unwrap_or_default().to_owned(),
                    s["status"].as_str().unwrap_or_default().to_owned(),
                    s["expirationTime"].as_str().unwrap_or_default().to_owned(),
                )
            })
    }

    /// One line per coverage gap: account, cause, window, backfill state.
    async fn gap_lines(&self) -> Vec<String> {
        let gaps = self.store.gaps(None, None).await.unwrap_or_default();
        gaps.iter()
            .map(|g| {
                let until = g
                    .until
                    .map_or_else(|| "open".to_owned(), |t| t.format("%H:%M:%S").to_string());
                let backfill = match &g.backfill {
                    BackfillState::Done {
                        records,
                        activities,
                    } => format!("backfilled: {records} call-log records, {activities} activities"),
                    other => format!("{other:?}").to_lowercase(),
                };
                format!(
                    "[gap       ] {:<7} {:?} {} -> {until}: {backfill}",
                    g.account.as_str(),
                    g.cause,
                    g.from.format("%H:%M:%S"),
                )
            })
            .collect()
    }

    /// Posts the last `n` notifications ringrelay accepted again, as RingCentral does when
    /// it misses an answer: same envelope, same `uuid`. Returns how many were accepted.
    async fn resend(&self, n: usize) -> anyhow::Result<u64> {
        let subscriptions = self.store.subscriptions().await?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let sent: Vec<_> = self
            .sim
            .deliveries()
            .into_iter()
            .filter(|d| d.status == Some(200))
            .collect();
        let mut accepted = 0;
        for d in sent.iter().rev().take(n) {
            let token = subscriptions
                .iter()
                .find(|r| r.id == d.subscription_id)
                .and_then(|r| r.verification_token.as_ref())
                .map(|t| t.expose().to_owned())
                .unwrap_or_default();
            let answer = http
                .post(&d.address)
                .header("content-type", "application/json")
                .header("verification-token", token)
                .body(d.envelope.to_string())
                .send()
                .await?;
            if answer.status().is_success() {
                accepted += 1;
            }
        }
        Ok(accepted)
    }

    /// Waits until both accounts have an Active subscription at the simulator.
    async fn wait_subscribed(&self) -> anyhow::Result<()> {
        let timeout = self.options.step_timeout;
        let subscribed = wait_for(timeout, || async {
            (self.subscription_state(0).is_some() && self.subscription_state(1).is_some())
                .then_some(())
        })
        .await;
        anyhow::ensure!(
            subscribed.is_some(),
            "the keeper did not make both subscriptions Active within {timeout:?}"
        );
        Ok(())
    }

    /// One line per account once discovery has stored its extensions: how many are
    /// covered, and why the others are not.
    async fn coverage_lines(&self, timeout: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        for slug in ACCOUNTS {
            let Ok(id) = crate::account::AccountId::parse(slug) else {
                continue;
            };
            let stored = wait_for(timeout, || async {
                self.store
                    .extensions(&id)
                    .await
                    .ok()
                    .filter(|e| !e.is_empty())
            })
            .await
            .unwrap_or_default();
            let covered = stored.iter().filter(|e| e.record.covered).count();
            let mut why: BTreeMap<String, usize> = BTreeMap::new();
            for e in stored.iter().filter(|e| !e.record.covered) {
                *why.entry(e.record.reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
            let why: Vec<String> = why.iter().map(|(r, n)| format!("{n} {r}")).collect();
            lines.push(format!(
                "[coverage  ] {slug:<7} {covered}/{} extensions covered{}",
                stored.len(),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" (not covered: {})", why.join(", "))
                }
            ));
        }
        lines
    }

    /// Runs the scripted day and returns the report.
    ///
    /// # Errors
    /// When the simulator refuses a scripted call, or ringrelay fails to restart.
    pub async fn play(&mut self, say: &(dyn Fn(String) + Sync)) -> anyhow::Result<DemoReport> {
        let timeout = self.options.step_timeout;
        // 0. Both subscriptions are created, and extension discovery says which
        //    extensions are covered (every one with a mailbox: company scope).
        self.wait_subscribed().await?;
        say(self.progress("subscribed").await);
        for line in self.coverage_lines(timeout).await {
            say(line);
        }

        // 1. A round of calls, then RingCentral retrying notifications it already sent.
        self.make_calls(say).await?;
        self.settle(say, "delivered").await;
        self.resent_same_uuid = self.resend(RESENT).await?;
        say(format!(
            "[resend    ] RingCentral posted {} notifications again with the same uuid; stored once: {}",
            self.resent_same_uuid,
            yes(self.store.inbox_stats().await?.duplicates >= self.resent_same_uuid)
        ));

        // 2. Time runs to the renewal window; the keeper renews.
        let before: Vec<String> = (0..2)
            .filter_map(|i| self.subscription_state(i).map(|s| s.2))
            .collect();
        // Run time to 10 minutes before the earliest expiry: inside the renewal window
        // (a third of the 1 h lifetime), before RingCentral expires anything.
        let earliest = before
            .iter()
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .min();
        let jump = earliest
            .and_then(|t| {
                (t - self.sim.clock().now() - chrono::Duration::minutes(10))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default();
        self.sim.advance(jump).await;
        self.renewed = wait_for(timeout, || async {
            let now: Vec<String> = (0..2)
                .filter_map(|i| self.subscription_state(i).map(|s| s.2))
                .collect();
            (now.len() == 2 && now.iter().zip(&before).all(|(n, b)| n > b)).then_some(())
        })
        .await
        .is_some();
        say(format!(
            "[renewal   ] {} simulated minutes later: subscriptions renewed: {}",
            jump.as_secs() / 60,
            yes(self.renewed)
        ));

        // 3. RingCentral blacklists acme's subscription; the keeper repairs it.
        if let Some((id, _, _)) = self.subscription_state(0) {
            self.sim.blacklist(&id);
            say(format!(
                "[blacklist ] RingCentral blacklisted {}'s subscription {id}",
                ACCOUNTS[0]
            ));
            self.sim.advance(Duration::from_secs(60)).await;
            self.repaired = wait_for(timeout, || async { self.subscription_state(0).map(|_| ()) })
                .await
                .is_some();
            say(format!(
                "[blacklist ] repaired by the keeper: {}",
                yes(self.repaired)
            ));
        }
        self.make_calls(say).await?;
        self.settle(say, "delivered").await;

        // 4. Restart with calls while ringrelay is down.
        if let Some(running) = self.running.take() {
            running.stop().await?;
        }
        say(format!(
            "[restart   ] ringrelay stopped; calls go on while it is down (port {})",
            self.port
        ));
        self.make_calls(say).await?;
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("cannot bind port {} again", self.port))?;
        let (running, store) = launch(&self.settings, &self.sim, listener).await?;
        self.running = Some(running);
        self.store = store;
        say("[restart   ] a new ringrelay started on the same store and port".to_owned());
        self.wait_subscribed().await?;
        say(self.progress("subscribed").await);
        self.make_calls(say).await?;
        // Simulated time keeps running (5 s per poll) so the rate-limit windows the
        // backfill waits for come round.
        let backfilled = wait_for(timeout, || async {
            self.sim.advance(Duration::from_secs(5)).await;
            let gaps = self.store.gaps(None, None).await.ok()?;
            (!gaps.is_empty()
                && gaps
                    .iter()
                    .all(|g| matches!(g.backfill, BackfillState::Done { .. })))
            .then_some(())
        })
        .await;
        if backfilled.is_none() {
            say("[restart   ] not every gap was backfilled in time".to_owned());
        }
        self.settle(say, "backfilled").await;
        for line in self.gap_lines().await {
            say(line);
        }

        // 5. An operator replay: the CRM drops every resent activity.
        self.replayed = delivery::worker::replay(
            self.store.as_ref(),
            SINK,
            DateTime::<Utc>::MIN_UTC,
            Utc::now(),
        )
        .await?;
        let replayed = usize::try_from(self.replayed).unwrap_or(usize::MAX);
        let base = self.crm.stats().duplicates;
        wait_for(timeout, || async {
            (self.crm.stats().duplicates >= base + replayed).then_some(())
        })
        .await;
        self.settle(say, "replayed").await;
        self.report().await
    }

    /// The invariants as they stand now.
    ///
    /// # Errors
    /// A store failure.
    pub async fn report(&self) -> anyhow::Result<DemoReport> {
        let mut deliveries = Vec::new();
        let mut before_id = None;
        loop {
            let page = self
                .store
                .list_deliveries(&DeliveryFilter {
                    sink: Some(SINK.to_owned()),
                    before_id,
                    limit: 500,
                    ..DeliveryFilter::default()
                })
                .await?;
            let last = page.last().map(|d| d.id);
            let done = page.len() < 500;
            deliveries.extend(page);
            if done {
                break;
            }
            before_id = last;
        }
        let crm = self.crm.stats();
        let inbox = self.store.inbox_stats().await?;
        let gaps = self.store.gaps(None, None).await?;
        let mut accounts = Vec::new();
        for slug in ACCOUNTS {
            let derived: BTreeSet<String> = deliveries
                .iter()
                .filter(|d| d.account.as_str() == slug)
                .map(|d| d.activity_id.to_string())
                .collect();
            let accepted: Vec<&crm::Accepted> =
                crm.accepted.iter().filter(|a| a.account == slug).collect();
            let accepted_ids: BTreeSet<String> =
                accepted.iter().map(|a| a.webhook_id.clone()).collect();
            let unexpected =
                (accepted.len() - accepted_ids.len()) + accepted_ids.difference(&derived).count();
            let calls: Vec<&CallMade> = self.calls.iter().filter(|c| c.account == slug).collect();
            let calls_incomplete = calls
                .iter()
                .filter(|c| {
                    let of_call = |kind: &str| {
                        accepted
                            .iter()
                            .filter(|a| {
                                a.kind == kind
                                    && a.telephony_session_id.as_deref()
                                        == Some(c.call.telephony_session_id.as_str())
                            })
                            .count()
                    };
                    let logged = of_call("call.logged");
                    logged < c.call.call_log.len().max(1)
                        || (c.missed() && of_call("call.missed") != 1)
                        || (!c.missed() && of_call("call.missed") != 0)
                })
                .count();
            accounts.push(AccountSummary {
                account: slug.to_owned(),
                calls: calls.len(),
                expected: derived.len(),
                received: accepted_ids.intersection(&derived).count(),
                duplicates_dropped: crm.duplicates_by_account.get(slug).copied().unwrap_or(0),
                calls_incomplete,
                unexpected,
                voicemails_missing: calls
                    .iter()
                    .filter(|c| c.voicemail())
                    .count()
                    .saturating_sub(
                        accepted
                            .iter()
                            .filter(|a| a.kind == "voicemail.received")
                            .count(),
                    ),
            });
        }
        Ok(DemoReport {
            accounts,
            by_type: crm.counts(),
            events_stored: inbox.rows,
            events_duplicated: inbox.duplicates,
            events_resent: resent(&self.sim),
            events_resent_same_uuid: self.resent_same_uuid,
            crm_refused: crm.refused,
            bad_signatures: crm.bad_signatures,
            undelivered: deliveries
                .iter()
                .filter(|d| d.state != DeliveryState::Delivered)
                .count(),
            gaps: gaps.len(),
            backfilled: gaps
                .iter()
                .filter(|g| matches!(g.backfill, BackfillState::Done { .. }))
                .count(),
            replayed: self.replayed,
            renewed: self.renewed,
            repaired: self.repaired,
        })
    }

    /// Stops ringrelay, the CRM and the simulator.
    ///
    /// # Errors
    /// When ringrelay did not stop cleanly.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let stopped = match self.running.take() {
            Some(r) => r.stop().await,
            None => Ok(()),
        };
        self.crm.shutdown().await;
        self.sim.shutdown().await;
        stopped
    }
}

/// Builds and starts ringrelay on `listener`.
async fn launch(
    settings: &Settings,
    sim: &SimHandle,
    listener: TcpListener,
) -> anyhow::Result<(Running, Arc<dyn Store>)> {
    let app = Application::build_with(
        settings.clone(),
        AppOptions {
            listener: Some(listener),
            clock: Some(Arc::new(DemoClock(sim.clock()))),
            call_log_lag: Duration::from_millis(300),
            owner: Some(format!("demo-{}", uuid::Uuid::new_v4().simple())),
            ..AppOptions::default()
        },
    )
    .await?;
    let store = app.store();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Ok((Running { stop, task }, store))
}

/// `ringrelay demo`: runs the scripted day, prints progress and the summary table; exit
/// code 0 only when every invariant holds. With `--keep`, everything stays up until Ctrl-C.
///
/// # Errors
/// When a part cannot start.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        data: args.data.clone(),
        ..DemoOptions::default()
    };
    // ringrelay's own log only when asked (RUST_LOG), so the progress lines stay readable.
    crate::telemetry::init(crate::config::LogFormat::Pretty, "off");
    println!("ringrelay demo: simulator, demo CRM and ringrelay on 127.0.0.1");
    let mut demo = Demo::start(options).await?;
    println!("status page: {} (admin token: demo)", demo.status_url());
    let say = |line: String| println!("{line}");
    let played = demo.play(&say).await;
    let report = match played {
        Ok(r) => r,
        Err(e) => {
            let _ = demo.shutdown().await;
            return Err(e);
        }
    };
    println!();
    print!("{}", report.table());
    if args.keep {
        println!(
            "--keep: everything keeps running; status page {}; Ctrl-C to stop",
            demo.status_url()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    }
    demo.shutdown().await?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
