//! The store test binary: one conformance suite run against every backend (SQLite always,
//! PostgreSQL when `RINGRELAY_TEST_POSTGRES_URL` is set, each test in a fresh schema that is
//! dropped afterwards), plus the crash test.

mod cluster;
mod conformance;
mod crash;
mod extensions;
mod open;

use std::future::Future;
use std::sync::Arc;

use ringrelay::config::StoreUrl;
use ringrelay::store::{self, OpenOptions, Store};

/// Runs `test` on a fresh SQLite file.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = StoreUrl::Sqlite(dir.path().join("test.db"));
    let s = store::open(&url, &OpenOptions::default())
        .await
        .expect("open sqlite");
    test(s).await;
}

/// Runs `test` in a fresh Postgres schema (dropped afterwards, also when the test fails);
/// skips when `RINGRELAY_TEST_POSTGRES_URL` is unset.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var("RINGRELAY_TEST_POSTGRES_URL") else {
        eprintln!("RINGRELAY_TEST_POSTGRES_URL unset: skipping the Postgres run");
        return;
    };
    let schema = format!("rr_test_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&base).await;
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = StoreUrl::Postgres(format!("{base}{sep}options=-csearch_path%3D{schema}"));
    let result = match store::open(&url, &OpenOptions::default()).await {
        Ok(s) => tokio::spawn(test(s)).await,
        Err(e) => panic!("open postgres: {e}"),
    };
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to RINGRELAY_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    client
}

/// Declares each conformance test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::on_sqlite(crate::conformance::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::on_postgres(crate::conformance::$name).await;
                }
            )*
        }
    };
}

conformance!(
    appends_are_stored_once_and_read_back_in_order,
    concurrent_appends_with_overlapping_uuids_store_each_uuid_once,
    activities_are_unique_by_key_and_move_the_cursor_in_the_same_transaction,
    claims_give_each_call_its_deliveries_in_order,
    two_workers_never_claim_the_same_delivery_and_calls_stay_ordered,
    a_stale_worker_cannot_complete_a_reclaimed_delivery,
    failed_deliveries_wait_dead_ones_stop_and_retry_revives_them,
    replay_makes_delivered_deliveries_due_again,
    a_disabled_sink_gets_no_claims_until_enabled,
    subscription_records_round_trip,
    the_coverage_ledger_tracks_gaps_and_backfills,
    cursors_are_named_per_account,
    a_lease_has_one_holder_and_its_fence_grows_when_it_changes_hands,
    concurrent_acquirers_get_the_lease_once,
    telephony_state_is_saved_loaded_and_deleted,
    pruning_removes_old_rows_and_keeps_recent_dedup_keys,
    account_summaries_count_one_accounts_recent_traffic,
    an_activity_payload_is_read_back_by_key,
    ping_answers,
    extension_lists_are_replaced_per_account_keeping_unchanged_times,
    a_repeated_extension_id_keeps_its_last_values,
    a_fenced_write_lands_only_while_the_lease_is_held,
    leases_list_their_holders,
    a_replica_renews_all_its_account_leases_at_once,
    shared_tokens_are_written_only_under_their_lease,
);
