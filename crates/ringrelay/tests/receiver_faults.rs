//! The receiver when the store misbehaves: down, failing, stalled, or its ingest queue full.
//! A store double scripts `append_inbox`; every other method answers `Unavailable` (the
//! receiver calls none). The full-queue test uses the real SQLite store.

#![allow(unused_variables)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, TokenRegistry};
use ringrelay::store::*;
use tokio::sync::Notify;
use tower::ServiceExt;

const TOKEN: &str = "faults-token";

/// What the double's `append_inbox` does.
#[derive(Clone, Copy)]
enum Mode {
    /// `Unavailable`: the queue is full or the database is down.
    Down,
    /// `Other`: a failure the receiver cannot classify.
    Broken,
    /// Never returns until `release` is notified, then stores.
    Stalled,
}

struct ScriptedStore {
    mode: Mode,
    appends: AtomicUsize,
    started: Notify,
    release: Notify,
}

impl ScriptedStore {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            appends: AtomicUsize::new(0),
            started: Notify::new(),
            release: Notify::new(),
        })
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("scripted: not used by the receiver".into())
}

#[async_trait]
impl Store for ScriptedStore {
    async fn append_inbox(
        &self,
        notification: NewNotification,
    ) -> Result<AppendOutcome, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        match self.mode {
            Mode::Down => Err(StoreError::Unavailable("ingest queue full".into())),
            Mode::Broken => Err(StoreError::Other("disk I/O error".into())),
            Mode::Stalled => {
                self.release.notified().await;
                Ok(AppendOutcome::Stored)
            }
        }
    }

    async fn inbox_after(&self, after_seq: i64, limit: usize) -> Result<Vec<InboxRow>, StoreError> {
        Err(down())
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        Err(down())
    }

    async fn activity_payload(&self, _: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Err(down())
    }

    async fn inbox_account_summary(
        &self,
        _: &AccountId,
        _: DateTime<Utc>,
    ) -> Result<ringrelay::store::InboxAccountSummary, StoreError> {
        Err(down())
    }

    async fn insert_activities(
        &self,
        activities: Vec<NewActivity>,
        processed: Option<CursorUpdate>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        Err(down())
    }

    async fn claim_deliveries(
        &self,
        sink: &str,
        owner: &str,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        Err(down())
    }

    async fn complete_delivery(
        &self,
        id: i64,
        attempt: u32,
        now: DateTime<Utc>,
        result: DeliveryResult,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        Err(down())
    }

    async fn retry_delivery(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        Err(down())
    }

    async fn replay(
        &self,
        sink: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Err(down())
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        Err(down())
    }

    async fn set_sink_disabled(
        &self,
        sink: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn sink_states(&self) -> Result<Vec<SinkState>, StoreError> {
        Err(down())
    }

    async fn upsert_subscription(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        Err(down())
    }

    async fn subscription(
        &self,
        account: &AccountId,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        Err(down())
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        Err(down())
    }

    async fn delete_subscription(&self, account: &AccountId) -> Result<bool, StoreError> {
        Err(down())
    }

    async fn open_gap(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        cause: GapCause,
    ) -> Result<Gap, StoreError> {
        Err(down())
    }

    async fn close_gap(
        &self,
        account: &AccountId,
        until: DateTime<Utc>,
    ) -> Result<Option<Gap>, StoreError> {
        Err(down())
    }

    async fn gaps(
        &self,
        account: Option<&AccountId>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Gap>, StoreError> {
        Err(down())
    }

    async fn gaps_to_backfill(&self, limit: usize) -> Result<Vec<Gap>, StoreError> {
        Err(down())
    }

    async fn mark_gap_backfilled(
        &self,
        id: i64,
        state: BackfillState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn record_liveness(
        &self,
        account: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn last_liveness(
        &self,
        account: &AccountId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Err(down())
    }

    async fn cursor(
        &self,
        account: Option<&AccountId>,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        Err(down())
    }

    async fn set_cursor(&self, update: &CursorUpdate) -> Result<(), StoreError> {
        Err(down())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        Err(down())
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        Err(down())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        Err(down())
    }

    async fn load_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        Err(down())
    }

    async fn save_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
        state: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn delete_telephony(
        &self,
        account: &AccountId,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        Err(down())
    }

    async fn prune(
        &self,
        now: DateTime<Utc>,
        inbox_retention: Duration,
        delivered_retention: Duration,
    ) -> Result<PruneCounts, StoreError> {
        Err(down())
    }

    async fn replace_extensions(
        &self,
        account: &AccountId,
        extensions: &[ExtensionRecord],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(down())
    }

    async fn extensions(&self, account: &AccountId) -> Result<Vec<StoredExtension>, StoreError> {
        Err(down())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Err(down())
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        Err(down())
    }

    async fn renew_leases(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
        _: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        Err(down())
    }

    async fn insert_activities_fenced(
        &self,
        _: Vec<NewActivity>,
        _: Option<CursorUpdate>,
        _: &Lease,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        Err(down())
    }

    async fn oauth_tokens(&self, _: &AccountId) -> Result<Option<StoredTokens>, StoreError> {
        Err(down())
    }

    async fn save_oauth_tokens(&self, _: &StoredTokens, _: &Lease) -> Result<(), StoreError> {
        Err(down())
    }
}

fn acme() -> AccountId {
    AccountId::parse("acme").expect("slug")
}

fn router_over(store: Arc<dyn Store>) -> axum::Router {
    let tokens = TokenRegistry::new(Duration::from_secs(600));
    tokens.set(&acme(), "sub-1", Secret::new(TOKEN), Utc::now());
    let state = ReceiverState::new(
        store,
        [acme()],
        tokens,
        ReceiverLimits {
            max_body_bytes: 64 * 1024,
            max_json_depth: 16,
        },
    );
    receiver::router(state)
}

fn notification(uuid: &str) -> String {
    serde_json::json!({
        "uuid": uuid,
        "event": "/restapi/v1.0/account/1/telephony/sessions",
        "timestamp": "2026-11-28T09:00:00.000Z",
        "subscriptionId": "sub-1",
        "body": {"telephonySessionId": "s-1", "sequence": 1, "parties": []}
    })
    .to_string()
}

fn signed_post(body: String) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/webhooks/ringcentral/acme")
        .header("content-type", "application/json")
        .header("verification-token", TOKEN)
        .body(Body::from(body))
        .expect("request")
}

fn handshake() -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/webhooks/ringcentral/acme")
        .header("validation-token", "v-123")
        .body(Body::empty())
        .expect("request")
}

async fn send(router: &axum::Router, req: Request<Body>) -> axum::response::Response {
    router.clone().oneshot(req).await.expect("infallible")
}

#[tokio::test]
async fn an_unavailable_store_is_answered_503_with_retry_after_never_200() {
    let store = ScriptedStore::new(Mode::Down);
    let router = router_over(store.clone());
    let resp = send(&router, signed_post(notification("u-1"))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| s >= 1),
        "Retry-After in seconds: {retry:?}"
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 1, "one append tried");
}

#[tokio::test]
async fn a_store_failure_is_a_server_error_not_an_acknowledgement() {
    let store = ScriptedStore::new(Mode::Broken);
    let router = router_over(store.clone());
    let resp = send(&router, signed_post(notification("u-1"))).await;
    assert!(
        resp.status().is_server_error(),
        "a failed commit must not be acknowledged: {}",
        resp.status()
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("disk I/O"),
        "internal causes stay out of the response: {text}"
    );
}

#[tokio::test]
async fn the_handshake_never_touches_the_store_even_when_it_is_down() {
    let store = ScriptedStore::new(Mode::Down);
    let router = router_over(store.clone());
    let resp = send(&router, handshake()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("validation-token")
            .and_then(|v| v.to_str().ok()),
        Some("v-123")
    );
    assert_eq!(store.appends.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stalled_commit_is_not_acknowledged_and_does_not_block_other_requests() {
    let store = ScriptedStore::new(Mode::Stalled);
    let router = router_over(store.clone());
    let pending = tokio::spawn({
        let router = router.clone();
        async move { send(&router, signed_post(notification("u-slow"))).await }
    });
    tokio::time::timeout(Duration::from_secs(5), store.started.notified())
        .await
        .expect("the append started");
    assert_eq!(store.appends.load(Ordering::SeqCst), 1, "append started");

    // Handshakes and refusals are answered while the commit is outstanding.
    let hs = tokio::time::timeout(Duration::from_secs(5), send(&router, handshake()))
        .await
        .expect("handshake answered while a commit stalls");
    assert_eq!(hs.status(), StatusCode::OK);
    let bad = Request::builder()
        .method("POST")
        .uri("/webhooks/ringcentral/acme")
        .header("content-type", "application/json")
        .header("verification-token", "wrong")
        .body(Body::from(notification("u-2")))
        .expect("request");
    let refused = tokio::time::timeout(Duration::from_secs(5), send(&router, bad))
        .await
        .expect("refusal answered while a commit stalls");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!pending.is_finished(), "no 200 before the commit");

    store.release.notify_one();
    let resp = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered once committed")
        .expect("task");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_waits_for_an_in_flight_commit_and_acknowledges_it() {
    let store = ScriptedStore::new(Mode::Stalled);
    let router = router_over(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        }
    });
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let request = tokio::spawn(
        client
            .post(format!("http://{addr}/webhooks/ringcentral/acme"))
            .header("content-type", "application/json")
            .header("verification-token", TOKEN)
            .body(notification("u-draining"))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(5), store.started.notified())
        .await
        .expect("the append started");

    stop.cancel();
    tokio::task::yield_now().await;
    assert!(
        !server.is_finished(),
        "the server waits for the in-flight request"
    );
    store.release.notify_one();
    let resp = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("answered")
        .expect("task")
        .expect("response");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops once drained")
        .expect("join")
        .expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ingest_queue_sheds_load_with_503_and_every_200_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = OpenOptions {
        ingest_queue: 1,
        max_batch: 1,
        ..OpenOptions::default()
    };
    let store = ringrelay::store::open(
        &ringrelay::config::StoreUrl::Sqlite(dir.path().join("shed.db")),
        &options,
    )
    .await
    .expect("open");
    let router = router_over(Arc::clone(&store));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..256 {
        let router = router.clone();
        tasks.spawn(async move {
            let uuid = format!("shed-{i}");
            let resp = send(&router, signed_post(notification(&uuid))).await;
            let retry_after = resp.headers().contains_key("retry-after");
            (uuid, resp.status(), retry_after)
        });
    }
    let mut acked = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (uuid, status, retry_after) = joined.expect("task");
        match status {
            StatusCode::OK => acked.push(uuid),
            StatusCode::SERVICE_UNAVAILABLE => assert!(retry_after, "503 says when to retry"),
            other => panic!("{uuid}: {other}"),
        }
    }
    let rows = store.inbox_after(0, 1000).await.expect("inbox");
    let stored: std::collections::HashSet<_> = rows.into_iter().map(|r| r.uuid).collect();
    for uuid in &acked {
        assert!(
            stored.contains(uuid),
            "{uuid} was acknowledged but not stored"
        );
    }
    assert!(!acked.is_empty(), "the queue admits work when it drains");
    assert!(
        acked.len() < 256,
        "a one-slot queue sheds some of 256 simultaneous appends"
    );
}
