//! The webhook endpoint over HTTP against a real SQLite store: handshake, every refusal
//! with its status and reason, persist-then-ack, de-duplication, strays, concurrency.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt as _;
use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, StrayReport, TokenRegistry};
use ringrelay::store::{self, OpenOptions, Store};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

const TOKEN: &str = "verify-me";

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    router: axum::Router,
    strays: mpsc::Receiver<StrayReport>,
}

fn acme() -> AccountId {
    AccountId::parse("acme").expect("slug")
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ringrelay::config::StoreUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("r.db").display()
    ))
    .expect("url");
    let store = store::open(&url, &OpenOptions::default())
        .await
        .expect("open");
    let tokens = TokenRegistry::new(Duration::from_secs(600));
    tokens.set(&acme(), "sub-1", Secret::new(TOKEN), Utc::now());
    let (tx, rx) = mpsc::channel(16);
    let state = ReceiverState::new(
        store.clone(),
        [acme(), AccountId::parse("globex").expect("slug")],
        tokens,
        ReceiverLimits {
            max_body_bytes: 4096,
            max_json_depth: 8,
        },
    )
    .with_stray_reports(tx);
    Harness {
        _dir: dir,
        store,
        router: receiver::router(state),
        strays: rx,
    }
}

fn notification(uuid: &str, sub: &str) -> String {
    serde_json::json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/1/telephony/sessions",
        "timestamp": "2026-11-28T09:00:00.000Z",
        "subscriptionId": sub,
        "ownerId": "1",
        "body": {"telephonySessionId": "s-1", "sequence": 1, "parties": []}
    })
    .to_string()
}

async fn post(
    router: &axum::Router,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().method("POST").uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let h = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, h, String::from_utf8_lossy(&bytes).into_owned())
}

const JSON: (&str, &str) = ("content-type", "application/json; charset=UTF-8");
const AUTH: (&str, &str) = ("verification-token", TOKEN);
const PATH: &str = "/webhooks/ringcentral/acme";

async fn stored(store: &Arc<dyn Store>) -> Vec<ringrelay::store::InboxRow> {
    store.inbox_after(0, 1000).await.expect("inbox")
}

#[tokio::test]
async fn handshake_echoes_the_token_and_stores_nothing() {
    let h = harness().await;
    let (s, headers, body) = post(
        &h.router,
        PATH,
        &[("validation-token", "abc-123")],
        String::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["validation-token"], "abc-123");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(body.len() < 1024);
    assert!(stored(&h.store).await.is_empty());
}

/// path, headers, body, expected status, a word of the reason.
type Case<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    String,
    StatusCode,
    &'a str,
);

#[tokio::test]
async fn refusals_have_a_status_and_a_reason_and_store_nothing() {
    let h = harness().await;
    let ok = notification("u-1", "sub-1");
    let deep = format!(
        r#"{{"uuid":"u-2","event":"e","body":{}1{}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    let big = format!(
        r#"{{"uuid":"u-3","event":"e","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "/webhooks/ringcentral/nobody",
            vec![JSON, AUTH],
            ok.clone(),
            StatusCode::NOT_FOUND,
            "no account",
        ),
        (
            "/webhooks/ringcentral/Bad%20Slug",
            vec![JSON, AUTH],
            ok.clone(),
            StatusCode::NOT_FOUND,
            "no account",
        ),
        (
            PATH,
            vec![JSON],
            ok.clone(),
            StatusCode::UNAUTHORIZED,
            "missing Verification-Token",
        ),
        (
            PATH,
            vec![JSON, ("verification-token", "nope")],
            ok.clone(),
            StatusCode::FORBIDDEN,
            "does not match",
        ),
        (
            "/webhooks/ringcentral/globex",
            vec![JSON, AUTH],
            ok.clone(),
            StatusCode::FORBIDDEN,
            "no subscription",
        ),
        (
            PATH,
            vec![("content-type", "text/plain"), AUTH],
            ok.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            PATH,
            vec![AUTH],
            ok.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "max_body_bytes",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "not a JSON object",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "not a JSON object",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            deep,
            StatusCode::BAD_REQUEST,
            "deeper than 8",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            r#"{"event":"e"}"#.into(),
            StatusCode::BAD_REQUEST,
            "no uuid",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            r#"{"uuid":"u-9"}"#.into(),
            StatusCode::BAD_REQUEST,
            "no event",
        ),
        (
            PATH,
            vec![JSON, AUTH],
            String::new(),
            StatusCode::BAD_REQUEST,
            "not a JSON object",
        ),
    ];
    for (path, headers, body, want, reason) in cases {
        let (s, _, text) = post(&h.router, path, &headers, body).await;
        assert_eq!(s, want, "{path} {headers:?}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
        let msg = v["error"].as_str().expect("error reason");
        assert!(msg.contains(reason), "{msg:?} should mention {reason:?}");
    }
    assert!(
        stored(&h.store).await.is_empty(),
        "no refused request reached the inbox"
    );
}

#[tokio::test]
async fn stores_then_acknowledges_once_per_uuid() {
    let h = harness().await;
    let body = notification("u-1", "sub-1");
    for _ in 0..3 {
        let (s, _, _) = post(&h.router, PATH, &[JSON, AUTH], body.clone()).await;
        assert_eq!(s, StatusCode::OK);
    }
    let rows = stored(&h.store).await;
    assert_eq!(rows.len(), 1, "a uuid is stored once");
    let row = &rows[0];
    assert_eq!(row.uuid, "u-1");
    assert_eq!(row.body, body, "the raw body is kept exactly");
    assert_eq!(row.subscription_id.as_deref(), Some("sub-1"));
    assert!(!row.unknown_subscription);
    assert_eq!(row.account, acme());
    assert!(row.timestamp.is_some());
}

#[tokio::test]
async fn notifications_from_other_subscriptions_are_stored_flagged_and_reported() {
    let mut h = harness().await;
    let (s, _, _) = post(
        &h.router,
        PATH,
        &[JSON, AUTH],
        notification("u-7", "sub-stray"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let rows = stored(&h.store).await;
    assert!(rows[0].unknown_subscription);
    let report = tokio::time::timeout(Duration::from_secs(5), h.strays.recv())
        .await
        .expect("report within 5 s")
        .expect("channel open");
    assert_eq!(report.subscription_id, "sub-stray");
    assert_eq!(report.account, acme());
}

#[tokio::test]
async fn parallel_posts_over_a_real_socket_are_all_stored_once() {
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = {
        let stop = stop.clone();
        let app = h.router.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        })
    };
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let url = format!("http://{addr}{PATH}");
        tasks.spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .header("verification-token", TOKEN)
                .body(notification(&format!("u-{}", i % 50), "sub-1"))
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status())
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.expect("task").expect("response"), reqwest::StatusCode::OK);
    }
    stop.cancel();
    server.await.expect("join").expect("serve");
    let rows = stored(&h.store).await;
    assert_eq!(rows.len(), 50, "200 posts of 50 uuids store 50 rows");
    let mut uuids: Vec<_> = rows.iter().map(|r| r.uuid.clone()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 50);
}

#[tokio::test]
async fn a_token_another_replica_stored_is_learned_before_refusing() {
    let mut h = harness().await;
    // Another replica's keeper created sub-2 for globex (unknown here) and stored it.
    let globex = AccountId::parse("globex").expect("slug");
    let now = Utc::now();
    h.store
        .upsert_subscription(&ringrelay::store::SubscriptionRecord {
            account: globex.clone(),
            id: "sub-2".into(),
            status: "Active".into(),
            expires_at: now + chrono::Duration::days(7),
            address: "https://relay.example.com/webhooks/ringcentral/globex".into(),
            verification_token: Some(Secret::new("from-another-replica")),
            event_filters: vec![],
            disabled_filters: vec![],
            created_at: now,
            renewed_at: None,
            last_error: None,
        })
        .await
        .expect("stored");
    let headers = [
        ("content-type", "application/json"),
        ("verification-token", "from-another-replica"),
    ];
    let (status, _, _) = post(
        &h.router,
        "/webhooks/ringcentral/globex",
        &headers,
        notification("u-learned", "sub-2"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "learned from the store, then accepted"
    );
    assert!(
        h.strays.try_recv().is_err(),
        "sub-2 is now a known subscription"
    );
    // A wrong token is still refused (its store re-reads are rate-limited per account: see
    // the unit tests of `receiver::tokens`).
    let wrong = [
        ("content-type", "application/json"),
        ("verification-token", "guess"),
    ];
    for i in 0..5 {
        let (status, _, _) = post(
            &h.router,
            "/webhooks/ringcentral/globex",
            &wrong,
            notification(&format!("u-wrong-{i}"), "sub-2"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(stored(&h.store).await.len(), 1);
}
