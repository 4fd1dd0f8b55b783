//! The operator commands against a seeded SQLite store: `status` (table and JSON, exit
//! status), `migrate`, `deliveries list/retry/replay`, and clear errors for bad input.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::{Secret, StoreUrl};
use ringrelay::store::{
    self, DeliveryResult, GapCause, NewActivity, OpenOptions, SubscriptionRecord,
};

struct Seeded {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    dead_id: i64,
}

async fn seeded(status: &str) -> Seeded {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ops.db");
    let config = dir.path().join("ringrelay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
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
            db = db.display(),
            out = dir.path().join("out.jsonl").display()
        ),
    )
    .expect("config");
    let s = store::open(&StoreUrl::Sqlite(db), &OpenOptions::default())
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
    Seeded {
        _dir: dir,
        config,
        dead_id: d.id,
    }
}

fn run(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringrelay"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run ringrelay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_table_json_and_exit_code() {
    let s = seeded("Active").await;
    let (code, out, err) = run(&s.config, &["status"]);
    assert_eq!(
        code, 1,
        "a dead delivery makes status unhealthy: {out}{err}"
    );
    let row = out.lines().nth(1).expect("account row");
    for cell in ["acme", "sub-42", "Active", "5d 23h"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(out.contains("crm") && out.contains("jsonl"), "{out}");
    let (_, json, _) = run(&s.config, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["accounts"][0]["subscription"]["id"], "sub-42");
    assert_eq!(v["accounts"][0]["gaps"][0]["reason"], "blacklisted");
    assert_eq!(v["sinks"][0]["dead"], 1);

    let blacklisted = seeded("Blacklisted").await;
    let (_, json, _) = run(&blacklisted.config, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let problems = v["accounts"][0]["problems"].to_string();
    assert!(problems.contains("Blacklisted"), "{problems}");
}

#[tokio::test]
async fn deliveries_list_retry_replay_and_bad_input() {
    let s = seeded("Active").await;
    let (code, out, _) = run(&s.config, &["deliveries", "list", "--failed"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("call.missed") && out.contains("dead") && out.contains("HTTP 500"),
        "{out}"
    );
    let (code, out, _) = run(&s.config, &["deliveries", "retry", &s.dead_id.to_string()]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run(&s.config, &["deliveries", "list", "--failed"]);
    let row = out.lines().nth(1).expect("row");
    assert!(
        !row.contains("dead") && row.contains("due"),
        "the retried delivery is due again: {out}"
    );

    let (code, _, err) = run(&s.config, &["deliveries", "retry", "abc"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a delivery id"), "{err}");
    let (code, _, err) = run(&s.config, &["deliveries", "retry", "999"]);
    assert_eq!(code, 1);
    assert!(err.contains("999"), "{err}");
    let (code, _, err) = run(
        &s.config,
        &["deliveries", "replay", "--sink", "nope", "--since", "1h"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no sink \"nope\""), "{err}");
    let (code, _, err) = run(
        &s.config,
        &[
            "deliveries",
            "replay",
            "--sink",
            "crm",
            "--since",
            "last tuesday",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("RFC 3339"), "{err}");
    let (code, out, _) = run(
        &s.config,
        &["deliveries", "replay", "--sink", "crm", "--since", "1h"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("due again"), "{out}");
}

#[tokio::test]
async fn migrate_backfill_and_config_errors() {
    let s = seeded("Active").await;
    let (code, out, _) = run(&s.config, &["migrate"]);
    assert_eq!(code, 0);
    assert!(out.contains("schema at version"), "{out}");
    let (code, _, err) = run(
        &s.config,
        &["backfill", "--account", "nope", "--since", "2h"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no account \"nope\"") && err.contains("acme"),
        "{err}"
    );
    let (code, _, err) = run(
        &s.config,
        &[
            "backfill",
            "--account",
            "acme",
            "--since",
            "1h",
            "--until",
            "2h",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("must be before"), "{err}");
    let (code, _, err) = run(
        std::path::Path::new("/nonexistent/ringrelay.toml"),
        &["status"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read /nonexistent/ringrelay.toml"),
        "{err}"
    );
}
