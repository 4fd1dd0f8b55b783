//! The keeper against the RingCentral simulator, through the real client, with the
//! validation handshake answered by the receiver's router on a loopback server and
//! simulated time: create, events verified by the generated token, blacklisting, expiry,
//! reminders over 60 days, strays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::keeper::plan::normalize_filter;
use ringrelay::keeper::task::Trigger;
use ringrelay::keeper::{CoverageState, Keeper, KeeperContext, SubscriptionApi};
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, TokenRegistry};
use ringrelay::ringcentral::{
    ClientSettings, CreateSubscription, GovernorSettings, RetryPolicy, RingCentral,
};
use ringrelay::store::{self, GapCause, OpenOptions, Store};
use ringrelay_sim::{RateLimits, Sim, SimConfig, SimHandle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SESSIONS: &str = "/restapi/v1.0/account/~/telephony/sessions";
const VOICEMAIL: &str = "/restapi/v1.0/account/~/extension/~/voicemail";
const CALL_LOG: &str = "/restapi/v1.0/account/~/extension/~/call-log";
const REMINDER: &str = "/restapi/v1.0/subscription/~?threshold=172800&interval=43200";
const WEEK: Duration = Duration::from_secs(7 * 86_400);

struct World {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    store: Arc<dyn Store>,
    tokens: TokenRegistry,
    base: String,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    api: Arc<RingCentral>,
}

fn acme() -> AccountId {
    AccountId::parse("acme").unwrap()
}

async fn world() -> World {
    world_with(30).await
}

async fn world_with(max_subscriptions: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = ringrelay::config::StoreUrl::Sqlite(dir.path().join("k.db"));
    let store = store::open(&url, &OpenOptions::default()).await.unwrap();
    let mut config = SimConfig::default().with_rate_limits(RateLimits {
        enabled: false,
        ..RateLimits::default()
    });
    config.max_subscriptions = max_subscriptions;
    let sim = Sim::start(config).await.unwrap();
    let tokens = TokenRegistry::new(Duration::from_secs(600));
    let state = ReceiverState::new(
        Arc::clone(&store),
        [acme(), AccountId::parse("beta").unwrap()],
        tokens.clone(),
        ReceiverLimits {
            max_body_bytes: 256 * 1024,
            max_json_depth: 32,
        },
    );
    let app = receiver::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { s.cancelled().await })
        .await
        .unwrap();
    });
    let settings = ClientSettings {
        account: acme(),
        server: sim.base_url().parse().unwrap(),
        client_id: sim.config().client_id.clone(),
        client_secret: Secret::new(sim.config().client_secret.clone()),
        jwt: Secret::new(sim.accounts()[0].jwt.clone()),
        request_timeout: Duration::from_secs(10),
        refresh_before: Duration::from_secs(300),
        retry: RetryPolicy::default(),
        limits: GovernorSettings::default(),
    };
    let api = Arc::new(RingCentral::with_clock(settings, Arc::new(sim.clock())).unwrap());
    World {
        _dir: dir,
        sim,
        store,
        tokens,
        base,
        stop,
        server,
        api,
    }
}

impl World {
    fn address(&self, account: &str) -> String {
        format!("{}/webhooks/ringcentral/{account}", self.base)
    }

    fn keeper(&self) -> Keeper {
        Keeper::new(self.ctx())
    }

    fn ctx(&self) -> KeeperContext {
        KeeperContext {
            account: acme(),
            address: self.address("acme"),
            event_filters: vec![
                SESSIONS.to_owned(),
                VOICEMAIL.to_owned(),
                CALL_LOG.to_owned(),
                REMINDER.to_owned(),
            ],
            extensions: None,
            max_filters_per_subscription: 500,
            expires_in: WEEK,
            renew_before: WEEK / 3,
            reconcile_interval: Duration::from_secs(300),
            silence_threshold: Duration::from_secs(1800),
            retry_base: Duration::from_secs(5),
            start_spread: Duration::ZERO,
            api: self.api.clone(),
            store: Arc::clone(&self.store),
            tokens: Arc::new(self.tokens.clone()),
            owner: "replica-a".to_owned(),
            clock: Arc::new(self.sim.clock()),
        }
    }

    fn subscriptions(&self) -> Vec<serde_json::Value> {
        self.sim.subscriptions()
    }

    async fn inject_call(&self) -> usize {
        let account = self.sim.accounts()[0].id.clone();
        let event = format!("/restapi/v1.0/account/{account}/telephony/sessions");
        let sent = self
            .sim
            .inject(
                &account,
                &event,
                json!({"telephonySessionId": "s-1", "sequence": 1, "parties": []}),
            )
            .await
            .unwrap();
        sent.iter().filter(|d| d.succeeded()).count()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.server.await.unwrap();
        self.sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_created_subscription_passes_the_handshake_and_its_events_are_verified() {
    let w = world().await;
    let mut k = w.keeper();
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Covered, "{:?}", k.status());
    let subs = w.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["status"], "Active");
    // The simulator disables the call-log filter, as RingCentral does.
    let refused = &k.status().refused_filters;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(normalize_filter(&refused[0].filter), CALL_LOG);
    let lines = k.status().explain(chrono::Utc::now()).join("\n");
    assert!(
        lines.contains("call-log sync covers completed calls"),
        "{lines}"
    );
    assert_eq!(
        w.inject_call().await,
        1,
        "the receiver accepted the generated token"
    );
    assert_eq!(w.store.inbox_stats().await.unwrap().rows, 1);
    w.stop().await;
}

#[tokio::test]
async fn a_blacklisted_subscription_is_recreated_with_a_gap() {
    let w = world().await;
    let mut k = w.keeper();
    k.start().await;
    let first = w.subscriptions()[0]["id"].as_str().unwrap().to_owned();
    assert!(w.sim.blacklist(&first));
    w.sim.advance(Duration::from_secs(60)).await;
    assert_eq!(k.step(Trigger::Timer).await.state, CoverageState::Covered);
    let subs = w.subscriptions();
    assert_eq!(subs.len(), 1, "the blacklisted one was deleted");
    assert_ne!(subs[0]["id"].as_str().unwrap(), first);
    let gaps = w.store.gaps(Some(&acme()), None).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::Blacklisted);
    assert!(gaps[0].until.is_some());
    assert_eq!(
        w.inject_call().await,
        1,
        "the new subscription's token is accepted"
    );
    w.stop().await;
}

#[tokio::test]
async fn an_expired_subscription_is_recreated_with_a_gap_from_its_expiry() {
    let w = world().await;
    let mut k = w.keeper();
    k.start().await;
    w.sim.advance(WEEK + Duration::from_secs(3600)).await;
    assert_eq!(k.step(Trigger::Timer).await.state, CoverageState::Covered);
    assert_eq!(w.subscriptions().len(), 1);
    let gaps = w.store.gaps(Some(&acme()), None).await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::Expired);
    w.stop().await;
}

#[tokio::test]
async fn sixty_days_of_reminders_and_renewals_keep_one_subscription_active() {
    let w = world().await;
    let mut k = w.keeper();
    k.start().await;
    let id = w.subscriptions()[0]["id"].as_str().unwrap().to_owned();
    let mut reminders = 0;
    for _ in 0..(60 * 4) {
        let sent = w.sim.advance(Duration::from_secs(6 * 3600)).await;
        reminders += sent.iter().filter(|d| d.succeeded()).count();
        if sent.is_empty() {
            k.step(Trigger::Timer).await;
        } else {
            k.step(Trigger::Reminder).await;
        }
        assert_eq!(k.status().state, CoverageState::Covered, "{:?}", k.status());
    }
    let subs = w.subscriptions();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"].as_str().unwrap(), id);
    assert_eq!(subs[0]["status"], "Active");
    assert!(w.store.gaps(Some(&acme()), None).await.unwrap().is_empty());
    // Renewal at a third of the lifetime comes before the 48 h reminder threshold.
    assert_eq!(reminders, 0);
    w.stop().await;
}

#[tokio::test]
async fn strays_at_our_address_are_deleted_at_start_and_others_are_kept() {
    let w = world().await;
    let create = |address: String| CreateSubscription {
        event_filters: vec![SESSIONS.to_owned()],
        address,
        expires_in: WEEK,
        verification_token: Some(Secret::new("left-over-token")),
    };
    let stray1 = w.api.create(&create(w.address("acme"))).await.unwrap().id;
    let stray2 = w.api.create(&create(w.address("acme"))).await.unwrap().id;
    let other = w.api.create(&create(w.address("beta"))).await.unwrap().id;
    let mut k = w.keeper();
    assert_eq!(k.start().await.state, CoverageState::Covered);
    let ids: Vec<String> = w
        .subscriptions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&other));
    assert!(!ids.contains(&stray1) && !ids.contains(&stray2));
    w.stop().await;
}

#[tokio::test]
async fn a_reminder_event_leads_to_a_renewal() {
    let w = world().await;
    let mut ctx = w.ctx();
    ctx.renew_before = Duration::from_secs(3600);
    ctx.reconcile_interval = Duration::from_secs(86_400);
    let mut k = Keeper::new(ctx);
    k.start().await;
    let before = k.status().subscription.clone().unwrap().expires_at;
    let sent = w.sim.advance(Duration::from_secs(5 * 86_400 + 3600)).await;
    assert!(
        sent.iter().any(|d| d.succeeded()),
        "the reminder reached the receiver"
    );
    k.step(Trigger::Reminder).await;
    let after = k.status().subscription.clone().unwrap().expires_at;
    assert!(
        after > before + chrono::Duration::days(5),
        "{before} → {after}"
    );
    assert_eq!(w.subscriptions().len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn an_unreachable_webhook_url_is_explained_and_retried() {
    let w = world().await;
    // The receiver does not know this account: the handshake fails.
    let mut ctx = w.ctx();
    ctx.address = w.address("nobody");
    let mut k = Keeper::new(ctx);
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Uncovered);
    let err = k.status().last_error.clone().unwrap();
    assert!(
        err.contains(&format!(
            "RingCentral could not validate {}",
            w.address("nobody")
        )),
        "{err}"
    );
    assert!(err.contains("reachable from the internet"), "{err}");
    assert_eq!(k.status().failures, 1);
    assert!(
        out.next_wake - ringrelay::ringcentral::Clock::now(&w.sim.clock())
            <= chrono::Duration::seconds(5)
    );
    assert!(w.subscriptions().is_empty());
    // Still failing: backoff grows.
    w.sim.advance(Duration::from_secs(5)).await;
    k.step(Trigger::Timer).await;
    assert_eq!(k.status().failures, 2);
    let gaps = w.store.gaps(Some(&acme()), None).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0].until.is_none(), "uncovered until a create succeeds");
    w.stop().await;
}

#[tokio::test]
async fn the_subscription_limit_recovers_from_our_strays_and_names_foreign_ones() {
    // Our stray fills the limit: deleted, then the create succeeds.
    let w = world_with(2).await;
    let req = |address: String| CreateSubscription {
        event_filters: vec![SESSIONS.to_owned()],
        address,
        expires_in: WEEK,
        verification_token: None,
    };
    w.api.create(&req(w.address("beta"))).await.unwrap();
    let stray = w.api.create(&req(w.address("acme"))).await.unwrap().id;
    let mut k = w.keeper();
    assert_eq!(
        k.start().await.state,
        CoverageState::Covered,
        "{:?}",
        k.status()
    );
    let ids: Vec<String> = w
        .subscriptions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&stray));
    w.stop().await;

    // Foreign ones fill it: a clear error, nothing of theirs touched.
    let w = world_with(2).await;
    w.api.create(&req(w.address("beta"))).await.unwrap();
    w.api.create(&req(w.address("beta"))).await.unwrap();
    let mut k = w.keeper();
    assert_eq!(k.start().await.state, CoverageState::Uncovered);
    let err = k.status().last_error.clone().unwrap();
    assert!(
        err.contains("reached by 2 subscriptions that are not ringrelay's"),
        "{err}"
    );
    assert_eq!(w.subscriptions().len(), 2);
    w.stop().await;
}
