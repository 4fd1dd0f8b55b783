//! Twenty accounts in one service: each gets its own subscription, and each account's
//! activities reach only the sinks that take that account (issue 10's multi-account run).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ringrelay::app::{AppOptions, Application};
use ringrelay::config;
use ringrelay_sim::{CallScenario, RateLimits, Sim, SimAccount, SimConfig};
use tokio_util::sync::CancellationToken;

#[path = "support/e2e.rs"]
mod e2e;
use e2e::{lines, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

const ACCOUNTS: u32 = 20;

#[tokio::test]
async fn twenty_accounts_each_reach_only_their_own_sinks() {
    let sim = Sim::start(
        SimConfig::default()
            .with_rate_limits(RateLimits::default())
            .with_accounts((0..ACCOUNTS).map(|n| SimAccount::generated(n, 4)).collect()),
    )
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
url = "sqlite://{db}"
[keeper]
reconcile_interval = "10s"
[sync]
interval = "1h"
"#,
        db = dir.path().join("many.db").display()
    );
    for (n, account) in sim.accounts().iter().enumerate() {
        let _ = write!(
            text,
            r#"
[[accounts]]
id = "acct-{n}"
server = "{server}"
client_id = "{client_id}"
client_secret = "{client_secret}"
jwt = "{jwt}"
[[sinks]]
name = "sink-{n}"
type = "jsonl"
path = "{path}"
accounts = ["acct-{n}"]
"#,
            server = sim.base_url(),
            client_id = sim.config().client_id,
            client_secret = sim.config().client_secret,
            jwt = account.jwt,
            path = dir.path().join(format!("sink-{n}.jsonl")).display(),
        );
    }
    // One sink for everyone's missed calls.
    let _ = write!(
        text,
        r#"
[[sinks]]
name = "missed"
type = "jsonl"
path = "{}"
types = ["call.missed"]
"#,
        dir.path().join("missed.jsonl").display()
    );
    let settings = config::load(&text, &HashMap::new()).expect("config");
    let app = Application::build_with(
        settings,
        AppOptions {
            listener: Some(listener),
            clock: Some(Arc::new(sim.clock())),
            call_log_lag: Duration::from_millis(200),
            ..AppOptions::default()
        },
    )
    .await
    .expect("build");
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));

    wait_for("an Active subscription per account", LIMIT, || {
        sim.subscriptions()
            .iter()
            .filter(|s| s["status"] == "Active")
            .count()
            == ACCOUNTS as usize
    })
    .await;
    for account in sim.accounts() {
        sim.run_call(&account.id, CallScenario::InboundMissed)
            .await
            .expect("call");
    }
    sim.complete_calls().await;
    wait_for("every account's missed call in its sink", LIMIT, || {
        (0..ACCOUNTS).all(|n| {
            lines(&dir.path().join(format!("sink-{n}.jsonl")))
                .iter()
                .any(|l| l["type"] == "call.missed")
        })
    })
    .await;
    for n in 0..ACCOUNTS {
        let mine = lines(&dir.path().join(format!("sink-{n}.jsonl")));
        assert!(
            mine.iter()
                .all(|l| l["data"]["account"] == format!("acct-{n}").as_str()),
            "sink-{n} holds only acct-{n}'s activities"
        );
        assert_eq!(
            mine.iter().filter(|l| l["type"] == "call.missed").count(),
            1,
            "acct-{n}'s missed call once"
        );
    }
    wait_for("the shared missed sink has every account", LIMIT, || {
        lines(&dir.path().join("missed.jsonl")).len() == ACCOUNTS as usize
    })
    .await;
    let shared = lines(&dir.path().join("missed.jsonl"));
    assert!(shared.iter().all(|l| l["type"] == "call.missed"));
    let mut accounts: Vec<&str> = shared
        .iter()
        .filter_map(|l| l["data"]["account"].as_str())
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    assert_eq!(accounts.len(), ACCOUNTS as usize);
    assert_eq!(sim.too_many_requests(), 0);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops")
        .expect("join")
        .expect("clean");
    sim.shutdown().await;
}
