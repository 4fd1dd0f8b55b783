//! The RingCentral client against an in-test server that scripts exact answers (status,
//! headers, bodies from `fixtures/ringcentral/examples/`), on the simulator's clock so
//! rate-limit penalties and token expiry take no real time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::ringcentral::{
    ApiError, ApiGroup, CallLogQuery, CallLogScope, CallLogSync, ClientSettings,
    CreateSubscription, GovernorSettings, MessageSync, Priority, RetryPolicy, RingCentral,
    SubscriptionStatus, VoicemailQuery,
};
use ringrelay_sim::SimClock;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../fixtures/ringcentral/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture exists")
}

/// A canned answer.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok(body: impl Into<String>) -> Canned {
    answer(200, body)
}

fn answer(status: u16, body: impl Into<String>) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

/// One request the server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: String,
    body: String,
    at: DateTime<Utc>,
}

#[derive(Default)]
struct Script {
    queues: Mutex<HashMap<String, VecDeque<Canned>>>,
    seen: Mutex<Vec<Seen>>,
    tokens_issued: AtomicUsize,
    expires_in: AtomicUsize,
    token_delay_ms: AtomicUsize,
}

struct Server {
    url: String,
    script: Arc<Script>,
    clock: SimClock,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        let script = Arc::new(Script::default());
        script.expires_in.store(3600, Ordering::SeqCst);
        let clock = SimClock::new();
        let app = Router::new()
            .fallback(handle)
            .with_state((script.clone(), clock.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            url,
            script,
            clock,
            stop,
            handle,
        }
    }

    fn push(&self, path: &str, canned: Canned) {
        let mut q = self.script.queues.lock().unwrap();
        q.entry(path.to_owned()).or_default().push_back(canned);
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let seen = self.script.seen.lock().unwrap();
        seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    fn settings(&self) -> ClientSettings {
        ClientSettings {
            account: AccountId::parse("acme").unwrap(),
            server: self.url.parse().unwrap(),
            client_id: "client-id".into(),
            client_secret: Secret::new("client-secret-value"),
            jwt: Secret::new(JWT),
            request_timeout: Duration::from_secs(10),
            refresh_before: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            limits: GovernorSettings::default(),
        }
    }

    fn client(&self) -> RingCentral {
        RingCentral::with_clock(self.settings(), Arc::new(self.clock.clone())).unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("server stops")
            .unwrap();
    }
}

async fn handle(
    State((script, clock)): State<(Arc<Script>, SimClock)>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let seen = Seen {
        method,
        path: path.clone(),
        query,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: clock.now(),
    };
    script.seen.lock().unwrap().push(seen);
    let canned = script
        .queues
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let canned = match canned {
        Some(c) => c,
        None if path == "/restapi/oauth/token" => {
            let delay = script.token_delay_ms.load(Ordering::SeqCst) as u64;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let n = script.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
            ok(json!({
                "access_token": format!("tok-{n}"), "token_type": "bearer",
                "expires_in": script.expires_in.load(Ordering::SeqCst),
                "refresh_token": format!("ref-{n}"), "refresh_token_expires_in": 604799,
                "scope": "ReadCallLog", "owner_id": 256440016
            })
            .to_string())
        }
        None if path == "/restapi/oauth/revoke" => ok(""),
        None => answer(500, format!(r#"{{"message":"unscripted {path}"}}"#)),
    };
    let mut response = (
        StatusCode::from_u16(canned.status).unwrap(),
        [("content-type", "application/json")],
        canned.body,
    )
        .into_response();
    for (name, value) in canned.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn empty_list() -> Canned {
    ok(r#"{"uri":"x","records":[]}"#)
}

const SUBS: &str = "/restapi/v1.0/subscription";

#[tokio::test]
async fn the_jwt_is_exchanged_once_with_basic_auth_and_the_token_is_shared_by_clones() {
    let server = Server::start().await;
    server.push(SUBS, empty_list());
    server.push(SUBS, empty_list());
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    client.clone().list_subscriptions().await.unwrap();

    let tokens = server.seen("/restapi/oauth/token");
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].authorization.starts_with("Basic "));
    assert!(
        tokens[0]
            .body
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
    );
    assert!(tokens[0].body.contains("assertion=eyJ"));
    for call in server.seen(SUBS) {
        assert_eq!(call.authorization, "Bearer tok-1");
    }
    assert_eq!(
        client.credential_expires_at().unwrap().timestamp(),
        1_900_000_000
    );
    let debug = format!("{client:?}");
    assert!(
        !debug.contains("client-secret-value") && !debug.contains(JWT),
        "{debug}"
    );
    server.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_callers_cause_one_token_request() {
    let server = Server::start().await;
    server.script.token_delay_ms.store(100, Ordering::SeqCst);
    for _ in 0..50 {
        server.push(SUBS, empty_list());
    }
    let client = server.client();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.list_subscriptions().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.seen("/restapi/oauth/token").len(), 1);
    assert_eq!(server.seen(SUBS).len(), 50);
    server.stop().await;
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires_with_the_single_use_refresh_token() {
    let server = Server::start().await;
    server.script.expires_in.store(600, Ordering::SeqCst);
    for _ in 0..3 {
        server.push(SUBS, empty_list());
    }
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    client.list_subscriptions().await.unwrap();
    // 301 s later less than `refresh_before` (300 s) is left of the 600 s token.
    server.clock.advance(Duration::from_secs(301));
    client.list_subscriptions().await.unwrap();

    let tokens = server.seen("/restapi/oauth/token");
    assert_eq!(tokens.len(), 2);
    assert!(tokens[1].body.contains("grant_type=refresh_token"));
    assert!(tokens[1].body.contains("refresh_token=ref-1"));
    assert_eq!(server.seen(SUBS)[2].authorization, "Bearer tok-2");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_refresh_falls_back_to_a_new_jwt_exchange() {
    let server = Server::start().await;
    server.script.expires_in.store(600, Ordering::SeqCst);
    server.push(SUBS, empty_list());
    server.push(SUBS, empty_list());
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    server.clock.advance(Duration::from_secs(601));
    let tokens_before = server.seen("/restapi/oauth/token").len();
    assert_eq!(tokens_before, 1);
    // The refresh grant is refused; the default answer then serves the JWT exchange.
    server.push(
        "/restapi/oauth/token",
        answer(400, r#"{"error":"invalid_grant","errors":[{"errorCode":"OAU-211","message":"Token is revoked"}]}"#),
    );
    client.list_subscriptions().await.unwrap();

    let tokens = server.seen("/restapi/oauth/token");
    assert_eq!(tokens.len(), 3);
    assert!(tokens[1].body.contains("grant_type=refresh_token"));
    assert!(tokens[2].body.contains("jwt-bearer"));
    assert_eq!(server.seen(SUBS)[1].authorization, "Bearer tok-2");
    server.stop().await;
}

#[tokio::test]
async fn a_401_triggers_one_reauthentication_and_one_retry_not_a_loop() {
    let server = Server::start().await;
    let expired = r#"{"errorCode":"OAU-128","errors":[{"errorCode":"OAU-128","message":"Access token expired"}]}"#;
    server.push(SUBS, answer(401, expired));
    server.push(SUBS, empty_list());
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    let calls = server.seen(SUBS);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].authorization, "Bearer tok-1");
    assert_eq!(calls[1].authorization, "Bearer tok-2");

    server.push(SUBS, answer(401, expired));
    server.push(SUBS, answer(401, expired));
    let err = client.list_subscriptions().await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Unauthorized {
            code: "OAU-128".into()
        }
    );
    assert_eq!(server.seen(SUBS).len(), 4);
    // One re-authentication per failing call: tok-1, tok-2 (first call), tok-3 (second).
    assert_eq!(server.seen("/restapi/oauth/token").len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_retries() {
    let server = Server::start().await;
    server.push(
        "/restapi/oauth/token",
        answer(401, fixture("oauth-error-invalid-client.json")),
    );
    let client = server.client();
    let err = client.authenticate().await.unwrap_err();
    assert_eq!(
        err,
        ApiError::AuthRejected {
            code: "OAU-123".into(),
            message: "Client authentication is required".into()
        }
    );
    assert!(err.to_string().contains("refused the credentials"));
    assert!(!err.is_retryable());
    assert_eq!(server.seen("/restapi/oauth/token").len(), 1);
    server.stop().await;
}

fn call_log_page(next: Option<&str>) -> Canned {
    let mut page: serde_json::Value =
        serde_json::from_str(&fixture("call-log-list-simple.json")).unwrap();
    page["navigation"] = match next {
        Some(uri) => json!({ "nextPage": { "uri": uri } }),
        None => json!({}),
    };
    ok(page.to_string())
}

const CALL_LOG: &str = "/restapi/v1.0/account/~/call-log";

#[tokio::test]
async fn a_429_waits_retry_after_and_sends_nothing_in_the_group_during_the_penalty() {
    let server = Server::start().await;
    let mut limited = answer(
        429,
        r#"{"errorCode":"CMN-301","errors":[{"errorCode":"CMN-301","message":"Request rate exceeded"}]}"#,
    );
    limited.headers.push(("retry-after", "45".into()));
    limited.headers.push(("x-rate-limit-group", "heavy".into()));
    server.push(CALL_LOG, limited);
    server.push(CALL_LOG, call_log_page(None));
    let client = server.client();
    let from = server.clock.now() - chrono::Duration::hours(1);
    let records = client
        .call_log(&CallLogQuery::account(from, None))
        .await
        .unwrap();
    assert_eq!(records.len(), 2);

    let calls = server.seen(CALL_LOG);
    assert_eq!(calls.len(), 2, "nothing else was sent in the Heavy group");
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= chrono::Duration::seconds(45),
        "second request {gap} after the 429"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_429_without_retry_after_penalises_the_group_for_30_seconds() {
    let server = Server::start().await;
    let settings = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = RingCentral::with_clock(
        ClientSettings {
            retry: settings,
            ..server.settings()
        },
        Arc::new(server.clock.clone()),
    )
    .unwrap();
    server.push(SUBS, answer(429, "{}"));
    let err = client.list_subscriptions().await.unwrap_err();
    assert_eq!(
        err,
        ApiError::RateLimited {
            group: ApiGroup::Light,
            retry_after: Duration::from_secs(30)
        }
    );
    let left = client.governor().blocked_for(ApiGroup::Light).unwrap();
    assert!(left > Duration::from_secs(25), "{left:?}");
    assert!(client.governor().blocked_for(ApiGroup::Heavy).is_none());
    server.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_surfaced() {
    let server = Server::start().await;
    server.push(SUBS, answer(503, "{}"));
    server.push(SUBS, empty_list());
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    assert_eq!(server.seen(SUBS).len(), 2);

    for _ in 0..4 {
        server.push(SUBS, answer(500, r#"{"errorCode":"CMN-203","errors":[{"errorCode":"CMN-203","message":"Internal Server Error"}]}"#));
    }
    let err = client.list_subscriptions().await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Server {
            status: 500,
            code: "CMN-203".into()
        }
    );
    let calls = server.seen(SUBS);
    assert_eq!(calls.len(), 6, "4 attempts for the failing call");
    assert!(calls[3].at - calls[2].at >= chrono::Duration::seconds(1));
    server.stop().await;
}

#[tokio::test]
async fn the_call_log_is_read_in_the_detailed_view_following_next_page_links_on_our_host_only() {
    let server = Server::start().await;
    server.push(
        CALL_LOG,
        call_log_page(Some(
            "https://platform.ringcentral.com/restapi/v1.0/account/~/call-log?page=2&perPage=2",
        )),
    );
    server.push(CALL_LOG, call_log_page(None));
    let client = server.client();
    let from = "2023-04-10T00:00:00Z".parse().unwrap();
    let q = CallLogQuery {
        per_page: 2,
        priority: Priority::Backfill,
        ..CallLogQuery::account(from, None)
    };
    let records = client.call_log(&q).await.unwrap();
    assert_eq!(records.len(), 4);
    let calls = server.seen(CALL_LOG);
    assert_eq!(calls.len(), 2);
    assert!(
        calls[0].query.contains("view=Detailed"),
        "{}",
        calls[0].query
    );
    assert!(
        calls[0]
            .query
            .contains("dateFrom=2023-04-10T00%3A00%3A00.000Z"),
        "{}",
        calls[0].query
    );
    assert_eq!(calls[1].query, "page=2&perPage=2");
    server.stop().await;
}

#[tokio::test]
async fn extension_call_log_and_voicemails_use_their_paths() {
    let server = Server::start().await;
    let ext_log = "/restapi/v1.0/account/~/extension/~/call-log";
    server.push(ext_log, call_log_page(None));
    let store = "/restapi/v1.0/account/~/extension/~/message-store";
    let record: serde_json::Value =
        serde_json::from_str(&fixture("message-store-voicemail-record.json")).unwrap();
    server.push(store, ok(json!({"records": [record], "navigation": {"nextPage": {"uri": format!("{store}?page=2")}}}).to_string()));
    server.push(
        store,
        ok(json!({"records": [record], "navigation": {}}).to_string()),
    );
    let client = server.client();
    let from = server.clock.now() - chrono::Duration::days(1);
    let q = CallLogQuery {
        scope: CallLogScope::Extension("~".into()),
        ..CallLogQuery::account(from, None)
    };
    assert_eq!(client.call_log(&q).await.unwrap().len(), 2);
    let vq = VoicemailQuery {
        extension_id: "~".into(),
        date_from: from,
        date_to: Some(server.clock.now()),
        per_page: 100,
        priority: Priority::Live,
    };
    let vms = client.voicemails(&vq).await.unwrap();
    assert_eq!(vms.len(), 2);
    assert_eq!(vms[0].id, "402406985008");
    assert!(
        server.seen(store)[0]
            .query
            .contains("messageType=VoiceMail")
    );
    server.stop().await;
}

const CALL_LOG_SYNC: &str = "/restapi/v1.0/account/~/call-log-sync";

#[tokio::test]
async fn an_isync_over_the_record_limit_falls_back_to_an_fsync() {
    let server = Server::start().await;
    server.push(
        CALL_LOG_SYNC,
        answer(400, r#"{"errorCode":"CMN-101","message":"Parameter [syncToken] is invalid [max sync record number limit is exceeded]","errors":[{"errorCode":"CMN-101","message":"Parameter [syncToken] is invalid [max sync record number limit is exceeded]","parameterName":"syncToken"}],"parameterName":"syncToken"}"#),
    );
    server.push(
        CALL_LOG_SYNC,
        ok(fixture("call-log-sync-fsync-response.json")),
    );
    server.push(
        CALL_LOG_SYNC,
        ok(fixture("call-log-sync-isync-response.json")),
    );
    let client = server.client();
    let mut req = CallLogSync {
        scope: CallLogScope::Account,
        sync_token: Some("old-token".into()),
        date_from: None,
        record_count: 250,
        priority: Priority::Live,
    };
    let full = client.call_log_sync(&req).await.unwrap();
    assert!(full.full);
    let calls = server.seen(CALL_LOG_SYNC);
    assert!(
        calls[0].query.contains("syncType=ISync") && calls[0].query.contains("syncToken=old-token")
    );
    assert!(
        calls[1].query.contains("syncType=FSync") && calls[1].query.contains("recordCount=250")
    );

    req.sync_token = Some(full.sync_token.clone());
    let inc = client.call_log_sync(&req).await.unwrap();
    assert!(!inc.full);
    assert_eq!(inc.records.len(), 1);
    assert_ne!(inc.sync_token, full.sync_token);
    server.stop().await;
}

#[tokio::test]
async fn message_sync_runs_a_full_sync_when_rc_demands_one() {
    let server = Server::start().await;
    let path = "/restapi/v1.0/account/~/extension/~/message-sync";
    server.push(
        path,
        answer(
            400,
            r#"{"errors":[{"errorCode":"MSG-333","message":"Full synchronization is required"}]}"#,
        ),
    );
    let record: serde_json::Value =
        serde_json::from_str(&fixture("message-store-voicemail-record.json")).unwrap();
    server.push(path, ok(json!({"records": [record, {"id": 7, "availability": "Purged"}],
        "syncInfo": {"syncType": "FSync", "syncToken": "t2", "syncTime": "2026-01-01T00:00:00.000+0000"}}).to_string()));
    let client = server.client();
    let r = client
        .message_sync(&MessageSync {
            extension_id: "~".into(),
            sync_token: Some("t1".into()),
            date_from: None,
            record_count: 100,
            priority: Priority::Live,
        })
        .await
        .unwrap();
    assert!(r.full);
    assert_eq!(r.sync_token, "t2");
    assert_eq!(r.records.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_are_created_renewed_updated_and_deleted_with_the_documented_requests() {
    let server = Server::start().await;
    let created = fixture("subscription-create-response-webhook.json");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.push(SUBS, ok(created.clone()));
    let one = format!("{SUBS}/{id}");
    server.push(&format!("{one}/renew"), ok(created.clone()));
    server.push(&one, ok(created.clone()));
    server.push(&one, ok(created));
    server.push(&one, answer(204, ""));
    server.push(&one, answer(404, r#"{"errorCode":"CMN-102","errors":[{"errorCode":"CMN-102","message":"Resource for parameter [subscriptionId] is not found"}]}"#));
    let client = server.client();

    let s = client
        .create_subscription(&CreateSubscription {
            event_filters: vec!["/restapi/v1.0/account/~/telephony/sessions".into()],
            address: "https://relay.example.com/webhooks/ringcentral/acme".into(),
            expires_in: Duration::from_secs(315_360_000),
            verification_token: Some(Secret::new("vt-123")),
        })
        .await
        .unwrap();
    assert_eq!(s.status, SubscriptionStatus::Active);
    let sent: serde_json::Value = serde_json::from_str(&server.seen(SUBS)[0].body).unwrap();
    assert_eq!(sent["expiresIn"], 315_360_000, "expiresIn is top level");
    assert_eq!(sent["deliveryMode"]["transportType"], "WebHook");
    assert_eq!(sent["deliveryMode"]["verificationToken"], "vt-123");

    client.renew_subscription(&id).await.unwrap();
    assert_eq!(server.seen(&format!("{one}/renew"))[0].method, "POST");
    client.get_subscription(&id).await.unwrap();
    client
        .update_subscription(&id, &["/a".into()], Some(Duration::from_secs(600)))
        .await
        .unwrap();
    client.delete_subscription(&id).await.unwrap();
    let err = client.get_subscription(&id).await.unwrap_err();
    assert!(
        matches!(err, ApiError::NotFound { ref code, .. } if code == "CMN-102"),
        "{err:?}"
    );
    let methods: Vec<_> = server.seen(&one).into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["GET", "PUT", "DELETE", "GET"]);
    let put: serde_json::Value = serde_json::from_str(&server.seen(&one)[1].body).unwrap();
    assert_eq!(put, json!({"eventFilters": ["/a"], "expiresIn": 600}));
    server.stop().await;
}

#[tokio::test]
async fn subscription_refusals_map_to_the_errors_callers_act_on() {
    let server = Server::start().await;
    server.push(SUBS, answer(400, r#"{"errorCode":"SUB-508","message":"Invalid event filters","errors":[{"errorCode":"SUB-508","message":"Event filter [/x] is invalid"}]}"#));
    server.push(
        SUBS,
        answer(403, fixture("error-sub-505-subscription-limit.json")),
    );
    server.push(SUBS, answer(400, r#"{"errorCode":"SUB-520","errors":[{"errorCode":"SUB-520","message":"WebHook responds with incorrect HTTP status. HTTP status is 404"}]}"#));
    let client = server.client();
    let req = CreateSubscription {
        event_filters: vec!["/x".into()],
        address: "https://relay.example.com/h".into(),
        expires_in: Duration::from_secs(3600),
        verification_token: None,
    };
    assert!(matches!(
        client.create_subscription(&req).await,
        Err(ApiError::InvalidFilters { .. })
    ));
    assert!(matches!(
        client.create_subscription(&req).await,
        Err(ApiError::SubscriptionLimit { .. })
    ));
    let err = client.create_subscription(&req).await.unwrap_err();
    assert!(
        matches!(err, ApiError::WebhookValidationFailed { ref code, .. } if code == "SUB-520"),
        "{err:?}"
    );
    assert_eq!(server.seen(SUBS).len(), 3, "client errors are not retried");
    assert!(client.get_subscription("../oauth/token").await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_body_is_a_decode_error_naming_the_field() {
    let server = Server::start().await;
    server.push(
        SUBS,
        ok(r#"{"records":[{"id":"x","status":"Active","expirationTime":"tomorrow"}]}"#),
    );
    server.push(SUBS, ok("not json"));
    let client = server.client();
    let err = client.list_subscriptions().await.unwrap_err();
    assert!(matches!(err, ApiError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("expirationTime"), "{err}");
    assert!(matches!(
        client.list_subscriptions().await,
        Err(ApiError::Decode { .. })
    ));
    server.stop().await;
}

#[tokio::test]
async fn revoke_sends_the_refresh_token_with_basic_auth() {
    let server = Server::start().await;
    let client = server.client();
    client.authenticate().await.unwrap();
    client.revoke().await.unwrap();
    let revoked = server.seen("/restapi/oauth/revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].body, "token=ref-1");
    assert!(revoked[0].authorization.starts_with("Basic "));
    server.stop().await;
}

#[tokio::test]
async fn remaining_zero_in_the_rate_limit_headers_holds_the_group_for_a_window() {
    let server = Server::start().await;
    let mut last = empty_list();
    for (name, value) in [
        ("x-rate-limit-group", "light"),
        ("x-rate-limit-limit", "50"),
        ("x-rate-limit-remaining", "0"),
        ("x-rate-limit-window", "60"),
    ] {
        last.headers.push((name, value.into()));
    }
    server.push(SUBS, last);
    server.push(SUBS, empty_list());
    let client = server.client();
    client.list_subscriptions().await.unwrap();
    client.list_subscriptions().await.unwrap();
    let calls = server.seen(SUBS);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= chrono::Duration::seconds(60),
        "second request only {gap} later"
    );
    server.stop().await;
}

#[tokio::test]
async fn backfill_waits_for_its_share_of_the_heavy_budget_while_live_work_goes_ahead() {
    let server = Server::start().await;
    let settings = ClientSettings {
        limits: GovernorSettings {
            heavy: ringrelay::ringcentral::GroupLimit {
                requests: 2,
                window: Duration::from_secs(60),
            },
            ..GovernorSettings::default()
        },
        ..server.settings()
    };
    let client = RingCentral::with_clock(settings, Arc::new(server.clock.clone())).unwrap();
    for _ in 0..3 {
        server.push(CALL_LOG, call_log_page(None));
    }
    let from = server.clock.now() - chrono::Duration::hours(1);
    let backfill = CallLogQuery {
        priority: Priority::Backfill,
        ..CallLogQuery::account(from, None)
    };
    client.call_log(&backfill).await.unwrap();
    // Backfill has used its share (1 of 2); live still gets the second slot at once.
    assert!(
        client
            .governor()
            .try_acquire(ApiGroup::Heavy, Priority::Backfill)
            .is_err()
    );
    client
        .call_log(&CallLogQuery::account(from, None))
        .await
        .unwrap();
    // The next backfill page waits for the window to roll over.
    client.call_log(&backfill).await.unwrap();
    let calls = server.seen(CALL_LOG);
    assert!(calls[1].at - calls[0].at < chrono::Duration::seconds(1));
    assert!(calls[2].at - calls[0].at >= chrono::Duration::seconds(60));
    server.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried_a_bounded_number_of_times() {
    let server = Server::start().await;
    for _ in 0..4 {
        server.push("/restapi/oauth/token", answer(503, "{}"));
    }
    let client = server.client();
    let err = client.list_subscriptions().await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Server {
            status: 503,
            code: String::new()
        }
    );
    assert_eq!(server.seen("/restapi/oauth/token").len(), 4);
    assert!(server.seen(SUBS).is_empty());
    server.stop().await;
}
