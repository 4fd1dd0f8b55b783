//! Test harness: a started simulator with a logged-in client, and a webhook receiver
//! whose handshake and delivery answers a test scripts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ringrelay_sim::{JWT_GRANT, RateLimits, Sim, SimConfig, SimHandle};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Echo the token with 200 and `application/json`.
    Good,
    /// Echo a different token.
    WrongToken,
    /// Echo the token after this many milliseconds.
    Slow(u64),
    /// Echo the token with a body over 1024 bytes.
    Oversized,
    /// Echo the token but without `Content-Type: application/json`.
    NotJson,
    /// Answer this status.
    Status(u16),
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Debug)]
struct ReceiverState {
    answer: Mutex<Answer>,
    received: Mutex<Vec<Received>>,
}

/// A webhook endpoint on 127.0.0.1:0.
pub struct Receiver {
    state: Arc<ReceiverState>,
    pub url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn hook(State(s): State<Arc<ReceiverState>>, headers: HeaderMap, body: String) -> Response {
    let answer = *s.answer.lock().unwrap();
    let token = headers
        .get("validation-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if token.is_empty() {
        s.received.lock().unwrap().push(Received {
            headers: headers.clone(),
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
    }
    let json = [("content-type", "application/json")];
    match answer {
        Answer::Good => (StatusCode::OK, json, [("validation-token", token)]).into_response(),
        Answer::WrongToken => (
            StatusCode::OK,
            json,
            [("validation-token", "nope".to_owned())],
        )
            .into_response(),
        Answer::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::OK, json, [("validation-token", token)]).into_response()
        }
        Answer::Oversized => (
            StatusCode::OK,
            json,
            [("validation-token", token)],
            "x".repeat(2000),
        )
            .into_response(),
        Answer::NotJson => (StatusCode::OK, [("validation-token", token)]).into_response(),
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
    }
}

impl Receiver {
    pub async fn start(answer: Answer) -> Self {
        let state = Arc::new(ReceiverState {
            answer: Mutex::new(answer),
            received: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            state,
            url,
            stop,
            task,
        }
    }

    pub fn set(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// Small real-time timeouts so failure tests stay fast.
pub fn test_config() -> SimConfig {
    SimConfig::default().with_timeouts(Duration::from_millis(300), Duration::from_millis(300))
}

/// A config with rate limits off.
pub fn unlimited() -> SimConfig {
    test_config().with_rate_limits(RateLimits {
        enabled: false,
        ..RateLimits::default()
    })
}

/// A started simulator plus an HTTP client.
pub struct TestSim {
    pub sim: SimHandle,
    pub http: reqwest::Client,
}

impl TestSim {
    pub async fn start(config: SimConfig) -> Self {
        Self {
            sim: Sim::start(config).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// The JWT grant with the right credentials.
    pub async fn token_response(&self) -> reqwest::Response {
        let c = self.sim.config();
        self.http
            .post(self.url("/restapi/oauth/token"))
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[
                ("grant_type", JWT_GRANT),
                ("assertion", &self.sim.accounts()[0].jwt),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the token body.
    pub async fn login(&self) -> Value {
        let r = self.token_response().await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Logs in and returns the access token.
    pub async fn access_token(&self) -> String {
        self.login().await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/restapi/v1.0/subscription"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

/// A create body for `address` with the account-level telephony filter.
pub fn webhook(address: &str, filters: &[&str]) -> Value {
    json!({
        "eventFilters": filters,
        "deliveryMode": { "transportType": "WebHook", "address": address, "verificationToken": "s3cret" },
    })
}

pub const TELEPHONY: &str = "/restapi/v1.0/account/~/telephony/sessions";
