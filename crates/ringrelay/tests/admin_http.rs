//! The admin surface over HTTP against a scripted `AdminSource`: auth on every API path,
//! each endpoint's answer, readiness, metrics, the login flow and the status page.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use http_body_util::BodyExt as _;
use ringrelay::admin::{
    self, AccountStatus, AdminAuth, AdminError, AdminSource, AdminState, BackfillSummary,
    DeliveryQuery, DeliveryView, GapView, Readiness, SinkStatus, StatusReport, SubscriptionAction,
    SubscriptionView,
};
use ringrelay::config::Secret;
use tower::ServiceExt as _;

const TOKEN: &str = "admin-s3cret";

#[path = "support/seed.rs"]
mod seed;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid time")
}

type BackfillCall = (String, DateTime<Utc>, DateTime<Utc>);

#[derive(Default)]
struct Fake {
    blacklisted: bool,
    retried: Mutex<Vec<i64>>,
    paused: Mutex<Vec<(String, bool)>>,
    backfills: Mutex<Vec<BackfillCall>>,
}

impl Fake {
    fn report(&self) -> StatusReport {
        StatusReport {
            generated_at: now(),
            accounts: vec![AccountStatus {
                id: "acme".into(),
                subscription: Some(SubscriptionView {
                    id: "sub-1".into(),
                    status: if self.blacklisted {
                        "Blacklisted"
                    } else {
                        "Active"
                    }
                    .into(),
                    expires_at: Some(now() + Duration::days(6)),
                    disabled_filters: vec![],
                }),
                last_event_at: Some(now() - Duration::seconds(30)),
                events_last_hour: 42,
                credential_expires_at: None,
                gaps: vec![GapView {
                    id: 7,
                    from: now() - Duration::hours(3),
                    until: Some(now() - Duration::hours(2)),
                    reason: "subscription blacklisted".into(),
                    backfilled_at: Some(now() - Duration::minutes(110)),
                    backfilled_activities: 12,
                }],
                problems: if self.blacklisted {
                    vec!["subscription sub-1 is Blacklisted".into()]
                } else {
                    vec![]
                },
                keeper: None,
                extensions: Some(ringrelay::admin::ExtensionsView {
                    total: 12,
                    covered: 10,
                    updated_at: Some(now() - Duration::hours(1)),
                    not_covered: vec![
                        ringrelay::admin::UncoveredExtension {
                            id: "62295327009".into(),
                            number: Some("110".into()),
                            name: "Main IVR".into(),
                            reason: "type IvrMenu takes no voicemail".into(),
                        },
                        ringrelay::admin::UncoveredExtension {
                            id: "62295327011".into(),
                            number: Some("112".into()),
                            name: "Former Employee".into(),
                            reason: "status Disabled".into(),
                        },
                    ],
                }),
            }],
            sinks: vec![SinkStatus {
                name: "crm".into(),
                kind: "webhook".into(),
                disabled: None,
                pending: 3,
                dead: 1,
                delivered: 100,
            }],
            processor: None,
        }
    }
}

#[async_trait]
impl AdminSource for Fake {
    async fn status(&self) -> Result<StatusReport, AdminError> {
        Ok(self.report())
    }
    async fn readiness(&self) -> Readiness {
        if self.blacklisted {
            Readiness {
                ready: false,
                reasons: vec!["acme: subscription sub-1 is Blacklisted".into()],
            }
        } else {
            Readiness {
                ready: true,
                reasons: vec![],
            }
        }
    }
    async fn subscriptions(&self, account: &str) -> Result<serde_json::Value, AdminError> {
        if account == "acme" {
            Ok(serde_json::json!([{"id": "sub-1", "status": "Active"}]))
        } else {
            Err(AdminError::NotFound(format!("no account {account:?}")))
        }
    }
    async fn subscription_action(
        &self,
        account: &str,
        action: SubscriptionAction,
    ) -> Result<String, AdminError> {
        Ok(format!("{action:?} done for {account}"))
    }
    async fn backfill(
        &self,
        account: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<BackfillSummary, AdminError> {
        self.backfills
            .lock()
            .expect("lock")
            .push((account.into(), since, until));
        Ok(BackfillSummary {
            call_log_records: 5,
            voicemails: 1,
            activities_emitted: 4,
        })
    }
    async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<DeliveryView>, AdminError> {
        let retried = self.retried.lock().expect("lock").clone();
        let d = DeliveryView {
            id: 9,
            sink: "crm".into(),
            account: "acme".into(),
            activity_id: "msg_abc".into(),
            activity_type: "call.missed".into(),
            state: if retried.contains(&9) {
                "pending"
            } else {
                "dead"
            }
            .into(),
            attempts: 8,
            next_attempt_at: None,
            last_error: Some("HTTP 500 <boom>".into()),
        };
        let keep = match query.state.as_deref() {
            Some("failed") | Some("dead") => d.state == "dead",
            Some(s) => d.state == s,
            None => true,
        };
        Ok(if keep { vec![d] } else { vec![] })
    }
    async fn retry_delivery(&self, id: i64) -> Result<(), AdminError> {
        if id != 9 {
            return Err(AdminError::NotFound(format!("no delivery {id}")));
        }
        self.retried.lock().expect("lock").push(id);
        Ok(())
    }
    async fn replay(&self, sink: &str, _since: DateTime<Utc>) -> Result<u64, AdminError> {
        if sink == "crm" {
            Ok(17)
        } else {
            Err(AdminError::NotFound(format!("no sink {sink:?}")))
        }
    }
    async fn set_sink_paused(&self, sink: &str, paused: bool) -> Result<(), AdminError> {
        self.paused
            .lock()
            .expect("lock")
            .push((sink.into(), paused));
        Ok(())
    }
}

fn app(fake: Arc<Fake>, token: Option<&str>) -> axum::Router {
    admin::router(AdminState {
        source: fake,
        auth: AdminAuth::new(token.map(Secret::new), false),
    })
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Body::from(body.unwrap_or("").to_owned()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

const API_PATHS: &[(&str, &str)] = &[
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/accounts"),
    ("GET", "/api/v1/accounts/acme"),
    ("GET", "/api/v1/accounts/acme/coverage"),
    ("GET", "/api/v1/accounts/acme/subscriptions"),
    ("POST", "/api/v1/accounts/acme/subscription/renew"),
    ("POST", "/api/v1/accounts/acme/backfill"),
    ("GET", "/api/v1/deliveries"),
    ("POST", "/api/v1/deliveries/9/retry"),
    ("POST", "/api/v1/sinks/crm/replay"),
    ("POST", "/api/v1/sinks/crm/pause"),
    ("POST", "/api/v1/sinks/crm/resume"),
];

#[tokio::test]
async fn every_api_path_needs_the_token() {
    let fake = Arc::new(Fake::default());
    let app = app(fake.clone(), Some(TOKEN));
    for (method, path) in API_PATHS {
        let (s, h, body) = call(&app, method, path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} without token");
        assert_eq!(
            h.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        assert!(body.contains("missing Authorization"), "{body}");
        let (s, _, body) = call(&app, method, path, Some("Bearer nope"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} wrong token");
        assert!(body.contains("wrong admin token"));
    }
    assert!(
        fake.retried.lock().expect("lock").is_empty(),
        "no action ran unauthenticated"
    );
    assert!(fake.paused.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn api_is_off_without_a_configured_token() {
    let app = app(Arc::new(Fake::default()), None);
    let (s, _, body) = call(&app, "GET", "/api/v1/status", Some("Bearer x"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("server.admin_token"));
    let (s, _, _) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn endpoints_answer_with_the_right_token() {
    let fake = Arc::new(Fake::default());
    let app = app(fake.clone(), Some(TOKEN));
    let bearer = format!("Bearer {TOKEN}");
    let auth = Some(bearer.as_str());

    let (s, _, body) = call(&app, "GET", "/api/v1/status", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    let report: StatusReport = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(report, fake.report());

    let (s, _, body) = call(&app, "GET", "/api/v1/accounts/acme/coverage", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    let gaps: Vec<GapView> = serde_json::from_str(&body).expect("gaps");
    assert_eq!(gaps.len(), 1);
    let (s, _, body) = call(&app, "GET", "/api/v1/accounts/nope", auth, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("no account"));

    let (s, _, body) = call(
        &app,
        "POST",
        "/api/v1/accounts/acme/subscription/recreate",
        auth,
        None,
    )
    .await;
    assert_eq!(
        (s, body.contains("Recreate done for acme")),
        (StatusCode::OK, true)
    );
    let (s, _, body) = call(
        &app,
        "POST",
        "/api/v1/accounts/acme/subscription/explode",
        auth,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("renew, recreate or cleanup"));

    let (s, _, body) = call(&app, "POST", "/api/v1/accounts/acme/backfill", auth, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _, body) = call(
        &app,
        "POST",
        "/api/v1/accounts/acme/backfill",
        auth,
        Some(r#"{"since":"yesterday-ish"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("RFC 3339"), "{body}");
    let (s, _, body) = call(
        &app,
        "POST",
        "/api/v1/accounts/acme/backfill",
        auth,
        Some(r#"{"since":"2026-11-28T09:00:00Z","until":"2026-11-28T10:00:00Z"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let summary: BackfillSummary = serde_json::from_str(&body).expect("summary");
    assert_eq!(summary.activities_emitted, 4);
    assert_eq!(fake.backfills.lock().expect("lock").len(), 1);

    let (s, _, body) = call(&app, "GET", "/api/v1/deliveries?state=dead", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Vec<DeliveryView>>(&body)
            .expect("list")
            .len(),
        1
    );
    let (s, _, body) = call(&app, "GET", "/api/v1/deliveries?state=weird", auth, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("pending, delivered, dead or failed"));
    let (s, _, _) = call(&app, "GET", "/api/v1/deliveries?limit=lots", auth, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, _, _) = call(&app, "POST", "/api/v1/deliveries/abc/retry", auth, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(&app, "POST", "/api/v1/deliveries/5/retry", auth, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&app, "POST", "/api/v1/deliveries/9/retry", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(*fake.retried.lock().expect("lock"), vec![9]);

    let (s, _, body) = call(
        &app,
        "POST",
        "/api/v1/sinks/crm/replay",
        auth,
        Some(r#"{"since":"2h"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("\"replayed\":17"));
    let (s, _, _) = call(
        &app,
        "POST",
        "/api/v1/sinks/other/replay",
        auth,
        Some(r#"{"since":"2h"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&app, "POST", "/api/v1/sinks/crm/pause", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&app, "POST", "/api/v1/sinks/crm/resume", auth, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        *fake.paused.lock().expect("lock"),
        vec![("crm".to_owned(), true), ("crm".to_owned(), false)]
    );

    let (s, _, body) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("openapi JSON");
    assert_eq!(doc["openapi"], "3.0.3");
    for (_, path) in API_PATHS {
        let p = path.trim_start_matches("/api/v1");
        let templated = doc["paths"].as_object().expect("paths").keys().any(|k| {
            let ks: Vec<&str> = k.split('/').collect();
            let ps: Vec<&str> = p.split('/').collect();
            ks.len() == ps.len()
                && ks
                    .iter()
                    .zip(&ps)
                    .all(|(k, p)| k.starts_with('{') || k == p)
        });
        assert!(templated, "{path} is documented in the OpenAPI file");
    }
}

#[tokio::test]
async fn readiness_follows_the_subscription() {
    let ok = app(Arc::new(Fake::default()), Some(TOKEN));
    let (s, _, _) = call(&ok, "GET", "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let bad = app(
        Arc::new(Fake {
            blacklisted: true,
            ..Fake::default()
        }),
        Some(TOKEN),
    );
    let (s, _, body) = call(&bad, "GET", "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("Blacklisted"), "{body}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_status_gauges() {
    let app = app(Arc::new(Fake::default()), Some(TOKEN));
    let (s, h, body) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let expiry = body
        .lines()
        .find(|l| l.starts_with("ringrelay_subscription_expiry_seconds{account=\"acme\"}"))
        .expect("expiry gauge present");
    let value: f64 = expiry
        .rsplit(' ')
        .next()
        .expect("value")
        .parse()
        .expect("number");
    assert!((value - 6.0 * 86_400.0).abs() < 1.0, "{expiry}");
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().expect("value");
        assert!(
            value.parse::<f64>().is_ok(),
            "unparseable sample line: {line}"
        );
    }
    assert!(body.contains("ringrelay_deliveries_dead{sink=\"crm\"} 1"));
}

#[tokio::test]
async fn status_page_login_flow_and_retry_button() {
    let fake = Arc::new(Fake::default());
    let app = app(fake.clone(), Some(TOKEN));
    let (s, h, _) = call(&app, "GET", "/", None, None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/login");

    let login = |token: &str| {
        Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .expect("request")
    };
    let wrong = app
        .clone()
        .oneshot(login("nope"))
        .await
        .expect("infallible");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    let right = app.clone().oneshot(login(TOKEN)).await.expect("infallible");
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let cookie = right.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        !cookie.contains(TOKEN),
        "the cookie never carries the token"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();

    let page = Request::builder()
        .uri("/")
        .header(header::COOKIE, &pair)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(page).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    assert!(html.contains("id=\"account-acme\""));
    assert!(
        html.contains("class=\"backfilled\""),
        "timeline shows the backfilled gap"
    );
    assert!(html.contains("HTTP 500 &lt;boom&gt;"), "errors are escaped");
    assert!(html.contains("/ui/deliveries/9/retry"));
    assert!(
        html.contains("10/12 extensions covered (not covered: 1 status Disabled, 1 type IvrMenu takes no voicemail)"),
        "extension coverage with reasons: {html}"
    );
    assert!(html.contains("<td>Former Employee</td><td>status Disabled</td>"));

    let retry = Request::builder()
        .method("POST")
        .uri("/ui/deliveries/9/retry")
        .header(header::COOKIE, &pair)
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(retry).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(*fake.retried.lock().expect("lock"), vec![9]);

    let anon_retry = Request::builder()
        .method("POST")
        .uri("/ui/deliveries/9/retry")
        .body(Body::empty())
        .expect("request");
    let resp = app.clone().oneshot(anon_retry).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        fake.retried.lock().expect("lock").len(),
        1,
        "no retry without login"
    );
}

#[test]
fn human_status_table() {
    let text = admin::render::status_text(&Fake::default().report());
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("ACCOUNT"));
    let row = lines.next().expect("row");
    for cell in ["acme", "sub-1", "Active", "6d 0h", "30s ago", "42"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(text.contains("crm") && text.contains("webhook"));
    assert!(
        text.contains("  acme: 10/12 extensions covered (not covered: 1 status Disabled,"),
        "{text}"
    );
}

/// Where chromedriver is, or `None` (the test then says it was skipped). `.ci/run`
/// installs Debian's chromium and chromium-driver, so CI always runs it.
fn chromedriver() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("RINGRELAY_CHROMEDRIVER").map_or_else(
        || std::path::PathBuf::from("/usr/bin/chromedriver"),
        Into::into,
    );
    path.exists().then_some(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The status page in a real headless Chromium: log in, see the account with its gap,
/// press retry on the dead delivery, and the delivery is retried.
#[tokio::test]
async fn status_page_in_a_real_browser() {
    let Some(driver_path) = chromedriver() else {
        eprintln!("SKIPPED: chromedriver not installed (run .ci/run, which installs it)");
        return;
    };
    // The real admin source over a seeded store: a gap and a dead delivery.
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, dead_id) = seed::seed(dir.path(), "Active").await;
    let settings =
        ringrelay::config::load(&seed::config(dir.path()), &std::collections::HashMap::new())
            .expect("config");
    let source = Arc::new(ringrelay::admin::StoreAdminSource::new(
        store.clone(),
        Arc::new(settings),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = {
        let app = admin::router(AdminState {
            source,
            auth: AdminAuth::new(Some(Secret::new(TOKEN)), false),
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };

    let port = free_port();
    let mut driver = tokio::process::Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("RINGRELAY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let mut client = None;
    for _ in 0..100 {
        match fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps.clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let client = client.expect("chromedriver answers within 10 s");

    let base = format!("http://{addr}");
    let outcome = async {
        use fantoccini::Locator;
        client.goto(&format!("{base}/")).await?;
        let url = client.current_url().await?;
        anyhow::ensure!(
            url.path().ends_with("/login"),
            "redirected to the login form, got {url}"
        );
        client
            .find(Locator::Id("token"))
            .await?
            .send_keys(TOKEN)
            .await?;
        client.find(Locator::Id("login")).await?.click().await?;
        client
            .wait()
            .for_element(Locator::Id("account-acme"))
            .await?;
        let page = client.source().await?;
        anyhow::ensure!(page.contains("class=\"gap\""), "the gap is on the timeline");
        anyhow::ensure!(page.contains("blacklisted"), "the gap's reason is shown");
        let row = format!("#delivery-{dead_id}");
        anyhow::ensure!(
            client
                .find(Locator::Css(&format!("{row} td.state")))
                .await?
                .text()
                .await?
                == "dead",
            "the delivery is listed as dead"
        );
        client
            .find(Locator::Css(&format!("{row} button.retry")))
            .await?
            .click()
            .await?;
        // The form posts and the server redirects to the page again: wait for the new page.
        let mut gone = false;
        for _ in 0..50 {
            let page = client.source().await?;
            if page.contains("id=\"account-acme\"")
                && let Ok(cell) = client.find(Locator::Css(&format!("{row} td.state"))).await
                // The element may go stale while the page is replaced: look again.
                && cell.text().await.is_ok_and(|t| t == "failed")
            {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::ensure!(gone, "the retried delivery is no longer dead");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if outcome.is_err()
        && let Ok(png) = client.screenshot().await
    {
        let path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page_failure.png");
        let _ = std::fs::write(&path, png);
        eprintln!("screenshot saved to {}", path.display());
    }
    let _ = client.close().await;
    let _ = driver.kill().await;
    stop.cancel();
    server.await.expect("server task").expect("server");
    outcome.expect("browser flow");
    let after = store
        .list_deliveries(&ringrelay::store::DeliveryFilter {
            limit: 10,
            ..ringrelay::store::DeliveryFilter::default()
        })
        .await
        .expect("list");
    let d = after
        .iter()
        .find(|d| d.id == dead_id)
        .expect("the delivery");
    assert_ne!(
        d.state,
        ringrelay::store::DeliveryState::Dead,
        "the click retried it"
    );
    assert!(
        d.due_at.is_some_and(|t| t <= chrono::Utc::now()),
        "it is due now"
    );
}
