//! The call pipeline's moving parts (issue "Call pipeline"): the [`process`] loop that
//! turns the durable inbox into activities, and [`sync`], which turns RingCentral's call
//! log and message store into the same activities: after calls end, on a timer, and over
//! every coverage gap (backfill). The pure derivation lives in [`crate::processor`].
//!
//! Every activity is written with its deliveries in one transaction
//! ([`Store::insert_activities`]); keys are deterministic, so whatever is derived twice
//! (live and backfill, or a re-run after a crash) is stored once.

pub mod process;
pub mod sync;

use std::sync::Arc;

use crate::activity::Activity;
use crate::store::{AppendOutcome, CursorUpdate, Lease, NewActivity, Store, StoreError};

/// Decides which sinks get an activity (from each sink's `accounts` and `types`).
pub type SinkRouter = Arc<dyn Fn(&Activity) -> Vec<String> + Send + Sync>;

/// A router that sends everything to these sinks (tests, tools).
pub fn route_all(sinks: Vec<String>) -> SinkRouter {
    Arc::new(move |_| sinks.clone())
}

/// What the pipeline tells the rest of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineEvent {
    /// A call's telephony session finished: its call-log record will appear 15–30 s later.
    CallFinished {
        /// The account.
        account: crate::account::AccountId,
        /// The telephony session.
        telephony_session_id: String,
        /// The account's extensions that took part (whose call logs hold the record).
        extension_ids: Vec<String>,
    },
    /// The message store reported new voicemail that the event did not carry.
    VoicemailChanged {
        /// The account.
        account: crate::account::AccountId,
        /// The extension whose message store changed (`None`: the event path named none).
        extension_id: Option<String>,
    },
    /// The account's extension list changed (an extension was added, changed or removed).
    ExtensionsChanged {
        /// The account.
        account: crate::account::AccountId,
    },
    /// RingCentral's renewal reminder arrived: renew the subscription now.
    RenewalReminder {
        /// The account.
        account: crate::account::AccountId,
    },
}

/// Writes activities with their deliveries (and the processed position, when given) in one
/// transaction; returns how many were new.
///
/// # Errors
/// The store's error; nothing is written then.
pub async fn emit(
    store: &dyn Store,
    router: &SinkRouter,
    activities: Vec<Activity>,
    processed: Option<CursorUpdate>,
) -> Result<usize, StoreError> {
    emit_fenced(store, router, activities, processed, None).await
}

/// [`emit`] under a lease: with `fence`, nothing is written unless the lease is still held
/// (checked in the same transaction).
///
/// # Errors
/// [`StoreError::Conflict`] when the lease changed hands; otherwise the store's error;
/// nothing is written then.
pub async fn emit_fenced(
    store: &dyn Store,
    router: &SinkRouter,
    activities: Vec<Activity>,
    processed: Option<CursorUpdate>,
    fence: Option<&Lease>,
) -> Result<usize, StoreError> {
    if activities.is_empty() && processed.is_none() {
        return Ok(0);
    }
    let batch: Vec<NewActivity> = activities
        .into_iter()
        .map(|activity| {
            let sinks = router(&activity);
            NewActivity { activity, sinks }
        })
        .collect();
    let kinds: Vec<(String, String)> = batch
        .iter()
        .map(|a| (a.activity.account.to_string(), a.activity.kind.to_string()))
        .collect();
    let outcomes = match fence {
        Some(f) => store.insert_activities_fenced(batch, processed, f).await?,
        None => store.insert_activities(batch, processed).await?,
    };
    let mut new = 0;
    for ((account, kind), outcome) in kinds.into_iter().zip(outcomes) {
        if outcome == AppendOutcome::Stored {
            new += 1;
            metrics::counter!("ringrelay_activities_total", "account" => account, "type" => kind)
                .increment(1);
        }
    }
    Ok(new)
}
