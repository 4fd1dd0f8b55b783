//! Sync and gap backfill over every covered extension (issue 12), against the simulator
//! with RingCentral's rate limits on: each extension's message store is read, the call
//! log per extension when the company call log is not readable, and a gap backfill that
//! stops half way continues after its last committed step instead of starting over.

#[path = "support/sim_client.rs"]
mod sim_client;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ringrelay::pipeline::SinkRouter;
use ringrelay::pipeline::sync::{AccountSync, SyncScope};
use ringrelay::ringcentral::RingCentral;
use ringrelay::store::{self, DeliveryFilter, OpenOptions, Store};
use ringrelay_sim::{CallScenario, Fault, RateLimits, Sim, SimAccount, SimConfig, SimHandle};
use tokio::sync::watch;

// Only the shared config helper is used here.
#[allow(dead_code)]
#[path = "support/e2e.rs"]
mod e2e;

const EXTENSIONS: u32 = 12;

struct World {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    client: RingCentral,
}

async fn world() -> World {
    let config = SimConfig::default()
        .with_accounts(vec![SimAccount::generated(0, EXTENSIONS)])
        .with_rate_limits(RateLimits::default());
    let sim = Sim::start(config).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ringrelay::config::StoreUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("s.db").display()
    ))
    .expect("url");
    let store = store::open(&url, &OpenOptions::default())
        .await
        .expect("open");
    let client =
        RingCentral::with_clock(sim_client::settings(&sim), Arc::new(sim.clock())).expect("client");
    World {
        sim,
        _dir: dir,
        store,
        client,
    }
}

fn router() -> SinkRouter {
    Arc::new(|_| vec!["log".to_owned()])
}

impl World {
    fn sync(&self, scope: SyncScope) -> (AccountSync, watch::Sender<SyncScope>) {
        let (tx, rx) = watch::channel(scope);
        let sync = AccountSync::new(
            self.client.clone(),
            self.store.clone(),
            router(),
            Duration::from_secs(60),
        )
        .with_scope(rx);
        (sync, tx)
    }

    /// Every user extension's id (the ones calls reach).
    fn user_extensions(&self) -> Vec<String> {
        self.sim.accounts()[0]
            .extensions
            .iter()
            .filter(|e| e.kind == ringrelay_sim::ExtensionKind::User)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Plays `n` voicemail calls and `n` missed calls; returns the voicemail mailboxes.
    async fn calls(&self, n: usize) -> Vec<String> {
        let account = self.sim.accounts()[0].id.clone();
        let mut mailboxes = Vec::new();
        for _ in 0..n {
            for scenario in [CallScenario::InboundVoicemail, CallScenario::InboundMissed] {
                let call = self.sim.run_call(&account, scenario).await.expect("call");
                if let Some(vm) = call.voicemail {
                    mailboxes.push(vm.extension_id);
                }
                self.sim.complete_calls().await;
                self.sim.advance(Duration::from_secs(40)).await;
            }
        }
        self.sim.advance(Duration::from_secs(60)).await;
        mailboxes
    }

    async fn kinds(&self) -> Vec<String> {
        self.store
            .list_deliveries(&DeliveryFilter {
                limit: 10_000,
                ..DeliveryFilter::default()
            })
            .await
            .expect("deliveries")
            .into_iter()
            .map(|d| d.kind)
            .collect()
    }

    fn message_store_reads(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("/message-store"))
            .map(|r| r.path)
            .collect()
    }

    fn too_many_requests(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

#[tokio::test]
async fn a_gap_backfill_reads_every_covered_mailbox_and_resumes_after_a_failure() {
    let w = world().await;
    let start = w.sim.clock().now();
    let mailboxes = w.calls(12).await;
    let distinct: BTreeSet<&String> = mailboxes.iter().collect();
    assert!(
        distinct.len() > 1,
        "the calls reach several mailboxes: {distinct:?}"
    );
    let until = w.sim.clock().now();
    let extensions = w.user_extensions();
    let (sync, _scope) = w.sync(SyncScope {
        extensions: extensions.clone(),
        company_call_log: true,
        settled: true,
    });

    // The 7th mailbox (in the backfill's order) refuses once: the backfill stops there.
    let mut ordered = extensions.clone();
    ordered.sort_by_key(|e| (e.len(), e.clone()));
    let broken = &ordered[6];
    w.sim.add_fault(Fault {
        method: Some("GET".to_owned()),
        path: format!("/restapi/v1.0/account/~/extension/{broken}/message-store"),
        status: 403,
        error_code: "CMN-408".to_owned(),
        times: 1,
        delay_ms: 0,
    });
    let first = sync.backfill_gap(1, start, until).await;
    assert!(first.is_err(), "the refused mailbox fails the backfill");
    let reads_first = w.message_store_reads();
    assert!(
        reads_first.iter().all(|p| !ordered[7..]
            .iter()
            .any(|e| p.contains(&format!("/extension/{e}/")))),
        "nothing after the failed mailbox was read: {reads_first:?}"
    );

    let second = sync.backfill_gap(1, start, until).await.expect("resumes");
    let reads_second: Vec<String> = w.message_store_reads()[reads_first.len()..].to_vec();
    for done in &ordered[..6] {
        assert!(
            reads_second
                .iter()
                .all(|p| !p.contains(&format!("/extension/{done}/"))),
            "mailbox {done} was read again after the resume: {reads_second:?}"
        );
    }
    for rest in &ordered[6..] {
        assert!(
            reads_second
                .iter()
                .any(|p| p.contains(&format!("/extension/{rest}/"))),
            "mailbox {rest} was not read after the resume"
        );
    }
    let kinds = w.kinds().await;
    assert_eq!(count(&kinds, "voicemail.received"), mailboxes.len());
    assert_eq!(second.voicemails, mailboxes.len() as u64);
    assert_eq!(count(&kinds, "call.missed"), 24, "every missed call once");
    assert_eq!(
        w.too_many_requests(),
        0,
        "the governor kept within the limits"
    );

    // Done is done: running it again reads again but stores nothing new.
    let again = sync.backfill(start, until).await.expect("repeat");
    assert_eq!(again.activities_emitted, 0);
    assert_eq!(w.kinds().await.len(), kinds.len());
}

#[tokio::test]
async fn without_the_company_call_log_each_extension_log_is_read() {
    let w = world().await;
    let start = w.sim.clock().now();
    let mailboxes = w.calls(4).await;
    let until = w.sim.clock().now();
    let extensions = w.user_extensions();
    let (sync, _scope) = w.sync(SyncScope {
        extensions: extensions.clone(),
        company_call_log: false,
        settled: true,
    });
    let report = sync.backfill_gap(7, start, until).await.expect("backfill");
    let account_level = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/restapi/v1.0/account/~/call-log"))
        .count();
    assert_eq!(account_level, 0, "the account-level call log is not asked");
    for e in &extensions {
        assert!(
            w.sim.requests().iter().any(|r| r
                .path
                .starts_with(&format!("/restapi/v1.0/account/~/extension/{e}/call-log"))),
            "extension {e}'s call log was read"
        );
    }
    let kinds = w.kinds().await;
    assert_eq!(count(&kinds, "call.missed"), 8, "each missed call once");
    assert_eq!(count(&kinds, "voicemail.received"), mailboxes.len());
    assert!(report.call_log_records >= 8);
    assert_eq!(w.too_many_requests(), 0, "the Heavy group was paced");
}

#[tokio::test]
async fn live_voicemail_sync_follows_the_event_and_the_scope() {
    let w = world().await;
    let mailboxes = w.calls(6).await;
    let extensions = w.user_extensions();
    let (sync, scope) = w.sync(SyncScope {
        extensions: vec!["~".to_owned()],
        company_call_log: true,
        settled: true,
    });
    let owner = w.sim.accounts()[0].owner().id.clone();
    // Only `~` is covered: an event for another mailbox reads the JWT user's.
    let r = sync
        .voicemail_after_event(Some("~"), ringrelay::ringcentral::Priority::Live)
        .await
        .expect("sync");
    let own = mailboxes.iter().filter(|m| **m == owner).count() as u64;
    assert_eq!(r.voicemails, own);

    // Company scope: an event for a mailbox reads that mailbox.
    scope.send_replace(SyncScope {
        extensions: extensions.clone(),
        company_call_log: true,
        settled: true,
    });
    let other = mailboxes
        .iter()
        .find(|m| **m != owner)
        .expect("a voicemail for another extension")
        .clone();
    let r = sync
        .voicemail_after_event(Some(&other), ringrelay::ringcentral::Priority::Live)
        .await
        .expect("sync");
    let theirs = mailboxes.iter().filter(|m| **m == other).count() as u64;
    assert_eq!(r.voicemails, theirs);
    // An extension that is not covered is not read.
    let before = w.message_store_reads().len();
    let r = sync
        .voicemail_after_event(Some("999999"), ringrelay::ringcentral::Priority::Live)
        .await
        .expect("sync");
    assert_eq!(r.voicemails, 0);
    assert_eq!(w.message_store_reads().len(), before);

    // The timer reads the mailboxes in rotation, a bounded number per tick, and over
    // enough ticks every one of them.
    let before = w.message_store_reads().len();
    for _ in 0..2 {
        sync.voicemail(ringrelay::ringcentral::Priority::Live)
            .await
            .expect("tick");
    }
    let reads: Vec<String> = w.message_store_reads()[before..].to_vec();
    assert_eq!(
        reads.len(),
        (2 * ringrelay::pipeline::sync::VOICEMAIL_PER_TICK).min(2 * extensions.len())
    );
    let read: BTreeSet<&String> = extensions
        .iter()
        .filter(|e| {
            reads
                .iter()
                .any(|p| p.contains(&format!("/extension/{e}/")))
        })
        .collect();
    assert_eq!(
        read.len(),
        extensions.len(),
        "two ticks cover all 11 mailboxes"
    );
    let kinds = w.kinds().await;
    assert_eq!(count(&kinds, "voicemail.received"), mailboxes.len());
}

/// `ringrelay backfill` from the command line asks RingCentral which extensions are
/// covered first, then reads every covered mailbox.
#[tokio::test]
async fn the_backfill_command_covers_every_extension() {
    let w = world().await;
    let start = w.sim.clock().now();
    let mailboxes = w.calls(4).await;
    let until = w.sim.clock().now() + chrono::Duration::seconds(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ringrelay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
public_url = "http://127.0.0.1:9"
[store]
url = "sqlite://{db}"
{acme}"#,
            db = dir.path().join("cli.db").display(),
            acme = e2e::acme_with_jsonl(&w.sim, &dir.path().join("out.jsonl")),
        ),
    )
    .expect("config");
    let args = vec![
        "--config".to_owned(),
        config.display().to_string(),
        "backfill".to_owned(),
        "--account".to_owned(),
        "acme".to_owned(),
        "--since".to_owned(),
        (start - chrono::Duration::minutes(5)).to_rfc3339(),
        "--until".to_owned(),
        until.to_rfc3339(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ringrelay"))
            .args(&args)
            .output()
            .expect("run ringrelay")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scope company"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} voicemails read", mailboxes.len())),
        "every mailbox read: {stdout}"
    );
}
