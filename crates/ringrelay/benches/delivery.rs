//! Delivery benchmark (`cargo bench -p ringrelay --bench delivery`): activities are stored
//! in an SQLite store at a steady rate (default 1 000/s for 5 s; `RINGRELAY_BENCH_RATE`,
//! `RINGRELAY_BENCH_SECONDS`), one delivery each to a signed HTTP sink served by a local
//! axum endpoint, with the worker woken by the processor's notify. Prints the delivery
//! throughput and commit-to-delivery latency (store commit → the endpoint received it)
//! p50/p99/max.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::StoreUrl;
use ringrelay::delivery::http::HttpSink;
use ringrelay::delivery::signing::Signer;
use ringrelay::delivery::worker::{self, WorkerOptions};
use ringrelay::delivery::{ConfiguredSink, Matcher, RetryPolicy};
use ringrelay::store::{self, NewActivity, OpenOptions};
use tokio_util::sync::CancellationToken;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate = env_num("RINGRELAY_BENCH_RATE", 1000).max(10);
    let seconds = env_num("RINGRELAY_BENCH_SECONDS", 5).max(1);
    let total = usize::try_from(rate * seconds)?;

    // The fake CRM: records when each webhook-id arrived.
    let seen: Seen = Arc::new(Mutex::new(HashMap::new()));
    let s2 = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = Arc::clone(&s2);
            async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    seen.lock()
                        .expect("lock")
                        .entry(id.to_owned())
                        .or_insert_with(Instant::now);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
    });

    let dir = tempfile::tempdir()?;
    let store = store::open(
        &StoreUrl::Sqlite(dir.path().join("bench.db")),
        &OpenOptions::default(),
    )
    .await?;
    let sink = HttpSink::new(
        url::Url::parse(&format!("http://{addr}/hook"))?,
        Signer::from_strs(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?,
        Duration::from_secs(15),
        true,
    )
    .map_err(anyhow::Error::msg)?;
    let configured = ConfiguredSink {
        name: "crm".into(),
        sink: Arc::new(sink),
        matcher: Matcher::new(&[], &["*".into()]).map_err(anyhow::Error::msg)?,
        policy: RetryPolicy {
            schedule: vec![Duration::from_secs(1)],
            jitter: 0.2,
            disable_after: Duration::from_secs(86_400),
            max_retry_after: Duration::from_secs(60),
        },
    };
    let wakeup = Arc::new(tokio::sync::Notify::new());
    let shutdown = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    worker::spawn_all(
        &store,
        vec![configured],
        &WorkerOptions {
            owner: "bench".into(),
            batch: 64,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(50),
        },
        &worker::system_clock(),
        &wakeup,
        &shutdown,
        &tracker,
    );

    // Produce: batches every 10 ms, as the processor commits them.
    let account = AccountId::parse("acme").map_err(|e| anyhow::anyhow!("{e}"))?;
    let per_tick = usize::try_from((rate / 100).max(1))?;
    let mut committed: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let start = Instant::now();
    let mut n = 0;
    while n < total {
        tick.tick().await;
        let batch: Vec<NewActivity> = (n..(n + per_tick).min(total))
            .map(|i| NewActivity {
                activity: Activity::new(
                    format!("acme:bench:{i}"),
                    ActivityKind::CallAnswered,
                    account.clone(),
                    format!("call-{i}"),
                    ActivitySource::Webhook,
                    chrono::Utc::now(),
                    serde_json::Map::new(),
                ),
                sinks: vec!["crm".into()],
            })
            .collect();
        let ids: Vec<String> = batch.iter().map(|a| a.activity.id.to_wire()).collect();
        n += batch.len();
        store.insert_activities(batch, None).await?;
        let now = Instant::now();
        for id in ids {
            committed.insert(id, now);
        }
        wakeup.notify_waiters();
    }
    let produced_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().expect("lock").len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    stop.cancel();
    server.await??;

    let seen = seen.lock().expect("lock").clone();
    let mut lat: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, c)| seen.get(id).map(|r| r.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    #[allow(clippy::cast_precision_loss)]
    let throughput = seen.len() as f64 / elapsed.as_secs_f64();
    println!("delivery bench: {total} activities offered at {rate}/s over {produced_in:.2?}");
    println!(
        "  delivered: {} in {elapsed:.2?} ({throughput:.0}/s)",
        seen.len()
    );
    println!(
        "  commit-to-delivery: p50 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    anyhow::ensure!(
        seen.len() == total,
        "only {} of {total} delivered",
        seen.len()
    );
    Ok(())
}
