//! Extension discovery against the simulator: the task lists a company account, stores
//! the list, publishes the coverage on its watch channel, follows extensions added,
//! disabled and removed at runtime when triggered, falls back to `self` without company
//! permissions, and makes no RingCentral call while it is not the active replica.

#[path = "support/sim_client.rs"]
mod sim_client;

use std::sync::Arc;
use std::time::Duration;

use ringrelay::account::AccountId;
use ringrelay::config::{Scope, StoreUrl};
use ringrelay::keeper::extensions::{
    Coverage, DiscoveryContext, DiscoveryHandle, EffectiveScope, spawn,
};
use ringrelay::ringcentral::clock::SleepFuture;
use ringrelay::ringcentral::{Clock, RingCentral};
use ringrelay::store::{self, OpenOptions, Store};
use ringrelay_sim::{
    ExtensionKind, ExtensionStatus, Sim, SimAccount, SimClock, SimConfig, SimHandle, SimPermissions,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The simulator's "now", but sleeps are real (and long here), so the periodic refresh
/// never fires during a test and every refresh is one the test asked for.
#[derive(Debug)]
struct SimNowRealSleep(SimClock);

impl Clock for SimNowRealSleep {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.now()
    }
    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

struct World {
    sim: SimHandle,
    store: Arc<dyn Store>,
    account: AccountId,
    _dir: tempfile::TempDir,
}

async fn world(permissions: SimPermissions) -> World {
    let sim = Sim::start(SimConfig::default().with_accounts(vec![
        SimAccount::company(0, 40).with_permissions(permissions),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("x.db"));
    let store = store::open(&url, &OpenOptions::default()).await.unwrap();
    World {
        sim,
        store,
        account: AccountId::parse("acme").unwrap(),
        _dir: dir,
    }
}

fn client(w: &World, clock: Arc<dyn Clock>) -> RingCentral {
    let settings = sim_client::settings(&w.sim);
    RingCentral::with_clock(settings, clock).unwrap()
}

fn discovery(w: &World, scope: Scope, active: watch::Receiver<bool>) -> DiscoveryHandle {
    let clock: Arc<dyn Clock> = Arc::new(SimNowRealSleep(w.sim.clock()));
    let rc = client(w, clock.clone());
    spawn(
        DiscoveryContext {
            account: w.account.clone(),
            scope,
            api: Arc::new(rc),
            store: w.store.clone(),
            clock,
            refresh: Duration::from_secs(3600),
            retry_base: Duration::from_millis(50),
        },
        active,
        CancellationToken::new(),
    )
}

/// Waits (bounded) for a published coverage that satisfies `f`.
async fn until(h: &DiscoveryHandle, f: impl Fn(&Coverage) -> bool) -> Coverage {
    let mut rx = h.subscribe();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| f(c)))
        .await
        .expect("coverage in time")
        .expect("task alive")
        .clone()
}

fn expected(sim: &SimHandle) -> Vec<String> {
    let account = sim.account(&sim.accounts()[0].id).unwrap();
    let mut ids: Vec<String> = account
        .extensions
        .iter()
        .filter(|e| e.status == ExtensionStatus::Enabled && e.kind.takes_voicemail())
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn extensions_added_disabled_and_removed_at_runtime_change_the_coverage() {
    let w = world(SimPermissions::ADMIN).await;
    let (_active_tx, active) = watch::channel(true);
    let h = discovery(&w, Scope::Company, active);
    let first = until(&h, |c| c.refreshed_at.is_some()).await;
    assert_eq!(first.effective, EffectiveScope::Company);
    assert_eq!(first.extension_ids, expected(&w.sim));
    assert!(first.company_call_log && first.warnings.is_empty());
    assert_eq!(first.total, 40);
    assert_eq!(w.store.extensions(&w.account).await.unwrap().len(), 40);

    let acct = w.sim.accounts()[0].id.clone();
    let added = w
        .sim
        .add_extension(&acct, ExtensionKind::User, "New Hire")
        .await
        .unwrap();
    h.trigger();
    let c = until(&h, |c| c.covers(&added.id)).await;
    assert_eq!(c.extension_ids, expected(&w.sim));

    let victim = first
        .extension_ids
        .iter()
        .find(|id| **id != w.sim.accounts()[0].owner().id)
        .unwrap()
        .clone();
    w.sim.disable_extension(&acct, &victim).await.unwrap();
    h.trigger();
    let c = until(&h, |c| !c.covers(&victim)).await;
    let why = c
        .not_covered
        .iter()
        .find(|n| n.extension_id == victim)
        .unwrap();
    assert_eq!(why.reason.to_string(), "status Disabled");

    w.sim.remove_extension(&acct, &added.id).await.unwrap();
    h.trigger();
    let c = until(&h, |c| !c.covers(&added.id)).await;
    assert_eq!(c.extension_ids, expected(&w.sim));
    let stored = w.store.extensions(&w.account).await.unwrap();
    assert_eq!(stored.len(), 40);
    assert!(stored.iter().all(|e| e.record.extension_id != added.id));
    let row = stored
        .iter()
        .find(|e| e.record.extension_id == victim)
        .unwrap();
    assert!(!row.record.covered);
    h.stop().await;
    w.sim.shutdown().await;
}

/// The extension-list event is processed on whichever replica runs the processor; it
/// notes the change in the store, and the replica running the account's discovery picks
/// it up from there (no trigger on this handle).
#[tokio::test]
async fn a_change_noted_in_the_store_by_another_replica_refreshes_the_coverage() {
    let w = world(SimPermissions::ADMIN).await;
    let (_active_tx, active) = watch::channel(true);
    let h = discovery(&w, Scope::Company, active);
    until(&h, |c| c.refreshed_at.is_some()).await;
    let acct = w.sim.accounts()[0].id.clone();
    let added = w
        .sim
        .add_extension(&acct, ExtensionKind::User, "Hired Elsewhere")
        .await
        .unwrap();
    w.store
        .set_cursor(&ringrelay::store::CursorUpdate {
            account: Some(w.account.clone()),
            name: ringrelay::keeper::extensions::EXTENSIONS_CHANGED_CURSOR.to_owned(),
            value: "2026-11-29T08:00:00Z".to_owned(),
        })
        .await
        .unwrap();
    let c = until(&h, |c| c.covers(&added.id)).await;
    assert_eq!(c.extension_ids, expected(&w.sim));
    h.stop().await;
}

#[tokio::test]
async fn without_company_permissions_the_company_scope_falls_back_to_self() {
    let w = world(SimPermissions::SELF_ONLY).await;
    let (_active_tx, active) = watch::channel(true);
    let h = discovery(&w, Scope::Company, active);
    let c = until(&h, |c| c.refreshed_at.is_some()).await;
    assert_eq!(c.effective, EffectiveScope::SelfOnly);
    assert_eq!(c.extension_ids, [w.sim.accounts()[0].owner().id.clone()]);
    assert!(!c.company_call_log);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("scope \"self\""));
    h.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_standby_replica_calls_nothing_until_it_becomes_active() {
    let w = world(SimPermissions::ADMIN).await;
    let (active_tx, active) = watch::channel(false);
    let h = discovery(&w, Scope::SelfOnly, active);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(h.current().refreshed_at.is_none());
    assert!(
        w.sim
            .requests()
            .iter()
            .all(|r| !r.path.contains("/extension")),
        "no extension call while standing by"
    );
    active_tx.send_replace(true);
    let c = until(&h, |c| c.refreshed_at.is_some()).await;
    assert_eq!(c.extension_ids, [w.sim.accounts()[0].owner().id.clone()]);
    h.stop().await;
    w.sim.shutdown().await;
}

#[tokio::test]
async fn check_reports_the_permissions_the_coverage_and_the_fallback_warning() {
    let w = world(SimPermissions::ADMIN).await;
    let rc = client(&w, Arc::new(w.sim.clock()));
    let findings = ringrelay::check::coverage_findings(&rc, &Scope::Company).await;
    assert!(findings.iter().all(|f| !f.problem), "{findings:?}");
    let want = format!(
        "scope company configured; scope company: {} of 40",
        expected(&w.sim).len()
    );
    assert!(
        findings.iter().any(|f| f.text.starts_with(&want)),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.text.contains("FullCompanyCallLog"))
    );

    let acct = w.sim.accounts()[0].id.clone();
    w.sim
        .set_permissions(&acct, SimPermissions::SELF_ONLY)
        .unwrap();
    let findings = ringrelay::check::coverage_findings(&rc, &Scope::Company).await;
    let warnings: Vec<_> = findings.iter().filter(|f| f.problem).collect();
    assert_eq!(warnings.len(), 1, "{findings:?}");
    assert!(
        warnings[0].text.starts_with("WARNING: scope \"company\""),
        "{}",
        warnings[0].text
    );
    assert!(
        findings
            .iter()
            .any(|f| f.text.contains("scope self: 1 of 40")),
        "{findings:?}"
    );
    // Choosing "self" explicitly is not a problem.
    let findings = ringrelay::check::coverage_findings(&rc, &Scope::SelfOnly).await;
    assert!(findings.iter().all(|f| !f.problem), "{findings:?}");
    w.sim.shutdown().await;
}

/// A webhook endpoint that answers the handshake and signals each extension-list
/// notification on `seen` (in `serve`, the processor turns it into a trigger).
async fn trigger_hook(
    seen: tokio::sync::mpsc::UnboundedSender<String>,
) -> (String, CancellationToken) {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if event["event"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("/extension"))
                {
                    let id = event["body"]["extensionId"].as_str().unwrap_or_default();
                    let _ = seen.send(id.to_owned());
                }
                let mut out = HeaderMap::new();
                if let Some(v) = headers.get("validation-token") {
                    out.insert("validation-token", v.clone());
                }
                out.insert("content-type", "application/json".parse().unwrap());
                out
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .unwrap();
    });
    (url, stop)
}

#[tokio::test]
async fn an_extension_list_notification_triggers_a_refresh() {
    let w = world(SimPermissions::ADMIN).await;
    let (_active_tx, active) = watch::channel(true);
    let h = discovery(&w, Scope::Company, active);
    until(&h, |c| c.refreshed_at.is_some()).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (url, stop) = trigger_hook(seen_tx).await;
    let rc = client(&w, Arc::new(SimNowRealSleep(w.sim.clock())));
    rc.create_subscription(&ringrelay::ringcentral::CreateSubscription {
        event_filters: vec!["/restapi/v1.0/account/~/extension".to_owned()],
        address: url,
        verification_token: None,
        expires_in: Duration::from_secs(3600),
    })
    .await
    .unwrap();
    let acct = w.sim.accounts()[0].id.clone();
    let added = w
        .sim
        .add_extension(&acct, ExtensionKind::Department, "Night Queue")
        .await
        .unwrap();
    let notified = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the Create notification in time")
        .expect("hook alive");
    assert_eq!(notified, added.id);
    h.trigger();
    let c = until(&h, |c| c.covers(&added.id)).await;
    assert_eq!(c.extension_ids, expected(&w.sim));
    stop.cancel();
    h.stop().await;
    w.sim.shutdown().await;
}
