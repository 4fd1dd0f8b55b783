//! The RingCentral client against the real simulator (`ringrelay-sim`) on its simulated
//! clock: OAuth, the token holder's rules, subscriptions with a real validation handshake,
//! rate limits with the penalty rule (checked on the simulator's request log), and faults.

#[path = "support/sim_client.rs"]
mod sim_client;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use ringrelay::config::Secret;
use ringrelay::ringcentral::{
    ApiError, ClientSettings, CreateSubscription, RingCentral, SubscriptionStatus,
};
use ringrelay::ringcentral::{CallLogQuery, CallLogSync, MessageSync, Priority, VoicemailQuery};
use ringrelay_sim::{CallScenario, Fault, JWT_GRANT, RateLimits, Sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

fn settings(sim: &SimHandle) -> ClientSettings {
    sim_client::settings(sim)
}

fn client(sim: &SimHandle) -> RingCentral {
    RingCentral::with_clock(settings(sim), Arc::new(sim.clock())).unwrap()
}

async fn start(config: SimConfig) -> SimHandle {
    Sim::start(config).await.expect("simulator starts")
}

/// A loopback webhook endpoint that answers RingCentral's validation handshake.
struct Hook {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    async fn start() -> Self {
        let app = Router::new().route(
            "/hook",
            post(|headers: HeaderMap| async move {
                let mut out = HeaderMap::new();
                if let Some(v) = headers.get("validation-token") {
                    out.insert("validation-token", v.clone());
                }
                out.insert("content-type", "application/json".parse().unwrap());
                (out, "{}")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
                .unwrap();
        });
        Self { url, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("hook stops")
            .unwrap();
    }
}

const SUBS: &str = "/restapi/v1.0/subscription";

#[tokio::test]
async fn the_jwt_is_exchanged_with_the_simulator_and_the_token_is_reused() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    rc.authenticate().await.unwrap();
    rc.list_subscriptions().await.unwrap();
    rc.list_subscriptions().await.unwrap();
    let tokens = sim.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].grant_type, JWT_GRANT);
    assert_eq!(tokens[0].status, 200);
    assert!(rc.credential_expires_at().is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_callers_cause_one_token_request_on_the_simulator() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = rc.clone();
            tokio::spawn(async move { c.authenticate().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.token_requests().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_token_is_refreshed_before_expiry_and_a_dead_refresh_falls_back_to_the_jwt() {
    let sim = start(SimConfig::default().with_access_token_ttl(Duration::from_secs(600))).await;
    let rc = client(&sim);
    rc.list_subscriptions().await.unwrap();
    sim.clock().advance(Duration::from_secs(301));
    rc.list_subscriptions().await.unwrap();
    let grants: Vec<_> = sim
        .token_requests()
        .into_iter()
        .map(|t| t.grant_type)
        .collect();
    assert_eq!(grants, [JWT_GRANT, "refresh_token"]);

    // The refresh grant fails once; the client exchanges the JWT again.
    sim.add_fault(Fault::status("/restapi/oauth/token", 400, 1).with_code("OAU-211"));
    sim.clock().advance(Duration::from_secs(301));
    rc.list_subscriptions().await.unwrap();
    // The faulted refresh is answered by the simulator's fault gate (request log), the
    // JWT exchange after it by the token endpoint.
    let token_calls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/restapi/oauth/token"))
        .map(|r| r.status)
        .collect();
    assert_eq!(token_calls, [200, 200, 400, 200]);
    let grants: Vec<_> = sim
        .token_requests()
        .into_iter()
        .map(|t| t.grant_type)
        .collect();
    assert_eq!(
        grants.last().map(String::as_str),
        Some(JWT_GRANT),
        "{grants:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_401_from_the_simulator_triggers_one_reauthentication() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    rc.authenticate().await.unwrap();
    sim.add_fault(Fault::status(SUBS, 401, 1).with_code("OAU-128"));
    rc.list_subscriptions().await.unwrap();
    assert_eq!(sim.token_requests().len(), 2);

    sim.add_fault(Fault::status(SUBS, 401, 2).with_code("OAU-128"));
    let err = rc.list_subscriptions().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert_eq!(sim.token_requests().len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_a_clear_error() {
    let sim = start(SimConfig::default()).await;
    let mut s = settings(&sim);
    s.client_secret = Secret::new("wrong");
    let rc = RingCentral::with_clock(s, Arc::new(sim.clock())).unwrap();
    let err = rc.authenticate().await.unwrap_err();
    assert!(matches!(err, ApiError::AuthRejected { .. }), "{err:?}");
    assert_eq!(sim.token_requests().len(), 1);

    let mut s = settings(&sim);
    s.jwt = Secret::new("not-a-jwt");
    let rc = RingCentral::with_clock(s, Arc::new(sim.clock())).unwrap();
    assert!(matches!(
        rc.authenticate().await,
        Err(ApiError::AuthRejected { .. })
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    sim.add_fault(Fault::status(SUBS, 503, 1));
    rc.list_subscriptions().await.unwrap();
    sim.add_fault(Fault::status(SUBS, 500, 4).with_code("CMN-203"));
    let err = rc.list_subscriptions().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 500, .. }),
        "{err:?}"
    );
    let subs = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(SUBS))
        .count();
    assert_eq!(subs, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_are_respected_and_nothing_is_sent_during_a_penalty() {
    let limits = RateLimits {
        light: 3,
        ..RateLimits::default()
    };
    let sim = start(SimConfig::default().with_rate_limits(limits)).await;
    // The client believes the default 50/min until the headers say otherwise, so it may
    // hit the simulator's limit once; after that it must wait out the penalty.
    let rc = client(&sim);
    for _ in 0..8 {
        rc.list_subscriptions().await.unwrap();
    }
    let light: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(SUBS))
        .collect();
    for pair in light.windows(2).filter(|p| p[0].status == 429) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= chrono::Duration::seconds(30),
            "request {gap} after a 429"
        );
    }
    assert!(sim.too_many_requests() <= 1, "{}", sim.too_many_requests());
    assert_eq!(light.iter().filter(|r| r.status == 200).count(), 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn subscriptions_are_created_with_a_handshake_renewed_updated_and_deleted() {
    let sim = start(SimConfig::default()).await;
    let hook = Hook::start().await;
    let rc = client(&sim);
    let call_log = "/restapi/v1.0/account/~/extension/~/call-log".to_owned();
    let s = rc
        .create_subscription(&CreateSubscription {
            event_filters: vec![
                "/restapi/v1.0/account/~/telephony/sessions".into(),
                call_log.clone(),
            ],
            address: hook.url.clone(),
            expires_in: Duration::from_secs(86_400),
            verification_token: Some(Secret::new("vt")),
        })
        .await
        .unwrap();
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.address.as_deref(), Some(hook.url.as_str()));
    assert!(
        s.disabled_filters
            .iter()
            .any(|d| d.filter.contains("call-log")),
        "{:?}",
        s.disabled_filters
    );

    sim.clock().advance(Duration::from_secs(3600));
    let renewed = rc.renew_subscription(&s.id).await.unwrap();
    assert!(renewed.expires_at > s.expires_at);
    assert_eq!(rc.get_subscription(&s.id).await.unwrap().id, s.id);
    assert_eq!(rc.list_subscriptions().await.unwrap().len(), 1);
    let updated = rc
        .update_subscription(
            &s.id,
            &["/restapi/v1.0/account/~/telephony/sessions".into()],
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.event_filters.len(), 1);
    rc.delete_subscription(&s.id).await.unwrap();
    assert!(matches!(
        rc.get_subscription(&s.id).await,
        Err(ApiError::NotFound { .. })
    ));
    hook.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_filters_and_failed_handshakes_are_the_errors_callers_act_on() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    let hook = Hook::start().await;
    let bad_filter = rc
        .create_subscription(&CreateSubscription {
            event_filters: vec!["/restapi/v1.0/no/such/filter".into()],
            address: hook.url.clone(),
            expires_in: Duration::from_secs(3600),
            verification_token: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(bad_filter, ApiError::InvalidFilters { .. }),
        "{bad_filter:?}"
    );
    // Nobody listens on the address: the handshake fails.
    let dead = rc
        .create_subscription(&CreateSubscription {
            event_filters: vec!["/restapi/v1.0/account/~/telephony/sessions".into()],
            address: format!("{}-gone", hook.url),
            expires_in: Duration::from_secs(3600),
            verification_token: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(dead, ApiError::WebhookValidationFailed { .. }),
        "{dead:?}"
    );
    hook.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_429_from_the_simulator_is_waited_out_without_sending_during_the_penalty() {
    let limits = RateLimits {
        light: 2,
        ..RateLimits::default()
    };
    let sim = start(SimConfig::default().with_rate_limits(limits)).await;
    // A second replica of the same app and user spends the budget the first cannot see,
    // so the first runs into the simulator's 429.
    let other = client(&sim);
    other.list_subscriptions().await.unwrap();
    other.list_subscriptions().await.unwrap();
    let rc = client(&sim);
    rc.list_subscriptions().await.unwrap();

    let light: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(SUBS))
        .collect();
    let statuses: Vec<_> = light.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 429, 200],
        "one 429, then the retry succeeds"
    );
    let gap = light[3].at - light[2].at;
    assert!(
        gap >= chrono::Duration::seconds(60),
        "retried {gap} after the 429"
    );
    assert_eq!(sim.too_many_requests(), 1);
    sim.shutdown().await;
}

/// Runs `scenarios` on the simulator's first account and waits (simulated time) until
/// their call-log records are visible.
async fn run_calls(
    sim: &SimHandle,
    scenarios: &[CallScenario],
) -> Vec<ringrelay_sim::GeneratedCall> {
    let account = sim.accounts()[0].id.clone();
    let mut calls = Vec::new();
    for s in scenarios {
        calls.push(sim.run_call(&account, *s).await.unwrap());
        sim.complete_calls().await;
    }
    sim.advance(Duration::from_secs(60)).await;
    calls
}

#[tokio::test]
async fn the_call_log_is_read_page_by_page_and_call_log_sync_goes_from_fsync_to_isync() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    let from = sim.clock().now() - chrono::Duration::minutes(5);
    let calls = run_calls(
        &sim,
        &[
            CallScenario::InboundAnswered,
            CallScenario::OutboundAnswered,
            CallScenario::InboundMissed,
        ],
    )
    .await;
    let expected: usize = calls.iter().map(|c| c.call_log.len()).sum();

    let q = CallLogQuery {
        per_page: 1,
        priority: Priority::Backfill,
        ..CallLogQuery::account(from, None)
    };
    let records = rc.call_log(&q).await.unwrap();
    assert_eq!(records.len(), expected);
    for c in &calls {
        assert!(
            records
                .iter()
                .any(|r| r.telephony_session_id.as_deref() == Some(&c.telephony_session_id)),
            "{} missing",
            c.telephony_session_id
        );
    }
    let pages = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/call-log?") || r.path.ends_with("/call-log"))
        .count();
    assert_eq!(pages, expected, "one request per page of one record");

    let mut sync = CallLogSync {
        scope: ringrelay::ringcentral::CallLogScope::Account,
        sync_token: None,
        date_from: Some(from),
        record_count: 250,
        priority: Priority::Live,
    };
    let full = rc.call_log_sync(&sync).await.unwrap();
    assert!(full.full);
    assert_eq!(full.records.len(), expected);
    run_calls(&sim, &[CallScenario::HoldResume]).await;
    sync.sync_token = Some(full.sync_token.clone());
    let inc = rc.call_log_sync(&sync).await.unwrap();
    assert!(!inc.full);
    assert_eq!(inc.records.len(), 1, "only the new call");
    sim.shutdown().await;
}

#[tokio::test]
async fn voicemails_are_listed_and_message_sync_returns_new_ones_incrementally() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    let from = sim.clock().now() - chrono::Duration::minutes(5);
    let calls = run_calls(&sim, &[CallScenario::InboundVoicemail]).await;
    let vm = calls[0].voicemail.as_ref().expect("a voicemail");
    let list = rc
        .voicemails(&VoicemailQuery {
            extension_id: vm.extension_id.clone(),
            date_from: from,
            date_to: None,
            per_page: 100,
            priority: Priority::Live,
        })
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, vm.message_id.to_string());
    assert!(list[0].duration_s.is_some());

    let mut req = MessageSync {
        extension_id: vm.extension_id.clone(),
        sync_token: None,
        date_from: Some(from),
        record_count: 100,
        priority: Priority::Live,
    };
    let full = rc.message_sync(&req).await.unwrap();
    assert!(full.full);
    assert_eq!(full.records.len(), 1);
    req.sync_token = Some(full.sync_token);
    let inc = rc.message_sync(&req).await.unwrap();
    assert!(!inc.full);
    sim.shutdown().await;
}

/// More than 250 changes since the last sync: the simulator refuses the ISync (CLG-104, as
/// RingCentral does) and the client starts over with an FSync on its own.
#[tokio::test]
async fn an_isync_overflowing_250_changes_falls_back_to_fsync() {
    let sim = start(SimConfig::default()).await;
    let rc = client(&sim);
    let from = sim.clock().now() - chrono::Duration::minutes(5);
    let mut sync = CallLogSync {
        scope: ringrelay::ringcentral::CallLogScope::Account,
        sync_token: None,
        date_from: Some(from),
        record_count: 250,
        priority: Priority::Live,
    };
    let first = rc.call_log_sync(&sync).await.unwrap();
    assert!(first.full);
    let scenarios = vec![CallScenario::OutboundAnswered; 260];
    let calls = run_calls(&sim, &scenarios).await;
    let made: usize = calls.iter().map(|c| c.call_log.len()).sum();
    assert!(made > 250);
    sync.sync_token = Some(first.sync_token);
    let after = rc.call_log_sync(&sync).await.unwrap();
    assert!(after.full, "the client fell back to a full sync");
    assert!(!after.records.is_empty() && after.records.len() <= 250);
    let refused = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("call-log-sync") && r.status == 400)
        .count();
    assert_eq!(refused, 1, "one refused ISync, then the FSync");
    sim.shutdown().await;
}
