//! Delivery building blocks: signatures cross-checked with the independent `standardwebhooks`
//! crate (rotation included), the retry decision table, the SSRF table (IPv6, IPv4-mapped,
//! the connect-time resolver), the type/account matcher, the JSONL sink, and the HTTP sink
//! against an in-test axum server (200, 410, 429 + Retry-After, 500, timeout, redirect).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::dns::Resolve;
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::delivery::http::{HttpSink, USER_AGENT};
use ringrelay::delivery::jsonl::JsonlSink;
use ringrelay::delivery::retry::{SinkHealth, parse_retry_after};
use ringrelay::delivery::signing::{Signer, Verifier};
use ringrelay::delivery::ssrf::{
    GuardedResolver, SsrfError, check_url, filter_addrs, refused_range,
};
use ringrelay::delivery::{AttemptOutcome, Decision, Matcher, RetryPolicy, Sink};
use tokio_util::sync::CancellationToken;

const SECRET_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_NEW: &str = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn activity(key: &str, kind: ActivityKind, account: &str) -> Activity {
    let mut data = serde_json::Map::new();
    data.insert("direction".into(), "Inbound".into());
    Activity::new(
        key.into(),
        kind,
        AccountId::parse(account).unwrap(),
        "s-1".into(),
        ActivitySource::Webhook,
        at("2026-03-01T10:00:00Z"),
        data,
    )
}

// ----- signing -----

#[test]
fn signatures_verify_with_the_standardwebhooks_crate_including_rotation() {
    let body = br#"{"type":"call.answered","data":{"id":"msg_1"}}"#;
    let now = Utc::now().timestamp();
    let signer = Signer::from_strs([SECRET_NEW, SECRET_OLD]).unwrap();
    let sig = signer.sign("msg_1", now, body);
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
    headers.insert("webhook-signature", sig.parse().unwrap());
    for secret in [SECRET_OLD, SECRET_NEW] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(body, &headers)
            .unwrap();
    }
    let other = standardwebhooks::Webhook::new("whsec_dW5yZWxhdGVkIGtleQ==").unwrap();
    assert!(other.verify(body, &headers).is_err());
    assert!(
        standardwebhooks::Webhook::new(SECRET_OLD)
            .unwrap()
            .verify(b"{}", &headers)
            .is_err()
    );
    // And the crate's signatures verify with ours.
    let theirs = standardwebhooks::Webhook::new(SECRET_OLD)
        .unwrap()
        .sign("msg_2", now, body)
        .unwrap();
    Verifier::new([SECRET_OLD])
        .unwrap()
        .verify("msg_2", &now.to_string(), &theirs, body, now)
        .unwrap();
}

// ----- retry policy -----

fn policy() -> RetryPolicy {
    RetryPolicy {
        schedule: vec![
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(1800),
        ],
        jitter: 0.2,
        disable_after: Duration::from_secs(5 * 86_400),
        max_retry_after: Duration::from_secs(3600),
    }
}

fn failed(status: Option<u16>, retry_after: Option<u64>) -> AttemptOutcome {
    AttemptOutcome::Failed {
        status,
        retry_after: retry_after.map(Duration::from_secs),
        error: "x".into(),
    }
}

#[test]
fn retry_decisions_follow_design_section_4() {
    let p = policy();
    let now = at("2026-03-01T10:00:00Z");
    let secs = |s: i64| Decision::RetryAt(now + TimeDelta::seconds(s));
    let table: Vec<(u32, AttemptOutcome, f64, Decision)> = vec![
        (1, AttemptOutcome::Delivered, 0.5, Decision::Delivered),
        (1, AttemptOutcome::Gone, 0.5, Decision::DisableSink),
        (9, AttemptOutcome::Gone, 0.5, Decision::DisableSink),
        // The schedule, no jitter at unit 0.5.
        (1, failed(Some(500), None), 0.5, secs(5)),
        (2, failed(None, None), 0.5, secs(300)),
        (3, failed(Some(502), None), 0.5, secs(1800)),
        // Exhausted: dead-letter.
        (4, failed(Some(500), None), 0.5, Decision::Dead),
        (4, failed(Some(429), Some(10)), 0.5, Decision::Dead),
        // Jitter: ±20 % at the extremes.
        (2, failed(Some(500), None), 0.0, secs(240)),
        (2, failed(Some(500), None), 1.0, secs(360)),
        // 429 and 503 honour Retry-After (bounded, never jittered earlier).
        (1, failed(Some(429), Some(120)), 0.0, secs(120)),
        (1, failed(Some(503), Some(7200)), 0.5, secs(3600)),
        (1, failed(Some(503), Some(0)), 0.5, secs(1)),
        // Retry-After on another status is ignored; 429 without it follows the schedule.
        (1, failed(Some(500), Some(120)), 0.5, secs(5)),
        (2, failed(Some(429), None), 0.5, secs(300)),
    ];
    for (attempt, outcome, unit, want) in table {
        assert_eq!(
            p.decide(attempt, &outcome, now, unit),
            want,
            "attempt {attempt} {outcome:?} unit {unit}"
        );
    }
    let empty = RetryPolicy {
        schedule: vec![],
        ..policy()
    };
    assert_eq!(
        empty.decide(1, &failed(Some(500), None), now, 0.5),
        Decision::Dead
    );
}

#[test]
fn retry_after_parses_seconds_and_http_dates() {
    let now = at("2015-10-21T07:28:00Z");
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn health_disables_only_after_continuous_failure_and_backs_off() {
    let mut h = SinkHealth::default();
    let t0 = at("2026-03-01T00:00:00Z");
    let window = Duration::from_secs(3600);
    assert_eq!(h.backoff(), Duration::ZERO);
    assert!(!h.failure(t0, window));
    assert!(h.is_failing());
    assert!(!h.failure(t0 + TimeDelta::minutes(59), window));
    assert!(h.backoff() > Duration::ZERO);
    h.success();
    assert!(!h.is_failing());
    // The clock restarts after a success.
    assert!(!h.failure(t0 + TimeDelta::minutes(61), window));
    assert!(h.failure(t0 + TimeDelta::minutes(121), window));
    for _ in 0..40 {
        h.failure(t0, window);
    }
    assert_eq!(h.backoff(), Duration::from_secs(30));
}

// ----- SSRF -----

#[test]
fn ssrf_ranges() {
    let refused = [
        "127.0.0.1",
        "127.255.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.10.1",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "::127.0.0.1",
    ];
    for ip in refused {
        let ip = IpAddr::from_str(ip).unwrap();
        assert!(refused_range(ip).is_some(), "{ip} should be refused");
    }
    let allowed = [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "100.128.0.1",
        "192.169.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ];
    for ip in allowed {
        let ip = IpAddr::from_str(ip).unwrap();
        assert_eq!(refused_range(ip), None, "{ip} should be allowed");
    }
}

#[test]
fn ssrf_urls() {
    let url = |s: &str| url::Url::parse(s).unwrap();
    assert!(check_url(&url("https://crm.example.com/hook"), false).is_ok());
    assert!(check_url(&url("http://8.8.8.8/"), false).is_ok());
    for bad in [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
        "http://api.localhost./",
        "http://10.0.0.5/",
    ] {
        assert!(
            matches!(check_url(&url(bad), false), Err(SsrfError::Refused { .. })),
            "{bad}"
        );
        assert!(
            check_url(&url(bad), true).is_ok(),
            "{bad} with allow_private"
        );
    }
    assert!(matches!(
        check_url(&url("ftp://example.com/"), true),
        Err(SsrfError::Scheme(_))
    ));
    assert!(matches!(
        check_url(&url("file:///etc/passwd"), true),
        Err(SsrfError::Scheme(_))
    ));
}

#[test]
fn resolved_addresses_are_filtered_and_a_mixed_answer_is_refused() {
    let a = |s: &str| SocketAddr::new(IpAddr::from_str(s).unwrap(), 443);
    assert_eq!(
        filter_addrs("x", [a("8.8.8.8")], false).unwrap(),
        vec![a("8.8.8.8")]
    );
    assert!(filter_addrs("x", [a("8.8.8.8"), a("10.0.0.1")], false).is_err());
    assert!(filter_addrs("x", [a("::ffff:192.168.0.1")], false).is_err());
    assert!(matches!(
        filter_addrs("x", [], false),
        Err(SsrfError::NoAddress(_))
    ));
    assert_eq!(filter_addrs("x", [a("10.0.0.1")], true).unwrap().len(), 1);
}

#[tokio::test]
async fn the_resolver_refuses_a_name_resolving_to_loopback() {
    // `localhost` stands in for a rebinding name: it resolves to loopback at connect time.
    let name = reqwest::dns::Name::from_str("localhost").unwrap();
    let refused = GuardedResolver::new(false).resolve(name).await;
    let err = refused.err().expect("loopback must be refused").to_string();
    assert!(err.contains("loopback"), "{err}");
    let name = reqwest::dns::Name::from_str("localhost").unwrap();
    let allowed = GuardedResolver::new(true).resolve(name).await;
    assert!(allowed.expect("allowed").next().is_some());
}

// ----- matcher -----

#[test]
fn matcher_filters_by_account_and_type_glob() {
    let acme = AccountId::parse("acme").unwrap();
    let m = Matcher::new(&[acme], &["call.*".into()]).unwrap();
    assert!(m.matches(&activity("k1", ActivityKind::CallAnswered, "acme")));
    assert!(!m.matches(&activity("k2", ActivityKind::VoicemailReceived, "acme")));
    assert!(!m.matches(&activity("k3", ActivityKind::CallAnswered, "globex")));
    let all = Matcher::new(&[], &["*".into()]).unwrap();
    assert!(all.matches(&activity("k4", ActivityKind::VoicemailReceived, "globex")));
    let exact = Matcher::new(&[], &["call.missed".into(), "voicemail.*".into()]).unwrap();
    assert!(exact.matches(&activity("k5", ActivityKind::CallMissed, "a")));
    assert!(!exact.matches(&activity("k6", ActivityKind::CallEnded, "a")));
    assert!(Matcher::new(&[], &["call.[".into()]).is_err());
}

// ----- JSONL -----

#[tokio::test]
async fn jsonl_appends_one_activity_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let p = path.to_str().unwrap();
    let a = activity("k1", ActivityKind::CallAnswered, "acme");
    let b = activity("k2", ActivityKind::CallEnded, "acme");
    {
        let sink = JsonlSink::open(p).unwrap();
        assert_eq!(sink.send(&a).await, AttemptOutcome::Delivered);
    }
    // Reopening appends.
    let sink = JsonlSink::open(p).unwrap();
    assert_eq!(sink.send(&b).await, AttemptOutcome::Delivered);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![a.payload, b.payload]);
    assert!(JsonlSink::open(dir.path().join("no/such/dir.jsonl").to_str().unwrap()).is_err());
}

// ----- HTTP -----

/// What the fake CRM answers, one entry per request (the last one repeats).
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Hang,
    Redirect,
}

#[derive(Default)]
struct Crm {
    replies: Mutex<Vec<Reply>>,
    seen: Mutex<Vec<(HeaderMap, Vec<u8>)>>,
}

async fn crm_handler(
    State(crm): State<Arc<Crm>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    crm.seen.lock().unwrap().push((headers, body.to_vec()));
    let reply = {
        let mut r = crm.replies.lock().unwrap();
        if r.len() > 1 { r.remove(0) } else { r[0] }
    };
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        Reply::Redirect => (StatusCode::FOUND, [("location", "http://8.8.8.8/")]).into_response(),
    }
}

struct Server {
    url: url::Url,
    crm: Arc<Crm>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Self {
        let crm = Arc::new(Crm {
            replies: Mutex::new(replies),
            ..Crm::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(crm_handler))
            .with_state(Arc::clone(&crm));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            url: url::Url::parse(&format!("http://{addr}/hook")).unwrap(),
            crm,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn http_sink(url: &url::Url, timeout: Duration) -> HttpSink {
    HttpSink::new(
        url.clone(),
        Signer::from_strs([SECRET_NEW, SECRET_OLD]).unwrap(),
        timeout,
        true,
    )
    .unwrap()
}

#[tokio::test]
async fn http_sink_posts_signed_json_and_maps_statuses() {
    let server = Server::start(vec![
        Reply::Status(200),
        Reply::Status(204),
        Reply::Status(410),
        Reply::RetryAfter(429, 30),
        Reply::RetryAfter(503, 5),
        Reply::Status(500),
        Reply::Redirect,
        Reply::Status(200),
    ])
    .await;
    let sink = http_sink(&server.url, Duration::from_secs(10));
    let a = activity("acme:s-1:p-1:answered", ActivityKind::CallAnswered, "acme");
    assert_eq!(sink.send(&a).await, AttemptOutcome::Delivered);
    assert_eq!(sink.send(&a).await, AttemptOutcome::Delivered);
    assert_eq!(sink.send(&a).await, AttemptOutcome::Gone);
    let AttemptOutcome::Failed {
        status,
        retry_after,
        ..
    } = sink.send(&a).await
    else {
        panic!("429")
    };
    assert_eq!(
        (status, retry_after),
        (Some(429), Some(Duration::from_secs(30)))
    );
    let AttemptOutcome::Failed {
        status,
        retry_after,
        ..
    } = sink.send(&a).await
    else {
        panic!("503")
    };
    assert_eq!(
        (status, retry_after),
        (Some(503), Some(Duration::from_secs(5)))
    );
    let AttemptOutcome::Failed {
        status,
        retry_after,
        ..
    } = sink.send(&a).await
    else {
        panic!("500")
    };
    assert_eq!((status, retry_after), (Some(500), None));
    // Redirects are not followed.
    let AttemptOutcome::Failed { status, .. } = sink.send(&a).await else {
        panic!("302")
    };
    assert_eq!(status, Some(302));

    let seen = server.crm.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 7);
    let (headers, body) = &seen[0];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["user-agent"], USER_AGENT);
    assert_eq!(headers["webhook-id"], a.id.to_wire().as_str());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(body).unwrap(),
        a.payload
    );
    for secret in [SECRET_OLD, SECRET_NEW] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(body, headers)
            .unwrap();
    }
    // The same activity keeps its webhook-id across attempts.
    assert!(
        seen.iter()
            .all(|(h, _)| h["webhook-id"] == a.id.to_wire().as_str())
    );
    server.stop().await;
}

#[tokio::test]
async fn http_sink_times_out_and_refuses_private_targets_without_allow_private() {
    let server = Server::start(vec![Reply::Hang]).await;
    let sink = http_sink(&server.url, Duration::from_millis(200));
    let a = activity("k", ActivityKind::CallEnded, "acme");
    let AttemptOutcome::Failed { status, error, .. } = sink.send(&a).await else {
        panic!("timeout")
    };
    assert_eq!(status, None);
    assert!(error.contains("timed out"), "{error}");

    let guarded = HttpSink::new(
        server.url.clone(),
        Signer::from_strs([SECRET_OLD]).unwrap(),
        Duration::from_secs(5),
        false,
    )
    .unwrap();
    let AttemptOutcome::Failed { error, .. } = guarded.send(&a).await else {
        panic!("ssrf")
    };
    assert!(error.contains("loopback"), "{error}");
    let by_name = HttpSink::new(
        url::Url::parse(&server.url.as_str().replace("127.0.0.1", "localhost")).unwrap(),
        Signer::from_strs([SECRET_OLD]).unwrap(),
        Duration::from_secs(5),
        false,
    )
    .unwrap();
    assert!(matches!(
        by_name.send(&a).await,
        AttemptOutcome::Failed { status: None, .. }
    ));
    // Only the timed-out request reached the server.
    assert_eq!(server.crm.seen.lock().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn sink_settings_are_validated_and_built() {
    use ringrelay::config::{Secret, SinkKind, SinkSettings};
    let settings = |url: &str, allow_private: bool, secret: &str| SinkSettings {
        name: "crm".into(),
        kind: SinkKind::Webhook {
            url: url::Url::parse(url).unwrap(),
            secrets: vec![Secret::new(secret)],
            timeout: Duration::from_secs(15),
            allow_private,
        },
        accounts: vec![],
        types: vec!["call.*".into()],
        retry_schedule: vec![Duration::from_secs(5)],
        disable_after: Duration::from_secs(3600),
    };
    let ok = settings("https://crm.example.com/hook", false, SECRET_OLD);
    ringrelay::delivery::validate(&ok).unwrap();
    let built = ringrelay::delivery::build(&ok).await.unwrap();
    assert_eq!(built.name, "crm");
    assert_eq!(built.policy.schedule, vec![Duration::from_secs(5)]);
    assert!(
        built
            .matcher
            .matches(&activity("k", ActivityKind::CallEnded, "acme"))
    );
    assert!(
        !built
            .matcher
            .matches(&activity("k", ActivityKind::VoicemailReceived, "acme"))
    );

    let private = settings("http://10.0.0.1/hook", false, SECRET_OLD);
    let err = ringrelay::delivery::validate(&private)
        .unwrap_err()
        .to_string();
    assert!(err.contains("private"), "{err}");
    assert!(ringrelay::delivery::build(&private).await.is_err());
    ringrelay::delivery::validate(&settings("http://10.0.0.1/hook", true, SECRET_OLD)).unwrap();
    assert!(
        ringrelay::delivery::validate(&settings("https://crm.example.com/", false, "plain"))
            .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let jsonl = SinkSettings {
        kind: SinkKind::Jsonl {
            path: dir.path().join("o.jsonl").to_str().unwrap().into(),
        },
        ..ok
    };
    let built = ringrelay::delivery::build(&jsonl).await.unwrap();
    assert_eq!(
        built
            .sink
            .send(&activity("k", ActivityKind::CallEnded, "acme"))
            .await,
        AttemptOutcome::Delivered
    );
}
