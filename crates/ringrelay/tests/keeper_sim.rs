//! The keeper against the RingCentral simulator, through the real client, with the
//! validation handshake answered by the receiver's router on a loopback server and
//! simulated time: create, events verified by the generated token, blacklisting, expiry,
//! reminders over 60 days, strays.

#[path = "support/sim_client.rs"]
mod sim_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::keeper::pack::voicemail_extension;
use ringrelay::keeper::plan::normalize_filter;
use ringrelay::keeper::task::Trigger;
use ringrelay::keeper::{CoverageState, Keeper, KeeperContext, SubscriptionApi};
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, TokenRegistry};
use ringrelay::ringcentral::{CreateSubscription, RingCentral};
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
    let mut config = SimConfig::default().with_rate_limits(RateLimits {
        enabled: false,
        ..RateLimits::default()
    });
    config.max_subscriptions = max_subscriptions;
    world_of(config).await
}

async fn world_of(config: SimConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = ringrelay::config::StoreUrl::Sqlite(dir.path().join("k.db"));
    let store = store::open(&url, &OpenOptions::default()).await.unwrap();
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
    let settings = sim_client::settings(&sim);
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
            lease: ringrelay::cluster::LeaseTiming::default(),
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

// ----- many extensions: voicemail filters packed into several subscriptions -----

/// Counts the keeper's subscription calls (and passes them on to the real client).
struct Counting {
    inner: Arc<RingCentral>,
    calls: std::sync::Mutex<Vec<String>>,
}

impl Counting {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl SubscriptionApi for Counting {
    async fn create(
        &self,
        request: &CreateSubscription,
    ) -> Result<ringrelay::ringcentral::Subscription, ringrelay::ringcentral::ApiError> {
        self.note("create".into());
        self.inner.create(request).await
    }

    async fn list(
        &self,
    ) -> Result<Vec<ringrelay::ringcentral::Subscription>, ringrelay::ringcentral::ApiError> {
        self.note("list".into());
        self.inner.list().await
    }

    async fn get(
        &self,
        id: &str,
    ) -> Result<ringrelay::ringcentral::Subscription, ringrelay::ringcentral::ApiError> {
        self.note(format!("get {id}"));
        self.inner.get(id).await
    }

    async fn renew(
        &self,
        id: &str,
    ) -> Result<ringrelay::ringcentral::Subscription, ringrelay::ringcentral::ApiError> {
        self.note(format!("renew {id}"));
        self.inner.renew(id).await
    }

    async fn update(
        &self,
        id: &str,
        event_filters: &[String],
        expires_in: Duration,
    ) -> Result<ringrelay::ringcentral::Subscription, ringrelay::ringcentral::ApiError> {
        self.note(format!("update {id}"));
        self.inner.update(id, event_filters, expires_in).await
    }

    async fn delete(&self, id: &str) -> Result<(), ringrelay::ringcentral::ApiError> {
        self.note(format!("delete {id}"));
        self.inner.delete(id).await
    }
}

const MAX_FILTERS: usize = 50;

struct Company {
    w: World,
    api: Arc<Counting>,
    extensions: tokio::sync::watch::Sender<Option<Vec<String>>>,
    all: Vec<String>,
}

/// An account with 200 extensions, at most 50 filters per subscription (the simulator
/// refuses more), the keeper following the covered extensions through a watch.
async fn company(foreign: usize) -> Company {
    let mut config = SimConfig::default()
        .with_rate_limits(RateLimits {
            enabled: false,
            ..RateLimits::default()
        })
        .with_accounts(vec![ringrelay_sim::SimAccount::generated(0, 200)]);
    config.max_filters_per_subscription = Some(MAX_FILTERS);
    let w = world_of(config).await;
    for _ in 0..foreign {
        w.api
            .create(&CreateSubscription {
                event_filters: vec![SESSIONS.to_owned()],
                address: w.address("beta"),
                expires_in: WEEK,
                verification_token: None,
            })
            .await
            .unwrap();
    }
    let all: Vec<String> = w.sim.accounts()[0]
        .extensions
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(all.len(), 200);
    let (extensions, _) = tokio::sync::watch::channel(Some(all.clone()));
    let api = Arc::new(Counting {
        inner: Arc::clone(&w.api),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    Company {
        w,
        api,
        extensions,
        all,
    }
}

impl Company {
    fn ctx(&self) -> KeeperContext {
        let mut ctx = self.w.ctx();
        ctx.api = self.api.clone();
        ctx.max_filters_per_subscription = MAX_FILTERS;
        ctx.with_extensions(self.extensions.subscribe())
    }

    /// Our subscriptions as the simulator lists them.
    fn ours(&self) -> Vec<serde_json::Value> {
        let address = self.w.address("acme");
        self.w
            .subscriptions()
            .into_iter()
            .filter(|s| s["deliveryMode"]["address"] == address.as_str())
            .collect()
    }

    /// The ids of [`Self::ours`].
    fn our_ids(&self) -> Vec<String> {
        self.ours()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Extension id → how many of our subscriptions carry its voicemail filter.
    fn carried(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.ours() {
            for f in s["eventFilters"].as_array().unwrap() {
                if let Some(ext) = voicemail_extension(f.as_str().unwrap()) {
                    *out.entry(ext.to_owned()).or_default() += 1;
                }
            }
        }
        out
    }

    fn holder_of(&self, ext: &str) -> String {
        let filter = format!(
            "/restapi/v1.0/account/{}/extension/{ext}/voicemail",
            self.w.sim.accounts()[0].id
        );
        self.ours()
            .into_iter()
            .find(|s| {
                s["eventFilters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f.as_str() == Some(filter.as_str()))
            })
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .unwrap()
    }

    /// Delivers a voicemail event of `ext`; how many deliveries the receiver accepted.
    async fn voicemail(&self, ext: &str) -> usize {
        let account = self.w.sim.accounts()[0].id.clone();
        let event = format!("/restapi/v1.0/account/{account}/extension/{ext}/voicemail");
        let sent = self
            .w
            .sim
            .inject(&account, &event, json!({"newCount": 1}))
            .await
            .unwrap();
        sent.iter().filter(|d| d.succeeded()).count()
    }
}

#[tokio::test]
async fn two_hundred_extensions_get_their_voicemail_filter_exactly_once_in_few_subscriptions() {
    let c = company(0).await;
    let mut k = Keeper::new(c.ctx());
    assert_eq!(
        k.start().await.state,
        CoverageState::Covered,
        "{:?}",
        k.status()
    );
    // 3 account-level filters (telephony, call log, reminder; `~` voicemail replaced):
    // 47 + 49 + 49 + 49 + 6.
    let ours = c.ours();
    assert_eq!(ours.len(), 5);
    for s in &ours {
        assert_eq!(s["status"], "Active");
        let filters = s["eventFilters"].as_array().unwrap();
        let disabled = s["disabledFilters"].as_array().map_or(0, Vec::len);
        assert!(filters.len() + disabled <= MAX_FILTERS);
        assert!(filters.iter().any(|f| f.as_str() == Some(REMINDER)));
    }
    let carried = c.carried();
    assert_eq!(carried.len(), 200);
    assert!(carried.values().all(|n| *n == 1), "each exactly once");
    let telephony = ours
        .iter()
        .filter(|s| {
            s["eventFilters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f.as_str().unwrap().ends_with("/telephony/sessions"))
        })
        .count();
    assert_eq!(telephony, 1, "account-level filters in the first one only");
    let status = k.status();
    assert_eq!(status.subscriptions.len(), 5);
    let ext = status.extensions.clone().unwrap();
    assert_eq!((ext.wanted, ext.covered, ext.subscriptions), (200, 200, 5));
    // Every subscription's token is accepted: a voicemail of the last extension comes
    // through the last subscription.
    assert_ne!(
        c.holder_of(&c.all[199]),
        status.subscription.clone().unwrap().id
    );
    assert_eq!(c.voicemail(&c.all[199]).await, 1);
    assert_eq!(c.voicemail(&c.all[0]).await, 1);
    assert_eq!(c.w.inject_call().await, 1);
    // Steady state: a reconcile lists and changes nothing.
    c.api.take();
    k.step(Trigger::Reconcile).await;
    assert_eq!(c.api.take(), vec!["list"]);

    // A restart (fresh token registry) takes every subscription over from the store; the
    // application registers them all before listening.
    let record = c.w.store.subscription(&acme()).await.unwrap().unwrap();
    let stored = ringrelay::keeper::stored_tokens(c.w.store.as_ref(), &record)
        .await
        .unwrap();
    let stored_ids: Vec<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    let listed = c.our_ids();
    assert_eq!(stored_ids, listed, "all five, in order");
    c.w.tokens.clear(&acme());
    // Discovery has not answered yet after the restart: what is held stays as it is.
    c.extensions.send_replace(None);
    let mut again = Keeper::new(c.ctx().with_clock(Arc::new(c.w.sim.clock())));
    assert_eq!(again.start().await.state, CoverageState::Covered);
    assert_eq!(c.api.take(), vec!["list"], "nothing recreated");
    assert_eq!(
        again.status().extensions.clone().unwrap().covered,
        200,
        "the carried extensions stand in until discovery answers"
    );
    assert_eq!(c.voicemail(&c.all[150]).await, 1);
    c.w.stop().await;
}

#[tokio::test]
async fn an_extension_added_or_removed_at_runtime_is_one_put() {
    let c = company(0).await;
    // Start without the 100th extension.
    let mut without: Vec<String> = c.all.clone();
    let late = without.remove(100);
    c.extensions.send_replace(Some(without.clone()));
    let handle = ringrelay::keeper::spawn(c.ctx());
    let mut status = handle.watch();
    // Waits (bounded in real time) until the keeper covers `n` extensions; the calls it
    // made meanwhile other than listing (timer steps may list in between).
    let mut covering = async |n: usize| {
        tokio::time::timeout(
            Duration::from_secs(20),
            status.wait_for(|s| {
                s.state == CoverageState::Covered
                    && s.extensions
                        .as_ref()
                        .is_some_and(|e| e.wanted == n && e.covered == n)
            }),
        )
        .await
        .expect("the keeper followed the change")
        .unwrap();
        let mut calls = c.api.take();
        calls.retain(|x| x != "list");
        calls
    };
    covering(199).await;
    assert_eq!(c.carried().len(), 199);
    let ids = c.our_ids();
    assert_eq!(ids.len(), 5);

    // Added: into the first subscription with room, by one PUT. That is the first one:
    // RingCentral disabled its call-log filter, which is no longer requested.
    c.extensions.send_replace(Some(c.all.clone()));
    assert_eq!(covering(200).await, vec![format!("update {}", ids[0])]);
    assert_eq!(c.carried().get(&late), Some(&1));
    assert_eq!(c.holder_of(&late), ids[0]);
    assert_eq!(c.voicemail(&late).await, 1);

    // Removed: one PUT on the subscription that carried it.
    let gone = c.all[120].clone();
    assert_eq!(c.holder_of(&gone), ids[2]);
    let mut fewer = c.all.clone();
    fewer.remove(120);
    c.extensions.send_replace(Some(fewer));
    assert_eq!(covering(199).await, vec![format!("update {}", ids[2])]);
    assert_eq!(c.carried().get(&gone), None);
    assert_eq!(c.carried().len(), 199);
    let now_ids = c.our_ids();
    assert_eq!(now_ids, ids, "no subscription recreated");
    handle.shutdown().await;
    c.w.stop().await;
}

#[tokio::test]
async fn blacklisting_one_of_several_recreates_only_it() {
    let c = company(0).await;
    let mut k = Keeper::new(c.ctx());
    k.start().await;
    let before = c.our_ids();
    let victim = c.holder_of(&c.all[120]);
    assert_eq!(victim, before[2]);
    assert!(c.w.sim.blacklist(&victim));
    c.w.sim.advance(Duration::from_secs(60)).await;
    c.api.take();
    assert_eq!(k.step(Trigger::Timer).await.state, CoverageState::Covered);
    let calls = c.api.take();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[1], format!("delete {victim}"));
    assert_eq!(calls[2], "create");
    let after = c.our_ids();
    assert_eq!(after.len(), 5);
    for (i, id) in before.iter().enumerate() {
        assert_eq!(after.contains(id), i != 2, "{i}");
    }
    let replacement = c.holder_of(&c.all[120]);
    assert!(!before.contains(&replacement));
    assert!(c.carried().values().all(|n| *n == 1));
    assert_eq!(c.carried().len(), 200);
    // The ledger is per account: the gap is account-wide, and closed.
    let gaps = c.w.store.gaps(Some(&acme()), None).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::Blacklisted);
    assert!(gaps[0].until.is_some());
    assert_eq!(
        c.voicemail(&c.all[120]).await,
        1,
        "the new token is accepted"
    );
    c.w.stop().await;
}

#[tokio::test]
async fn before_discovery_answers_a_first_start_keeps_the_single_subscription() {
    let c = company(0).await;
    c.extensions.send_replace(None);
    let mut k = Keeper::new(c.ctx());
    assert_eq!(k.start().await.state, CoverageState::Covered);
    let ours = c.ours();
    assert_eq!(ours.len(), 1);
    let filters: Vec<&str> = ours[0]["eventFilters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(filters.len(), 3, "{filters:?}");
    assert!(filters.iter().any(|f| f.ends_with("/voicemail")));
    assert!(k.status().extensions.is_none());
    // The JWT user only (scope "self"): the same single subscription, untouched.
    c.extensions.send_replace(Some(Vec::new()));
    c.api.take();
    k.step(Trigger::Reconcile).await;
    assert_eq!(c.api.take(), vec!["list"]);
    // Discovery answers with the company: the same subscription is updated in place.
    let id = ours[0]["id"].as_str().unwrap().to_owned();
    c.extensions.send_replace(Some(c.all.clone()));
    k.step(Trigger::Reconcile).await;
    let calls = c.api.take();
    assert_eq!(calls[1], format!("update {id}"), "{calls:?}");
    assert_eq!(calls.iter().filter(|x| *x == "create").count(), 4);
    assert_eq!(c.carried().len(), 200);
    c.w.stop().await;
}

#[tokio::test]
async fn the_subscription_limit_leaves_extensions_out_and_status_says_why() {
    let c = company(27).await;
    let mut k = Keeper::new(c.ctx());
    assert_eq!(
        k.start().await.state,
        CoverageState::Covered,
        "{:?}",
        k.status()
    );
    assert_eq!(c.ours().len(), 3, "30 minus 27 foreign");
    assert_eq!(c.w.subscriptions().len(), 30);
    // The first subscription also carries the telephony, extension-list and reminder
    // filters; the others the reminder.
    assert_eq!(c.carried().len(), 46 + 49 + 49);
    let ext = k.status().extensions.clone().unwrap();
    assert_eq!((ext.wanted, ext.covered), (200, 144));
    let over = ext.over_limit.unwrap();
    assert_eq!((over.needed, over.allowed), (5, 3));
    assert_eq!(over.extensions.len(), 56);
    let lines = k.status().explain(chrono::Utc::now()).join("\n");
    assert!(
        lines.contains("NOT covered: voicemail of 56 extension(s)"),
        "{lines}"
    );
    assert!(
        lines.contains("minus 27 that are not ringrelay's"),
        "{lines}"
    );
    assert!(k.status().last_error.is_none(), "no SUB-505 was provoked");
    c.w.stop().await;
}

#[tokio::test]
async fn the_cli_and_check_treat_every_held_subscription_as_ours_and_strays_as_strays() {
    let c = company(0).await;
    let mut k = Keeper::new(c.ctx());
    k.start().await;
    let held = c.our_ids();
    assert_eq!(held.len(), 5);
    let stray =
        c.w.api
            .create(&CreateSubscription {
                event_filters: vec![SESSIONS.to_owned()],
                address: c.w.address("acme"),
                expires_in: WEEK,
                verification_token: None,
            })
            .await
            .unwrap()
            .id;
    let text = format!(
        "[server]\npublic_url = \"{}\"\n[store]\nurl = \"sqlite://{}\"\n[[accounts]]\nid = \"acme\"\nserver = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\njwt = \"{}\"\n",
        c.w.base,
        c.w._dir.path().join("k.db").display(),
        c.w.sim.base_url(),
        c.w.sim.config().client_id,
        c.w.sim.config().client_secret,
        c.w.sim.accounts()[0].jwt,
    );
    let settings = ringrelay::config::load(&text, &std::collections::HashMap::new()).unwrap();
    use ringrelay::commands::{SubscriptionsAction, subscriptions};
    let list = subscriptions(&settings, "acme", SubscriptionsAction::List)
        .await
        .unwrap();
    for id in &held {
        let line = list.lines().find(|l| l.contains(id.as_str())).unwrap();
        assert!(line.trim_end().ends_with("current"), "{line}");
    }
    let line = list.lines().find(|l| l.contains(stray.as_str())).unwrap();
    assert!(line.trim_end().ends_with("stray"), "{line}");

    // `check`: five subscriptions sharing no filter are fine; the stray shares one.
    let report = ringrelay::check::check_account(&settings, &settings.accounts[0]).await;
    let text: Vec<&str> = report.findings.iter().map(|f| f.text.as_str()).collect();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.problem && f.text.contains("some events arrive 2 times")),
        "{text:#?}"
    );

    let out = subscriptions(&settings, "acme", SubscriptionsAction::Cleanup)
        .await
        .unwrap();
    assert!(out.contains("1 deleted"), "{out}");
    let left = c.our_ids();
    assert_eq!(left, held);
    let report = ringrelay::check::check_account(&settings, &settings.accounts[0]).await;
    assert!(
        report.findings.iter().any(|f| !f.problem
            && f.text.contains("5 subscriptions point at")
            && f.text.contains("sharing no filter")),
        "{:#?}",
        report.findings
    );
    c.w.stop().await;
}

#[tokio::test]
async fn thirty_days_of_renewals_keep_all_five_subscriptions_and_a_stray_goes() {
    let c = company(0).await;
    let stray =
        c.w.api
            .create(&CreateSubscription {
                event_filters: vec![SESSIONS.to_owned()],
                address: c.w.address("acme"),
                expires_in: WEEK,
                verification_token: Some(Secret::new("left-over-token")),
            })
            .await
            .unwrap()
            .id;
    let mut k = Keeper::new(c.ctx());
    assert_eq!(k.start().await.state, CoverageState::Covered);
    let ids = c.our_ids();
    assert_eq!(ids.len(), 5);
    assert!(!ids.contains(&stray), "the stray was deleted");
    c.api.take();
    for _ in 0..(30 * 4) {
        c.w.sim.advance(Duration::from_secs(6 * 3600)).await;
        k.step(Trigger::Timer).await;
        assert_eq!(k.status().state, CoverageState::Covered, "{:?}", k.status());
    }
    let now_ids = c.our_ids();
    assert_eq!(now_ids, ids, "the same five, never recreated");
    assert!(c.ours().iter().all(|s| s["status"] == "Active"));
    let calls = c.api.take();
    assert!(
        !calls
            .iter()
            .any(|x| x == "create" || x.starts_with("delete"))
    );
    // Each was renewed at least four times (every 56 h of a 7-day lifetime).
    for id in &ids {
        let renewals = calls
            .iter()
            .filter(|x| **x == format!("renew {id}"))
            .count();
        assert!(renewals >= 4, "{id}: {renewals}");
    }
    assert!(
        c.w.store
            .gaps(Some(&acme()), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.carried().len(), 200);
    c.w.stop().await;
}
