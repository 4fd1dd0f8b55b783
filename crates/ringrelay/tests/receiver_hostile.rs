//! Hostile input never panics the receiver, never gets a 200 and never reaches the
//! inbox: random bytes, every truncation of a real notification, pathological nesting,
//! wrong field types, garbage headers and paths (issue 5: "none of these panics"); and the
//! odd but legitimate (lenient envelopes, renewal reminders) are stored.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringrelay::account::AccountId;
use ringrelay::config::{Secret, StoreUrl};
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, TokenRegistry};
use ringrelay::store::{self, OpenOptions, Store};
use tower::ServiceExt;

const TOKEN: &str = "hostile-token";
const MAX_BODY: usize = 16 * 1024;
const PATH: &str = "/webhooks/ringcentral/acme";

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    router: axum::Router,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store::open(
        &StoreUrl::Sqlite(dir.path().join("hostile.db")),
        &OpenOptions::default(),
    )
    .await
    .expect("open");
    let acme = AccountId::parse("acme").expect("slug");
    let tokens = TokenRegistry::new(Duration::from_secs(600));
    tokens.set(&acme, "sub-1", Secret::new(TOKEN), Utc::now());
    let state = ReceiverState::new(
        Arc::clone(&store),
        [acme],
        tokens,
        ReceiverLimits {
            max_body_bytes: MAX_BODY,
            max_json_depth: 16,
        },
    );
    Harness {
        _dir: dir,
        store,
        router: receiver::router(state),
    }
}

impl Harness {
    async fn post(&self, body: impl Into<Body>) -> StatusCode {
        let req = Request::builder()
            .method("POST")
            .uri(PATH)
            .header("content-type", "application/json")
            .header("verification-token", TOKEN)
            .body(body.into())
            .expect("request");
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> StatusCode {
        self.router
            .clone()
            .oneshot(req)
            .await
            .expect("infallible")
            .status()
    }

    async fn stored(&self) -> usize {
        self.store
            .inbox_after(0, 10_000)
            .await
            .expect("inbox")
            .len()
    }
}

fn real_notification() -> String {
    // A real RingCentral telephony notification (see fixtures/ringcentral/SOURCES.md).
    include_str!("../../../fixtures/ringcentral/examples/telephony-session-answered-outbound.json")
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn random_bytes_are_refused_and_never_stored() {
    let h = harness().await;
    let mut rng = StdRng::seed_from_u64(5);
    for round in 0..300 {
        let len = rng.random_range(0..(MAX_BODY + 512));
        let mut body = vec![0u8; len];
        rng.fill(&mut body[..]);
        let status = h.post(body).await;
        let expected = if len > MAX_BODY {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "round {round}, {len} random bytes");
    }
    assert_eq!(h.stored().await, 0);
}

#[tokio::test]
async fn every_truncation_of_a_real_notification_is_refused() {
    let h = harness().await;
    let full = real_notification();
    for cut in 0..full.len() {
        let status = h.post(full[..cut].to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "cut at {cut}");
    }
    assert_eq!(h.stored().await, 0, "no prefix was stored");
    assert_eq!(h.post(full).await, StatusCode::OK, "the whole one is taken");
    assert_eq!(h.stored().await, 1);
}

#[tokio::test]
async fn pathological_nesting_is_a_400_not_a_stack_overflow() {
    let h = harness().await;
    let n = MAX_BODY / 2 - 8;
    let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(n / 5), "}".repeat(n / 5));
    let open_only = "{".repeat(MAX_BODY - 1);
    let inside = format!(
        r#"{{"uuid":"u","event":"/e","body":{}0{}}}"#,
        "[".repeat(n - 40),
        "]".repeat(n - 40)
    );
    for (name, body) in [
        ("arrays", arrays),
        ("objects", objects),
        ("unclosed", open_only),
        ("inside a notification", inside),
    ] {
        assert!(body.len() <= MAX_BODY, "{name} fits the body limit");
        assert_eq!(h.post(body).await, StatusCode::BAD_REQUEST, "{name}");
    }
    assert_eq!(h.stored().await, 0);
}

#[tokio::test]
async fn wrong_field_types_are_refused_without_a_server_error() {
    let h = harness().await;
    let bodies = [
        r#"{"uuid":null,"event":"/e"}"#,
        r#"{"uuid":"","event":"/e"}"#,
        r#"{"uuid":["u"],"event":"/e"}"#,
        r#"{"uuid":{"a":1},"event":"/e"}"#,
        r#"{"uuid":"u","event":null}"#,
        r#"{"uuid":"u"}"#,
        r#"{"event":"/e"}"#,
        r#"["uuid","event"]"#,
        r#""uuid""#,
        "null",
        "1e999999",
        r#"{"uuid":"\ud800","event":"/e"}"#,
        "{\"uuid\":\"u\",\"event\":\"/e\"} trailing",
    ];
    for body in bodies {
        let status = h.post(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(h.stored().await, 0);
}

#[tokio::test]
async fn odd_but_complete_envelopes_are_stored_or_refused_never_a_server_error() {
    let h = harness().await;
    let bodies = [
        r#"{"uuid":"a0","event":42}"#,
        r#"{"uuid":"a1","event":"/e","timestamp":"not a time"}"#,
        r#"{"uuid":"a2","event":"/e","timestamp":12345}"#,
        r#"{"uuid":"a3","event":"/e","subscriptionId":7}"#,
        r#"{"uuid":"a4","event":"/e","subscriptionId":null,"body":null}"#,
        r#"{"uuid":"a5","event":"/e","uuid":"a5-again"}"#,
        r#"{"uuid":"\u00e9\u4e2d\ud83d\ude00","event":"/e"}"#,
    ];
    let mut ok = 0;
    for body in bodies {
        let status = h.post(body).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{body}: {status}"
        );
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(
        h.stored().await,
        ok,
        "exactly the acknowledged ones are stored"
    );
}

#[tokio::test]
async fn garbage_headers_and_paths_get_client_errors() {
    let h = harness().await;
    let body = real_notification();
    let with = |path: &str, ct: &[u8], token: &[u8]| {
        Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", ct)
            .header("verification-token", token)
            .body(Body::from(body.clone()))
            .expect("request")
    };
    // A path segment that is not UTF-8 is refused by axum's path extractor (400).
    let cases = [
        (
            with(PATH, b"application/json", b"\xff\xfe"),
            StatusCode::FORBIDDEN,
        ),
        (with(PATH, b"application/json", b""), StatusCode::FORBIDDEN),
        (
            with(PATH, b"application/json", "x".repeat(8000).as_bytes()),
            StatusCode::FORBIDDEN,
        ),
        (
            with(PATH, b"\xff", TOKEN.as_bytes()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            with(PATH, b"", TOKEN.as_bytes()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            with(PATH, b"application/jsonx", TOKEN.as_bytes()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            with(
                "/webhooks/ringcentral/%FF%FE",
                b"application/json",
                TOKEN.as_bytes(),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            with(
                "/webhooks/ringcentral/ACME",
                b"application/json",
                TOKEN.as_bytes(),
            ),
            StatusCode::NOT_FOUND,
        ),
        (
            with(
                &format!("/webhooks/ringcentral/{}", "a".repeat(5000)),
                b"application/json",
                TOKEN.as_bytes(),
            ),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (i, (req, expected)) in cases.into_iter().enumerate() {
        let status = h.send(req).await;
        // 401 and 403 are both "not authenticated" answers; the rest are exact.
        let same_class = expected == StatusCode::FORBIDDEN
            && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN);
        assert!(status == expected || same_class, "case {i}: {status}");
    }
    let get = Request::builder()
        .method("GET")
        .uri(PATH)
        .body(Body::empty())
        .expect("request");
    assert_eq!(h.send(get).await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h.stored().await, 0);
}

#[tokio::test]
async fn a_renewal_reminder_is_stored_like_any_notification() {
    // API.md §3.4: the reminder's event is the filter string verbatim, with `~`.
    let h = harness().await;
    let body = serde_json::json!({
        "uuid": "reminder-1",
        "event": "/restapi/v1.0/subscription/~?threshold=60&interval=15",
        "timestamp": "2026-11-28T09:00:00.000+0000",
        "subscriptionId": "sub-1",
        "ownerId": "1",
        "body": {"id": "sub-1", "expirationTime": "2026-11-28T09:01:00.000Z", "status": "Active"}
    })
    .to_string();
    assert_eq!(h.post(body.clone()).await, StatusCode::OK);
    let rows = h.store.inbox_after(0, 10).await.expect("inbox");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].event,
        "/restapi/v1.0/subscription/~?threshold=60&interval=15"
    );
    assert!(
        !rows[0].unknown_subscription,
        "sub-1 is the current subscription"
    );
    assert!(rows[0].timestamp.is_some(), "a +0000 offset is read");
    assert_eq!(rows[0].body, body, "the raw body is stored as received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_over_a_real_socket_is_answered_413_and_the_server_keeps_serving() {
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        let app = h.router.clone();
        async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
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
    let url = format!("http://{addr}{PATH}");
    let big = format!(
        r#"{{"uuid":"big","event":"/e","pad":"{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .header("verification-token", TOKEN)
        .body(big)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(resp.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    let ok = client
        .post(&url)
        .header("content-type", "application/json")
        .header("verification-token", TOKEN)
        .body(real_notification())
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), reqwest::StatusCode::OK);
    stop.cancel();
    server.await.expect("join").expect("serve");
    assert_eq!(h.stored().await, 1, "only the small one");
}
