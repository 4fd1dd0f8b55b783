//! The PostgreSQL schema, as ordered migrations recorded in `ringrelay_migrations`.
//!
//! Tables are created in the first schema of the connection's `search_path`, so a URL with
//! `?options=-csearch_path%3Dmyschema` puts ringrelay in its own schema.

use deadpool_postgres::Client;

use super::pg_err;
use crate::store::StoreError;

/// Migrations in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE inbox (
    seq BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL,
    subscription_id TEXT,
    uuid TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    ts BIGINT,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    unknown_subscription BOOLEAN NOT NULL
);
CREATE INDEX inbox_received_at ON inbox (received_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE activities (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    activity_id TEXT NOT NULL,
    account TEXT NOT NULL,
    call_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX activities_created_at ON activities (created_at);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    activity BIGINT NOT NULL REFERENCES activities (id),
    sink TEXT NOT NULL,
    account TEXT NOT NULL,
    call_key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT,
    owner TEXT,
    last_error TEXT,
    last_status BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (activity, sink)
);
CREATE INDEX deliveries_due ON deliveries (sink, due_at)
    WHERE state IN ('pending', 'failed', 'in_flight');
CREATE INDEX deliveries_open_call ON deliveries (sink, call_key, id)
    WHERE state IN ('pending', 'failed', 'in_flight');
CREATE INDEX deliveries_delivered ON deliveries (delivered_at) WHERE state = 'delivered';
CREATE INDEX deliveries_activity ON deliveries (activity);
CREATE TABLE sinks (name TEXT PRIMARY KEY, disabled_reason TEXT, changed_at BIGINT NOT NULL);
CREATE TABLE subscriptions (
    account TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    address TEXT NOT NULL,
    verification_token TEXT,
    event_filters TEXT NOT NULL,
    disabled_filters TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    renewed_at BIGINT,
    last_error TEXT
);
CREATE TABLE gaps (
    id BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL,
    from_at BIGINT NOT NULL,
    until_at BIGINT,
    cause TEXT NOT NULL,
    backfill TEXT NOT NULL DEFAULT 'pending',
    records BIGINT NOT NULL DEFAULT 0,
    found BIGINT NOT NULL DEFAULT 0,
    backfill_error TEXT,
    backfilled_at BIGINT
);
CREATE UNIQUE INDEX gaps_one_open ON gaps (account) WHERE until_at IS NULL;
CREATE TABLE liveness (account TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE cursors (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    fence BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE telephony (
    account TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, session_id)
);
",
    r"
CREATE TABLE inbox_accounts (account TEXT PRIMARY KEY, last_received_at BIGINT NOT NULL);
INSERT INTO inbox_accounts (account, last_received_at)
    SELECT account, MAX(received_at) FROM inbox GROUP BY account;
",
    r"
CREATE TABLE extensions (
    account TEXT NOT NULL,
    extension_id TEXT NOT NULL,
    number TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    covered BOOLEAN NOT NULL,
    reason TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, extension_id)
);
",
    // Shared OAuth tokens (several replicas, one token per account; secrets in plain text).
    r"
CREATE TABLE oauth_tokens (
    account TEXT PRIMARY KEY,
    credential TEXT NOT NULL,
    access_token TEXT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    refresh_token TEXT,
    refresh_expires_at BIGINT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
",
];

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Applies the missing migrations under an advisory lock (replicas starting together apply
/// each once); returns the version now in place.
///
/// # Errors
/// [`StoreError::Other`] when a migration fails or the database is newer than this build.
pub(crate) async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let t = client.transaction().await.map_err(pg_err)?;
    t.execute("SELECT pg_advisory_xact_lock(7243917001)", &[])
        .await
        .map_err(pg_err)?;
    t.batch_execute("CREATE TABLE IF NOT EXISTS ringrelay_migrations (version BIGINT PRIMARY KEY)")
        .await
        .map_err(pg_err)?;
    let current: i64 = t
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM ringrelay_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    if current > latest() {
        return Err(StoreError::Other(format!(
            "the database schema is version {current}, newer than this build's {}",
            latest()
        )));
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        t.batch_execute(sql).await.map_err(pg_err)?;
        let v = i64::try_from(i + 1).unwrap_or(i64::MAX);
        t.execute(
            "INSERT INTO ringrelay_migrations (version) VALUES ($1)",
            &[&v],
        )
        .await
        .map_err(pg_err)?;
    }
    t.commit().await.map_err(pg_err)?;
    Ok(latest())
}

/// The schema version in place (0 before any migration).
pub(crate) async fn version(client: &Client) -> Result<i64, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('ringrelay_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM ringrelay_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)
}
