//! The SQLite schema, as ordered migrations tracked by `PRAGMA user_version`.

use rusqlite::Connection;

use super::sql_err;
use crate::store::StoreError;

/// Migrations in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    subscription_id TEXT,
    uuid TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    ts INTEGER,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    unknown_subscription INTEGER NOT NULL
);
CREATE INDEX inbox_received_at ON inbox (received_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    activity_id TEXT NOT NULL,
    account TEXT NOT NULL,
    call_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX activities_created_at ON activities (created_at);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    activity INTEGER NOT NULL REFERENCES activities (id),
    sink TEXT NOT NULL,
    account TEXT NOT NULL,
    call_key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER,
    owner TEXT,
    last_error TEXT,
    last_status INTEGER,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (activity, sink)
);
CREATE INDEX deliveries_due ON deliveries (sink, due_at)
    WHERE state IN ('pending', 'failed', 'in_flight');
CREATE INDEX deliveries_open_call ON deliveries (sink, call_key, id)
    WHERE state IN ('pending', 'failed', 'in_flight');
CREATE INDEX deliveries_delivered ON deliveries (delivered_at) WHERE state = 'delivered';
CREATE INDEX deliveries_activity ON deliveries (activity);
CREATE TABLE sinks (name TEXT PRIMARY KEY, disabled_reason TEXT, changed_at INTEGER NOT NULL);
CREATE TABLE subscriptions (
    account TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    address TEXT NOT NULL,
    verification_token TEXT,
    event_filters TEXT NOT NULL,
    disabled_filters TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    renewed_at INTEGER,
    last_error TEXT
);
CREATE TABLE gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    from_at INTEGER NOT NULL,
    until_at INTEGER,
    cause TEXT NOT NULL,
    backfill TEXT NOT NULL DEFAULT 'pending',
    records INTEGER NOT NULL DEFAULT 0,
    found INTEGER NOT NULL DEFAULT 0,
    backfill_error TEXT,
    backfilled_at INTEGER
);
CREATE UNIQUE INDEX gaps_one_open ON gaps (account) WHERE until_at IS NULL;
CREATE TABLE liveness (account TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE cursors (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    fence INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE telephony (
    account TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, session_id)
);
",
    r"
CREATE TABLE inbox_accounts (account TEXT PRIMARY KEY, last_received_at INTEGER NOT NULL);
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
    covered INTEGER NOT NULL,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, extension_id)
);
",
    // Shared OAuth tokens (several replicas, one token per account; secrets in plain text).
    r"
CREATE TABLE oauth_tokens (
    account TEXT PRIMARY KEY,
    credential TEXT NOT NULL,
    access_token TEXT NOT NULL,
    access_expires_at INTEGER NOT NULL,
    refresh_token TEXT,
    refresh_expires_at INTEGER,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
",
    // The inbox without the unique index on uuid: the writer dedups in memory (`dedup.rs`)
    // from `inbox_seq_uuid`, an index that grows at its end. Nor AUTOINCREMENT (a write to
    // `sqlite_sequence` in every commit): the writer numbers rows itself, above
    // `counters.inbox_max_seq` (the old high-water mark, kept here) and the newest row,
    // which pruning never removes. SQLite cannot drop a constraint, so the table is rebuilt
    // with every row.
    r"
CREATE TABLE inbox_rebuilt (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    subscription_id TEXT,
    uuid TEXT NOT NULL,
    event TEXT NOT NULL,
    ts INTEGER,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    unknown_subscription INTEGER NOT NULL
);
INSERT INTO inbox_rebuilt (seq, account, subscription_id, uuid, event, ts, received_at, body,
        unknown_subscription)
    SELECT seq, account, subscription_id, uuid, event, ts, received_at, body, unknown_subscription
    FROM inbox ORDER BY seq;
INSERT INTO counters (name, value)
    SELECT 'inbox_max_seq', seq FROM sqlite_sequence WHERE name = 'inbox'
    ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value);
DROP TABLE inbox;
ALTER TABLE inbox_rebuilt RENAME TO inbox;
CREATE INDEX inbox_received_at ON inbox (received_at);
CREATE INDEX inbox_seq_uuid ON inbox (seq, uuid);
",
];

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The schema version in the database.
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)
}

/// Applies every migration the database lacks, each in its own transaction.
///
/// # Errors
/// [`StoreError::Other`] when a migration fails or the database is newer than this build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let current = version(conn)?;
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
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
    }
    Ok(latest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_rebuild_keeps_rows_and_the_seq_high_water_mark() {
        let mut c = Connection::open_in_memory().unwrap();
        // The schema just before the rebuild, with rows and a pruned tail.
        let before = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", before).unwrap();
        for uuid in ["a", "b", "c"] {
            c.execute(
                "INSERT INTO inbox (account, uuid, event, received_at, body, unknown_subscription)
                 VALUES ('acme', ?1, 'e', 0, '{}', 0)",
                [uuid],
            )
            .unwrap();
        }
        c.execute("DELETE FROM inbox WHERE uuid = 'c'", []).unwrap();
        assert_eq!(migrate(&mut c).unwrap(), latest());
        let high_water: i64 = c
            .query_row(
                "SELECT value FROM counters WHERE name = 'inbox_max_seq'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(high_water, 3, "seq 3 was handed out before");
        let uuids: Vec<(i64, String)> = c
            .prepare("SELECT seq, uuid FROM inbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(uuids, [(1, "a".to_owned()), (2, "b".to_owned())]);
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN SELECT seq, uuid FROM inbox INDEXED BY inbox_seq_uuid
                 WHERE seq > 0 ORDER BY seq",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX inbox_seq_uuid"), "{plan}");
    }
}
