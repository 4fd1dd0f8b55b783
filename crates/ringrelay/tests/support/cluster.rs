//! Helpers of the cluster tests: a fresh Postgres schema, a round-robin load balancer in
//! front of the replicas, a webhook sink that records what it receives, and replicas that
//! each run on their own tokio runtime, so one can be killed abruptly (its runtime shut
//! down: no lease released, no heartbeat written, like a process that died).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use ringrelay::app::{AppOptions, Application};
use ringrelay::config::Settings;
use ringrelay::ringcentral::Clock;
use ringrelay::ringcentral::clock::SleepFuture;
use ringrelay_sim::SimClock;
use tokio_util::sync::CancellationToken;

/// The simulator's time, but waits in real time (the replicas' timers must not move the
/// simulator's clock: the test does, explicitly).
#[derive(Debug, Clone)]
pub struct SimTime(pub SimClock);

impl Clock for SimTime {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A fresh schema in the test database, or `None` (skip) without
/// `RINGRELAY_TEST_POSTGRES_URL`.
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates `rr_cluster_<uuid>`.
    pub async fn create() -> Option<Self> {
        let Ok(base) = std::env::var("RINGRELAY_TEST_POSTGRES_URL") else {
            eprintln!("RINGRELAY_TEST_POSTGRES_URL unset: skipping the cluster test");
            return None;
        };
        let name = format!("rr_cluster_{}", uuid::Uuid::new_v4().simple());
        connect(&base)
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        Some(Self { base, name })
    }

    /// The store URL selecting the schema (`options=-csearch_path=…`).
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
    }

    /// Drops the schema.
    pub async fn drop_schema(self) {
        connect(&self.base)
            .await
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to RINGRELAY_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    client
}

/// A round-robin HTTP load balancer: each request goes to the next backend; a backend
/// that refuses the connection is skipped (as a health-checking balancer would).
#[derive(Clone)]
pub struct Balancer {
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    next: Arc<AtomicUsize>,
    /// Requests answered by each backend.
    pub served: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    http: reqwest::Client,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Balancer {
    /// Starts the balancer on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let lb = Self {
            backends: Arc::default(),
            next: Arc::default(),
            served: Arc::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            addr: listener.local_addr().expect("addr"),
            stop: CancellationToken::new(),
        };
        let app = axum::Router::new().fallback(forward).with_state(lb.clone());
        let stop = lb.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .expect("balancer");
        });
        lb
    }

    /// Its base URL (every replica's `public_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a backend.
    pub fn add(&self, backend: SocketAddr) {
        self.backends.lock().unwrap().push(backend);
    }

    /// Requests answered per backend so far.
    pub fn served(&self, backend: SocketAddr) -> usize {
        self.served
            .lock()
            .unwrap()
            .get(&backend)
            .copied()
            .unwrap_or(0)
    }

    /// Stops it.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn forward(
    State(lb): State<Balancer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let backends = lb.backends.lock().unwrap().clone();
    for _ in 0..backends.len() {
        let i = lb.next.fetch_add(1, Ordering::SeqCst) % backends.len();
        let backend = backends[i];
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = lb
            .http
            .request(method.clone(), format!("http://{backend}{path}"))
            .body(body.clone());
        for (name, value) in &headers {
            if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
                req = req.header(name, value);
            }
        }
        let Ok(resp) = req.send().await else {
            continue;
        };
        *lb.served.lock().unwrap().entry(backend).or_default() += 1;
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HeaderMap::new();
        for (name, value) in resp.headers() {
            if name != axum::http::header::CONTENT_LENGTH
                && name != axum::http::header::TRANSFER_ENCODING
            {
                out.insert(name.clone(), value.clone());
            }
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        return (status, out, bytes).into_response();
    }
    (StatusCode::BAD_GATEWAY, "no backend answered").into_response()
}

/// A webhook sink that answers 200 and records each delivery, in arrival order.
#[derive(Clone)]
pub struct Collector {
    /// `(webhook-id, body)` per request received.
    pub received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Collector {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let c = Self {
            received: Arc::default(),
            addr: listener.local_addr().expect("addr"),
            stop: CancellationToken::new(),
        };
        let received = c.received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let received = received.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let value = serde_json::from_slice(&body).unwrap_or_default();
                    received.lock().unwrap().push((id, value));
                    StatusCode::OK
                }
            }),
        );
        let stop = c.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .expect("collector");
        });
        c
    }

    /// The sink URL.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().unwrap().clone()
    }

    /// Stops it.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// One ringrelay replica on its own runtime.
pub struct Replica {
    /// Its replica id.
    pub id: String,
    /// Its own address (behind the balancer).
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Builds and runs a replica of `settings` named `id` on a new runtime.
    pub fn start(id: &str, settings: Settings, clock: SimClock) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("replica-{id}"))
            .enable_all()
            .build()
            .expect("runtime");
        let stop = CancellationToken::new();
        let owner = id.to_owned();
        let token = stop.clone();
        let running = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            let app = Application::build_with(
                settings,
                AppOptions {
                    listener: Some(listener),
                    clock: Some(Arc::new(SimTime(clock))),
                    call_log_lag: Duration::from_millis(200),
                    owner: Some(owner),
                    ..AppOptions::default()
                },
            )
            .await?;
            app.run_until_stopped(token).await
        });
        Self {
            id: id.to_owned(),
            addr,
            runtime: Some(runtime),
            stop,
            running: Some(running),
        }
    }

    /// Kills it abruptly: every task is dropped where it stands, nothing is released.
    pub fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Stops it gracefully and waits (bounded).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(30), running)
                .await
                .expect("replica stops in time")
                .expect("replica task")
                .expect("replica ran cleanly");
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A webhook address that only answers RingCentral's validation handshake (echoing the
/// `Validation-Token`), for keepers tested without a receiver.
pub struct Echo {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Echo {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let echo = Self {
            addr: listener.local_addr().expect("addr"),
            stop: CancellationToken::new(),
        };
        let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
            let mut out = HeaderMap::new();
            out.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            if let Some(token) = headers.get("validation-token") {
                out.insert("validation-token", token.clone());
            }
            (StatusCode::OK, out)
        });
        let stop = echo.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .expect("echo");
        });
        echo
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}
