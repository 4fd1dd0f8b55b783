//! Sinks (HTTP with Standard Webhooks signatures, NATS JetStream, JSONL), retry policy,
//! SSRF guard, the delivery worker and the operator actions (DESIGN §4).
//!
//! - [`signing`]: Standard Webhooks [`Signer`](signing::Signer) and
//!   [`Verifier`](signing::Verifier).
//! - [`retry`]: [`RetryPolicy`] → [`Decision`], and the per-sink circuit breaker.
//! - [`ssrf`]: URL and resolved-address checks.
//! - [`http`], [`nats`], [`jsonl`]: the three [`Sink`]s; [`matcher`]: which activities a
//!   sink takes.
//! - [`worker`]: claims due deliveries from the store, sends, decides, completes; and the
//!   operator actions (retry one, retry all dead, replay, pause/resume).

pub mod http;
pub mod jsonl;
pub mod matcher;
pub mod nats;
pub mod retry;
pub mod signing;
pub mod ssrf;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::activity::Activity;
use crate::config::{SinkKind, SinkSettings};

pub use matcher::Matcher;
pub use retry::{Decision, RetryPolicy};

/// How one attempt to hand an activity to a sink ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The sink accepted it (HTTP 2xx, JetStream ack, line written and synced).
    Delivered,
    /// It failed; the policy decides whether and when to retry.
    Failed {
        /// The HTTP status, when the sink answered.
        status: Option<u16>,
        /// The sink's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
        /// What went wrong.
        error: String,
    },
    /// The sink answered 410 Gone: it no longer wants deliveries.
    Gone,
}

impl AttemptOutcome {
    /// A failure without an HTTP status.
    pub fn error(error: impl Into<String>) -> Self {
        Self::Failed {
            status: None,
            retry_after: None,
            error: error.into(),
        }
    }

    /// The outcome's metric label (`delivered`, `failed`, `gone`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed { .. } => "failed",
            Self::Gone => "gone",
        }
    }
}

/// A destination for activities. One attempt per call; the worker retries.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Hands `activity` to the sink once and reports how it went. Never panics on a bad
    /// answer: every problem is an [`AttemptOutcome::Failed`].
    async fn send(&self, activity: &Activity) -> AttemptOutcome;
}

/// Why a sink could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The URL is refused by the SSRF guard.
    #[error("sink {sink}: {source}")]
    Ssrf {
        /// The sink.
        sink: String,
        /// Why.
        source: ssrf::SsrfError,
    },
    /// A signing secret is invalid.
    #[error("sink {sink}: {source}")]
    Secret {
        /// The sink.
        sink: String,
        /// Why.
        source: signing::SignatureError,
    },
    /// A type glob is invalid.
    #[error("sink {sink}: {error}")]
    Matcher {
        /// The sink.
        sink: String,
        /// Why.
        error: String,
    },
    /// The HTTP client, NATS connection or output file could not be set up.
    #[error("sink {sink}: {error}")]
    Setup {
        /// The sink.
        sink: String,
        /// Why.
        error: String,
    },
}

/// A sink ready to run: the sink itself, which activities it takes, and its retry policy.
#[derive(Clone)]
pub struct ConfiguredSink {
    /// The sink's name (the store's delivery `sink` column).
    pub name: String,
    /// The destination.
    pub sink: Arc<dyn Sink>,
    /// Which activities it takes.
    pub matcher: Matcher,
    /// How failures are retried.
    pub policy: RetryPolicy,
}

impl std::fmt::Debug for ConfiguredSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredSink")
            .field("name", &self.name)
            .field("matcher", &self.matcher)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Checks a sink's settings without connecting anywhere (for config load and
/// `ringrelay check`): the type globs, and for a webhook the SSRF rule on its URL and the
/// signing secrets. [`build`] runs the same checks.
///
/// # Errors
/// The first [`BuildError`] found.
pub fn validate(settings: &SinkSettings) -> Result<(), BuildError> {
    let sink = || settings.name.clone();
    Matcher::new(&settings.accounts, &settings.types).map_err(|error| BuildError::Matcher {
        sink: sink(),
        error,
    })?;
    if let SinkKind::Webhook {
        url,
        secrets,
        allow_private,
        ..
    } = &settings.kind
    {
        ssrf::check_url(url, *allow_private).map_err(|source| BuildError::Ssrf {
            sink: sink(),
            source,
        })?;
        signing::Signer::new(secrets).map_err(|source| BuildError::Secret {
            sink: sink(),
            source,
        })?;
    }
    Ok(())
}

/// Builds the sink described by `settings` (the SSRF check of a webhook URL happens here,
/// and again at connect time). NATS sinks connect here and create their stream when asked.
///
/// # Errors
/// [`BuildError`] when the settings cannot make a working sink.
pub async fn build(settings: &SinkSettings) -> Result<ConfiguredSink, BuildError> {
    let name = settings.name.clone();
    let matcher =
        Matcher::new(&settings.accounts, &settings.types).map_err(|error| BuildError::Matcher {
            sink: name.clone(),
            error,
        })?;
    let sink: Arc<dyn Sink> = match &settings.kind {
        SinkKind::Webhook {
            url,
            secrets,
            timeout,
            allow_private,
        } => {
            ssrf::check_url(url, *allow_private).map_err(|source| BuildError::Ssrf {
                sink: name.clone(),
                source,
            })?;
            let signer = signing::Signer::new(secrets).map_err(|source| BuildError::Secret {
                sink: name.clone(),
                source,
            })?;
            Arc::new(
                http::HttpSink::new(url.clone(), signer, *timeout, *allow_private).map_err(
                    |error| BuildError::Setup {
                        sink: name.clone(),
                        error,
                    },
                )?,
            )
        }
        SinkKind::Nats {
            url,
            subject,
            stream,
            create_stream,
        } => Arc::new(
            nats::NatsSink::connect(url, subject, stream, *create_stream, nats::ACK_TIMEOUT)
                .await
                .map_err(|error| BuildError::Setup {
                    sink: name.clone(),
                    error,
                })?,
        ),
        SinkKind::Jsonl { path } => {
            Arc::new(
                jsonl::JsonlSink::open(path).map_err(|error| BuildError::Setup {
                    sink: name.clone(),
                    error,
                })?,
            )
        }
    };
    Ok(ConfiguredSink {
        name,
        sink,
        matcher,
        policy: RetryPolicy::from_settings(settings),
    })
}

/// The JSON body every sink receives for an activity (the Standard Webhooks payload).
///
/// # Errors
/// Never in practice (a `serde_json::Value` always serializes); kept as an error for safety.
pub fn body(activity: &Activity) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&activity.payload)
}
