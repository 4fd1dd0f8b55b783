//! The webhook endpoint RingCentral calls: `POST /webhooks/ringcentral/{account}`.
//!
//! It answers the validation handshake, checks `Verification-Token`, writes the raw
//! notification to the inbox through the store's group commit, and only then answers 200
//! (DESIGN §2, invariant 1). It never calls RingCentral and never delivers inline. Every
//! refusal is a 4xx with a JSON reason, a log line and a metric; nothing it refuses
//! touches what is stored.

pub mod envelope;
mod handler;
pub mod tokens;

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

pub use tokens::{TokenCheck, TokenRegistry};

use crate::account::AccountId;
use crate::config::ServerSettings;
use crate::store::Store;

/// The path RingCentral posts to.
pub const WEBHOOK_PATH: &str = "/webhooks/ringcentral/{account}";

/// Request limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverLimits {
    /// Largest body accepted (413 above).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted (400 above).
    pub max_json_depth: usize,
}

impl ReceiverLimits {
    /// From the server settings.
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            max_body_bytes: server.max_body_bytes,
            max_json_depth: server.max_json_depth,
        }
    }
}

/// A notification from a subscription that is not the account's current one: the keeper
/// deletes such strays (they would otherwise double every event and count against
/// RingCentral's subscription limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayReport {
    /// The account whose URL received it.
    pub account: AccountId,
    /// The stray subscription's id.
    pub subscription_id: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// What the webhook handler needs; cheap to clone.
#[derive(Clone)]
pub struct ReceiverState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) accounts: Arc<HashSet<AccountId>>,
    pub(crate) tokens: TokenRegistry,
    pub(crate) limits: ReceiverLimits,
    pub(crate) strays: Option<mpsc::Sender<StrayReport>>,
}

impl ReceiverState {
    /// A receiver for these accounts, storing into `store`, checking tokens in `tokens`.
    pub fn new(
        store: Arc<dyn Store>,
        accounts: impl IntoIterator<Item = AccountId>,
        tokens: TokenRegistry,
        limits: ReceiverLimits,
    ) -> Self {
        Self {
            store,
            accounts: Arc::new(accounts.into_iter().collect()),
            tokens,
            limits,
            strays: None,
        }
    }

    /// Reports notifications from unknown subscriptions on this channel (never blocks:
    /// when it is full the report is dropped; the keeper's reconcile finds strays anyway).
    #[must_use]
    pub fn with_stray_reports(mut self, strays: mpsc::Sender<StrayReport>) -> Self {
        self.strays = Some(strays);
        self
    }
}

/// The receiver's routes. Serve the app with
/// `into_make_service_with_connect_info::<SocketAddr>()` so refusals log the peer address.
pub fn router(state: ReceiverState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route(WEBHOOK_PATH, post(handler::webhook))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
