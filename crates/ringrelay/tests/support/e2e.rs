//! Helpers of the end-to-end tests: bounded waiting, and reading a JSONL sink.

use std::time::Duration;

/// Polls `f` every 50 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_for<F: FnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let rounds = limit.as_millis() / 50;
    for _ in 0..rounds.max(1) {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Every activity a JSONL sink has written so far (a line being written is skipped).
pub fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The config tail most end-to-end tests share: account `acme` logging in as the
/// simulator's first account, and a JSONL sink `log` writing to `jsonl`.
#[allow(dead_code)] // the multi-account tests build their own
pub fn acme_with_jsonl(sim: &ringrelay_sim::SimHandle, jsonl: &std::path::Path) -> String {
    format!(
        r#"
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
        server = sim.base_url(),
        client_id = sim.config().client_id,
        client_secret = sim.config().client_secret,
        jwt = sim.accounts()[0].jwt,
        jsonl = jsonl.display(),
    )
}

/// A ringrelay started by [`start_on`].
#[allow(dead_code)] // not every end-to-end test binary starts one this way
pub struct Running {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Its store.
    pub store: std::sync::Arc<dyn ringrelay::store::Store>,
}

#[allow(dead_code)]
impl Running {
    /// Stops it and checks it stopped cleanly within 30 s.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops")
            .expect("join")
            .expect("clean");
    }
}

/// Builds and runs ringrelay with `settings` on 127.0.0.1:`port` (bound again: a restart
/// keeps the address RingCentral posts to), on the simulator's clock, with a short
/// call-log lag.
#[allow(dead_code)]
pub async fn start_on(
    settings: &ringrelay::config::Settings,
    port: u16,
    sim: &ringrelay_sim::SimHandle,
) -> Running {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the same port again");
    let app = ringrelay::app::Application::build_with(
        settings.clone(),
        ringrelay::app::AppOptions {
            listener: Some(listener),
            clock: Some(std::sync::Arc::new(sim.clock())),
            call_log_lag: Duration::from_millis(200),
            ..ringrelay::app::AppOptions::default()
        },
    )
    .await
    .expect("build");
    let store = app.store();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Running { stop, task, store }
}
