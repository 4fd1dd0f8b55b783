//! The keeper against a scripted fake RingCentral (in-memory subscriptions on a simulated
//! clock) and a real SQLite store: every plan branch, backoff, the lease, gaps on restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::keeper::task::Trigger;
use ringrelay::keeper::{
    Command, CoverageState, Keeper, KeeperContext, SubscriptionApi, TokenSink, spawn,
};
use ringrelay::ringcentral::subscriptions::Blacklisted;
use ringrelay::ringcentral::{
    ApiError, Clock, CreateSubscription, DisabledFilter, Subscription, SubscriptionStatus,
};
use ringrelay::store::{self, GapCause, OpenOptions, Store};
use ringrelay_sim::SimClock;

const ADDRESS: &str = "https://relay.example/webhooks/ringcentral/acme";
const SESSIONS: &str = "/restapi/v1.0/account/~/telephony/sessions";
const VOICEMAIL: &str = "/restapi/v1.0/account/~/extension/~/voicemail";
const CALL_LOG: &str = "/restapi/v1.0/account/~/extension/~/call-log";
const REMINDER: &str = "/restapi/v1.0/subscription/~?threshold=172800&interval=43200";
const WEEK: Duration = Duration::from_secs(7 * 86_400);

#[derive(Default)]
struct FakeState {
    subs: Vec<Subscription>,
    next_id: u32,
    limit: usize,
    /// Errors returned by the next calls of an operation ("create", "list", …).
    fail: VecDeque<(&'static str, ApiError)>,
    /// Filters answered with `disabledFilters` on create.
    disable: Vec<String>,
    /// Filters answered with SUB-508 on create.
    refuse: Vec<String>,
    /// Ids left out of the next list (a stray created behind our back).
    hidden_once: Vec<String>,
    calls: Vec<String>,
}

struct FakeApi {
    clock: SimClock,
    state: Mutex<FakeState>,
}

impl FakeApi {
    fn new(clock: &SimClock) -> Arc<Self> {
        Arc::new(Self {
            clock: clock.clone(),
            state: Mutex::new(FakeState {
                limit: 30,
                ..FakeState::default()
            }),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn add(&self, address: &str, filters: &[&str], created_ago: Duration) -> String {
        let now = self.clock.now();
        self.with(|s| {
            s.next_id += 1;
            let id = format!("pre-{}", s.next_id);
            s.subs.push(Subscription {
                id: id.clone(),
                status: SubscriptionStatus::Active,
                created_at: Some(now - chrono::Duration::from_std(created_ago).unwrap()),
                expires_at: now + chrono::Duration::days(5),
                address: Some(address.to_owned()),
                transport_type: Some("WebHook".into()),
                event_filters: filters.iter().map(|f| (*f).to_owned()).collect(),
                disabled_filters: Vec::new(),
                blacklisted: None,
                verification_token: None,
            });
            id
        })
    }

    fn ids(&self) -> Vec<String> {
        self.with(|s| s.subs.iter().map(|x| x.id.clone()).collect())
    }

    fn count(&self, op: &str) -> usize {
        self.with(|s| s.calls.iter().filter(|c| c.as_str() == op).count())
    }

    fn injected(&self, op: &'static str) -> Result<(), ApiError> {
        let now = self.clock.now();
        self.with(|s| {
            s.calls.push(op.to_owned());
            s.subs.retain(|x| x.expires_at > now);
            match s.fail.front() {
                Some((o, _)) if *o == op => Err(s.fail.pop_front().unwrap().1),
                _ => Ok(()),
            }
        })
    }

    fn not_found() -> ApiError {
        ApiError::NotFound {
            code: "CMN-102".into(),
            message: "Resource for parameter [subscriptionId] is not found".into(),
        }
    }
}

#[async_trait]
impl SubscriptionApi for FakeApi {
    async fn create(&self, req: &CreateSubscription) -> Result<Subscription, ApiError> {
        self.injected("create")?;
        let now = self.clock.now();
        self.with(|s| {
            if let Some(f) = req.event_filters.iter().find(|f| s.refuse.contains(f)) {
                return Err(ApiError::InvalidFilters {
                    message: format!("Event filter [{f}] is not supported"),
                });
            }
            if s.subs.len() >= s.limit {
                return Err(ApiError::SubscriptionLimit {
                    message: "Subscriptions limit exceeded".into(),
                });
            }
            assert!(
                req.verification_token
                    .as_ref()
                    .is_some_and(|t| t.expose().len() >= 32)
            );
            s.next_id += 1;
            let (disabled, applied): (Vec<String>, Vec<String>) = req
                .event_filters
                .iter()
                .cloned()
                .partition(|f| s.disable.contains(f));
            let sub = Subscription {
                id: format!("sub-{}", s.next_id),
                status: SubscriptionStatus::Active,
                created_at: Some(now),
                expires_at: now + chrono::Duration::from_std(req.expires_in).unwrap(),
                address: Some(req.address.clone()),
                transport_type: Some("WebHook".into()),
                event_filters: applied
                    .iter()
                    .map(|f| f.replace("account/~", "account/37439510"))
                    .collect(),
                disabled_filters: disabled
                    .into_iter()
                    .map(|filter| DisabledFilter {
                        filter,
                        reason: "Event filter is not available".into(),
                        message: None,
                    })
                    .collect(),
                blacklisted: None,
                verification_token: None,
            };
            s.subs.push(sub.clone());
            Ok(sub)
        })
    }

    async fn list(&self) -> Result<Vec<Subscription>, ApiError> {
        self.injected("list")?;
        Ok(self.with(|s| {
            let hidden = std::mem::take(&mut s.hidden_once);
            s.subs
                .iter()
                .filter(|x| !hidden.contains(&x.id))
                .cloned()
                .collect()
        }))
    }

    async fn get(&self, id: &str) -> Result<Subscription, ApiError> {
        self.injected("get")?;
        self.with(|s| s.subs.iter().find(|x| x.id == id).cloned())
            .ok_or_else(Self::not_found)
    }

    async fn renew(&self, id: &str) -> Result<Subscription, ApiError> {
        self.injected("renew")?;
        let now = self.clock.now();
        self.with(|s| {
            let sub = s.subs.iter_mut().find(|x| x.id == id)?;
            let life = sub.expires_at - sub.created_at.unwrap_or(now);
            let life = life
                .max(chrono::Duration::days(7))
                .min(chrono::Duration::days(7));
            sub.expires_at = now + life;
            Some(sub.clone())
        })
        .ok_or_else(Self::not_found)
    }

    async fn update(
        &self,
        id: &str,
        filters: &[String],
        expires_in: Duration,
    ) -> Result<Subscription, ApiError> {
        self.injected("update")?;
        let now = self.clock.now();
        self.with(|s| {
            if let Some(f) = filters.iter().find(|f| s.refuse.contains(f)) {
                return Err(ApiError::InvalidFilters {
                    message: format!("Event filter [{f}] is not supported"),
                });
            }
            let sub = s
                .subs
                .iter_mut()
                .find(|x| x.id == id)
                .ok_or_else(Self::not_found)?;
            sub.event_filters = filters
                .iter()
                .map(|f| f.replace("account/~", "account/37439510"))
                .collect();
            sub.expires_at = now + chrono::Duration::from_std(expires_in).unwrap();
            Ok(sub.clone())
        })
    }

    async fn delete(&self, id: &str) -> Result<(), ApiError> {
        self.injected("delete")?;
        self.with(|s| {
            let before = s.subs.len();
            s.subs.retain(|x| x.id != id);
            if s.subs.len() == before {
                Err(Self::not_found())
            } else {
                Ok(())
            }
        })
    }
}

#[derive(Default)]
struct Tokens(Mutex<Vec<String>>);

impl TokenSink for Tokens {
    fn set(&self, account: &AccountId, subscription_id: &str, token: Secret, _now: DateTime<Utc>) {
        assert_eq!(account.as_str(), "acme");
        assert!(!subscription_id.is_empty());
        self.0.lock().unwrap().push(token.expose().to_owned());
    }

    fn retire(&self, account: &AccountId, subscription_id: &str, _now: DateTime<Utc>) {
        assert_eq!(account.as_str(), "acme");
        assert!(!subscription_id.is_empty());
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: SimClock,
    api: Arc<FakeApi>,
    tokens: Arc<Tokens>,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = ringrelay::config::StoreUrl::Sqlite(dir.path().join("k.db"));
    let store = store::open(&url, &OpenOptions::default()).await.unwrap();
    let clock = SimClock::new();
    let api = FakeApi::new(&clock);
    Env {
        _dir: dir,
        store,
        clock,
        api,
        tokens: Arc::new(Tokens::default()),
    }
}

/// Simulated time also moves with the wall clock, and the store keeps microseconds.
fn assert_close(a: DateTime<Utc>, b: DateTime<Utc>) {
    assert!((a - b).abs() < chrono::Duration::seconds(1), "{a} vs {b}");
}

fn acme() -> AccountId {
    AccountId::parse("acme").unwrap()
}

impl Env {
    fn ctx(&self, owner: &str) -> KeeperContext {
        KeeperContext {
            account: acme(),
            address: ADDRESS.to_owned(),
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
            tokens: self.tokens.clone(),
            owner: owner.to_owned(),
            clock: Arc::new(self.clock.clone()),
            lease: ringrelay::cluster::LeaseTiming {
                ttl: Duration::from_secs(900),
                renew: Duration::from_secs(300),
                clock: Arc::new(self.clock.clone()),
                share: None,
            },
        }
    }

    fn keeper(&self) -> Keeper {
        Keeper::new(self.ctx("replica-a"))
    }

    fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    fn now(&self) -> DateTime<Utc> {
        Clock::now(&self.clock)
    }

    async fn gaps(&self) -> Vec<ringrelay::store::Gap> {
        self.store.gaps(Some(&acme()), None).await.unwrap()
    }
}

#[tokio::test]
async fn a_fresh_account_gets_one_subscription_with_every_filter_and_a_token() {
    let e = env().await;
    let mut k = e.keeper();
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Covered, "{:?}", k.status());
    let subs = e.api.with(|s| s.subs.clone());
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].event_filters.len(), 4);
    assert_eq!(subs[0].address.as_deref(), Some(ADDRESS));
    let record = e.store.subscription(&acme()).await.unwrap().unwrap();
    assert_eq!(record.id, subs[0].id);
    let tokens = e.tokens.0.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    assert_eq!(record.verification_token.unwrap().expose(), tokens[0]);
    assert!(e.gaps().await.is_empty(), "a first create misses nothing");
    // The next wake is the reconcile interval, not the renewal a week away.
    assert_close(out.next_wake, e.now() + chrono::Duration::seconds(300));
    // A second reconcile changes nothing.
    k.step(Trigger::Reconcile).await;
    assert_eq!(e.api.count("create"), 1);
    assert_eq!(e.api.count("delete"), 0);
}

#[tokio::test]
async fn duplicates_and_non_active_ones_of_ours_are_deleted_and_others_never_touched() {
    let e = env().await;
    let all = [SESSIONS, VOICEMAIL, CALL_LOG, REMINDER];
    let old = e.api.add(ADDRESS, &all, Duration::from_secs(7200));
    let newest = e.api.add(ADDRESS, &all, Duration::from_secs(60));
    let suspended = e.api.add(ADDRESS, &all, Duration::from_secs(30));
    e.api
        .with(|s| s.subs[2].status = SubscriptionStatus::Suspended);
    let stale_filters = e.api.add(ADDRESS, &[SESSIONS], Duration::from_secs(10));
    let foreign = e
        .api
        .add("https://other.example/hook", &all, Duration::from_secs(5));
    let mut k = e.keeper();
    assert_eq!(k.start().await.state, CoverageState::Covered);
    // Their tokens are unknown (RingCentral never echoes them): one fresh subscription
    // replaces them all.
    let ids = e.api.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], foreign);
    for gone in [&old, &newest, &suspended, &stale_filters] {
        assert!(!ids.contains(gone));
    }
    assert_eq!(e.api.count("create"), 1);
    assert_eq!(k.status().subscription.as_ref().unwrap().id, ids[1]);
    // Next time, the one we know is kept and a newer stray of ours is deleted.
    let stray = e.api.add(ADDRESS, &all, Duration::ZERO);
    e.advance(Duration::from_secs(1));
    k.step(Trigger::Reconcile).await;
    assert_eq!(e.api.ids(), ids, "stray {stray} deleted");
    assert_eq!(e.api.count("create"), 1);
}

#[tokio::test]
async fn a_blacklisted_subscription_is_recreated_and_the_gap_has_its_cause() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    let first = e.api.ids()[0].clone();
    let last_event = e.now();
    k.note_event(last_event);
    e.advance(Duration::from_secs(120));
    let blacklisted_at = e.now();
    e.api.with(|s| {
        s.subs[0].status = SubscriptionStatus::Blacklisted;
        s.subs[0].blacklisted = Some(Blacklisted {
            at: Some(blacklisted_at),
            reason: "Webhook responses with code: [404], reason: [Not Found]".into(),
        });
    });
    e.advance(Duration::from_secs(300));
    let out = k.step(Trigger::Timer).await;
    assert_eq!(out.state, CoverageState::Covered);
    let ids = e.api.ids();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], first);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::Blacklisted);
    assert_close(gaps[0].from, last_event);
    assert_close(gaps[0].until.unwrap(), e.now());
    assert_eq!(
        e.tokens.0.lock().unwrap().len(),
        2,
        "a fresh token per subscription"
    );
}

#[tokio::test]
async fn a_week_long_subscription_stays_active_for_sixty_days() {
    let e = env().await;
    let mut ctx = e.ctx("replica-a");
    ctx.reconcile_interval = Duration::from_secs(6 * 3600);
    let mut k = Keeper::new(ctx);
    k.start().await;
    let id = e.api.ids()[0].clone();
    for _ in 0..(60 * 4) {
        e.advance(Duration::from_secs(6 * 3600));
        let out = k.step(Trigger::Timer).await;
        assert_eq!(out.state, CoverageState::Covered);
    }
    assert_eq!(e.api.ids(), vec![id]);
    assert_eq!(e.api.count("create"), 1);
    let renewals = e.api.count("renew");
    assert!((12..=20).contains(&renewals), "renewed {renewals} times");
    assert!(e.gaps().await.is_empty());
}

#[tokio::test]
async fn a_reminder_renews_at_once() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    let before = k.status().subscription.clone().unwrap().expires_at;
    e.advance(Duration::from_secs(3600));
    k.step(Trigger::Reminder).await;
    assert_eq!(e.api.count("renew"), 1);
    assert!(k.status().subscription.clone().unwrap().expires_at > before);
}

#[tokio::test]
async fn a_renewal_answered_404_recreates_and_records_the_failed_renewal() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    e.advance(WEEK - WEEK / 4);
    e.api
        .with(|s| s.fail.push_back(("renew", FakeApi::not_found())));
    let out = k.step(Trigger::Timer).await;
    assert_eq!(out.state, CoverageState::Covered);
    assert_eq!(e.api.count("create"), 2);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::RenewalFailed);
    assert!(gaps[0].until.is_some());
}

#[tokio::test]
async fn sub_505_with_our_strays_deletes_them_oldest_first_and_retries() {
    let e = env().await;
    e.api.with(|s| s.limit = 3);
    e.api.add(
        "https://other.example/a",
        &[SESSIONS],
        Duration::from_secs(10),
    );
    e.api.add(
        "https://other.example/b",
        &[SESSIONS],
        Duration::from_secs(10),
    );
    let stray = e.api.add(ADDRESS, &[SESSIONS], Duration::from_secs(10));
    e.api.with(|s| s.hidden_once = vec![stray.clone()]);
    let mut k = e.keeper();
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Covered, "{:?}", k.status());
    assert!(!e.api.ids().contains(&stray));
    assert_eq!(e.api.ids().len(), 3);
}

#[tokio::test]
async fn sub_505_with_foreign_subscriptions_is_a_clear_error_retried_slowly() {
    let e = env().await;
    e.api.with(|s| s.limit = 2);
    e.api.add(
        "https://other.example/a",
        &[SESSIONS],
        Duration::from_secs(10),
    );
    e.api.add(
        "https://other.example/b",
        &[SESSIONS],
        Duration::from_secs(10),
    );
    let mut k = e.keeper();
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Uncovered);
    let err = k.status().last_error.clone().unwrap();
    assert!(
        err.contains("2 subscriptions that are not ringrelay's"),
        "{err}"
    );
    assert_eq!(
        e.api.ids().len(),
        2,
        "others' subscriptions are never touched"
    );
    assert!(out.next_wake > e.now());
    assert_eq!(k.status().failures, 1);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::CreatedLate);
    assert!(gaps[0].until.is_none());
}

#[tokio::test]
async fn a_disabled_filter_is_recorded_shown_and_dropped_from_the_next_create() {
    let e = env().await;
    e.api.with(|s| s.disable = vec![CALL_LOG.to_owned()]);
    let mut k = e.keeper();
    assert_eq!(k.start().await.state, CoverageState::Covered);
    let refused = &k.status().refused_filters;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].filter, CALL_LOG);
    let lines = k.status().explain(e.now()).join("\n");
    assert!(
        lines.contains("call-log sync covers completed calls"),
        "{lines}"
    );
    let record = e.store.subscription(&acme()).await.unwrap().unwrap();
    assert_eq!(record.disabled_filters.len(), 1);
    // The kept subscription still matches (the refused filter is not "changed filters").
    k.step(Trigger::Reconcile).await;
    assert_eq!(e.api.count("create"), 1);
    // A recreate leaves it out.
    e.api.with(|s| s.subs.clear());
    k.step(Trigger::Reconcile).await;
    let filters = e.api.with(|s| s.subs[0].event_filters.clone());
    assert_eq!(filters.len(), 3);
    assert!(!filters.iter().any(|f| f.contains("call-log")));
}

#[tokio::test]
async fn sub_508_drops_the_named_filter_and_subscribes_without_it() {
    let e = env().await;
    e.api.with(|s| s.refuse = vec![CALL_LOG.to_owned()]);
    let mut k = e.keeper();
    assert_eq!(k.start().await.state, CoverageState::Covered);
    assert_eq!(e.api.count("create"), 2);
    assert_eq!(k.status().refused_filters[0].filter, CALL_LOG);
    assert!(k.status().refused_filters[0].reason.starts_with("SUB-508"));
}

#[tokio::test]
async fn a_handshake_failure_is_explained_and_retried_with_backoff() {
    let e = env().await;
    e.api.with(|s| {
        s.fail.push_back((
            "create",
            ApiError::WebhookValidationFailed {
                code: "SUB-520".into(),
                message: "WebHook did not respond within 3000 ms".into(),
            },
        ));
    });
    let mut k = e.keeper();
    let out = k.start().await;
    assert_eq!(out.state, CoverageState::Uncovered);
    let err = k.status().last_error.clone().unwrap();
    assert!(
        err.contains(&format!("RingCentral could not validate {ADDRESS}")),
        "{err}"
    );
    assert!(err.contains("reachable from the internet"), "{err}");
    let wait = out.next_wake - e.now();
    assert!(
        wait <= chrono::Duration::seconds(5) && wait > chrono::Duration::zero(),
        "{wait}"
    );
    assert!(
        k.status()
            .explain(e.now())
            .iter()
            .any(|l| l.contains("retrying in"))
    );
    e.advance(Duration::from_secs(5));
    assert_eq!(k.step(Trigger::Timer).await.state, CoverageState::Covered);
    assert!(k.status().last_error.is_none());
    assert_eq!(k.status().failures, 0);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1);
    assert_close(gaps[0].until.unwrap(), e.now());
}

#[tokio::test]
async fn transient_failures_back_off_below_the_reconcile_interval() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    let server = || ApiError::Server {
        status: 503,
        code: String::new(),
    };
    e.api.with(|s| {
        s.fail.push_back(("list", server()));
        s.fail.push_back(("list", server()));
    });
    let first = k.step(Trigger::Reconcile).await;
    assert_eq!(
        first.state,
        CoverageState::Covered,
        "a failed list does not uncover"
    );
    let second = k.step(Trigger::Reconcile).await;
    assert_eq!(k.status().failures, 2);
    assert!(second.next_wake - e.now() <= chrono::Duration::seconds(10));
    assert!(first.next_wake - e.now() <= chrono::Duration::seconds(5));
    k.step(Trigger::Reconcile).await;
    assert_eq!(k.status().failures, 0);
    assert!(e.gaps().await.is_empty());
}

#[tokio::test]
async fn a_restart_after_two_hours_down_records_a_two_hour_gap() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    e.advance(Duration::from_secs(60));
    let stopped = e.now();
    k.shutdown().await.unwrap();
    e.advance(Duration::from_secs(2 * 3600));
    let mut k2 = e.keeper();
    assert_eq!(k2.start().await.state, CoverageState::Covered);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::Downtime);
    assert_close(gaps[0].from, stopped);
    assert_close(gaps[0].until.unwrap(), e.now());
    assert_close(
        gaps[0].from + chrono::Duration::hours(2),
        gaps[0].until.unwrap(),
    );
    assert_eq!(
        e.api.count("create"),
        1,
        "the subscription survived the restart"
    );
    // The remembered token was handed to the receiver again.
    let tokens = e.tokens.0.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
}

#[tokio::test]
async fn one_keeper_per_account_across_replicas() {
    let e = env().await;
    let mut a = Keeper::new(e.ctx("replica-a"));
    let mut b = Keeper::new(e.ctx("replica-b"));
    assert_eq!(a.start().await.state, CoverageState::Covered);
    let calls = e.api.with(|s| s.calls.len());
    assert!(matches!(
        b.start().await.state,
        CoverageState::Standby { .. }
    ));
    assert_eq!(
        e.api.with(|s| s.calls.len()),
        calls,
        "a standby makes no call"
    );
    a.shutdown().await.unwrap();
    assert_eq!(b.step(Trigger::Timer).await.state, CoverageState::Covered);
    assert_eq!(e.api.count("create"), 1);
}

#[tokio::test]
async fn a_keeper_whose_lease_expired_and_was_taken_stands_down() {
    let e = env().await;
    let mut a = Keeper::new(e.ctx("replica-a"));
    a.start().await;
    // a stalls past its lease; b takes over.
    e.advance(Duration::from_secs(3 * 300 + 1));
    let mut b = Keeper::new(e.ctx("replica-b"));
    assert_eq!(b.start().await.state, CoverageState::Covered);
    let calls = e.api.with(|s| s.calls.len());
    assert!(matches!(
        a.step(Trigger::Reconcile).await.state,
        CoverageState::Standby { .. }
    ));
    assert_eq!(e.api.with(|s| s.calls.len()), calls);
}

#[tokio::test]
async fn silence_reads_the_subscription_and_a_vanished_one_is_a_gap_from_the_last_event() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    let last = e.now();
    k.note_event(last);
    e.api.with(|s| s.subs.clear());
    e.advance(Duration::from_secs(1801));
    let out = k.step(Trigger::Timer).await;
    assert_eq!(out.state, CoverageState::Covered);
    assert_eq!(e.api.count("get"), 1);
    assert_eq!(e.api.count("create"), 2);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::Expired);
    assert_close(gaps[0].from, last);
    // Checked once per silence, not every step.
    k.step(Trigger::Timer).await;
    assert_eq!(e.api.count("get"), 1);
}

#[tokio::test]
async fn the_task_answers_commands_and_releases_its_lease_on_shutdown() {
    let e = env().await;
    let mut ctx = e.ctx("replica-a");
    ctx.clock = Arc::new(ringrelay::ringcentral::SystemClock);
    let handle = spawn(ctx);
    let mut watch = handle.watch();
    tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|s| s.state == CoverageState::Covered),
    )
    .await
    .expect("covered in time")
    .unwrap();
    assert!(handle.send(Command::Reminder));
    tokio::time::timeout(Duration::from_secs(10), async {
        while e.api.count("renew") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("renewed in time");
    handle.shutdown().await;
    let lease = e
        .store
        .acquire_lease(
            "keeper:acme",
            "replica-b",
            Utc::now(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(lease.is_some(), "the lease was released");
}

#[tokio::test]
async fn the_receiver_registry_learns_the_subscription_and_its_token_and_strays_are_reconciled() {
    use ringrelay::receiver::{StrayReport, TokenCheck, TokenRegistry};
    let e = env().await;
    let registry = TokenRegistry::new(Duration::from_secs(600));
    let mut ctx = e.ctx("replica-a");
    ctx.tokens = Arc::new(registry.clone());
    ctx.clock = Arc::new(ringrelay::ringcentral::SystemClock);
    let handle = spawn(ctx);
    let mut watch = handle.watch();
    tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|s| s.state == CoverageState::Covered),
    )
    .await
    .expect("covered in time")
    .unwrap();
    let id = e.api.ids()[0].clone();
    assert_eq!(registry.current_subscription(&acme()), Some(id.clone()));
    let record = e.store.subscription(&acme()).await.unwrap().unwrap();
    let token = record.verification_token.unwrap();
    assert_eq!(
        registry.check(&acme(), Some(token.expose()), Utc::now()),
        TokenCheck::Valid
    );
    // A stray of ours appears; its first notification makes the keeper reconcile.
    let stray = e.api.add(ADDRESS, &[SESSIONS], Duration::from_secs(1));
    assert!(handle.send(Command::Stray(StrayReport {
        account: acme(),
        subscription_id: stray.clone(),
        received_at: Utc::now(),
    })));
    tokio::time::timeout(Duration::from_secs(10), async {
        while e.api.ids().contains(&stray) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("stray deleted in time");
    assert_eq!(e.api.ids(), vec![id]);
    handle.shutdown().await;
}

#[tokio::test]
async fn the_context_comes_from_the_settings() {
    let e = env().await;
    let toml = r#"
[server]
public_url = "https://relay.example/"

[[accounts]]
id = "acme"
client_id = "cid"
client_secret = "s"
jwt = "j"
"#;
    let settings = ringrelay::config::load(toml, &std::collections::HashMap::new()).unwrap();
    let ctx = KeeperContext::new(
        &settings,
        &settings.accounts[0],
        e.api.clone(),
        Arc::clone(&e.store),
        e.tokens.clone(),
        "replica-a",
    );
    assert_eq!(ctx.address, ADDRESS);
    assert_eq!(
        ctx.event_filters.len(),
        settings.accounts[0].event_filters.len() + 1
    );
    assert!(
        ctx.event_filters
            .last()
            .unwrap()
            .starts_with("/restapi/v1.0/subscription/~?")
    );
    assert_eq!(ctx.reconcile_interval, settings.keeper.reconcile_interval);
    assert!(ctx.start_spread <= Duration::from_secs(30));
    assert!(ctx.renew_before < ctx.expires_in);
}

#[tokio::test]
async fn a_subscription_that_expires_while_ringcentral_is_unreachable_is_a_gap_from_its_expiry() {
    let e = env().await;
    let mut k = e.keeper();
    k.start().await;
    let expires_at = k.status().subscription.clone().unwrap().expires_at;
    e.advance(WEEK + Duration::from_secs(60));
    e.api.with(|s| {
        s.fail
            .push_back(("list", ApiError::Transport("connection refused".into())));
    });
    let out = k.step(Trigger::Timer).await;
    assert_eq!(out.state, CoverageState::Uncovered);
    let gaps = e.gaps().await;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::Expired);
    assert_close(gaps[0].from, expires_at);
    assert!(
        k.status()
            .last_error
            .clone()
            .unwrap()
            .contains("could not be reached")
    );
    assert_eq!(k.step(Trigger::Timer).await.state, CoverageState::Covered);
    assert!(e.gaps().await[0].until.is_some());
}

#[tokio::test]
async fn another_watch_maps_into_the_covered_extensions_a_keeper_follows() {
    #[derive(Clone)]
    struct Coverage {
        covered: Vec<(String, bool)>,
    }
    let ids = |c: &Coverage| -> Option<Vec<String>> {
        Some(
            c.covered
                .iter()
                .filter(|(_, on)| *on)
                .map(|(id, _)| id.clone())
                .collect(),
        )
    };
    let (tx, rx) = tokio::sync::watch::channel(Coverage {
        covered: vec![("101".into(), true), ("102".into(), false)],
    });
    let (mut mapped, join) = ringrelay::keeper::map_extensions(rx, ids);
    assert_eq!(*mapped.borrow_and_update(), Some(vec!["101".to_owned()]));
    tx.send_replace(Coverage {
        covered: vec![("101".into(), true), ("102".into(), true)],
    });
    tokio::time::timeout(Duration::from_secs(5), mapped.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *mapped.borrow_and_update(),
        Some(vec!["101".to_owned(), "102".to_owned()])
    );
    // A change that maps to the same ids wakes nobody.
    tx.send_replace(Coverage {
        covered: vec![
            ("101".into(), true),
            ("102".into(), true),
            ("103".into(), false),
        ],
    });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(!mapped.has_changed().unwrap());
    // The source gone: the forwarder ends, the last ids stay.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapped.borrow().as_ref().map(Vec::len), Some(2));
}

#[tokio::test]
async fn an_extension_filter_refused_on_put_is_dropped_and_a_vanished_one_is_recreated() {
    let e = env().await;
    let vm = |ext: &str| format!("/restapi/v1.0/account/~/extension/{ext}/voicemail");
    let exts: Vec<String> = (101..106).map(|i| i.to_string()).collect();
    let (tx, rx) = tokio::sync::watch::channel(Some(exts.clone()));
    let mut ctx = e.ctx("replica-a").with_extensions(rx);
    ctx.max_filters_per_subscription = 6;
    let mut k = Keeper::new(ctx);
    assert_eq!(k.start().await.state, CoverageState::Covered);
    // Sessions, call log, reminder + 3 extensions; then the reminder + 2.
    let subs = e.api.with(|s| s.subs.clone());
    assert_eq!(subs.len(), 2);
    assert!(
        subs.iter()
            .all(|s| s.event_filters.iter().any(|f| f == REMINDER))
    );
    assert!(
        !subs[0]
            .event_filters
            .iter()
            .any(|f| f.ends_with("extension/~/voicemail")),
        "the user's own voicemail filter gives way to the extensions' ones"
    );
    assert_eq!(e.api.count("create"), 2);

    // 106 is refused (SUB-508) by the PUT that adds it: dropped, the PUT retried.
    e.api.with(|s| s.refuse = vec![vm("106")]);
    let mut more = exts.clone();
    more.push("106".into());
    tx.send_replace(Some(more));
    assert_eq!(
        k.step(Trigger::Reconcile).await.state,
        CoverageState::Covered
    );
    assert_eq!(e.api.count("update"), 2);
    let status = k.status().clone();
    assert!(
        status
            .refused_filters
            .iter()
            .any(|r| r.filter == vm("106") && r.reason.starts_with("SUB-508")),
        "{:?}",
        status.refused_filters
    );
    let ext = status.extensions.unwrap();
    assert_eq!((ext.wanted, ext.covered, ext.subscriptions), (6, 5, 2));
    // Next time it is not asked for again.
    k.step(Trigger::Reconcile).await;
    assert_eq!(e.api.count("update"), 2);
    let ext = k.status().extensions.clone().unwrap();
    assert_eq!((ext.wanted, ext.covered), (5, 5));

    // The second one vanishes: recreated with the same extensions, and a gap.
    let second = e.api.with(|s| s.subs[1].clone());
    e.api.with(|s| s.subs.retain(|x| x.id != second.id));
    assert_eq!(
        k.step(Trigger::Reconcile).await.state,
        CoverageState::Covered
    );
    let subs = e.api.with(|s| s.subs.clone());
    assert_eq!(subs.len(), 2);
    assert_ne!(subs[1].id, second.id);
    assert_eq!(subs[1].event_filters, second.event_filters);
    assert_eq!(e.gaps().await.len(), 1);
    assert_eq!(e.gaps().await[0].cause, GapCause::Expired);
}

#[tokio::test]
async fn discovery_coverage_maps_to_unknown_own_voicemail_or_the_covered_ids() {
    use ringrelay::config::Scope;
    use ringrelay::keeper::extensions::{Coverage, EffectiveScope};
    use ringrelay::keeper::{follow_coverage, voicemail_extensions};
    let initial = Coverage::initial(Scope::Company);
    assert_eq!(voicemail_extensions(&initial), None, "not known yet");
    let mut company = initial.clone();
    company.refreshed_at = Some(Utc::now());
    company.effective = EffectiveScope::Company;
    company.extension_ids = vec!["101".into(), "102".into()];
    assert_eq!(
        voicemail_extensions(&company),
        Some(vec!["101".to_owned(), "102".to_owned()])
    );
    let mut own = company.clone();
    own.effective = EffectiveScope::SelfOnly;
    own.extension_ids = vec!["101".into()];
    assert_eq!(
        voicemail_extensions(&own),
        Some(Vec::new()),
        "the JWT user only: the configured extension/~/voicemail filter"
    );
    let (tx, rx) = tokio::sync::watch::channel(initial);
    let (mut followed, join) = follow_coverage(rx);
    assert_eq!(*followed.borrow_and_update(), None);
    tx.send_replace(company);
    tokio::time::timeout(Duration::from_secs(5), followed.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(followed.borrow().as_ref().map(Vec::len), Some(2));
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), join)
        .await
        .unwrap()
        .unwrap();
}
