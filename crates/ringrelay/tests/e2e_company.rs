//! Issue 12's acceptance: company-wide coverage of a 200-extension account, the whole
//! service against the simulator on its simulated clock with RingCentral's rate limits on.
//!
//! - every extension's voicemail arrives live (filters packed into several subscriptions);
//! - an extension added at runtime is covered after the extension-list event, and a
//!   removed one leaves the filters;
//! - an hour of downtime is backfilled from every mailbox and the call log, without one 429;
//! - a token without company permissions falls back to the user's own extension, and
//!   `check` says so.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ringrelay::account::AccountId;
use ringrelay::config::{self, Settings};
use ringrelay_sim::{
    CallScenario, ExtensionKind, RateLimits, Sim, SimAccount, SimConfig, SimHandle, SimPermissions,
};

#[path = "support/e2e.rs"]
mod e2e;
use e2e::{Running, lines, start_on, wait_for};

const LIMIT: Duration = Duration::from_secs(90);
const EXTENSIONS: u32 = 200;
/// Small enough that 200 mailboxes need several subscriptions.
const MAX_FILTERS: usize = 60;

struct World {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    jsonl: std::path::PathBuf,
    port: u16,
    settings: Settings,
}

async fn world(permissions: SimPermissions) -> World {
    let account = SimAccount::company(0, EXTENSIONS).with_permissions(permissions);
    let sim_config = SimConfig::default()
        .with_accounts(vec![account])
        .with_rate_limits(RateLimits::default());
    let sim = Sim::start(sim_config).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("activities.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
admin_token = "admin-secret"
[store]
url = "sqlite://{db}"
[keeper]
reconcile_interval = "10s"
max_filters_per_subscription = {MAX_FILTERS}
[sync]
interval = "1h"
{acme}"#,
        db = dir.path().join("company.db").display(),
        acme = e2e::acme_with_jsonl(&sim, &jsonl),
    );
    let settings = config::load(&text, &HashMap::new()).expect("config");
    World {
        sim,
        _dir: dir,
        jsonl,
        port,
        settings,
    }
}

impl World {
    fn rc_account(&self) -> String {
        self.sim.accounts()[0].id.clone()
    }

    async fn start(&self) -> Running {
        start_on(&self.settings, self.port, &self.sim).await
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/ringcentral/acme", self.port)
    }

    /// The voicemail filters of our Active subscriptions, by extension id.
    fn voicemail_filters(&self) -> Vec<String> {
        let address = self.address();
        let mut out = Vec::new();
        for s in self.sim.subscriptions() {
            if s["status"] != "Active" || s["deliveryMode"]["address"] != address.as_str() {
                continue;
            }
            for f in s["eventFilters"].as_array().into_iter().flatten() {
                let f = f.as_str().unwrap_or_default();
                if let Some(rest) = f.strip_suffix("/voicemail")
                    && let Some((_, ext)) = rest.rsplit_once("/extension/")
                {
                    out.push(ext.to_owned());
                }
            }
        }
        out
    }

    fn our_subscriptions(&self) -> usize {
        let address = self.address();
        self.sim
            .subscriptions()
            .iter()
            .filter(|s| s["status"] == "Active" && s["deliveryMode"]["address"] == address.as_str())
            .count()
    }

    /// The enabled extensions of the live simulated account that have a mailbox.
    fn mailboxes(&self) -> BTreeSet<String> {
        self.sim
            .account(&self.rc_account())
            .expect("account")
            .extensions
            .iter()
            .filter(|e| {
                e.status == ringrelay_sim::ExtensionStatus::Enabled && e.kind.takes_voicemail()
            })
            .map(|e| e.id.clone())
            .collect()
    }

    /// Waits until every mailbox has exactly one voicemail filter at our address.
    async fn wait_covered(&self, what: &str) {
        wait_for(what, LIMIT, || {
            let filters = self.voicemail_filters();
            let set: BTreeSet<String> = filters.iter().cloned().collect();
            set.len() == filters.len() && set == self.mailboxes()
        })
        .await;
    }

    fn count(&self, kind: &str) -> usize {
        lines(&self.jsonl)
            .iter()
            .filter(|l| l["type"] == kind)
            .count()
    }
}

fn acme() -> AccountId {
    AccountId::parse("acme").expect("slug")
}

#[tokio::test]
async fn every_extension_voicemail_is_delivered_live_and_extensions_come_and_go() {
    let w = world(SimPermissions::default()).await;
    let app = w.start().await;
    w.wait_covered("a voicemail filter for every mailbox").await;
    let mailboxes = w.mailboxes();
    assert!(mailboxes.len() > 150, "{} mailboxes", mailboxes.len());
    let subscriptions = w.our_subscriptions();
    assert!(
        subscriptions >= mailboxes.len().div_ceil(MAX_FILTERS),
        "{} mailboxes packed into {subscriptions} subscriptions",
        mailboxes.len()
    );
    let stored = app.store.extensions(&acme()).await.expect("extensions");
    assert_eq!(
        stored.len(),
        EXTENSIONS as usize,
        "every extension is stored"
    );
    assert_eq!(
        stored.iter().filter(|e| e.record.covered).count(),
        mailboxes.len()
    );
    assert!(
        stored
            .iter()
            .filter(|e| !e.record.covered)
            .all(|e| e.record.reason.is_some()),
        "each extension left out says why"
    );
    // The admin API's status (what `ringrelay status --json` prints) shows the same.
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/status", w.port))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let ext = &status["accounts"][0]["extensions"];
    assert_eq!(ext["total"], EXTENSIONS);
    assert_eq!(ext["covered"], mailboxes.len());
    assert_eq!(
        ext["not_covered"].as_array().map(Vec::len),
        Some(EXTENSIONS as usize - mailboxes.len())
    );

    // Voicemails left in 40 different mailboxes arrive from the webhooks.
    let targets: Vec<String> = mailboxes.iter().step_by(4).take(40).cloned().collect();
    for ext in &targets {
        w.sim
            .run_call_to(&w.rc_account(), ext, CallScenario::InboundVoicemail)
            .await
            .expect("call");
        w.sim.complete_calls().await;
        w.sim.advance(Duration::from_secs(5)).await;
    }
    wait_for("40 voicemails delivered", LIMIT, || {
        w.count("voicemail.received") >= targets.len()
    })
    .await;
    let delivered = lines(&w.jsonl);
    let voicemails: Vec<&serde_json::Value> = delivered
        .iter()
        .filter(|l| l["type"] == "voicemail.received")
        .collect();
    assert_eq!(voicemails.len(), targets.len(), "each voicemail once");
    assert!(
        voicemails.iter().all(|l| l["data"]["source"] == "webhook"),
        "live, not from a sync"
    );

    // An extension added at runtime: the extension-list event makes discovery refresh and
    // the keeper add its filter; its voicemail is then delivered live.
    let added = w
        .sim
        .add_extension(&w.rc_account(), ExtensionKind::User, "New Hire")
        .await
        .expect("add");
    w.wait_covered("the new extension's voicemail filter").await;
    assert!(w.voicemail_filters().contains(&added.id));
    w.sim
        .run_call_to(&w.rc_account(), &added.id, CallScenario::InboundVoicemail)
        .await
        .expect("call the new extension");
    w.sim.complete_calls().await;
    wait_for("the new extension's voicemail", LIMIT, || {
        w.count("voicemail.received") > targets.len()
    })
    .await;

    // A removed extension leaves the filters (not the JWT user's own, which RingCentral
    // does not let an app remove).
    let owner = w.sim.accounts()[0].owner().id.clone();
    let removed = targets
        .iter()
        .find(|t| **t != owner)
        .expect("another extension")
        .clone();
    w.sim
        .remove_extension(&w.rc_account(), &removed)
        .await
        .expect("remove");
    w.wait_covered("the removed extension's filter gone").await;
    assert!(!w.voicemail_filters().contains(&removed));
    app.stop().await;
}

#[tokio::test]
async fn an_hour_of_downtime_on_200_extensions_is_backfilled_without_a_429() {
    let w = world(SimPermissions::default()).await;
    let app = w.start().await;
    w.wait_covered("a voicemail filter for every mailbox").await;
    app.stop().await;

    let scenarios = [
        CallScenario::InboundVoicemail,
        CallScenario::InboundAnswered,
        CallScenario::InboundMissed,
        CallScenario::OutboundAnswered,
    ];
    let mut voicemails = 0;
    let mut missed = 0;
    let mut mailboxes = BTreeSet::new();
    for i in 0..60 {
        let call = w
            .sim
            .run_call(&w.rc_account(), scenarios[i % scenarios.len()])
            .await
            .expect("call");
        if let Some(vm) = &call.voicemail {
            voicemails += 1;
            mailboxes.insert(vm.extension_id.clone());
        }
        missed += usize::from(matches!(
            call.scenario,
            CallScenario::InboundMissed | CallScenario::InboundVoicemail
        ));
        w.sim.complete_calls().await;
        w.sim.advance(Duration::from_secs(60)).await;
    }
    assert!(mailboxes.len() > 5, "voicemails in many mailboxes");

    let app = w.start().await;
    wait_for("every voicemail and missed call backfilled", LIMIT, || {
        w.count("voicemail.received") >= voicemails && w.count("call.missed") >= missed
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.count("voicemail.received"),
        voicemails,
        "each voicemail once"
    );
    assert_eq!(w.count("call.missed"), missed, "each missed call once");
    let gaps = app.store.gaps(None, None).await.expect("gaps");
    assert!(
        !gaps.is_empty(),
        "the downtime is recorded as a gap: {gaps:?}"
    );
    let throttled = w.sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(throttled, 0, "the simulator never answered 429");
    app.stop().await;
}

#[tokio::test]
async fn without_company_permissions_coverage_falls_back_to_the_own_extension() {
    let w = world(SimPermissions::SELF_ONLY).await;
    let (report, ok) = ringrelay::check::run(&w.settings).await;
    assert!(!ok, "the fallback is a problem check reports: {report}");
    assert!(
        report.contains("self") && report.to_lowercase().contains("permission"),
        "check explains the fallback: {report}"
    );
    let app = w.start().await;
    let owner = w.sim.accounts()[0].owner().id.clone();
    wait_for("a subscription with the own voicemail only", LIMIT, || {
        w.voicemail_filters() == vec![owner.clone()]
    })
    .await;
    app.stop().await;
}
