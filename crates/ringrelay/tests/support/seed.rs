//! A store seeded with what operators look at: an account's subscription, a closed and
//! backfilled-pending gap, and a dead delivery (shared by the CLI and status page tests).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::{Secret, StoreUrl};
use ringrelay::store::{
    self, DeliveryResult, GapCause, NewActivity, OpenOptions, Store, SubscriptionRecord,
};

/// A seeded SQLite store in `dir`, and the id of its dead delivery.
pub async fn seed(dir: &std::path::Path, status: &str) -> (Arc<dyn Store>, i64) {
    let s = store::open(
        &StoreUrl::Sqlite(dir.join("ops.db")),
        &OpenOptions::default(),
    )
    .await
    .expect("store");
    let acme = AccountId::parse("acme").expect("slug");
    let now = Utc::now();
    s.upsert_subscription(&SubscriptionRecord {
        account: acme.clone(),
        id: "sub-42".into(),
        status: status.into(),
        expires_at: now + chrono::Duration::days(6),
        address: "http://127.0.0.1/webhooks/ringcentral/acme".into(),
        verification_token: Some(Secret::new("t")),
        event_filters: vec![],
        disabled_filters: vec![],
        created_at: now,
        renewed_at: None,
        last_error: None,
    })
    .await
    .expect("sub");
    s.open_gap(
        &acme,
        now - chrono::Duration::hours(2),
        GapCause::Blacklisted,
    )
    .await
    .expect("gap");
    s.close_gap(&acme, now - chrono::Duration::hours(1))
        .await
        .expect("close");
    let activity = Activity::new(
        "acme:s-1:missed".into(),
        ActivityKind::CallMissed,
        acme,
        "s-1".into(),
        ActivitySource::Webhook,
        now,
        serde_json::Map::new(),
    );
    s.insert_activities(
        vec![NewActivity {
            activity,
            sinks: vec!["crm".into()],
        }],
        None,
    )
    .await
    .expect("activity");
    let claimed = s
        .claim_deliveries("crm", "test", now, 10, Duration::from_secs(60))
        .await
        .expect("claim");
    let d = &claimed[0];
    s.complete_delivery(
        d.id,
        d.attempt,
        now,
        DeliveryResult::Dead {
            error: "HTTP 500".into(),
            status: Some(500),
        },
    )
    .await
    .expect("dead");
    (s, d.id)
}

/// The config text of the seeded store's service (one account, one JSONL sink `crm`).
pub fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
admin_token = "admin-s3cret"
[store]
url = "sqlite://{db}"
[[accounts]]
id = "acme"
server = "http://127.0.0.1:9"
client_id = "id"
client_secret = "secret"
jwt = "jwt"
[[sinks]]
name = "crm"
type = "jsonl"
path = "{out}"
"#,
        db = dir.join("ops.db").display(),
        out = dir.join("out.jsonl").display()
    )
}
