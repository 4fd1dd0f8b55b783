//! DESIGN §10 durable-ingest goal: the receiver with SQLite group commit
//! (`synchronous=FULL`) against a bare hyper 200-OK server, driven by the same in-process
//! load generator (1 KB POSTs, 64 connections) in the same run.
//!
//! `cargo bench -p ringrelay --bench receiver` (options: `--seconds N`, `--connections N`,
//! `--store URL` to measure another store, e.g. a fresh Postgres schema).
//! Prints throughput for both, their ratio (goal ≥ 0.40) and the receiver's p50/p99
//! acknowledgement latency (goal p99 < 25 ms).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ringrelay::account::AccountId;
use ringrelay::config::{Secret, StoreUrl};
use ringrelay::receiver::{self, ReceiverLimits, ReceiverState, TokenRegistry};
use ringrelay::store::{self, OpenOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Figures {
    requests: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

fn body(i: u64) -> String {
    let pad = "x".repeat(820);
    format!(
        r#"{{"uuid":"bench-{i}","event":"/restapi/v1.0/account/1/telephony/sessions","timestamp":"2026-11-28T09:00:00Z","subscriptionId":"sub-1","body":{{"pad":"{pad}"}}}}"#
    )
}

async fn load(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    seconds: f64,
    offset: u64,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let url = format!("http://{addr}{path}");
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()
                .expect("client");
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let n = offset + (c as u64) * 10_000_000 + i;
                i += 1;
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("verification-token", "bench-token")
                    .body(body(n))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (lat, e) = r.expect("load task");
        all.extend(lat);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Figures {
        requests: all.len() as u64,
        seconds: secs,
        latencies_us: all,
        errors,
    }
}

async fn bare_server(stop: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt as _;
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b""))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = arg("--seconds", 5.0);
    let connections = arg("--connections", 64.0) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let stop = CancellationToken::new();
        let bare = bare_server(stop.clone()).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let url = match arg_text("--store") {
            Some(u) => StoreUrl::parse(&u).expect("--store: sqlite://… or postgres://…"),
            None => StoreUrl::parse(&format!(
                "sqlite://{}",
                dir.path().join("bench.db").display()
            ))
            .expect("url"),
        };
        let store = store::open(&url, &OpenOptions::default())
            .await
            .expect("store");
        let acme = AccountId::parse("acme").expect("slug");
        let tokens = TokenRegistry::new(Duration::from_secs(600));
        tokens.set(&acme, "sub-1", Secret::new("bench-token"), Utc::now());
        let state = ReceiverState::new(
            store.clone(),
            [acme],
            tokens,
            ReceiverLimits {
                max_body_bytes: 262_144,
                max_json_depth: 32,
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let recv_addr = listener.local_addr().expect("addr");
        let app = receiver::router(state);
        let server = {
            let stop = stop.clone();
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            })
        };

        // Warm up both, then measure each with the same generator.
        let _ = load(bare, "/", connections, 0.5, 0).await;
        let _ = load(
            recv_addr,
            "/webhooks/ringcentral/acme",
            connections,
            0.5,
            1_000_000_000,
        )
        .await;
        let b = load(bare, "/", connections, seconds, 0).await;
        let r = load(
            recv_addr,
            "/webhooks/ringcentral/acme",
            connections,
            seconds,
            2_000_000_000,
        )
        .await;

        println!("durable ingest, 1 KB POSTs, {connections} connections, {seconds} s each");
        println!(
            "  bare hyper 200-OK : {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            b.rate(),
            b.pct(0.5),
            b.pct(0.99),
            b.errors
        );
        println!(
            "  receiver + {:<8}: {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            match url {
                StoreUrl::Sqlite(_) => "SQLite",
                StoreUrl::Postgres(_) => "Postgres",
            },
            r.rate(),
            r.pct(0.5),
            r.pct(0.99),
            r.errors
        );
        println!(
            "  ratio receiver/bare: {:.2} (goal >= 0.40)",
            r.rate() / b.rate()
        );
        let stats = store.inbox_stats().await.expect("stats");
        println!(
            "  notifications stored: {} (each acknowledged one is committed)",
            stats.rows
        );
        stop.cancel();
        let _ = server.await;
    });
}
