//! The HTTP sink: POSTs the activity JSON with Standard Webhooks headers, a per-attempt
//! timeout, no redirects, no proxy, and the SSRF-guarded resolver.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use url::Url;

use super::retry::parse_retry_after;
use super::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};
use super::ssrf::{GuardedResolver, check_url};
use super::{AttemptOutcome, Sink};
use crate::activity::Activity;

/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("ringrelay/", env!("CARGO_PKG_VERSION"));

/// Most bytes of a failed answer's body kept in the error.
const ERROR_BODY_LIMIT: usize = 200;

/// A signed-webhook sink.
#[derive(Debug)]
pub struct HttpSink {
    url: Url,
    signer: Signer,
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpSink {
    /// A sink posting to `url`, signing with `signer`, each attempt bounded by `timeout`.
    ///
    /// # Errors
    /// A message when the HTTP client cannot be built.
    pub fn new(
        url: Url,
        signer: Signer,
        timeout: Duration,
        allow_private: bool,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(allow_private))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            url,
            signer,
            client,
            allow_private,
        })
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn send(&self, activity: &Activity) -> AttemptOutcome {
        // IP-literal hosts never reach the resolver: check them on every attempt too.
        if let Err(e) = check_url(&self.url, self.allow_private) {
            return AttemptOutcome::error(e.to_string());
        }
        let body = match super::body(activity) {
            Ok(b) => b,
            Err(e) => return AttemptOutcome::error(format!("cannot serialize: {e}")),
        };
        let id = activity.id.to_wire();
        let now = Utc::now();
        let ts = now.timestamp();
        let signature = self.signer.sign(&id, ts, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &id)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                return AttemptOutcome::error(format!("{kind}: {}", error_chain(&e)));
            }
        };
        let status = response.status();
        if status.is_success() {
            return AttemptOutcome::Delivered;
        }
        if status == reqwest::StatusCode::GONE {
            return AttemptOutcome::Gone;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let text = response.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(ERROR_BODY_LIMIT).collect();
        AttemptOutcome::Failed {
            status: Some(status.as_u16()),
            retry_after,
            error: format!("HTTP {status}: {snippet}"),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
