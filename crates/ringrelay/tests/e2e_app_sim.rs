//! The whole service against the simulator: the keeper subscribes (the simulator's
//! handshake reaches our receiver), `check` sees a healthy account, a missed call's live
//! events become `call.missed`, and the call-log sync adds its `call.logged`, each written
//! once to the sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ringrelay::app::{AppOptions, Application};
use ringrelay::config;
use ringrelay_sim::{CallScenario, RateLimits, Sim, SimConfig};
use tokio_util::sync::CancellationToken;

async fn wait_for<F: FnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn subscribe_check_receive_and_sync() {
    let mut sim_config = SimConfig::default().with_rate_limits(RateLimits {
        enabled: false,
        ..RateLimits::default()
    });
    sim_config.reorder_rate = 0.3;
    sim_config.duplicate_rate = 0.3;
    let sim = Sim::start(sim_config).await.expect("sim");
    let rc_account = sim.accounts()[0].id.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("activities.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let text = format!(
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
[[accounts]]
id = "acme"
server = "{server}"
client_id = "{client_id}"
client_secret = "{client_secret}"
jwt = "{jwt}"
[[sinks]]
name = "log"
type = "jsonl"
path = "{jsonl}"
"#,
        db = dir.path().join("e2e.db").display(),
        server = sim.base_url(),
        client_id = sim.config().client_id,
        client_secret = sim.config().client_secret,
        jwt = sim.accounts()[0].jwt,
        jsonl = jsonl.display(),
    );
    let settings = config::load(&text, &HashMap::new()).expect("config");
    let app = Application::build_with(
        settings.clone(),
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

    let address = format!("http://127.0.0.1:{port}/webhooks/ringcentral/acme");
    wait_for("an Active subscription at our address", || {
        sim.subscriptions()
            .iter()
            .any(|s| s["status"] == "Active" && s["deliveryMode"]["address"] == address.as_str())
    })
    .await;

    let (report, ok) = ringrelay::check::run(&settings).await;
    assert!(ok, "check should pass:\n{report}");
    assert!(report.contains("answers the handshake"), "{report}");

    sim.run_call(&rc_account, CallScenario::InboundMissed)
        .await
        .expect("call");
    sim.complete_calls().await;
    wait_for("call.missed in the sink", || {
        lines(&jsonl).iter().any(|l| l["type"] == "call.missed")
    })
    .await;

    // The call log shows the call 15–30 s (simulated) after it ended.
    sim.advance(Duration::from_secs(40)).await;
    wait_for("call.logged in the sink", || {
        lines(&jsonl).iter().any(|l| l["type"] == "call.logged")
    })
    .await;

    let all = lines(&jsonl);
    let mut ids: Vec<&str> = all
        .iter()
        .filter_map(|l| l["data"]["id"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "each activity written once: {all:?}");
    assert_eq!(all.iter().filter(|l| l["type"] == "call.missed").count(), 1);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops")
        .expect("join")
        .expect("clean");
    sim.shutdown().await;
}
