//! `ringrelay serve` killed with SIGKILL in the middle of a run of calls, then restarted on
//! the same store: every call still reaches the sink, each activity once by its id (the
//! sink is at-least-once, as the delivery contract says: a line written just before the
//! kill may be written again, with the same id, which is what receivers de-duplicate on).

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use ringrelay_sim::{CallScenario, RateLimits, Sim, SimConfig, SimHandle};

#[path = "support/e2e.rs"]
mod e2e;
use e2e::{lines, wait_for};

const LIMIT: Duration = Duration::from_secs(180);

fn distinct(all: &[serde_json::Value], kind: &str) -> usize {
    all.iter()
        .filter(|l| l["type"] == kind)
        .filter_map(|l| l["data"]["id"].as_str())
        .collect::<HashSet<_>>()
        .len()
}

fn serve(config: &std::path::Path, log: &std::path::Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ringrelay"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start ringrelay serve")
}

async fn subscribed(sim: &SimHandle, address: &str) {
    wait_for("an Active subscription at our address", LIMIT, || {
        sim.subscriptions()
            .iter()
            .any(|s| s["status"] == "Active" && s["deliveryMode"]["address"] == address)
    })
    .await;
}

#[tokio::test]
async fn serve_killed_mid_run_loses_nothing() {
    let sim = Sim::start(SimConfig::default().with_rate_limits(RateLimits::default()))
        .await
        .expect("sim");
    let rc_account = sim.accounts()[0].id.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("out.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let config = dir.path().join("ringrelay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
url = "sqlite://{db}"
[keeper]
reconcile_interval = "10s"
[sync]
interval = "5s"
{acme}"#,
            db = dir.path().join("k.db").display(),
            acme = e2e::acme_with_jsonl(&sim, &jsonl),
        ),
    )
    .expect("config");
    let log = dir.path().join("serve.log");
    let address = format!("http://127.0.0.1:{port}/webhooks/ringcentral/acme");

    let mut first = serve(&config, &log);
    subscribed(&sim, &address).await;
    let scenarios = [
        CallScenario::InboundMissed,
        CallScenario::InboundAnswered,
        CallScenario::OutboundAnswered,
        CallScenario::HoldResume,
    ];
    let mut records = 0;
    let mut missed = 0;
    for i in 0..12 {
        if i == 6 {
            // Mid-run: the process dies without any chance to clean up.
            first.start_kill().expect("SIGKILL");
            first.wait().await.expect("reaped");
        }
        let call = sim
            .run_call(&rc_account, scenarios[i % scenarios.len()])
            .await
            .expect("call");
        records += call.call_log.len();
        missed += usize::from(call.scenario == CallScenario::InboundMissed);
        sim.complete_calls().await;
    }
    // Past the call log's lag, so every call is in it.
    sim.advance(Duration::from_secs(60)).await;

    let mut second = serve(&config, &log);
    subscribed(&sim, &address).await;
    wait_for(
        "every call logged once and every missed call",
        LIMIT,
        || {
            let all = lines(&jsonl);
            distinct(&all, "call.logged") >= records && distinct(&all, "call.missed") >= missed
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = lines(&jsonl);
    assert_eq!(distinct(&all, "call.logged"), records);
    assert_eq!(distinct(&all, "call.missed"), missed);
    // An id is written at most twice (once before the kill, once after), and a rewritten
    // line is the same activity.
    let mut by_id: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
    for l in &all {
        by_id
            .entry(l["data"]["id"].as_str().expect("id"))
            .or_default()
            .push(l);
    }
    for (id, copies) in &by_id {
        assert!(copies.len() <= 2, "{id} written {} times", copies.len());
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{id}: copies differ"
        );
    }
    second.start_kill().expect("stop");
    second.wait().await.expect("reaped");
    sim.shutdown().await;
}
