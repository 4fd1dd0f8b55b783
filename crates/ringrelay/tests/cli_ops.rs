//! The operator commands against a seeded SQLite store: `status` (table and JSON, exit
//! status), `migrate`, `deliveries list/retry/replay`, and clear errors for bad input.

use std::process::Command;

#[path = "support/seed.rs"]
mod seed;

struct Seeded {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    dead_id: i64,
}

async fn seeded(status: &str) -> Seeded {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ringrelay.toml");
    std::fs::write(&config, seed::config(dir.path())).expect("config");
    let (_store, dead_id) = seed::seed(dir.path(), status).await;
    Seeded {
        _dir: dir,
        config,
        dead_id,
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
