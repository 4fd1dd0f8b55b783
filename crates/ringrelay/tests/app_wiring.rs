//! The assembled application: a stored subscription's token is loaded at start, a webhook
//! posted to the running server is stored, processed into activities, and routed to the
//! configured sinks by account and type; shutdown is graceful.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use ringrelay::account::AccountId;
use ringrelay::app::{AppOptions, Application};
use ringrelay::config::{self, Secret};
use ringrelay::store::{self, DeliveryFilter, OpenOptions, SubscriptionRecord};
use tokio_util::sync::CancellationToken;

fn scenario(name: &str) -> Vec<serde_json::Value> {
    let path = format!(
        "{}/../../fixtures/ringcentral/scenarios/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

#[tokio::test]
async fn a_webhook_becomes_routed_activities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    let jsonl = dir.path().join("out.jsonl");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[[accounts]]
id = "acme"
server = "http://127.0.0.1:9"
client_id = "id"
client_secret = "secret"
jwt = "jwt"
[[accounts]]
id = "globex"
server = "http://127.0.0.1:9"
client_id = "id"
client_secret = "secret"
jwt = "jwt"
[[sinks]]
name = "missed-only"
type = "jsonl"
path = "{jsonl}"
types = ["call.missed"]
[[sinks]]
name = "globex-only"
type = "jsonl"
path = "{jsonl}"
accounts = ["globex"]
"#,
        db = db.display(),
        jsonl = jsonl.display()
    );
    let settings = config::load(&text, &HashMap::new()).expect("config");
    let url = settings.store.url.clone();
    {
        let s = store::open(&url, &OpenOptions::default())
            .await
            .expect("store");
        s.upsert_subscription(&SubscriptionRecord {
            account: AccountId::parse("acme").expect("slug"),
            id: "sub-synthetic".into(),
            status: "Active".into(),
            expires_at: Utc::now() + chrono::Duration::days(7),
            address: "http://127.0.0.1/webhooks/ringcentral/acme".into(),
            verification_token: Some(Secret::new("tok")),
            event_filters: vec![],
            disabled_filters: vec![],
            created_at: Utc::now(),
            renewed_at: None,
            last_error: None,
        })
        .await
        .expect("seed");
    }
    let app = Application::build_with(settings, AppOptions::default())
        .await
        .expect("build");
    let port = app.port();
    let store = app.store();
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for n in scenario("inbound-missed") {
        let r = client
            .post(format!("http://127.0.0.1:{port}/webhooks/ringcentral/acme"))
            .header("content-type", "application/json")
            .header("verification-token", "tok")
            .body(n.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        deliveries = store
            .list_deliveries(&DeliveryFilter {
                limit: 100,
                ..DeliveryFilter::default()
            })
            .await
            .expect("list");
        if !deliveries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let routed: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| (d.sink.clone(), d.kind.clone()))
        .collect();
    assert_eq!(
        routed,
        vec![("missed-only".to_owned(), "call.missed".to_owned())],
        "acme's missed call goes only to the sink that takes call.missed"
    );
    // The JSONL sink's worker writes the activity out.
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = std::fs::read_to_string(&jsonl)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON line");
    assert_eq!(line["type"], "call.missed");
    assert_eq!(line["data"]["account"], "acme");
    let health = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("stops within 20 s")
        .expect("join")
        .expect("clean stop");
}
