//! Scale-out (issue 11): several ringrelay replicas on one PostgreSQL, against the
//! simulator. Each replica is a whole `Application` on its own runtime and port, behind a
//! round-robin balancer that RingCentral (the simulator) posts to.
//!
//! - thirty accounts spread over three replicas, one subscription each, each renewal made
//!   once; notifications spread over all three receivers, each activity delivered once and
//!   in order per call; one token request per account per refresh period;
//! - a replica killed abruptly: its accounts and the processor are taken over within the
//!   lease time + 1 s, the downtime is a gap that is backfilled, nothing is recreated;
//! - fencing: a keeper, sync and processor paused past their lease cannot act;
//! - tokens: three replicas using one account call the token endpoint once per period.
//!
//! Postgres only: skipped without `RINGRELAY_TEST_POSTGRES_URL`; each test has its own
//! schema.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ringrelay::account::AccountId;
use ringrelay::admin::{AdminSource, StoreAdminSource, render};
use ringrelay::cluster::{self, HeldLease, LeaseTiming, StoreTokens};
use ringrelay::config::{self, Settings, StoreUrl};
use ringrelay::keeper::task::Trigger;
use ringrelay::keeper::{CoverageState, Keeper, KeeperContext, SubscriptionApi, TokenSink};
use ringrelay::pipeline::process::Processor;
use ringrelay::pipeline::route_all;
use ringrelay::pipeline::sync::{AccountSync, SyncError};
use ringrelay::receiver::TokenRegistry;
use ringrelay::ringcentral::governor::Priority;
use ringrelay::ringcentral::{ClientSettings, RingCentral, SharedTokens};
use ringrelay::store::{
    self, BackfillState, DeliveryFilter, DeliveryState, GapCause, NewNotification, OpenOptions,
    Store,
};
use ringrelay_sim::{CallScenario, RateLimits, Sim, SimAccount, SimClock, SimConfig, SimHandle};

#[path = "support/cluster.rs"]
mod support;
use support::{Balancer, Collector, PgSchema, Replica, SimTime};

#[path = "support/e2e.rs"]
#[allow(dead_code)]
mod e2e;
use e2e::wait_for;

const ACCOUNTS: usize = 30;
const LIMIT: Duration = Duration::from_secs(60);
const LEASE_TTL: Duration = Duration::from_secs(2);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn account_id(n: usize) -> AccountId {
    AccountId::parse(&format!("acct-{n}")).expect("slug")
}

/// One config for every replica: the balancer is the public URL, leases are short.
fn settings(sim: &SimHandle, accounts: usize, db: &str, public: &str, sink: &str) -> Settings {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{public}"
[store]
url = "{db}"
[keeper]
reconcile_interval = "2s"
[sync]
interval = "1h"
[cluster]
lease_ttl = "2s"
lease_renew = "250ms"
[[sinks]]
name = "crm"
type = "webhook"
url = "{sink}"
secret = "{SECRET}"
allow_private = true
retry_schedule = ["1s"]
"#
    );
    for (n, account) in sim.accounts().iter().take(accounts).enumerate() {
        let _ = write!(
            text,
            r#"
[[accounts]]
id = "acct-{n}"
server = "{server}"
client_id = "{client_id}"
client_secret = "{client_secret}"
jwt = "{jwt}"
reminder_interval = ""
"#,
            server = sim.base_url(),
            client_id = sim.config().client_id,
            client_secret = sim.config().client_secret,
            jwt = account.jwt,
        );
    }
    config::load(&text, &HashMap::new()).expect("config")
}

async fn open(url: &str) -> Arc<dyn Store> {
    store::open(&StoreUrl::Postgres(url.to_owned()), &OpenOptions::default())
        .await
        .expect("open postgres")
}

async fn sim_with(accounts: usize) -> SimHandle {
    Sim::start(
        SimConfig::default()
            .with_rate_limits(RateLimits::default())
            .with_accounts(
                (0..accounts)
                    .map(|n| SimAccount::generated(u32::try_from(n).unwrap(), 4))
                    .collect(),
            ),
    )
    .await
    .expect("sim")
}

/// Polls `check` (an async condition) every 100 ms until it holds; panics after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..(limit.as_millis() / 100).max(1) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// The live subscriptions by address: the test's "exactly one per account".
fn subscriptions_by_address(sim: &SimHandle) -> BTreeMap<String, Vec<String>> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in sim.subscriptions() {
        if s["status"] == "Active" {
            by.entry(
                s["deliveryMode"]["address"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
            .or_default()
            .push(s["id"].as_str().unwrap_or("").to_owned());
        }
    }
    by
}

/// Renewals the simulator answered, per subscription id.
fn renewals(sim: &SimHandle) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in sim.requests() {
        if r.method == "POST" && r.path.ends_with("/renew") && r.status == 200 {
            let id = r
                .path
                .trim_end_matches("/renew")
                .rsplit('/')
                .next()
                .unwrap_or("");
            *out.entry(id.to_owned()).or_default() += 1;
        }
    }
    out
}

/// Everything received is processed and every `crm` delivery delivered and received.
async fn settled(store: &dyn Store, sink: &Collector) -> bool {
    let Ok(stats) = store.inbox_stats().await else {
        return false;
    };
    let position = store
        .cursor(None, ringrelay::store::PROCESSOR_CURSOR)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let Ok(counts) = store.delivery_counts().await else {
        return false;
    };
    let delivered: u64 = counts
        .iter()
        .filter(|c| c.sink == "crm" && c.state == DeliveryState::Delivered)
        .map(|c| c.count)
        .sum();
    let open = counts
        .iter()
        .any(|c| c.sink == "crm" && c.state != DeliveryState::Delivered);
    position >= stats.max_seq && !open && sink.received().len() as u64 == delivered
}

/// Each activity reached the sink exactly once, and each call's activities arrived in the
/// order they were stored. Returns how many were checked.
async fn delivered_once_in_order(store: &dyn Store, sink: &Collector) -> usize {
    let deliveries = store
        .list_deliveries(&DeliveryFilter {
            sink: Some("crm".into()),
            limit: 100_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("deliveries");
    let received = sink.received();
    let mut seen = HashSet::new();
    for (id, _) in &received {
        assert!(seen.insert(id.clone()), "activity {id} delivered twice");
    }
    let call_of: HashMap<String, String> = deliveries
        .iter()
        .map(|d| (d.activity_id.to_string(), d.call_key.clone()))
        .collect();
    let mut stored: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for d in &deliveries {
        assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
        assert!(
            seen.contains(&d.activity_id.to_string()),
            "{d:?} never arrived"
        );
        stored
            .entry(d.call_key.clone())
            .or_default()
            .push((d.id, d.activity_id.to_string()));
    }
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, _) in &received {
        let call = call_of.get(id).expect("every received activity is stored");
        arrived.entry(call.clone()).or_default().push(id.clone());
    }
    for (call, mut order) in stored {
        order.sort();
        let expected: Vec<String> = order.into_iter().map(|(_, id)| id).collect();
        assert_eq!(arrived.get(&call), Some(&expected), "order of call {call}");
    }
    received.len()
}

/// [`settled`], and still so a second later (call-log syncs a call's end triggers).
async fn until_settled(store: &Arc<dyn Store>, sink: &Collector, what: &str) {
    for _ in 0..2 {
        until(what, LIMIT, || {
            let (store, sink) = (store.clone(), sink.clone());
            async move { settled(store.as_ref(), &sink).await }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    until(what, LIMIT, || {
        let (store, sink) = (store.clone(), sink.clone());
        async move { settled(store.as_ref(), &sink).await }
    })
    .await;
}

async fn run_calls(sim: &SimHandle, scenario: CallScenario) {
    for account in sim.accounts() {
        sim.run_call(&account.id, scenario).await.expect("call");
    }
    sim.complete_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_thirty_accounts_and_take_over_from_one_that_dies() {
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let sim = sim_with(ACCOUNTS).await;
    let lb = Balancer::start().await;
    let sink = Collector::start().await;
    let store = open(&pg.url()).await;
    let settings = settings(&sim, ACCOUNTS, &pg.url(), &lb.url(), &sink.url());
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| Replica::start(id, settings.clone(), sim.clock()))
        .collect();
    for r in &replicas {
        lb.add(r.addr);
    }

    // Every account kept by exactly one replica, ten each, with exactly one subscription.
    until(
        "30 keepers spread over 3 replicas, and a processor",
        LIMIT,
        || {
            let store = store.clone();
            async move {
                cluster::ownership(store.as_ref(), Utc::now())
                    .await
                    .is_ok_and(|o| {
                        let mut per: HashMap<&str, usize> = HashMap::new();
                        for k in o.keepers.values().filter(|k| k.live) {
                            *per.entry(k.owner.as_str()).or_default() += 1;
                        }
                        o.processor.as_ref().is_some_and(|p| p.live)
                            && per.len() == 3
                            && per.values().all(|n| *n == ACCOUNTS / 3)
                    })
            }
        },
    )
    .await;
    wait_for("an Active subscription per account", LIMIT, || {
        subscriptions_by_address(&sim).len() == ACCOUNTS
    })
    .await;
    let subs = subscriptions_by_address(&sim);
    assert!(
        subs.values().all(|ids| ids.len() == 1),
        "one subscription per account: {subs:?}"
    );
    let owners = cluster::ownership(store.as_ref(), Utc::now())
        .await
        .expect("ownership");
    let holders: HashSet<&str> = owners.keepers.values().map(|k| k.owner.as_str()).collect();
    assert_eq!(
        holders.len(),
        3,
        "accounts spread over every replica: {owners:?}"
    );
    assert_eq!(
        sim.token_requests().len(),
        ACCOUNTS,
        "one JWT exchange per account across the cluster"
    );
    // `ringrelay status` (the admin source on the store) names each account's replica.
    let source = StoreAdminSource::new(store.clone(), Arc::new(settings.clone()));
    let report = source.status().await.expect("status");
    for a in &report.accounts {
        let k = a.keeper.as_ref().expect("every account is kept");
        assert!(["r1", "r2", "r3"].contains(&k.owner.as_str()), "{k:?}");
        assert!(k.live);
    }
    let processor = report
        .processor
        .as_ref()
        .expect("a processor")
        .owner
        .clone();
    let text = render::status_text(&report);
    assert!(text.contains("KEPT BY"), "{text}");
    assert!(text.contains(&format!("processor: {processor}")), "{text}");
    assert!(render::status_page(&report, &[]).contains("kept by replica"));

    // Load: notifications over all three receivers, each activity delivered once, in order.
    run_calls(&sim, CallScenario::InboundAnswered).await;
    run_calls(&sim, CallScenario::HoldResume).await;
    until_settled(&store, &sink, "the first load is delivered").await;
    assert!(delivered_once_in_order(store.as_ref(), &sink).await >= ACCOUNTS * 4);
    for r in &replicas {
        assert!(
            lb.served(r.addr) > 0,
            "replica {} received notifications",
            r.id
        );
    }

    // Renewal time: each subscription renewed once, by its keeper only; each token
    // refreshed once across the cluster.
    sim.advance(Duration::from_secs(5 * 86_400)).await;
    wait_for("every subscription renewed", LIMIT, || {
        renewals(&sim).len() == ACCOUNTS
    })
    .await;
    wait_for("every token refreshed", LIMIT, || {
        sim.token_requests().len() == 2 * ACCOUNTS
    })
    .await;
    // Two more reconcile rounds: nobody renews or refreshes again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let renewed = renewals(&sim);
    assert!(
        renewed.values().all(|n| *n == 1),
        "no duplicate renewals: {renewed:?}"
    );
    assert_eq!(sim.token_requests().len(), 2 * ACCOUNTS);
    assert!(sim.token_requests().iter().all(|t| t.status == 200));

    // The processor's replica dies abruptly.
    let owners = cluster::ownership(store.as_ref(), Utc::now())
        .await
        .expect("ownership");
    let victim = owners.processor.as_ref().expect("processor").owner.clone();
    let at = replicas
        .iter()
        .position(|r| r.id == victim)
        .expect("victim");
    let dead = replicas.remove(at);
    let dead_addr = dead.addr;
    let killed_at = sim.clock().now();
    dead.kill();
    let served_by_dead = lb.served(dead_addr);
    let before = cluster::ownership(store.as_ref(), Utc::now())
        .await
        .expect("ownership");
    let mut lost: BTreeMap<String, DateTime<Utc>> = before
        .keepers
        .iter()
        .filter(|(_, k)| k.owner == victim)
        .map(|(a, k)| (format!("keeper:{a}"), k.expires_at))
        .collect();
    lost.insert(
        cluster::PROCESSOR_LEASE.to_owned(),
        before.processor.as_ref().expect("processor").expires_at,
    );
    assert!(lost.len() >= 2, "the victim kept accounts: {lost:?}");
    // Watch each lost lease until another replica takes it; its first expiry minus the
    // TTL is when it was taken.
    let mut taken: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let ttl = chrono::Duration::from_std(LEASE_TTL).expect("ttl");
    for _ in 0..600 {
        for l in store.leases().await.expect("leases") {
            if lost.contains_key(&l.name) && l.owner != victim && !taken.contains_key(&l.name) {
                taken.insert(l.name.clone(), l.expires_at - ttl);
            }
        }
        if taken.len() == lost.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        taken.len(),
        lost.len(),
        "every lease of the dead replica taken over"
    );
    for (name, lapsed) in &lost {
        let delay = taken[name] - *lapsed;
        eprintln!(
            "{name}: taken {} ms after its lease lapsed",
            delay.num_milliseconds()
        );
        assert!(
            delay <= chrono::Duration::seconds(1),
            "{name} taken {delay} after the dead replica's lease lapsed"
        );
    }
    // Nothing was recreated; the downtime of its accounts is a gap, backfilled.
    assert_eq!(subscriptions_by_address(&sim), subs);
    let orphaned: Vec<AccountId> = before
        .keepers
        .iter()
        .filter(|(_, k)| k.owner == victim)
        .map(|(a, _)| a.clone())
        .collect();
    until("the dead replica's downtime backfilled", LIMIT, || {
        let (store, orphaned) = (store.clone(), orphaned.clone());
        async move {
            let mut all = true;
            for a in &orphaned {
                let gaps = store.gaps(Some(a), None).await.unwrap_or_default();
                all &= gaps.iter().any(|g| {
                    g.cause == GapCause::Downtime
                        && g.until.is_some_and(|u| u > killed_at)
                        && matches!(g.backfill, BackfillState::Done { .. })
                });
            }
            all
        }
    })
    .await;
    assert_eq!(
        sim.token_requests().len(),
        2 * ACCOUNTS,
        "the survivors use the stored tokens"
    );

    // More load after the takeover: still once each, in order.
    run_calls(&sim, CallScenario::InboundMissed).await;
    until_settled(&store, &sink, "the second load is delivered").await;
    assert!(delivered_once_in_order(store.as_ref(), &sink).await >= ACCOUNTS * 5);
    assert_eq!(lb.served(dead_addr), served_by_dead);
    let renewed = renewals(&sim);
    assert!(renewed.values().all(|n| *n == 1), "{renewed:?}");
    assert_eq!(sim.too_many_requests(), 0);

    for r in replicas {
        r.stop().await;
    }
    lb.stop();
    sink.stop();
    sim.shutdown().await;
    drop(store);
    pg.drop_schema().await;
}

/// A keeper context for `owner` on the simulator, with leases on `lease_clock`.
fn keeper_ctx(
    settings: &Settings,
    client: &RingCentral,
    store: &Arc<dyn Store>,
    owner: &str,
    timing: &LeaseTiming,
    sim: &SimHandle,
) -> KeeperContext {
    let api: Arc<dyn SubscriptionApi> = Arc::new(client.clone());
    let tokens: Arc<dyn TokenSink> = Arc::new(TokenRegistry::new(Duration::from_secs(600)));
    KeeperContext::new(
        settings,
        &settings.accounts[0],
        api,
        store.clone(),
        tokens,
        owner,
    )
    .with_clock(Arc::new(SimTime(sim.clock())))
    .with_lease_timing(timing.clone())
}

fn subscription_writes(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.contains("/subscription") && r.method != "GET")
        .count()
}

fn note(uuid: &str) -> NewNotification {
    NewNotification {
        account: account_id(0),
        subscription_id: None,
        uuid: uuid.into(),
        event: "/restapi/v1.0/account/~/extension/~/message-store".into(),
        timestamp: None,
        received_at: Utc::now(),
        body: format!(
            r#"{{"uuid":"{uuid}","event":"/restapi/v1.0/account/~/extension/~/message-store","body":{{}}}}"#
        )
        .into(),
        unknown_subscription: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_past_its_lease_cannot_act_for_what_it_lost() {
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let sim = sim_with(1).await;
    let echo = support::Echo::start().await;
    let settings = settings(&sim, 1, &pg.url(), &echo.url(), "http://127.0.0.1:9/hook");
    // Two replicas, each with its own connection pool; leases on a clock the test moves.
    let (store_a, store_b) = (open(&pg.url()).await, open(&pg.url()).await);
    let lease_clock = SimClock::new();
    let timing = LeaseTiming {
        ttl: Duration::from_secs(10),
        renew: Duration::from_secs(3),
        clock: Arc::new(SimTime(lease_clock.clone())),
        share: None,
    };
    let client = |_: &str| {
        RingCentral::with_clock(
            ClientSettings::from_account(&settings.accounts[0]),
            Arc::new(SimTime(sim.clock())),
        )
        .expect("client")
    };
    let mut a = Keeper::new(keeper_ctx(
        &settings,
        &client("a"),
        &store_a,
        "r1",
        &timing,
        &sim,
    ));
    assert_eq!(
        a.start().await.state,
        CoverageState::Covered,
        "{:?}",
        a.status()
    );
    let held = a
        .lease_watch()
        .borrow()
        .clone()
        .expect("r1 holds the lease");
    let sync_a = AccountSync::new(
        client("a"),
        store_a.clone(),
        route_all(vec![]),
        Duration::from_secs(60),
    )
    .with_lease(a.lease_watch(), timing.clock.clone());
    assert!(sync_a.holds_lease());

    // r1 freezes; its lease lapses, and the frozen sync stops acting at once.
    lease_clock.advance(Duration::from_secs(11));
    assert!(!sync_a.holds_lease());
    let mut b = Keeper::new(keeper_ctx(
        &settings,
        &client("b"),
        &store_b,
        "r2",
        &timing,
        &sim,
    ));
    assert_eq!(b.start().await.state, CoverageState::Covered);
    assert_eq!(
        subscriptions_by_address(&sim).len(),
        1,
        "r2 adopted r1's subscription"
    );
    let now_held = b.lease_watch().borrow().clone().expect("r2 took the lease");
    assert!(now_held.fence > held.fence);

    // r1 resumes: a forced renewal (a reminder) would write to RingCentral if it still
    // acted; it stands by instead, and neither its sync nor its processor write.
    let writes = subscription_writes(&sim);
    let out = a.step(Trigger::Reminder).await;
    assert!(
        matches!(out.state, CoverageState::Standby { .. }),
        "{out:?}"
    );
    assert!(a.lease_watch().borrow().is_none());
    assert_eq!(
        subscription_writes(&sim),
        writes,
        "r1 made no subscription call"
    );
    assert!(matches!(
        sync_a.call_log(Priority::Live).await,
        Err(SyncError::NotHeld)
    ));
    assert!(matches!(
        sync_a.voicemail(Priority::Live).await,
        Err(SyncError::NotHeld)
    ));

    // The processor: p1 works, freezes past its lease, p2 takes over; p1 resumed does not
    // move the cursor.
    let p1 = Processor::new(store_a.clone(), route_all(vec![])).with_lease(HeldLease::new(
        store_a.clone(),
        cluster::PROCESSOR_LEASE,
        "r1",
        timing.clone(),
    ));
    let p2 = Processor::new(store_b.clone(), route_all(vec![])).with_lease(HeldLease::new(
        store_b.clone(),
        cluster::PROCESSOR_LEASE,
        "r2",
        timing.clone(),
    ));
    store_a.append_inbox(note("n1")).await.expect("append");
    assert_eq!(p1.pass().await.expect("p1").rows, 1);
    assert!(p2.pass().await.expect("p2").standby, "p1 holds the lease");
    lease_clock.advance(Duration::from_secs(11));
    store_a.append_inbox(note("n2")).await.expect("append");
    assert_eq!(p2.pass().await.expect("p2 takes over").rows, 1);
    let position = p2.position().await.expect("position");
    store_a.append_inbox(note("n3")).await.expect("append");
    let stale = p1.pass().await.expect("p1 resumed");
    assert!(stale.standby && stale.rows == 0, "{stale:?}");
    assert_eq!(p1.position().await.expect("position"), position);
    assert_eq!(p2.pass().await.expect("p2").rows, 1);

    b.shutdown().await.expect("b");
    echo.stop();
    sim.shutdown().await;
    drop((store_a, store_b));
    pg.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_ask_for_an_accounts_token_once_per_refresh_period() {
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let sim = sim_with(1).await;
    let settings = settings(
        &sim,
        1,
        &pg.url(),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/hook",
    );
    let timing = LeaseTiming {
        ttl: Duration::from_secs(5),
        renew: Duration::from_secs(1),
        clock: Arc::new(ringrelay::ringcentral::SystemClock),
        share: None,
    };
    let mut clients = Vec::new();
    for owner in ["r1", "r2", "r3"] {
        let shared: Arc<dyn SharedTokens> = Arc::new(StoreTokens::new(
            open(&pg.url()).await,
            &settings.accounts[0],
            owner,
            timing.clone(),
        ));
        clients.push(
            RingCentral::with_shared_tokens(
                ClientSettings::from_account(&settings.accounts[0]),
                Arc::new(SimTime(sim.clock())),
                Some(shared),
            )
            .expect("client"),
        );
    }
    for period in 1..=4 {
        match period {
            1 => {}
            // Past expiry: the replicas without the lock wait for the stored result.
            4 => {
                sim.advance(Duration::from_secs(3600 + 60)).await;
            }
            // Into the refresh window (refreshed 5 minutes before expiry): the replicas
            // without the lock use the current token meanwhile.
            _ => {
                sim.advance(Duration::from_secs(3600 - 240)).await;
            }
        }
        // Every replica needs the token at once, twice.
        let calls = clients
            .iter()
            .flat_map(|c| [c.clone(), c.clone()])
            .map(|c| tokio::spawn(async move { c.list_subscriptions().await }));
        for call in calls {
            call.await.expect("join").expect("an authorized call");
        }
        assert_eq!(
            sim.token_requests().len(),
            period,
            "one token request in period {period}: {:?}",
            sim.token_requests()
        );
    }
    let grants: Vec<String> = sim
        .token_requests()
        .iter()
        .map(|t| t.grant_type.clone())
        .collect();
    assert_eq!(grants[0], ringrelay_sim::JWT_GRANT);
    assert!(
        grants[1..].iter().all(|g| g == "refresh_token"),
        "{grants:?}"
    );
    // A replica shutting down forgets its copy only: the others keep the token.
    clients[0].revoke().await.expect("revoke");
    clients[1].list_subscriptions().await.expect("still valid");
    assert_eq!(sim.token_requests().len(), 4);
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path.contains("/oauth/revoke")),
        "a shared token is not revoked"
    );
    sim.shutdown().await;
    pg.drop_schema().await;
}
