//! The demo CRM: a small HTTP endpoint (axum on 127.0.0.1, port 0) standing in for a CRM
//! adapter. It does what `docs/consuming.md` asks of a consumer:
//!
//! - verifies the Standard Webhooks signature ([`Verifier`]) and answers 401 when it fails;
//! - de-duplicates on `webhook-id` (a repeat is answered 200 and counted, not recorded again);
//! - answers the first few attempts with 500 or 503 so the demo shows retries;
//! - counts the activities it accepted per account and type, and records every attempt.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio_util::sync::CancellationToken;

use crate::delivery::signing::Verifier;

/// The path activities are posted to.
pub const PATH: &str = "/activities";

/// How the demo CRM behaves.
#[derive(Debug, Clone)]
pub struct CrmOptions {
    /// The `whsec_…` secret signatures are checked with.
    pub secret: String,
    /// How many of the first new deliveries are refused with 500/503 (alternating) before
    /// any is accepted; each refused one is retried by ringrelay.
    pub fail_first: usize,
}

/// One activity the CRM accepted (the first time its `webhook-id` was seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `webhook-id` header (`msg_…`).
    pub webhook_id: String,
    /// `data.account`.
    pub account: String,
    /// The activity `type`.
    pub kind: String,
    /// `data.telephony_session_id`, when the activity is about a call.
    pub telephony_session_id: Option<String>,
}

/// What the CRM saw so far.
#[derive(Debug, Clone, Default)]
pub struct CrmStats {
    /// Every POST received.
    pub attempts: usize,
    /// POSTs refused on purpose (500/503) to show retries.
    pub refused: usize,
    /// POSTs whose signature did not verify (answered 401).
    pub bad_signatures: usize,
    /// POSTs that were not a readable activity (answered 400).
    pub malformed: usize,
    /// Repeats of an already accepted `webhook-id` (answered 200, dropped).
    pub duplicates: usize,
    /// Duplicates per account.
    pub duplicates_by_account: BTreeMap<String, usize>,
    /// Every accepted activity, in arrival order.
    pub accepted: Vec<Accepted>,
}

impl CrmStats {
    /// Accepted activities per account and type.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for a in &self.accepted {
            *out.entry((a.account.clone(), a.kind.clone())).or_insert(0) += 1;
        }
        out
    }

    /// Accepted activities of one account.
    pub fn accepted_for(&self, account: &str) -> usize {
        self.accepted
            .iter()
            .filter(|a| a.account == account)
            .count()
    }
}

#[derive(Debug, Default)]
struct Inner {
    stats: CrmStats,
    seen: HashSet<String>,
}

struct Shared {
    verifier: Verifier,
    fail_first: usize,
    inner: Mutex<Inner>,
}

/// A running demo CRM.
pub struct DemoCrm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DemoCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCrm").field("addr", &self.addr).finish()
    }
}

impl DemoCrm {
    /// Binds 127.0.0.1 on an ephemeral port and serves until [`DemoCrm::shutdown`].
    ///
    /// # Errors
    /// An invalid secret, or a failure to bind.
    pub async fn start(options: CrmOptions) -> anyhow::Result<Self> {
        let verifier = Verifier::new([options.secret.as_str()])
            .map_err(|e| anyhow::anyhow!("demo CRM secret: {e}"))?;
        let shared = Arc::new(Shared {
            verifier,
            fail_first: options.fail_first,
            inner: Mutex::new(Inner::default()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route(PATH, post(receive))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "demo CRM server failed");
                }
            }
        });
        Ok(Self {
            addr,
            shared,
            stop,
            task,
        })
    }

    /// The URL ringrelay's webhook sink posts to.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// A copy of what the CRM saw so far.
    pub fn stats(&self) -> CrmStats {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
            .clone()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "demo CRM task ended abnormally");
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let now = chrono::Utc::now().timestamp();
    let mut inner = shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
    inner.stats.attempts += 1;
    let (Some(id), Some(ts), Some(sig)) = (
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
    ) else {
        inner.stats.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, "missing webhook-* headers\n");
    };
    if shared.verifier.verify(id, ts, sig, &body, now).is_err() {
        inner.stats.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature\n");
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        inner.stats.malformed += 1;
        return (StatusCode::BAD_REQUEST, "not JSON\n");
    };
    let data = &payload["data"];
    let (Some(kind), Some(account)) = (payload["type"].as_str(), data["account"].as_str()) else {
        inner.stats.malformed += 1;
        return (StatusCode::BAD_REQUEST, "not an activity\n");
    };
    if inner.seen.contains(id) {
        inner.stats.duplicates += 1;
        *inner
            .stats
            .duplicates_by_account
            .entry(account.to_owned())
            .or_insert(0) += 1;
        return (StatusCode::OK, "duplicate, dropped\n");
    }
    if inner.stats.refused < shared.fail_first {
        inner.stats.refused += 1;
        return if inner.stats.refused % 2 == 1 {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "demo: failing on purpose\n",
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "demo: failing on purpose\n",
            )
        };
    }
    inner.seen.insert(id.to_owned());
    inner.stats.accepted.push(Accepted {
        webhook_id: id.to_owned(),
        account: account.to_owned(),
        kind: kind.to_owned(),
        telephony_session_id: data["telephony_session_id"].as_str().map(str::to_owned),
    });
    (StatusCode::OK, "ok\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signing::Signer;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    async fn post(
        client: &reqwest::Client,
        crm: &DemoCrm,
        id: &str,
        body: &str,
        secret: &str,
    ) -> u16 {
        let ts = chrono::Utc::now().timestamp();
        let sig = Signer::from_strs([secret])
            .expect("secret")
            .sign(id, ts, body.as_bytes());
        client
            .post(crm.url())
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.to_owned())
            .send()
            .await
            .expect("post")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn verifies_refuses_first_and_drops_duplicates() {
        let crm = DemoCrm::start(CrmOptions {
            secret: SECRET.into(),
            fail_first: 2,
        })
        .await
        .expect("start");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let body = r#"{"type":"call.missed","timestamp":"2026-01-01T00:00:00Z","data":{"account":"acme","telephony_session_id":"s-1"}}"#;
        let other = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleQ==";
        assert_eq!(post(&client, &crm, "msg_1", body, other).await, 401);
        assert_eq!(post(&client, &crm, "msg_1", body, SECRET).await, 500);
        assert_eq!(post(&client, &crm, "msg_1", body, SECRET).await, 503);
        assert_eq!(post(&client, &crm, "msg_1", body, SECRET).await, 200);
        assert_eq!(post(&client, &crm, "msg_1", body, SECRET).await, 200);
        assert_eq!(post(&client, &crm, "msg_2", "{}", SECRET).await, 400);
        let stats = crm.stats();
        assert_eq!(stats.attempts, 6);
        assert_eq!(stats.bad_signatures, 1);
        assert_eq!(stats.refused, 2);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.malformed, 1);
        assert_eq!(stats.accepted.len(), 1);
        assert_eq!(
            stats.accepted[0].telephony_session_id.as_deref(),
            Some("s-1")
        );
        assert_eq!(
            stats
                .counts()
                .get(&("acme".to_owned(), "call.missed".to_owned())),
            Some(&1)
        );
        crm.shutdown().await;
    }
}
