//! DESIGN §10 durable-ingest goal: the receiver with SQLite group commit
//! (`synchronous=FULL`) against a bare hyper 200-OK server, driven by the same in-process
//! load generator (1 KB POSTs, 64 connections) in the same run.
//!
//! `cargo bench -p ringrelay --bench receiver` (options: `--rounds N` (5), `--seconds N` per
//! server per round (2), `--connections N` (64), `--store URL` to measure another store,
//! e.g. a fresh Postgres schema, `--profile-receiver` to load only the receiver, for a
//! profiler). The two servers are measured in alternating rounds.
//! Prints each round, throughput for both over the run, their ratio (goal ≥ 0.40) and the
//! receiver's p50/p99 acknowledgement latency (goal p99 < 25 ms), and checks that every
//! acknowledged notification is stored.

use std::collections::{BTreeMap, HashMap};
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
    /// CPU time the whole process (generator and server) used meanwhile.
    cpu_seconds: f64,
    /// What the whole machine's CPUs did meanwhile (every process and kernel thread).
    machine: MachineCpu,
    /// CPU time of this process's threads meanwhile, by thread name.
    threads: BTreeMap<String, f64>,
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    /// Microseconds of CPU (generator and server together) per request.
    fn cpu_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.requests as f64
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

/// User and system CPU time of this process so far (Linux: `/proc/self/stat`, in clock
/// ticks of 1/100 s); NaN elsewhere.
fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu(&stat).map(|(_, seconds)| seconds))
        .unwrap_or(f64::NAN)
}

/// The command name and the user + system CPU seconds in a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> Option<(&str, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((
        stat.get(open + 1..close)?,
        (ticks(11)? + ticks(12)?) / 100.0,
    ))
}

/// CPU seconds of each of this process's threads so far, by thread id, with the thread's
/// name (Linux: `/proc/self/task/*/stat`); empty elsewhere.
fn thread_cpu() -> HashMap<u64, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, seconds)) = stat_cpu(&stat) {
            out.insert(tid, (name.to_owned(), seconds));
        }
    }
    out
}

/// CPU seconds each thread name used between two [`thread_cpu`] readings (threads that
/// ended meanwhile are not counted).
fn thread_cpu_since(before: &HashMap<u64, (String, f64)>) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for (tid, (name, now)) in thread_cpu() {
        let was = before.get(&tid).map_or(0.0, |(_, s)| *s);
        // Tokio's workers and blocking threads share a name; so do reqwest's resolvers.
        *by_name.entry(name).or_insert(0.0) += now - was;
    }
    by_name
}

/// Machine-wide CPU time by state, in seconds summed over all CPUs (Linux: the `cpu` line
/// of `/proc/stat`); zeros elsewhere. Busy time outside this process (kernel threads such
/// as the file system's journal, other processes) only shows here.
#[derive(Clone, Copy, Default)]
struct MachineCpu {
    busy: f64,
    idle: f64,
    iowait: f64,
    steal: f64,
}

impl MachineCpu {
    fn now() -> Self {
        let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
            return Self::default();
        };
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse::<f64>().unwrap_or(0.0) / 100.0)
            .collect();
        if v.len() < 8 {
            return Self::default();
        }
        Self {
            busy: v[0] + v[1] + v[2] + v[5] + v[6],
            idle: v[3],
            iowait: v[4],
            steal: v[7],
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            busy: self.busy - before.busy,
            idle: self.idle - before.idle,
            iowait: self.iowait - before.iowait,
            steal: self.steal - before.steal,
        }
    }

    fn add(self, o: Self) -> Self {
        Self {
            busy: self.busy + o.busy,
            idle: self.idle + o.idle,
            iowait: self.iowait + o.iowait,
            steal: self.steal + o.steal,
        }
    }
}

/// The load generator's clients: one keep-alive HTTP/1.1 connection each, built once (and
/// outside every timed window) and used for both servers.
fn clients(connections: usize) -> Vec<reqwest::Client> {
    (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()
                .expect("client")
        })
        .collect()
}

/// Each client POSTs one notification at a time to `addr` for `seconds`; uuids are unique
/// across calls (`offset` + client × 10 M + request number).
async fn load(
    clients: &[reqwest::Client],
    addr: SocketAddr,
    path: &str,
    seconds: f64,
    offset: u64,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let machine_before = MachineCpu::now();
    let threads_before = thread_cpu();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        let url = format!("http://{addr}{path}");
        let client = client.clone();
        tasks.spawn(async move {
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
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let machine = MachineCpu::now().since(machine_before);
    let threads = thread_cpu_since(&threads_before);
    all.sort_unstable();
    Figures {
        requests: all.len() as u64,
        seconds: secs,
        cpu_seconds,
        machine,
        threads,
        latencies_us: all,
        errors,
    }
}

impl Figures {
    fn merge(all: &[Figures]) -> Figures {
        let mut latencies_us: Vec<u64> = all
            .iter()
            .flat_map(|f| f.latencies_us.iter().copied())
            .collect();
        latencies_us.sort_unstable();
        Figures {
            requests: all.iter().map(|f| f.requests).sum(),
            seconds: all.iter().map(|f| f.seconds).sum(),
            cpu_seconds: all.iter().map(|f| f.cpu_seconds).sum(),
            machine: all
                .iter()
                .fold(MachineCpu::default(), |acc, f| acc.add(f.machine)),
            threads: all.iter().fold(BTreeMap::new(), |mut acc, f| {
                for (name, s) in &f.threads {
                    *acc.entry(name.clone()).or_insert(0.0) += s;
                }
                acc
            }),
            latencies_us,
            errors: all.iter().map(|f| f.errors).sum(),
        }
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
    let seconds = arg("--seconds", 2.0);
    let rounds = (arg("--rounds", 5.0) as usize).max(1);
    let connections = arg("--connections", 64.0) as usize;
    // `--profile-receiver`: load only the receiver (for a profiler), no comparison.
    let profile_receiver = std::env::args().any(|a| a == "--profile-receiver");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The receiver runs with the Prometheus recorder installed, as `serve` does.
    let metrics = ringrelay::admin::metrics::handle().expect("metrics recorder");
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

        // Warm up both, then measure them in alternating rounds (bare first in odd rounds,
        // the receiver first in even ones), so a machine that gets busier or quieter during
        // the run weighs on both alike.
        let pool = clients(connections);
        let receiver_path = "/webhooks/ringcentral/acme";
        let _ = load(&pool, bare, "/", 0.5, 0).await;
        let warm = load(&pool, recv_addr, receiver_path, 0.5, 1_000_000_000).await;
        let mut acknowledged = warm.requests;
        let (mut bares, mut receivers) = (Vec::new(), Vec::new());
        let store_name = match url {
            StoreUrl::Sqlite(_) => "SQLite",
            StoreUrl::Postgres(_) => "Postgres",
        };
        println!(
            "durable ingest, 1 KB POSTs, {connections} connections, {rounds} rounds of {seconds} s per server"
        );
        for round in 0..rounds {
            let offset = 2_000_000_000 + round as u64 * 1_000_000_000;
            if profile_receiver {
                let r = load(&pool, recv_addr, receiver_path, seconds, offset).await;
                println!("  round {}: receiver {:>7.0} req/s", round + 1, r.rate());
                acknowledged += r.requests;
                continue;
            }
            let (b, r) = if round % 2 == 0 {
                let b = load(&pool, bare, "/", seconds, 0).await;
                (b, load(&pool, recv_addr, receiver_path, seconds, offset).await)
            } else {
                let r = load(&pool, recv_addr, receiver_path, seconds, offset).await;
                (load(&pool, bare, "/", seconds, 0).await, r)
            };
            println!(
                "  round {}: bare {:>7.0} req/s, receiver {:>7.0} req/s, ratio {:.2}   CPU per request: bare {:>4.0} us, receiver {:>4.0} us",
                round + 1,
                b.rate(),
                r.rate(),
                r.rate() / b.rate(),
                b.cpu_us(),
                r.cpu_us()
            );
            acknowledged += r.requests;
            bares.push(b);
            receivers.push(r);
        }
        if profile_receiver {
            stop.cancel();
            let _ = server.await;
            return;
        }
        let mut ratios: Vec<f64> = bares
            .iter()
            .zip(&receivers)
            .map(|(b, r)| r.rate() / b.rate())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (b, r) = (Figures::merge(&bares), Figures::merge(&receivers));
        println!(
            "  bare hyper 200-OK : {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            b.rate(),
            b.pct(0.5),
            b.pct(0.99),
            b.errors
        );
        println!(
            "  receiver + {store_name:<8}: {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            r.rate(),
            r.pct(0.5),
            r.pct(0.99),
            r.errors
        );
        println!(
            "  ratio receiver/bare: {:.2} over the whole run, rounds {:.2}-{:.2}, median {:.2} (goal >= 0.40)",
            r.rate() / b.rate(),
            ratios[0],
            ratios[ratios.len() - 1],
            ratios[ratios.len() / 2]
        );
        println!(
            "  CPU per request (generator + server, whole process): bare {:.0} us, receiver {:.0} us, ratio {:.2}",
            b.cpu_us(),
            r.cpu_us(),
            b.cpu_us() / r.cpu_us()
        );
        let cores = |f: &Figures, v: f64| v / f.seconds;
        println!(
            "  machine, in cores busy / idle / iowait / steal: bare {:.2} / {:.2} / {:.2} / {:.2} (this process {:.2}), receiver {:.2} / {:.2} / {:.2} / {:.2} (this process {:.2})",
            cores(&b, b.machine.busy),
            cores(&b, b.machine.idle),
            cores(&b, b.machine.iowait),
            cores(&b, b.machine.steal),
            cores(&b, b.cpu_seconds),
            cores(&r, r.machine.busy),
            cores(&r, r.machine.idle),
            cores(&r, r.machine.iowait),
            cores(&r, r.machine.steal),
            cores(&r, r.cpu_seconds),
        );
        let per_thread = |f: &Figures| {
            f.threads
                .iter()
                .filter(|(_, s)| **s > 0.0)
                .map(|(name, s)| format!("{name} {:.1}", s * 1e6 / f.requests as f64))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  CPU per request by thread, us: bare: {}", per_thread(&b));
        println!("  CPU per request by thread, us: receiver: {}", per_thread(&r));
        let rendered = metrics.render();
        let sample = |name: &str| {
            rendered
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let prefix = "ringrelay_inbox_commit";
        let (batches, rows) = (
            sample(&format!("{prefix}_batch_size_count")),
            sample(&format!("{prefix}_batch_size_sum")),
        );
        println!(
            "  group commits: {batches:.0}, {:.1} notifications each on average, {:.2} ms each on average",
            rows / batches,
            sample(&format!("{prefix}_seconds_sum")) / sample(&format!("{prefix}_seconds_count"))
                * 1000.0
        );
        // The handler's own time (from its start to the commit's answer) against the round
        // trip the generator sees: the rest is HTTP and scheduling on the shared cores.
        let ack = "ringrelay_webhook_ack_seconds";
        println!(
            "  handler time (to the commit's answer): {:.2} ms on average, of a {:.2} ms average round trip",
            sample(&format!("{ack}_sum")) / sample(&format!("{ack}_count")) * 1000.0,
            r.latencies_us.iter().sum::<u64>() as f64 / r.latencies_us.len().max(1) as f64 / 1000.0
        );
        let stats = store.inbox_stats().await.expect("stats");
        println!(
            "  notifications stored: {} of {acknowledged} acknowledged{}",
            stats.rows,
            if stats.rows == acknowledged {
                ""
            } else {
                "  <- MISMATCH"
            }
        );
        stop.cancel();
        let _ = server.await;
    });
}
